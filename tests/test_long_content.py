"""Long content end to end: at sizes that once broke Slack's limits, Slack takes every
message and view, and each still says how much there is."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, BotHarness
from tests.test_views import all_text, message_problems, view_problems

LONG = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"  # + 2: 64


def long_member(number: int) -> str:
    member = f"{number:02d}{LONG}"
    assert len(member) == 64
    return member


_events = itertools.count(1)


def open_home(bot: BotHarness, user: str) -> httpx.Response:
    """Open the App Home tab as `user`, as Slack sends it."""
    event = {
        "token": "fake-verification-token",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": f"EvLong{next(_events)}",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"},
    }
    return bot.sender.post(json.dumps(event), content_type="application/json")


def ack_body(bot: BotHarness, text: str, user: str) -> dict[str, Any]:
    """The whole ack of a command: its text and blocks."""
    response = bot.command(text, user=user)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_home_with_20_waiting_requests_for_64_character_members_is_published(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot()
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("UAPP", Role.APPROVER)
    for number in range(1, 21):
        bot.ack_text(f"{IMAGE} {long_member(number)} QA run {number}", user="UREQ")
    for number in range(1, 21):
        bot.wait_state("awaiting_approval", request_id=number)

    assert open_home(bot, "UAPP").status_code == 200

    [published] = slack.wait_for(lambda: slack.calls("views.publish"), what="the Home tab")
    assert published.ok, published.response
    view = published.args["view"]
    assert view_problems(view) == []
    text = all_text(view)
    assert "Waiting for a decision" in text and "more waiting" not in text
    assert all(f"#{n} share" in text and long_member(n) in text for n in range(1, 21))
    cards = [c.ts for c in slack.messages("CAPPROVE")]
    assert len(cards) == 20
    assert all(f"/p{str(ts).replace('.', '')}|#" in text for ts in cards)


def test_a_card_for_200_approvers_mentions_five_and_counts_the_rest(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot()
    bot.grant("UREQ", Role.REQUESTER)
    for number in range(200):
        bot.grant(f"UAPP{number:03d}", Role.APPROVER)

    bot.ack_text(f"{IMAGE} {long_member(1)} QA run", user="UREQ")
    bot.wait_state("awaiting_approval")

    posted: Call = bot.parent("CAPPROVE")
    assert posted.ok
    assert message_problems(posted.args["text"], posted.args["blocks"]) == []
    shown = all_text(posted.args["blocks"])
    assert "approvers: <@UAPP000>, <@UAPP001>, <@UAPP002>, <@UAPP003>, <@UAPP004>" in shown
    assert "<@UAPP005>" not in shown
    assert "and 195 more approvers" in shown and "and 195 more approvers" in posted.args["text"]
    # The card still works: an approver far down the list decides from it.
    bot.sender.click(posted, "approve", user_id="UAPP150")
    assert bot.wait_state("pending").decided_by == "UAPP150"


def test_list_of_an_image_with_300_members_is_one_answer_with_the_count(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    for number in range(300):
        bot.call(bot.services.cloud.add_member(IMAGE, f"m{number:03d}-{LONG}"[:64]))
    sandbox.set_member_status(IMAGE, f"m000-{LONG}"[:64], "accepted")

    url = slack.response_url("long-list")
    assert bot.command(f"list {IMAGE}", response_url=url).status_code == 200

    [listed] = slack.wait_for(lambda: slack.responses("long-list"), what="the member list")
    assert listed.ok
    body = listed.body
    assert message_problems(body["text"], body["blocks"]) == []
    shown = all_text(body["blocks"])
    assert shown.startswith(f"Members of image `{IMAGE}`:")
    assert shown.count("• `m") == 100
    note = (
        "300 members; showing the 100 most recently updated. By status: pending 299 · accepted 1."
    )
    assert note in shown and note in body["text"]
    assert len(slack.responses("long-list", include_rejected=True)) == 1


def test_700_grants_are_one_answer_with_the_count(bot: BotHarness) -> None:
    for number in range(700):
        bot.grant(f"U{number:05d}", Role.REQUESTER, IMAGE if number % 2 else "")

    body = ack_body(bot, "admin grants", user="UADMIN")

    assert message_problems(body["text"], body["blocks"]) == []
    shown = all_text(body["blocks"])
    assert shown.startswith("Grants:") and shown.count("• <@") == 100
    assert "702 grants; showing the first 100. `python -m bot grants`" in shown
    assert "702 grants; showing the first 100" in body["text"]


def test_oncall_list_shows_current_and_coming_shifts_and_past_ones_on_request(
    bot: BotHarness,
) -> None:
    now = bot.clock()
    shifts = {
        "UPAST1": (now - timedelta(days=9), now - timedelta(days=8)),
        "UPAST2": (now - timedelta(days=2), now - timedelta(days=1)),
        "UNOW": (now - timedelta(hours=1), now + timedelta(hours=7)),
        "UNEXT": (now + timedelta(days=1), now + timedelta(days=2)),
    }
    for user, (starts, ends) in shifts.items():
        bot.services.oncall.add(user, starts, ends, by="test")

    body = ack_body(bot, "admin oncall list", user="UADMIN")

    assert message_problems(body["text"], body["blocks"]) == []
    assert "<@UNOW>" in body["text"] and "<@UNEXT>" in body["text"]
    assert "UPAST" not in body["text"]
    assert "2 past shift(s) not shown; `/share-image admin oncall list all` shows them." in (
        all_text(body["blocks"])
    )
    for command in ("admin oncall list all", "admin oncall list --all"):
        everything = ack_body(bot, command, user="UADMIN")["text"]
        assert all(f"<@{user}>" in everything for user in shifts)
        assert "past shift" not in everything
    assert bot.ack_text("admin oncall list yesterday", user="UADMIN").startswith(
        "I didn't expect `yesterday` there."
    )


def test_a_deny_modal_with_forged_metadata_is_refused_in_the_modal(bot: BotHarness) -> None:
    forged = {"type": "modal", "callback_id": "deny_reason", "private_metadata": "1 OR 1=1|C|1.2"}

    response = bot.submit_view("UADMIN", forged, {})

    assert response.json() == {
        "response_action": "errors",
        "errors": {"reason": "That request doesn't exist (any more); nothing was done."},
    }
