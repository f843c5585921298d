"""End to end: the bot reads PagerDuty and a calendar feed, and its cards, `oncall list`,
`check` and metrics follow the rota."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.check import run_check
from bot.metrics_page import MetricsPage
from bot.scp.sandbox import Sandbox
from bot.services import make_web_client
from bot.sharing.values import Role
from tests.fakes.oncall import FakeCalendarFeed, FakePagerDuty, PdUser
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, BotHarness

ALICE = PdUser("PALICE1", "Alice Kim", "alice@example.com")
BOB = PdUser("PBOB001", "Bob Lee", "bob@example.com")
CAROL = PdUser("PCAROL1", "Carol Park", "carol@example.com")
DAVE = PdUser("PDAVE01", "Dave Cho", "dave@example.com")  # not in Slack
OTHER_MEMBER = "b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


def next_nine(now: datetime) -> datetime:
    """The next 09:00 UTC at least an hour away."""
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return nine if nine > now + timedelta(hours=1) else nine + timedelta(days=1)


@pytest.fixture
def rota_team(
    make_bot: Callable[..., BotHarness], pagerduty: FakePagerDuty, slack: FakeSlack
) -> Callable[..., BotHarness]:
    """A team whose rota is in PagerDuty: Alice until the next 09:00, then Bob."""

    def make(**overrides: Any) -> BotHarness:
        for user, person in (("UALICE", ALICE), ("UBOB", BOB), ("UCAROL", CAROL)):
            slack.add_person(user, person.email)
        values = {
            "ONCALL_PAGERDUTY_TOKEN": pagerduty.token,
            "ONCALL_PAGERDUTY_URL": pagerduty.url,
            "ONCALL_PAGERDUTY_SCHEDULES": "PSCHED1",
            **overrides,
        }
        bot = make_bot(**values)
        bot.grant("UREQ", Role.REQUESTER)
        for user in ("UALICE", "UBOB", "UCAROL", "UAPP"):
            bot.grant(user, Role.APPROVER)
        bot.grant("UADMIN", Role.ADMIN)
        bot.services.members.add(MEMBER, MEMBER_NAME, by="test")
        return bot

    return make


def cards(bot: BotHarness, count: int) -> list[Call]:
    """The first `count` approval cards, once posted."""
    return bot.slack.wait_for(
        lambda: (
            found
            if len(
                found := [c for c in bot.slack.messages("CAPPROVE") if not c.args.get("thread_ts")]
            )
            >= count
            else None
        ),
        what=f"{count} approval cards",
    )[:count]


def people_line(card: Call) -> str:
    """The card's line saying who is asked."""
    context = [b for b in card.args["blocks"] if b["type"] == "context"][-1]
    return str(context["elements"][-1]["text"])


def ask(bot: BotHarness, number: int, member: str = MEMBER) -> Call:
    bot.ack_text(f"{IMAGE} {member} QA run", user="UREQ")
    bot.wait_state("awaiting_approval", number)
    return cards(bot, number)[number - 1]


def test_the_card_follows_pagerduty_and_never_waits_on_it(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty
) -> None:
    now = datetime.now().astimezone()
    nine = next_nine(now)
    pagerduty.on_call("PSCHED1", ALICE, nine - timedelta(days=1), nine)
    pagerduty.on_call("PSCHED1", BOB, nine, nine + timedelta(days=1))
    bot = rota_team()
    read = len(pagerduty.oncall_requests())
    assert read == 1  # read once when the worker started

    first = ask(bot, 1)
    bot.clock.advance(seconds=(nine + timedelta(minutes=1) - bot.clock()).total_seconds())
    second = ask(bot, 2, OTHER_MEMBER)

    assert people_line(first) == "On call: <@UALICE>"  # not every approver as well
    assert people_line(second) == "On call: <@UBOB>"
    assert len(pagerduty.oncall_requests()) == read  # the requests asked PagerDuty nothing


def test_pagerduty_down_keeps_the_stored_rota_and_check_says_how_old(
    rota_team: Callable[..., BotHarness],
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    sandbox: Sandbox,
) -> None:
    now = datetime.now().astimezone()
    pagerduty.on_call("PSCHED1", ALICE, now - timedelta(hours=1), now + timedelta(days=3))
    bot = rota_team()
    pagerduty.down = True
    bot.clock.advance(hours=2)

    [done] = bot.call(bot.services.rota_keeper.refresh())
    card = ask(bot, 1)
    lines: list[str] = []
    code = run_check(
        bot.settings, slack=make_web_client(bot.settings), echo=lines.append, now=bot.clock()
    )

    assert not done.ok and done.error == "PagerDuty: /oncalls answered 503"
    assert people_line(card) == "On call: <@UALICE>"
    assert code == 1
    at = next(n for n, line in enumerate(lines) if "on-call source PagerDuty" in line)
    assert lines[at : at + 2] == [
        "[FAIL] on-call source PagerDuty: /oncalls answered 503; the stored rota is 2 h old",
        "    do:     the worker keeps the stored rota and tries again at each refresh",
    ]


def test_a_rota_older_than_a_day_falls_back_to_the_approvers_and_says_so(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty
) -> None:
    now = datetime.now().astimezone()
    pagerduty.on_call("PSCHED1", ALICE, now - timedelta(hours=1), now + timedelta(days=3))
    bot = rota_team()
    pagerduty.down = True
    bot.clock.advance(hours=26)
    bot.call(bot.services.rota_keeper.refresh())

    card = ask(bot, 1)

    assert people_line(card) == (
        ":warning: The on-call rota from PagerDuty was last read 26 hours ago, so I'm not"
        " trusting it; asking the approvers instead.\n"
        "Nobody is on call; approvers: <@UALICE>, <@UAPP>, <@UBOB>, <@UCAROL>, <@UADMIN>"
    )


def test_someone_slack_does_not_know_is_named_and_the_card_falls_back(
    rota_team: Callable[..., BotHarness],
    pagerduty: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now().astimezone()
    pagerduty.on_call("PSCHED1", DAVE, now - timedelta(hours=1), now + timedelta(hours=8))
    caplog.set_level(logging.WARNING)
    bot = rota_team()

    card = ask(bot, 1)
    lines: list[str] = []
    run_check(bot.settings, slack=make_web_client(bot.settings), echo=lines.append)

    assert (
        people_line(card)
        == "Nobody is on call; approvers: <@UALICE>, <@UAPP>, <@UBOB>, <@UCAROL>, <@UADMIN>"
    )
    problem = "dave@example.com (Dave Cho): Slack knows nobody by that email"
    assert any(getattr(r, "problem", None) == problem for r in caplog.records)
    at = next(n for n, line in enumerate(lines) if "on-call source PagerDuty" in line)
    assert lines[at].startswith("[WARN] on-call source PagerDuty: read now: 1 shift")
    assert lines[at + 1] == "    dave@example.com: Slack knows nobody by that email"
    assert pagerduty.token not in "\n".join(lines)


def test_a_refused_token_is_a_clear_check_line_and_the_bot_keeps_working(
    rota_team: Callable[..., BotHarness],
    pagerduty: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = rota_team(ONCALL_PAGERDUTY_TOKEN="pd-revoked-key-1234567890")

    card = ask(bot, 1)
    lines: list[str] = []
    run_check(bot.settings, slack=make_web_client(bot.settings), echo=lines.append)

    assert people_line(card) == (
        ":warning: The on-call rota from PagerDuty could not be read yet; asking the approvers"
        " instead.\nNobody is on call; approvers: <@UALICE>, <@UAPP>, <@UBOB>, <@UCAROL>, <@UADMIN>"
    )
    at = next(n for n, line in enumerate(lines) if "on-call source PagerDuty" in line)
    assert lines[at : at + 2] == [
        "[FAIL] on-call source PagerDuty: refused ONCALL_PAGERDUTY_TOKEN (401: Unauthorized"
        " (code 2006)): give a valid REST API key (a read-only one is enough); no rota stored"
        " yet (the worker reads it at start)",
        "    do:     fix ONCALL_PAGERDUTY_TOKEN and run check again",
    ]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "refused ONCALL_PAGERDUTY_TOKEN (401" in logged
    assert "pd-revoked-key" not in logged + "\n".join(lines)


def test_an_admin_gives_an_image_its_own_schedule(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty
) -> None:
    now = datetime.now().astimezone()
    pagerduty.on_call("PSCHED1", ALICE, now - timedelta(hours=1), now + timedelta(hours=8))
    pagerduty.on_call("PTEAM02", CAROL, now - timedelta(hours=1), now + timedelta(hours=8))
    bot = rota_team()

    said = bot.ack_text(f"admin oncall schedule {IMAGE} PTEAM02", user="UADMIN")
    bot.call(bot.services.rota_keeper.refresh())
    card = ask(bot, 1)

    assert said == (
        f"Requests for image `{IMAGE}` now ask the on-call people of PagerDuty schedule `PTEAM02`."
    )
    assert bot.services.schedules.of(IMAGE) == "PTEAM02"
    [entry] = bot.services.audit.recent(1)
    assert (entry["actor"], entry["action"], entry["detail"]) == (
        "UADMIN",
        "oncall schedule",
        f"{IMAGE} PTEAM02",
    )
    assert pagerduty.oncall_requests()[-1].query["schedule_ids[]"] == ["PSCHED1", "PTEAM02"]
    assert people_line(card) == "On call: <@UCAROL>"

    cleared = bot.ack_text(f"admin oncall schedule {IMAGE} none", user="UADMIN")
    assert cleared == (
        f"Image `{IMAGE}` no longer has its own schedule (it asked `PTEAM02`); its requests"
        " ask the configured schedules."
    )
    assert bot.services.schedules.of(IMAGE) is None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            f"admin oncall schedule {IMAGE} P-1",
            "`P-1` is not a PagerDuty schedule id. Give one like `P1ABCDE` (the end of the"
            " schedule's address in PagerDuty), or `none` to clear it.",
        ),
        (
            "admin oncall schedule not-an-image PTEAM02",
            "`not-an-image` is not an image id. Image ids are UUIDs like"
            " `70a599e0-31e7-49b7-b260-868f441e862b`.",
        ),
        (f"admin oncall schedule {IMAGE} PTEAM02 extra", "I didn't expect `extra` there."),
    ],
)
def test_a_bad_schedule_command_changes_nothing(
    rota_team: Callable[..., BotHarness], text: str, said: str
) -> None:
    bot = rota_team()

    answer = bot.ack_text(text, user="UADMIN")

    assert answer.startswith(said), answer
    assert bot.services.schedules.all() == {}
    assert bot.services.audit.recent(5) == []


def test_oncall_list_shows_now_and_next_from_each_source(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty
) -> None:
    now = datetime.now().astimezone()
    nine = next_nine(now)
    pagerduty.on_call("PSCHED1", ALICE, nine - timedelta(days=1), nine)
    pagerduty.on_call("PSCHED1", BOB, nine, nine + timedelta(days=1))
    pagerduty.on_call("PSCHED1", DAVE, nine, nine + timedelta(days=1), level=2)
    bot = rota_team(BOT_TIMEZONE="Asia/Seoul")

    text = bot.ack_text("admin oncall list", user="UADMIN")

    shown = nine.astimezone(bot.settings.timezone).strftime("%Y-%m-%d %H:%M")
    assert text.splitlines()[:4] == [
        "*On call from PagerDuty* (read 0 minutes ago):",
        "Now: <@UALICE>",
        f"Next, from {shown} Asia/Seoul: <@UBOB>, `dave@example.com` (not found in Slack)",
        "No on-call shifts.",
    ]


def test_the_rota_age_is_a_metric(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty
) -> None:
    bot = rota_team()
    bot.clock.advance(seconds=90)

    page = MetricsPage(bot.services.requests, rota=bot.services.rota, max_age=0)
    text = page.render().decode()

    [line] = [x for x in text.splitlines() if x.startswith("share_image_oncall_rota_age_seconds")]
    assert line.startswith('share_image_oncall_rota_age_seconds{source="pagerduty"} 9')


# -- the calendar, end to end ------------------------------------------------------------------


def test_the_card_follows_a_calendar_feed(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    now = datetime.now().astimezone()
    start = (now - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    end = (now + timedelta(hours=5)).strftime("%Y%m%dT%H%M%SZ")
    feed = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        "BEGIN:VEVENT\r\nUID:a@example.com\r\nDTSTAMP:20261101T000000Z\r\n"
        f"DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Platform on call\r\n"
        "DESCRIPTION:Primary: carol@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    slack.add_person("UCAROL", CAROL.email)
    with FakeCalendarFeed(feed=feed) as calendar:
        bot = make_bot(ONCALL_ICAL_URL=calendar.url)
        bot.grant("UREQ", Role.REQUESTER)
        bot.grant("UCAROL", Role.APPROVER)
        bot.grant("UAPP", Role.APPROVER)
        bot.services.members.add(MEMBER, MEMBER_NAME, by="test")

        card = ask(bot, 1)

    assert people_line(card) == "On call: <@UCAROL>"
    assert json.dumps(card.args).count("<@UAPP>") == 0


def test_check_has_a_line_for_the_calendar_feed(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    now = datetime.now().astimezone()
    start = (now - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    end = (now + timedelta(hours=5)).strftime("%Y%m%dT%H%M%SZ")
    later = (now + timedelta(hours=9)).strftime("%Y%m%dT%H%M%SZ")
    feed = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        "BEGIN:VEVENT\r\nUID:a@example.com\r\nDTSTAMP:20261101T000000Z\r\n"
        f"DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Platform on call\r\n"
        "ATTENDEE;CN=Carol Park:mailto:carol@example.com\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:b@example.com\r\nDTSTAMP:20261101T000000Z\r\n"
        f"DTSTART:{end}\r\nDTEND:{later}\r\nSUMMARY:Backup (to be decided)\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    slack.add_person("UCAROL", CAROL.email)
    with FakeCalendarFeed(feed=feed) as calendar:
        bot = make_bot(ONCALL_ICAL_URL=calendar.url)
        bot.grant("UCAROL", Role.APPROVER)
        lines: list[str] = []
        run_check(bot.settings, slack=make_web_client(bot.settings), echo=lines.append)
        calendar.feed = b"<html>Sign in to see this calendar</html>"
        failing: list[str] = []
        code = run_check(bot.settings, slack=make_web_client(bot.settings), echo=failing.append)

    at = next(n for n, line in enumerate(lines) if "on-call source calendar" in line)
    assert lines[at].startswith(
        "[WARN] on-call source calendar feed (ONCALL_ICAL_URL): read now: 1 shift in the next"
        " 2 days, 1 approver matched in Slack; the stored rota is "
    )
    assert lines[at + 1].startswith("    the event 'Backup (to be decided)' from ")
    assert lines[at + 1].endswith(
        " names nobody: give it an ATTENDEE (mailto:) or an email in its summary"
    )
    assert code == 1
    [fail] = [line for line in failing if "on-call source calendar" in line]
    assert fail.startswith(
        "[FAIL] on-call source calendar feed (ONCALL_ICAL_URL): ONCALL_ICAL_URL's feed is not"
        " an iCalendar file"
    )
    assert "private-feed-key" not in "\n".join(lines + failing)


def test_a_reminder_mentions_who_pagerduty_says_is_on_call_when_it_fires(
    rota_team: Callable[..., BotHarness], pagerduty: FakePagerDuty, slack: FakeSlack
) -> None:
    now = datetime.now().astimezone()
    nine = next_nine(now)
    pagerduty.on_call("PSCHED1", ALICE, nine - timedelta(days=1), nine)
    pagerduty.on_call("PSCHED1", BOB, nine, nine + timedelta(days=1))
    bot = rota_team(APPROVAL_REMIND_MINUTES=1)
    bot.clock.advance(seconds=(nine - timedelta(seconds=30) - bot.clock()).total_seconds())

    card = ask(bot, 1)  # at 08:59:30: Alice
    request = bot.request()
    bot.clock.advance(
        seconds=(request.created_at + timedelta(seconds=61) - bot.clock()).total_seconds()
    )
    bot.worker.wake()
    assert card.ts is not None
    ts = card.ts
    [reminder] = slack.wait_for(
        lambda: [str(c.args["text"]) for c in slack.thread(ts)], what="the first reminder"
    )

    assert people_line(card) == "On call: <@UALICE>"
    assert reminder.startswith(":bell: <@UBOB>: request #1 has waited 1m for a decision.")
    assert "UALICE" not in reminder and "UAPP" not in reminder


def test_an_unknown_schedule_is_named_in_check_and_the_log_and_the_rest_still_works(
    rota_team: Callable[..., BotHarness],
    pagerduty: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now().astimezone()
    pagerduty.on_call("PSCHED1", ALICE, now - timedelta(hours=1), now + timedelta(hours=8))
    caplog.set_level(logging.WARNING)
    bot = rota_team(ONCALL_PAGERDUTY_SCHEDULES="PSCHED1,PNOSUCH")

    card = ask(bot, 1)
    lines: list[str] = []
    run_check(bot.settings, slack=make_web_client(bot.settings), echo=lines.append)

    assert people_line(card) == "On call: <@UALICE>"
    problem = (
        "schedule PNOSUCH: PagerDuty knows no such schedule (check ONCALL_PAGERDUTY_SCHEDULES"
        " and `oncall schedule`)"
    )
    assert any(getattr(r, "problem", None) == problem for r in caplog.records)
    at = next(n for n, line in enumerate(lines) if "on-call source PagerDuty" in line)
    assert lines[at].startswith(
        "[WARN] on-call source PagerDuty: read now: 1 shift in the next 2 days, 1 approver"
        " matched in Slack; the stored rota is "
    )
    assert lines[at + 1] == f"    {problem}"
