"""`Retry-After`, read in one place for the cloud client and the PagerDuty reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.retry_after import retry_after_seconds

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("  42 ", 42.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),  # nothing to wait for, never a negative pause
        ("Mon, 07 Dec 2026 08:00:30 GMT", 30.0),
        ("Mon, 07 Dec 2026 08:00:30 -0000", 30.0),  # no zone: read as UTC
        ("Mon, 07 Dec 2026 17:01:00 +0900", 60.0),
        ("Mon, 07 Dec 2026 07:59:00 GMT", 0.0),  # a date already past
    ],
)
def test_seconds_and_dates_are_read(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "-inf", "1e999", "12s"])
def test_nothing_readable_is_none(value: str | None) -> None:
    # The caller chooses its own wait then: a backoff, or PagerDuty's default minute.
    assert retry_after_seconds(value, now=NOW) is None


@given(st.integers(min_value=0, max_value=10**9))
def test_any_whole_number_of_seconds_is_that_many(seconds: int) -> None:
    assert retry_after_seconds(str(seconds), now=NOW) == seconds


@given(st.integers(min_value=0, max_value=7 * 24 * 3600))
def test_any_http_date_ahead_is_the_seconds_until_it(ahead: int) -> None:
    when = format_datetime(NOW + timedelta(seconds=ahead), usegmt=True)
    assert retry_after_seconds(when, now=NOW) == ahead
