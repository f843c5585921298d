"""What a rota source says: who is on call when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Shift:
    """One person on call from `starts` to `ends` (None: always), as the source names them."""

    email: str
    starts: datetime | None
    ends: datetime | None
    name: str = ""
    schedule_id: str = ""  # PagerDuty's schedule; "" for a calendar


@dataclass(frozen=True)
class RotaRead:
    """A source's rota, and what in it could not be used (an event naming nobody…)."""

    shifts: list[Shift]
    problems: list[str] = field(default_factory=list)
