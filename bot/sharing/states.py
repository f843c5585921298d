"""A request's life: every state it can be in and every move between them, in one place.

    awaiting_approval ──approve──▶ queued ──▶ sending ──▶ pending ──▶ accepted | rejected
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

Before an approver is asked (awaiting_approval) or a direct share is sent (queued), the
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
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.sharing.request import IllegalMove, RequestState
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
    "THROUGH_BOT",
    "TURN",
    "UNDER_WAY",
    "WAITING",
    "IllegalMove",
    "Move",
    "check_move",
    "first_state",
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
