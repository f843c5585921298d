"""Image details: the stored list the worker keeps, the read before sharing, and the names
people see on the parent, the thread, the card, `list`, `status` and Home."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.scp import errors
from bot.scp.sandbox import Fault, Sandbox
from bot.sharing.commands import MAX_REASON
from bot.sharing.images import CACHE_SECONDS, ImageCatalog, Verdict, verdict_of
from bot.sharing.values import StoredImage
from bot.slack import views
from storage import Database, Images
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, OTHER_IMAGE, BotHarness, adds, image_reads

UNKNOWN_IMAGE = "99999999-9999-4999-8999-999999999999"
LABEL = f"`rocky9-golden` · Rocky 9.4 · `{IMAGE[:8]}…`"
GiB = 1024**3


def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Wait for `predicate()` to hold (state outside the fakes: the database)."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return found


def name_the_image(sandbox: Sandbox, **details: Any) -> None:
    """Give the fixture's image a name and an OS, as the console would show it."""
    values: dict[str, Any] = {
        "name": "rocky9-golden",
        "os_distro": "rocky",
        "scp_os_version": "9.4",
        "size": 10 * GiB,
        "min_disk": 100,
        "owner_account_name": "platform-team",
        "visibility": "shared",
    }
    sandbox.add_image(IMAGE, **(values | details))


def stored(bot: BotHarness, count: int = 1) -> None:
    until(lambda: bot.services.images.stored.count() >= count, "the image list stored")


def unlisted(bot: BotHarness) -> None:
    """A stored list that does not know the image (made since the last refresh)."""
    bot.services.images.stored.replace([], bot.services.images.stored.now())


def refreshed(bot: BotHarness) -> None:
    """The stored list as the sandbox has it now (as the next periodic refresh would)."""
    assert bot.call(bot.worker.refresh_images())


def home_of(bot: BotHarness, slack: FakeSlack, user: str) -> str:
    event = {
        "token": "fake-verification-token",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": f"Ev{user}{time.monotonic_ns()}",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"},
    }
    assert bot.sender.post(json.dumps(event), content_type="application/json").status_code == 200
    [published] = slack.wait_for(
        lambda: [c for c in slack.calls("views.publish") if c.args["user_id"] == user],
        what="the home tab",
    )
    return json.dumps(published.args["view"], ensure_ascii=False)


# -- the stored list ---------------------------------------------------------------------


def test_the_worker_stores_the_image_list_on_start(
    sandbox: Sandbox, make_bot: Callable[..., BotHarness]
) -> None:
    name_the_image(sandbox)
    sandbox.add_image(OTHER_IMAGE, name="ubuntu22-base", os_distro="ubuntu")

    bot = make_bot()
    stored(bot, 2)

    images = bot.services.images.stored
    row = images.get(IMAGE)
    assert row is not None and (row.name, row.os_distro, row.size) == (
        "rocky9-golden",
        "rocky",
        10 * GiB,
    )
    assert row.owner_account_name == "platform-team"
    assert images.refreshed_at() is not None
    assert next(r.query for r in image_reads(sandbox) if r.path == "/v1/images") == "limit=1000"


def test_a_failed_refresh_is_logged_and_the_next_one_stores_the_list(
    sandbox: Sandbox, make_bot: Callable[..., BotHarness], caplog: pytest.LogCaptureFixture
) -> None:
    name_the_image(sandbox)
    sandbox.inject(Fault.answer(500, method="GET", path="/v1/images"))

    with caplog.at_level(logging.WARNING):
        bot = make_bot(IMAGE_LIST_REFRESH_SECONDS=0.05)
        stored(bot)

    lists = [r for r in image_reads(sandbox) if r.path == "/v1/images"]
    assert [r.status for r in lists[:2]] == [500, 200]
    assert any("cannot refresh the image list" in r.getMessage() for r in caplog.records)


def test_the_refresh_setting_is_read_and_checked() -> None:
    from bot.settings import SettingsError, load_settings

    base = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s3cret",
        "SCP_ENDPOINT": "http://127.0.0.1:1",
        "SCP_ACCESS_KEY": "ak",
        "SCP_SECRET_KEY": "sk",
    }
    assert load_settings(**base).IMAGE_LIST_REFRESH_SECONDS == 300
    assert load_settings(**base, IMAGE_LIST_REFRESH_SECONDS="60").IMAGE_LIST_REFRESH_SECONDS == 60
    with pytest.raises(SettingsError, match="IMAGE_LIST_REFRESH_SECONDS"):
        load_settings(**base, IMAGE_LIST_REFRESH_SECONDS="0")


# -- the read before sharing ---------------------------------------------------------------


def test_a_missing_image_fails_before_any_approver_is_asked(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{UNKNOWN_IMAGE} {MEMBER} QA run", user="UREQ")

    failed = team.wait_state("failed")

    assert failed.error_kind == "image_not_found" and failed.api_status == 404
    [reply] = team.wait_thread(team.parent("C1"))
    assert reply.startswith(f"Image `{UNKNOWN_IMAGE}` wasn't found")
    assert slack.messages("CAPPROVE") == []  # no card, nobody bothered
    assert team.told().card_ts is None
    assert adds(sandbox) == []
    assert [r.path for r in image_reads(sandbox)].count(f"/v1/images/{UNKNOWN_IMAGE}") == 1


def test_a_missing_image_fails_a_direct_share_with_nothing_sent(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    bot.ack_text(f"{UNKNOWN_IMAGE} {MEMBER}")

    failed = bot.wait_state("failed")

    assert failed.error_kind == "image_not_found" and failed.sent_at is None
    parent = bot.parent("C1")
    [update] = bot.slack.updates(parent.ts)
    assert "image not found" in update.args["text"]
    [reply] = bot.wait_thread(parent)
    assert reply.startswith(f"Image `{UNKNOWN_IMAGE}` wasn't found")
    assert adds(sandbox) == []


@pytest.mark.parametrize(
    ("details", "kind", "said"),
    [
        (
            {"visibility": "public"},
            "image_public",
            f"Image {LABEL} is public: every account can use it already, so there is nothing"
            " to share. Nothing was sent to the cloud.",
        ),
        (
            {"status": "queued"},
            "image_not_active",
            f"Image {LABEL} can't be shared yet: its status is `queued`, not `active`. Ask again"
            " once it is active. Nothing was sent to the cloud.",
        ),
    ],
    ids=["public", "not-active"],
)
@pytest.mark.parametrize("user", ["UREQ", "USHARE"], ids=["approval", "direct"])
def test_an_image_that_needs_no_or_cannot_have_sharing_ends_the_request(
    team: BotHarness,
    sandbox: Sandbox,
    slack: FakeSlack,
    details: dict[str, str],
    kind: str,
    said: str,
    user: str,
) -> None:
    name_the_image(sandbox, **details)
    refreshed(team)  # the list shows it so: a direct share reads it too (not shareable)

    team.ack_text(f"{IMAGE} {MEMBER} QA run", user=user)

    failed = team.wait_state("failed")
    assert (failed.error_kind, failed.sent_at) == (kind, None)
    assert team.wait_thread(team.parent("C1")) == [said]
    assert slack.messages("CAPPROVE") == [] and adds(sandbox) == []
    [line] = slack.messages("CNOTIFY")
    assert LABEL in line.args["text"]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.answer(503, method="GET", path=f"/v1/images/{IMAGE}"),
        Fault.answer(500, method="GET", path=f"/v1/images/{IMAGE}"),
        Fault.reset(method="GET", path=f"/v1/images/{IMAGE}"),
    ],
    ids=["503", "500", "reset"],
)
def test_a_failing_read_never_blocks_a_share(
    bot: BotHarness, sandbox: Sandbox, fault: Fault
) -> None:
    unlisted(bot)  # so that the image is read before the add
    sandbox.inject(fault, fault)  # the read is tried twice at most

    bot.ack_text(f"{IMAGE} {MEMBER}")

    assert bot.wait_state("pending").error_kind is None
    assert len(adds(sandbox)) == 1


def test_a_failing_read_leaves_the_approval_to_the_approvers(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    fault = Fault.answer(503, method="GET", path=f"/v1/images/{IMAGE}")
    sandbox.inject(fault, fault)

    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")

    team.wait_state("awaiting_approval")
    [card] = slack.messages("CAPPROVE")
    assert f"`{IMAGE}`" in json.dumps(card.args["blocks"])  # unknown: the bare id
    assert adds(sandbox) == []


def test_an_unshare_is_sent_without_reading_the_image(bot: BotHarness, sandbox: Sandbox) -> None:
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    reads = len([r for r in image_reads(sandbox) if r.path == f"/v1/images/{IMAGE}"])
    bot.services.images.forget()  # a read now would reach the sandbox

    bot.ack_text(f"unshare {IMAGE} {MEMBER} done")

    bot.wait_state("removed", request_id=2)
    assert len([r for r in image_reads(sandbox) if r.path == f"/v1/images/{IMAGE}"]) == reads


# -- what people see -------------------------------------------------------------------------


def test_the_card_names_the_image_with_its_size_visibility_and_owner(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    name_the_image(sandbox, visibility="private")

    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    team.wait_state("awaiting_approval")

    [card] = slack.messages("CAPPROVE")
    blocks = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert f"<@UREQ> asks to share image {LABEL} with `{MEMBER}` (QA account)." in blocks
    assert "Image: 10 GB · private · owner `platform-team`" in blocks
    # Said before the click: approving changes the image too.
    assert (
        "approving also sets this private image to Shared;"
        " Shared images are seen only by their members" in blocks
    )
    parent = team.parent("C1")
    assert LABEL in parent.args["text"] and LABEL in json.dumps(
        parent.args["blocks"], ensure_ascii=False
    )


def test_the_card_names_the_owner_account_when_it_has_no_name(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    name_the_image(sandbox, owner_account_name=None, size=int(2.5 * GiB), visibility="shared")

    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    team.wait_state("awaiting_approval")

    [card] = slack.messages("CAPPROVE")
    owner = sandbox.images()[0].owner
    assert f"Image: 2.5 GB · shared · owner `{owner}`" in json.dumps(
        card.args["blocks"], ensure_ascii=False
    )


def test_the_parent_thread_and_list_name_the_image(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    name_the_image(sandbox)
    refreshed(bot)

    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    sandbox.set_member_status(IMAGE, MEMBER, "accepted")
    parent = bot.parent("C1")
    assert parent.args["text"].startswith(f"<@U1> asked to share image {LABEL} with `{MEMBER}`")

    url = slack.response_url("list")
    assert bot.command(f"list {IMAGE}", response_url=url).status_code == 200
    [listed] = slack.wait_for(lambda: slack.responses("list"), what="the member list")
    assert listed.body["text"].startswith(f"Members of image {LABEL}:")


def test_a_thread_outcome_names_the_image(bot: BotHarness, sandbox: Sandbox) -> None:
    name_the_image(sandbox)
    refreshed(bot)
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")

    sandbox.set_member_status(IMAGE, MEMBER, "accepted")
    bot.clock.advance(seconds=bot.settings.SHARE_STATUS_POLL_SECONDS + 1)
    bot.worker.wake()

    bot.wait_state("accepted")
    replies = bot.wait_thread(bot.parent("C1"), 2)
    assert replies[-1].startswith(f":tada: `{MEMBER}` (QA account) *accepted* image {LABEL}")


def test_status_and_home_name_the_image(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    name_the_image(sandbox)
    refreshed(bot)
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")

    assert f"#1 share {LABEL} → `{MEMBER}`" in bot.ack_text("status")
    assert f"#1 share {LABEL}" in home_of(bot, slack, "U1")


def test_an_image_the_bot_does_not_know_is_shown_by_its_id(bot: BotHarness) -> None:
    stored(bot)  # the fixture's image has no name
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    assert f"#1 share `{IMAGE}` → `{MEMBER}`" in bot.ack_text("status")


# -- the catalog and the renderers, on their own ---------------------------------------------------


class Cloud:
    """Stands in for the client where only the number of reads matters."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def show_image(self, image_id: str, **_: Any) -> Any:
        from bot.scp import Image

        self.reads.append(image_id)
        return Image(id=image_id, name=f"n-{image_id[:4]}", status="active", visibility="shared")


def test_reads_are_cached_briefly_and_the_cache_is_bounded(tmp_path: Any) -> None:
    now = [0.0]
    cloud = Cloud()
    catalog = ImageCatalog(
        Images(Database(tmp_path / "bot.db")),
        cloud,  # type: ignore[arg-type]
        cache_size=2,
        clock=lambda: now[0],
    )

    assert asyncio.run(catalog.check(IMAGE)).verdict is Verdict.SHAREABLE
    assert asyncio.run(catalog.check(IMAGE)).verdict is Verdict.SHAREABLE
    assert cloud.reads == [IMAGE]  # the second check used the first read
    now[0] += CACHE_SECONDS
    asyncio.run(catalog.read(IMAGE))
    assert cloud.reads == [IMAGE, IMAGE]  # too old: read again

    asyncio.run(catalog.read(OTHER_IMAGE))
    asyncio.run(catalog.read(UNKNOWN_IMAGE))  # a third image pushes out the least recently used
    assert catalog.known(IMAGE) is None
    assert catalog.known(UNKNOWN_IMAGE) is not None


def test_a_fresh_list_is_trusted_right_before_an_add_only_when_it_shows_the_image_shareable(
    tmp_path: Any,
) -> None:
    cloud = Cloud()
    stored = Images(Database(tmp_path / "bot.db"))
    catalog = ImageCatalog(stored, cloud, list_fresh=timedelta(minutes=5))  # type: ignore[arg-type]
    private = StoredImage(id=OTHER_IMAGE, status="active", visibility="private")
    stored.replace(
        [StoredImage(id=IMAGE, status="active", visibility="shared"), private], stored.now()
    )

    assert asyncio.run(catalog.check(IMAGE, trust_list=True)).verdict is Verdict.SHAREABLE
    assert cloud.reads == []  # the list's word
    asyncio.run(catalog.check(OTHER_IMAGE, trust_list=True))
    asyncio.run(catalog.check(UNKNOWN_IMAGE, trust_list=True))
    assert cloud.reads == [OTHER_IMAGE, UNKNOWN_IMAGE]  # private, unknown: read
    asyncio.run(catalog.check(IMAGE))  # before approvers are asked: read all the same
    assert cloud.reads == [OTHER_IMAGE, UNKNOWN_IMAGE, IMAGE]

    catalog.forget()
    stored.replace(
        [StoredImage(id=IMAGE, status="active", visibility="shared")],
        stored.now() - timedelta(minutes=10),
    )
    asyncio.run(catalog.check(IMAGE, trust_list=True))  # a stale list is not trusted
    assert cloud.reads[-1] == IMAGE and len(cloud.reads) == 4


class SlowCloud(Cloud):
    """A read that waits until the test lets it answer (or fail)."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def show_image(self, image_id: str, **_: Any) -> Any:
        self.entered.set()
        await self.release.wait()
        if self.fail:
            self.reads.append(image_id)
            raise errors.CloudUnavailable("GET answered 503", status=503)
        return await super().show_image(image_id)


@pytest.mark.parametrize(
    ("fail", "verdict"), [(False, Verdict.SHAREABLE), (True, Verdict.UNREAD)], ids=["ok", "503"]
)
def test_checks_of_one_image_at_once_share_one_read(
    tmp_path: Any, fail: bool, verdict: Verdict
) -> None:
    async def ten_at_once() -> list[Verdict]:
        cloud = SlowCloud(fail)
        catalog = ImageCatalog(Images(Database(tmp_path / "bot.db")), cloud)  # type: ignore[arg-type]
        first = asyncio.create_task(catalog.check(IMAGE))
        await asyncio.wait_for(cloud.entered.wait(), 10)  # under way: the others join it
        others = [asyncio.create_task(catalog.check(IMAGE)) for _ in range(9)]
        await asyncio.sleep(0.01)
        cloud.release.set()
        checks = await asyncio.gather(first, *others)
        assert cloud.reads == [IMAGE]
        return [check.verdict for check in checks]

    assert asyncio.run(ten_at_once()) == [verdict] * 10


def row(**values: Any) -> StoredImage:
    return StoredImage(**({"id": IMAGE} | values))


@pytest.mark.parametrize(
    ("status", "visibility", "verdict"),
    [
        # Only Shared images have members: the share service sets it Shared, or refuses.
        ("active", "private", Verdict.PRIVATE),
        ("ACTIVE", "shared", Verdict.SHAREABLE),
        ("active", "community", Verdict.SHAREABLE),
        (None, None, Verdict.SHAREABLE),  # nothing said: the add call decides
        ("active", "public", Verdict.PUBLIC),
        ("queued", "public", Verdict.PUBLIC),
        ("queued", "private", Verdict.NOT_ACTIVE),
        ("deactivated", "private", Verdict.NOT_ACTIVE),
    ],
)
def test_what_a_read_image_allows(
    status: str | None, visibility: str | None, verdict: Verdict
) -> None:
    assert verdict_of(row(status=status, visibility=visibility)) is verdict


@pytest.mark.parametrize(
    ("image", "label"),
    [
        (None, f"`{IMAGE}`"),
        (row(), f"`{IMAGE}`"),
        (row(name="  "), f"`{IMAGE}`"),
        (row(name="rocky9-golden", os_distro="rocky", scp_os_version="9.4"), LABEL),
        (
            row(name="base", os_distro="oraclelinux", scp_os_version="8"),
            f"`base` · Oracle Linux 8 · `{IMAGE[:8]}…`",
        ),
        (row(name="odd", os_distro="plan9"), f"`odd` · plan9 · `{IMAGE[:8]}…`"),
        (row(name="bare"), f"`bare` · `{IMAGE[:8]}…`"),
        (
            row(name="<!channel> `x`", os_distro="<b>"),
            f"`&lt;!channel&gt; 'x'` · &lt;b&gt; · `{IMAGE[:8]}…`",
        ),
    ],
)
def test_an_image_label(image: StoredImage | None, label: str) -> None:
    assert views.image_label(IMAGE, image) == label


@pytest.mark.parametrize(
    ("size", "shown"), [(10 * GiB, "10"), (int(2.5 * GiB), "2.5"), (1, "0.1"), (0, "0")]
)
def test_sizes_in_gb(size: int, shown: str) -> None:
    assert views.size_gb(size) == shown


def test_a_long_name_keeps_the_card_within_slacks_limits(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    name_the_image(sandbox, name="n" * 255, os_distro="d" * 255, scp_os_version="9" * 100)

    team.ack_text(f"{IMAGE} {MEMBER} {'r' * MAX_REASON}", user="UREQ")
    team.wait_state("awaiting_approval")

    [card] = slack.messages("CAPPROVE")  # the fake Slack checked it like Slack does
    assert "n" * 79 + "…" in json.dumps(card.args["blocks"], ensure_ascii=False)


def test_the_stored_row_of_an_image_keeps_its_times(tmp_path: Any) -> None:
    from bot.scp import Image
    from bot.sharing.images import image_row

    image = Image.model_validate(
        {
            "id": IMAGE,
            "created_at": "2024-06-16 02:55:13+00:00",
            "updated_at": "2025-07-22T09:00:00Z",
        }
    )
    stored_row = image_row(image)
    assert stored_row.created_at == "2024-06-16T02:55:13.000000Z"
    assert stored_row.updated_at == "2025-07-22T09:00:00.000000Z"
    assert datetime.fromisoformat(stored_row.created_at).tzinfo == UTC
