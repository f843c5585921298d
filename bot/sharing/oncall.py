"""Who is asked to approve a request: whoever is on call for its image now.

One interface, `WhoIsOnCall.for_image`, asks its sources in order and the first that names
anyone decides; each source is one class:

    TypedShifts       the shifts admins type (`admin oncall add`): holidays, swaps; they override
    StoredRota        the rota read from PagerDuty, then the one from the calendar feed
    MayApprove        everyone who may approve (`who_may_approve`): the approvers of the
                      image, then those of every image, then the admins

The rota sources are read by the worker every ONCALL_REFRESH_SECONDS (`RotaKeeper`) and
stored; asking never waits on PagerDuty or the calendar. A rota whose last good read is
older than a day is not trusted: it is skipped, and the card says so. People on a rota
are asked only when they may decide for the image (approver or admin): mentioning
someone who cannot click Approve helps nobody.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.rota.errors import RotaError, RotaRateLimited
from bot.rota.models import RotaRead
from bot.sharing.errors import DirectoryUnavailable
from bot.sharing.values import Role, RotaEntry, SourceState
from storage import Grants, OnCall, OnCallSchedules, Rota
from storage.errors import StorageError

log = logging.getLogger(__name__)

# A card never mentions more people than this (Slack's limits, and noise).
MAX_ASKED = 20
# A rota read longer ago than this is not trusted: the card falls back to the approvers.
STALE_AFTER = timedelta(days=1)
# How far ahead a rota is read: now, and who comes next.
ROTA_WINDOW = timedelta(days=2)


class Source(StrEnum):
    """Where the people asked came from, in the order they are asked."""

    TYPED = "typed"
    PAGERDUTY = "pagerduty"
    CALENDAR = "calendar"
    APPROVERS = "approvers"  # everyone who may approve (`who_may_approve`)
    # Kept for the values stored and logged before `MayApprove` took their place.
    IMAGE_APPROVERS = "image_approvers"
    ADMINS = "admins"


ROTA_SOURCES = (Source.PAGERDUTY, Source.CALENDAR)


@dataclass(frozen=True)
class Stale:
    """A rota skipped because its last good read is too old (`age` None: never read)."""

    source: Source
    age: timedelta | None


@dataclass(frozen=True)
class Asked:
    """Who is asked for an image now, from which source, and which rotas were skipped.

    `people` is everyone the source names, in order, so a card can say how many there
    are; `mentioned` is whom a message may mention, never more than `MAX_ASKED`.
    """

    people: list[str]
    source: Source | None  # None: nobody at all
    stale: list[Stale] = field(default_factory=list)

    @property
    def mentioned(self) -> list[str]:
        """The first `MAX_ASKED` people: whom a card or a reminder may mention."""
        return self.people[:MAX_ASKED]


class ApproverSource(Protocol):
    """One place that can say who is on call for an image."""

    name: Source

    def on_call(self, image_id: str, now: datetime) -> list[str]:
        """Slack user ids on call for `image_id` at `now`, in a stable order."""


class TypedShifts:
    """The shifts admins type into Slack or the command line."""

    name = Source.TYPED

    def __init__(self, shifts: OnCall) -> None:
        self.shifts = shifts

    def on_call(self, image_id: str, now: datetime) -> list[str]:
        """Everyone whose typed shift covers `now` (shifts are for every image)."""
        return self.shifts.on_call_at(now)


class StoredRota:
    """A rota read from PagerDuty or the calendar, as the worker last stored it."""

    def __init__(
        self,
        name: Source,
        rota: Rota,
        grants: Grants,
        *,
        schedules: OnCallSchedules | None = None,
        default_schedules: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.rota = rota
        self.grants = grants
        self.schedules = schedules
        self.default_schedules = list(default_schedules)

    def state(self) -> SourceState | None:
        """When it was last read and what was wrong."""
        return self.rota.state(self.name)

    def age(self, now: datetime) -> timedelta | None:
        """How old the last good read is; None when never read."""
        state = self.state()
        if state is None or state.read_at is None:
            return None
        return max(timedelta(), now - state.read_at)

    def schedules_for(self, image_id: str) -> set[str] | None:
        """The PagerDuty schedules an image asks (its own, else the configured ones);
        None for a source without schedules (the calendar)."""
        if self.schedules is None:
            return None
        own = self.schedules.of(image_id)
        return {own} if own else set(self.default_schedules)

    def on_call(self, image_id: str, now: datetime) -> list[str]:
        """Slack users on this rota now who may decide for the image."""
        wanted = self.schedules_for(image_id)
        current = [
            e
            for e in self.rota.on_call_at(self.name, now)
            if e.user_id and (wanted is None or e.schedule_id in wanted)
        ]
        if not current:
            return []
        deciders = set(who_may_approve(self.grants, image_id))
        return list(dict.fromkeys(e.user_id for e in current if e.user_id in deciders))


def approvers_of(grants: Grants, image_id: str) -> list[str]:
    """The approvers of `image_id`: those of that image, then those of all images."""
    everywhere = grants.holders(Role.APPROVER)
    of_image = [u for u in grants.holders(Role.APPROVER, image_id=image_id) if u not in everywhere]
    return [*of_image, *everywhere]


def who_may_approve(grants: Grants, image_id: str) -> list[str]:
    """Everyone who may approve a request for `image_id`, in the order they are named:
    the approvers of that image, then the approvers of all images, then the admins.

    The one answer to "who may approve" (`bot.sharing.policy` asks it): the approval
    card names these people when nobody is on call, and every refusal that tells
    someone whom to ask names them too.
    """
    admins = grants.holders(Role.ADMIN, image_id=image_id)
    return list(dict.fromkeys([*approvers_of(grants, image_id), *admins]))


class MayApprove:
    """Everyone who may approve, when nobody is on call: `who_may_approve`."""

    name = Source.APPROVERS

    def __init__(self, grants: Grants) -> None:
        self.grants = grants

    def on_call(self, image_id: str, now: datetime) -> list[str]:
        """The image's approvers, then the approvers of all images, then the admins."""
        return who_may_approve(self.grants, image_id)


class WhoIsOnCall:
    """Who is asked to decide a request for an image now: the first source naming anyone."""

    def __init__(
        self,
        sources: Sequence[ApproverSource],
        *,
        clock: Callable[[], datetime],
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self.sources = list(sources)
        self.clock = clock
        self.stale_after = stale_after

    @property
    def rotas(self) -> list[StoredRota]:
        """The rota sources (PagerDuty, the calendar) among the sources, in order."""
        return [s for s in self.sources if isinstance(s, StoredRota)]

    def for_image(
        self, image_id: str, now: datetime | None = None, *, besides: Collection[str] = ()
    ) -> Asked:
        """Whoever is on call for `image_id` now (`Asked.mentioned`: at most `MAX_ASKED`).

        `besides`: people who cannot decide this request (its asker, who approved it
        already); a source that names only them names nobody, and the next one is asked.
        """
        moment = now or self.clock()
        stale: list[Stale] = []
        for source in self.sources:
            if isinstance(source, StoredRota):
                age = source.age(moment)
                if age is None and source.state() is None:
                    continue  # configured but not read yet: nothing to say about it
                if age is None or age > self.stale_after:
                    stale.append(Stale(source.name, age))
                    continue
            people = [p for p in source.on_call(image_id, moment) if p not in besides]
            if people:
                return Asked(people, source.name, stale)
        return Asked([], None, stale)


# -- reading the rotas -------------------------------------------------------------------


class RotaReader(Protocol):
    """A rota source (`bot.rota.PagerDuty`, `bot.rota.Calendar`)."""

    source: str
    label: str

    async def read(
        self, since: datetime, until: datetime, schedule_ids: Sequence[str] = ()
    ) -> RotaRead:
        """Who is on call between `since` and `until`; `RotaError` when it cannot be read."""


class Directory(Protocol):
    """Who an email is in Slack (`users.lookupByEmail`, remembered)."""

    async def user_for_email(self, email: str) -> str | None:
        """The active Slack user with that email, or None; `DirectoryUnavailable` when
        Slack could not be asked."""


@dataclass(frozen=True)
class Refreshed:
    """What one read of a source did."""

    source: str
    ok: bool
    shifts: int = 0
    people: int = 0
    unmatched: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""
    skipped: bool = False  # waiting out a 429's Retry-After


class RotaKeeper:
    """Reads each rota source and stores it whole, or keeps the last one when it cannot."""

    def __init__(
        self,
        *,
        readers: Sequence[RotaReader],
        rota: Rota,
        schedules: OnCallSchedules,
        directory: Directory,
        default_schedules: Sequence[str] = (),
        window: timedelta = ROTA_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.readers = list(readers)
        self.rota = rota
        self.schedules = schedules
        self.directory = directory
        self.default_schedules = list(default_schedules)
        self.window = window
        self._monotonic = monotonic
        self._not_before: dict[str, float] = {}

    def schedule_ids(self) -> list[str]:
        """Every PagerDuty schedule some image asks: the configured ones and the images' own."""
        wanted = list(dict.fromkeys([*self.default_schedules, *self.schedules.all().values()]))
        return wanted

    async def refresh(self) -> list[Refreshed]:
        """Read every source once (a rate-limited one only once its wait is over)."""
        return [await self.refresh_source(reader) for reader in self.readers]

    async def read(self, reader: RotaReader) -> tuple[RotaRead, dict[str, str | None]]:
        """The source's rota now, and the Slack user of each email in it (None: nobody)."""
        now = self.rota.now()
        got = await reader.read(now, now + self.window, self.schedule_ids())
        users: dict[str, str | None] = {}
        for shift in got.shifts:
            key = shift.email.lower()
            if key not in users:
                users[key] = await self.directory.user_for_email(shift.email)
        return got, users

    async def refresh_source(self, reader: RotaReader) -> Refreshed:
        """Read one source and store its rota; on failure keep the last one and say why."""
        wait_until = self._not_before.get(reader.source, 0.0)
        if self._monotonic() < wait_until:
            return Refreshed(reader.source, ok=False, skipped=True)
        try:
            got, users = await self.read(reader)
        except RotaError as error:
            if isinstance(error, RotaRateLimited):
                self._not_before[reader.source] = self._monotonic() + error.retry_after
            return self._failed(reader, str(error))
        except DirectoryUnavailable as error:
            return self._failed(reader, f"Slack could not match the rota's emails: {error.detail}")
        unmatched: list[str] = []
        entries: list[RotaEntry] = []
        for shift in got.shifts:
            user = users[shift.email.lower()]
            if user is None:
                shown = f"{shift.email} ({shift.name})" if shift.name else shift.email
                if shown not in unmatched:
                    unmatched.append(shown)
            entries.append(
                RotaEntry(
                    source=reader.source,
                    email=shift.email,
                    user_id=user or "",
                    starts=shift.starts,
                    ends=shift.ends,
                    schedule_id=shift.schedule_id,
                    name=shift.name,
                )
            )
        problems = [
            *got.problems,
            *(f"{who}: Slack knows nobody by that email" for who in unmatched),
        ]
        try:
            self.rota.replace(reader.source, entries, problems=problems)
        except StorageError as error:
            log.error(
                "cannot store the on-call rota", extra={"source": reader.label, "error": str(error)}
            )
            return Refreshed(reader.source, ok=False, error=str(error))
        for problem in problems:
            log.warning("on-call rota problem", extra={"source": reader.label, "problem": problem})
        people = {e.user_id for e in entries if e.user_id}
        return Refreshed(
            reader.source,
            ok=True,
            shifts=len(entries),
            people=len(people),
            unmatched=unmatched,
            problems=problems,
        )

    def _failed(self, reader: RotaReader, error: str) -> Refreshed:
        age = None
        state = self.rota.state(reader.source)
        if state is not None and state.read_at is not None:
            age = round((self.rota.now() - state.read_at).total_seconds())
        log.warning(
            "cannot read the on-call rota; keeping the stored one",
            extra={"source": reader.label, "error": error, "stored_age_seconds": age},
        )
        try:
            self.rota.failed(reader.source, error)
        except StorageError as problem:
            log.error("cannot record the rota's failure", extra={"error": str(problem)})
        return Refreshed(reader.source, ok=False, error=error)


# -- `oncall list`: now and next, per rota ---------------------------------------------------


@dataclass(frozen=True)
class RotaNow:
    """A rota source's people now and next, for `oncall list`."""

    source: Source
    state: SourceState | None
    now: list[RotaEntry]
    next: list[RotaEntry]


def now_and_next(rota: StoredRota, now: datetime) -> RotaNow:
    """Who is on the stored rota at `now`, and who comes on next (the soonest start)."""
    entries = rota.rota.entries(rota.name)
    current = [e for e in entries if e.covers(now)]
    coming = [e for e in entries if e.starts is not None and e.starts > now]
    first = min((e.starts for e in coming if e.starts is not None), default=None)
    upcoming = [e for e in coming if e.starts == first]
    return RotaNow(rota.name, rota.state(), current, upcoming)
