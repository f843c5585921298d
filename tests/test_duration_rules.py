"""Durations on their own: the parser, the limits, the form's choices, and the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.settings import load_settings
from bot.sharing.durations import (
    LONGEST,
    UNTIL_REMOVED,
    Duration,
    Granted,
    ShareDurations,
    Unit,
    choice_value,
    parse_choice,
    parse_duration,
    parse_list,
    reminder_at,
    time_left,
)
from bot.sharing.errors import CommandError
from tests.fakes.slack import FakeSlack
from tests.test_settings import GOOD, ROOT, problems

units = st.sampled_from(list(Unit))
durations = st.builds(Duration, st.integers(1, 500), units)


def refused(token: str) -> tuple[str, dict[str, str]]:
    with pytest.raises(CommandError) as caught:
        parse_duration(token)
    return caught.value.problem, caught.value.values


@pytest.mark.parametrize(
    ("token", "amount", "unit", "length"),
    [
        ("30m", 30, Unit.MINUTES, timedelta(minutes=30)),
        ("12h", 12, Unit.HOURS, timedelta(hours=12)),
        ("7d", 7, Unit.DAYS, timedelta(days=7)),
        ("2w", 2, Unit.WEEKS, timedelta(weeks=2)),
        ("1M", 1, Unit.MINUTES, timedelta(minutes=1)),
        ("7D", 7, Unit.DAYS, timedelta(days=7)),
        ("007d", 7, Unit.DAYS, timedelta(days=7)),
    ],
)
def test_durations_are_read(token: str, amount: int, unit: Unit, length: timedelta) -> None:
    duration = parse_duration(token)
    assert (duration.amount, duration.unit, duration.length) == (amount, unit, length)
    assert duration.text == f"{amount}{unit.value}"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("0d", "duration_zero"),
        ("00m", "duration_zero"),
        ("d", "duration_invalid"),
        ("7", "duration_invalid"),
        ("7days", "duration_invalid"),
        ("1.5h", "duration_invalid"),
        ("-1d", "duration_invalid"),
        ("+1d", "duration_invalid"),
        ("7y", "duration_invalid"),
        ("1h30m", "duration_invalid"),
        ("７d", "duration_invalid"),  # a full-width digit looks like 7 but is not ASCII
        ("", "duration_invalid"),
        ("521w", "duration_beyond"),
        ("99999999999999999999w", "duration_beyond"),
    ],
)
def test_bad_durations_are_refused_naming_the_token(token: str, problem: str) -> None:
    found, values = refused(token)
    assert found == problem
    assert values["token"] == token


def test_the_longest_duration_is_ten_years() -> None:
    assert parse_duration("520w").length == LONGEST
    assert refused("3641d") == ("duration_beyond", {"token": "3641d", "limit": "520w"})


@given(durations, st.booleans())
def test_a_duration_reads_back_as_written_in_either_case(duration: Duration, upper: bool) -> None:
    text = duration.text.upper() if upper else duration.text
    assert parse_duration(text) == duration


@given(st.integers(1, 500), units)
def test_a_duration_is_its_amount_of_its_unit(amount: int, unit: Unit) -> None:
    assert parse_duration(f"{amount}{unit.value}").length == amount * unit.length


@given(st.text(max_size=12))
def test_anything_is_either_a_duration_or_refused_by_name(text: str) -> None:
    try:
        duration = parse_duration(text)
    except CommandError as error:
        assert error.problem in {"duration_invalid", "duration_zero", "duration_beyond"}
        assert "token" in error.values
    else:
        assert duration.amount >= 1 and timedelta(0) < duration.length <= LONGEST
        assert parse_duration(duration.text) == duration


def test_form_choices_are_the_offered_durations_and_until_removed() -> None:
    offered = parse_list("1d, 7d,30d,7d")
    assert [d.text for d in offered] == ["1d", "7d", "30d"]
    assert ShareDurations(offered).choices() == [*offered, None]


def test_form_choices_leave_out_what_is_above_the_maximum() -> None:
    limits = ShareDurations(parse_list("1d,7d,30d"), maximum=parse_duration("1w"))
    # 7d is not above 1w; "until removed" is above any maximum.
    assert [d.text if d else d for d in limits.choices()] == ["1d", "7d"]
    tight = ShareDurations(parse_list("1d,7d"), maximum=parse_duration("12h"))
    assert [d.text if d else d for d in tight.choices()] == ["12h"]


@given(st.lists(durations, max_size=5), st.none() | durations)
def test_every_choice_is_granted_as_it_is(
    offered: list[Duration], maximum: Duration | None
) -> None:
    limits = ShareDurations(tuple(offered), maximum=maximum)
    for choice in limits.choices():
        assert parse_choice(choice_value(choice)) == choice
        if choice is not None:
            assert limits.grant(choice) == Granted(choice)


def test_a_duration_above_the_maximum_is_refused_naming_the_limit() -> None:
    limits = ShareDurations(maximum=parse_duration("7d"))
    with pytest.raises(CommandError) as caught:
        limits.grant(parse_duration("2w"))
    assert (caught.value.problem, caught.value.values) == (
        "duration_over_max",
        {"token": "2w", "limit": "7d"},
    )
    assert limits.grant(parse_duration("168h")) == Granted(parse_duration("168h"))


def test_without_a_duration_the_default_then_the_maximum_apply() -> None:
    seven, day = parse_duration("7d"), parse_duration("1d")
    assert ShareDurations().grant(None) == Granted(None)
    assert ShareDurations(default=day).grant(None) == Granted(day)
    assert ShareDurations(maximum=seven, default=day).grant(None) == Granted(day)
    assert ShareDurations(maximum=seven).grant(None) == Granted(seven, capped=True)


def test_until_removed_has_its_own_form_value() -> None:
    assert parse_choice(UNTIL_REMOVED) is None
    assert choice_value(None) == UNTIL_REMOVED
    with pytest.raises(CommandError):
        parse_choice("forever")


# -- the settings -------------------------------------------------------------------------


def test_the_duration_settings_default_to_a_day_a_week_a_month_and_no_limit() -> None:
    limits = load_settings(**GOOD).share_durations
    assert [d.text for d in limits.offered] == ["1d", "7d", "30d"]
    assert (limits.maximum, limits.default) == (None, None)
    custom = load_settings(
        **GOOD, SHARE_DURATIONS="12h,3d", SHARE_MAX_DURATION="2w", SHARE_DEFAULT_DURATION="3D"
    ).share_durations
    assert [d.text for d in custom.offered] == ["12h", "3d"]
    assert (custom.maximum, custom.default) == (parse_duration("2w"), parse_duration("3d"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "SHARE_DURATIONS",
            "1d,week",
            "SHARE_DURATIONS has 'week', which is not a duration: use a comma-separated list"
            " like 1d,7d,30d (m, h, d or w)",
        ),
        (
            "SHARE_MAX_DURATION",
            "0h",
            "SHARE_MAX_DURATION has 0h, which is zero: a duration is at least 1, like 30m, 12h,"
            " 7d or 2w",
        ),
        (
            "SHARE_DEFAULT_DURATION",
            "1y",
            "SHARE_DEFAULT_DURATION has '1y', which is not a duration: use a duration like 7d,"
            " or empty (m, h, d or w)",
        ),
    ],
)
def test_bad_duration_settings_are_refused_and_named(name: str, value: str, message: str) -> None:
    assert problems(**{name: value}) == [message]


def test_a_default_longer_than_the_maximum_names_both_settings() -> None:
    assert problems(SHARE_MAX_DURATION="7d", SHARE_DEFAULT_DURATION="30d") == [
        "SHARE_DEFAULT_DURATION (30d) is longer than SHARE_MAX_DURATION (7d): shorten the"
        " default or raise the maximum"
    ]
    assert problems(SHARE_MAX_DURATION="7d", SHARE_DEFAULT_DURATION="1w") == []


def test_the_bot_does_not_start_with_a_default_above_the_maximum(
    tmp_path: Path, slack: FakeSlack
) -> None:
    settings = {**GOOD, "SHARE_MAX_DURATION": "1d", "SHARE_DEFAULT_DURATION": "2d"}
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**os.environ, **settings, "PYTHONPATH": str(ROOT), "SLACK_API_URL": slack.api_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("share-image-bot cannot start; fix these settings")
    assert "  - SHARE_DEFAULT_DURATION (2d) is longer than SHARE_MAX_DURATION (1d)" in done.stderr
    assert slack.calls() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (timedelta(seconds=30), "<1m"),
        (timedelta(minutes=45, seconds=59), "45m"),
        (timedelta(hours=3, minutes=20), "3h 20m"),
        (timedelta(hours=5), "5h"),
        (timedelta(days=6, hours=23, minutes=59), "6d 23h"),
        (timedelta(days=2, minutes=5), "2d"),
        (-timedelta(minutes=5), "<1m"),
    ],
)
def test_time_left_is_shown_in_at_most_two_units(left: timedelta, shown: str) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert time_left(now + left, now) == shown


@given(st.integers(1, 500), units)
def test_the_reminder_comes_before_the_end_and_after_the_start(amount: int, unit: Unit) -> None:
    length = amount * unit.length
    ends = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    remind = reminder_at(ends, length)
    assert ends - length < remind < ends
    if length >= timedelta(days=2):
        assert remind == ends - timedelta(days=1)
    else:
        assert remind == ends - length / 2
