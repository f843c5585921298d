"""Shares that end by themselves, driven as Slack does: `--for`, the clock, the reminder.

The harness's clock is moved forward instead of waiting: a share `--for 1m` is removed
once its minute is up, with one remove call, whatever the status polling's pace.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.scp.sandbox import Fault, Record, Sandbox
from bot.sharing.states import END
from bot.sharing.values import Role
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, BotHarness, adds, member_calls

SHARED = "(QA account)"


def removes(sandbox: Sandbox) -> list[Record]:
    """The remove-member calls the sandbox received."""
    return [r for r in sandbox.records if r.method == "DELETE"]


def share_for(bot: BotHarness, duration: str, user: str = "USHARE") -> str:
    """Share IMAGE with MEMBER `--for duration` (directly: a sharer); the ack."""
    ack = bot.ack_text(f"{IMAGE} {MEMBER} --for {duration} QA run", user=user)
    bot.wait_state("pending")
    return ack


def pass_time(bot: BotHarness, **delta: float) -> None:
    bot.clock.advance(**delta)
    bot.worker.wake()


def reminder(bot: BotHarness, slack: FakeSlack, request_id: int = 1) -> Call:
    """The reminder the bot posted in the request's thread."""
    return slack.wait_for(
        lambda: next(
            (
                c
                for c in slack.messages()
                if c.ts is not None and c.ts == bot.told(request_id).reminder_ts
            ),
            None,
        ),
        what="the reminder",
    )


# -- ending on time -------------------------------------------------------------------------


def test_a_share_for_a_minute_is_removed_after_a_minute_with_one_remove_call(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    ack = share_for(team, "1m")
    parent = team.parent("C1")

    assert "It lasts `1m` from when the cloud adds the member" in ack
    shared = team.request()
    answered = shared.finished_at
    assert shared.duration == "1m" and answered is not None
    assert shared.ends_at == answered + timedelta(minutes=1)
    [first] = team.wait_thread(parent, 1)
    assert "I'll remove it by itself" in first
    assert "Lasts `1m`: removed by itself" in json.dumps(slack.updates(parent.ts)[-1].args)

    pass_time(team, seconds=59)
    time.sleep(0.1)
    assert team.request().state == "pending" and removes(sandbox) == []

    pass_time(team, seconds=2)  # the status poll is 300 s away: the removal does not wait
    removed = team.wait_state("removed")

    assert len(removes(sandbox)) == 1 and len(adds(sandbox)) == 1
    assert sandbox.members(IMAGE) == []
    assert removed.removal_result == "removed" and removed.removed_by is None
    replies = team.thread_texts(parent)
    assert replies[-1] == (
        f"Removed `{MEMBER}` {SHARED} from image `{IMAGE}` as asked: its `1m` are up."
    )
    assert "removed as asked, after `1m`" in json.dumps(slack.updates(parent.ts)[-1].args)
    lines = [m.args["text"] for m in slack.messages("CNOTIFY")]
    assert lines[-1].startswith(":wastebasket: <@USHARE> · share image")
    assert "removed as asked" in lines[-1]

    pass_time(team, minutes=10)
    time.sleep(0.1)
    assert len(removes(sandbox)) == 1  # and never again


def test_the_clock_starts_when_the_add_is_answered_after_an_approval(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER} --for=1h QA run", user="UREQ")
    team.wait_state("awaiting_approval")
    posted = team.parent("CAPPROVE")
    assert "For `1h`" in json.dumps(posted.args["blocks"])

    pass_time(team, minutes=50)  # the approver takes their time
    team.sender.click(posted, "approve", user_id="UAPP1")
    shared = team.wait_state("pending")

    answered = shared.finished_at
    assert answered is not None and answered - shared.created_at > timedelta(minutes=50)
    assert shared.ends_at == answered + timedelta(hours=1)
    pass_time(team, minutes=15)  # past an hour after the ask, not after the answer
    time.sleep(0.1)
    assert team.request().state == "pending" and removes(sandbox) == []


def test_a_removal_survives_a_restart(team: BotHarness, sandbox: Sandbox, slack: FakeSlack) -> None:
    share_for(team, "1m")
    team.stop_worker()

    team.clock.advance(seconds=61)
    team.start_worker()  # a new worker on the same database

    team.wait_state("removed")
    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) == []


@pytest.mark.parametrize("landed", [False, True], ids=["before-the-call", "after-the-call"])
def test_a_crash_mid_removal_is_reconciled_with_a_read_and_removes_once(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, landed: bool
) -> None:
    share_for(team, "1m")
    team.stop_worker()
    team.clock.advance(seconds=61)
    # The worker recorded `removing` and then died, before or after its remove call.
    assert team.services.requests.start_removing(1, from_=END.from_, to=END.to)
    if landed:
        team.call(team.services.cloud.remove_member(IMAGE, MEMBER))

    team.start_worker()
    removed = team.wait_state("removed")

    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) == []
    assert removed.removal_result == "removed"
    reads = [r for r in sandbox.records if r.method == "GET" and r.path.endswith("/members")]
    assert reads, "reconciled with a read of the member list"


def test_a_member_already_gone_is_reported_as_such(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "1m")
    parent = team.parent("C1")
    # Someone removed it in the console.
    team.call(team.services.cloud.remove_member(IMAGE, MEMBER))

    pass_time(team, seconds=61)
    removed = team.wait_state("removed")

    assert removed.removal_result == "gone" and removed.error_kind is None
    reply = team.thread_texts(parent)[-1]
    assert reply == (
        f"The share of image `{IMAGE}` with `{MEMBER}` {SHARED} has ended, but `{MEMBER}`"
        f" {SHARED} was already gone: nothing to remove."
    )
    assert "error" not in reply.lower() and ":x:" not in json.dumps(
        slack.updates(parent.ts)[-1].args
    )


def test_a_remove_the_cloud_refuses_is_said_once_and_tried_again(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "1m")
    parent = team.parent("C1")
    sandbox.inject(Fault.answer(403, method="DELETE"))

    pass_time(team, seconds=61)
    slack.wait_for(
        lambda: any("couldn't remove" in t for t in team.thread_texts(parent)), what="the note"
    )
    refused = team.request()
    assert refused.state == "removing" and refused.error_kind is not None
    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) != []

    pass_time(team, minutes=5)
    removed = team.wait_state("removed")
    assert removed.removal_result == "removed" and removed.error_kind is None
    assert len(removes(sandbox)) == 2 and sandbox.members(IMAGE) == []
    texts = team.thread_texts(parent)
    assert len([t for t in texts if "couldn't remove" in t]) == 1
    assert texts[-1].startswith(f"Removed `{MEMBER}` {SHARED} from image `{IMAGE}` as asked")


def test_an_unshare_by_hand_stops_the_timer(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "1h")
    team.ack_text(f"unshare {IMAGE} {MEMBER} done early", user="USHARE")
    team.wait_state("removed", request_id=2)
    assert team.request(1).ends_at is None and team.request(1).remind_at is None

    pass_time(team, hours=2)
    time.sleep(0.2)
    assert len(removes(sandbox)) == 1  # the unshare's, and no other
    assert team.told(1).reminder_ts is None


def test_a_member_who_rejected_is_still_removed_on_time(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "1h")
    parent = team.parent("C1")
    sandbox.set_member_status(IMAGE, MEMBER, "rejected")

    pass_time(team, seconds=301)
    rejected = team.wait_state("rejected")
    reply = team.wait_thread(parent, 2)[-1]
    # Rejecting keeps the image out of the member's own list, not out of its hands.
    assert "*rejected*" in reply and "it still has access until removed" in reply
    assert "I'll remove it by itself" in reply
    assert rejected.next_poll_at is None and rejected.ends_at is not None
    assert "Lasts `1h`: removed by itself" in json.dumps(slack.updates(parent.ts)[-1].args)

    pass_time(team, hours=2)
    removed = team.wait_state("removed")
    assert removed.removal_result == "removed"
    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) == []
    # Read back after the remove: the cloud's own list shows it gone.
    last = [r for r in sandbox.records if r.path.endswith("/members")][-1]
    assert (last.method, last.status) == ("GET", 200)
    assert team.thread_texts(parent)[-1] == (
        f"Removed `{MEMBER}` {SHARED} from image `{IMAGE}` as asked: its `1h` are up."
    )


# -- the limits -------------------------------------------------------------------------------


@pytest.fixture
def limited(make_bot: Callable[..., BotHarness]) -> Callable[..., BotHarness]:
    """A bot with duration settings, where USHARE is a sharer and MEMBER is known."""

    def make(**settings: str) -> BotHarness:
        bot = make_bot(**settings)
        bot.grant("USHARE", Role.SHARER)
        bot.services.members.add(MEMBER, "QA account", by="test")
        return bot

    return make


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--for 0d reason", "`0d` is zero; a share lasts at least 1 of its unit"),
        ("--for 7x reason", "`7x` is not a duration. Give a whole number and a unit"),
        ("--for=1.5h reason", "`1.5h` is not a duration."),
        ("--for", "`--for` needs a duration after it"),
        ("--for= reason", "`--for` needs a duration after it"),
        (
            "--for 2w reason",
            "`2w` is longer than the 7d a share may last here. Ask for 7d or less.",
        ),
        ("--for 169h", "`169h` is longer than the 7d a share may last here."),
    ],
)
def test_bad_or_too_long_durations_are_refused_and_nothing_is_stored(
    limited: Callable[..., BotHarness],
    sandbox: Sandbox,
    slack: FakeSlack,
    text: str,
    expected: str,
) -> None:
    bot = limited(SHARE_MAX_DURATION="7d")

    ack = bot.ack_text(f"{IMAGE} {MEMBER} {text}", user="USHARE")

    assert expected in ack
    time.sleep(0.1)
    assert bot.all_requests() == [] and member_calls(sandbox) == [] and slack.messages() == []


def test_without_a_duration_the_maximum_applies_and_the_ack_says_so(
    limited: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = limited(SHARE_MAX_DURATION="7d")

    ack = bot.ack_text(f"{IMAGE} {MEMBER} reason", user="USHARE")

    assert "No `--for` given, so it lasts the most a share may here: `7d`" in ack
    assert bot.wait_state("pending").duration == "7d"
    assert bot.ack_text(f"{IMAGE} {MEMBER.upper()} --for 168h", user="USHARE")  # 7d exactly
    assert bot.wait_state("pending", request_id=2).duration == "168h"


def test_without_a_duration_the_default_applies(
    limited: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = limited(SHARE_DEFAULT_DURATION="1d")

    ack = bot.ack_text(f"{IMAGE} {MEMBER} reason", user="USHARE")

    assert "It lasts `1d` from when the cloud adds the member" in ack
    assert bot.wait_state("pending").duration == "1d"


def test_without_any_duration_settings_a_share_lasts_until_removed(
    team: BotHarness, sandbox: Sandbox
) -> None:
    ack = team.ack_text(f"{IMAGE} {MEMBER} --format is part of the reason", user="USHARE")
    shared = team.wait_state("pending")

    assert "lasts" not in ack
    assert shared.duration is None and shared.ends_at is None
    assert shared.reason == "--format is part of the reason"


# -- the reminder and its buttons ---------------------------------------------------------------


def test_one_reminder_a_day_before_with_extend_and_remove_now(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "3d")
    parent = team.parent("C1")
    shared = team.request()
    assert shared.remind_at == shared.ends_at - timedelta(days=1)

    pass_time(team, days=1, hours=23)
    time.sleep(0.1)
    assert team.told().reminder_ts is None

    pass_time(team, hours=2)
    posted = reminder(team, slack)
    assert posted.args["thread_ts"] == parent.ts
    assert posted.args["text"].startswith(f"<@USHARE>: `{MEMBER}` {SHARED}'s share of image")
    actions = next(b for b in posted.args["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["share_extend", "share_remove_now"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Extend by 3d", "Remove now"]

    pass_time(team, hours=1)
    time.sleep(0.1)
    reminders = [c for c in slack.thread(parent.ts or "") if "share_extend" in json.dumps(c.args)]
    assert len(reminders) == 1


def test_a_short_share_is_reminded_halfway(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "1h")
    pass_time(team, minutes=31)
    reminder(team, slack)
    shared = team.request()
    assert shared.remind_at == shared.ends_at - timedelta(minutes=30)


def reminded(team: BotHarness, slack: FakeSlack, user: str = "USHARE") -> Call:
    team.ack_text(f"{IMAGE} {MEMBER} --for 1h QA run", user=user)
    if user == "UREQ":
        team.wait_state("awaiting_approval")
        team.sender.click(team.parent("CAPPROVE"), "approve", user_id="UAPP1")
    team.wait_state("pending")
    pass_time(team, minutes=31)
    return reminder(team, slack)


@pytest.mark.parametrize("clicker", ["USHARE", "UADMIN"])
def test_remove_now_ends_the_share_at_once_without_approval(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, clicker: str
) -> None:
    posted = reminded(team, slack)
    parent = team.parent("C1")

    team.sender.click(posted, "share_remove_now", user_id=clicker)
    team.sender.click(posted, "share_remove_now", user_id=clicker)  # a double click

    removed = team.wait_state("removed")
    assert removed.removed_by == clicker
    assert len(removes(sandbox)) == 1 and sandbox.members(IMAGE) == []
    answers = slack.wait_for(lambda: len(slack.responses()) >= 2 and slack.responses(), what="2")
    texts = sorted(a.body["text"] for a in answers)
    assert any(t.startswith(f"Removing `{MEMBER}` {SHARED} from image") for t in texts)
    assert any("is no longer running" in t for t in texts)
    assert all(a.body["response_type"] == "ephemeral" for a in answers)
    assert team.thread_texts(parent)[-1] == (
        f"Removed `{MEMBER}` {SHARED} from image `{IMAGE}` early, as <@{clicker}> asked."
    )
    [update] = slack.updates(posted.ts)
    assert "actions" not in [b["type"] for b in update.args["blocks"]]
    assert f"<@{clicker}> ended it early." in json.dumps(update.args["blocks"])
    assert slack.calls("chat.postMessage") and not slack.messages("CAPPROVE")


@pytest.mark.parametrize("action", ["share_extend", "share_remove_now"])
def test_reminder_clicks_from_others_are_refused_and_change_nothing(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, action: str
) -> None:
    posted = reminded(team, slack)

    team.sender.click(posted, action, user_id="UAPP1")  # an approver, but not the asker

    [refusal] = slack.wait_for(lambda: slack.responses(), what="an ephemeral refusal")
    assert refusal.body["text"] == (
        "Only <@USHARE>, who asked for this share, or an admin can extend or end it;"
        " nothing was done."
    )
    assert refusal.body["response_type"] == "ephemeral"
    time.sleep(0.1)
    assert [r.id for r in team.all_requests()] == [1] and team.request().state == "pending"
    assert removes(sandbox) == [] and slack.updates(posted.ts) == []


def test_a_click_on_anything_but_the_reminder_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = reminded(team, slack)
    parent = team.parent("C1")
    # The reminder's button, forged onto another message (the parent).
    payload = team.sender.click_payload(posted, "share_remove_now", user_id="USHARE")
    payload["message"]["ts"] = payload["container"]["message_ts"] = parent.ts
    team.sender.action(payload)

    [refusal] = slack.wait_for(lambda: slack.responses(), what="an ephemeral refusal")
    assert "doesn't exist" in refusal.body["text"]
    time.sleep(0.1)
    assert team.request().state == "pending" and removes(sandbox) == []


def test_extend_adds_the_same_duration_once_without_a_second_add(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = reminded(team, slack)
    first = team.request()

    team.sender.click(posted, "share_extend", user_id="USHARE")
    extension = team.wait_state("pending", request_id=2)
    team.sender.click(posted, "share_extend", user_id="USHARE")  # a second click

    assert extension.extends == 1 and extension.duration == "1h"
    assert extension.ends_at == first.ends_at + timedelta(hours=1)
    assert team.request(1).ends_at is None and team.request(1).extended_by == 2
    assert len(adds(sandbox)) == 1  # the member is there already: read, not added again
    answers = slack.wait_for(lambda: len(slack.responses()) >= 2 and slack.responses(), what="2")
    texts = [a.body["text"] for a in answers]
    assert texts[0] == (
        "Asked to extend it by `1h`: request #2. Its thread follows in this channel."
    )
    assert texts[1] == "Request #1 was already extended: request #2; nothing more was done."
    assert len(team.all_requests()) == 2

    pass_time(team, minutes=45)  # past the first end: the extension holds
    time.sleep(0.1)
    assert removes(sandbox) == [] and team.request(1).state == "pending"
    pass_time(team, minutes=45)  # past the extended end
    team.wait_state("removed", request_id=2)
    assert len(removes(sandbox)) == 1


def test_extend_goes_through_approval_like_a_new_request(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = reminded(team, slack, user="UREQ")

    team.sender.click(posted, "share_extend", user_id="UREQ")
    team.wait_state("awaiting_approval", request_id=2)

    cards = slack.wait_for(
        lambda: len(slack.messages("CAPPROVE")) >= 2 and slack.messages("CAPPROVE"),
        what="a second card",
    )
    assert "For `1h`" in json.dumps(cards[-1].args["blocks"])
    assert team.request(1).ends_at is not None  # until approved, the first end stands
    team.sender.click(cards[-1], "approve", user_id="UAPP2")
    extended = team.wait_state("pending", request_id=2)
    assert extended.ends_at == team.request(1).finished_at + timedelta(hours=2)


# -- time left ------------------------------------------------------------------------------------


def test_status_home_and_list_show_the_time_left(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    share_for(team, "2h")
    pass_time(team, minutes=30)

    status = team.ack_text("status", user="USHARE")
    assert "· 1h 29m left" in status or "· 1h 30m left" in status

    url = slack.response_url("list")
    team.command(f"list {IMAGE}", user="USHARE", response_url=url)
    [listed] = slack.wait_for(lambda: slack.responses("list"), what="the member list")
    assert (
        f"• `{MEMBER}` {SHARED}: *pending: can use it, not yet in their list*"
        in (listed.body["text"])
    )
    assert re.search(r"· the bot removes it \d{4}-\d\d-\d\d \d\d:\d\d UTC", listed.body["text"])

    event = {
        "token": "fake-verification-token",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": "EvHome",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "USHARE", "channel": "D1", "tab": "home"},
    }
    team.sender.post(json.dumps(event), content_type="application/json")
    [home] = slack.wait_for(lambda: slack.calls("views.publish"), what="the home tab")
    assert "left" in json.dumps(home.args["view"])
