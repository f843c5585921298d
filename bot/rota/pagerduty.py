"""PagerDuty's REST API v2: who is on call, from `GET /oncalls`.

One long-lived `httpx.AsyncClient`; the key goes in `Authorization: Token token=…` through
an `httpx.Auth`, so it is in no URL and no log line. No retries inside a read: the worker
reads again at its next turn, and after a 429 not before `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.retry_after import retry_after_seconds
from bot.rota.errors import RotaError, RotaMalformed, RotaRateLimited, RotaRefused, RotaUnreachable
from bot.rota.models import RotaRead, Shift

DEFAULT_URL = "https://api.pagerduty.com"
ACCEPT = "application/vnd.pagerduty+json;version=2"
PAGE = 100  # the most /oncalls gives in one page
MAX_PAGES = 100  # 10,000 entries: far beyond any rota; a source that never says `more: false`
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
NAME = "PagerDuty"
# When a 429 says nothing of how long to wait.
DEFAULT_RETRY_AFTER = 60.0


class TokenAuth(httpx.Auth):
    """PagerDuty's REST API key, as its `Authorization` header wants it."""

    def __init__(self, token: str) -> None:
        self._header = f"Token token={token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _moment(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RotaMalformed(NAME, f"/oncalls gave {what} {str(value)[:40]!r}, not a time") from None
    if moment.tzinfo is None:
        raise RotaMalformed(NAME, f"/oncalls gave {what} {value!r} without an offset")
    return moment


def _error_message(response: httpx.Response) -> str:
    """PagerDuty's `{"error": {"message", "code"}}`, shortly."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "")[:200]
    code = error.get("code")
    return f"{message} (code {code})" if code is not None else message


class PagerDuty:
    """Reads who is on call in PagerDuty schedules."""

    source = "pagerduty"
    label = NAME

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_URL,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=TokenAuth(token),
            timeout=timeout,
            transport=transport,
            headers={"Accept": ACCEPT},
        )

    async def aclose(self) -> None:
        """Release the connections."""
        await self._client.aclose()

    async def _get(
        self, path: str, params: list[tuple[str, str | int | float | bool | None]]
    ) -> httpx.Response:
        try:
            response = await self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise RotaUnreachable(NAME, f"no answer from ONCALL_PAGERDUTY_URL ({path})") from None
        except httpx.HTTPError as error:
            raise RotaUnreachable(
                NAME, f"ONCALL_PAGERDUTY_URL cannot be reached ({type(error).__name__})"
            ) from None
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None:
                wait = DEFAULT_RETRY_AFTER
            raise RotaRateLimited(NAME, f"rate-limited: asked to wait {wait:.0f} s", wait)
        if status in (401, 403):
            message = _error_message(response)
            raise RotaRefused(
                NAME,
                f"refused ONCALL_PAGERDUTY_TOKEN ({status}{': ' + message if message else ''}):"
                " give a valid REST API key (a read-only one is enough)",
            )
        if status >= 500:
            raise RotaUnreachable(NAME, f"{path} answered {status}")
        return response

    async def read(
        self, since: datetime, until: datetime, schedule_ids: Sequence[str] = ()
    ) -> RotaRead:
        """Everyone on call in `schedule_ids` between `since` and `until`, one entry per
        person, schedule and level (`earliest=true`); a schedule with nobody at all is a
        problem, and one PagerDuty does not know is named."""
        if not schedule_ids:
            return RotaRead([])
        base: list[tuple[str, str | int | float | bool | None]] = [
            *(("schedule_ids[]", s) for s in schedule_ids),
            ("include[]", "users"),
            ("earliest", "true"),
            ("since", since.astimezone(UTC).isoformat()),
            ("until", until.astimezone(UTC).isoformat()),
            ("limit", PAGE),
        ]
        shifts: dict[tuple[str, str, datetime | None, datetime | None], Shift] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            response = await self._get("/oncalls", [*base, ("offset", offset)])
            if response.status_code != 200:
                raise self._refusal(response, "/oncalls")
            page = self._page(response)
            for entry in page["oncalls"]:
                shift = self._shift(entry)
                if shift is not None:
                    key = (shift.email.lower(), shift.schedule_id, shift.starts, shift.ends)
                    shifts.setdefault(key, shift)
            got = len(page["oncalls"])
            if not page.get("more") or got == 0:
                break
            offset += got
        else:
            raise RotaMalformed(NAME, f"/oncalls still said more after {MAX_PAGES} pages")
        found = {s.schedule_id for s in shifts.values()}
        problems = [
            await self._empty(schedule) for schedule in schedule_ids if schedule not in found
        ]
        ordered = sorted(
            shifts.values(),
            key=lambda s: (s.starts or datetime.min.replace(tzinfo=UTC), s.email),
        )
        return RotaRead(ordered, problems)

    def _refusal(self, response: httpx.Response, path: str) -> RotaError:
        message = _error_message(response)
        if response.status_code == 404:
            return RotaRefused(NAME, f"{path} answered 404: is ONCALL_PAGERDUTY_URL right?")
        return RotaMalformed(
            NAME,
            f"{path} answered {response.status_code}{': ' + message if message else ''}",
        )

    def _page(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise RotaMalformed(NAME, "/oncalls answered something that is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("oncalls"), list):
            raise RotaMalformed(NAME, "/oncalls answered without an `oncalls` list")
        return body

    def _shift(self, entry: Any) -> Shift | None:
        if not isinstance(entry, dict):
            raise RotaMalformed(NAME, "/oncalls gave an entry that is not an object")
        schedule = entry.get("schedule") or {}
        user = entry.get("user") or {}
        if not isinstance(schedule, dict) or not isinstance(user, dict):
            raise RotaMalformed(NAME, "/oncalls gave an entry without user or schedule objects")
        schedule_id = str(schedule.get("id") or "")
        if not schedule_id:
            return None  # on call through a policy directly, not a schedule asked for
        email = str(user.get("email") or "")
        if not email:
            raise RotaMalformed(
                NAME, "/oncalls gave a user without an email (was include[]=users dropped?)"
            )
        return Shift(
            email=email,
            starts=_moment(entry.get("start"), "a start"),
            ends=_moment(entry.get("end"), "an end"),
            name=str(user.get("name") or user.get("summary") or ""),
            schedule_id=schedule_id,
        )

    async def _empty(self, schedule_id: str) -> str:
        """Why a schedule asked for had nobody: unknown to PagerDuty, or empty."""
        response = await self._get(f"/schedules/{schedule_id}", [])
        if response.status_code == 404:
            return (
                f"schedule {schedule_id}: PagerDuty knows no such schedule (check"
                " ONCALL_PAGERDUTY_SCHEDULES and `oncall schedule`)"
            )
        return f"schedule {schedule_id}: nobody is on call in it"
