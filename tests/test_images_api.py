"""The image operations: the client's paging and cap, both timestamp forms, the sandbox.

The client is asynchronous: each test runs it in one event loop of its own (`run`); its
connections belong to that loop and are closed in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from bot.scp import Image, RetryPolicy, ScpAuth, ScpClient, errors
from bot.scp.sandbox import DEFAULT_IMAGES, Fault, Sandbox, load_images

ACCESS = "AK-test-0123456789"
SECRET = "SK-test-very-secret-value"
ACCOUNT = "0f0e0d0c0b0a49388776655443322110"
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
UNKNOWN_IMAGE = "99999999-9999-4999-8999-999999999999"
ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 1, tzinfo=UTC)

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run() -> Iterator[Run]:
    """Runs a coroutine to its end in this test's event loop."""
    with asyncio.Runner() as runner:
        yield runner.run


def image_id(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(ACCESS, SECRET, ACCOUNT) as server:
        server.add_image(
            IMAGE,
            name="rocky9-golden",
            os_distro="rocky",
            scp_os_version="9.4",
            size=10 * 1024**3,
            min_disk=100,
            owner_account_name="platform-team",
            created_at=datetime(2024, 6, 16, 2, 55, 13, tzinfo=UTC),
        )
        yield server


@pytest.fixture
def client(run: Run, sandbox: Sandbox) -> Iterator[ScpClient]:
    made = ScpClient(sandbox.url, ScpAuth(ACCESS, SECRET, ACCOUNT), retry=RetryPolicy(attempts=1))
    yield made
    run(made.aclose())


@pytest.fixture
def raw(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """Signed httpx for requests the typed client would never send."""
    headers = {"Scp-Api-Version": "virtualserver 1.1"}
    auth = ScpAuth(ACCESS, SECRET, ACCOUNT)
    with httpx.Client(base_url=sandbox.url, auth=auth, headers=headers, timeout=5) as http:
        yield http


def many(sandbox: Sandbox, count: int) -> None:
    for number in range(count):
        sandbox.add_image(
            image_id(number + 1),
            name=f"img-{number:05}",
            created_at=START + timedelta(minutes=number),
        )


def list_calls(sandbox: Sandbox) -> list[dict[str, str]]:
    """The query of each list call the sandbox received."""
    return [
        {k: v[0] for k, v in parse_qs(r.query).items()}
        for r in sandbox.records
        if r.path == "/v1/images"
    ]


# -- the models ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-06-16 02:55:13+00:00",  # SCP's OpenAPI description
        "2024-06-16T02:55:13Z",  # the operation's own example
        "2024-06-16T11:55:13+09:00",
        "2024-06-16 02:55:13",  # no offset: taken as UTC
    ],
)
def test_both_timestamp_forms_read_as_the_same_moment(stamp: str) -> None:
    image = Image.model_validate_json(
        json.dumps({"id": IMAGE, "created_at": stamp, "updated_at": stamp, "extra": [1]})
    )
    assert image.created_at == image.updated_at == datetime(2024, 6, 16, 2, 55, 13, tzinfo=UTC)


def test_an_unreadable_timestamp_is_refused() -> None:
    with pytest.raises(ValueError):
        Image.model_validate({"id": IMAGE, "created_at": "yesterday"})


# -- show ------------------------------------------------------------------------------


def test_show_image_reads_the_fields_the_bot_uses(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    image = run(client.show_image(IMAGE))

    assert (image.name, image.os_distro, image.scp_os_version) == ("rocky9-golden", "rocky", "9.4")
    assert (image.status, image.visibility) == ("active", "private")
    assert (image.size, image.min_disk) == (10 * 1024**3, 100)
    assert (image.owner, image.owner_account_name) == (ACCOUNT, "platform-team")
    assert image.created_at == datetime(2024, 6, 16, 2, 55, 13, tzinfo=UTC)
    [record] = sandbox.records
    assert (record.method, record.path, record.status, record.signed) == (
        "GET",
        f"/v1/images/{IMAGE}",
        200,
        True,
    )


def test_the_sandbox_answers_the_space_form_and_the_required_fields(raw: httpx.Client) -> None:
    body = raw.get(f"/v1/images/{IMAGE}").json()
    assert body["created_at"] == "2024-06-16 02:55:13+00:00"
    assert {"min_ram", "disk_format", "container_format", "os_hidden", "protected"} <= set(body)


def test_an_unknown_image_is_a_not_found_cloud_error(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    with pytest.raises(errors.ImageNotFound) as caught:
        run(client.show_image(UNKNOWN_IMAGE))

    assert isinstance(caught.value, errors.CloudError)
    assert caught.value.status == 404 and caught.value.kind == "image_not_found"
    assert caught.value.request_id == sandbox.records[-1].request_id


def test_image_calls_carry_the_api_version(run: Run, sandbox: Sandbox) -> None:
    old = ScpClient(
        sandbox.url,
        ScpAuth(ACCESS, SECRET, ACCOUNT),
        api_version="0.9",
        retry=RetryPolicy(attempts=1),
    )
    try:
        with pytest.raises(errors.CloudAuthError) as shown:
            run(old.show_image(IMAGE))
        with pytest.raises(errors.CloudAuthError) as listed:
            run(old.list_images())
    finally:
        run(old.aclose())
    assert shown.value.code == listed.value.code == "UnsupportedApiVersion"


def test_an_unsigned_image_read_is_refused_by_the_gateway(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=5) as http:
        answer = http.get(f"/v1/images/{IMAGE}", headers={"Scp-Api-Version": "virtualserver 1.1"})
    assert answer.status_code == 401 and answer.json()["status"] == "UNAUTHORIZED"


def test_only_get_is_served_on_images(raw: httpx.Client) -> None:
    assert raw.delete(f"/v1/images/{IMAGE}").status_code == 405
    assert raw.post("/v1/images", json={}).status_code == 405


def test_an_open_sandbox_makes_up_an_active_image_on_first_read(run: Run) -> None:
    with Sandbox(ACCESS, SECRET, ACCOUNT, open_images=True) as server:
        client = ScpClient(server.url, ScpAuth(ACCESS, SECRET, ACCOUNT))
        try:
            image = run(client.show_image(UNKNOWN_IMAGE))
        finally:
            run(client.aclose())
    assert (image.id, image.name, image.status, image.visibility) == (
        UNKNOWN_IMAGE,
        "",  # nameless, as a string: the description requires one
        "active",
        "private",
    )


# -- list --------------------------------------------------------------------------------


def test_list_reads_every_page_by_marker(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    many(sandbox, 2_499)  # and the one of the fixture: 2,500

    images = run(client.list_images())

    assert len(images) == len({i.id for i in images}) == 2_500
    assert images[0].name == "img-02498"  # newest first, the service's default order
    calls = list_calls(sandbox)
    assert [c["limit"] for c in calls] == ["1000"] * 4
    assert [c.get("marker") for c in calls] == [
        None,
        images[999].id,
        images[1999].id,
        images[2499].id,
    ]


def test_list_stops_at_ten_thousand_images(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    many(sandbox, 10_050)

    images = run(client.list_images())

    assert len(images) == 10_000
    calls = list_calls(sandbox)
    assert len(calls) == 10  # no eleventh page is asked for
    assert images[-1].name == "img-00050"


def test_the_last_page_asks_only_for_what_is_missing(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    many(sandbox, 300)

    images = run(client.list_images(page_size=100, max_images=250))

    assert len(images) == 250
    assert [c["limit"] for c in list_calls(sandbox)] == ["100", "100", "50"]


def test_pages_come_one_at_a_time_as_each_is_read(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    many(sandbox, 249)  # and the one of the fixture: 250

    async def the_rest(pages: AsyncIterator[list[Image]]) -> list[list[Image]]:
        return [page async for page in pages]

    pages = client.image_pages(page_size=100)
    first = run(anext(pages))

    assert len(first) == 100
    assert len(list_calls(sandbox)) == 1  # the next page is not read before it is wanted
    assert [len(page) for page in run(the_rest(pages))] == [100, 50]
    assert [c.get("limit") for c in list_calls(sandbox)] == ["100"] * 4  # the last one empty


def test_list_passes_its_filters(run: Run, sandbox: Sandbox, client: ScpClient) -> None:
    sandbox.add_image(image_id(1), name="ubuntu", os_distro="ubuntu", visibility="public")
    sandbox.add_image(image_id(2), name="queued", os_distro="rocky", status="queued")

    assert [i.name for i in run(client.list_images(visibility="public"))] == ["ubuntu"]
    assert [i.name for i in run(client.list_images(os_distro="rocky", status="queued"))] == [
        "queued"
    ]
    assert [i.name for i in run(client.list_images(name="rocky9-golden"))] == ["rocky9-golden"]
    names = [i.name for i in run(client.list_images(sort="name:asc"))]
    assert names == ["queued", "rocky9-golden", "ubuntu"]
    assert list_calls(sandbox)[0] == {"visibility": "public", "limit": "1000"}


def test_query_parameters_are_sent_and_signed_sorted_by_name(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    many(sandbox, 3)
    found = run(
        client.list_images(visibility="private", status="active", sort="name:asc", page_size=2)
    )

    assert [i.name for i in found] == ["img-00000", "img-00001", "img-00002", "rocky9-golden"]
    queries = [r.query for r in sandbox.records if r.path == "/v1/images"]
    # As the official SDK sends them: the order the signature covers is the order sent.
    assert queries[0] == "limit=2&sort=name%3Aasc&status=active&visibility=private"
    for query in queries:
        names = [pair.partition("=")[0] for pair in query.split("&")]
        assert names == sorted(names)
    assert "marker=" in queries[1]
    assert all(r.signed and r.status == 200 for r in sandbox.records)


@pytest.mark.parametrize(("page_size", "max_images"), [(0, 10), (1001, 10), (10, 0), (10, 10_001)])
def test_the_client_refuses_limits_outside_the_service(
    run: Run, sandbox: Sandbox, client: ScpClient, page_size: int, max_images: int
) -> None:
    with pytest.raises(ValueError):
        run(client.list_images(page_size=page_size, max_images=max_images))
    assert sandbox.records == []


def test_a_list_that_does_not_move_on_is_an_error(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    page = json.dumps({"images": [{"id": IMAGE, "name": "again"}]})
    sandbox.inject(*[Fault.answer(200, page, method="GET", path="/v1/images") for _ in range(2)])

    with pytest.raises(errors.CloudUnavailable, match="the same images again"):
        run(client.list_images())
    assert len(list_calls(sandbox)) == 2


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("limit=0", "limit must be"),
        ("limit=1001", "limit must be"),
        ("limit=-1", "limit must be"),
        ("limit=ten", "limit must be"),
        ("limit=", "limit must be"),
        (f"marker={UNKNOWN_IMAGE}", "is not an image of this list"),
        ("marker=not-an-id", "is not an image of this list"),
        ("visibility=everyone", "visibility must be"),
        ("sort=colour:desc", "sort must be"),
        ("sort=name:sideways", "sort must be"),
        ("owner=me", "unknown query parameter"),
        ("limit=5&limit=6", "more than once"),
    ],
)
def test_the_sandbox_refuses_what_the_service_refuses(
    raw: httpx.Client, query: str, detail: str
) -> None:
    answer = raw.get(f"/v1/images?{query}")

    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["code"] == "ValidationError" and detail in error["detail"]


def test_a_marker_outside_the_filtered_list_is_refused(raw: httpx.Client) -> None:
    answer = raw.get("/v1/images", params={"visibility": "public", "marker": IMAGE})
    assert answer.status_code == 400


def test_without_a_limit_the_sandbox_answers_a_short_page(
    sandbox: Sandbox, raw: httpx.Client
) -> None:
    many(sandbox, 30)
    assert len(raw.get("/v1/images").json()["images"]) == 20


# -- seeding the sandbox ---------------------------------------------------------------


def test_the_default_images_cover_each_kind_the_bot_treats_apart() -> None:
    kinds = {(i.visibility, i.status) for i in DEFAULT_IMAGES}
    assert {("private", "active"), ("public", "active"), ("private", "queued")} <= kinds
    assert all(i.name and i.os_distro and i.scp_os_version for i in DEFAULT_IMAGES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[", "not JSON"),
        ("[]", "with one at least"),
        ('{"images": [1]}', "image 1 is not an object"),
        ('[{"name": "x"}]', "image 1: id"),
        ('[{"id": "not-a-uuid", "name": "x"}]', "image 1: "),
        (f'[{{"id": "{IMAGE}"}}]', "has no name"),
        (f'[{{"id": "{IMAGE}", "name": "x", "visibility": "all"}}]', "visibility must be"),
        (
            f'[{{"id": "{IMAGE}", "name": "x"}}, {{"id": "{IMAGE}", "name": "y"}}]',
            "listed twice",
        ),
    ],
)
def test_a_bad_image_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_images(text)


def _sandbox_command(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCP_")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", *args],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def listed(url: str) -> list[Image]:
    """The images of the sandbox at `url`, by name, with the keys it prints by default."""
    auth = ScpAuth("sandbox-access-key", "sandbox-secret-key")
    async with ScpClient(url, auth) as client:
        return await client.list_images(sort="name:asc")


def _served(tmp_path: Path, *args: str) -> tuple[list[str], list[Image]]:
    """What `python -m bot sandbox ARGS` printed before it was ready, and the images it lists."""
    process = _sandbox_command(tmp_path, *args)
    assert process.stdout is not None
    try:
        printed: list[str] = []
        while not printed or not printed[-1].startswith("SCP sandbox ready"):
            line = process.stdout.readline()
            assert line, (printed, process.wait(10), process.stderr and process.stderr.read())
            printed.append(line.rstrip("\n"))
        url = printed[-1].split("SCP_ENDPOINT=")[1].split()[0]
        return printed, asyncio.run(listed(url))
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_the_sandbox_command_serves_its_default_images(tmp_path: Path) -> None:
    printed, images = _served(tmp_path)

    assert sorted(i.id for i in images) == sorted(i.id for i in DEFAULT_IMAGES)
    assert (
        printed[1] == f"Images ({len(DEFAULT_IMAGES)}; any other image id is made up on first use):"
    )
    assert any("rocky9-golden  rocky 9.4  active, private" in line for line in printed)


def test_the_sandbox_command_serves_the_images_of_a_file(tmp_path: Path) -> None:
    seeded = {"id": IMAGE, "name": "from-file", "os_distro": "ubuntu", "scp_os_version": "24.04"}
    (tmp_path / "images.json").write_text(json.dumps({"images": [seeded]}))

    _, images = _served(tmp_path, "--images", "images.json")

    [image] = images
    assert (image.id, image.name, image.os_distro, image.status) == (
        IMAGE,
        "from-file",
        "ubuntu",
        "active",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "argument --images: there is no file images.json"),
        ("[{}]", "argument --images: images.json: image 1: id"),
    ],
)
def test_a_bad_images_option_is_a_usage_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "images.json").write_text(content)
    process = _sandbox_command(tmp_path, "--images", "images.json")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 2 and out == ""
    assert message in err and "Traceback" not in err


# -- what the description requires, and the images waiting for this account ----------------


def test_a_nameless_image_is_served_with_strings_where_the_description_requires_them(
    sandbox: Sandbox, raw: httpx.Client
) -> None:
    sandbox.add_image(image_id(1))  # registered with no name and no owner's name
    shown = raw.get(f"/v1/images/{image_id(1)}").json()
    listed = {i["id"]: i for i in raw.get("/v1/images").json()["images"]}[image_id(1)]
    made_up = raw.get(f"/v1/images/{UNKNOWN_IMAGE}")  # not served: a closed sandbox

    for body in (shown, listed):
        assert body["name"] == "" and body["owner_account_name"] == ""
        assert body["owner"] == ACCOUNT
    assert made_up.status_code == 404
    named = raw.get(f"/v1/images/{IMAGE}").json()
    assert (named["name"], named["owner_account_name"]) == ("rocky9-golden", "platform-team")


def test_pending_images_lists_the_images_waiting_for_this_accounts_answer(
    sandbox: Sandbox, raw: httpx.Client
) -> None:
    for number in (1, 2, 3):
        sandbox.add_image(image_id(number), name=f"img-{number}", visibility="shared")
    for number in (1, 2):
        assert raw.post(
            f"/v1/images/{image_id(number)}/members", json={"member_id": ACCOUNT}
        ).is_success
    raw.post(f"/v1/images/{image_id(3)}/members", json={"member_id": "other-account"})
    sandbox.set_member_status(image_id(2), ACCOUNT, "accepted")

    answer = raw.get("/v1/pending-images")

    assert answer.status_code == 200
    [waiting] = answer.json()["images"]
    assert (waiting["id"], waiting["name"], waiting["visibility"]) == (
        image_id(1),
        "img-1",
        "shared",
    )
    assert {"created_at", "owner", "min_disk", "disk_format", "os_hidden"} <= set(waiting)
    sandbox.set_member_status(image_id(1), ACCOUNT, "rejected")
    assert raw.get("/v1/pending-images").json() == {"images": []}
    assert raw.delete("/v1/pending-images").status_code == 405
    record = next(r for r in sandbox.records if r.path == "/v1/pending-images")
    assert record.signed and record.status == 200


def test_pending_images_is_signed_like_every_other_operation(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=5) as unsigned:
        answer = unsigned.get("/v1/pending-images")
    assert answer.status_code == 401
    assert sandbox.records[-1].signed is False
