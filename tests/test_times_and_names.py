"""What a new user reads, end to end: times in BOT_TIMEZONE in one format everywhere, the
image's name in the ack and the reminder, and durations that differ when a request joins
another. Signed Slack requests in, the fake Slack and the sandbox out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, BotHarness, adds

NAMED = "`rocky9-golden` · Rocky 9.4 · `70a599e0…`"
SEOUL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d Asia/Seoul")


@pytest.fixture
def named(sandbox: Sandbox, make_bot: Callable[..., BotHarness]) -> Callable[..., BotHarness]:
    """A bot whose stored image list names IMAGE (the worker reads it at start)."""
    sandbox.add_image(IMAGE, name="rocky9-golden", os_distro="rocky", scp_os_version="9.4")

    def make(**settings: str) -> BotHarness:
        bot = make_bot(SHARE_NOTIFY_CHANNEL="CNOTIFY", **settings)
        bot.grant("USHARE", Role.SHARER)
        bot.grant("UREQ", Role.REQUESTER)
        bot.grant("UAPP", Role.APPROVER)
        bot.services.members.add(MEMBER, MEMBER_NAME, by="test")
        return bot

    return make


def test_the_ack_names_the_image_from_the_stored_list_without_asking_the_cloud(
    named: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = named()
    bot.stop_worker()  # nothing but the ack path runs
    before = len(sandbox.records)

    ack = bot.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")

    assert ack.startswith(f"On it: sharing image {NAMED} with `{MEMBER}` (QA account).")
    assert len(sandbox.records) == before
    bot.start_worker()
    bot.wait_state("pending")
    assert len(adds(sandbox)) == 1


def test_an_image_the_bot_does_not_know_is_shown_by_its_id_in_the_ack(bot: BotHarness) -> None:
    ack = bot.ack_text(f"{IMAGE} {MEMBER}")
    assert ack.startswith(f"On it: sharing image `{IMAGE}` with `{MEMBER}`")


def test_a_request_joining_one_with_another_duration_is_told_they_differ(
    named: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = named()
    bot.ack_text(f"{IMAGE} {MEMBER} --for 7d first", user="UREQ")
    bot.wait_state("awaiting_approval")

    longer = bot.ack_text(f"{IMAGE} {MEMBER} --for 30d", user="UREQ")
    open_ended = bot.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")
    same = bot.ack_text(f"{IMAGE} {MEMBER} --for 7d", user="UREQ")

    assert longer.startswith(f"Request #1 for image {NAMED} and `{MEMBER}` (QA account)")
    assert longer.endswith(
        "The durations differ: that request is for `7d`, yours for `30d`."
        " A request waiting for its answer keeps its own."
    )
    assert "that request is for `7d`, yours until removed." in open_ended
    assert "durations differ" not in same
    assert [r.duration for r in bot.all_requests()] == ["7d"]
    assert adds(sandbox) == []


def test_korean_readers_are_told_the_durations_differ_too(
    named: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = named()
    slack.set_locale("UREQ", "ko-KR")
    bot.ack_text(f"{IMAGE} {MEMBER} --for 7d", user="UREQ")  # looked up after this ack
    bot.wait_state("awaiting_approval")
    slack.wait_for(lambda: bot.services.languages.known("UREQ") == "ko", what="the user's language")

    ack = bot.ack_text(f"{IMAGE} {MEMBER} --for 1d", user="UREQ")

    assert "기간이 다릅니다: 그 요청은 `7d` 동안, 이번 요청은 `1d` 동안입니다." in ack


def test_every_time_is_shown_in_the_bots_zone_in_one_format(
    named: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = named(BOT_TIMEZONE="Asia/Seoul")
    bot.ack_text(f"{IMAGE} {MEMBER} --for 3d QA run", user="USHARE")
    shared = bot.wait_state("pending")
    parent = bot.parent("C1")
    [reply] = bot.wait_thread(parent)

    # The thread: added, updated and the end, all in Seoul time.
    assert len(SEOUL_TIME.findall(reply)) == 3
    ends = shared.ends_at
    assert ends is not None
    seoul = bot.settings.timezone
    assert f"I'll remove it by itself {ends.astimezone(seoul):%Y-%m-%d %H:%M} Asia/Seoul" in reply
    assert "UTC" not in reply and "<!date" not in reply

    status = bot.ack_text("status", user="USHARE")
    asked = shared.created_at.astimezone(bot.settings.timezone)
    assert f"({asked:%Y-%m-%d %H:%M} Asia/Seoul)" in status and "UTC" not in status

    url = slack.response_url("list")
    bot.command(f"list {IMAGE}", user="USHARE", response_url=url)
    [listed] = slack.wait_for(lambda: slack.responses("list"), what="the member list")
    text = listed.body["text"]
    assert len(SEOUL_TIME.findall(text)) == 3  # added, updated, removed by the bot
    assert "UTC" not in text

    # The reminder, a day before the end: the image by its name, the end in Seoul time.
    bot.clock.advance(days=2, minutes=1)
    bot.worker.wake()
    reminder = slack.wait_for(
        lambda: next(
            (c for c in slack.messages() if c.ts and c.ts == bot.told().reminder_ts), None
        ),
        what="the reminder",
    )
    text = reminder.args["text"]
    assert f"<@USHARE>: `{MEMBER}` (QA account)'s share of image {NAMED} ends " in text
    assert SEOUL_TIME.search(text) and "UTC" not in text
    assert f"`{IMAGE}`" not in json.dumps(reminder.args["blocks"])


def test_the_approval_card_and_parent_show_times_in_the_bots_zone(
    named: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = named(BOT_TIMEZONE="Asia/Seoul", SHARE_APPROVAL_CHANNEL="CAPPROVE")
    bot.ack_text(f"{IMAGE} {MEMBER} --for 7d", user="UREQ")
    bot.wait_state("awaiting_approval")
    card = slack.wait_for(lambda: slack.messages("CAPPROVE"), what="the card")[0]
    shown = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert len(SEOUL_TIME.findall(shown)) == 2  # asked, expires
    assert "UTC" not in shown and "<!date" not in shown
