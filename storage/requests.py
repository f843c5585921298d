"""Share requests: every ask, its decision and the cloud API's answer (Slack's side apart).

Rows are text: states are stored by name, times as ISO timestamps. The states and the
moves between them belong to the domain (`bot.sharing.states`); the SQL here names the
few states it must (open requests, the compare-and-set of a decision, the order per pair).

`due_at` says when the worker should look at a row next (NULL: nothing to do) and
`lease_until` which worker holds it, so a crashed worker's rows are picked up again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, cast

import sqlite_utils

from bot.sharing.request import Action, RequestState, ShareRequest
from storage.database import Database, stamp, unstamp

# An earlier request for the same image and member (ids alike but for case count as the
# same member) that the cloud has not answered yet; `me` is the request that would go next.
EARLIER_IN_FLIGHT = (
    "SELECT 1 FROM share_requests AS earlier WHERE earlier.image_id = {me}.image_id"
    " AND lower(earlier.member_id) = lower({me}.member_id) AND earlier.id < {me}.id"
    " AND earlier.state IN ('queued', 'sending', 'removing')"
)

# Not decided yet, or not yet answered by the cloud API: a second ask joins these.
OPEN_STATES = ("awaiting_approval", "queued", "sending")
# A due row of these is a follow-up (the status read of a pending share, the recheck of a
# failed one), unless the share's time is up: its removal is new work, on time.
_FOLLOW_UP = "(state IN ('pending', 'failed') AND (ends_at IS NULL OR ends_at > :now))"


# The table's columns: one per field of the domain's value.
COLUMNS = [f.name for f in fields(ShareRequest)]
# The fields the row stores as ISO text and the value holds as datetimes.
TIMES = frozenset(f.name for f in fields(ShareRequest) if str(f.type).startswith("datetime"))


@dataclass(frozen=True)
class NewRequest:
    """What a user asked for, validated, before it is stored."""

    action: str
    user_id: str
    image_id: str
    member_id: str
    reason: str
    language: str
    team_id: str = ""
    channel_id: str = ""
    response_url: str = ""
    needs_approval: bool = False
    approval_reason: str = ""
    duration: str = ""  # as asked, `7d`; empty: until removed
    extends: int | None = None  # the share this one extends
    approvals_needed: int = 1  # two for an image that needs two approvals


class Due(NamedTuple):
    """A request due for the worker, and whether it is a follow-up."""

    id: int
    follow_up: bool


@dataclass(frozen=True)
class Tally:
    """What the table holds, for metrics: counts by state, the most overdue, approvals waiting."""

    by_state: dict[str, int]
    oldest_due_seconds: float
    awaiting_decision: int


def request_of(row: Mapping[str, Any]) -> ShareRequest:
    """The value a stored row holds: enums for states and actions, datetimes for times.

    A column the row leaves out reads as NULL (or as its default in the table)."""
    values: dict[str, Any] = {name: row.get(name) for name in COLUMNS}
    for name in TIMES:
        values[name] = parse_stamp(values[name])
    assert values["created_at"] is not None, "every stored request has a creation time"
    values.update(
        action=Action(values["action"]),
        state=RequestState(values["state"]),
        needs_approval=bool(values["needs_approval"]),
        approvals_needed=values["approvals_needed"] or 1,
        approvals=values["approvals"] or 0,
        approval_reminders=values["approval_reminders"] or 0,
        was_present=bool(values["was_present"]),
    )
    return ShareRequest(**values)


def _row(row: Mapping[str, Any] | None) -> ShareRequest | None:
    return None if row is None else request_of(row)


def column(value: object) -> object:
    """A value as the table stores it: enums by name, datetimes as ISO text, bools as 0/1."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, bool):
        return int(value)
    return value


class ShareRequests:
    """The share_requests table."""

    def __init__(
        self, database: Database, *, approval_ttl: timedelta = timedelta(hours=24)
    ) -> None:
        self._database = database
        self.approval_ttl = approval_ttl

    def now(self) -> datetime:
        """The clock every timestamp of this table comes from."""
        return self._database.now()

    # -- asking --------------------------------------------------------------------

    def record(self, new: NewRequest) -> tuple[ShareRequest, bool]:
        """Store a new request, unless one for the same image and member is still open.

        Returns the request and True when it is new, or the open one and False.
        Check and insert share one transaction, so two identical asks make one row.
        """
        now = self.now()

        def work(db: sqlite_utils.Database) -> tuple[ShareRequest, bool]:
            cursor = db.execute(
                # Member ids alike but for case are one member here (the cloud's own rule
                # is unknown), though each request sends the id exactly as typed.
                "SELECT * FROM share_requests WHERE image_id = ? AND lower(member_id) = lower(?)"
                " AND action = ? AND state IN (?, ?, ?) ORDER BY id LIMIT 1",
                [new.image_id, new.member_id, new.action, *OPEN_STATES],
            )
            existing = cursor.fetchone()
            if existing is not None:
                names = [c[0] for c in cursor.description]
                found = _row(dict(zip(names, existing, strict=True)))
                assert found is not None
                return found, False
            state = "awaiting_approval" if new.needs_approval else "queued"
            row: dict[str, Any] = {
                "action": new.action,
                "user_id": new.user_id,
                "team_id": new.team_id,
                "channel_id": new.channel_id,
                "response_url": new.response_url,
                "image_id": new.image_id,
                "member_id": new.member_id,
                "reason": new.reason,
                "language": new.language,
                "state": state,
                "created_at": stamp(now),
                "updated_at": stamp(now),
                "needs_approval": int(new.needs_approval),
                "approval_reason": new.approval_reason or None,
                "duration": new.duration or None,
                "extends": new.extends,
                "approvals_needed": new.approvals_needed,
                "approvals": 0,
                "approval_reminders": 0,
                "expires_at": stamp(now + self.approval_ttl) if new.needs_approval else None,
                "due_at": stamp(now),
            }
            # Plain SQL on the hot path: sqlite-utils' insert reads the schema first.
            cursor = db.execute(
                f"INSERT INTO share_requests ({', '.join(row)})"
                f" VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
            # The row is known: no read-back.
            created = _row({**row, "id": int(cast(int, cursor.lastrowid))})
            assert created is not None
            return created, True

        return self._database.write(work)

    # -- reading -------------------------------------------------------------------

    def get(self, request_id: int) -> ShareRequest | None:
        """One request by id."""

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            cursor = db.execute("SELECT * FROM share_requests WHERE id = ?", [request_id])
            row = cursor.fetchone()
            if row is None:
                return None
            return _row(dict(zip([c[0] for c in cursor.description], row, strict=True)))

        return self._database.read(work)

    def for_user(self, user_id: str, limit: int = 10) -> list[ShareRequest]:
        """A user's newest requests."""
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    "user_id = ?", [user_id], order_by="created_at desc, id desc", limit=limit
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def awaiting_decision(self, limit: int = 20) -> list[ShareRequest]:
        """Requests still waiting for an approver, oldest first."""
        now = stamp(self.now())
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    "state = 'awaiting_approval' AND expires_at > ?",
                    [now],
                    order_by="created_at, id",
                    limit=limit,
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def count_for_user(self, user_id: str) -> int:
        """How many requests a user ever made."""
        return int(
            self._database.read(
                lambda db: db.execute(
                    "SELECT count(*) FROM share_requests WHERE user_id = ?", [user_id]
                ).fetchone()[0]
            )
        )

    def waiting_for(
        self, images: set[str] | None, *, not_asked_by: str, limit: int
    ) -> tuple[list[ShareRequest], int]:
        """Requests still waiting for a decision on `images` (None: every image) that
        `not_asked_by` did not ask: the newest `limit` of them, and how many there are."""
        where = "state = 'awaiting_approval' AND expires_at > ? AND user_id != ?"
        parameters: list[Any] = [stamp(self.now()), not_asked_by]
        if images is not None:
            if not images:
                return [], 0
            where += f" AND image_id IN ({', '.join('?' for _ in images)})"
            parameters.extend(sorted(images))

        def work(db: sqlite_utils.Database) -> tuple[list[ShareRequest], int]:
            total = int(
                db.execute(
                    f"SELECT count(*) FROM share_requests WHERE {where}", parameters
                ).fetchone()[0]
            )
            rows = db.table("share_requests").rows_where(
                where, parameters, order_by="created_at desc, id desc", limit=limit
            )
            return [r for r in map(_row, rows) if r is not None], total

        return self._database.read(work)

    def in_states(self, *states: RequestState) -> list[ShareRequest]:
        """Every request in one of `states` (for reports and tests)."""
        marks = ", ".join("?" for _ in states)
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    f"state IN ({marks})", [s.value for s in states], order_by="id"
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    # -- deciding --------------------------------------------------------------------

    def decide(
        self, request_id: int, *, approve: bool, by: str, reason: str = "", seen: int = 0
    ) -> ShareRequest | None:
        """Approve or deny, once per person: a compare-and-set that only one click can win.

        A deny ends the request. An approve counts one approval (compare-and-set on the
        count `seen`, never twice by one person, never by the asker); the approval that
        reaches the count needed queues it. Returns the updated request for the winner,
        None for everyone else.
        """
        now = stamp(self.now())
        if approve:
            sql = (
                "UPDATE share_requests SET approvals = approvals + 1,"
                " first_approved_by = CASE WHEN approvals = 0 THEN :by"
                " ELSE first_approved_by END,"
                " first_approved_at = CASE WHEN approvals = 0 THEN :now"
                " ELSE first_approved_at END,"
                " state = CASE WHEN approvals + 1 >= approvals_needed THEN 'queued'"
                " ELSE state END,"
                " decided_by = CASE WHEN approvals + 1 >= approvals_needed THEN :by"
                " ELSE decided_by END,"
                " decided_at = CASE WHEN approvals + 1 >= approvals_needed THEN :now"
                " ELSE decided_at END,"
                " updated_at = :now, due_at = :now"
                " WHERE id = :id AND state = 'awaiting_approval' AND expires_at > :now"
                " AND user_id != :by AND approvals = :seen"
                " AND coalesce(first_approved_by, '') != :by"
            )
        else:
            sql = (
                "UPDATE share_requests SET state = 'denied', decided_by = :by,"
                " decided_at = :now, deny_reason = :reason, updated_at = :now, due_at = :now"
                " WHERE id = :id AND state = 'awaiting_approval' AND expires_at > :now"
                " AND user_id != :by"
            )
        values = {"by": by, "now": now, "id": request_id, "seen": seen, "reason": reason or None}
        won = self._database.write(lambda db: db.execute(sql, values).rowcount)
        return self.get(request_id) if won == 1 else None

    def expire(self, request_id: int) -> bool:
        """Mark an undecided request expired once its time is up; True if this call did."""
        now = stamp(self.now())
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET state = 'expired', updated_at = ?, due_at = ?"
                        " WHERE id = ? AND state = 'awaiting_approval' AND expires_at <= ?",
                        [now, now, request_id, now],
                    ).rowcount
                )
            )
            == 1
        )

    # -- the worker's side ---------------------------------------------------------------

    def due(self, limit: int = 32, *, follow_ups: int | None = None) -> list[Due]:
        """Requests the worker should look at now: new work first (asks, sends, removals,
        announcements), then at most `follow_ups` follow-ups (the status read of a pending
        share, the recheck of a failed one); each kind most overdue first."""
        now = stamp(self.now())
        free = "due_at <= :now AND (lease_until IS NULL OR lease_until < :now)"

        def work(db: sqlite_utils.Database) -> list[Due]:
            fresh = db.execute(
                f"SELECT id FROM share_requests WHERE {free} AND NOT {_FOLLOW_UP}"
                " ORDER BY due_at LIMIT :limit",
                {"now": now, "limit": limit},
            ).fetchall()
            room = limit - len(fresh)
            if follow_ups is not None:
                room = min(room, follow_ups)
            later = (
                db.execute(
                    f"SELECT id FROM share_requests WHERE {free} AND {_FOLLOW_UP}"
                    " ORDER BY due_at LIMIT :limit",
                    {"now": now, "limit": room},
                ).fetchall()
                if room > 0
                else []
            )
            return [Due(int(row[0]), False) for row in fresh] + [
                Due(int(row[0]), True) for row in later
            ]

        return self._database.read(work)

    def claim(self, request_id: int, lease: timedelta) -> ShareRequest | None:
        """Take a due request for `lease`; None when another worker holds it or it is not due."""
        now = self.now()

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            # The row as the lease left it, in the same transaction (no second read).
            cursor = db.execute(
                "UPDATE share_requests SET lease_until = ? WHERE id = ? AND due_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) RETURNING *",
                [stamp(now + lease), request_id, stamp(now), stamp(now)],
            )
            row = cursor.fetchone()
            names = [c[0] for c in cursor.description]
            cursor.fetchall()  # the statement runs to its end before the commit
            if row is None:
                return None
            return _row(dict(zip(names, row, strict=True)))

        return self._database.write(work)

    def release(
        self,
        request_id: int,
        due_at: datetime | None,
        *,
        seen: ShareRequest,
        waiting: Collection[RequestState] = (),
    ) -> None:
        """Give a claimed request back, to be looked at again at `due_at` (None: never).

        If its state changed meanwhile from `seen`'s (an approver clicked), or, while it is
        in one of `waiting` (waiting for approval), its approval count or its asker's last
        Remind, it is due at once instead.
        """
        now = stamp(self.now())
        due = stamp(due_at) if due_at else None
        same = "state = :state"
        if seen.state in waiting:
            same += " AND approvals = :approvals AND coalesce(nudge_asked_at, '') = :nudge"
        self._database.write(
            lambda db: db.execute(
                "UPDATE share_requests SET lease_until = NULL,"
                f" due_at = CASE WHEN {same} THEN :due ELSE :now END WHERE id = :id",
                {
                    "state": seen.state.value,
                    "approvals": seen.approvals,
                    "nudge": stamp(seen.nudge_asked_at) if seen.nudge_asked_at else "",
                    "due": due,
                    "now": now,
                    "id": request_id,
                },
            )
        )

    def held(self) -> list[ShareRequest]:
        """Requests some worker holds now (at start-up: those a stopped worker left half-way)."""
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where("lease_until IS NOT NULL", order_by="id")
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def drop_leases(self) -> int:
        """Forget every lease: at start-up no worker holds anything. How many were held."""
        return self._database.write(
            lambda db: (
                db.execute(
                    "UPDATE share_requests SET lease_until = NULL WHERE lease_until IS NOT NULL"
                ).rowcount
            )
        )

    def start_sending(self, request_id: int) -> bool:
        """queued → sending, stored before the cloud API is called; False if not queued, or
        while an earlier request for the same image and member is still being carried out
        (requests for one pair go to the cloud one at a time, in the order they were asked).
        """
        now = stamp(self.now())
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET state = 'sending', sent_at = ?, updated_at = ?"
                        " WHERE id = ? AND state = 'queued' AND NOT EXISTS ("
                        + EARLIER_IN_FLIGHT.format(me="share_requests")
                        + ")",
                        [now, now, request_id],
                    ).rowcount
                )
            )
            == 1
        )

    def start_removing(self, request_id: int, *, by: str | None = None) -> bool:
        """pending | accepted | rejected → removing, stored before the remove call (a member
        that rejected still has access); False if it is in none of them, or while an
        extension of it, or a later share of the same image and member, is about to be sent
        (it takes the share over).

        `by` is who ended the share early; None when its time was up.
        """
        now = stamp(self.now())
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET state = 'removing', removing_at = ?,"
                        " removed_by = ?, updated_at = ?, due_at = ?"
                        " WHERE id = ? AND state IN ('pending', 'accepted', 'rejected')"
                        " AND NOT EXISTS (SELECT 1 FROM share_requests AS later"
                        " WHERE (later.extends = share_requests.id OR (later.id > share_requests.id"
                        " AND later.image_id = share_requests.image_id"
                        " AND lower(later.member_id) = lower(share_requests.member_id)"
                        " AND later.action = 'share'))"
                        " AND later.state IN ('queued', 'sending'))",
                        [now, by, now, now, request_id],
                    ).rowcount
                )
            )
            == 1
        )

    def mark_reminded(self, request_id: int) -> bool:
        """Note that the reminder went out; False if it had already."""
        now = stamp(self.now())
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET reminded_at = ?"
                        " WHERE id = ? AND reminded_at IS NULL",
                        [now, request_id],
                    ).rowcount
                )
            )
            == 1
        )

    def start_approval_reminder(self, request_id: int, stage: int) -> bool:
        """Claim reminder `stage` of a request still waiting for approval (stored before it
        is posted, so it goes out at most once); False when decided, expired or claimed."""
        now = stamp(self.now())
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET approval_reminders = ?"
                        " WHERE id = ? AND state = 'awaiting_approval' AND expires_at > ?"
                        " AND approval_reminders < ?",
                        [stage, request_id, now, stage],
                    ).rowcount
                )
            )
            == 1
        )

    def undo_approval_reminder(self, request_id: int, stage: int, before: int) -> None:
        """Give back a claimed reminder Slack did not take for now (tried again later)."""
        self._database.write(
            lambda db: db.execute(
                "UPDATE share_requests SET approval_reminders = ?"
                " WHERE id = ? AND approval_reminders = ?",
                [before, request_id, stage],
            )
        )

    def ask_nudge(self, request_id: int, user_id: str, *, not_before: datetime) -> bool:
        """Record `user_id`'s Remind for their own request still waiting for approval, unless
        they (or the card) asked after `not_before`; True when recorded (then due at once)."""
        now = stamp(self.now())
        limit = stamp(not_before)
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET nudge_asked_at = ?, due_at = ?"
                        " WHERE id = ? AND user_id = ? AND state = 'awaiting_approval'"
                        " AND expires_at > ? AND created_at <= ?"
                        " AND (nudge_asked_at IS NULL OR nudge_asked_at <= ?)",
                        [now, now, request_id, user_id, now, limit, limit],
                    ).rowcount
                )
            )
            == 1
        )

    def take_nudge(self, request_id: int, asked_at: datetime) -> bool:
        """Claim the Remind pressed at `asked_at` for posting (at most once); False when it
        was taken already or the request was decided meanwhile."""
        now = stamp(self.now())
        asked = stamp(asked_at)
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET nudge_sent_at = ?"
                        " WHERE id = ? AND state = 'awaiting_approval' AND expires_at > ?"
                        " AND nudge_asked_at = ?"
                        " AND (nudge_sent_at IS NULL OR nudge_sent_at != ?)",
                        [asked, request_id, now, asked, asked],
                    ).rowcount
                )
            )
            == 1
        )

    def link_extension(self, request_id: int, extension_id: int) -> bool:
        """Note that `extension_id` extends `request_id`; False if another did already."""
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET extended_by = ?"
                        " WHERE id = ? AND extended_by IS NULL",
                        [extension_id, request_id],
                    ).rowcount
                )
            )
            == 1
        )

    def stop_timers(self, image_id: str, member_id: str) -> int:
        """The member was removed by hand: its running shares no longer end by themselves."""
        now = stamp(self.now())
        return self._database.write(
            lambda db: (
                db.execute(
                    "UPDATE share_requests SET ends_at = NULL, remind_at = NULL, updated_at = ?"
                    " WHERE image_id = ? AND lower(member_id) = lower(?) AND action = 'share'"
                    " AND state IN ('pending', 'accepted', 'rejected') AND ends_at IS NOT NULL",
                    [now, image_id, member_id],
                ).rowcount
            )
        )

    def timed(self, image_id: str) -> list[ShareRequest]:
        """The image's shares the bot will remove by itself, soonest first."""
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    "image_id = ? AND state IN ('pending', 'accepted', 'rejected', 'removing')"
                    " AND ends_at IS NOT NULL",
                    [image_id],
                    order_by="ends_at, id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def running_share(self, image_id: str, member_id: str, *, before: int) -> ShareRequest | None:
        """The newest share of the image with the member (ids alike but for case) that the
        cloud answered and that still gives access (pending, accepted, or rejected: a member
        that declined to list the image keeps access until removed), asked before `before`."""

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            cursor = db.execute(
                "SELECT * FROM share_requests WHERE image_id = ? AND lower(member_id) = lower(?)"
                " AND action = 'share' AND state IN ('pending', 'accepted', 'rejected')"
                " AND id < ?"
                " ORDER BY id DESC LIMIT 1",
                [image_id, member_id, before],
            )
            row = cursor.fetchone()
            if row is None:
                return None
            return _row(dict(zip([c[0] for c in cursor.description], row, strict=True)))

        return self._database.read(work)

    def through_bot(self, image_id: str) -> list[ShareRequest]:
        """The image's shares whose member has access through the bot (added and not yet
        removed: pending, accepted, rejected, or being removed), oldest first."""
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    "image_id = ? AND action = 'share'"
                    " AND state IN ('pending', 'accepted', 'rejected', 'removing')",
                    [image_id],
                    order_by="id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def reconcile_images(self, since: datetime) -> list[str]:
        """The images whose member lists the reconcile reads: every image with a share
        under way or running, and every image shared or unshared since `since`."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT DISTINCT image_id FROM share_requests"
                " WHERE (action = 'share' AND state IN"
                " ('sending', 'pending', 'accepted', 'rejected', 'removing'))"
                " OR (state IN ('pending', 'accepted', 'rejected', 'removed')"
                " AND finished_at >= ?) ORDER BY image_id",
                [stamp(since)],
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    def for_reconcile(self, image_id: str, changed_since: datetime) -> list[ShareRequest]:
        """The image's requests that say who has access through the bot, or may be changing
        it now: under way, running, unshares carried out, or changed since `changed_since`;
        oldest first."""
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    "image_id = ? AND (state IN"
                    " ('queued', 'sending', 'removing', 'pending', 'accepted', 'rejected')"
                    " OR (action = 'unshare' AND state = 'removed') OR updated_at >= ?)",
                    [image_id, stamp(changed_since)],
                    order_by="id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def in_flight(self, image_id: str, *, besides: int) -> bool:
        """Whether a request for the image other than `besides` is about to reach the cloud
        or is with it now."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT 1 FROM share_requests WHERE image_id = ? AND id != ?"
                " AND state IN ('queued', 'sending') LIMIT 1",
                [image_id, besides],
            ).fetchone()
        )
        return row is not None

    def waiting_turn(self, request_id: int) -> bool:
        """Whether an earlier request for the same image and member is still being carried out."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT 1 FROM share_requests AS me WHERE me.id = ? AND EXISTS ("
                + EARLIER_IN_FLIGHT.format(me="me")
                + ")",
                [request_id],
            ).fetchone()
        )
        return row is not None

    def update(
        self, request_id: int, *, only_in: RequestState | None = None, **values: object
    ) -> ShareRequest:
        """Set fields of one request (and `updated_at`); the request as it is afterwards.

        With `only_in`, the row changes only if it is still in that state (a
        compare-and-set).
        """
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        columns = {name: column(value) for name, value in values.items()}
        columns.setdefault("updated_at", stamp(self.now()))
        assignments = ", ".join(f"{name} = ?" for name in columns)
        condition = "id = ?" + (" AND state = ?" if only_in else "")
        parameters = [*columns.values(), request_id, *([only_in.value] if only_in else [])]
        self._database.write(
            lambda db: db.execute(
                f"UPDATE share_requests SET {assignments} WHERE {condition}", parameters
            )
        )
        found = self.get(request_id)
        assert found is not None
        return found

    def tally(self) -> Tally:
        """For metrics: counts by state, the most overdue request, approvals waiting.

        Indexed reads (state, due_at): cheap at any size of the table.
        """
        now = self.now()
        at = stamp(now)

        def work(db: sqlite_utils.Database) -> Tally:
            counts = db.execute("SELECT state, count(*) FROM share_requests GROUP BY state")
            by_state = {str(state): int(count) for state, count in counts.fetchall()}
            oldest = db.execute(
                "SELECT min(due_at) FROM share_requests WHERE due_at <= ?", [at]
            ).fetchone()[0]
            waiting = db.execute(
                "SELECT count(*) FROM share_requests WHERE state = 'awaiting_approval'"
                " AND expires_at > ?",
                [at],
            ).fetchone()[0]
            overdue = (now - unstamp(oldest)).total_seconds() if oldest else 0.0
            return Tally(by_state, max(0.0, overdue), int(waiting))

        return self._database.read(work)


def parse_stamp(value: str | None) -> datetime | None:
    """A stored timestamp as a datetime (None stays None)."""
    return unstamp(value) if value else None
