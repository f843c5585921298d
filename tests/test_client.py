"""`ScpClient` against scripted answers (`httpx.MockTransport`): retries, errors, headers.

The sandbox tests (tests/test_sandbox.py) drive the client against a real server;
these cover what is easier to pin down with exact answers: Retry-After, every error
envelope, odd bodies, the headers of each attempt, and the add's read-back rules.

The client is asynchronous; each call runs in `asyncio.run` (a scripted transport holds no
connection that would tie the client to one loop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import prometheus_client
import pytest

from bot import metrics
from bot.scp import RetryPolicy, ScpAuth, ScpClient, errors, sign

BASE = "https://virtualserver.kr-west1.e.samsungsdscloud.com"
ACCESS = "AK-client-test-0123"
SECRET = "SK-client-test-secret-abcdef"
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"
MEMBERS_PATH = f"/v1/images/{IMAGE}/members"
MEMBER_PATH = f"{MEMBERS_PATH}/{MEMBER}"
JITTER = 0.5


def member_json(created: datetime | None = None, status: str = "pending") -> dict[str, str]:
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "created_at": stamp,
        "image_id": IMAGE,
        "member_id": MEMBER,
        "status": status,
        "updated_at": stamp,
    }


def service_error(status: int, code: str, detail: Any, request_id: str) -> httpx.Response:
    item = {
        "code": code,
        "title": code,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        "global_request_id": "req-global-" + request_id,
        "links": [],
        "related_resources": [],
        "response": None,
    }
    return httpx.Response(status, json={"errors": [item]})


Answer = httpx.Response | Exception


class Script:
    """A transport that answers from a list, in order, and keeps every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


class Clock:
    """A clock that moves one second each time it is read: each attempt has its own time."""

    def __init__(self) -> None:
        self.now = 1700000000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def slept() -> list[float]:
    return []


def recorded(slept: list[float]) -> Callable[[float], Awaitable[None]]:
    """A retry policy's sleep that waits for nothing and keeps each pause asked for."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return sleep


@pytest.fixture
def make(slept: list[float]) -> Iterator[Any]:
    clients: list[ScpClient] = []

    def build(*answers: Answer, attempts: int = 4, **options: Any) -> tuple[ScpClient, Script]:
        script = Script(*answers)
        client = ScpClient(
            BASE,
            ScpAuth(ACCESS, SECRET, clock=Clock()),
            retry=RetryPolicy(attempts=attempts, sleep=recorded(slept), jitter=lambda: JITTER),
            transport=httpx.MockTransport(script),
            **options,
        )
        clients.append(client)
        return client, script

    yield build
    for client in clients:
        asyncio.run(client.aclose())


# -- retries and Retry-After --------------------------------------------------------------


def test_retry_after_seconds_are_waited_for(make: Any, slept: list[float]) -> None:
    client, script = make(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json=member_json()),
    )

    member = asyncio.run(client.add_member(IMAGE, MEMBER))

    assert member.status == "pending"
    # The jittered backoff (0.5 s * 0.5) is shorter than Retry-After: the server wins.
    assert slept == [3.0]
    assert script.calls == [("POST", MEMBERS_PATH)] * 2


def test_retry_after_as_an_http_date_is_waited_for(make: Any, slept: list[float]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=6), usegmt=True)
    client, _ = make(
        httpx.Response(503, headers={"Retry-After": when}),
        httpx.Response(200, json=member_json()),
    )

    asyncio.run(client.add_member(IMAGE, MEMBER))

    [wait] = slept
    assert 4.0 < wait <= 6.0


def test_retry_after_date_without_a_zone_does_not_crash(make: Any, slept: list[float]) -> None:
    client, _ = make(
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}),
        httpx.Response(200, json=member_json()),
    )

    assert asyncio.run(client.add_member(IMAGE, MEMBER)).status == "pending"
    assert len(slept) == 1


def test_without_retry_after_the_backoff_doubles_with_jitter(make: Any, slept: list[float]) -> None:
    client, script = make(
        httpx.Response(503),
        httpx.Response(429),
        httpx.Response(503),
        httpx.Response(200, json=member_json()),
    )

    asyncio.run(client.add_member(IMAGE, MEMBER))

    # base 0.5 s doubling, each scaled by the injected jitter (0.5)
    assert slept == [0.25, 0.5, 1.0]
    assert len(script.requests) == 4


def test_a_retry_after_longer_than_allowed_is_not_waited_for(make: Any, slept: list[float]) -> None:
    client, script = make(
        httpx.Response(
            429,
            headers={"Retry-After": "120"},
            json={"errors": [{"code": "TooManyRequests", "request_id": "req-429"}]},
        )
    )

    with pytest.raises(errors.CloudUnavailable) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    assert slept == []
    assert len(script.requests) == 1
    assert (caught.value.status, caught.value.request_id) == (429, "req-429")


def test_exhausted_503s_are_unavailable_with_the_last_request_id(
    make: Any, slept: list[float]
) -> None:
    client, script = make(
        *[service_error(503, "ServiceUnavailable", "maintenance", f"req-{n}") for n in (1, 2, 3)],
        attempts=3,
    )

    with pytest.raises(errors.CloudUnavailable) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    error = caught.value
    assert (error.status, error.code, error.request_id) == (503, "ServiceUnavailable", "req-3")
    assert error.detail == "maintenance"
    # What support asks for is in the text that reaches the log.
    assert "request_id=req-3" in str(error) and "status=503" in str(error)
    assert len(script.requests) == 3 and len(slept) == 2


def test_connection_errors_are_retried_then_unavailable(make: Any, slept: list[float]) -> None:
    client, script = make(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        attempts=3,
    )

    with pytest.raises(errors.CloudUnavailable) as caught:
        asyncio.run(client.list_members(IMAGE))

    assert "failed after 3 attempts: ConnectError" in str(caught.value)
    assert len(script.requests) == 3 and slept == [0.25, 0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500])
def test_other_statuses_are_not_retried(make: Any, slept: list[float], status: int) -> None:
    client, script = make(httpx.Response(status))

    with pytest.raises(errors.CloudError):
        asyncio.run(client.add_member(IMAGE, MEMBER))

    assert len(script.requests) == 1 and slept == []


# -- error bodies -------------------------------------------------------------------------


ENVELOPES: list[tuple[str, httpx.Response, type[errors.CloudError], dict[str, Any]]] = [
    (
        "service, request_id",
        service_error(400, "ValidationError", "member_id is not an account", "req-svc"),
        errors.MemberRefused,
        {
            "code": "ValidationError",
            "detail": "member_id is not an account",
            "request_id": "req-svc",
        },
    ),
    (
        "service, detail as a list",
        service_error(
            400,
            "ValidationError",
            ["member_id: String should match pattern", {"loc": ["body"], "msg": "bad"}],
            "req-list",
        ),
        errors.MemberRefused,
        {
            "code": "ValidationError",
            "detail": 'member_id: String should match pattern; {"loc": ["body"], "msg": "bad"}',
            "request_id": "req-list",
        },
    ),
    (
        "service, only a global request id",
        httpx.Response(
            403,
            json={
                "errors": [{"title": "Forbidden", "detail": "public", "global_request_id": "g1"}]
            },
        ),
        errors.ImageNotShareable,
        {"code": "Forbidden", "detail": "public", "request_id": "g1"},
    ),
    (
        "service, unsupported version",
        service_error(400, "UnsupportedApiVersion", "version 1.0 is not served", "req-ver"),
        errors.CloudAuthError,
        {"code": "UnsupportedApiVersion", "request_id": "req-ver"},
    ),
    (
        "gateway",
        httpx.Response(
            401,
            json={
                "status": "UNAUTHORIZED",
                "name": "Request was rejected by gateway",
                "message": "signature does not match",
            },
        ),
        errors.CloudAuthError,
        {"code": "UNAUTHORIZED", "detail": "signature does not match", "request_id": None},
    ),
    (
        "framework, requestId",
        httpx.Response(
            404,
            json={
                "timestamp": "2025-07-22T09:00:00.000+00:00",
                "path": MEMBERS_PATH,
                "status": 404,
                "error": "Not Found",
                "requestId": "req-fw",
            },
        ),
        errors.ImageNotFound,
        {"code": "Not Found", "request_id": "req-fw"},
    ),
    (
        "service 409",
        service_error(409, "Conflict", f"{MEMBER} is already a member (pending)", "req-409"),
        errors.AlreadyMember,
        {"code": "Conflict", "request_id": "req-409"},
    ),
]


@pytest.mark.parametrize(
    ("answer", "kind", "expected"),
    [pytest.param(a, k, e, id=name) for name, a, k, e in ENVELOPES],
)
def test_every_error_envelope_is_read(
    make: Any, answer: httpx.Response, kind: type[errors.CloudError], expected: dict[str, Any]
) -> None:
    client, _ = make(answer)

    with pytest.raises(errors.CloudError) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    error = caught.value
    assert type(error) is kind
    assert error.status == answer.status_code
    assert {key: getattr(error, key) for key in expected} == expected


def test_a_404_on_a_member_path_is_member_not_found(make: Any) -> None:
    client, script = make(service_error(404, "NotFound", "not a member", "req-nf"))

    with pytest.raises(errors.MemberNotFound) as caught:
        asyncio.run(client.show_member(IMAGE, MEMBER))

    assert caught.value.request_id == "req-nf"
    assert script.calls == [("GET", MEMBER_PATH)]


ODD_BODIES = [
    pytest.param(
        b"<html><body><h1>400 Bad Request</h1></body></html>",
        "text/html; charset=utf-8",
        "unreadable body (text/html, 50 bytes)",
        id="proxy html",
    ),
    pytest.param(
        b'{"errors": [{"code": "Validat',
        "application/json",
        "unreadable body (application/json, 29 bytes)",
        id="truncated json",
    ),
    pytest.param(b"", "", "unreadable body (no content type, 0 bytes)", id="empty"),
    pytest.param(b'["odd"]', "application/json", "unexpected JSON body (7 bytes)", id="a list"),
    pytest.param(
        b'{"hello": "world"}',
        "application/json",
        "unexpected JSON body (18 bytes)",
        id="unknown object",
    ),
    pytest.param(b"\xff\xfe\x00", "application/json", "unreadable body", id="not utf-8"),
]


@pytest.mark.parametrize(("body", "content_type", "detail"), ODD_BODIES)
def test_odd_error_bodies_do_not_crash_and_keep_the_header_request_id(
    make: Any, body: bytes, content_type: str, detail: str
) -> None:
    headers = {"X-Request-Id": "req-hdr"}
    if content_type:
        headers["Content-Type"] = content_type
    client, _ = make(httpx.Response(400, content=body, headers=headers))

    with pytest.raises(errors.MemberRefused) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    assert caught.value.status == 400
    assert caught.value.detail is not None and caught.value.detail.startswith(detail)
    assert caught.value.request_id == "req-hdr"


def test_an_unreadable_success_of_a_read_is_unavailable(make: Any) -> None:
    client, _ = make(
        httpx.Response(200, content=b'{"members": [{"created', headers={"X-Request-Id": "r1"}),
    )

    with pytest.raises(errors.CloudUnavailable) as caught:
        asyncio.run(client.list_members(IMAGE))

    assert (caught.value.status, caught.value.request_id) == (200, "r1")
    assert "could not be read" in str(caught.value)


# -- what goes on the wire ------------------------------------------------------------------


def test_each_attempt_carries_its_own_timestamp_and_signature(make: Any) -> None:
    client, script = make(
        httpx.Response(503),
        httpx.Response(503),
        httpx.Response(200, json=member_json()),
    )

    asyncio.run(client.add_member(IMAGE, MEMBER))

    stamps = [r.headers["Scp-Timestamp"] for r in script.requests]
    signatures = [r.headers["Scp-Signature"] for r in script.requests]
    assert len(set(stamps)) == 3 and len(set(signatures)) == 3
    for request in script.requests:
        assert str(request.url) == BASE + MEMBERS_PATH
        assert request.headers["Scp-Signature"] == sign(
            method="POST",
            url=str(request.url),
            timestamp=request.headers["Scp-Timestamp"],
            access_key=ACCESS,
            account_id="",
            secret_key=SECRET,
        )


def test_version_and_language_headers_and_the_body(make: Any) -> None:
    client, script = make(
        httpx.Response(200, json=member_json()),
        httpx.Response(200, json={"members": [member_json()]}),
    )

    asyncio.run(client.add_member(IMAGE, MEMBER))
    asyncio.run(client.list_members(IMAGE, language="ko-KR"))

    post, get = script.requests
    for request in (post, get):
        assert request.headers["Scp-Api-Version"] == "virtualserver 1.1"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Scp-ClientType"] == "Openapi"
        assert request.headers["Scp-Accesskey"] == ACCESS
    assert post.headers["Accept-Language"] == "en-US"
    assert get.headers["Accept-Language"] == "ko-KR"
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.content) == {"member_id": MEMBER}


def test_configured_version_and_language_are_sent(make: Any) -> None:
    client, script = make(
        httpx.Response(200, json=member_json()), api_version="1.3", language="ko-KR"
    )

    asyncio.run(client.add_member(IMAGE, MEMBER))

    [request] = script.requests
    assert request.headers["Scp-Api-Version"] == "virtualserver 1.3"
    assert request.headers["Accept-Language"] == "ko-KR"


def test_a_bad_member_id_never_reaches_the_wire(make: Any) -> None:
    client, script = make()

    with pytest.raises(ValueError):
        asyncio.run(client.add_member(IMAGE, "../../admin"))

    assert script.requests == []


def test_the_version_list_is_an_unsigned_get_on_the_base_url(make: Any) -> None:
    listing = {
        "versions": [
            {"id": "v1.3", "status": "CURRENT"},
            {"id": "v1.1", "status": "DEPRECATED"},
        ]
    }
    client, script = make(httpx.Response(200, json=listing))

    report = asyncio.run(client.version_report())

    [request] = script.requests
    assert (request.method, str(request.url)) == ("GET", BASE + "/")
    assert "Scp-Signature" not in request.headers and "Scp-Accesskey" not in request.headers
    assert not report.ok and report.current == "1.3"
    assert report.problem == (
        "version 1.1 is DEPRECATED; the CURRENT version is 1.3 (set SCP_API_VERSION=1.3)"
    )


def test_timeouts_are_explicit_and_bounded(make: Any) -> None:
    client, _ = make()

    timeout = client._http.timeout
    assert timeout == httpx.Timeout(10.0, connect=5.0)
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)


def test_a_given_timeout_is_used(make: Any) -> None:
    client, _ = make(timeout=httpx.Timeout(2.0, connect=1.0))

    assert client._http.timeout == httpx.Timeout(2.0, connect=1.0)


# -- the add's read-back rules --------------------------------------------------------------


def test_a_cut_success_body_on_add_is_read_back_with_get(make: Any) -> None:
    client, script = make(
        httpx.Response(200, content=b'{"created_at": "2025-07-22T09:00:00Z", "image_'),
        httpx.Response(200, json=member_json(status="pending")),
    )

    member = asyncio.run(client.add_member(IMAGE, MEMBER))

    assert (member.member_id, member.status) == (MEMBER, "pending")
    assert script.calls == [("POST", MEMBERS_PATH), ("GET", MEMBER_PATH)]


def test_409_on_the_first_attempt_is_a_conflict_without_a_read(make: Any) -> None:
    client, script = make(service_error(409, "Conflict", "already a member", "req-409"))

    with pytest.raises(errors.AlreadyMember) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    assert caught.value.request_id == "req-409"
    assert script.calls == [("POST", MEMBERS_PATH)]


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(httpx.ReadTimeout("answer lost"), id="timeout"),
        pytest.param(httpx.RemoteProtocolError("peer closed"), id="reset"),
        pytest.param(httpx.Response(504), id="gateway-504"),
        pytest.param(httpx.Response(502), id="gateway-502"),
    ],
)
def test_an_add_whose_answer_was_lost_is_read_before_it_is_sent_again(make: Any, lost: Any) -> None:
    client, script = make(lost, httpx.Response(200, json=member_json(created=datetime.now(UTC))))

    member = asyncio.run(client.add_member(IMAGE, MEMBER))

    assert member.status == "pending"
    # The member is there, added since this call began: it was this call's add.
    assert script.calls == [("POST", MEMBERS_PATH), ("GET", MEMBER_PATH)]


def test_an_add_whose_answer_was_lost_and_did_not_land_is_sent_again(make: Any) -> None:
    client, script = make(
        httpx.ReadTimeout("answer lost"),
        service_error(404, "NotFound", "not a member", "req-404"),
        httpx.Response(200, json=member_json()),
    )

    assert asyncio.run(client.add_member(IMAGE, MEMBER)).status == "pending"
    assert script.calls == [("POST", MEMBERS_PATH), ("GET", MEMBER_PATH), ("POST", MEMBERS_PATH)]


def test_a_refused_connection_is_tried_again_without_a_read(make: Any) -> None:
    client, script = make(
        httpx.ConnectError("connection refused"), httpx.Response(200, json=member_json())
    )

    assert asyncio.run(client.add_member(IMAGE, MEMBER)).status == "pending"
    assert script.calls == [("POST", MEMBERS_PATH), ("POST", MEMBERS_PATH)]  # nothing had left


def test_409_after_a_retry_finds_our_own_earlier_attempt(make: Any) -> None:
    client, script = make(
        httpx.Response(503),
        service_error(409, "Conflict", "already a member", "req-409"),
        httpx.Response(200, json=member_json(created=datetime.now(UTC))),
    )

    member = asyncio.run(client.add_member(IMAGE, MEMBER))

    assert member.status == "pending"
    assert script.calls == [("POST", MEMBERS_PATH), ("POST", MEMBERS_PATH), ("GET", MEMBER_PATH)]


def test_409_after_a_retry_for_an_old_member_is_a_real_conflict(make: Any) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=3)
    client, script = make(
        httpx.Response(503),
        service_error(409, "Conflict", "already a member", "req-409"),
        httpx.Response(200, json=member_json(created=long_ago, status="accepted")),
    )

    with pytest.raises(errors.AlreadyMember) as caught:
        asyncio.run(client.add_member(IMAGE, MEMBER))

    assert caught.value.request_id == "req-409"
    assert script.calls == [("POST", MEMBERS_PATH), ("POST", MEMBERS_PATH), ("GET", MEMBER_PATH)]


def test_409_after_a_retry_with_the_member_gone_is_a_conflict(make: Any) -> None:
    client, _ = make(
        httpx.Response(503),
        service_error(409, "Conflict", "already a member", "req-409"),
        service_error(404, "NotFound", "not a member", "req-404"),
    )

    with pytest.raises(errors.AlreadyMember):
        asyncio.run(client.add_member(IMAGE, MEMBER))


def test_a_retried_remove_that_finds_nothing_is_done(make: Any) -> None:
    client, script = make(
        httpx.ReadTimeout("answer lost"),
        service_error(404, "NotFound", "not a member", "req-404"),
    )

    asyncio.run(client.remove_member(IMAGE, MEMBER))

    assert script.calls == [("DELETE", MEMBER_PATH)] * 2


def test_a_first_remove_of_a_non_member_is_member_not_found(make: Any) -> None:
    client, _ = make(service_error(404, "NotFound", "not a member", "req-404"))

    with pytest.raises(errors.MemberNotFound):
        asyncio.run(client.remove_member(IMAGE, MEMBER))


# -- in the event loop ----------------------------------------------------------------------


def test_a_call_cancelled_while_it_waits_to_retry_sends_nothing_more() -> None:
    script = Script(httpx.Response(503))  # a second request would fail the test

    async def scenario() -> None:
        waiting = asyncio.Event()

        async def sleep(seconds: float) -> None:
            waiting.set()
            await asyncio.sleep(3600)

        async with ScpClient(
            BASE,
            ScpAuth(ACCESS, SECRET, clock=Clock()),
            retry=RetryPolicy(sleep=sleep),
            transport=httpx.MockTransport(script),
        ) as client:
            call = asyncio.create_task(client.add_member(IMAGE, MEMBER))
            await waiting.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

    asyncio.run(scenario())

    # Stopping the bot cancels what is under way: no retry, no read-back goes out after it.
    assert script.calls == [("POST", MEMBERS_PATH)]


def test_the_bots_hooks_count_each_request_and_each_retry(slept: list[float]) -> None:
    script = Script(httpx.Response(503), httpx.Response(200, json=member_json()))

    def figure(name: str, **labels: str) -> float:
        return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0

    def figures() -> list[float]:
        return [
            figure("share_image_cloud_requests_total", operation="add_member", status="503"),
            figure("share_image_cloud_requests_total", operation="add_member", status="200"),
            figure("share_image_cloud_request_seconds_count", operation="add_member"),
            figure("share_image_cloud_retries_total"),
        ]

    async def scenario() -> None:
        async with ScpClient(
            BASE,
            ScpAuth(ACCESS, SECRET, clock=Clock()),
            retry=RetryPolicy(sleep=metrics.counting_retries(recorded(slept))),
            transport=httpx.MockTransport(script),
            event_hooks=metrics.cloud_event_hooks(),
        ) as client:
            assert (await client.add_member(IMAGE, MEMBER)).status == "pending"

    before = figures()
    asyncio.run(scenario())

    assert [after - was for after, was in zip(figures(), before, strict=True)] == [1, 1, 2, 1]
    assert len(slept) == 1
