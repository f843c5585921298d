"""Approvals, notifications, following a share, and the commands around them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.request import ShareRequest
from bot.sharing.values import Role, SlackData
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, OTHER_IMAGE, BotHarness, adds

UNKNOWN = "ffffffffffffffffffffffffffffffff"


def card(bot: BotHarness) -> Call:
    """The approval card the bot posted."""
    return bot.parent("CAPPROVE")


def ask(bot: BotHarness, user: str = "UREQ", member: str = MEMBER, reason: str = "QA run") -> Call:
    """A request that waits for approval, and its card."""
    bot.ack_text(f"{IMAGE} {member} {reason}", user=user)
    bot.wait_state("awaiting_approval")
    return card(bot)


def thread_of(bot: BotHarness, count: int) -> list[str]:
    return bot.wait_thread(bot.parent("C1"), count)


def test_a_request_posts_a_card_and_nothing_reaches_the_cloud(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)

    text = json.dumps(posted.args["blocks"])
    assert "Share request #1" in text
    assert f"<@UREQ> asks to share image `{IMAGE}` with `{MEMBER}` (QA account)" in text
    assert "Reason: QA run" in text
    assert "Nobody is on call; approvers: <@UAPP1>, <@UAPP2>" in text
    actions = next(b for b in posted.args["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["approve", "deny"]
    [waiting] = thread_of(team, 1)
    assert "This needs approval (your role asks for approval)" in waiting
    assert "<#CAPPROVE>" in waiting and "https://slack.com/archives/CAPPROVE/p" in waiting
    assert adds(sandbox) == []


def test_the_card_mentions_whoever_is_on_call(team: BotHarness) -> None:
    now = team.clock()
    team.services.oncall.add(
        "UONCALL", now.replace(year=now.year - 1), now.replace(year=now.year + 1), by="test"
    )
    posted = ask(team)
    assert "On call: <@UONCALL>" in json.dumps(posted.args["blocks"])


def test_approve_shares_once_and_tells_everyone(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)

    response = team.sender.click(posted, "approve", user_id="UAPP1")

    assert response.status_code == 200
    replies = thread_of(team, 3)
    assert replies[1] == "Approved by <@UAPP1>. Working on it now."
    assert replies[2].startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    request = team.wait_state("pending")
    assert request.decided_by == "UAPP1"
    assert len(adds(sandbox)) == 1
    assert posted.ts is not None
    [card_update] = slack.updates(posted.ts)
    assert "Approved by <@UAPP1>" in json.dumps(card_update.args["blocks"])
    assert "actions" not in [b["type"] for b in card_update.args["blocks"]]
    [line] = slack.messages("CNOTIFY")
    assert line.args["text"].startswith(":white_check_mark: <@UREQ> · share image")
    assert "https://slack.com/archives/C1/p" in line.args["text"]


@pytest.mark.parametrize(
    ("clicker", "expected"),
    [
        ("UREQ", "Only approvers and admins can decide"),
        ("USHARE", "Only approvers and admins can decide"),
        ("UNOBODY", "Only approvers and admins can decide"),
    ],
)
def test_a_click_without_the_right_is_refused_and_changes_nothing(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, clicker: str, expected: str
) -> None:
    posted = ask(team)

    team.sender.click(posted, "approve", user_id=clicker)

    [refusal] = slack.wait_for(lambda: slack.responses(), what="an ephemeral refusal")
    assert expected in refusal.body["text"]
    assert refusal.body["response_type"] == "ephemeral"
    assert refusal.body.get("replace_original") is False
    time.sleep(0.1)
    assert team.request().state == "awaiting_approval"
    assert adds(sandbox) == [] and slack.updates(posted.ts) == []


def test_the_card_and_a_refused_click_name_the_same_people_in_the_same_order(
    team: BotHarness, slack: FakeSlack
) -> None:
    # Who may approve: the approvers of this image, then of all images, then the admins;
    # an approver of another image is no help here.
    team.grant("UIMAGE", Role.APPROVER, IMAGE)
    team.grant("UELSEWHERE", Role.APPROVER, OTHER_IMAGE)
    people = "<@UIMAGE>, <@UAPP1>, <@UAPP2>, <@UADMIN>"
    posted = ask(team)

    assert f"Nobody is on call; approvers: {people}" in json.dumps(posted.args["blocks"])
    team.sender.click(posted, "approve", user_id="USHARE")

    [refusal] = slack.wait_for(lambda: slack.responses(), what="an ephemeral refusal")
    assert refusal.body["text"] == (
        f"Only approvers and admins can decide share requests. Who may decide this one: {people}."
    )
    assert team.request().state == "awaiting_approval"


def test_nobody_approves_their_own_request(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.grant("UAPP1", Role.REQUESTER)
    posted = ask(team, user="UAPP1")

    team.sender.click(posted, "approve", user_id="UAPP1")

    [refusal] = slack.wait_for(lambda: slack.responses(), what="an ephemeral refusal")
    assert "You can't decide your own request" in refusal.body["text"]
    time.sleep(0.1)
    assert team.request().state == "awaiting_approval" and adds(sandbox) == []


def test_simultaneous_and_double_clicks_give_one_decision_and_one_call(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)
    sandbox.delay = 0.3
    clicks = [
        ("UAPP1", "approve"),
        ("UAPP2", "approve"),
        ("UAPP1", "approve"),
        ("UADMIN", "approve"),
        ("UAPP2", "deny"),
    ]
    barrier = threading.Barrier(len(clicks))
    statuses: list[int] = []

    def click(user: str, action: str) -> None:
        barrier.wait()
        statuses.append(team.sender.click(posted, action, user_id=user).status_code)

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200] * len(clicks)
    request = team.wait_state("pending")
    refusals = slack.wait_for(
        lambda: len(slack.responses()) >= 3 and slack.responses(), what="refusals for the losers"
    )
    assert request.decided_by in {"UAPP1", "UAPP2", "UADMIN"}
    assert all(
        r.body["text"] == f"Request #1 was already approved by <@{request.decided_by}>;"
        " nothing changed."
        for r in refusals
    )
    time.sleep(0.2)
    assert len(adds(sandbox)) == 1
    assert len(slack.updates(posted.ts)) == 1


def test_deny_asks_why_and_tells_the_requester(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)

    team.sender.click(posted, "deny", user_id="UAPP2")
    response = team.submit_deny("UAPP2", "Use the <!channel> *prod* image")

    assert response.status_code == 200
    request = team.wait_state("denied")
    assert (request.decided_by, request.deny_reason) == ("UAPP2", "Use the <!channel> *prod* image")
    replies = thread_of(team, 2)
    assert replies[1] == "Denied by <@UAPP2>. Reason: `Use the &lt;!channel&gt; *prod* image`"
    [card_update] = slack.updates(posted.ts)
    blocks = json.dumps(card_update.args["blocks"])
    assert "Denied by <@UAPP2>" in blocks and '"actions"' not in blocks
    assert adds(sandbox) == []
    [line] = slack.messages("CNOTIFY")
    assert ":no_entry:" in line.args["text"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("no\u202eway", "The reason has invisible or control characters; please retype it."),
        ("no\u200bway", "The reason has invisible or control characters; please retype it."),
        (
            "first line\nsecond line",
            "The reason has invisible or control characters; please retype it.",
        ),
        ("x" * 301, "Keep the reason under 300 characters."),
    ],
    ids=["bidi override", "zero-width space", "newline", "too long"],
)
def test_a_deny_reason_follows_the_share_reasons_rules_in_the_modal(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, typed: str, message: str
) -> None:
    posted = ask(team)
    team.sender.click(posted, "deny", user_id="UAPP2")

    response = team.submit_deny("UAPP2", typed)

    assert response.json() == {"response_action": "errors", "errors": {"reason": message}}
    request = team.request()
    assert (request.state, request.decided_by, request.deny_reason) == (
        "awaiting_approval",
        None,
        None,
    )
    assert slack.updates(posted.ts) == []
    if "\n" not in typed:  # a command is one line: its words are joined by spaces
        # The same words as a share reason that breaks the same rule.
        assert team.ack_text(f"{IMAGE} {MEMBER} {typed}", user="UREQ").startswith(message)


def test_the_deny_modal_asks_for_one_line(team: BotHarness, slack: FakeSlack) -> None:
    posted = ask(team)
    team.sender.click(posted, "deny", user_id="UAPP2")
    [opened] = slack.wait_for(lambda: slack.calls("views.open"), what="the deny modal")
    [field] = opened.args["view"]["blocks"]
    assert field["element"].get("multiline", False) is False
    assert field["element"]["max_length"] == 300


def test_a_deny_modal_from_a_non_approver_is_refused_in_the_modal(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)
    team.sender.click(posted, "deny", user_id="UAPP2")

    response = team.submit_deny("USHARE", "no")

    assert response.json()["response_action"] == "errors"
    assert "Only approvers" in response.json()["errors"]["reason"]
    assert team.request().state == "awaiting_approval"


def test_stale_requests_expire_and_late_clicks_only_explain(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    posted = ask(team)

    team.clock.advance(hours=24, seconds=1)
    team.worker.wake()
    team.wait_state("expired")

    replies = thread_of(team, 2)
    assert "Nobody decided within 24 hours, so this request expired" in replies[1]
    [card_update] = slack.updates(posted.ts)
    assert "Expired" in json.dumps(card_update.args["blocks"])
    team.sender.click(posted, "approve", user_id="UAPP1")
    [late] = slack.wait_for(lambda: slack.responses(), what="a late-click explanation")
    assert "expired before a decision; nothing was sent" in late.body["text"]
    assert team.request().state == "expired" and adds(sandbox) == []


def test_a_second_request_points_to_the_first(team: BotHarness, sandbox: Sandbox) -> None:
    ask(team)

    again = team.ack_text(f"{IMAGE} {MEMBER} again", user="UAPP1")

    assert again.startswith("Request #1 for image")
    assert "is already awaiting approval" in again
    assert "https://slack.com/archives/C1/p" in again
    assert len(team.all_requests()) == 1


def test_sharing_with_an_unknown_member_needs_approval(team: BotHarness, sandbox: Sandbox) -> None:
    ack = team.ack_text(f"{IMAGE} {UNKNOWN}", user="USHARE")

    assert f"`{UNKNOWN}` is not a registered member" in ack
    team.wait_state("awaiting_approval")
    assert adds(sandbox) == []


def test_with_unknown_members_direct_sharers_share_with_anyone(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make_bot(SHARE_UNKNOWN_MEMBERS="direct")
    bot.grant("USHARE", Role.SHARER)
    assert bot.ack_text(f"{IMAGE} {UNKNOWN}", user="USHARE").startswith("On it")
    bot.wait_state("pending")
    assert len(adds(sandbox)) == 1


@pytest.mark.parametrize(
    ("final", "icon", "words"),
    [
        ("accepted", ":tada:", "*accepted* image"),
        ("rejected", ":leftwards_arrow_with_hook:", "*rejected* image"),
    ],
)
def test_a_pending_share_is_followed_until_the_account_decides(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, final: str, icon: str, words: str
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")

    team.clock.advance(seconds=301)  # not yet decided: still pending, checked again later
    team.worker.wake()
    slack.wait_for(
        lambda: len([r for r in sandbox.records if r.method == "GET"]) >= 1, what="a status read"
    )
    sandbox.set_member_status(IMAGE, MEMBER, final)
    team.clock.advance(seconds=301)
    team.worker.wake()
    request = team.wait_state(final)

    replies = team.wait_thread(parent, 2)
    assert words in replies[1]
    assert request.member_status == final
    assert final in json.dumps(slack.updates(parent.ts)[-1].args["blocks"])
    lines = [m.args["text"] for m in slack.messages("CNOTIFY")]
    assert lines[-1].startswith(f"{icon} <@USHARE>")


def test_following_survives_a_restart(team: BotHarness, sandbox: Sandbox, slack: FakeSlack) -> None:
    team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    team.wait_state("pending")
    team.stop_worker()

    sandbox.set_member_status(IMAGE, MEMBER, "accepted")
    team.clock.advance(seconds=301)
    team.start_worker()

    team.wait_state("accepted")
    assert len(adds(sandbox)) == 1


def test_following_stops_after_the_follow_days(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")

    team.clock.advance(days=7, seconds=1)
    team.worker.wake()
    replies = team.wait_thread(parent, 2)

    assert "still hasn't accepted the image into its own list after 7 days" in replies[1]
    assert "(it can use it all the same); I've stopped checking" in replies[1]
    assert team.request().next_poll_at is None


def test_korean_users_get_korean_messages(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    slack.set_locale("USHARE", "ko-KR")

    # The very first ack comes before the bot may ask Slack (no network on the ack
    # path): it is in the default language. Everything after is in Korean.
    first = team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")

    assert first.startswith("On it")
    [reply] = team.wait_thread(team.parent("C1"))
    assert reply.startswith("공유했습니다.")
    assert team.request().language == "ko"
    assert team.ack_text("help", user="USHARE").startswith("*사용법*")
    bad = team.ack_text(f"nope {MEMBER}", user="USHARE")
    assert "`nope`은(는) 이미지 ID가 아닙니다" in bad
    assert [c.args["user"] for c in slack.calls("users.info")] == ["USHARE"]


def test_the_default_language_answers_users_the_bot_does_not_know_yet(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot(BOT_DEFAULT_LANGUAGE="ko")
    bot.grant("U1", Role.SHARER)
    slack.set_locale("U1", "en-US")

    assert bot.ack_text(f"{IMAGE} {MEMBER}").startswith("승인이 필요합니다")
    [waiting] = bot.wait_thread(bot.parent("C1"))
    assert waiting.startswith("This needs approval")  # the user's own language from here on
    assert bot.ack_text("help").startswith("*Usage*")


def test_list_unshare_and_status(team: BotHarness, sandbox: Sandbox, slack: FakeSlack) -> None:
    team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    team.wait_state("pending")

    url = slack.response_url("list")
    assert team.command(f"list {IMAGE}", user="USHARE", response_url=url).status_code == 200
    [listed] = slack.wait_for(lambda: slack.responses("list"), what="the member list")
    assert f"Members of image `{IMAGE}`:" in listed.body["text"]
    assert (
        f"• `{MEMBER}` (QA account): *pending: can use it, not yet in their list*"
        in (listed.body["text"])
    )

    assert team.ack_text(f"unshare {IMAGE} {MEMBER} done", user="USHARE").startswith(
        "On it: unsharing"
    )
    team.wait_state("removed", request_id=2)
    assert sandbox.members(IMAGE) == []
    # The remove, then the member list read back: it must show the member gone.
    assert [r.method for r in sandbox.records if r.path.startswith("/v1/")][-2:] == [
        "DELETE",
        "GET",
    ]

    status = team.ack_text("status", user="USHARE")
    assert status.startswith("Your recent requests:")
    assert "#2 unshare" in status and "removed" in status and "#1 share" in status


def test_admins_manage_grants_members_and_oncall_from_slack(
    team: BotHarness, sandbox: Sandbox
) -> None:
    team.slack.add_user("U0NEWBIE", name="newbie")
    assert team.ack_text("admin grant <@U0NEWBIE|newbie> sharer", user="UADMIN") == (
        "<@U0NEWBIE> is now sharer for all images."
    )
    assert Role.SHARER in team.services.grants.roles("U0NEWBIE", IMAGE)
    assert team.ack_text(
        f"admin grant <@U0NEWBIE> approver {OTHER_IMAGE}", user="UADMIN"
    ).startswith("<@U0NEWBIE> is now approver for `")
    assert "<@U0NEWBIE>: sharer (all images)" in team.ack_text("admin grants", user="UADMIN")
    assert team.ack_text("admin revoke <@U0NEWBIE> sharer", user="UADMIN") == (
        "<@U0NEWBIE> is no longer sharer for all images."
    )
    assert team.ack_text(f"admin member add {UNKNOWN} Partner QA", user="UADMIN") == (
        f"`{UNKNOWN}` is now known as Partner QA."
    )
    assert "Partner QA" in team.ack_text("admin member list", user="UADMIN")
    assert team.ack_text(
        "admin oncall add <@U0NEWBIE> 2099-01-01T00:00Z 2099-01-02T00:00Z", user="UADMIN"
    ).startswith("<@U0NEWBIE> is on call from 2099-01-01 00:00 UTC to 2099-01-02 00:00 UTC")
    assert "<@U0NEWBIE>" in team.ack_text("admin oncall list", user="UADMIN")
    team.clock.advance(days=(datetime(2099, 1, 3, tzinfo=UTC) - team.clock()).days + 1)
    assert "<@U0NEWBIE>" not in team.ack_text("admin oncall list", user="UADMIN")  # past
    assert "<@U0NEWBIE>" in team.ack_text("admin oncall list all", user="UADMIN")

    audit = [(a["actor"], a["action"]) for a in team.services.audit.recent()]
    assert ("UADMIN", "grant") in audit and ("UADMIN", "revoke") in audit
    assert ("UADMIN", "member add") in audit and ("UADMIN", "oncall add") in audit


def test_a_member_added_again_in_another_case_is_renamed_and_says_so(team: BotHarness) -> None:
    team.ack_text(f"admin member add {UNKNOWN.upper()} Partner QA", user="UADMIN")

    assert team.ack_text(f"admin member add {UNKNOWN} Partner QA team", user="UADMIN") == (
        f"`{UNKNOWN.upper()}` was known already, as Partner QA; it is now known as"
        " Partner QA team. (Ids alike but for case are the same member.)"
    )
    known = [(m.member_id, m.name) for m in team.services.members.all()]
    assert (UNKNOWN.upper(), "Partner QA team") in known
    assert UNKNOWN not in [member for member, _ in known]


@pytest.mark.parametrize(
    ("window", "said"),
    [
        (
            "2020-01-01T09:00Z 2020-01-01T17:00Z",
            "That shift is over already (it ends before now), so it was not added.",
        ),
        (
            "2099-01-01T09:00Z 2199-01-01T09:00Z",
            "A shift can last at most 31 days, and this one is longer, so it was not added.",
        ),
    ],
)
def test_a_shift_over_already_or_longer_than_a_month_is_refused_in_slack(
    team: BotHarness, slack: FakeSlack, window: str, said: str
) -> None:
    asked_before = len(slack.calls("users.info"))

    ack = team.ack_text(f"admin oncall add <@UAPP1> {window}", user="UADMIN")

    assert ack.startswith(said)
    assert team.services.oncall.all() == []
    assert len(slack.calls("users.info")) == asked_before  # refused before asking Slack


def test_only_admins_may_administer(team: BotHarness) -> None:
    ack = team.ack_text("admin grant <@UREQ> admin", user="UAPP1")
    assert ack.startswith("Only admins can do that. Admins: <@UADMIN>")
    assert Role.ADMIN not in team.services.grants.roles("UREQ", "")


def test_the_home_tab_shows_requests_and_what_waits(team: BotHarness, slack: FakeSlack) -> None:
    ask(team)

    for user in ("UREQ", "UAPP1"):
        event = {
            "token": "fake-verification-token",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{user}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"},
        }
        assert (
            team.sender.post(json.dumps(event), content_type="application/json").status_code == 200
        )
    published = slack.wait_for(
        lambda: len(slack.calls("views.publish")) == 2 and slack.calls("views.publish"),
        what="two home tabs",
    )
    by_user = {c.args["user_id"]: json.dumps(c.args["view"]) for c in published}
    assert "#1 share" in by_user["UREQ"] and "Waiting for a decision" not in by_user["UREQ"]
    assert "Waiting for a decision" in by_user["UAPP1"] and "#1 share" in by_user["UAPP1"]


def test_a_click_while_the_request_is_still_being_announced_is_announced_too(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    announcer = team.services.announcer
    post = announcer._post

    async def click_during_the_reply(
        request: ShareRequest, told: SlackData, step: str, **args: Any
    ) -> dict[str, Any]:
        # The approver clicks in the instant between the card and its thread message.
        if step == "awaiting_approval:reply" and request.state == "awaiting_approval":
            assert team.services.share.decide(request.id, "UAPP1", approve=True).request
        return await post(request, told, step, **args)

    announcer._post = click_during_the_reply  # type: ignore[method-assign]
    posted = ask_until_carded(team)

    request = team.wait_state("pending")
    assert request.decided_by == "UAPP1"
    replies = thread_of(team, 3)
    assert replies[1:] == [
        "Approved by <@UAPP1>. Working on it now.",
        replies[2],
    ] and replies[2].startswith("Shared:")
    [card_update] = slack.updates(posted.ts)
    assert "Approved by <@UAPP1>" in json.dumps(card_update.args["blocks"])
    assert len(adds(sandbox)) == 1


def ask_until_carded(team: BotHarness) -> Call:
    """Ask for approval and return the card, whatever state the request reaches next."""
    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    return card(team)


def test_a_channel_slack_refuses_for_good_is_skipped_not_retried_forever(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.not_in_channel.add("CNOTIFY")  # the bot was never invited to the notify channel
    team.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    team.wait_state("pending")
    parent = team.parent("C1")

    sandbox.set_member_status(IMAGE, MEMBER, "accepted")
    team.clock.advance(seconds=301)
    team.worker.wake()
    request = team.wait_state("accepted")

    replies = team.wait_thread(parent, 2)
    assert "*accepted* image" in replies[1]
    assert "accepted" in json.dumps(slack.updates(parent.ts)[-1].args["blocks"])
    assert team.told(request.id).delivery_failures == 0
    refused = [r for r in caplog.records if "refused a message for good" in r.getMessage()]
    assert len(refused) == 2  # the pending line and the accepted line, once each


def test_an_approval_nobody_can_see_fails_at_once_and_says_why(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    slack.not_in_channel.add("CAPPROVE")  # the bot is not in the approval channel

    team.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")

    request = team.wait_state("failed")
    assert request.error_kind == "approval_unreachable"
    [reply] = thread_of(team, 1)
    assert reply.startswith("This needs an approver's OK, but I can't post the approval card")
    assert "<@UADMIN>" in reply
    assert adds(sandbox) == []
