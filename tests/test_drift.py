"""The cloud's member list is the truth, and one share per image and member, end to end.

Members are added and removed behind the bot's back the way the console does it: a signed
request straight to the sandbox. The bot's reconcile lists the members of the images it
follows every SHARE_RECONCILE_SECONDS (moved along with the harness's clock) and reports
what it finds, once; a second request for a member the bot shares moves the share's end
with no second add.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.scp import ScpAuth, ScpClient
from bot.scp.sandbox import Record, Sandbox
from bot.sharing.request import RequestState
from bot.sharing.values import ReconcileRun, Role
from tests.fakes.slack import FakeSlack
from tests.harness import ACCESS_KEY, IMAGE, MEMBER, SECRET_KEY, BotHarness, adds

OTHER = "b7c0ffee0000000000000000000000aa"  # an account nobody registered
SHARED = "(QA account)"


def removes(sandbox: Sandbox) -> list[Record]:
    return [r for r in sandbox.records if r.method == "DELETE"]


def lists(sandbox: Sandbox) -> list[Record]:
    return [r for r in sandbox.records if r.method == "GET" and r.path.endswith("/members")]


class Console:
    """Someone at the console: signed requests straight to the cloud, not through the bot
    (each call a client of its own, in a loop of its own)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, name: str, *args: Any) -> Any:
        async def once() -> Any:
            async with ScpClient(self.url, ScpAuth(ACCESS_KEY, SECRET_KEY)) as client:
                return await getattr(client, name)(*args)

        return asyncio.run(once())

    def add_member(self, image_id: str, member_id: str) -> Any:
        return self._call("add_member", image_id, member_id)

    def remove_member(self, image_id: str, member_id: str) -> None:
        self._call("remove_member", image_id, member_id)


@pytest.fixture
def console(sandbox: Sandbox) -> Console:
    """Someone at the console."""
    return Console(sandbox.url)


@pytest.fixture
def watched(make_bot: Callable[..., BotHarness]) -> BotHarness:
    """A bot that reconciles every 5 s, with a notify channel; USHARE is a sharer."""
    bot = make_bot(SHARE_NOTIFY_CHANNEL="CNOTIFY", SHARE_RECONCILE_SECONDS=5)
    bot.grant("USHARE", Role.SHARER)
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("UAPP1", Role.APPROVER)
    bot.grant("UADMIN", Role.ADMIN)
    bot.services.members.add(MEMBER, "QA account", by="test")
    return bot


def last_run(bot: BotHarness) -> ReconcileRun | None:
    return bot.services.reconciler.runs.last()


def reconciled(bot: BotHarness) -> ReconcileRun:
    """Move the clock past the next reconcile and wait for that run to end."""
    before = last_run(bot)
    since = before.finished_at if before else None
    bot.clock.advance(seconds=bot.settings.SHARE_RECONCILE_SECONDS + 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run = last_run(bot)
        if run is not None and run.finished_at is not None and run.finished_at != since:
            return run
        time.sleep(0.02)
    raise AssertionError(f"no reconcile ran: {last_run(bot)}")


def notify_lines(slack: FakeSlack) -> list[str]:
    return [str(m.args["text"]) for m in slack.messages("CNOTIFY")]


def share(bot: BotHarness, text: str, request_id: int, state: str = "pending") -> None:
    bot.ack_text(text, user="USHARE")
    bot.wait_state(state, request_id=request_id)


def listed(bot: BotHarness, slack: FakeSlack, user: str = "USHARE") -> str:
    name = f"list{len(slack.responses())}"
    bot.command(f"list {IMAGE}", user=user, response_url=slack.response_url(name))
    [answer] = slack.wait_for(lambda: slack.responses(name), what="the member list")
    return str(answer.body["text"])


# -- drift: members added and removed behind the bot's back ------------------------------------


def test_a_member_added_and_one_removed_behind_the_bots_back_are_each_reported_once(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1d QA run", 1)
    parent = bot.parent("C1")
    reconciled(bot)
    assert not [line for line in notify_lines(slack) if "not through this bot" in line]

    console.add_member(IMAGE, OTHER)  # behind the bot's back
    run = reconciled(bot)

    assert (run.outside, run.gone, run.failures) == (1, 0, 0)
    drift = [line for line in notify_lines(slack) if "not through this bot" in line]
    assert drift == [
        f":warning: `{OTHER}` has access to image `{IMAGE}`, not through this bot (*pending*)."
        f" `/share-image list {IMAGE}` shows every member."
    ]
    text = listed(bot, slack)
    assert f"• `{OTHER}`: *pending: can use it, not yet in their list*" in text
    other_line = next(line for line in text.splitlines() if OTHER in line)
    assert other_line.endswith("· not through this bot")
    mine = next(line for line in text.splitlines() if MEMBER in line)
    assert "· added through this bot for <@USHARE> (request #1) · the bot removes it" in mine

    # Reported once: neither the next run nor a restarted worker says it again.
    reconciled(bot)
    bot.stop_worker()
    bot.start_worker()
    reconciled(bot)
    assert len([line for line in notify_lines(slack) if "not through this bot" in line]) == 1

    console.remove_member(IMAGE, MEMBER)  # the bot's own member, removed at the console
    run = reconciled(bot)
    assert (run.outside, run.gone) == (0, 1)
    gone = bot.wait_state("removed")
    assert gone.removal_result == "outside" and gone.ends_at is None and gone.remind_at is None
    replies = bot.wait_thread(parent, 2)
    assert replies[-1] == (
        f"`{MEMBER}` {SHARED} no longer has access to image `{IMAGE}`: it was removed outside"
        " this bot (the cloud's member list no longer shows it). This share has ended;"
        " I won't remove it again."
    )
    assert notify_lines(slack)[-1].startswith(":wastebasket: <@USHARE> · share image")
    assert "removed outside the bot" in notify_lines(slack)[-1]
    assert "removed outside the bot" in json.dumps(slack.updates(parent.ts)[-1].args)

    # Told once, and its timer stopped: a day later nothing is removed, nothing said again.
    bot.clock.advance(days=1, hours=1)
    reconciled(bot)
    time.sleep(0.2)
    assert removes(sandbox) == [r for r in removes(sandbox) if r.member_id == MEMBER]
    assert len(removes(sandbox)) == 1  # the console's, none of the bot's
    assert len(bot.thread_texts(parent)) == 2
    assert bot.request().state == "removed"
    # Every list was signed and answered.
    assert lists(sandbox) and all(r.signed and r.status == 200 for r in lists(sandbox))


def test_a_member_that_leaves_and_comes_back_is_reported_again(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    console.add_member(IMAGE, OTHER)
    reconciled(bot)
    console.remove_member(IMAGE, OTHER)
    assert reconciled(bot).outside == 0
    console.add_member(IMAGE, OTHER)
    assert reconciled(bot).outside == 1

    drift = [line for line in notify_lines(slack) if "not through this bot" in line]
    assert len(drift) == 2 and all(f"`{OTHER}`" in line for line in drift)
    assert bot.request().state == "pending"  # the bot's own member was never in question


def test_a_share_the_bot_unshared_is_closed_and_a_member_back_is_reported(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    parent = bot.parent("C1")
    share(bot, f"unshare {IMAGE} {MEMBER} done", 2, state="removed")

    run = reconciled(bot)

    assert (run.gone, run.outside) == (0, 0)  # the bot's own unshare: no drift
    ended = bot.wait_state("removed", request_id=1)
    assert ended.removal_result is None
    assert bot.wait_thread(parent, 2)[-1] == (
        f"`{MEMBER}` {SHARED} is no longer a member of image `{IMAGE}`: it was removed"
        " outside this thread."
    )
    console.add_member(IMAGE, MEMBER)  # back, through the console this time
    assert reconciled(bot).outside == 1
    [drift] = [line for line in notify_lines(slack) if "not through this bot" in line]
    assert f"`{MEMBER}` {SHARED} has access" in drift
    member_line = next(line for line in listed(bot, slack).splitlines() if MEMBER in line)
    assert member_line.endswith("· not through this bot")


def test_an_image_made_private_outside_the_bot_is_no_failure_and_no_drift(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    """The service lists no members of an image that is not Shared: the run passes it by,
    reports nothing and leaves the share running (its member regains access with the image)."""
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    sandbox.set_visibility(IMAGE, "private")  # in the console

    run = reconciled(bot)

    assert (run.images, run.listed, run.outside, run.gone, run.failures) == (1, 0, 0, 0, 0)
    assert bot.request(1).state is RequestState.PENDING
    assert not [line for line in notify_lines(slack) if "not through this bot" in line]


def test_a_status_the_list_shows_is_recorded_and_told(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    parent = bot.parent("C1")
    sandbox.set_member_status(IMAGE, MEMBER, "accepted")

    run = reconciled(bot)  # long before the next status read (300 s)

    assert run.statuses == 1
    accepted = bot.wait_state("accepted")
    assert accepted.member_status == "accepted"
    assert bot.wait_thread(parent, 2)[-1].startswith(f":tada: `{MEMBER}` {SHARED} *accepted*")
    assert not [line for line in notify_lines(slack) if "not through this bot" in line]


def test_a_list_that_fails_is_counted_and_nothing_is_marked(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    from bot.scp.sandbox import Fault

    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    sandbox.inject(*[Fault.answer(503, method="GET", path="/members") for _ in range(3)])
    run = reconciled(bot)
    assert run.failures == 1 and run.listed == 0
    assert bot.request().state == "pending"
    assert not [line for line in notify_lines(slack) if "not through this bot" in line]


# -- one share per image and member ----------------------------------------------------------


def test_a_second_time_bound_request_moves_the_end_with_one_add(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1h QA run", 1)
    bot.clock.advance(minutes=10)

    ack = bot.ack_text(f"{IMAGE} {MEMBER} --for 3h longer QA run", user="USHARE")
    bot.wait_state("pending", request_id=2)

    assert ack.endswith(
        f"`{MEMBER}` {SHARED} already has access through request #1: this moves that share's"
        " end instead of adding the member again."
    )

    moved = bot.request(2)
    assert moved.takes_over == 1 and moved.was_present is False
    assert moved.finished_at is not None
    assert moved.ends_at == moved.finished_at + timedelta(hours=3)
    assert bot.request(1).ends_at is None and bot.request(1).extended_by == 2
    assert len(adds(sandbox)) == 1  # one add in the cloud's log, in total
    parents = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
    second = bot.wait_thread(parents[1], 1)
    assert second[0] == (
        f"`{MEMBER}` {SHARED} already has access to image `{IMAGE}` through request #1,"
        " so nothing was sent to the cloud: this request moves that share's end."
        f" I'll remove it by itself {moved.ends_at:%Y-%m-%d %H:%M} UTC."
    )
    assert not [line for line in notify_lines(slack) if line.startswith(":x:")]
    assert "shared already (request #1): its end moved" in notify_lines(slack)[-1]

    bot.clock.advance(minutes=55)  # past the first end: the share holds
    bot.worker.wake()
    time.sleep(0.2)
    assert removes(sandbox) == [] and bot.request(1).state == "pending"
    bot.clock.advance(hours=2, minutes=10)  # past the moved end
    bot.worker.wake()
    bot.wait_state("removed", request_id=2)
    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) == []
    assert len(adds(sandbox)) == 1


def test_a_second_request_until_removed_ends_the_timer(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1h QA run", 1)
    share(bot, f"{IMAGE} {MEMBER} keep it", 2)

    assert bot.request(2).takes_over == 1 and bot.request(2).ends_at is None
    assert bot.request(1).ends_at is None
    parents = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
    [reply] = bot.wait_thread(parents[1], 1)
    assert reply.endswith("It no longer ends by itself: it stays until removed.")
    bot.clock.advance(hours=2)
    bot.worker.wake()
    time.sleep(0.2)
    assert removes(sandbox) == [] and len(adds(sandbox)) == 1


def test_a_second_request_needing_approval_moves_nothing_until_approved(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1h QA run", 1)
    bot.ack_text(f"{IMAGE} {MEMBER} --for 1d please", user="UREQ")
    bot.wait_state("awaiting_approval", request_id=2)
    assert bot.request(1).ends_at is not None  # the first end stands until approved

    card = slack.wait_for(
        lambda: next((m for m in slack.messages("CAPPROVE") if "#2" in json.dumps(m.args)), None),
        what="the card",
    )
    bot.sender.click(card, "approve", user_id="UAPP1")
    moved = bot.wait_state("pending", request_id=2)
    assert moved.takes_over == 1 and moved.ends_at is not None
    assert moved.finished_at is not None
    assert moved.ends_at == moved.finished_at + timedelta(days=1)
    assert bot.request(1).ends_at is None and len(adds(sandbox)) == 1


def test_a_member_that_rejected_still_has_access_and_is_not_added_again(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    sandbox.set_member_status(IMAGE, MEMBER, "rejected")
    reconciled(bot)
    bot.wait_state("rejected")

    bot.ack_text(f"{IMAGE} {MEMBER} again", user="USHARE")
    again = bot.wait_state("rejected", request_id=2)

    assert again.takes_over == 1 and not again.was_present
    assert len(adds(sandbox)) == 1  # read, not added again: never a 409
    parents = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
    [reply] = bot.wait_thread(parents[1], 1)
    assert reply.startswith(f"`{MEMBER}` {SHARED} already has access to image `{IMAGE}`")
    assert not [line for line in notify_lines(slack) if line.startswith(":x:")]


def test_a_member_listed_outside_the_bot_is_taken_under_its_timer_without_an_add(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    bot = watched
    bot.services.members.add(OTHER, "Ops account", by="test")
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)  # so the bot follows the image
    console.add_member(IMAGE, OTHER)
    reconciled(bot)
    posts_before = len(adds(sandbox))

    ack = bot.ack_text(f"{IMAGE} {OTHER} --for 1h trial", user="USHARE")
    bot.wait_state("pending", request_id=2)

    assert ack.endswith(
        "The cloud's member list shows that `b7c0ffee0000000000000000000000aa` (Ops account)"
        " already has access to this image, not through this bot: nothing will be added,"
        " and the thread will say so."
    )

    taken = bot.request(2)
    assert taken.was_present and taken.takes_over is None
    assert taken.finished_at is not None
    assert taken.ends_at == taken.finished_at + timedelta(hours=1)
    assert len(adds(sandbox)) == posts_before  # nothing sent
    parents = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
    [reply] = bot.wait_thread(parents[1], 1)
    assert reply == (
        f"`{OTHER}` (Ops account) already had access to image `{IMAGE}`, not through this"
        " bot, so nothing was sent to the cloud (its status: *pending*). I'll remove it by"
        f" itself {taken.ends_at:%Y-%m-%d %H:%M} UTC."
    )
    assert "had access already, not through this bot" in notify_lines(slack)[-1]
    text = listed(bot, slack)
    other_line = next(line for line in text.splitlines() if OTHER in line)
    assert "· added through this bot for <@USHARE> (request #2)" in other_line

    bot.clock.advance(hours=1, minutes=1)
    bot.worker.wake()
    bot.wait_state("removed", request_id=2)
    [removal] = removes(sandbox)
    assert removal.member_id == OTHER and removal.signed
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]


def test_an_already_shared_member_the_bot_did_not_know_is_said_plainly_not_as_an_error(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    bot = watched
    console.add_member(IMAGE, MEMBER)  # before the bot ever followed the image

    share(bot, f"{IMAGE} {MEMBER} QA run", 1)

    request = bot.request()
    assert request.was_present and request.ends_at is None and request.error_kind is None
    [reply] = bot.wait_thread(bot.parent("C1"), 1)
    assert reply == (
        f"`{MEMBER}` {SHARED} already had access to image `{IMAGE}`, not through this bot,"
        " so nothing was sent to the cloud (its status: *pending*). I've left it as it is;"
        " it stays until someone removes it (`/share-image unshare` does)."
    )
    assert not [line for line in notify_lines(slack) if ":x:" in line]
    assert [r.status for r in adds(sandbox)] == [200, 409]  # the console's, and the refusal


# -- member ids that differ only in case -----------------------------------------------------


def test_an_id_typed_in_another_case_is_sent_as_the_cloud_spells_it(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1h QA run", 1)

    share(bot, f"{IMAGE} {MEMBER.upper()} --for 2h", 2)
    assert bot.request(2).member_id == MEMBER and bot.request(2).takes_over == 1

    bot.ack_text(f"unshare {IMAGE} {MEMBER.upper()} done", user="USHARE")
    bot.wait_state("removed", request_id=3)
    assert [r.member_id for r in removes(sandbox)] == [MEMBER]
    assert sandbox.members(IMAGE) == [] and len(adds(sandbox)) == 1


# -- check -------------------------------------------------------------------------------------


def test_check_reports_the_last_reconcile_and_what_it_found(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console
) -> None:
    from bot.check import _check_reconcile, _Report

    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    console.add_member(IMAGE, OTHER)
    run = reconciled(bot)
    assert run.finished_at is not None

    lines: list[str] = []
    _check_reconcile(bot.settings, _Report(lines.append), now=bot.clock())
    [line] = lines
    assert line.startswith("[ok] drift reconcile: last run ")
    assert line.endswith(
        "(every 5 s, SHARE_RECONCILE_SECONDS): 1 of 1 image(s) listed; 1 member(s) found with"
        " access not through the bot, 0 share(s) removed outside it, 0 status(es) updated"
    )


# -- pace ----------------------------------------------------------------------------------------


def test_a_run_lists_each_image_once_one_at_a_time_at_its_pace(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Thousands of images never burst the API: one list per image per run, in sequence,
    no faster than the pace (here 40 a second over 24 images, 2 requests each)."""
    from bot.sharing.reconcile import Reconciler
    from bot.sharing.service import ShareService
    from bot.sharing.states import LIFECYCLE, SEND
    from storage import CloudMembers, Database, Grants, KnownMembers, ReconcileRuns, ShareRequests
    from storage.requests import NewRequest

    database = Database(tmp_path / "pace.db")
    requests = ShareRequests(database, lifecycle=LIFECYCLE)
    images = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(24)]
    for image in images:
        sandbox.add_image(image, visibility="shared")
        for member in (MEMBER, OTHER):
            asked, _ = requests.record(
                NewRequest(
                    action="share",
                    user_id="U1",
                    image_id=image,
                    member_id=member,
                    reason="",
                    language="en",
                )
            )
            requests.move(asked.id, from_=SEND.from_, to=SEND.to)
            requests.move(
                asked.id,
                from_={RequestState.SENDING},
                to=RequestState.PENDING,
                finished_at=requests.now(),
            )
    cloud = ScpClient(sandbox.url, ScpAuth(ACCESS_KEY, SECRET_KEY))
    said: list[str] = []

    class Teller:
        async def outside_member(self, image_id: str, member_id: str, status: str | None) -> None:
            said.append(member_id)

    reconciler = Reconciler(
        requests=requests,
        service=ShareService(
            requests=requests,
            grants=Grants(database),
            members=KnownMembers(database),
            cloud=cloud,
        ),
        cloud=cloud,
        members=CloudMembers(database),
        runs=ReconcileRuns(database),
        teller=Teller(),
        lists_per_second=40,
    )

    async def paced() -> tuple[ReconcileRun | None, float]:
        try:
            started = time.monotonic()
            run = await reconciler.run()
            return run, time.monotonic() - started
        finally:
            await cloud.aclose()

    try:
        run, took = asyncio.run(paced())
    finally:
        database.close()

    assert run is not None and (run.images, run.listed, run.failures) == (24, 24, 0)
    listed = lists(sandbox)
    assert sorted(r.path.split("/")[3] for r in listed) == images  # each once
    assert took >= 23 / 40
    # One at a time, paced: each list leaves at least the pause after the one before.
    assert min(b.at - a.at for a, b in itertools.pairwise(listed)) >= 0.9 / 40
    # Members the cloud does not list are shares removed outside the bot: all 48 here.
    assert run.gone == 48 and said == []
    assert {r.state.value for r in requests.in_states(*RequestState)} == {"removed"}


@pytest.mark.parametrize("status", ["accepted", "rejected"])
def test_a_member_that_answered_and_is_removed_at_the_console_is_told_once(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack, console: Console, status: str
) -> None:
    """Accepted or rejected, the member had access through the bot: gone is gone."""
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1d QA run", 1)
    parent = bot.parent("C1")
    sandbox.set_member_status(IMAGE, MEMBER, status)
    reconciled(bot)
    bot.wait_state(status)
    bot.wait_thread(parent, 2)

    console.remove_member(IMAGE, MEMBER)
    run = reconciled(bot)

    assert (run.gone, run.failures) == (1, 0)
    gone = bot.wait_state("removed")
    assert gone.removal_result == "outside" and gone.ends_at is None
    assert bot.wait_thread(parent, 3)[-1].startswith(
        f"`{MEMBER}` {SHARED} no longer has access to image `{IMAGE}`: it was removed outside"
    )
    bot.clock.advance(days=1, hours=1)
    reconciled(bot)
    time.sleep(0.2)
    assert len(removes(sandbox)) == 1  # the console's, none of the bot's
    assert len(bot.thread_texts(parent)) == 3


def test_the_share_whose_end_moved_ends_with_the_one_that_moved_it(
    watched: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    """The bot removed the member itself (request #2's end): request #1, whose end #2
    moved, is over too, and no run calls it removed outside the bot."""
    bot = watched
    share(bot, f"{IMAGE} {MEMBER} --for 1h QA run", 1)
    first_parent = bot.parent("C1")
    sandbox.set_member_status(IMAGE, MEMBER, "accepted")
    reconciled(bot)
    bot.wait_state("accepted", request_id=1)
    share(bot, f"{IMAGE} {MEMBER} --for 3h longer QA run", 2, state="accepted")
    assert bot.request(2).takes_over == 1
    bot.clock.advance(hours=3, minutes=10)
    bot.worker.wake()
    bot.wait_state("removed", request_id=2)

    run = reconciled(bot)

    assert (run.gone, run.outside, run.failures) == (0, 0, 0)
    first = bot.wait_state("removed", request_id=1)
    assert first.removal_result != "outside"
    assert not [line for line in notify_lines(slack) if "removed outside the bot" in line]
    assert not [t for t in bot.thread_texts(first_parent) if "removed outside this bot" in t]
    slack.wait_for(
        lambda: [t for t in bot.thread_texts(first_parent) if "is no longer a member" in t],
        what="request #1's thread told its share ended",
    )
    assert len(removes(sandbox)) == 1 and len(adds(sandbox)) == 1


def test_a_report_is_said_once_even_when_recording_it_fails_once(
    watched: BotHarness, slack: FakeSlack, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is claimed before it is posted: a write that fails in between never
    makes a later run say it again."""
    from storage import CloudMembers
    from storage.errors import StorageError

    bot = watched
    share(bot, f"{IMAGE} {MEMBER} QA run", 1)
    console.add_member(IMAGE, OTHER)
    real = CloudMembers.reported
    failed: list[str] = []

    def flaky(self: CloudMembers, image_id: str, member_key: str, *, at: Any) -> bool:
        said = [line for line in notify_lines(slack) if "not through this bot" in line]
        if said and not failed:
            failed.append(member_key)
            raise StorageError("database is locked")
        return real(self, image_id, member_key, at=at)

    monkeypatch.setattr(CloudMembers, "reported", flaky)
    reconciled(bot)
    reconciled(bot)
    reconciled(bot)

    drift = [line for line in notify_lines(slack) if "not through this bot" in line]
    assert len(drift) == 1 and f"`{OTHER}`" in drift[0]


def test_list_names_a_member_the_cloud_spells_in_another_case(
    watched: BotHarness, slack: FakeSlack, console: Console
) -> None:
    """Ids alike but for case are one member: its registered name shows whatever the case."""
    console.add_member(IMAGE, MEMBER.upper())  # as someone typed it in the console

    line = next(line for line in listed(watched, slack).splitlines() if MEMBER.upper() in line)

    assert line.startswith(f"• `{MEMBER.upper()}` (QA account): *pending")
