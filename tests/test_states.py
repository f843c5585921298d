"""A request's life on its own: every state reachable, every path ends, nothing goes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sharing.request import RequestState
from bot.sharing.states import MOVES, OPEN, IllegalMove, check_move

S = RequestState
STARTS = (S.AWAITING_APPROVAL, S.QUEUED)


def reachable() -> set[RequestState]:
    seen, todo = set(STARTS), list(STARTS)
    while todo:
        for nxt in MOVES.get(todo.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_an_ask() -> None:
    assert reachable() == set(RequestState)


def test_nothing_goes_back_to_being_open_once_answered() -> None:
    for start, ends in MOVES.items():
        if start not in OPEN:
            assert not ends & OPEN, start


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.DENIED, S.QUEUED),  # a denied request is never carried out
        (S.EXPIRED, S.QUEUED),  # nor an expired one
        (S.QUEUED, S.PENDING),  # nothing is shared without being marked sending first
        (S.ACCEPTED, S.PENDING),  # a member's answer is never taken back to pending
        (S.REJECTED, S.QUEUED),  # a share the cloud answered is never sent again
        (S.PENDING, S.SENDING),
    ],
)
def test_moves_the_life_forbids_are_refused(current: RequestState, to: RequestState) -> None:
    with pytest.raises(IllegalMove):
        check_move(current, to)


@given(st.lists(st.sampled_from(list(RequestState)), max_size=20), st.sampled_from(STARTS))
def test_any_walk_of_allowed_moves_ends_within_a_few_steps(
    choices: list[RequestState], start: RequestState
) -> None:
    state, steps = start, 0
    for choice in choices:
        options = sorted(MOVES.get(state, frozenset()))
        if not options:
            break
        nxt = choice if choice in options else options[0]
        check_move(state, nxt)
        state, steps = nxt, steps + 1
    # The longest life: ask, approve, send, fail unanswered, land after all, be accepted,
    # and be removed when its time is up.
    assert steps <= 7
