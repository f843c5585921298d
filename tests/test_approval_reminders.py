"""Approvals that never stall: reminders at the minute they are due, the asker's Remind."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.approvals import ApprovalReminders, Audience
from bot.sharing.request import Action, RequestState, ShareRequest
from bot.sharing.values import Role
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, BotHarness, adds

# Short settings, as an operator trying it out would set them: the first reminder after
# a minute, a request that expires after four hours (half: 2 h; last call: 3 h).
SHORT = {"APPROVAL_REMIND_MINUTES": 1, "SHARE_APPROVAL_TTL_HOURS": 4}


@pytest.fixture
def waiting(make_bot: Callable[..., BotHarness]) -> BotHarness:
    """A requester, two approvers of all images, one of the image only, two admins."""
    bot = make_bot(**SHORT)
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("UAPP1", Role.APPROVER)
    bot.grant("UAPP2", Role.APPROVER)
    bot.grant("UIMG", Role.APPROVER, IMAGE)
    bot.grant("UADMIN", Role.ADMIN)
    bot.grant("UADMIN2", Role.ADMIN)
    bot.services.members.add(MEMBER, "QA account", by="test")
    return bot


def ask(bot: BotHarness, user: str = "UREQ") -> Call:
    """A request waiting for approval, its card and the asker's thread message posted."""
    bot.ack_text(f"{IMAGE} {MEMBER} QA run", user=user)
    bot.wait_state("awaiting_approval")
    bot.wait_thread(bot.parent("C1"), 1)
    return bot.parent("CAPPROVE")


def on_call(bot: BotHarness, user: str, *, from_minutes: float = -60, hours: float = 24) -> None:
    now = bot.clock()
    starts = now + timedelta(minutes=from_minutes)
    bot.services.oncall.add(user, starts, starts + timedelta(hours=hours), by="test")


def card_thread(slack: FakeSlack, card: Call) -> list[str]:
    assert card.ts is not None
    return [str(c.args["text"]) for c in slack.thread(card.ts)]


def at(bot: BotHarness, request: ShareRequest, **after: float) -> None:
    """Move the clock to `after` past the request's ask, and let the worker look."""
    target = request.created_at + timedelta(**after)
    bot.clock.advance(seconds=(target - bot.clock()).total_seconds())
    bot.worker.wake()


def quiet(slack: FakeSlack, card: Call, count: int) -> None:
    """Give the worker time to post, then check the card's thread still has `count`."""
    time.sleep(0.3)
    assert len(card_thread(slack, card)) == count, card_thread(slack, card)


def test_each_reminder_comes_at_the_minute_it_is_due_to_its_people(
    waiting: BotHarness, slack: FakeSlack, sandbox: Sandbox
) -> None:
    on_call(waiting, "UONCALL1", hours=2)
    card = ask(waiting)
    request = waiting.request()
    assert "On call: <@UONCALL1>" in json.dumps(card.args["blocks"])
    # The rota moves on after the card was posted: the reminder asks who is on call then.
    waiting.services.oncall.remove("UONCALL1")
    on_call(waiting, "UONCALL2")

    at(waiting, request, seconds=59)
    quiet(slack, card, 0)
    at(waiting, request, seconds=61)
    [first] = slack.wait_for(lambda: card_thread(slack, card), what="the first reminder")
    assert first.startswith(":bell: <@UONCALL2>: request #1 has waited 1m for a decision.")
    assert "UONCALL1" not in first and "UAPP1" not in first
    # The card says how long it has waited; the asker's message whom it reminded.
    card_ts, waiting_ts = card.ts, waiting.told().waiting_ts
    assert card_ts is not None and waiting_ts is not None
    [update] = slack.wait_for(lambda: slack.updates(card_ts), what="the card's update")
    assert "Waiting for 1m" in json.dumps(update.args["blocks"])
    [told] = slack.wait_for(lambda: slack.updates(waiting_ts), what="the asker's message")
    shown = json.dumps(told.args["blocks"])
    assert "Asked <@UONCALL1>" in shown and "Reminded <@UONCALL2>" in shown

    at(waiting, request, hours=2, seconds=-1)
    quiet(slack, card, 1)
    at(waiting, request, hours=2, seconds=1)
    second = slack.wait_for(
        lambda: card_thread(slack, card)[1:], what="the second reminder, to approvers"
    )[0]
    # In the card's order: the approvers of this image, then those of all images.
    assert second.startswith(":bell: <@UIMG>, <@UAPP1>, <@UAPP2>: request #1 is still waiting")
    assert "UADMIN" not in second and "UREQ" not in second

    at(waiting, request, hours=3, seconds=-1)
    quiet(slack, card, 2)
    at(waiting, request, hours=3, seconds=1)
    third = slack.wait_for(lambda: card_thread(slack, card)[2:], what="the last call")[0]
    assert third.startswith(":rotating_light: <@UADMIN>, <@UADMIN2>: request #1 expires")

    at(waiting, request, hours=3, minutes=30)
    quiet(slack, card, 3)
    at(waiting, request, hours=4, seconds=1)
    waiting.wait_state("expired")
    replies = waiting.wait_thread(waiting.parent("C1"), 2)
    assert replies[1] == (
        "Nobody decided within 4 hours, so this request expired. Ask again if it's still"
        " needed. It reached <@UADMIN>, <@UADMIN2>, <@UAPP1>, <@UAPP2>, <@UIMG>,"
        " <@UONCALL1>, <@UONCALL2>."
    )
    assert waiting.request().approval_reminders == 3
    assert adds(sandbox) == []


def test_no_reminder_after_a_decision(waiting: BotHarness, slack: FakeSlack) -> None:
    card = ask(waiting)
    request = waiting.request()
    at(waiting, request, seconds=50)
    waiting.sender.click(card, "approve", user_id="UAPP1")
    waiting.wait_state("pending")

    for hours in (0.5, 2.5, 3.5):
        at(waiting, request, hours=hours)
        quiet(slack, card, 0)
    assert waiting.request().approval_reminders == 0


def test_a_denied_request_reminds_nobody(waiting: BotHarness, slack: FakeSlack) -> None:
    card = ask(waiting)
    request = waiting.request()
    waiting.sender.click(card, "deny", user_id="UAPP2")
    waiting.submit_deny("UAPP2", "not this one")
    waiting.wait_state("denied")
    at(waiting, request, hours=3, minutes=30)
    quiet(slack, card, 0)


def test_a_reminder_is_posted_once_across_a_restart(waiting: BotHarness, slack: FakeSlack) -> None:
    card = ask(waiting)
    request = waiting.request()
    at(waiting, request, minutes=2)
    slack.wait_for(lambda: card_thread(slack, card), what="the first reminder")
    waiting.stop_worker()
    waiting.start_worker()
    at(waiting, request, minutes=30)
    quiet(slack, card, 1)


def test_a_worker_stopped_past_several_reminders_posts_only_the_last(
    waiting: BotHarness, slack: FakeSlack
) -> None:
    card = ask(waiting)
    request = waiting.request()
    waiting.stop_worker()
    at(waiting, request, hours=3, minutes=10)
    waiting.start_worker()
    [only] = slack.wait_for(lambda: card_thread(slack, card), what="one reminder")
    assert only.startswith(":rotating_light: <@UADMIN>, <@UADMIN2>")
    quiet(slack, card, 1)


def test_a_reminder_mentions_at_most_twenty_people(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot(**SHORT)
    bot.grant("UREQ", Role.REQUESTER)
    for number in range(25):
        bot.grant(f"UAPP{number:02d}", Role.APPROVER)
    card = ask(bot)
    at(bot, bot.request(), hours=2, seconds=1)
    # The clock jumped past the first: only the approvers' one is posted.
    [second] = slack.wait_for(lambda: card_thread(slack, card), what="the approvers' one")
    assert second.count("<@") == 20
    assert "<@UAPP19> and 5 more: request #1" in second


def test_a_slack_failure_gives_the_reminder_back_for_later(
    waiting: BotHarness, slack: FakeSlack
) -> None:
    card = ask(waiting)
    request = waiting.request()
    slack.fail("chat.postMessage", "internal_error", times=1)
    at(waiting, request, minutes=2)
    [first] = slack.wait_for(lambda: card_thread(slack, card), timeout=10, what="a later try")
    assert first.startswith(":bell:")
    quiet(slack, card, 1)


# -- the asker's Remind button -----------------------------------------------------------------


def remind_button(bot: BotHarness, slack: FakeSlack) -> Call:
    """The asker's thread message with the Remind button."""
    ts = bot.told().waiting_ts
    assert ts is not None
    found = next(c for c in slack.messages() if c.response.get("ts") == ts)
    actions = [b for b in found.args["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["approval_remind"]
    return found


def test_the_asker_can_remind_once_per_half_hour(waiting: BotHarness, slack: FakeSlack) -> None:
    on_call(waiting, "UONCALL1")
    card = ask(waiting)
    request = waiting.request()
    message = remind_button(waiting, slack)
    assert "Asked <@UONCALL1>" in json.dumps(message.args["blocks"])

    waiting.sender.click(message, "approval_remind", user_id="UREQ")
    [early] = slack.wait_for(lambda: slack.responses(), what="the too-early answer")
    assert early.body["text"].startswith("You can remind the approvers once every 30 minutes;")
    next_at = (request.created_at + timedelta(minutes=30)).astimezone(UTC)
    assert f"{next_at:%Y-%m-%d %H:%M} UTC" in early.body["text"]

    at(waiting, request, minutes=31)
    slack.wait_for(lambda: card_thread(slack, card), what="the automatic reminder")
    waiting.sender.click(message, "approval_remind", user_id="UREQ")
    done = slack.wait_for(lambda: slack.responses()[1:], what="the answer")[0]
    assert done.body["text"] == "Done: I've reminded the approvers in the card's thread."
    nudge = slack.wait_for(lambda: card_thread(slack, card)[1:], what="the asker's reminder")[0]
    assert nudge == (
        ":bell: <@UONCALL1>: <@UREQ> is still waiting for a decision on request #1 (31m so far)."
    )

    waiting.sender.click(message, "approval_remind", user_id="UREQ")
    again = slack.wait_for(lambda: slack.responses()[2:], what="the second answer")[0]
    assert again.body["text"].startswith("You can remind the approvers once every 30 minutes;")
    quiet(slack, card, 2)


@pytest.mark.parametrize(
    ("clicker", "expected"),
    [
        ("UAPP1", "Only <@UREQ>, who asked, can remind the approvers; nothing was done."),
        ("UNOBODY", "Only <@UREQ>, who asked, can remind the approvers; nothing was done."),
    ],
)
def test_only_the_asker_can_remind(
    waiting: BotHarness, slack: FakeSlack, clicker: str, expected: str
) -> None:
    card = ask(waiting)
    message = remind_button(waiting, slack)
    at(waiting, waiting.request(), minutes=45)
    slack.wait_for(lambda: card_thread(slack, card), what="the automatic reminder")
    waiting.sender.click(message, "approval_remind", user_id=clicker)
    [answer] = slack.wait_for(lambda: slack.responses(), what="the refusal")
    assert answer.body["text"] == expected
    quiet(slack, card, 1)
    assert waiting.request().nudge_asked_at is None


def test_a_decided_request_has_nothing_to_remind(waiting: BotHarness, slack: FakeSlack) -> None:
    card = ask(waiting)
    message = remind_button(waiting, slack)
    waiting.sender.click(card, "approve", user_id="UAPP1")
    waiting.wait_state("pending")
    waiting_ts = waiting.told().waiting_ts
    assert waiting_ts is not None
    # The button goes once it is decided.
    after = slack.updates(waiting_ts)[-1].args["blocks"]
    assert "actions" not in [b["type"] for b in after]
    at(waiting, waiting.request(), minutes=45)
    waiting.sender.click(message, "approval_remind", user_id="UREQ")
    [answer] = slack.wait_for(lambda: slack.responses(), what="the answer")
    assert answer.body["text"] == (
        "Request #1 is no longer waiting for a decision: it is pending (can use it, not yet in"
        " their list). Nothing to remind."
    )
    quiet(slack, card, 0)


# -- the schedule, without Slack ----------------------------------------------------------------


def _waiting_request(created: datetime, ttl: timedelta) -> ShareRequest:
    return ShareRequest(
        **{name: None for name in ShareRequest.__dataclass_fields__ if name != "id"}
        | {
            "id": 1,
            "action": Action.SHARE,
            "user_id": "UREQ",
            "image_id": IMAGE,
            "member_id": MEMBER,
            "state": RequestState.AWAITING_APPROVAL,
            "created_at": created,
            "needs_approval": True,
            "expires_at": created + ttl,
            "approvals_needed": 1,
            "approvals": 0,
            "approval_reminders": 0,
        }
    )


@pytest.mark.parametrize(
    ("ttl_hours", "expected"),
    [
        (24, [(30, Audience.ON_CALL), (720, Audience.APPROVERS), (1380, Audience.ADMINS)]),
        (2, [(30, Audience.ON_CALL), (60, Audience.APPROVERS)]),
        (1, [(30, Audience.ON_CALL)]),
        (0.5, [(15, Audience.APPROVERS)]),
    ],
)
def test_short_ttls_leave_out_reminders_that_would_not_come_later(
    ttl_hours: float, expected: list[tuple[float, Audience]]
) -> None:
    created = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    schedule = ApprovalReminders(first_after=timedelta(minutes=30), ttl=timedelta(hours=ttl_hours))
    stages = schedule.stages(_waiting_request(created, timedelta(hours=ttl_hours)))
    assert [((s.at - created).total_seconds() / 60, s.audience) for s in stages] == expected


def test_the_asker_on_call_alone_is_not_the_one_asked(
    waiting: BotHarness, slack: FakeSlack
) -> None:
    """An approver on call who asks cannot approve their own request: the card and the
    reminder ask the next people in line, never "nobody"."""
    on_call(waiting, "UAPP1")
    card = ask(waiting, user="UAPP1")
    request = waiting.request()
    shown = json.dumps(card.args["blocks"])
    assert "On call: <@UAPP1>" not in shown and "<@UIMG>" in shown

    at(waiting, request, seconds=61)
    [first] = slack.wait_for(lambda: card_thread(slack, card), what="the first reminder")
    assert first.startswith(":bell: <@UIMG>, <@UAPP2>: request #1 has waited 1m")
    assert "UAPP1" not in first and "nobody" not in first


def test_the_first_approver_on_call_alone_is_not_reminded_for_the_second(
    waiting: BotHarness, slack: FakeSlack
) -> None:
    waiting.ack_text(f"admin policy {IMAGE} approvals 2", user="UADMIN")
    on_call(waiting, "UAPP1")
    card = ask(waiting)
    request = waiting.request()
    waiting.sender.click(card, "approve", user_id="UAPP1")
    card_ts = card.ts
    assert card_ts is not None
    [update] = slack.wait_for(lambda: slack.updates(card_ts), what="1 of 2 on the card")
    assert "1 of 2 approvals" in json.dumps(update.args["blocks"])
    assert "On call: <@UAPP1>" not in json.dumps(update.args["blocks"])

    at(waiting, request, seconds=61)
    [first] = slack.wait_for(lambda: card_thread(slack, card), what="the first reminder")
    assert first.startswith(":bell: <@UIMG>, <@UAPP2>: request #1 has waited 1m")
    assert "UAPP1" not in first and "nobody" not in first
