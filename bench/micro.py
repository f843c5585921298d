"""The storage calls on the ack path, timed on a database of realistic size.

A fresh database (the bot's own migrations) is filled in bulk (one transaction per
table, `executemany`: five times faster than sqlite-utils' `insert_all` here) with 10,000 grants
(2,000 users: one all-images role each, four image-scoped ones) and 100,000 share
requests (mostly finished, a few open), then `Grants.roles` and `ShareRequests.record`
are called through the bot's own classes, one call at a time, and timed, with the two
reads a share's ack makes to say that the member has access already (a running share of
it; the cloud's last member list, here holding 10,000 members).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.sharing.states import LIFECYCLE
from bot.sharing.values import Role
from storage import CloudMembers, Database, Grants, ShareRequests
from storage.database import stamp
from storage.requests import NewRequest

GRANTS_PER_USER = 5
IMAGE_POOL = 500
FINISHED_STATES = ("pending", "accepted", "accepted", "accepted", "rejected", "failed", "removed")


@dataclass(frozen=True)
class Timing:
    """Per-call times of one operation, in seconds."""

    name: str
    calls: int
    mean: float
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class MicroResult:
    """The database that was measured, and the timings."""

    grants: int
    requests: int
    users: int
    database_bytes: int
    fill_seconds: float
    timings: list[Timing]


def _image(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


def _grant_rows(count: int, now: str) -> Iterator[dict[str, Any]]:
    roles = [Role.REQUESTER, Role.SHARER, Role.APPROVER, Role.ADMIN]
    for k in range(count):
        user, slot = divmod(k, GRANTS_PER_USER)
        yield {
            "user_id": f"U{user:07d}",
            "role": (Role.SHARER if user % 3 else Role.REQUESTER).value
            if slot == 0
            else roles[(user + slot) % len(roles)].value,
            # Distinct images per user for slots 1..4, "" (every image) for slot 0.
            "image_id": "" if slot == 0 else _image((user * 7 + slot) % IMAGE_POOL),
            "granted_by": "cli:bench",
            "granted_at": now,
        }


def _request_rows(count: int, users: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    base = time.time() - 90 * 86400
    for k in range(count):
        created = base + k * 60.0
        at = stamp_epoch(created)
        done = stamp_epoch(created + 2.0)
        open_row = k % 100 == 0  # 1% still open
        state = (
            rng.choice(["queued", "awaiting_approval"])
            if open_row
            else FINISHED_STATES[k % len(FINISHED_STATES)]
        )
        yield {
            "action": "share" if k % 10 else "unshare",
            "user_id": f"U{rng.randrange(users):07d}",
            "team_id": "T1",
            "channel_id": f"C{k % 50:05d}",
            "response_url": f"https://hooks.slack.com/commands/T1/{k}/x",
            "image_id": _image(rng.randrange(IMAGE_POOL)),
            "member_id": f"m{k:09d}",
            "reason": "",
            "language": "en",
            "state": state,
            "created_at": at,
            "updated_at": done,
            "needs_approval": int(state == "awaiting_approval"),
            "approval_reason": "role" if state == "awaiting_approval" else None,
            "expires_at": stamp_epoch(created + 86400) if state == "awaiting_approval" else None,
            "sent_at": None if open_row else at,
            "finished_at": None if open_row else done,
            "api_status": None if open_row else 200,
            "member_status": None if open_row else "pending",
            "due_at": at if open_row else None,
            "lease_until": None,
        }


def stamp_epoch(seconds: float) -> str:
    """`stamp` of an epoch time."""
    return stamp(datetime.fromtimestamp(seconds, UTC))


def _insert(database: Database, table: str, rows: Iterator[dict[str, Any]]) -> None:
    """One transaction, one prepared statement: the rows' keys must be the table's columns."""
    first = next(rows)
    columns = list(first)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    conn = database.db.conn
    with conn:
        conn.execute(sql, [first[c] for c in columns])
        conn.executemany(sql, ([row[c] for c in columns] for row in rows))


def fill(database: Database, *, grants: int, requests: int, seed: int = 7) -> int:
    """Bulk-insert the grants and requests; the number of users."""
    rng = random.Random(seed)
    users = max(1, grants // GRANTS_PER_USER)
    _insert(database, "grants", _grant_rows(grants, stamp(database.now())))
    _insert(database, "share_requests", _request_rows(requests, users, rng))
    return users


def _time(name: str, calls: int, call: Callable[[int], object]) -> Timing:
    samples: list[float] = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    return Timing(
        name=name,
        calls=calls,
        mean=sum(samples) / calls,
        p50=ordered[calls // 2],
        p99=ordered[min(calls - 1, -(-99 * calls // 100) - 1)],
        max=ordered[-1],
    )


def run_micro(
    directory: Path, *, grants: int = 10_000, requests: int = 100_000, calls: int = 2_000
) -> MicroResult:
    """Fill a database in `directory` and time the ack path's storage calls on it."""
    path = directory / "micro.db"
    database = Database(path)
    try:
        started = time.perf_counter()
        users = fill(database, grants=grants, requests=requests)
        fill_seconds = time.perf_counter() - started
        counted_grants = database.db.execute("SELECT count(*) FROM grants").fetchone()[0]
        counted_requests = database.db.execute("SELECT count(*) FROM share_requests").fetchone()[0]

        rng = random.Random(11)
        table = Grants(database)
        share_requests = ShareRequests(
            database, lifecycle=LIFECYCLE, approval_ttl=timedelta(hours=24)
        )
        lookups = [
            (f"U{rng.randrange(users):07d}", _image(rng.randrange(IMAGE_POOL)))
            for _ in range(calls)
        ]
        asks = [
            NewRequest(
                action="share",
                user_id=f"U{rng.randrange(users):07d}",
                image_id=str(uuid.uuid4()),  # new image and member: never a duplicate
                member_id=f"bench{i:06d}",
                reason="",
                language="en",
                team_id="T1",
                channel_id="C00001",
                response_url=f"https://hooks.slack.com/commands/T1/new{i}/x",
            )
            for i in range(calls)
        ]
        seen = CloudMembers(database)
        for n in range(10_000):
            seen.seen(
                _image(n % IMAGE_POOL),
                f"{n:032x}",
                status="accepted",
                outside=n % 10 == 0,
                at=database.now(),
            )
        pairs = [
            (_image(rng.randrange(IMAGE_POOL)), f"{rng.randrange(20_000):032x}")
            for _ in range(calls)
        ]
        # A few calls first, so that the first timed call does not pay for opening caches.
        for user, image in lookups[:20]:
            table.roles(user, image)
        timings = [
            _time("Grants.roles(user, image)", calls, lambda i: table.roles(*lookups[i])),
            _time(
                "ShareRequests.record(NewRequest)",
                calls,
                lambda i: share_requests.record(asks[i]),
            ),
            _time(
                "ShareRequests.running_share(image, member)",
                calls,
                lambda i: share_requests.running_share(*pairs[i], before=10**9),
            ),
            _time("CloudMembers.get(image, member)", calls, lambda i: seen.get(*pairs[i])),
        ]
        created = database.db.execute(
            "SELECT count(*) FROM share_requests WHERE member_id LIKE 'bench%'"
        ).fetchone()[0]
        if created != calls:
            raise AssertionError(f"record() made {created} rows for {calls} new requests")
    finally:
        database.close()
    return MicroResult(
        grants=int(counted_grants),
        requests=int(counted_requests),
        users=users,
        database_bytes=sum(p.stat().st_size for p in directory.glob("micro.db*")),
        fill_seconds=fill_seconds,
        timings=timings,
    )
