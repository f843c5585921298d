"""The rota readers against fakes of PagerDuty and an iCalendar feed, the email match in
Slack, and the keeper that stores what they read.

The readers, the directory and the keeper are asynchronous: each test runs them in one
event loop of its own (`run`), as the bot runs them in its one loop; the HTTP clients'
connections belong to that loop and are closed in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.rota import Calendar, PagerDuty, RotaMalformed, RotaRateLimited, RotaRefused
from bot.rota.errors import RotaUnreachable
from bot.sharing.oncall import RotaKeeper
from bot.slack.accounts import SlackDirectory
from storage import Database, OnCallSchedules, Rota, SlackEmails
from tests.fakes.oncall import FakeCalendarFeed, FakePagerDuty, PdUser
from tests.fakes.slack import FakeSlack

ALICE = PdUser("PALICE1", "Alice Kim", "alice@example.com")
BOB = PdUser("PBOB001", "Bob Lee", "bob@example.com")
CAROL = PdUser("PCAROL1", "Carol Park", "carol@example.com")
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
NINE = NOW.replace(hour=9)
SEOUL = ZoneInfo("Asia/Seoul")

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run() -> Iterator[Run]:
    """Runs a coroutine to its end in this test's event loop."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(clock=lambda: NOW) as fake:
        yield fake


@pytest.fixture
def reader(run: Run, pagerduty: FakePagerDuty) -> Iterator[PagerDuty]:
    made = PagerDuty(pagerduty.token, base_url=pagerduty.url)
    yield made
    run(made.aclose())


# -- PagerDuty -------------------------------------------------------------------------------


def test_pagerduty_is_asked_as_its_reference_says(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=15), NINE)
    pagerduty.on_call("PSCHED1", BOB, NINE, NINE + timedelta(days=1))

    got = run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))

    assert [(s.email, s.starts, s.ends, s.schedule_id) for s in got.shifts] == [
        ("alice@example.com", NOW - timedelta(hours=15), NINE, "PSCHED1"),
        ("bob@example.com", NINE, NINE + timedelta(days=1), "PSCHED1"),
    ]
    assert got.problems == []
    [sent] = pagerduty.oncall_requests()
    assert sent.headers["Authorization"] == f"Token token={pagerduty.token}"
    assert sent.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert sent.query["schedule_ids[]"] == ["PSCHED1"]
    assert sent.query["include[]"] == ["users"]
    assert sent.query["earliest"] == ["true"]
    assert sent.query["since"] == ["2026-12-07T08:00:00+00:00"]
    assert sent.query["until"] == ["2026-12-09T08:00:00+00:00"]
    assert sent.query["limit"] == ["100"] and sent.query["offset"] == ["0"]


def test_pagerduty_pages_until_more_is_false(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    people = [PdUser(f"PU{n:05d}", f"Person {n}", f"p{n}@example.com") for n in range(230)]
    for person in people:
        pagerduty.on_call("PSCHED1", person, NOW - timedelta(hours=1), NINE)

    got = run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))

    assert len(got.shifts) == 230
    assert {s.email for s in got.shifts} == {p.email for p in people}
    assert [r.query["offset"] for r in pagerduty.oncall_requests()] == [["0"], ["100"], ["200"]]


def test_one_person_on_two_levels_is_one_shift(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE, level=1)
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE, level=2)

    got = run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))

    assert [s.email for s in got.shifts] == ["alice@example.com"]


def test_a_refused_key_is_said_without_the_key(run: Run, pagerduty: FakePagerDuty) -> None:
    wrong = PagerDuty("pd-wrong-key-9876543210", base_url=pagerduty.url)
    with pytest.raises(RotaRefused) as refused:
        run(wrong.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))
    run(wrong.aclose())

    assert str(refused.value) == (
        "PagerDuty: refused ONCALL_PAGERDUTY_TOKEN (401: Unauthorized (code 2006)): give a"
        " valid REST API key (a read-only one is enough)"
    )
    assert "pd-wrong-key" not in str(refused.value)


def test_a_rate_limit_carries_its_retry_after(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    pagerduty.rate_limit(retry_after=42)

    with pytest.raises(RotaRateLimited) as limited:
        run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))

    assert limited.value.retry_after == 42
    assert "rate-limited: asked to wait 42 s" in str(limited.value)


def test_an_unknown_schedule_is_named(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE)
    pagerduty.add_schedule("PEMPTY1")

    got = run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1", "PNOSUCH", "PEMPTY1"]))

    assert [s.email for s in got.shifts] == ["alice@example.com"]
    assert got.problems == [
        "schedule PNOSUCH: PagerDuty knows no such schedule (check ONCALL_PAGERDUTY_SCHEDULES"
        " and `oncall schedule`)",
        "schedule PEMPTY1: nobody is on call in it",
    ]


def test_pagerduty_down_is_unreachable(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty
) -> None:
    pagerduty.down = True
    with pytest.raises(RotaUnreachable, match="/oncalls answered 503"):
        run(reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        pytest.param(
            lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True),
            (85.0, 90.0),
            id="an HTTP date",
        ),
        # A date without a zone is UTC's (it used to stop the read with a TypeError).
        pytest.param(lambda: "Wed, 21 Oct 2015 07:28:00 -0000", (0.0, 0.0), id="a past date"),
        pytest.param(lambda: None, (60.0, 60.0), id="none: a minute"),
        pytest.param(lambda: "soon", (60.0, 60.0), id="unreadable: a minute"),
    ],
)
def test_a_rate_limit_waits_as_long_as_retry_after_says(
    run: Run, retry_after: Callable[[], str | None], wait: tuple[float, float]
) -> None:
    value = retry_after()
    headers = {"Retry-After": value} if value is not None else {}
    answer = httpx.Response(
        429, headers=headers, json={"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    )
    limited_reader = PagerDuty(
        "pd-key", base_url="https://pd.invalid", transport=httpx.MockTransport(lambda _: answer)
    )
    try:
        with pytest.raises(RotaRateLimited) as limited:
            run(limited_reader.read(NOW, NOW + timedelta(days=2), ["PSCHED1"]))
    finally:
        run(limited_reader.aclose())

    low, high = wait
    assert low <= limited.value.retry_after <= high


# -- the calendar ----------------------------------------------------------------------------

FEED = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//Rota//EN\r
BEGIN:VTIMEZONE\r
TZID:America/New_York\r
BEGIN:STANDARD\r
DTSTART:20261101T020000\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
TZNAME:EST\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:day-shift@example.com\r
DTSTAMP:20261101T000000Z\r
DTSTART;TZID=America/New_York:20261207T090000\r
DTEND;TZID=America/New_York:20261207T170000\r
RRULE:FREQ=DAILY;COUNT=4\r
EXDATE;TZID=America/New_York:20261208T090000\r
SUMMARY:Platform on call\r
ATTENDEE;CN=Alice Kim;ROLE=REQ-PARTICIPANT:mailto:alice@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:holiday@example.com\r
DTSTAMP:20261101T000000Z\r
DTSTART;VALUE=DATE:20261208\r
DTEND;VALUE=DATE:20261209\r
SUMMARY:On call: bob@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:nobody@example.com\r
DTSTAMP:20261101T000000Z\r
DTSTART:20261209T000000Z\r
DTEND:20261209T060000Z\r
SUMMARY:Night cover (to be decided)\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.fixture
def feed() -> Iterator[FakeCalendarFeed]:
    with FakeCalendarFeed(feed=FEED) as fake:
        yield fake


def test_the_calendar_expands_rrule_exdate_zones_and_all_day_events(
    run: Run,
    feed: FakeCalendarFeed,
) -> None:
    calendar = Calendar(feed.url, zone=SEOUL)
    got = run(calendar.read(NOW, NOW + timedelta(days=4)))
    run(calendar.aclose())

    new_york = ZoneInfo("America/New_York")
    assert [(s.email, s.name, s.starts, s.ends) for s in got.shifts] == [
        (
            "alice@example.com",
            "Alice Kim",
            datetime(2026, 12, 7, 9, tzinfo=new_york),
            datetime(2026, 12, 7, 17, tzinfo=new_york),
        ),
        # An all-day event is the whole day in the bot's time zone.
        (
            "bob@example.com",
            "On call: bob@example.com",
            datetime(2026, 12, 8, tzinfo=SEOUL),
            datetime(2026, 12, 9, tzinfo=SEOUL),
        ),
        # 8 December is an EXDATE: the next one is the 9th.
        (
            "alice@example.com",
            "Alice Kim",
            datetime(2026, 12, 9, 9, tzinfo=new_york),
            datetime(2026, 12, 9, 17, tzinfo=new_york),
        ),
        (
            "alice@example.com",
            "Alice Kim",
            datetime(2026, 12, 10, 9, tzinfo=new_york),
            datetime(2026, 12, 10, 17, tzinfo=new_york),
        ),
    ]
    assert got.problems == [
        "the event 'Night cover (to be decided)' from 2026-12-09T00:00+00:00 names nobody:"
        " give it an ATTENDEE (mailto:) or an email in its summary"
    ]
    assert datetime(2026, 12, 7, 9, tzinfo=new_york) == datetime(2026, 12, 7, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("feed_text", "said"),
    [
        (b"<html>Sign in</html>", "ONCALL_ICAL_URL's feed is not an iCalendar file"),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:tomorrow\r\nEND:VEVENT\r\n"
            b"END:VCALENDAR\r\n",
            "ONCALL_ICAL_URL's feed has an event that cannot be read",
        ),
        (b"BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n", "holds no VCALENDAR"),
    ],
)
def test_a_malformed_feed_is_refused(
    run: Run, feed: FakeCalendarFeed, feed_text: bytes, said: str
) -> None:
    feed.feed = feed_text
    calendar = Calendar(feed.url, zone=SEOUL)
    with pytest.raises(RotaMalformed, match=said) as malformed:
        run(calendar.read(NOW, NOW + timedelta(days=2)))
    run(calendar.aclose())
    assert "private-feed-key" not in str(malformed.value)


def test_a_feed_address_that_answers_404_is_refused(run: Run, feed: FakeCalendarFeed) -> None:
    feed.status = 404
    calendar = Calendar(feed.url, zone=SEOUL)
    with pytest.raises(RotaRefused, match="ONCALL_ICAL_URL answered 404") as refused:
        run(calendar.read(NOW, NOW + timedelta(days=2)))
    run(calendar.aclose())
    assert "private-feed-key" not in str(refused.value)


# -- Slack users by email, and the keeper --------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    clock = [NOW]
    opened = Database(tmp_path / "bot.db", clock=lambda: clock[0])
    yield opened
    opened.close()


def directory(slack: FakeSlack, database: Database) -> SlackDirectory:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return SlackDirectory(client, SlackEmails(database))


def test_an_email_is_matched_in_slack_and_remembered(
    run: Run, slack: FakeSlack, database: Database
) -> None:
    slack.add_person("UALICE", "Alice@Example.com")
    slack.add_person("UGONE", "gone@example.com", deleted=True)
    people = directory(slack, database)

    assert run(people.user_for_email("alice@example.com")) == "UALICE"
    assert run(people.user_for_email("ALICE@example.com")) == "UALICE"  # remembered, any case
    assert run(people.user_for_email("nobody@example.com")) is None
    assert run(people.user_for_email("gone@example.com")) is None
    asked = [c.args["email"] for c in slack.calls("users.lookupByEmail")]
    assert asked == ["alice@example.com", "nobody@example.com", "gone@example.com"]
    assert slack.calls("users.lookupByEmail")[0].args["email"] == "alice@example.com"


def keeper(
    database: Database,
    slack: FakeSlack,
    *readers: PagerDuty | Calendar,
    schedules: tuple[str, ...] = ("PSCHED1",),
    clock: list[float] | None = None,
) -> RotaKeeper:
    ticks = clock if clock is not None else [0.0]
    return RotaKeeper(
        readers=list(readers),
        rota=Rota(database),
        schedules=OnCallSchedules(database),
        directory=directory(slack, database),
        default_schedules=schedules,
        monotonic=lambda: ticks[0],
    )


def test_the_keeper_stores_the_rota_and_names_who_slack_does_not_know(
    run: Run,
    pagerduty: FakePagerDuty,
    reader: PagerDuty,
    slack: FakeSlack,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.add_person("UALICE", "alice@example.com")
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE)
    pagerduty.on_call("PSCHED1", CAROL, NINE, NINE + timedelta(hours=8))
    caplog.set_level(logging.WARNING)

    [done] = run(keeper(database, slack, reader).refresh())

    assert done.ok and done.unmatched == ["carol@example.com (Carol Park)"]
    stored = Rota(database).entries("pagerduty")
    assert [(e.email, e.user_id) for e in stored] == [
        ("alice@example.com", "UALICE"),
        ("carol@example.com", ""),
    ]
    state = Rota(database).state("pagerduty")
    assert state is not None and state.read_at == NOW and state.error == ""
    assert state.problems == ["carol@example.com (Carol Park): Slack knows nobody by that email"]
    assert any(getattr(r, "problem", "") == state.problems[0] for r in caplog.records), (
        "the unmatched person is named in the log"
    )


def test_a_failed_read_keeps_the_last_rota_and_never_logs_the_key(
    run: Run,
    pagerduty: FakePagerDuty,
    reader: PagerDuty,
    slack: FakeSlack,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.add_person("UALICE", "alice@example.com")
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE)
    keep = keeper(database, slack, reader)
    run(keep.refresh())
    caplog.set_level(logging.DEBUG)

    pagerduty.token = "pd-rotated-key-0000000000"  # the bot's key is refused from now on
    [done] = run(keep.refresh())

    assert not done.ok and "refused ONCALL_PAGERDUTY_TOKEN (401" in done.error
    assert [e.email for e in Rota(database).entries("pagerduty")] == ["alice@example.com"]
    state = Rota(database).state("pagerduty")
    assert state is not None and state.read_at == NOW and "401" in state.error
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "cannot read the on-call rota; keeping the stored one" in logged
    assert "pd-test-read-only-key" not in logged


def test_slack_failing_half_way_stores_nothing(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty, slack: FakeSlack, database: Database
) -> None:
    slack.add_person("UALICE", "alice@example.com")
    slack.add_person("UBOB", "bob@example.com")
    pagerduty.on_call("PSCHED1", ALICE, NOW - timedelta(hours=1), NINE)
    keep = keeper(database, slack, reader)
    run(keep.refresh())
    pagerduty.on_call("PSCHED1", BOB, NINE, NINE + timedelta(hours=8))
    slack.fail("users.lookupByEmail", "internal_error")

    [done] = run(keep.refresh())

    assert not done.ok and "users.lookupByEmail failed (internal_error)" in done.error
    assert [e.email for e in Rota(database).entries("pagerduty")] == ["alice@example.com"]


def test_after_a_429_the_source_waits_for_retry_after(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty, slack: FakeSlack, database: Database
) -> None:
    ticks = [100.0]
    keep = keeper(database, slack, reader, clock=ticks)
    pagerduty.rate_limit(retry_after=30)

    assert not run(keep.refresh())[0].ok
    ticks[0] = 129.0
    assert run(keep.refresh())[0].skipped
    assert len(pagerduty.oncall_requests()) == 1  # nothing asked while waiting
    ticks[0] = 131.0
    assert run(keep.refresh())[0].ok


def test_the_keeper_reads_the_images_own_schedules_too(
    run: Run, pagerduty: FakePagerDuty, reader: PagerDuty, slack: FakeSlack, database: Database
) -> None:
    OnCallSchedules(database).set("70a599e0-31e7-49b7-b260-868f441e862b", "PTEAM02", by="UADMIN")

    run(keeper(database, slack, reader).refresh())

    [sent] = pagerduty.oncall_requests()
    assert sent.query["schedule_ids[]"] == ["PSCHED1", "PTEAM02"]


def test_a_calendar_event_naming_nobody_is_a_problem_not_a_failure(
    run: Run, feed: FakeCalendarFeed, slack: FakeSlack, database: Database
) -> None:
    slack.add_person("UALICE", "alice@example.com")
    slack.add_person("UBOB", "bob@example.com")
    calendar = Calendar(feed.url, zone=SEOUL)

    [done] = run(keeper(database, slack, calendar).refresh())
    run(calendar.aclose())

    assert done.ok and done.people == 2
    assert done.problems == [
        "the event 'Night cover (to be decided)' from 2026-12-09T00:00+00:00 names nobody:"
        " give it an ATTENDEE (mailto:) or an email in its summary"
    ]
    assert {e.user_id for e in Rota(database).entries("calendar")} == {"UALICE", "UBOB"}


def test_a_malformed_feed_keeps_the_last_rota(
    run: Run, feed: FakeCalendarFeed, slack: FakeSlack, database: Database
) -> None:
    slack.add_person("UALICE", "alice@example.com")
    slack.add_person("UBOB", "bob@example.com")
    calendar = Calendar(feed.url, zone=SEOUL)
    keep = keeper(database, slack, calendar)
    run(keep.refresh())
    before = Rota(database).entries("calendar")

    feed.feed = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:soon\r\nEND:VEVENT\r\nEND:VCALENDAR"
    [done] = run(keep.refresh())
    run(calendar.aclose())

    assert not done.ok and "cannot be read" in done.error
    assert Rota(database).entries("calendar") == before


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(["America/New_York", "Europe/Berlin", "Asia/Seoul", "UTC"]),
    first=st.dates(min_value=date(2026, 10, 20), max_value=date(2026, 11, 10)),
    count=st.integers(min_value=1, max_value=14),
    skipped=st.sets(st.integers(min_value=0, max_value=13), max_size=5),
)
def test_a_daily_rota_expands_to_its_days_less_its_exdates(
    zone: str, first: date, count: int, skipped: set[int]
) -> None:
    """Whatever the zone and the days skipped (across DST changes too): one 8-hour shift a
    day, from 09:00 local, on each day of the COUNT not named in an EXDATE."""
    local = ZoneInfo(zone)
    starts = [
        datetime.combine(first + timedelta(days=n), time(9), tzinfo=local) for n in range(count)
    ]
    skip = sorted(n for n in skipped if n < count)
    stamp = "%Y%m%dT%H%M%S"
    exdates = "".join(f"EXDATE;TZID={zone}:{starts[n]:{stamp}}\r\n" for n in skip)
    feed = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:rota@example.com\r\nDTSTAMP:20261001T000000Z\r\n"
        f"DTSTART;TZID={zone}:{starts[0]:{stamp}}\r\nDTEND;TZID={zone}:"
        f"{starts[0].replace(hour=17):{stamp}}\r\nRRULE:FREQ=DAILY;COUNT={count}\r\n{exdates}"
        "ATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    calendar = Calendar("http://127.0.0.1:9/rota.ics", zone=SEOUL)
    try:
        got = calendar.parse(feed, starts[0] - timedelta(days=1), starts[-1] + timedelta(days=1))
    finally:
        asyncio.run(calendar.aclose())

    kept = [s for n, s in enumerate(starts) if n not in skip]
    assert [s.starts for s in got.shifts] == kept
    assert all(s.ends is not None and s.starts is not None for s in got.shifts)
    assert {(s.ends - s.starts) for s in got.shifts if s.ends and s.starts} <= {timedelta(hours=8)}
    assert got.problems == []
