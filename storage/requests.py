"""Share requests: every ask, its decision and the cloud API's answer (Slack's side apart).

Rows are text: states are stored by name, times as ISO timestamps; this module maps them
to the domain's `ShareRequest` values and back at its edge. The states and the moves
between them belong to the domain (`bot.sharing.states`): storage is handed them as a
`Lifecycle` and names none itself. It makes one kind of move, a compare-and-set from
the states it is given to the state it is given (`ShareRequests.move`), and refuses a
pair the lifecycle does not allow.

`due_at` says when the worker should look at a row next (NULL: nothing to do) and
`lease_until` which worker holds it, so a crashed worker's rows are picked up again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar, cast

import sqlite_utils

from bot.sharing.request import Action, IllegalMove, RequestState, ShareRequest
from storage.database import Database, stamp, unstamp

T = TypeVar("T")

# An earlier request for the same image and member (ids alike but for case count as the
# same member) that still holds their turn (states `:turn*`); `me` would go next.
EARLIER_IN_FLIGHT = (
    "SELECT 1 FROM share_requests AS earlier WHERE earlier.image_id = {me}.image_id"
    " AND lower(earlier.member_id) = lower({me}.member_id) AND earlier.id < {me}.id"
    " AND earlier.state IN ({turn})"
)


@dataclass(frozen=True)
class Lifecycle:
    """A request's life as storage is handed it by the domain (`bot.sharing.states`):
    the moves it may make and the sets of states its reads select by. Storage names no
    state itself."""

    moves: Mapping[RequestState, frozenset[RequestState]]
    # Where a new request starts, by whether it needs approval.
    starts: Callable[[bool], RequestState]
    waiting: frozenset[RequestState]  # waiting for an approver's decision
    open: frozenset[RequestState]  # a second ask for the same pair joins these
    in_flight: frozenset[RequestState]  # about to reach the cloud, or with it
    turn: frozenset[RequestState]  # holding the turn of its image and member
    running: frozenset[RequestState]  # answered and giving access
    through_bot: frozenset[RequestState]  # the member has access through the bot
    under_way: frozenset[RequestState]  # a share under way or running
    answered: frozenset[RequestState]  # carried out (since a time: worth reading back)
    changing: frozenset[RequestState]  # who has access through the bot may change now
    followed: frozenset[RequestState]  # due rows in these are follow-ups

    def allows(self, from_: RequestState, to: RequestState) -> bool:
        """Whether a request in `from_` may move to `to`."""
        return to in self.moves.get(from_, frozenset())


@dataclass(frozen=True)
class Sql:
    """A value a named move sets as an SQL expression of the row (and its parameters)."""

    expression: str


def _in(name: str, states: Collection[RequestState]) -> tuple[str, Mapping[str, str]]:
    """`states` as named parameters `:name0, :name1 ...` for an `IN (...)`, and their values
    (the same few sets every time: made once each; the values are only read)."""
    return _in_made(name, frozenset(states))


@functools.lru_cache(maxsize=256)
def _in_made(name: str, states: frozenset[RequestState]) -> tuple[str, Mapping[str, str]]:
    values = {f"{name}{n}": state.value for n, state in enumerate(sorted(states))}
    return ", ".join(f":{key}" for key in values), MappingProxyType(values)


# The table's columns: one per field of the domain's value.
COLUMNS = [f.name for f in dataclass_fields(ShareRequest)]
# The fields the row stores as ISO text and the value holds as datetimes.
TIMES = frozenset(
    f.name for f in dataclass_fields(ShareRequest) if str(f.type).startswith("datetime")
)


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
        self,
        database: Database,
        *,
        lifecycle: Lifecycle,
        approval_ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self._database = database
        self.life = lifecycle
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
        written = stamp(now)
        open_, states = _in("open", self.life.open)

        def work(db: sqlite_utils.Database) -> tuple[ShareRequest, bool]:
            cursor = db.execute(
                # Member ids alike but for case are one member here (the cloud's own rule
                # is unknown), though each request sends the id exactly as typed.
                "SELECT * FROM share_requests WHERE image_id = :image"
                " AND lower(member_id) = lower(:member) AND action = :action"
                f" AND state IN ({open_}) ORDER BY id LIMIT 1",
                {"image": new.image_id, "member": new.member_id, "action": new.action, **states},
            )
            existing = cursor.fetchone()
            if existing is not None:
                names = [c[0] for c in cursor.description]
                found = _row(dict(zip(names, existing, strict=True)))
                assert found is not None
                return found, False
            state = self.life.starts(new.needs_approval).value
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
                "created_at": written,
                "updated_at": written,
                "needs_approval": int(new.needs_approval),
                "approval_reason": new.approval_reason or None,
                "duration": new.duration or None,
                "extends": new.extends,
                "approvals_needed": new.approvals_needed,
                "approvals": 0,
                "approval_reminders": 0,
                "expires_at": stamp(now + self.approval_ttl) if new.needs_approval else None,
                "due_at": written,
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
        waiting, states = _in("waiting", self.life.waiting)
        where = f"state IN ({waiting}) AND expires_at > :now AND user_id != :asker"
        parameters = {**states, "now": stamp(self.now()), "asker": not_asked_by}
        if images is not None:
            if not images:
                return [], 0
            marks = {f"image{n}": image for n, image in enumerate(sorted(images))}
            where += f" AND image_id IN ({', '.join(f':{key}' for key in marks)})"
            parameters.update(marks)

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
        self,
        request_id: int,
        *,
        approve: bool,
        by: str,
        from_: Collection[RequestState],
        to: RequestState,
        reason: str = "",
        seen: int = 0,
    ) -> ShareRequest | None:
        """Approve or deny, once per person: a compare-and-set that only one click can win.

        A deny moves the request from `from_` (waiting for a decision) to `to` (denied). An
        approve counts one approval (compare-and-set on the count `seen`, never twice by
        one person, never by the asker); the approval that reaches the count needed moves
        it to `to` (queued). Returns the updated request for the winner, None for
        everyone else.
        """
        now = stamp(self.now())
        fields: dict[str, object] = {"updated_at": now, "due_at": now}
        if approve:
            # The move happens only with the last approval needed; the others only count.
            done = "approvals + 1 >= approvals_needed"
            fields.update(
                approvals=Sql("approvals + 1"),
                first_approved_by=Sql(
                    "CASE WHEN approvals = 0 THEN :by ELSE first_approved_by END"
                ),
                first_approved_at=Sql(
                    "CASE WHEN approvals = 0 THEN :now ELSE first_approved_at END"
                ),
                decided_by=Sql(f"CASE WHEN {done} THEN :by ELSE decided_by END"),
                decided_at=Sql(f"CASE WHEN {done} THEN :now ELSE decided_at END"),
            )
            state = f"CASE WHEN {done} THEN :to ELSE state END"
            guard = (
                "expires_at > :now AND user_id != :by AND approvals = :seen"
                " AND coalesce(first_approved_by, '') != :by"
            )
        else:
            fields.update(decided_by=by, decided_at=now, deny_reason=reason or None)
            state = ":to"
            guard = "expires_at > :now AND user_id != :by"
        return self._move(
            request_id,
            from_,
            to,
            fields,
            state=state,
            guard=guard,
            parameters={"by": by, "now": now, "seen": seen},
        )

    def expire(self, request_id: int, *, from_: Collection[RequestState], to: RequestState) -> bool:
        """Move an undecided request (in `from_`) to `to` (expired) once its time is up;
        True if this call did."""
        now = stamp(self.now())
        return (
            self._move(
                request_id,
                from_,
                to,
                {"updated_at": now, "due_at": now},
                guard="expires_at <= :now",
                parameters={"now": now},
            )
            is not None
        )

    # -- the worker's side ---------------------------------------------------------------

    def due(self, limit: int = 32, *, follow_ups: int | None = None) -> list[Due]:
        """Requests the worker should look at now: new work first (asks, sends, removals,
        announcements), then at most `follow_ups` follow-ups (the status read of a pending
        share, the recheck of a failed one); each kind most overdue first."""
        now = stamp(self.now())
        free = "due_at <= :now AND (lease_until IS NULL OR lease_until < :now)"
        followed, states = _in("followed", self.life.followed)
        # A follow-up, unless the share's time is up: its removal is new work, on time.
        follow_up = f"(state IN ({followed}) AND (ends_at IS NULL OR ends_at > :now))"

        def work(db: sqlite_utils.Database) -> list[Due]:
            fresh = db.execute(
                f"SELECT id FROM share_requests WHERE {free} AND NOT {follow_up}"
                " ORDER BY due_at LIMIT :limit",
                {"now": now, "limit": limit, **states},
            ).fetchall()
            room = limit - len(fresh)
            if follow_ups is not None:
                room = min(room, follow_ups)
            later = (
                db.execute(
                    f"SELECT id FROM share_requests WHERE {free} AND {follow_up}"
                    " ORDER BY due_at LIMIT :limit",
                    {"now": now, "limit": room, **states},
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
    ) -> None:
        """Give a claimed request back, to be looked at again at `due_at` (None: never).

        If its state changed meanwhile from `seen`'s (an approver clicked), or, while it
        waits for approval, its approval count or its asker's last Remind, it is due at
        once instead.
        """
        now = stamp(self.now())
        due = stamp(due_at) if due_at else None
        same = "state = :state"
        if seen.state in self.life.waiting:
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

    def start_sending(
        self, request_id: int, *, from_: Collection[RequestState], to: RequestState
    ) -> ShareRequest | None:
        """Move from `from_` (queued) to `to` (sending), stored before the cloud API is
        called; the request as it is then, or None if not in `from_`, or while an earlier
        request for the same image and member still holds their turn (requests for one pair
        go to the cloud one at a time, in the order they were asked).
        """
        now = stamp(self.now())
        turn, states = _in("turn", self.life.turn)
        return self._move(
            request_id,
            from_,
            to,
            {"sent_at": now, "updated_at": now},
            guard="NOT EXISTS (" + EARLIER_IN_FLIGHT.format(me="share_requests", turn=turn) + ")",
            parameters=states,
        )

    def start_removing(
        self,
        request_id: int,
        *,
        from_: Collection[RequestState],
        to: RequestState,
        by: str | None = None,
    ) -> bool:
        """Move from `from_` (running: a member that rejected still has access) to `to`
        (removing), stored before the remove call; False if it is in none of `from_`, or
        while an extension of it, or a later share of the same image and member, is about
        to be sent (it takes the share over).

        `by` is who ended the share early; None when its time was up.
        """
        now = stamp(self.now())
        in_flight, states = _in("in_flight", self.life.in_flight)
        return (
            self._move(
                request_id,
                from_,
                to,
                {"removing_at": now, "removed_by": by, "updated_at": now, "due_at": now},
                guard="NOT EXISTS (SELECT 1 FROM share_requests AS later"
                " WHERE (later.extends = share_requests.id OR (later.id > share_requests.id"
                " AND later.image_id = share_requests.image_id"
                " AND lower(later.member_id) = lower(share_requests.member_id)"
                " AND later.action = :share))"
                f" AND later.state IN ({in_flight}))",
                parameters={"share": Action.SHARE.value, **states},
            )
            is not None
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
        waiting, states = _in("waiting", self.life.waiting)
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET approval_reminders = :stage"
                        f" WHERE id = :id AND state IN ({waiting}) AND expires_at > :now"
                        " AND approval_reminders < :stage",
                        {"stage": stage, "id": request_id, "now": now, **states},
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
        waiting, states = _in("waiting", self.life.waiting)
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET nudge_asked_at = :now, due_at = :now"
                        f" WHERE id = :id AND user_id = :user AND state IN ({waiting})"
                        " AND expires_at > :now AND created_at <= :limit"
                        " AND (nudge_asked_at IS NULL OR nudge_asked_at <= :limit)",
                        {"now": now, "id": request_id, "user": user_id, "limit": limit, **states},
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
        waiting, states = _in("waiting", self.life.waiting)
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE share_requests SET nudge_sent_at = :asked"
                        f" WHERE id = :id AND state IN ({waiting}) AND expires_at > :now"
                        " AND nudge_asked_at = :asked"
                        " AND (nudge_sent_at IS NULL OR nudge_sent_at != :asked)",
                        {"asked": asked, "id": request_id, "now": now, **states},
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
        running, states = _in("running", self.life.running)
        return self._database.write(
            lambda db: (
                db.execute(
                    "UPDATE share_requests SET ends_at = NULL, remind_at = NULL, updated_at = :now"
                    " WHERE image_id = :image AND lower(member_id) = lower(:member)"
                    f" AND action = :share AND state IN ({running}) AND ends_at IS NOT NULL",
                    {
                        "now": now,
                        "image": image_id,
                        "member": member_id,
                        "share": Action.SHARE.value,
                        **states,
                    },
                ).rowcount
            )
        )

    def timed(self, image_id: str) -> list[ShareRequest]:
        """The image's shares the bot will remove by itself, soonest first."""
        through_bot, states = _in("through_bot", self.life.through_bot)
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    f"image_id = :image AND state IN ({through_bot}) AND ends_at IS NOT NULL",
                    {"image": image_id, **states},
                    order_by="ends_at, id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def running_share(self, image_id: str, member_id: str, *, before: int) -> ShareRequest | None:
        """The newest share of the image with the member (ids alike but for case) that the
        cloud answered and that still gives access (pending, accepted, or rejected: a member
        that declined to list the image keeps access until removed), asked before `before`."""

        running, states = _in("running", self.life.running)

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            cursor = db.execute(
                "SELECT * FROM share_requests WHERE image_id = :image"
                " AND lower(member_id) = lower(:member) AND action = :share"
                f" AND state IN ({running}) AND id < :before ORDER BY id DESC LIMIT 1",
                {
                    "image": image_id,
                    "member": member_id,
                    "share": Action.SHARE.value,
                    "before": before,
                    **states,
                },
            )
            row = cursor.fetchone()
            if row is None:
                return None
            return _row(dict(zip([c[0] for c in cursor.description], row, strict=True)))

        return self._database.read(work)

    def through_bot(self, image_id: str) -> list[ShareRequest]:
        """The image's shares whose member has access through the bot (added and not yet
        removed: pending, accepted, rejected, or being removed), oldest first."""
        through_bot, states = _in("through_bot", self.life.through_bot)
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    f"image_id = :image AND action = :share AND state IN ({through_bot})",
                    {"image": image_id, "share": Action.SHARE.value, **states},
                    order_by="id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def reconcile_images(self, since: datetime) -> list[str]:
        """The images whose member lists the reconcile reads: every image with a share
        under way or running, and every image shared or unshared since `since`."""
        under_way, under_way_states = _in("under_way", self.life.under_way)
        answered, answered_states = _in("answered", self.life.answered)
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT DISTINCT image_id FROM share_requests"
                f" WHERE (action = :share AND state IN ({under_way}))"
                f" OR (state IN ({answered}) AND finished_at >= :since) ORDER BY image_id",
                {
                    "share": Action.SHARE.value,
                    "since": stamp(since),
                    **under_way_states,
                    **answered_states,
                },
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    def for_reconcile(self, image_id: str, changed_since: datetime) -> list[ShareRequest]:
        """The image's requests that say who has access through the bot, or may be changing
        it now: under way, running, unshares carried out, or changed since `changed_since`;
        oldest first."""
        changing, states = _in("changing", self.life.changing)
        # An unshare carried out: the one answered state an unshare ends in.
        carried_out, unshared = _in("unshared", self.life.answered - self.life.running)
        rows = self._database.read(
            lambda db: list(
                db.table("share_requests").rows_where(
                    f"image_id = :image AND (state IN ({changing})"
                    f" OR (action = :unshare AND state IN ({carried_out}))"
                    " OR updated_at >= :since)",
                    {
                        "image": image_id,
                        "unshare": Action.UNSHARE.value,
                        "since": stamp(changed_since),
                        **states,
                        **unshared,
                    },
                    order_by="id",
                )
            )
        )
        return [r for r in map(_row, rows) if r is not None]

    def in_flight(self, image_id: str, *, besides: int) -> bool:
        """Whether a request for the image other than `besides` is about to reach the cloud
        or is with it now."""
        in_flight, states = _in("in_flight", self.life.in_flight)
        row = self._database.read(
            lambda db: db.execute(
                "SELECT 1 FROM share_requests WHERE image_id = :image AND id != :besides"
                f" AND state IN ({in_flight}) LIMIT 1",
                {"image": image_id, "besides": besides, **states},
            ).fetchone()
        )
        return row is not None

    def waiting_turn(self, request_id: int) -> bool:
        """Whether an earlier request for the same image and member is still being carried out."""
        turn, states = _in("turn", self.life.turn)
        row = self._database.read(
            lambda db: db.execute(
                "SELECT 1 FROM share_requests AS me WHERE me.id = :id AND EXISTS ("
                + EARLIER_IN_FLIGHT.format(me="me", turn=turn)
                + ")",
                {"id": request_id, **states},
            ).fetchone()
        )
        return row is not None

    def move(
        self,
        request_id: int,
        *,
        from_: Collection[RequestState],
        to: RequestState,
        **values: object,
    ) -> ShareRequest | None:
        """The one kind of move: a compare-and-set of the request's state from any of
        `from_` to `to`, with `values` set in the same statement (and `updated_at`).

        `IllegalMove` (nothing written) if the lifecycle does not allow a move from one of
        `from_` to `to`; None (nothing written) if the request is in none of `from_` now:
        another writer moved it first. Otherwise the request as the move left it.
        """
        values.setdefault("updated_at", self.now())
        return self._move(request_id, from_, to, values)

    def _move(
        self,
        request_id: int,
        from_: Collection[RequestState],
        to: RequestState,
        values: Mapping[str, object],
        *,
        state: str = ":to",
        guard: str = "",
        parameters: Mapping[str, object] | None = None,
    ) -> ShareRequest | None:
        """`move`, with the new state as an SQL expression of `:to` (`state`) and a further
        condition (`guard`, over `parameters`) for the named moves here."""
        if not from_:
            raise IllegalMove(f"a move to {to} from no state")
        for current in from_:
            if not self.life.allows(current, to):
                raise IllegalMove(f"a request cannot move from {current} to {to}")
        unknown = set(values) - set(COLUMNS) | ({"state", "id"} & set(values))
        if unknown:
            raise ValueError(f"not columns a move sets: {sorted(unknown)}")
        sql_values: dict[str, object] = {"to": to.value, "id": request_id, **(parameters or {})}
        assignments = [f"state = {state}"]
        for n, (name, value) in enumerate(values.items()):
            if isinstance(value, Sql):
                assignments.append(f"{name} = {value.expression}")
            else:
                assignments.append(f"{name} = :v{n}")
                sql_values[f"v{n}"] = column(value)
        marks, states = _in("from", from_)
        sql_values.update(states)
        where = f"id = :id AND state IN ({marks})" + (f" AND {guard}" if guard else "")

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            # The row as the move left it, in the same transaction (no second read).
            cursor = db.execute(
                f"UPDATE share_requests SET {', '.join(assignments)} WHERE {where} RETURNING *",
                sql_values,
            )
            row = cursor.fetchone()
            names = [c[0] for c in cursor.description]
            cursor.fetchall()  # the statement runs to its end before the commit
            return None if row is None else request_of(dict(zip(names, row, strict=True)))

        return self._database.write(work)

    def update(
        self, request_id: int, *, only_in: RequestState | None = None, **values: object
    ) -> ShareRequest:
        """Set fields of one request other than its state (and `updated_at`); the request
        as it is afterwards. A state changes only through `move`.

        With `only_in`, the row changes only if it is still in that state (a
        compare-and-set).
        """
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        if "state" in values:
            raise ValueError("a request's state changes only through a move")
        columns = {name: column(value) for name, value in values.items()}
        columns.setdefault("updated_at", stamp(self.now()))
        assignments = ", ".join(f"{name} = ?" for name in columns)
        condition = "id = ?" + (" AND state = ?" if only_in else "")
        parameters = [*columns.values(), request_id, *([only_in.value] if only_in else [])]

        def work(db: sqlite_utils.Database) -> ShareRequest | None:
            db.execute(f"UPDATE share_requests SET {assignments} WHERE {condition}", parameters)
            return self.get(request_id)  # in the same transaction

        found = self._database.write(work)
        assert found is not None
        return found

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` (writes and reads of any table of this database) as ONE transaction."""
        return self._database.write(lambda _db: work())

    def reading(self, work: Callable[[], T]) -> T:
        """Run `work` (reads of any table of this database, no writes) as ONE transaction."""
        return self._database.reads(work)

    def tally(self) -> Tally:
        """For metrics: counts by state, the most overdue request, approvals waiting.

        Indexed reads (state, due_at): cheap at any size of the table.
        """
        now = self.now()
        at = stamp(now)
        waiting_, states = _in("waiting", self.life.waiting)

        def work(db: sqlite_utils.Database) -> Tally:
            counts = db.execute("SELECT state, count(*) FROM share_requests GROUP BY state")
            by_state = {str(state): int(count) for state, count in counts.fetchall()}
            oldest = db.execute(
                "SELECT min(due_at) FROM share_requests WHERE due_at <= ?", [at]
            ).fetchone()[0]
            waiting = db.execute(
                f"SELECT count(*) FROM share_requests WHERE state IN ({waiting_})"
                " AND expires_at > :now",
                {"now": at, **states},
            ).fetchone()[0]
            overdue = (now - unstamp(oldest)).total_seconds() if oldest else 0.0
            return Tally(by_state, max(0.0, overdue), int(waiting))

        return self._database.read(work)


def parse_stamp(value: str | None) -> datetime | None:
    """A stored timestamp as a datetime (None stays None)."""
    return unstamp(value) if value else None
