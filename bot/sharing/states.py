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

An unshare goes queued ▶ sending ▶ removed (or failed). The share service makes every
move through `check_move`, and storage makes it a compare-and-set from the state it
was decided in, so two writers can never both move one request.
"""

from __future__ import annotations

from bot.sharing.request import RequestState

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
# Not decided yet, or not yet answered by the cloud API: a second ask joins these.
OPEN = frozenset({S.AWAITING_APPROVAL, S.QUEUED, S.SENDING})


class IllegalMove(Exception):
    """A move the request's life does not allow: a bug, never a user's doing."""


def check_move(current: RequestState, to: RequestState) -> None:
    """Raise `IllegalMove` unless a request in `current` may move to `to`."""
    if to not in MOVES.get(current, frozenset()):
        raise IllegalMove(f"a request cannot move from {current} to {to}")
