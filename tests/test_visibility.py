"""Shared visibility, and access from the first moment, against the sandbox as it comes.

Only a Shared image has members (SCP's console guide, Glance's rule): the sandbox's
default images include private ones, as a new account's do. With `SHARE_MAKE_SHARED=auto`
the bot sets a private image Shared before the add, says so, and sets it private again
once the last member it added is gone; with `never` it refuses before anything is sent.
A member can use the image as soon as it is added: `rejected` only keeps it out of the
member's own list, so a rejected share still has to be removed. After every removal the
member list is read back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.scp import RetryPolicy, ScpAuth, ScpClient, errors
from bot.scp.sandbox import DEFAULT_IMAGES, Fault, Record, Sandbox
from bot.sharing.values import Role
from bot.sharing.worker import RESTART_GRACE
from tests.fakes.slack import Call, FakeSlack
from tests.harness import ACCESS_KEY, MEMBER, SECRET_KEY, BotHarness, adds

# The sandbox's own default images: rocky9-golden is private, win2022-std Shared.
PRIVATE = "70a599e0-31e7-49b7-b260-868f441e862b"
PRIVATE_LABEL = "`rocky9-golden` · Rocky 9.4 · `70a599e0…`"
SHARED_IMAGE = "c3d4e5f6-a7b8-4c9d-8e0f-112233445566"
OTHER_MEMBER = "b7e20000aaaa4bbb8ccc0123456789ab"
NAMED = "(QA account)"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox as `python -m bot sandbox` serves it: its default images, any other id
    made up (private) on first use."""
    with Sandbox(ACCESS_KEY, SECRET_KEY, open_images=True).start() as running:
        for image in DEFAULT_IMAGES:
            running.seed_image(image)
        yield running


@pytest.fixture
def team(make_bot: Callable[..., BotHarness]) -> BotHarness:
    bot = make_bot(SHARE_NOTIFY_CHANNEL="CNOTIFY")
    _people(bot)
    return bot


def _people(bot: BotHarness) -> None:
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("USHARE", Role.SHARER)
    bot.grant("UAPP1", Role.APPROVER)
    bot.grant("UADMIN", Role.ADMIN)
    bot.services.members.add(MEMBER, "QA account", by="test")
    bot.services.members.add(OTHER_MEMBER, "Build account", by="test")


def visibility(sandbox: Sandbox, image_id: str) -> str | None:
    return next(i.visibility for i in sandbox.images() if i.id == image_id)


def image_changes(sandbox: Sandbox, image_id: str) -> list[Record]:
    return [r for r in sandbox.records if r.method == "PUT" and r.path == f"/v1/images/{image_id}"]


def removes(sandbox: Sandbox) -> list[Record]:
    return [r for r in sandbox.records if r.method == "DELETE"]


def pass_time(bot: BotHarness, **delta: float) -> None:
    bot.clock.advance(**delta)
    bot.worker.wake()


def notify_lines(slack: FakeSlack) -> list[str]:
    return [str(m.args["text"]) for m in slack.messages("CNOTIFY")]


def parents(bot: BotHarness, slack: FakeSlack, count: int) -> list[Call]:
    """The first `count` parent messages in C1, waited for."""
    return slack.wait_for(
        lambda: (
            found
            if len(found := [m for m in slack.messages("C1") if not m.args.get("thread_ts")])
            >= count
            else None
        ),
        what=f"{count} parent messages",
    )


def parent_blocks(slack: FakeSlack, parent: Call) -> str:
    return json.dumps(slack.updates(parent.ts)[-1].args["blocks"], ensure_ascii=False)


# -- a private image, shared ------------------------------------------------------------------


def test_a_sharer_shares_a_private_default_image_which_the_bot_makes_shared(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    assert visibility(sandbox, PRIVATE) == "private"

    team.ack_text(f"{PRIVATE} {MEMBER} QA run", user="USHARE")
    shared = team.wait_state("pending")

    # The image first, then the member: never an add the cloud must refuse.
    calls = [(r.method, r.path, r.status, r.signed) for r in sandbox.records if r.path != "/"]
    changed = calls.index(("PUT", f"/v1/images/{PRIVATE}", 200, True))
    added = calls.index(("POST", f"/v1/images/{PRIVATE}/members", 200, True))
    assert changed < added and len(adds(sandbox)) == 1
    assert len(image_changes(sandbox, PRIVATE)) == 1
    assert visibility(sandbox, PRIVATE) == "shared"
    assert [m.member_id for m in sandbox.members(PRIVATE)] == [MEMBER]

    assert shared.made_shared_at is not None and shared.made_private_at is None
    assert team.services.images.stored.made_shared(PRIVATE) == shared.id
    parent = team.parent("C1")
    [reply] = team.wait_thread(parent, 1)
    assert reply.startswith(f"Shared: `{MEMBER}` {NAMED} can use the image now. It is *pending*")
    assert (
        f"Image {PRIVATE_LABEL} was private, so I set it to Shared first: only Shared images"
        " can have members, and a Shared image is seen only by its members." in reply
    )
    assert "I made it Shared so it can have members" in parent_blocks(slack, parent)
    [line] = notify_lines(slack)
    assert "shared: the account can use it now" in line
    assert "made the image Shared so it can have members" in line


def test_with_make_shared_never_a_private_image_fails_before_anything_is_sent(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make_bot(SHARE_MAKE_SHARED="never", SHARE_NOTIFY_CHANNEL="CNOTIFY")
    _people(bot)

    bot.ack_text(f"{PRIVATE} {MEMBER} QA run", user="USHARE")  # a sharer: no approval
    bot.ack_text(f"{PRIVATE} {OTHER_MEMBER} QA run", user="UREQ")  # a requester: approval
    first = bot.wait_state("failed", 1)
    second = bot.wait_state("failed", 2)

    assert first.error_kind == second.error_kind == "image_private"
    # Nothing sent but reads: no change of the image, no add, and no approver asked.
    assert {r.method for r in sandbox.records} == {"GET"}
    assert adds(sandbox) == [] and visibility(sandbox, PRIVATE) == "private"
    assert slack.messages("CAPPROVE") == []
    parent = parents(bot, slack, 2)[0]
    [reply] = bot.wait_thread(parent, 1)
    assert reply.startswith(
        f"Image {PRIVATE_LABEL} is private, and only Shared images can have members,"
        " so nothing was sent and no approver was asked."
    )
    assert "SCP console (the image's details → Visibility → Shared)" in reply
    assert "`SHARE_MAKE_SHARED` is `never`" in reply and "<@UADMIN>" in reply
    assert "private image: only Shared images can have members" in parent_blocks(slack, parent)


def test_the_approval_card_says_approving_makes_the_image_shared_before_the_click(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{PRIVATE} {MEMBER} QA run", user="UREQ")
    team.wait_state("awaiting_approval")
    [card] = slack.messages("CAPPROVE")
    blocks = json.dumps(card.args["blocks"], ensure_ascii=False)

    assert (
        "approving also sets this private image to Shared;"
        " Shared images are seen only by their members" in blocks
    )
    assert image_changes(sandbox, PRIVATE) == [] and visibility(sandbox, PRIVATE) == "private"

    team.sender.click(card, "approve", user_id="UAPP1")
    shared = team.wait_state("pending")
    assert shared.made_shared_at is not None
    assert visibility(sandbox, PRIVATE) == "shared" and len(adds(sandbox)) == 1


def test_a_shared_image_is_shared_as_it_is(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{SHARED_IMAGE} {MEMBER} --for 1m QA run", user="USHARE")
    shared = team.wait_state("pending")
    assert shared.made_shared_at is None
    [card_free_reply] = team.wait_thread(team.parent("C1"), 1)
    assert "set it to Shared" not in card_free_reply

    pass_time(team, minutes=2)
    removed = team.wait_state("removed")
    # The bot did not make it Shared: it leaves it as it found it.
    assert removed.made_private_at is None
    assert image_changes(sandbox, SHARED_IMAGE) == []
    assert visibility(sandbox, SHARED_IMAGE) == "shared"


# -- a refusal that means "not shared" --------------------------------------------------------


@pytest.mark.parametrize("refusal", [None, 400, 409], ids=["403", "400", "409"])
def test_an_add_refused_because_the_image_turned_private_says_so(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, refusal: int | None
) -> None:
    # The bot read the image Shared a moment ago; then someone made it private.
    assert team.call(team.services.images.read(SHARED_IMAGE)).visibility == "shared"
    sandbox.set_visibility(SHARED_IMAGE, "private")
    if refusal is not None:  # the status SCP would use is not published: any of these
        sandbox.inject(Fault.answer(refusal, method="POST", path=SHARED_IMAGE))
    before = len(sandbox.records)

    team.ack_text(f"{SHARED_IMAGE} {MEMBER} QA run", user="USHARE")
    failed = team.wait_state("failed")

    after = [(r.method, r.path) for r in sandbox.records[before:]]
    reads = [call for call in after if call == ("GET", f"/v1/images/{SHARED_IMAGE}")]
    assert len(reads) == 1  # one read after the refusal decides
    assert after.index(reads[0]) > after.index(("POST", f"/v1/images/{SHARED_IMAGE}/members"))
    assert failed.error_kind == "image_not_shared"
    assert sandbox.members(SHARED_IMAGE) == [] and image_changes(sandbox, SHARED_IMAGE) == []
    [reply] = team.wait_thread(team.parent("C1"), 1)
    assert reply.startswith(f"The cloud refused to add `{MEMBER}` {NAMED} to image `win2022-std`")
    assert "the image reads *private* now: only Shared images can have members" in reply


# -- rejected still has access ----------------------------------------------------------------


def test_a_timed_share_whose_member_rejected_is_removed_and_the_image_private_again(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{PRIVATE} {MEMBER} --for 1h QA run", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")
    sandbox.set_member_status(PRIVATE, MEMBER, "rejected")

    pass_time(team, seconds=301)
    team.wait_state("rejected")
    reply = team.wait_thread(parent, 2)[-1]
    assert "it declined to list it, but it still has access until removed" in reply
    assert visibility(sandbox, PRIVATE) == "shared"

    pass_time(team, hours=1)
    removed = team.wait_state("removed")

    assert sandbox.members(PRIVATE) == [] and len(removes(sandbox)) == 1
    listed = [r for r in sandbox.records if r.path == f"/v1/images/{PRIVATE}/members"]
    assert (listed[-1].method, listed[-1].status) == ("GET", 200)  # read back: gone
    # The bot made it Shared and nobody is left: private again, as it was found.
    assert visibility(sandbox, PRIVATE) == "private"
    assert len(image_changes(sandbox, PRIVATE)) == 2
    assert removed.made_private_at is not None
    assert team.services.images.stored.made_shared(PRIVATE) is None
    last = team.thread_texts(parent)[-1]
    assert last == (
        f"Removed `{MEMBER}` {NAMED} from image {PRIVATE_LABEL} as asked: its `1h` are up."
        f" Nobody else is a member of image {PRIVATE_LABEL} now, so I set it back to private,"
        " as it was before I made it Shared."
    )
    assert "the image is private again" in notify_lines(slack)[-1]


def test_an_open_ended_share_whose_member_rejected_offers_remove_now(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{PRIVATE} {MEMBER} QA run", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")
    sandbox.set_member_status(PRIVATE, MEMBER, "rejected")

    pass_time(team, seconds=301)
    team.wait_state("rejected")
    line = slack.wait_for(
        lambda: next(
            (m for m in slack.messages() if m.ts and m.ts == team.told().reminder_ts), None
        ),
        what="the rejected line",
    )
    assert line.args["thread_ts"] == parent.ts
    assert "it still has access until removed" in line.args["text"]
    assert "remove it now if that account no longer needs it" in line.args["text"]
    [button] = [e for b in line.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["text"]["text"]) == ("share_remove_now", "Remove now")

    # The reminder's rules: only the asker or an admin.
    refused = team.sender.click(line, "share_remove_now", user_id="UREQ")
    assert refused.status_code == 200
    time.sleep(0.2)
    assert removes(sandbox) == [] and team.request().state == "rejected"

    team.sender.click(line, "share_remove_now", user_id="USHARE")
    removed = team.wait_state("removed")
    assert removed.removed_by == "USHARE" and sandbox.members(PRIVATE) == []
    assert visibility(sandbox, PRIVATE) == "private"
    assert "early, as <@USHARE> asked" in team.thread_texts(parent)[-1]


def test_the_image_stays_shared_while_another_member_remains(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{PRIVATE} {MEMBER} --for 1m QA run", user="USHARE")
    team.wait_state("pending", 1)
    team.ack_text(f"{PRIVATE} {OTHER_MEMBER} QA run", user="USHARE")
    second = team.wait_state("pending", 2)
    assert second.made_shared_at is None  # Shared already: by the first request

    pass_time(team, minutes=2)
    removed = team.wait_state("removed", 1)

    assert [m.member_id for m in sandbox.members(PRIVATE)] == [OTHER_MEMBER]
    assert visibility(sandbox, PRIVATE) == "shared" and removed.made_private_at is None
    assert len(image_changes(sandbox, PRIVATE)) == 1

    team.ack_text(f"unshare {PRIVATE} {OTHER_MEMBER} done", user="USHARE")
    unshared = team.wait_state("removed", 3)
    # The last member the bot added is gone: the image goes back to private.
    assert unshared.made_private_at is not None and visibility(sandbox, PRIVATE) == "private"
    assert team.services.images.stored.made_shared(PRIVATE) is None
    assert team.thread_texts(parents(team, slack, 3)[2])[-1] == (
        f"Removed `{OTHER_MEMBER}` (Build account) from image {PRIVATE_LABEL}."
        f" Nobody else is a member of image {PRIVATE_LABEL} now, so I set it back to private,"
        " as it was before I made it Shared."
    )


# -- the member list read back after a removal ------------------------------------------------


def test_a_member_still_listed_after_the_remove_is_not_removed_and_is_tried_again(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{SHARED_IMAGE} {MEMBER} --for 1m QA run", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")
    # The remove answers 204, yet the member stays (as one spelling's remove left another).
    sandbox.inject(Fault.answer(204, b"", content_type="", method="DELETE"))

    pass_time(team, minutes=2)
    said = slack.wait_for(
        lambda: [t for t in team.thread_texts(parent) if "still shows" in t], what="the line"
    )
    assert said == [
        f"I asked the cloud to remove `{MEMBER}` {NAMED} from image `win2022-std` · Windows 2022"
        f" · `c3d4e5f6…`, but its member list still shows `{MEMBER}`: that account still has"
        " access. I'll try again every few minutes until it is gone; the admins can help:"
        " <@UADMIN>."
    ]
    still = team.request()
    assert still.state == "removing" and still.error_kind == "still_listed"
    assert [m.member_id for m in sandbox.members(SHARED_IMAGE)] == [MEMBER]
    assert not any("Removed" in t for t in team.thread_texts(parent))

    pass_time(team, minutes=6)  # the usual rules: a refused removal again in 5 minutes
    removed = team.wait_state("removed")
    assert removed.error_kind is None and sandbox.members(SHARED_IMAGE) == []
    assert len(removes(sandbox)) == 2
    assert team.thread_texts(parent)[-1].startswith(f"Removed `{MEMBER}` {NAMED}")


def test_an_unshare_whose_member_stays_listed_is_not_told_removed(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{SHARED_IMAGE} {MEMBER} QA run", user="USHARE")
    team.wait_state("pending")
    sandbox.inject(Fault.answer(204, b"", content_type="", method="DELETE"))

    team.ack_text(f"unshare {SHARED_IMAGE} {MEMBER} done", user="USHARE")
    parent = parents(team, slack, 2)[1]
    said = slack.wait_for(
        lambda: [t for t in team.thread_texts(parent) if "still shows" in t], what="the line"
    )
    assert len(said) == 1
    assert team.request(2).state == "removing"
    assert not any(t.startswith("Removed") for t in team.thread_texts(parent))

    pass_time(team, minutes=6)
    team.wait_state("removed", 2)
    assert sandbox.members(SHARED_IMAGE) == []
    assert team.thread_texts(parent)[-1] == (
        f"Removed `{MEMBER}` {NAMED} from image `win2022-std` · Windows 2022 · `c3d4e5f6…`."
    )


# -- the client's and the sandbox's side ------------------------------------------------------


Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run() -> Iterator[Run]:
    """Runs a coroutine to its end in this test's event loop (the client is asynchronous)."""
    with asyncio.Runner() as runner:
        yield runner.run


async def no_pause(seconds: float) -> None:
    """A retry policy's sleep that does not wait."""


@pytest.fixture
def client(run: Run, sandbox: Sandbox) -> Iterator[ScpClient]:
    made = ScpClient(
        sandbox.url,
        ScpAuth(ACCESS_KEY, SECRET_KEY),
        retry=RetryPolicy(attempts=3, base_delay=0.0, sleep=no_pause),
        timeout=httpx.Timeout(2.0),
    )
    yield made
    run(made.aclose())


def test_set_visibility_is_a_signed_put_and_idempotent(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    assert run(client.set_visibility(PRIVATE, "shared")).visibility == "shared"
    assert run(client.set_visibility(PRIVATE, "shared")).visibility == "shared"
    assert run(client.set_visibility(PRIVATE, "private")).visibility == "private"

    puts = image_changes(sandbox, PRIVATE)
    assert [(r.status, r.signed) for r in puts] == [(200, True)] * 3


@pytest.mark.parametrize("wanted", ["public", "community", "Shared", ""])
def test_set_visibility_takes_private_or_shared_only_and_sends_nothing_else(
    run: Run, sandbox: Sandbox, client: ScpClient, wanted: str
) -> None:
    with pytest.raises(ValueError, match="private or shared"):
        run(client.set_visibility(PRIVATE, wanted))
    assert sandbox.records == []


def test_set_visibility_retries_and_survives_a_lost_answer(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    sandbox.inject(
        Fault.answer(503, method="PUT"),
        Fault.apply_then_drop(method="PUT"),
        Fault.answer(200, '{"id": "cut', apply=True, method="PUT", path=SHARED_IMAGE),
    )
    assert run(client.set_visibility(PRIVATE, "shared")).visibility == "shared"
    assert [r.status for r in image_changes(sandbox, PRIVATE)] == [503, None, 200]
    # An answer that cannot be read: the change is read back.
    assert run(client.set_visibility(SHARED_IMAGE, "private")).visibility == "private"
    assert sandbox.records[-1].method == "GET"


def test_set_visibility_refused_for_a_public_image(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    public = next(i.id for i in DEFAULT_IMAGES if i.visibility == "public")
    with pytest.raises(errors.ImageNotShareable):
        run(client.set_visibility(public, "private"))


@pytest.mark.parametrize(
    "body",
    [
        {"visibility": "public"},
        {"visibility": "community"},
        {"visibility": "shared", "name": "renamed"},
        {},
        ["shared"],
    ],
)
def test_the_sandbox_takes_the_official_request_schema_only(
    run: Run, sandbox: Sandbox, client: ScpClient, body: object
) -> None:
    answer = run(client._http.put(f"/v1/images/{PRIVATE}", json=body))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "ValidationError"
    assert visibility(sandbox, PRIVATE) == "private"


def test_the_sandbox_refuses_members_on_an_image_that_is_not_shared(
    run: Run, sandbox: Sandbox, client: ScpClient
) -> None:
    with pytest.raises(errors.ImageNotShareable) as refused:
        run(client.add_member(PRIVATE, MEMBER))
    assert refused.value.status == 403 and refused.value.code == "Forbidden"
    assert refused.value.detail is not None
    assert refused.value.detail.startswith("Only shared images have members")
    assert sandbox.members(PRIVATE) == []
    unsigned = httpx.put(f"{sandbox.url}/v1/images/{PRIVATE}", json={"visibility": "shared"})
    assert unsigned.status_code == 401 and visibility(sandbox, PRIVATE) == "private"


def test_a_refused_change_to_shared_adds_nothing_and_records_nothing(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    locked = "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
    sandbox.add_image(locked, name="locked", shareable=False)  # this account may not change it

    team.ack_text(f"{locked} {MEMBER} QA run", user="USHARE")
    failed = team.wait_state("failed")

    assert failed.error_kind == "visibility_refused" and failed.made_shared_at is None
    assert [r.status for r in image_changes(sandbox, locked)] == [403]
    assert adds(sandbox) == [] and visibility(sandbox, locked) == "private"
    assert team.services.images.stored.made_shared(locked) is None
    [reply] = team.wait_thread(team.parent("C1"), 1)
    assert reply.startswith(
        f"Image `locked` · `5d6e7f80…` is private, and the cloud refused to set it to Shared,"
        f" so `{MEMBER}` {NAMED} was not added."
    )


def test_the_stored_facts_of_an_image_made_shared(team: BotHarness) -> None:
    stored = team.services.images.stored
    stored.mark_made_shared(PRIVATE, 7)
    stored.mark_made_shared(PRIVATE, 9)  # made Shared again, for a later request
    assert stored.made_shared(PRIVATE) == 9
    assert not stored.forget_made_shared(PRIVATE, request_id=7)  # not the one on record
    assert stored.made_shared(PRIVATE) == 9
    assert stored.forget_made_shared(PRIVATE)
    assert stored.made_shared(PRIVATE) is None and not stored.forget_made_shared(PRIVATE)


class Died(BaseException):
    """The worker process ends at this instant: nothing after it runs."""


def test_a_worker_killed_between_recording_and_making_shared_shares_once_after_restart(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    stored = team.services.images.stored
    real = stored.mark_made_shared
    died = threading.Event()

    def dying(image_id: str, request_id: int) -> None:
        real(image_id, request_id)
        if not died.is_set():
            died.set()
            raise Died("after recording, before the change")

    stored.mark_made_shared = dying  # type: ignore[method-assign]
    team.ack_text(f"{PRIVATE} {MEMBER} QA run", user="USHARE")
    assert died.wait(10)
    team.stop_worker()
    assert team.request().state == "sending" and image_changes(sandbox, PRIVATE) == []

    # A few seconds after it was sent (RESTART_GRACE) the request is read back: a private
    # image has no members (the cloud refuses even to show one), so the add never landed:
    # sent once.
    team.clock.advance(seconds=RESTART_GRACE.total_seconds() + 1)
    team.start_worker()
    shared = team.wait_state("pending")

    assert [r.status for r in image_changes(sandbox, PRIVATE)] == [200]
    assert [r.status for r in adds(sandbox)] == [200]
    assert shared.made_shared_at is not None and stored.made_shared(PRIVATE) == shared.id
    [reply] = team.wait_thread(team.parent("C1"), 1)
    assert "was private, so I set it to Shared first" in reply


def test_list_of_a_private_image_says_it_has_no_members(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    url = slack.response_url("list-private")
    team.command(f"list {PRIVATE}", user="USHARE", response_url=url)
    [listed] = slack.wait_for(lambda: slack.responses("list-private"), what="the list")

    assert listed.body["text"] == (
        f"Image {PRIVATE_LABEL} is private, so it has no members: only Shared images can have them."
    )
    refused = [r for r in sandbox.records if r.path == f"/v1/images/{PRIVATE}/members"]
    assert [(r.method, r.status) for r in refused] == [("GET", 403)]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_the_sandbox_refuses_every_member_call_on_an_image_that_is_not_shared(
    run: Run, sandbox: Sandbox, client: ScpClient, method: str
) -> None:
    path = f"/v1/images/{PRIVATE}/members" + (f"/{MEMBER}" if method == "DELETE" else "")
    answer = run(client._http.request(method, path))
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["detail"].startswith("Only shared images have members")


def test_the_sandbox_checks_the_api_version_of_a_put_too(run: Run, sandbox: Sandbox) -> None:
    old = ScpClient(sandbox.url, ScpAuth(ACCESS_KEY, SECRET_KEY), api_version="0.9")
    try:
        with pytest.raises(errors.CloudAuthError) as refused:
            run(old.set_visibility(PRIVATE, "shared"))
    finally:
        run(old.aclose())
    assert refused.value.code == "UnsupportedApiVersion"
    assert visibility(sandbox, PRIVATE) == "private"
    [put] = image_changes(sandbox, PRIVATE)
    assert (put.status, put.signed) == (400, True)


def test_a_removal_on_an_image_made_private_meanwhile_says_why_and_waits(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{SHARED_IMAGE} {MEMBER} --for 1m QA run", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")
    sandbox.set_visibility(SHARED_IMAGE, "private")  # someone, in the console

    pass_time(team, minutes=2)
    [said] = slack.wait_for(
        lambda: [t for t in team.thread_texts(parent) if "is private now" in t], what="the line"
    )
    assert said.startswith(
        f"I couldn't remove `{MEMBER}` {NAMED} from image `win2022-std` · Windows 2022"
        " · `c3d4e5f6…` yet: the image is private now"
    )
    waiting = team.request()
    assert (waiting.state, waiting.error_kind) == ("removing", "image_private_now")
    assert [m.member_id for m in sandbox.members(SHARED_IMAGE)] == [MEMBER]

    sandbox.set_visibility(SHARED_IMAGE, "shared")  # its member has access again
    pass_time(team, minutes=6)
    removed = team.wait_state("removed")
    assert removed.error_kind is None and sandbox.members(SHARED_IMAGE) == []
    assert visibility(sandbox, SHARED_IMAGE) == "shared"  # not the bot's to change
    assert len([t for t in team.thread_texts(parent) if "is private now" in t]) == 1


def test_an_add_refused_after_the_bot_made_the_image_shared_leaves_it_private_again(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    """The bot made the image Shared for this share alone; the add was refused (answered):
    nobody is a member, so the image is set back to private, as found."""
    sandbox.inject(Fault.answer(400, method="POST", path=f"{PRIVATE}/members"))

    team.ack_text(f"{PRIVATE} {MEMBER} QA run", user="USHARE")
    failed = team.wait_state("failed")

    assert adds(sandbox) == [] or all(r.status == 400 for r in adds(sandbox))
    assert sandbox.members(PRIVATE) == []
    assert [r.status for r in image_changes(sandbox, PRIVATE)] == [200, 200]
    assert visibility(sandbox, PRIVATE) == "private"
    assert team.services.images.stored.made_shared(PRIVATE) is None
    assert team.request(failed.id).made_private_at is not None
    [reply] = team.wait_thread(team.parent("C1"), 1)
    assert "set it to Shared first" not in reply
