"""How long a remote asks to be left alone: its `Retry-After` header, read once for all.

RFC 9110 §10.2.3 allows a number of seconds or an HTTP date. The cloud client waits for it
before a retry (within its cap); the PagerDuty reader waits for it before its next read.
Standard library only, so that every client may import it whatever its layer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value, never negative; None when there is none
    or it cannot be read (the caller chooses its own wait then).

    A date without a zone (`-0000`: UTC, source zone unknown) is read as UTC.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # "nan" and "inf" are floats to Python, not seconds to wait.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
