"""An iCalendar feed (RFC 5545) of on-call periods, as rota tools export them.

Parsed with `icalendar` and expanded with `recurring-ical-events` (RRULE, RDATE, EXDATE,
RECURRENCE-ID overrides, each event's own time zone). The person on call is the event's
`ATTENDEE` (mailto), else the first email in its SUMMARY or DESCRIPTION. Times without a
zone ("floating") and all-day dates are read in the bot's time zone. The feed's URL often
carries a private key, so it is named only as ONCALL_ICAL_URL, never shown.

The feed is fetched over one `httpx.AsyncClient`; expanding it (up to MAX_BYTES of text,
MAX_EVENTS events) is CPU work of milliseconds, so `read` does it in a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import httpx
import icalendar
import recurring_ical_events

from bot.rota.errors import RotaMalformed, RotaRefused, RotaUnreachable
from bot.rota.models import RotaRead, Shift

NAME = "the calendar"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_BYTES = 5 * 1024 * 1024  # a rota's feed is kilobytes; a larger one is not a rota
MAX_EVENTS = 10_000
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.ASCII)


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    """A DTSTART/DTEND as an aware datetime: a date is its midnight, floating is `zone`'s."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _people(event: Any) -> list[tuple[str, str]]:
    """(email, name) of whoever the event puts on call."""
    found: list[tuple[str, str]] = []
    attendees = event.get("ATTENDEE")
    if attendees is not None:
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            text = str(attendee)
            if text.lower().startswith("mailto:") and EMAIL.fullmatch(text[7:].strip()):
                name = str(getattr(attendee, "params", {}).get("CN", "") or "")
                found.append((text[7:].strip(), name))
    if found:
        return found
    for field in ("SUMMARY", "DESCRIPTION"):
        match = EMAIL.search(str(event.get(field) or ""))
        if match:
            return [(match.group(0), str(event.get("SUMMARY") or ""))]
    return []


class Calendar:
    """Reads on-call periods from an iCalendar feed."""

    source = "calendar"
    label = NAME

    def __init__(
        self,
        url: str,
        *,
        zone: tzinfo,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._zone = zone
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, follow_redirects=True
        )

    async def aclose(self) -> None:
        """Release the connections."""
        await self._client.aclose()

    async def fetch(self) -> bytes:
        """The feed's bytes; `RotaError` when it cannot be had."""
        request = self._client.stream("GET", self._url, headers={"Accept": "text/calendar"})
        try:
            async with request as r:
                if r.status_code in (401, 403, 404, 410):
                    raise RotaRefused(
                        NAME,
                        f"ONCALL_ICAL_URL answered {r.status_code}: the feed's address is wrong"
                        " or its key was changed; copy the feed's address again",
                    )
                if r.status_code >= 400:
                    raise RotaUnreachable(NAME, f"ONCALL_ICAL_URL answered {r.status_code}")
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise RotaMalformed(
                            NAME, f"ONCALL_ICAL_URL's feed is over {MAX_BYTES // 1024 // 1024} MB"
                        )
                return bytes(body)
        except httpx.TimeoutException:
            raise RotaUnreachable(NAME, "no answer from ONCALL_ICAL_URL") from None
        except httpx.HTTPError as error:
            raise RotaUnreachable(
                NAME, f"ONCALL_ICAL_URL cannot be reached ({type(error).__name__})"
            ) from None

    async def read(
        self, since: datetime, until: datetime, schedule_ids: Sequence[str] = ()
    ) -> RotaRead:
        """Everyone on call between `since` and `until`; events naming nobody are problems."""
        feed = await self.fetch()
        return await asyncio.to_thread(self.parse, feed, since, until)

    def parse(self, feed: bytes, since: datetime, until: datetime) -> RotaRead:
        """The rota in an iCalendar text; `RotaMalformed` when it is none."""
        try:
            calendar = icalendar.Calendar.from_ical(feed)
        except (ValueError, IndexError, KeyError) as error:
            raise RotaMalformed(
                NAME, f"ONCALL_ICAL_URL's feed is not an iCalendar file: {str(error)[:120]}"
            ) from None
        if getattr(calendar, "name", "") != "VCALENDAR":
            raise RotaMalformed(NAME, "ONCALL_ICAL_URL's feed holds no VCALENDAR")
        try:
            events = recurring_ical_events.of(calendar).between(since, until)
            shifts, problems = self._shifts(events)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise RotaMalformed(
                NAME, f"ONCALL_ICAL_URL's feed has an event that cannot be read: {str(error)[:160]}"
            ) from None
        return RotaRead(shifts, problems)

    def _shifts(self, events: list[Any]) -> tuple[list[Shift], list[str]]:
        if len(events) > MAX_EVENTS:
            raise RotaMalformed(NAME, f"ONCALL_ICAL_URL's feed has over {MAX_EVENTS:,} events")
        shifts: list[Shift] = []
        problems: list[str] = []
        for event in events:
            if str(event.get("STATUS") or "").upper() == "CANCELLED":
                continue
            starts = _aware(event["DTSTART"].dt, self._zone)
            ends_prop = event.get("DTEND")
            ends = (
                _aware(ends_prop.dt, self._zone)
                if ends_prop is not None
                else starts + timedelta(days=1)
            )
            people = _people(event)
            if not people:
                summary = str(event.get("SUMMARY") or "").strip()[:60] or "(no summary)"
                problems.append(
                    f"the event {summary!r} from {starts.isoformat(timespec='minutes')} names"
                    " nobody: give it an ATTENDEE (mailto:) or an email in its summary"
                )
                continue
            for email, name in people:
                shifts.append(Shift(email=email, starts=starts, ends=ends, name=name))
        shifts.sort(key=lambda s: (s.starts or since_min(), s.email))
        return shifts, problems


def since_min() -> datetime:
    """The earliest aware moment, for sorting."""
    return datetime.min.replace(tzinfo=UTC)
