"""The sandbox against the real signed client: every check, the records and the faults.

The client is asynchronous: each test runs it in one event loop of its own (`run`), as the
bot runs it in its one loop; its connections belong to that loop and are closed in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp import RetryPolicy, ScpAuth, ScpClient, VersionReport, errors, sign
from bot.scp.client import VersionLevel
from bot.scp.models import ApiVersion
from bot.scp.sandbox import Fault, FaultKind, Record, Sandbox, load_versions, parse_versions
from bot.services import make_cloud_client
from bot.settings import load_settings

ACCESS = "AK-test-0123456789"
SECRET = "SK-test-very-secret-value"
ACCOUNT = "0f0e0d0c0b0a49388776655443322110"
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
PUBLIC_IMAGE = "11111111-2222-4333-8444-555555555555"
UNKNOWN_IMAGE = "99999999-9999-4999-8999-999999999999"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"
ROOT = Path(__file__).resolve().parents[1]

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run() -> Iterator[Run]:
    """Runs a coroutine to its end in this test's event loop."""
    with asyncio.Runner() as runner:
        yield runner.run


async def shared_and_added(client: ScpClient) -> tuple[str, str]:
    """Make UNKNOWN_IMAGE shared and add MEMBER to it with `client`, then close it: the
    image's visibility and the member's status as the service answered them."""
    async with client:
        image = await client.set_visibility(UNKNOWN_IMAGE, "shared")
        member = await client.add_member(UNKNOWN_IMAGE, MEMBER)
    return image.visibility, member.status


class TamperedAuth(ScpAuth):
    """Signs like ScpAuth, then overrides (value) or removes (None) some headers."""

    def __init__(self, *args: Any, override: dict[str, str | None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.override = override

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = next(super().auth_flow(request))
        for name, value in self.override.items():
            if value is None:
                del signed.headers[name]
            else:
                signed.headers[name] = value
        yield signed


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(ACCESS, SECRET, ACCOUNT) as server:
        server.add_image(IMAGE, visibility="shared")  # only Shared images have members
        server.add_image(PUBLIC_IMAGE, shareable=False)
        yield server


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def make_client(
    run: Run, sandbox: Sandbox, slept: list[float]
) -> Iterator[Callable[..., ScpClient]]:
    clients: list[ScpClient] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def make(
        *,
        auth: ScpAuth | None = None,
        version: str = "1.1",
        attempts: int = 4,
        timeout: float = 5.0,
    ) -> ScpClient:
        client = ScpClient(
            sandbox.url,
            auth or ScpAuth(ACCESS, SECRET, ACCOUNT),
            api_version=version,
            timeout=httpx.Timeout(timeout),
            retry=RetryPolicy(attempts=attempts, sleep=sleep),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        run(client.aclose())


@pytest.fixture
def client(make_client: Callable[..., ScpClient]) -> ScpClient:
    return make_client()


@pytest.fixture
def raw(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """Signed httpx for requests the typed client would never send."""
    headers = {"Scp-Api-Version": "virtualserver 1.1"}
    auth = ScpAuth(ACCESS, SECRET, ACCOUNT)
    with httpx.Client(base_url=sandbox.url, auth=auth, headers=headers, timeout=5) as http:
        yield http


def posts(records: list[Record]) -> list[Record]:
    return [r for r in records if r.method == "POST"]


def added(records: list[Record]) -> list[Record]:
    return [r for r in posts(records) if r.status == 200]


# -- the happy paths -------------------------------------------------------------------


def test_add_member_is_pending_and_recorded(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    member = run(client.add_member(IMAGE, MEMBER))

    assert (member.image_id, member.member_id, member.status) == (IMAGE, MEMBER, "pending")
    assert member.created_at == member.updated_at
    assert time.strptime(member.created_at, "%Y-%m-%dT%H:%M:%SZ")
    [record] = sandbox.records
    assert (record.method, record.member_id, record.signed, record.status) == (
        "POST",
        MEMBER,
        True,
        200,
    )
    assert record.done and record.request_id.startswith("req-")
    assert sandbox.members(IMAGE) == [member]


def test_list_show_status_and_remove(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    run(client.add_member(IMAGE, MEMBER))
    run(client.add_member(IMAGE, "other-account"))
    sandbox.set_member_status(IMAGE, MEMBER, "accepted")

    assert [(m.member_id, m.status) for m in run(client.list_members(IMAGE))] == [
        (MEMBER, "accepted"),
        ("other-account", "pending"),
    ]
    assert run(client.show_member(IMAGE, MEMBER)).status == "accepted"
    run(client.remove_member(IMAGE, MEMBER))
    with pytest.raises(errors.MemberNotFound):
        run(client.show_member(IMAGE, MEMBER))
    with pytest.raises(errors.MemberNotFound) as caught:
        run(client.remove_member(IMAGE, MEMBER))
    assert caught.value.status == 404 and caught.value.code == "NotFound"

    statuses = [(r.method, r.status) for r in sandbox.records]
    assert statuses == [
        ("POST", 200),
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
        ("DELETE", 204),
        ("GET", 404),
        ("DELETE", 404),
    ]
    assert [m.member_id for m in sandbox.members(IMAGE)] == ["other-account"]


def test_put_sets_status_and_delete_has_no_body(sandbox: Sandbox, raw: httpx.Client) -> None:
    path = f"/v1/images/{IMAGE}/members"
    assert raw.post(path, json={"member_id": MEMBER}).status_code == 200

    answer = raw.put(f"{path}/{MEMBER}", json={"status": "rejected"})
    assert answer.status_code == 200 and answer.json()["status"] == "rejected"
    assert sandbox.members(IMAGE)[0].status == "rejected"
    gone = raw.delete(f"{path}/{MEMBER}")
    assert (gone.status_code, gone.content) == (204, b"")
    assert sandbox.members(IMAGE) == []


def test_open_images_accept_any_uuid_but_still_check_it(raw: httpx.Client) -> None:
    with Sandbox(ACCESS, SECRET, ACCOUNT, open_images=True) as open_sandbox:
        url = f"{open_sandbox.url}/v1/images/{UNKNOWN_IMAGE}/members"
        # Made up private, as new images are: no members until it is Shared.
        assert raw.post(url, json={"member_id": MEMBER}).status_code == 403
        image_url = f"{open_sandbox.url}/v1/images/{UNKNOWN_IMAGE}"
        assert raw.put(image_url, json={"visibility": "shared"}).status_code == 200
        assert raw.post(url, json={"member_id": MEMBER}).status_code == 200
        bad = raw.post(f"{open_sandbox.url}/v1/images/not-a-uuid/members", json={})
        assert bad.status_code == 400
        assert [m.member_id for m in open_sandbox.members(UNKNOWN_IMAGE)] == [MEMBER]


# -- the service's refusals --------------------------------------------------------------


def test_add_twice_is_already_member(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    run(client.add_member(IMAGE, MEMBER))
    sandbox.set_member_status(IMAGE, MEMBER, "rejected")

    with pytest.raises(errors.AlreadyMember) as caught:
        run(client.add_member(IMAGE, MEMBER))

    assert caught.value.status == 409 and caught.value.code == "Conflict"
    assert caught.value.request_id == sandbox.records[-1].request_id
    assert [r.status for r in posts(sandbox.records)] == [200, 409]
    assert len(sandbox.members(IMAGE)) == 1


def test_unknown_image_is_a_framework_404(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    with pytest.raises(errors.ImageNotFound) as caught:
        run(client.add_member(UNKNOWN_IMAGE, MEMBER))

    [record] = sandbox.records
    assert caught.value.status == 404 and caught.value.request_id == record.request_id
    assert (record.status, record.signed) == (404, True)
    assert sandbox.members(UNKNOWN_IMAGE) == []


def test_unshareable_image_is_forbidden(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    with pytest.raises(errors.ImageNotShareable) as caught:
        run(client.add_member(PUBLIC_IMAGE, MEMBER))

    assert (caught.value.status, caught.value.code) == (403, "Forbidden")
    assert [r.status for r in sandbox.records] == [403]
    assert sandbox.members(PUBLIC_IMAGE) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status"),
    [
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": "x", "extra": 1}', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member": "x"}', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": 123}', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": "bad id!"}', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": ""}', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", json.dumps({"member_id": "a" * 65}), None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": "x"', None, 400),
        ("POST", f"/v1/images/{IMAGE}/members", '{"member_id": "x"}', "text/plain", 400),
        ("POST", f"/v1/images/{IMAGE.upper()}/members", '{"member_id": "x"}', None, 400),
        ("POST", "/v1/images/not-a-uuid/members", '{"member_id": "x"}', None, 400),
        ("PUT", f"/v1/images/{IMAGE}/members/{MEMBER}", '{"status": "maybe"}', None, 400),
        ("GET", f"/v1/images/{IMAGE}/members/bad%20id", None, None, 400),
    ],
)
def test_malformed_requests_are_validation_errors(
    sandbox: Sandbox,
    raw: httpx.Client,
    method: str,
    path: str,
    body: str | None,
    content_type: str | None,
    status: int,
) -> None:
    headers = {"Content-Type": content_type or "application/json"} if body else {}
    answer = raw.request(method, path, content=body, headers=headers)

    assert answer.status_code == status
    [error] = answer.json()["errors"]
    assert error["code"] == error["title"] == "ValidationError"
    assert error["status"] == status and error["detail"]
    assert error["request_id"] == sandbox.records[-1].request_id
    assert error["global_request_id"].startswith("req-")
    assert (error["links"], error["related_resources"], error["response"]) == ([], [], None)
    assert [r.status for r in sandbox.records] == [status]
    assert sandbox.members(IMAGE) == []


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/v1/volumes", 404, "Not Found"),
        ("POST", f"/v2/images/{IMAGE}/members", 404, "Not Found"),
        ("GET", f"/v1/images/{IMAGE}/members/{MEMBER}/extra", 404, "Not Found"),
        ("PATCH", f"/v1/images/{IMAGE}/members", 405, "Method Not Allowed"),
    ],
)
def test_unknown_routes_are_framework_errors(
    sandbox: Sandbox, raw: httpx.Client, method: str, path: str, status: int, error: str
) -> None:
    answer = raw.request(method, path)

    body = answer.json()
    assert answer.status_code == body["status"] == status
    assert (body["error"], body["path"]) == (error, path)
    assert body["requestId"] == sandbox.records[-1].request_id and body["timestamp"]


# -- the gateway -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (ScpAuth(ACCESS, "wrong-secret", ACCOUNT), "signature does not match"),
        (ScpAuth("AK-unknown", SECRET, ACCOUNT), "unknown access key"),
        (ScpAuth(ACCESS, SECRET, "another-account"), "Scp-AccountId"),
        (ScpAuth(ACCESS, SECRET, ACCOUNT, clock=lambda: time.time() - 301), "Scp-Timestamp"),
        (ScpAuth(ACCESS, SECRET, ACCOUNT, clock=lambda: time.time() + 600), "Scp-Timestamp"),
        (
            TamperedAuth(ACCESS, SECRET, ACCOUNT, override={"Scp-Signature": "AAAA" * 11}),
            "signature does not match",
        ),
        (
            TamperedAuth(ACCESS, SECRET, ACCOUNT, override={"Scp-ClientType": "OpenApi"}),
            "Scp-ClientType",
        ),
        (
            TamperedAuth(ACCESS, SECRET, ACCOUNT, override={"Scp-Timestamp": "soon"}),
            "Scp-Timestamp",
        ),
        (
            TamperedAuth(ACCESS, SECRET, ACCOUNT, override={"Scp-AccountId": None}),
            "Scp-AccountId",
        ),
    ],
    ids=[
        "wrong-secret",
        "wrong-access-key",
        "wrong-account",
        "stale-timestamp",
        "future-timestamp",
        "bad-signature",
        "wrong-client-type",
        "timestamp-not-ms",
        "no-account-header",
    ],
)
def test_gateway_rejects_bad_signing(
    run: Run,
    sandbox: Sandbox,
    make_client: Callable[..., ScpClient],
    caplog: pytest.LogCaptureFixture,
    auth: ScpAuth,
    message: str,
) -> None:
    caplog.set_level("INFO", logger="bot.scp.sandbox")
    with pytest.raises(errors.CloudAuthError) as caught:
        run(make_client(auth=auth).add_member(IMAGE, MEMBER))

    assert caught.value.status == 401 and caught.value.code == "UNAUTHORIZED"
    assert message in (caught.value.detail or "")
    assert SECRET not in str(caught.value) and "wrong-secret" not in str(caught.value)
    [record] = sandbox.records
    assert (record.signed, record.status, record.member_id) == (False, 401, MEMBER)
    assert sandbox.members(IMAGE) == []
    assert f"POST {record.path} -> 401 {record.request_id}" in caplog.text


def test_gateway_envelope_never_echoes_the_signature(sandbox: Sandbox) -> None:
    timestamp = str(int(time.time() * 1000))
    url = f"{sandbox.url}/v1/images/{IMAGE}/members"
    good = sign(
        method="GET",
        url=url,
        timestamp=timestamp,
        access_key=ACCESS,
        account_id=ACCOUNT,
        secret_key=SECRET,
    )
    # Header names in odd cases are fine; a signature made for another method is not.
    headers = {
        "scp-accesskey": ACCESS,
        "SCP-TIMESTAMP": timestamp,
        "Scp-ClientType": "Openapi",
        "scp-accountid": ACCOUNT,
        "SCP-API-VERSION": "virtualserver 1.1",
    }
    with httpx.Client(timeout=5) as http:
        ok = http.get(url, headers=headers | {"scp-SIGNATURE": good})
        bad = http.delete(f"{url}/{MEMBER}", headers=headers | {"Scp-Signature": good})

    assert (ok.status_code, ok.json()) == (200, {"members": []})
    assert bad.status_code == 401
    assert bad.json() == {
        "status": "UNAUTHORIZED",
        "name": "Request was rejected by gateway",
        "message": "signature does not match",
    }
    assert good not in bad.text
    assert [(r.signed, r.status) for r in sandbox.records] == [(True, 200), (False, 401)]


def test_signature_covers_the_query(sandbox: Sandbox, raw: httpx.Client) -> None:
    assert raw.get(f"/v1/images/{IMAGE}/members", params={"limit": "5"}).status_code == 200
    timestamp = str(int(time.time() * 1000))
    path = f"/v1/images/{IMAGE}/members"
    without_query = sign(
        method="GET",
        url=sandbox.url + path,
        timestamp=timestamp,
        access_key=ACCESS,
        account_id=ACCOUNT,
        secret_key=SECRET,
    )
    headers = {
        "Scp-Accesskey": ACCESS,
        "Scp-Signature": without_query,
        "Scp-Timestamp": timestamp,
        "Scp-ClientType": "Openapi",
        "Scp-AccountId": ACCOUNT,
    }
    with httpx.Client(timeout=5) as http:
        answer = http.get(sandbox.url + path + "?limit=5", headers=headers)
    assert answer.status_code == 401
    assert [r.signed for r in sandbox.records] == [True, False]


# -- versions -----------------------------------------------------------------------------


def test_version_list_is_unsigned(sandbox: Sandbox) -> None:
    with httpx.Client(timeout=5) as http:
        listing = http.get(sandbox.url + "/").json()["versions"]

    # As the operation's own page lists them: 1.1 CURRENT, 1.0 DEPRECATED with its
    # minimum support guarantee date.
    assert [(v["id"], v["status"], v.get("not_before")) for v in listing] == [
        ("v1.1", "CURRENT", None),
        ("v1.0", "DEPRECATED", "2025-12-31"),
    ]
    assert all("supported_until" not in v for v in listing)
    assert listing[0]["links"] == [{"rel": "self", "href": sandbox.url + "/v1/"}]
    [record] = sandbox.records
    assert (record.method, record.path, record.signed, record.status) == ("GET", "/", False, 200)


def test_the_default_1_1_is_current_and_1_0_is_past_its_date(
    run: Run,
    make_client: Callable[..., ScpClient],
) -> None:
    report = run(make_client(version="1.1").version_report())
    assert (report.ok, report.level, report.status, report.current) == (
        True,
        VersionLevel.OK,
        "CURRENT",
        "1.1",
    )
    assert report.served == ["1.1", "1.0"] and report.problem is None

    old = run(make_client(version="1.0").version_report(today=date(2026, 12, 1)))
    assert (old.ok, old.usable, old.level) == (False, True, VersionLevel.AT_RISK)
    assert old.not_before == date(2025, 12, 31)
    assert old.problem == (
        "version 1.0 is DEPRECATED and its minimum support date, 2025-12-31, has passed: it may"
        " stop being served any day; the CURRENT version is 1.1 (set SCP_API_VERSION=1.1)"
    )


def test_deprecated_before_its_not_before_date_is_a_warning(raw: httpx.Client) -> None:
    versions = [
        ApiVersion(id="v1.3", status="CURRENT", not_before="2026-03-01"),
        ApiVersion(id="v1.2", status="SUPPORTED", not_before="2026-08-31"),
        # The documentation writes the date without dashes too.
        ApiVersion(id="v1.1", status="DEPRECATED", not_before="20270630"),
    ]
    with Sandbox(ACCESS, SECRET, ACCOUNT, versions=versions) as custom:
        custom.add_image(IMAGE, visibility="shared")

        async def version_report(version: str) -> VersionReport:
            auth = ScpAuth(ACCESS, SECRET, ACCOUNT)
            async with ScpClient(custom.url, auth, api_version=version) as client:
                return await client.version_report(today=date(2026, 12, 1))

        def report(version: str) -> VersionReport:
            return asyncio.run(version_report(version))

        deprecated, supported_past, current = report("1.1"), report("1.2"), report("1.3")
        # Still served: a request with it works.
        served = raw.get(
            f"{custom.url}/v1/images/{IMAGE}/members",
            headers={"Scp-Api-Version": "virtualserver 1.1"},
        )

    assert served.status_code == 200
    assert (deprecated.level, deprecated.usable, deprecated.not_before) == (
        VersionLevel.DEPRECATED,
        True,
        date(2027, 6, 30),
    )
    assert deprecated.problem == (
        "version 1.1 is DEPRECATED (served at least until 2027-06-30); the CURRENT version is"
        " 1.3 (set SCP_API_VERSION=1.3)"
    )
    # Past its date any version but the CURRENT one may go any day.
    assert supported_past.level is VersionLevel.AT_RISK
    assert "SUPPORTED and its minimum support date, 2026-08-31, has passed" in str(
        supported_past.problem
    )
    # The CURRENT one's date passing means nothing.
    assert (current.level, current.problem) == (VersionLevel.OK, None)


def test_supported_until_is_read_only_without_not_before(
    run: Run, make_client: Callable[..., ScpClient], sandbox: Sandbox
) -> None:
    sandbox.versions = [
        ApiVersion(id="v1.3", status="CURRENT"),
        ApiVersion(id="v1.1", status="DEPRECATED", supported_until="2099-01-01"),
        ApiVersion(
            id="v1.0", status="DEPRECATED", not_before="2025-12-31", supported_until="2099-01-01"
        ),
    ]

    fallback = run(make_client(version="1.1").version_report(today=date(2026, 12, 1)))
    preferred = run(make_client(version="1.0").version_report(today=date(2026, 12, 1)))

    assert (fallback.level, fallback.not_before) == (VersionLevel.DEPRECATED, date(2099, 1, 1))
    assert (preferred.level, preferred.not_before) == (VersionLevel.AT_RISK, date(2025, 12, 31))


def test_a_version_not_listed_is_not_served(
    run: Run, make_client: Callable[..., ScpClient]
) -> None:
    report = run(make_client(version="1.3").version_report())

    assert (report.ok, report.usable, report.level) == (False, False, VersionLevel.NOT_SERVED)
    assert report.problem == (
        "version 1.3 is not served; the CURRENT version is 1.1 (set SCP_API_VERSION=1.1)"
    )


@pytest.mark.parametrize("version", ["1.3", "9.9"])
def test_unserved_versions_are_refused(
    run: Run, sandbox: Sandbox, make_client: Callable[..., ScpClient], version: str
) -> None:
    with pytest.raises(errors.CloudAuthError) as caught:
        run(make_client(version=version).add_member(IMAGE, MEMBER))

    assert (caught.value.status, caught.value.code) == (400, "UnsupportedApiVersion")
    assert version in (caught.value.detail or "")
    [record] = sandbox.records
    assert (record.signed, record.status) == (True, 400)
    assert sandbox.members(IMAGE) == []


def test_a_listed_version_past_its_date_is_still_served(
    run: Run, sandbox: Sandbox, make_client: Callable[..., ScpClient]
) -> None:
    member = run(make_client(version="1.0").add_member(IMAGE, MEMBER))

    assert member.status == "pending"


def test_versions_are_configurable_and_dates_end_them(raw: httpx.Client) -> None:
    versions = [
        ApiVersion(id="v2.0", status="CURRENT"),
        ApiVersion(id="v1.1", status="SUPPORTED", supported_until="2020-01-01"),
    ]
    with Sandbox(ACCESS, SECRET, ACCOUNT, versions=versions) as custom:
        custom.add_image(IMAGE, visibility="shared")
        url = f"{custom.url}/v1/images/{IMAGE}/members"
        expired = raw.get(url)
        current = raw.get(url, headers={"Scp-Api-Version": "virtualserver 2.0"})
        missing = raw.get(url, headers={"Scp-Api-Version": ""})
        other = raw.get(url, headers={"Scp-Api-Version": "objectstorage 2.0"})
        listing = raw.get(f"{custom.url}/").json()["versions"]

    [error] = expired.json()["errors"]
    assert (expired.status_code, error["code"]) == (400, "UnsupportedApiVersion")
    assert "2020-01-01" in error["detail"]
    assert current.status_code == 200
    assert missing.status_code == other.status_code == 400
    # Withdrawn, so no longer listed either: the list says what is served.
    assert [v["id"] for v in listing] == ["v2.0"]


def test_version_lists_from_the_command_line_syntax() -> None:
    versions = parse_versions("1.3:CURRENT, v1.2:supported:2026-08-31,1.1:DEPRECATED:20260831")

    assert [(v.id, v.status, v.not_before) for v in versions] == [
        ("v1.3", "CURRENT", None),
        ("v1.2", "SUPPORTED", "2026-08-31"),
        ("v1.1", "DEPRECATED", "2026-08-31"),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "'' is not VERSION:STATUS[:NOT_BEFORE]"),
        ("1.3", "'1.3' is not VERSION:STATUS[:NOT_BEFORE]"),
        ("latest:CURRENT", "'latest' is not a version like 1.3"),
        ("1.3:ACTIVE", "'ACTIVE' is not a status: CURRENT, SUPPORTED, DEPRECATED"),
        ("1.1:DEPRECATED:soon", "'soon' is not a date like 2026-08-31"),
        ("1.1:CURRENT,1.1:DEPRECATED", "version 1.1 is listed twice"),
    ],
)
def test_a_bad_version_list_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_versions(spec)

    assert str(caught.value) == message


def test_version_lists_from_json() -> None:
    answer = '{"versions": [{"id": "v1.3", "status": "CURRENT", "not_before": "2026-03-01"}]}'
    bare = '[{"id": "v1.1", "status": "DEPRECATED", "not_before": "20251231"}]'

    assert [(v.number, v.not_before) for v in load_versions(answer)] == [("1.3", "2026-03-01")]
    assert [(v.number, v.status) for v in load_versions(bare)] == [("1.1", "DEPRECATED")]
    with pytest.raises(ValueError, match="not JSON"):
        load_versions("{")
    with pytest.raises(ValueError, match="status"):
        load_versions('[{"id": "v1.1"}]')
    with pytest.raises(ValueError, match="not_before 'someday' is not a date"):
        load_versions('[{"id": "v1.1", "status": "CURRENT", "not_before": "someday"}]')


# -- faults ---------------------------------------------------------------------------------


def test_503_with_retry_after_then_success(
    run: Run, sandbox: Sandbox, client: ScpClient, slept: list[float]
) -> None:
    sandbox.inject(Fault.answer(503, headers={"Retry-After": "1"}, method="POST"))

    member = run(client.add_member(IMAGE, MEMBER))

    assert member.status == "pending"
    assert [(r.status, r.fault is not None) for r in sandbox.records] == [
        (503, True),
        (200, False),
    ]
    assert len(slept) == 1 and slept[0] >= 1.0
    assert len(sandbox.members(IMAGE)) == 1 and sandbox.faults == []


def test_apply_then_drop_reads_the_member_back(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    sandbox.inject(Fault.apply_then_drop(method="POST"))

    member = run(client.add_member(IMAGE, MEMBER))

    assert (member.member_id, member.status) == (MEMBER, "pending")
    # The answer was lost: the member is read before anything is sent again, and is there.
    first, read_back = sandbox.records
    assert first.fault is not None and first.fault.apply and first.status is None
    assert (read_back.method, read_back.member_id, read_back.status) == ("GET", MEMBER, 200)
    assert sandbox.members(IMAGE) == [member]


def test_reset_is_retried_without_a_second_member(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    sandbox.inject(Fault.reset(method="POST"))

    run(client.add_member(IMAGE, MEMBER))

    assert [(r.status, r.fault) for r in posts(sandbox.records)] == [
        (None, Fault.reset(method="POST")),
        (200, None),
    ]
    assert [r.method for r in sandbox.records] == ["POST", "GET", "POST"]  # read: not there
    assert len(added(sandbox.records)) == 1


def test_exhausted_retries_are_unavailable(
    run: Run, sandbox: Sandbox, make_client: Callable[..., ScpClient], slept: list[float]
) -> None:
    sandbox.inject(*[Fault.answer(503, method="POST")] * 3)

    with pytest.raises(errors.CloudUnavailable) as caught:
        run(make_client(attempts=3).add_member(IMAGE, MEMBER))

    assert (caught.value.status, caught.value.code) == (503, "ServiceUnavailable")
    assert caught.value.request_id == sandbox.records[-1].request_id
    assert [r.status for r in sandbox.records] == [503, 503, 503]
    assert len(slept) == 2 and sandbox.members(IMAGE) == []


def test_proxy_html_and_cut_json_do_not_crash_the_client(
    run: Run, sandbox: Sandbox, make_client: Callable[..., ScpClient]
) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    sandbox.inject(
        Fault.answer(502, html, content_type="text/html", method="POST"),
        Fault.answer(429, b'{"errors": [{"code": "TooMany', method="POST"),
    )

    with pytest.raises(errors.CloudUnavailable) as caught:
        run(make_client(attempts=2).add_member(IMAGE, MEMBER))

    assert caught.value.status == 429
    assert caught.value.detail is not None and "unreadable body" in caught.value.detail
    # After the gateway's 502 the member is read (not there) before the add goes again.
    assert [(r.method, r.status) for r in sandbox.records] == [
        ("POST", 502),
        ("GET", 404),
        ("POST", 429),
    ]
    assert sandbox.members(IMAGE) == []


def test_cut_success_body_is_read_back(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    sandbox.inject(Fault.answer(200, b'{"created_at": "2025-', apply=True, method="POST"))

    member = run(client.add_member(IMAGE, MEMBER))

    assert member.member_id == MEMBER
    assert [(r.method, r.status) for r in sandbox.records] == [("POST", 200), ("GET", 200)]
    assert len(sandbox.members(IMAGE)) == 1


def test_stall_past_the_timeout_is_retried(
    run: Run, sandbox: Sandbox, make_client: Callable[..., ScpClient]
) -> None:
    client = make_client(timeout=0.3)
    run(client.add_member(IMAGE, MEMBER))
    sandbox.inject(Fault.stall(30, method="GET", path="/members"))

    [member] = run(client.list_members(IMAGE))

    assert member.member_id == MEMBER
    gets = [r for r in sandbox.records if r.method == "GET"]
    assert len(gets) == 2 and not gets[0].done and gets[1].status == 200


def test_faults_match_method_and_path(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    sandbox.inject(Fault.answer(503, method="DELETE"), Fault.answer(429, path="/nowhere"))

    run(client.add_member(IMAGE, MEMBER))
    run(client.list_members(IMAGE))

    assert [r.status for r in sandbox.records] == [200, 200]
    assert len(sandbox.faults) == 2


def test_delay_does_not_serialise_requests(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    sandbox.delay = 0.5

    async def at_once() -> list[list[Any]]:
        return await asyncio.gather(*(client.list_members(IMAGE) for _ in range(100)))

    started = time.monotonic()
    answers = run(at_once())

    assert answers == [[]] * 100
    assert time.monotonic() - started < 5  # serial would take 50 s
    assert len(sandbox.records) == 100 and {r.status for r in sandbox.records} == {200}


def test_wait_for_sees_a_request_arrive(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    sandbox.delay = 0.3

    async def add_while_watching() -> tuple[list[Record], list[Record]]:
        call = asyncio.create_task(client.add_member(IMAGE, MEMBER))
        # The test's thread waits on the sandbox while the loop carries the call on.
        arrived = await asyncio.to_thread(
            sandbox.wait_for, lambda rs: any(r.method == "POST" for r in rs), timeout=5
        )
        finished = await asyncio.to_thread(
            sandbox.wait_for, lambda rs: bool(rs) and rs[-1].done, timeout=5
        )
        await call
        return arrived, finished

    arrived, finished = run(add_while_watching())

    assert not arrived[0].done and arrived[0].status is None
    assert finished[0].status == 200
    with pytest.raises(TimeoutError):
        sandbox.wait_for(lambda rs: len(rs) > 1, timeout=0.05)


def test_fault_kinds_are_plain_values() -> None:
    assert Fault.apply_then_drop().kind is FaultKind.RESET and Fault.apply_then_drop().apply
    assert Fault.answer(200, "x").body == b"x"
    assert Fault.stall(2).seconds == 2


# -- the operator's command ------------------------------------------------------------------


@dataclass
class SandboxProcess:
    """`python -m bot sandbox` running, with what it printed before it was ready."""

    process: subprocess.Popen[str]
    printed: list[str]

    @property
    def url(self) -> str:
        [ready] = [line for line in self.printed if line.startswith("SCP sandbox ready")]
        return ready.split("SCP_ENDPOINT=")[1].split()[0]

    def env_lines(self) -> list[str]:
        """The lines it says to put in `.env`, between the blank lines."""
        start = self.printed.index("") + 1
        end = self.printed.index("", start)
        return self.printed[start:end]


@pytest.fixture
def run_sandbox_command(tmp_path: Path) -> Iterator[Callable[..., SandboxProcess]]:
    """Start `python -m bot sandbox --port 0 ARGS` in tmp_path; stopped after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> SandboxProcess:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SCP_")}
        environment |= {"PYTHONPATH": str(ROOT), **(env or {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox", "--port", "0", *args],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        printed: list[str] = []
        while not printed or not printed[-1].startswith("SCP sandbox ready"):
            line = process.stdout.readline()
            assert line, (printed, process.wait(10), process.stderr and process.stderr.read())
            printed.append(line.rstrip("\n"))
        return SandboxProcess(process, printed)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_run_sandbox_serves_until_ctrl_c(
    run_sandbox_command: Callable[..., SandboxProcess],
) -> None:
    running = run_sandbox_command(env={"SCP_SECRET_KEY": SECRET})
    client = ScpClient(
        running.url, ScpAuth("sandbox-access-key", SECRET), retry=RetryPolicy(attempts=1)
    )
    assert asyncio.run(shared_and_added(client)) == ("shared", "pending")
    running.process.send_signal(signal.SIGINT)
    out, err = running.process.communicate(timeout=10)

    assert running.process.returncode == 0
    printed = "\n".join(running.printed) + out + err
    assert "SCP_ACCESS_KEY is not set; the sandbox uses its own" in printed
    assert SECRET not in printed
    assert f"POST /v1/images/{UNKNOWN_IMAGE}/members -> 200 req-" in err
    assert out.strip() == "sandbox stopped" and "Traceback" not in err


def test_the_sandbox_prints_the_env_lines_and_its_default_keys(
    run_sandbox_command: Callable[..., SandboxProcess],
) -> None:
    running = run_sandbox_command()

    # The key itself, not the name of a constant holding it.
    assert running.env_lines() == [
        f"SCP_ENDPOINT={running.url}",
        "SCP_ACCESS_KEY=sandbox-access-key",
        "SCP_SECRET_KEY=sandbox-secret-key",
        "SCP_ACCOUNT_ID=",
    ]
    assert "DEFAULT_SECRET_KEY" not in "\n".join(running.printed)
    assert running.printed[0] == (
        f"SCP sandbox on {running.url}, serving API versions 1.1 (CURRENT),"
        " 1.0 (DEPRECATED, not_before 2025-12-31)"
    )
    differences = running.printed[
        running.printed.index("The bot's settings differ from the sandbox's:") + 1 : -1
    ]
    assert differences == [
        "  - SCP_ENDPOINT is not set",
        "  - SCP_ACCESS_KEY is not set; the sandbox uses its own (the line above)",
        "  - SCP_SECRET_KEY is not set; the sandbox uses its own (the line above)",
    ]
    # What it printed is what it checks: a client with those keys is accepted.
    client = ScpClient(
        running.url,
        ScpAuth("sandbox-access-key", "sandbox-secret-key"),
        retry=RetryPolicy(attempts=1),
    )
    assert asyncio.run(shared_and_added(client)) == ("shared", "pending")


def test_the_sandbox_takes_the_keys_from_dotenv_like_the_bot(
    run_sandbox_command: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        f"SCP_ACCESS_KEY={ACCESS}\nSCP_SECRET_KEY={SECRET}   # the bot's keys\n"
        f"SCP_ACCOUNT_ID={ACCOUNT}\n"
    )
    running = run_sandbox_command()
    (tmp_path / ".env").write_text(
        (tmp_path / ".env").read_text() + f"SCP_ENDPOINT={running.url}\n"
    )

    # The bot's own settings, read the bot's way, are accepted by the sandbox.
    settings = load_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s3cret")
    client = make_cloud_client(settings, retry=RetryPolicy(attempts=1))
    assert asyncio.run(shared_and_added(client)) == ("shared", "pending")
    assert running.env_lines() == [
        f"SCP_ENDPOINT={running.url}",
        "# SCP_ACCESS_KEY: already set in .env, the sandbox uses it",
        "# SCP_SECRET_KEY: already set in .env, the sandbox uses it",
        "# SCP_ACCOUNT_ID: already set in .env, the sandbox uses it",
    ]
    # A key of the operator's own is never shown; only the endpoint was missing.
    assert SECRET not in "\n".join(running.printed)
    assert running.printed[-3:-1] == [
        "The bot's settings differ from the sandbox's:",
        "  - SCP_ENDPOINT is not set",
    ]


def test_the_sandbox_says_where_the_bots_settings_differ(
    run_sandbox_command: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "SCP_ENDPOINT=https://virtualserver.kr-west1.e.samsungsdscloud.com\n"
        f"SCP_ACCESS_KEY={ACCESS}\nSCP_SECRET_KEY=...\n"
    )
    running = run_sandbox_command(env={"SCP_ACCESS_KEY": "AK-from-the-shell"})

    assert running.env_lines() == [
        f"SCP_ENDPOINT={running.url}",
        "# SCP_ACCESS_KEY: already set in the environment, the sandbox uses it",
        "SCP_SECRET_KEY=sandbox-secret-key",
        "SCP_ACCOUNT_ID=",
    ]
    assert running.printed[
        running.printed.index("The bot's settings differ from the sandbox's:") + 1 : -1
    ] == [
        "  - SCP_ENDPOINT is https://virtualserver.kr-west1.e.samsungsdscloud.com (from .env):"
        " the bot calls that, not this sandbox",
        "  - SCP_ACCESS_KEY in the environment differs from the one in .env: this sandbox (and"
        " a bot started from this shell) use the environment's, a bot started without it reads"
        " .env's and is refused (401)",
        "  - SCP_SECRET_KEY in .env is still the placeholder from .env.example; the sandbox uses"
        " its own (the line above)",
    ]
    client = ScpClient(
        running.url,
        ScpAuth("AK-from-the-shell", "sandbox-secret-key"),
        retry=RetryPolicy(attempts=1),
    )
    assert asyncio.run(shared_and_added(client)) == ("shared", "pending")


def test_the_sandbox_serves_the_versions_it_is_told(
    run_sandbox_command: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    inline = run_sandbox_command("--versions", "1.3:CURRENT,1.1:DEPRECATED:2026-08-31")
    (tmp_path / "versions.json").write_text(
        json.dumps({"versions": [{"id": "v2.0", "status": "CURRENT"}]})
    )
    from_file = run_sandbox_command("--versions", "versions.json")

    with httpx.Client(timeout=5) as http:
        listed = [
            [(v["id"], v["status"], v.get("not_before")) for v in http.get(url).json()["versions"]]
            for url in (inline.url + "/", from_file.url + "/")
        ]

    assert listed == [
        [("v1.3", "CURRENT", None), ("v1.1", "DEPRECATED", "2026-08-31")],
        [("v2.0", "CURRENT", None)],
    ]
    assert inline.printed[0].endswith(
        "serving API versions 1.3 (CURRENT), 1.1 (DEPRECATED, not_before 2026-08-31)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.3:ACTIVE", "argument --versions: 'ACTIVE' is not a status"),
        ("missing.json", "argument --versions: there is no file missing.json"),
    ],
)
def test_a_bad_versions_option_is_a_usage_error(tmp_path: Path, value: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--versions", value],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr and "Traceback" not in done.stderr
