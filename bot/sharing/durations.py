"""How long a share lasts: reading `30m`, `12h`, `7d`, `2w`, and the limits that apply.

A duration is a whole number from 1 and one unit, in either case: `m` minutes, `h`
hours, `d` days, `w` weeks. `None` stands for "until removed" wherever a duration may
be absent. `ShareDurations` holds the three settings (the form's choices, the maximum,
the default) and decides what a request asked with or without a duration gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.sharing.errors import CommandError
from bot.sharing.shown import shown

DURATION = re.compile(r"([0-9]+)([mhdw])", re.ASCII | re.IGNORECASE)
# Far beyond any share anyone means, yet far inside what a datetime can hold.
LONGEST = timedelta(weeks=520)
# The value the form sends for "until removed" (Slack refuses an empty option value).
UNTIL_REMOVED = "until_removed"


class Unit(StrEnum):
    """A duration's unit, as typed (lower case)."""

    MINUTES = "m"
    HOURS = "h"
    DAYS = "d"
    WEEKS = "w"

    @property
    def length(self) -> timedelta:
        """One of this unit."""
        return UNIT_LENGTHS[self]


UNIT_LENGTHS = {
    Unit.MINUTES: timedelta(minutes=1),
    Unit.HOURS: timedelta(hours=1),
    Unit.DAYS: timedelta(days=1),
    Unit.WEEKS: timedelta(weeks=1),
}


@dataclass(frozen=True, order=False)
class Duration:
    """A share's length as asked: `amount` of `unit` (`7d` is seven days)."""

    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.amount < 1:
            raise ValueError("a duration is at least 1 of its unit")

    @property
    def length(self) -> timedelta:
        """How long this is."""
        return self.amount * self.unit.length

    @property
    def text(self) -> str:
        """As typed and stored: `7d`."""
        return f"{self.amount}{self.unit.value}"

    def __str__(self) -> str:
        return self.text


def parse_duration(token: str) -> Duration:
    """`30m`, `12h`, `7d`, `2w` (either case) as a Duration; CommandError naming the token."""
    match = DURATION.fullmatch(token)
    if match is None:
        raise CommandError("duration_invalid", token=shown(token))
    digits, unit = match.groups()
    amount = int(digits)
    if amount == 0:
        raise CommandError("duration_zero", token=shown(token))
    # Compare before multiplying: a long run of digits would overflow a timedelta.
    unit_ = Unit(unit.lower())
    if len(digits.lstrip("0")) > 7 or amount * unit_.length > LONGEST:
        raise CommandError("duration_beyond", token=shown(token), limit=f"{LONGEST.days // 7}w")
    return Duration(amount, unit_)


def parse_choice(value: str) -> Duration | None:
    """A form option's value: a duration, or None for "until removed"."""
    return None if value == UNTIL_REMOVED else parse_duration(value)


def choice_value(duration: Duration | None) -> str:
    """The form option's value for a duration (or for "until removed")."""
    return UNTIL_REMOVED if duration is None else duration.text


@dataclass(frozen=True)
class Granted:
    """What a request gets: `duration` (None: until removed); `capped` when the maximum
    was applied to a request asked without a duration."""

    duration: Duration | None
    capped: bool = False


@dataclass(frozen=True)
class ShareDurations:
    """The duration settings: the form's choices, the maximum, and the default."""

    offered: tuple[Duration, ...] = ()
    maximum: Duration | None = None
    default: Duration | None = None

    def choices(self) -> list[Duration | None]:
        """What the form offers: the offered durations not above the maximum, and
        "until removed" (None) when there is no maximum. Never empty: with a maximum
        and nothing under it, the maximum itself."""
        fitting: list[Duration | None] = [
            d for d in self.offered if self.maximum is None or not self._over(d)
        ]
        if self.maximum is None:
            return [*fitting, None]
        return fitting or [self.maximum]

    def grant(self, asked: Duration | None) -> Granted:
        """What a request asked for `asked` (None: no duration given) gets.

        Longer than the maximum: CommandError naming the limit. Without a duration:
        the default; with no default (until removed) and a maximum, the maximum.
        """
        if asked is not None:
            if self.maximum is not None and self._over(asked):
                raise CommandError("duration_over_max", token=asked.text, limit=self.maximum.text)
            return Granted(asked)
        if self.default is not None:
            return Granted(self.default)
        if self.maximum is not None:
            return Granted(self.maximum, capped=True)
        return Granted(None)

    def _over(self, duration: Duration) -> bool:
        assert self.maximum is not None
        return duration.length > self.maximum.length


def parse_list(text: str) -> tuple[Duration, ...]:
    """A comma-separated list like `1d,7d,30d` (spaces allowed), in order, without repeats."""
    found: list[Duration] = []
    for part in text.split(","):
        token = part.strip()
        if not token:
            continue
        duration = parse_duration(token)
        if duration not in found:
            found.append(duration)
    return tuple(found)


def reminder_at(ends: datetime, length: timedelta) -> datetime:
    """When to remind before a share of `length` ends at `ends`: a day before, or
    halfway for shares shorter than two days."""
    if length < timedelta(days=2):
        return ends - length / 2
    return ends - timedelta(days=1)


def time_left(ends: datetime, now: datetime) -> str:
    """What is left until `ends`, in at most two units: `6d 23h`, `3h 20m`, `45m`, `<1m`."""
    left = ends - now
    minutes = int(left.total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    while parts and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts[:2] if n)
