"""A share request as the domain sees it: a value with enums and datetimes.

Storage keeps a request as a row of text (`storage.requests.RequestRow`); `Requests`
is the one place that turns rows into `ShareRequest` values and values back into
columns, so nothing above it parses a timestamp or compares a state with a string.
The states and the moves between them are in `bot.sharing.states`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from storage import ShareRequests
from storage.database import stamp
from storage.requests import Due, NewRequest, RequestRow, Tally, parse_stamp

T = TypeVar("T")


class RequestState(StrEnum):
    """Where a share request stands."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SENDING = "sending"
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REMOVING = "removing"
    REMOVED = "removed"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"


class Action(StrEnum):
    """What a request asks of the cloud: add the member, or remove it."""

    SHARE = "share"
    UNSHARE = "unshare"


@dataclass(frozen=True)
class ShareRequest:
    """One ask, its decision and the cloud API's answer (what Slack was told is apart)."""

    id: int
    action: Action
    user_id: str
    team_id: str | None
    channel_id: str | None
    response_url: str | None
    image_id: str
    member_id: str
    reason: str | None
    language: str | None
    state: RequestState
    created_at: datetime
    updated_at: datetime | None
    needs_approval: bool
    approval_reason: str | None
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    deny_reason: str | None
    sent_at: datetime | None
    finished_at: datetime | None
    api_status: int | None
    api_request_id: str | None
    error_kind: str | None
    error_detail: str | None
    member_status: str | None
    # The cloud's own timestamps, as it wrote them (shown, never computed with).
    member_created_at: str | None
    member_updated_at: str | None
    follow_until: datetime | None
    next_poll_at: datetime | None
    due_at: datetime | None
    lease_until: datetime | None
    # A share that ends by itself (duration None: until removed).
    duration: str | None = None  # as asked, `7d`
    ends_at: datetime | None = None
    remind_at: datetime | None = None
    reminded_at: datetime | None = None
    removing_at: datetime | None = None
    removed_by: str | None = None
    removal_result: str | None = None
    extends: int | None = None
    extended_by: int | None = None
    # Approval: how many approvals it needs and has, and who gave the first of two.
    approvals_needed: int = 1
    approvals: int = 0
    first_approved_by: str | None = None
    first_approved_at: datetime | None = None
    # The last reminder stage posted to approvers (0: none yet), and the asker's Remind.
    approval_reminders: int = 0
    nudge_asked_at: datetime | None = None
    nudge_sent_at: datetime | None = None
    # One share per image and member: the running share whose end this request moved
    # (nothing was added), and whether the member already had access not through the bot.
    takes_over: int | None = None
    was_present: bool = False
    # The image was private: the bot set it Shared for this request (SHARE_MAKE_SHARED=auto).
    made_shared_at: datetime | None = None
    # After this request's removal the image had no member left: the bot set it private again.
    made_private_at: datetime | None = None

    @classmethod
    def of(cls, row: RequestRow) -> ShareRequest:
        """The value a stored row holds."""
        values: dict[str, Any] = {f.name: getattr(row, f.name) for f in fields(cls)}
        for name in TIMES:
            values[name] = parse_stamp(values[name])
        assert values["created_at"] is not None, "every stored request has a creation time"
        values.update(
            action=Action(row.action),
            state=RequestState(row.state),
            needs_approval=bool(row.needs_approval),
            # Columns with a default in the table: a row built elsewhere may leave them out.
            approvals_needed=row.approvals_needed or 1,
            approvals=row.approvals or 0,
            approval_reminders=row.approval_reminders or 0,
            was_present=bool(row.was_present),
        )
        return cls(**values)

    @property
    def unshare(self) -> bool:
        """Whether the request removes the member rather than adding it."""
        return self.action is Action.UNSHARE

    def log_fields(self) -> dict[str, Any]:
        """What a log line says about the request (never a secret: none is stored)."""
        return {
            "request": self.id,
            "user": self.user_id,
            "action": self.action.value,
            "image": self.image_id,
            "member": self.member_id,
            "state": self.state.value,
        }


# The fields the row stores as ISO text and the value holds as datetimes.
TIMES = tuple(f.name for f in fields(ShareRequest) if str(f.type).startswith("datetime"))


def _column(value: object) -> object:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _value(row: RequestRow | None) -> ShareRequest | None:
    return ShareRequest.of(row) if row is not None else None


class Requests:
    """The stored requests, read and written as `ShareRequest` values."""

    def __init__(self, table: ShareRequests) -> None:
        self.table = table

    def now(self) -> datetime:
        """The clock every request's times come from."""
        return self.table.now()

    def record(self, new: NewRequest) -> tuple[ShareRequest, bool]:
        """Store a new request unless an open one covers it; (request, whether it is new)."""
        row, created = self.table.record(new)
        return ShareRequest.of(row), created

    def get(self, request_id: int) -> ShareRequest | None:
        """One request by id."""
        return _value(self.table.get(request_id))

    def for_user(self, user_id: str, limit: int = 10) -> list[ShareRequest]:
        """A user's newest requests."""
        return [ShareRequest.of(row) for row in self.table.for_user(user_id, limit)]

    def awaiting_decision(self, limit: int = 20) -> list[ShareRequest]:
        """Requests still waiting for an approver, oldest first."""
        return [ShareRequest.of(row) for row in self.table.awaiting_decision(limit)]

    def count_for_user(self, user_id: str) -> int:
        """How many requests a user ever made."""
        return self.table.count_for_user(user_id)

    def waiting_for(
        self, images: set[str] | None, *, not_asked_by: str, limit: int
    ) -> tuple[list[ShareRequest], int]:
        """The newest `limit` requests waiting for a decision on `images` (None: all) that
        `not_asked_by` did not ask, and how many there are."""
        rows, total = self.table.waiting_for(images, not_asked_by=not_asked_by, limit=limit)
        return [ShareRequest.of(row) for row in rows], total

    def in_states(self, *states: RequestState) -> list[ShareRequest]:
        """Every request in one of `states`."""
        return [ShareRequest.of(row) for row in self.table.in_states(*states)]

    def decide(
        self, request_id: int, *, approve: bool, by: str, reason: str = "", seen: int = 0
    ) -> ShareRequest | None:
        """Approve (one approval, counted from `seen`) or deny, once per person; the updated
        request for the one click that won."""
        return _value(
            self.table.decide(request_id, approve=approve, by=by, reason=reason, seen=seen)
        )

    def expire(self, request_id: int) -> bool:
        """Mark an undecided request expired once its time is up; True if this call did."""
        return self.table.expire(request_id)

    def due(self, limit: int = 32, *, follow_ups: int | None = None) -> list[Due]:
        """Requests the worker should look at now: new work first, then at most
        `follow_ups` follow-ups (status reads of pending shares, rechecks of failed ones)."""
        return self.table.due(limit, follow_ups=follow_ups)

    def claim(self, request_id: int, lease: timedelta) -> ShareRequest | None:
        """Take a due request for `lease`; None when another worker holds it."""
        return _value(self.table.claim(request_id, lease))

    def release(self, request_id: int, due_at: datetime | None, *, seen: ShareRequest) -> None:
        """Give a claimed request back, due again at `due_at` (at once if it moved meanwhile:
        its state, or while it waits for approval, its approvals or its asker's Remind)."""
        waiting = seen.state == RequestState.AWAITING_APPROVAL
        self.table.release(
            request_id,
            due_at,
            seen_state=seen.state.value,
            seen_approvals=seen.approvals if waiting else None,
            seen_nudge=stamp(seen.nudge_asked_at) if seen.nudge_asked_at else None,
        )

    def drop_leases(self) -> int:
        """Forget every lease (at start-up); how many were held."""
        return self.table.drop_leases()

    def held(self) -> list[ShareRequest]:
        """Requests some worker holds now (at start-up: those a stopped worker left half-way)."""
        return [ShareRequest.of(row) for row in self.table.held()]

    def start_sending(self, request_id: int) -> ShareRequest | None:
        """queued → sending, unless an earlier request for the pair is still in flight; the
        request as it is then (None when it did not move)."""
        return _value(self.table.start_sending(request_id))

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` (writes and reads of any table) as ONE transaction: what belongs
        together lands together. `work` is synchronous: never across an `await`."""
        return self.table.together(work)

    def reading(self, work: Callable[[], T]) -> T:
        """Run `work` (reads of any table, no writes) as ONE transaction."""
        return self.table.reading(work)

    def in_flight(self, image_id: str, *, besides: int) -> bool:
        """Whether another request for the image is about to reach the cloud or is with it."""
        return self.table.in_flight(image_id, besides=besides)

    def waiting_turn(self, request_id: int) -> bool:
        """Whether an earlier request for the same image and member is still in flight."""
        return self.table.waiting_turn(request_id)

    def tally(self) -> Tally:
        """For metrics: counts by state, the most overdue request, approvals waiting."""
        return self.table.tally()

    def start_removing(self, request_id: int, *, by: str | None = None) -> bool:
        """pending | accepted → removing, stored before the remove call (`by`: who ended
        the share early; None when its time was up)."""
        return self.table.start_removing(request_id, by=by)

    def mark_reminded(self, request_id: int) -> bool:
        """Note that the reminder went out; False if it had already."""
        return self.table.mark_reminded(request_id)

    def start_approval_reminder(self, request_id: int, stage: int) -> bool:
        """Claim reminder `stage` while the request still waits for approval (at most once)."""
        return self.table.start_approval_reminder(request_id, stage)

    def undo_approval_reminder(self, request_id: int, stage: int, before: int) -> None:
        """Give back a claimed reminder that Slack did not take for now."""
        self.table.undo_approval_reminder(request_id, stage, before)

    def ask_nudge(self, request_id: int, user_id: str, *, not_before: datetime) -> bool:
        """Record the asker's Remind unless they asked after `not_before`; True if recorded."""
        return self.table.ask_nudge(request_id, user_id, not_before=not_before)

    def take_nudge(self, request_id: int, asked_at: datetime) -> bool:
        """Claim the Remind pressed at `asked_at` for posting (at most once)."""
        return self.table.take_nudge(request_id, stamp(asked_at))

    def link_extension(self, request_id: int, extension_id: int) -> bool:
        """Note that `extension_id` extends `request_id`; False if another did already."""
        return self.table.link_extension(request_id, extension_id)

    def stop_timers(self, image_id: str, member_id: str) -> int:
        """The member was removed by hand: its running shares no longer end by themselves."""
        return self.table.stop_timers(image_id, member_id)

    def running_share(self, image_id: str, member_id: str, *, before: int) -> ShareRequest | None:
        """The newest running share of the image with the member, asked before `before`."""
        return _value(self.table.running_share(image_id, member_id, before=before))

    def through_bot(self, image_id: str) -> list[ShareRequest]:
        """The image's shares whose member has access through the bot, oldest first."""
        return [ShareRequest.of(row) for row in self.table.through_bot(image_id)]

    def reconcile_images(self, since: datetime) -> list[str]:
        """The images the reconcile lists: shares running or under way, and every image
        shared or unshared since `since`."""
        return self.table.reconcile_images(since)

    def for_reconcile(self, image_id: str, changed_since: datetime) -> list[ShareRequest]:
        """The image's requests under way, running, or changed since `changed_since`."""
        return [ShareRequest.of(row) for row in self.table.for_reconcile(image_id, changed_since)]

    def timed(self, image_id: str) -> list[ShareRequest]:
        """The image's shares the bot will remove by itself, soonest first."""
        return [ShareRequest.of(row) for row in self.table.timed(image_id)]

    def update(
        self, request_id: int, *, only_in: RequestState | None = None, **values: object
    ) -> ShareRequest:
        """Set fields of one request (only while it is in `only_in`, when given)."""
        row = self.table.update(
            request_id,
            only_in=only_in.value if only_in else None,
            **{name: _column(value) for name, value in values.items()},
        )
        return ShareRequest.of(row)
