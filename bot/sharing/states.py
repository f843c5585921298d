"""A request's life: every state it can be in and every move between them, in one place.

    awaiting approval ──approve──▶ queued ──▶ sending ──▶ pending ──▶ accepted | rejected
        │  │ deny / expire                       │           │ (any of the three: removed
        │  │                                     │           │  outside the bot)
        │  ▼                                     │           ▼
        │ denied | expired                       │         removed
        │                                        ▼
        └─ no approver can be asked ──────────▶ failed ──(the unanswered change landed after
                                                           all)──▶ pending | accepted | …

A share that ends by itself goes pending | accepted | rejected ▶ removing ▶ removed
when its time is up or its asker ends it early (a member that rejected still has access:
rejecting only keeps the image out of its own list); removing is stored before the
remove call, so a crash in between is reconciled with a read. After a remove the member
list is read back: a member still listed keeps the request in removing (an unshare goes
sending ▶ removing), and the removal is tried again.

Before an approver is asked (awaiting approval) or a direct share is sent (queued), the
image is read: one that does not exist, is public or is not active yet goes straight to
failed, with nothing sent.

A share of a member that has access already (the bot's own running share, or a member
added outside the bot) goes sending ▶ pending | accepted | rejected with nothing added:
it moves the running share's end (`takes_over`), or takes the member under the bot's
timer (`was_present`). A running share whose member the cloud's list no longer shows goes
to removed (removed outside the bot).

An unshare goes queued ▶ sending ▶ removed (or failed).

This module is the one place where states are named (beside the enum itself and the SQL
migrations): the moves, the named sets everyone else uses (`OPEN`, `RUNNING`,
`IN_FLIGHT` ...), and `LIFECYCLE`, the moves and sets storage is handed. Storage names no
state of its own: it makes one kind of move, a compare-and-set from the states the
machine gives to the state it gives (`ShareRequests.move`), and refuses a pair that
`MOVES` does not hold; two writers can never both move one request.

What the worker does to a request next is decided here too: `STEP` lists the work of
one step in order, `applies` says which work is due for a request as it stands,
`tells_during` when people are told while the work is under way (a direct share's
parent message goes out while its call is with the cloud, not before it), `tells_after`
when people are told at once afterwards, and `next_due` when to look again. The worker
carries the work out; it decides nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.sharing.request import IllegalMove, RequestState, ShareRequest
from storage.requests import Lifecycle

__all__ = [
    "ANSWERED",
    "APPROVE",
    "CHANGING",
    "DENY",
    "END",
    "EXPIRE",
    "FINAL",
    "FOLLOWED",
    "IN_FLIGHT",
    "LIFECYCLE",
    "MOVES",
    "NEVER_CARRIED_OUT",
    "OPEN",
    "RUNNING",
    "SEND",
    "STEP",
    "TELLS_DURING",
    "THROUGH_BOT",
    "TURN",
    "TURN_WAIT",
    "UNDER_WAY",
    "WAITING",
    "Facts",
    "IllegalMove",
    "Move",
    "Work",
    "applies",
    "check_move",
    "first_state",
    "next_due",
    "tells_after",
    "tells_during",
    "told_while_sent",
]

S = RequestState

# Where each state may go next. A state missing here is final.
MOVES: dict[RequestState, frozenset[RequestState]] = {
    S.AWAITING_APPROVAL: frozenset({S.QUEUED, S.DENIED, S.EXPIRED, S.FAILED}),
    # Failed from queued: the image read before a direct share says it cannot be shared.
    S.QUEUED: frozenset({S.SENDING, S.FAILED}),
    # Removing from sending: an unshare whose member is still listed after the remove is
    # tried again as a removal is.
    S.SENDING: frozenset({S.PENDING, S.ACCEPTED, S.REJECTED, S.REMOVING, S.REMOVED, S.FAILED}),
    S.PENDING: frozenset({S.ACCEPTED, S.REJECTED, S.REMOVED, S.REMOVING}),
    # Removed straight from a running state only when the cloud's list shows the member gone
    # (removed outside the bot, or by its own unshare): the bot's own remove goes removing first.
    S.ACCEPTED: frozenset({S.REMOVING, S.REMOVED}),
    # Rejected only keeps the image out of the member's own list: it still has access,
    # so a share that ends by itself still ends, and an open-ended one can be removed.
    S.REJECTED: frozenset({S.REMOVING, S.REMOVED}),
    # A remove the cloud refuses is tried again until it goes through: the share must end.
    S.REMOVING: frozenset({S.REMOVED}),
    # A change that failed without an answer is read back: it may have landed after all.
    S.FAILED: frozenset({S.PENDING, S.ACCEPTED, S.REJECTED, S.REMOVED}),
}

# -- the named sets ------------------------------------------------------------------------

# Waiting for an approver's decision.
WAITING = frozenset({S.AWAITING_APPROVAL})
# Not decided yet, or not yet answered by the cloud API: a second ask joins these.
OPEN = frozenset({S.AWAITING_APPROVAL, S.QUEUED, S.SENDING})
# About to reach the cloud, or with it now.
IN_FLIGHT = frozenset({S.QUEUED, S.SENDING})
# Holding the turn of its image and member: requests for one pair reach the cloud one at a
# time, in the order they were asked.
TURN = IN_FLIGHT | {S.REMOVING}
# Answered by the cloud and still giving access: pending, accepted, or rejected (a member
# that declined to list the image keeps access until removed). A share that ends by itself
# ends from these.
RUNNING = frozenset({S.PENDING, S.ACCEPTED, S.REJECTED})
# The member has access through the bot: added and not yet removed.
THROUGH_BOT = RUNNING | {S.REMOVING}
# A share under way or running: the cloud's list of its image is worth reading.
UNDER_WAY = frozenset({S.SENDING}) | THROUGH_BOT
# Carried out: what the cloud's list should show since.
ANSWERED = RUNNING | {S.REMOVED}
# Under way or running: who has access through the bot may be changing now.
CHANGING = IN_FLIGHT | THROUGH_BOT
# A due request in one of these is a follow-up (the status read of a pending share, the
# recheck of a failed one), unless its time is up.
FOLLOWED = frozenset({S.PENDING, S.FAILED})
# Decided against, or left undecided: nothing was ever sent.
NEVER_CARRIED_OUT = frozenset({S.DENIED, S.EXPIRED})
# Where a request's life ends: no move leads out.
FINAL = frozenset(RequestState) - MOVES.keys()


def first_state(needs_approval: bool) -> RequestState:
    """Where a new request starts: waiting for an approver, or queued to be carried out."""
    return S.AWAITING_APPROVAL if needs_approval else S.QUEUED


# What storage is handed: the moves it may make and the sets its reads select by.
LIFECYCLE = Lifecycle(
    moves=MOVES,
    starts=first_state,
    waiting=WAITING,
    open=OPEN,
    in_flight=IN_FLIGHT,
    turn=TURN,
    running=RUNNING,
    through_bot=THROUGH_BOT,
    under_way=UNDER_WAY,
    answered=ANSWERED,
    changing=CHANGING,
    followed=FOLLOWED,
)


def check_move(current: RequestState, to: RequestState) -> None:
    """Raise `IllegalMove` unless a request in `current` may move to `to`."""
    if to not in MOVES.get(current, frozenset()):
        raise IllegalMove(f"a request cannot move from {current} to {to}")


@dataclass(frozen=True)
class Move:
    """A move the life allows, from any of `from_` to `to`: checked when it is made."""

    from_: frozenset[RequestState]
    to: RequestState

    def __post_init__(self) -> None:
        for current in self.from_:
            check_move(current, self.to)

    @classmethod
    def of(cls, from_: RequestState | Collection[RequestState], to: RequestState) -> Move:
        """The move from `from_` (one state or several) to `to`; `IllegalMove` if any is not
        allowed."""
        states = frozenset({from_}) if isinstance(from_, RequestState) else frozenset(from_)
        return cls(states, to)


# The moves the domain makes by name.
APPROVE = Move.of(S.AWAITING_APPROVAL, S.QUEUED)  # the approval that completes the count
DENY = Move.of(S.AWAITING_APPROVAL, S.DENIED)
EXPIRE = Move.of(S.AWAITING_APPROVAL, S.EXPIRED)
SEND = Move.of(S.QUEUED, S.SENDING)  # stored before the cloud API is called
END = Move.of(RUNNING, S.REMOVING)  # stored before the remove call


# -- what the worker does next, and when ---------------------------------------------------

# How often a request waiting for an earlier one for the same image and member looks again.
TURN_WAIT = timedelta(milliseconds=200)


class Work(StrEnum):
    """One thing the worker may do to a request: the machine says which, the worker does it."""

    EXPIRE = "expire"  # waiting past its time to be decided: expired
    CHECK_BEFORE_ASKING = "check_before_asking"  # read the image before approvers are asked
    TELL = "tell"  # bring what people were told up to date
    KEEP_ASKING = "keep_asking"  # approval progress, approver reminders, the asker's Remind
    CHECK_BEFORE_SENDING = "check_before_sending"  # read the image before a direct share
    SEND = "send"  # queued: stored as sending, then the add (or remove) call
    READ_BACK = "read_back"  # left sending by a worker that died: read back, then recorded
    REMOVE = "remove"  # removing: read first, remove only if still there
    END = "end"  # a running share whose time is up: removing, then the remove call
    POLL = "poll"  # the status read of a pending share
    RECHECK = "recheck"  # the read back of a change that failed without an answer
    REMIND = "remind"  # the one reminder before a timed share ends


# One step of the worker, in order: in each group, the first work that applies to the
# request as it stands then is done (or none). Nothing else moves a request on.
STEP: tuple[tuple[Work, ...], ...] = (
    (Work.EXPIRE,),
    # Before any approver is asked: an image that cannot be shared bothers nobody.
    (Work.CHECK_BEFORE_ASKING,),
    # (A direct share not sent yet is told while it is sent: `tells_during`.)
    (Work.TELL,),
    (Work.KEEP_ASKING,),
    # A direct share: the image is read before anything is sent.
    (Work.CHECK_BEFORE_SENDING,),
    (Work.SEND, Work.READ_BACK, Work.REMOVE, Work.END, Work.POLL, Work.RECHECK),
    (Work.REMIND,),
)
# After these, what people were told is brought up to date at once.
TELLS_AFTER = frozenset({Work.SEND, Work.READ_BACK, Work.REMOVE, Work.END, Work.POLL, Work.RECHECK})
# While these are under way, people are told of the request as it stood when they began
# (`told_while_sent`): the call leaves first, the telling goes on meanwhile, and what
# is told after the work (the thread's reply) waits for it.
TELLS_DURING = frozenset({Work.SEND})


def told_while_sent(request: ShareRequest) -> bool:
    """A direct share (or unshare) not sent yet: its parent message is posted while its
    call is with the cloud, not before it, so a burst's calls are not held up behind its
    parent messages. (An approved one was told when approval was asked, and its approval
    is said before it is sent.)"""
    return request.state is S.QUEUED and not request.decided_by


@dataclass(frozen=True)
class Facts:
    """What the machine may ask about a request beside its fields (each asked only when a
    rule needs it: some cost a read)."""

    now: datetime
    told: Callable[[ShareRequest], bool]  # were people told of its current state?
    time_up: Callable[[ShareRequest], bool]  # has a running share's end come?


def applies(work: Work, request: ShareRequest, facts: Facts) -> bool:
    """Whether `work` is due for `request` as it stands now."""
    state, now, poll = request.state, facts.now, request.next_poll_at
    match work:
        case Work.EXPIRE:
            expires = request.expires_at
            return state in WAITING and expires is not None and expires <= now
        case Work.CHECK_BEFORE_ASKING:
            return state in WAITING and not facts.told(request)
        case Work.TELL:
            # Not before a direct share's call: while it (`tells_during`).
            return not told_while_sent(request)
        case Work.KEEP_ASKING:
            return state in WAITING and facts.told(request)
        case Work.CHECK_BEFORE_SENDING:
            return state is S.QUEUED and not request.decided_by
        case Work.SEND:
            return state is S.QUEUED
        case Work.READ_BACK:
            # Read back at once after a restart, then again when it said to (`next_poll_at`).
            return state is S.SENDING and (poll is None or poll <= now)
        case Work.REMOVE:
            return state is S.REMOVING
        case Work.END:
            # On time, whatever the status polling's pace.
            return facts.time_up(request)
        case Work.POLL:
            return state is S.PENDING and poll is not None and poll <= now
        case Work.RECHECK:
            return state is S.FAILED and poll is not None and poll <= now
        case Work.REMIND:
            remind_at, ends_at = request.remind_at, request.ends_at
            return (
                state in RUNNING
                and request.reminded_at is None
                and remind_at is not None
                and ends_at is not None
                and remind_at <= now < ends_at
                and facts.told(request)
            )
    raise AssertionError(work)  # pragma: no cover - every work is matched above


def tells_after(work: Work, before: ShareRequest, after: ShareRequest) -> bool:
    """Whether people are told right after `work` took `before` to `after` (a check that
    ended the request says so at once: nothing else of the step applies to it)."""
    return work in TELLS_AFTER or (
        work is Work.CHECK_BEFORE_SENDING and after.state is not before.state
    )


def tells_during(work: Work, request: ShareRequest) -> bool:
    """Whether people are told of `request` (as it stands) while `work` is under way."""
    return work in TELLS_DURING and told_while_sent(request)


def next_due(
    request: ShareRequest,
    facts: Facts,
    *,
    waiting_turn: Callable[[ShareRequest], bool],
    next_reminder: Callable[[ShareRequest], datetime | None],
) -> datetime | None:
    """When the worker should look at `request` again after a step (None: only when
    something else wakes it: a click, a command)."""
    state, now = request.state, facts.now
    if state is S.QUEUED and waiting_turn(request):
        return now + TURN_WAIT  # an earlier request for this image and member goes first
    if state is S.SENDING and request.next_poll_at:
        return request.next_poll_at  # an interrupted change, read again then
    if not facts.told(request) or state in IN_FLIGHT:
        return now
    if state in WAITING:
        times = [request.expires_at, next_reminder(request)]
        return min((t for t in times if t is not None), default=None)
    if state is S.REMOVING:
        return now
    if state in RUNNING or state is S.FAILED:
        times = [request.next_poll_at]
        if state in RUNNING:
            times.append(request.ends_at)
            if request.reminded_at is None:
                times.append(request.remind_at)
        due = [t for t in times if t is not None]
        return min(due) if due else None
    return None
