"""A request's life: every state reachable, every path ends, nothing goes back; the moves
made on a real database; what the worker does next and when, as the machine says."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sharing import states
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.states import LIFECYCLE, MOVES, OPEN, IllegalMove, check_move
from storage import Database, NewRequest, ShareRequests
from storage.requests import request_of

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


# -- moves made, on a real database -----------------------------------------------------------

START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"


@pytest.fixture
def clock() -> list[datetime]:
    return [START]


@pytest.fixture
def requests(tmp_path: Path, clock: list[datetime]) -> ShareRequests:
    database = Database(tmp_path / "moves.db", clock=lambda: clock[0])
    return ShareRequests(database, lifecycle=LIFECYCLE, approval_ttl=timedelta(hours=1))


def ask(
    requests: ShareRequests, member: str = "m1", *, approval: int = 0, extends: int | None = None
) -> ShareRequest:
    request, created = requests.record(
        NewRequest(
            action="share",
            user_id="UASKER",
            image_id=IMAGE,
            member_id=member,
            reason="",
            language="en",
            needs_approval=approval > 0,
            approvals_needed=max(approval, 1),
            extends=extends,
        )
    )
    assert created
    return request


def decide(requests: ShareRequests, request_id: int, by: str, *, approve: bool = True) -> bool:
    move = states.APPROVE if approve else states.DENY
    current = requests.get(request_id)
    assert current is not None
    won = requests.decide(
        request_id,
        approve=approve,
        by=by,
        from_=move.from_,
        to=move.to,
        seen=current.approvals,
    )
    return won is not None


def state_of(requests: ShareRequests, request_id: int) -> RequestState:
    found = requests.get(request_id)
    assert found is not None
    return found.state


def test_a_new_request_starts_where_the_machine_says(requests: ShareRequests) -> None:
    assert ask(requests, "m1").state is states.first_state(False) is S.QUEUED
    assert ask(requests, "m2", approval=1).state is states.first_state(True)
    assert states.first_state(True) is S.AWAITING_APPROVAL


def test_two_approvals_move_it_once_the_second_lands(requests: ShareRequests) -> None:
    request = ask(requests, approval=2)
    assert not decide(requests, request.id, "UASKER")  # never one's own
    assert decide(requests, request.id, "UAPP1")
    assert state_of(requests, request.id) is S.AWAITING_APPROVAL  # one of two: counted
    assert not decide(requests, request.id, "UAPP1")  # never twice by one person
    assert decide(requests, request.id, "UAPP2")
    moved = requests.get(request.id)
    assert moved is not None and moved.state is S.QUEUED and moved.decided_by == "UAPP2"
    assert (moved.approvals, moved.first_approved_by) == (2, "UAPP1")
    # Decided: a deny that comes late changes nothing.
    assert not decide(requests, request.id, "UAPP3", approve=False)
    assert requests.get(request.id) == moved


def test_a_deny_ends_it_and_nothing_decides_it_again(requests: ShareRequests) -> None:
    request = ask(requests, approval=1)
    assert decide(requests, request.id, "UAPP1", approve=False)
    denied = requests.get(request.id)
    assert denied is not None and denied.state is S.DENIED and denied.decided_by == "UAPP1"
    assert not decide(requests, request.id, "UAPP2")
    assert requests.get(request.id) == denied


def test_expiry_moves_only_once_its_time_is_up(
    requests: ShareRequests, clock: list[datetime]
) -> None:
    request = ask(requests, approval=1)
    expire: dict[str, Any] = {"from_": states.EXPIRE.from_, "to": states.EXPIRE.to}
    assert not requests.expire(request.id, **expire)
    assert state_of(requests, request.id) is S.AWAITING_APPROVAL
    clock[0] += timedelta(hours=1)
    assert not decide(requests, request.id, "UAPP1")  # too late to approve
    assert requests.expire(request.id, **expire)
    assert state_of(requests, request.id) is S.EXPIRED
    assert not requests.expire(request.id, **expire)


def test_sending_waits_for_the_earlier_request_of_the_pair(requests: ShareRequests) -> None:
    send: dict[str, Any] = {"from_": states.SEND.from_, "to": states.SEND.to}
    first = ask(requests, "m1")
    assert requests.start_sending(first.id, **send)
    requests.move(first.id, from_={S.SENDING}, to=S.ACCEPTED)
    assert requests.start_removing(first.id, from_=states.END.from_, to=states.END.to)
    second = ask(requests, "M1")  # the same member, whatever the case
    # The first is being removed: the second waits its turn, and says so.
    assert not requests.start_sending(second.id, **send)
    assert requests.waiting_turn(second.id)
    assert state_of(requests, second.id) is S.QUEUED
    requests.move(first.id, from_={S.REMOVING}, to=S.REMOVED)
    assert not requests.waiting_turn(second.id)
    assert requests.start_sending(second.id, **send)
    assert state_of(requests, second.id) is S.SENDING


def test_a_running_share_is_not_ended_while_its_extension_is_being_sent(
    requests: ShareRequests,
) -> None:
    end: dict[str, Any] = {"from_": states.END.from_, "to": states.END.to}
    share = ask(requests, "m1")
    requests.start_sending(share.id, from_=states.SEND.from_, to=states.SEND.to)
    requests.move(share.id, from_={S.SENDING}, to=S.ACCEPTED)
    extension = ask(requests, "m1", extends=share.id)
    assert not requests.start_removing(share.id, **end)
    assert state_of(requests, share.id) is S.ACCEPTED
    requests.move(extension.id, from_={S.QUEUED}, to=S.FAILED)
    assert requests.start_removing(share.id, by="UASKER", **end)
    removing = requests.get(share.id)
    assert removing is not None and removing.state is S.REMOVING
    assert removing.removed_by == "UASKER" and removing.removing_at == START


def test_two_writers_moving_one_request_at_once_one_wins(requests: ShareRequests) -> None:
    request = ask(requests, "m1")
    requests.start_sending(request.id, from_=states.SEND.from_, to=states.SEND.to)
    go = threading.Barrier(2)
    results: dict[RequestState, ShareRequest | None] = {}

    def answer(to: RequestState) -> None:
        go.wait()
        results[to] = requests.move(request.id, from_={S.SENDING}, to=to)

    writers = [threading.Thread(target=answer, args=(to,)) for to in (S.PENDING, S.FAILED)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    [winner] = [to for to, moved in results.items() if moved is not None]
    assert state_of(requests, request.id) is winner


# -- what the worker does next, decided by the machine ------------------------------------------


def value(**changes: object) -> ShareRequest:
    base: dict[str, object] = {
        "id": 1,
        "action": "share",
        "user_id": "UASKER",
        "image_id": IMAGE,
        "member_id": "m1",
        "state": "queued",
        "created_at": "2026-12-08T09:00:00.000000Z",
        "needs_approval": 0,
    }
    return request_of(base | changes)


def step(request: ShareRequest, *, told: bool, time_up: bool = False) -> list[states.Work]:
    """The work the machine's step names for `request`, were nothing to change it."""
    facts = states.Facts(now=START, told=lambda _: told, time_up=lambda _: time_up)
    return [
        next(work for work in group if states.applies(work, request, facts))
        for group in states.STEP
        if any(states.applies(work, request, facts) for work in group)
    ]


W = states.Work
LATER, EARLIER = "2026-12-08T09:30:00.000000Z", "2026-12-08T08:30:00.000000Z"


@pytest.mark.parametrize(
    ("changes", "told", "time_up", "works"),
    [
        # Waiting, not yet told: the image is read before anyone is asked.
        ({"state": "awaiting_approval", "expires_at": LATER}, False, False,
         [W.CHECK_BEFORE_ASKING, W.TELL]),
        ({"state": "awaiting_approval", "expires_at": LATER}, True, False,
         [W.TELL, W.KEEP_ASKING]),
        ({"state": "awaiting_approval", "expires_at": EARLIER}, True, False,
         [W.EXPIRE, W.TELL, W.KEEP_ASKING]),
        # A direct share: read the image, then send (told while it is sent); an approved
        # one is sent at once.
        ({}, True, False, [W.CHECK_BEFORE_SENDING, W.SEND]),
        ({}, False, False, [W.CHECK_BEFORE_SENDING, W.SEND]),
        ({"decided_by": "UAPP1"}, True, False, [W.TELL, W.SEND]),
        # Sending: read back now, or when it said.
        ({"state": "sending"}, True, False, [W.TELL, W.READ_BACK]),
        ({"state": "sending", "next_poll_at": LATER}, True, False, [W.TELL]),
        ({"state": "removing"}, True, False, [W.TELL, W.REMOVE]),
        # A running share whose time is up ends, whatever its polling.
        ({"state": "pending", "next_poll_at": EARLIER}, True, True, [W.TELL, W.END]),
        ({"state": "pending", "next_poll_at": EARLIER}, True, False, [W.TELL, W.POLL]),
        ({"state": "failed", "next_poll_at": EARLIER}, True, False, [W.TELL, W.RECHECK]),
        ({"state": "failed"}, True, False, [W.TELL]),
        ({"state": "accepted", "remind_at": EARLIER, "ends_at": LATER}, True, False,
         [W.TELL, W.REMIND]),
        ({"state": "accepted", "remind_at": EARLIER, "ends_at": LATER}, False, False, [W.TELL]),
        ({"state": "denied"}, True, False, [W.TELL]),
    ],
)  # fmt: skip
def test_the_machine_names_each_step_of_the_worker(
    changes: dict[str, object], told: bool, time_up: bool, works: list[states.Work]
) -> None:
    assert step(value(**changes), told=told, time_up=time_up) == works


@pytest.mark.parametrize(
    ("changes", "told", "turn", "due"),
    [
        ({}, True, True, START + states.TURN_WAIT),  # waits for the pair's turn
        ({}, True, False, START),
        ({"state": "sending", "next_poll_at": LATER}, True, False, LATER),
        ({"state": "accepted"}, False, False, START),  # people to tell: at once
        ({"state": "awaiting_approval", "expires_at": LATER}, True, False, LATER),
        ({"state": "removing"}, True, False, START),
        ({"state": "accepted", "ends_at": LATER, "remind_at": EARLIER}, True, False, EARLIER),
        ({"state": "pending", "next_poll_at": LATER}, True, False, LATER),
        ({"state": "accepted"}, True, False, None),  # until removed: nothing to do
        ({"state": "removed"}, True, False, None),
    ],
)
def test_the_machine_says_when_the_worker_looks_again(
    changes: dict[str, object], told: bool, turn: bool, due: datetime | str | None
) -> None:
    facts = states.Facts(now=START, told=lambda _: told, time_up=lambda _: False)
    expected = datetime.fromisoformat(due) if isinstance(due, str) else due
    assert (
        states.next_due(
            value(**changes), facts, waiting_turn=lambda _: turn, next_reminder=lambda _: None
        )
        == expected
    )


@pytest.mark.parametrize(
    ("changes", "work", "during"),
    [
        ({}, W.SEND, True),  # a direct share: its parent goes out while it is sent
        ({"unshare": 1}, W.SEND, True),
        ({"decided_by": "UAPP1"}, W.SEND, False),  # approved: told before, as ever
        ({}, W.CHECK_BEFORE_SENDING, False),
        ({"state": "sending"}, W.READ_BACK, False),  # after a restart: told before the read
    ],
)
def test_a_direct_share_is_told_while_it_is_sent_not_before(
    changes: dict[str, object], work: states.Work, during: bool
) -> None:
    request = value(**changes)
    assert states.tells_during(work, request) is during
    facts = states.Facts(now=START, told=lambda _: False, time_up=lambda _: False)
    assert states.applies(W.TELL, request, facts) is not (during or work is W.CHECK_BEFORE_SENDING)
