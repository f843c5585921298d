"""Fakes of where on-call rotas live, on 127.0.0.1 (port 0): PagerDuty's REST API and an
iCalendar feed server.

`FakePagerDuty` follows PagerDuty's public API reference for what the bot reads:
`GET /oncalls` (the `Authorization: Token token=…` header, `schedule_ids[]`, `since`/
`until`, `earliest=true`, `include[]=users`, paging with `limit` (default 25, at most 100),
`offset` and `more`), `GET /schedules/{id}` (404 for a schedule it does not know), 401 for
a bad key and 429 with `Retry-After` when a test asks for it. It is never kinder: without
`include[]=users` a user is a reference without an email, a schedule it does not know
gives no entries, and a wrong key gets nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class PdUser:
    """A PagerDuty user."""

    id: str
    name: str
    email: str


@dataclass(frozen=True)
class PdShift:
    """Someone on call in a schedule (through an escalation policy at a level)."""

    schedule_id: str
    user: PdUser
    start: datetime | None
    end: datetime | None
    policy_id: str = "PPOLICY1"
    level: int = 1


@dataclass(frozen=True)
class Received:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Served:
    """A fake served on 127.0.0.1 (a free port) from a thread of its own, until `stop()`
    or the end of its `with` block."""

    _server: _Server | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def _address(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class FakePagerDuty(_Served):
    """PagerDuty's `/oncalls` and `/schedules/{id}`, for one REST API key."""

    token: str = "pd-test-read-only-key-0123456789"
    clock: Any = field(default=lambda: datetime.now(UTC))
    schedules: dict[str, str] = field(default_factory=dict)  # id -> name
    shifts: list[PdShift] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _rate_limits: list[int] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    down: bool = False  # answers 503 to everything while set

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- scripting --------------------------------------------------------------------

    def add_schedule(self, schedule_id: str, name: str = "") -> None:
        """A schedule PagerDuty knows."""
        with self._lock:
            self.schedules[schedule_id] = name or f"Schedule {schedule_id}"

    def on_call(
        self,
        schedule_id: str,
        user: PdUser,
        start: datetime | None,
        end: datetime | None,
        **more: Any,
    ) -> None:
        """`user` is on call in the schedule from `start` to `end` (None: always)."""
        with self._lock:
            self.schedules.setdefault(schedule_id, f"Schedule {schedule_id}")
            self.shifts.append(PdShift(schedule_id, user, start, end, **more))

    def rate_limit(self, times: int = 1, retry_after: int = 30) -> None:
        """Answer the next `times` requests with 429 and this Retry-After."""
        with self._lock:
            self._rate_limits += [retry_after] * times

    def fail(self, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests with this status."""
        with self._lock:
            self._failures += [status] * times

    def oncall_requests(self) -> list[Received]:
        """The `/oncalls` requests received."""
        with self._lock:
            return [r for r in self.received if r.path == "/oncalls"]

    # -- serving ----------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on 127.0.0.1, a free port."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, headers, body = fake._answer(self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)
        return self

    @property
    def url(self) -> str:
        """The base URL (ONCALL_PAGERDUTY_URL)."""
        return self._address

    def _answer(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            self.received.append(
                Received("GET", parts.path, query, {k: v for k, v in request.headers.items()})
            )
            if request.headers.get("Authorization") != f"Token token={self.token}":
                return 401, {}, {"error": {"message": "Unauthorized", "code": 2006}}
            if self._rate_limits:
                wait = self._rate_limits.pop(0)
                return (
                    429,
                    {"Retry-After": str(wait)},
                    {"error": {"message": "Rate Limit Exceeded", "code": 2020}},
                )
            if self.down:
                return 503, {}, {"error": {"message": "Service Unavailable"}}
            if self._failures:
                return self._failures.pop(0), {}, {"error": {"message": "Internal Server Error"}}
            if parts.path == "/oncalls":
                return self._oncalls(query)
            if parts.path.startswith("/schedules/"):
                schedule = parts.path.removeprefix("/schedules/")
                if schedule not in self.schedules:
                    return 404, {}, {"error": {"message": "Not Found", "code": 2100}}
                name = self.schedules[schedule]
                return 200, {}, {"schedule": {"id": schedule, "name": name, "type": "schedule"}}
            return 404, {}, {"error": {"message": "Not Found", "code": 2100}}

    def _oncalls(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        try:
            limit = int(query.get("limit", ["25"])[0])
            offset = int(query.get("offset", ["0"])[0])
            now = self.clock()
            since = _parse(query["since"][0]) if "since" in query else now
            until = _parse(query["until"][0]) if "until" in query else now
        except (ValueError, KeyError):
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001}}
        if limit < 1 or offset < 0 or until < since:
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001}}
        limit = min(limit, 100)
        wanted = set(query.get("schedule_ids[]", []))
        with_users = "users" in query.get("include[]", [])
        found = [
            s
            for s in self.shifts
            if (not wanted or s.schedule_id in wanted)
            and (s.start is None or s.start < until)
            and (s.end is None or s.end > since)
        ]
        found.sort(key=lambda s: (s.start or datetime.min.replace(tzinfo=UTC), s.user.id))
        if query.get("earliest", [""])[0] == "true":
            earliest: dict[tuple[str, str, str, int], PdShift] = {}
            for shift in found:
                earliest.setdefault(
                    (shift.user.id, shift.schedule_id, shift.policy_id, shift.level), shift
                )
            found = list(earliest.values())
        page = found[offset : offset + limit]
        entries = [self._entry(s, with_users) for s in page]
        return (
            200,
            {},
            {
                "oncalls": entries,
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(found),
                "total": None,
            },
        )

    def _entry(self, shift: PdShift, with_users: bool) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": shift.user.id,
            "type": "user_reference",
            "summary": shift.user.name,
            "self": f"https://api.pagerduty.com/users/{shift.user.id}",
            "html_url": f"https://example.pagerduty.com/users/{shift.user.id}",
        }
        if with_users:
            user.update(
                type="user",
                name=shift.user.name,
                email=shift.user.email,
                time_zone="Asia/Seoul",
            )
        return {
            "user": user,
            "schedule": {
                "id": shift.schedule_id,
                "type": "schedule_reference",
                "summary": self.schedules.get(shift.schedule_id, ""),
            },
            "escalation_policy": {
                "id": shift.policy_id,
                "type": "escalation_policy_reference",
                "summary": "Platform",
            },
            "escalation_level": shift.level,
            "start": _iso(shift.start),
            "end": _iso(shift.end),
        }


@dataclass
class FakeCalendarFeed(_Served):
    """Serves one iCalendar feed at `/rota.ics` (as `text/calendar`), or a status."""

    feed: bytes = b""
    status: int = 200
    requests: int = 0

    def start(self) -> Self:
        """Serve on 127.0.0.1, a free port."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests += 1
                found = urlsplit(self.path).path == "/rota.ics"
                status = fake.status if found else 404
                body = fake.feed if status == 200 else b"not here"
                self.send_response(status)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)
        return self

    @property
    def url(self) -> str:
        """The feed's address (ONCALL_ICAL_URL), with a private key as real feeds have."""
        return f"{self._address}/rota.ics?key=private-feed-key"
