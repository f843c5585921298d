"""A request's life against a real database: storage's one transition refuses every move
the machine does not allow and changes nothing; random sequences of events never reach a
state the life does not allow; the worker, executing the machine's step with random
answers from the cloud, never tells people of one state twice."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
)

from bot.sharing import states
from bot.sharing.request import Action, IllegalMove, RequestState, ShareRequest
from bot.sharing.states import LIFECYCLE, MOVES, Move
from bot.sharing.worker import Worker
from storage import Database, NewRequest, ShareRequests

S = RequestState
START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
ILLEGAL = [
    (a, b) for a, b in itertools.product(RequestState, RequestState) if b not in MOVES.get(a, ())
]
LEGAL = [(a, b) for a, ends in MOVES.items() for b in sorted(ends)]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


MEMBERS = itertools.count(1)


def ask(requests: ShareRequests, *, needs_approval: bool = False) -> ShareRequest:
    """A new request, for a member of its own."""
    request, created = requests.record(
        NewRequest(
            action=Action.SHARE.value,
            user_id="UASKER",
            image_id="70a599e0-31e7-49b7-b260-868f441e862b",
            member_id=f"member-{next(MEMBERS)}",
            reason="",
            language="en",
            needs_approval=needs_approval,
        )
    )
    assert created
    return request


def stored(database: Database, request_id: int) -> dict[str, Any]:
    """The row as SQLite holds it, every column."""
    connection = sqlite3.connect(database.path)
    try:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM share_requests WHERE id = ?", [request_id])
        return dict(row.fetchone())
    finally:
        connection.close()


def put_in(database: Database, request_id: int, state: RequestState) -> None:
    """Set a row's state behind storage's back: the test's starting point, nothing else."""
    connection = sqlite3.connect(database.path)
    try:
        with connection:
            connection.execute(
                "UPDATE share_requests SET state = ? WHERE id = ?", [state.value, request_id]
            )
    finally:
        connection.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database for the module (its migrations take a while), a row per test."""
    database = Database(tmp_path_factory.mktemp("life") / "life.db", clock=Clock())
    yield database
    database.close()


@pytest.fixture
def requests(database: Database) -> ShareRequests:
    return ShareRequests(database, lifecycle=LIFECYCLE)


# -- every move the life forbids, against the real database ------------------------------


@pytest.mark.parametrize(("current", "to"), ILLEGAL, ids=lambda s: str(s))
def test_every_illegal_move_is_refused_by_storage_and_changes_nothing(
    requests: ShareRequests, current: RequestState, to: RequestState
) -> None:
    database = requests._database
    request = ask(requests)
    put_in(database, request.id, current)
    before = stored(database, request.id)

    with pytest.raises(IllegalMove):
        requests.move(request.id, from_={current}, to=to, error_detail="should not be written")

    assert stored(database, request.id) == before
    # The machine refuses to make such a move at all.
    with pytest.raises(IllegalMove):
        Move.of(current, to)


@pytest.mark.parametrize(("current", "to"), LEGAL, ids=lambda s: str(s))
def test_every_allowed_move_is_made_once_from_the_state_it_was_decided_in(
    requests: ShareRequests, current: RequestState, to: RequestState
) -> None:
    database = requests._database
    request = ask(requests)
    put_in(database, request.id, current)

    moved = requests.move(request.id, from_={current}, to=to, error_detail="moved")

    assert moved is not None and moved.state is to and moved.error_detail == "moved"
    assert stored(database, request.id)["state"] == to.value
    # The same move again finds the request moved on: refused, nothing written.
    after = stored(database, request.id)
    assert requests.move(request.id, from_={current}, to=to, error_detail="again") is None
    assert stored(database, request.id) == after


def test_a_move_from_several_states_lists_only_allowed_ones(requests: ShareRequests) -> None:
    request = ask(requests)
    with pytest.raises(IllegalMove):
        # Sending may go to removed; queued may not: the whole move is refused.
        requests.move(request.id, from_={S.SENDING, S.QUEUED}, to=S.REMOVED)
    with pytest.raises(IllegalMove):
        requests.move(request.id, from_=set(), to=S.SENDING)
    assert requests.get(request.id) == request


def test_update_never_changes_a_state(requests: ShareRequests) -> None:
    request = ask(requests)
    with pytest.raises(ValueError, match="only through a move"):
        requests.update(request.id, state=S.SENDING)
    assert requests.get(request.id) == request


# -- random sequences of events, against the machine and storage --------------------------


class Life(RuleBasedStateMachine):
    """Requests asked, decided, sent, answered, ended and removed in random order, each
    event through the machine's moves and storage's compare-and-set; a model of what each
    request went through is kept beside the database."""

    asked = Bundle("asked")

    # One database for every example (its migrations take a while), emptied for each.
    folder = tempfile.TemporaryDirectory()
    clock = Clock()
    database = Database(Path(folder.name) / "life.db", clock=clock)

    def __init__(self) -> None:
        super().__init__()
        self.database.write(lambda db: db.execute("DELETE FROM share_requests"))
        self.clock.now = START
        self.requests = ShareRequests(self.database, lifecycle=LIFECYCLE)
        self.lives: dict[int, list[RequestState]] = {}
        self.members = itertools.count()

    def _moved(self, request_id: int, moved: ShareRequest | bool | None) -> None:
        current = self.requests.get(request_id)
        assert current is not None
        life = self.lives[request_id]
        if moved:
            assert current.state is not life[-1], "a move that was made changes the state"
            life.append(current.state)
        else:
            assert current.state is life[-1], "a refused move changes nothing"

    @rule(target=asked, needs_approval=st.booleans(), same_member=st.booleans())
    def ask(self, needs_approval: bool, same_member: bool) -> int:
        member = "m0" if same_member else f"m{next(self.members) + 1}"
        request, created = self.requests.record(
            NewRequest(
                action=Action.SHARE.value,
                user_id="UASKER",
                image_id="70a599e0-31e7-49b7-b260-868f441e862b",
                member_id=member,
                reason="",
                language="en",
                needs_approval=needs_approval,
            )
        )
        if created:
            assert request.state is states.first_state(needs_approval)
            self.lives[request.id] = [request.state]
        else:
            # A second ask joins an open one: nothing new is stored.
            assert request.state in states.OPEN
        return request.id

    @rule(request_id=asked, approve=st.booleans(), by=st.sampled_from(["UAPP1", "UASKER"]))
    def decide(self, request_id: int, approve: bool, by: str) -> None:
        request = self.requests.get(request_id)
        assert request is not None
        move = states.APPROVE if approve else states.DENY
        won = self.requests.decide(
            request_id,
            approve=approve,
            by=by,
            from_=move.from_,
            to=move.to,
            seen=request.approvals,
        )
        if by == "UASKER":
            assert won is None, "nobody decides their own request"
        self._moved(request_id, won is not None and won.state is not request.state)

    @rule(request_id=asked)
    def expire(self, request_id: int) -> None:
        self.clock.now += timedelta(days=2)
        moved = self.requests.expire(request_id, from_=states.EXPIRE.from_, to=states.EXPIRE.to)
        self._moved(request_id, moved)

    @rule(request_id=asked)
    def send(self, request_id: int) -> None:
        moved = self.requests.start_sending(request_id, from_=states.SEND.from_, to=states.SEND.to)
        self._moved(request_id, moved)

    @rule(request_id=asked, to=st.sampled_from(list(RequestState)))
    def answer(self, request_id: int, to: RequestState) -> None:
        """The cloud's answer, a member's, a read back: any move, legal or not."""
        request = self.requests.get(request_id)
        assert request is not None
        before = stored(self.requests._database, request_id)
        if to in MOVES.get(request.state, ()):
            moved = self.requests.move(request_id, from_={request.state}, to=to)
            assert moved is not None and moved.state is to
            self._moved(request_id, moved)
        else:
            with pytest.raises(IllegalMove):
                self.requests.move(request_id, from_={request.state}, to=to)
            assert stored(self.requests._database, request_id) == before

    @rule(request_id=asked, to=st.sampled_from(list(RequestState)))
    def stale(self, request_id: int, to: RequestState) -> None:
        """A writer that read the request earlier: its move is refused once it moved on."""
        request = self.requests.get(request_id)
        assert request is not None
        others = [s for s, ends in MOVES.items() if to in ends and s is not request.state]
        if others:
            before = stored(self.requests._database, request_id)
            assert self.requests.move(request_id, from_={others[0]}, to=to) is None
            assert stored(self.requests._database, request_id) == before

    @rule(request_id=asked, by=st.sampled_from([None, "UASKER"]))
    def end(self, request_id: int, by: str | None) -> None:
        moved = self.requests.start_removing(
            request_id, from_=states.END.from_, to=states.END.to, by=by
        )
        self._moved(request_id, moved)

    @invariant()
    def every_life_is_made_of_allowed_moves(self) -> None:
        for request_id, life in self.lives.items():
            for before, after in itertools.pairwise(life):
                assert after in MOVES[before], (request_id, life)
            request = self.requests.get(request_id)
            assert request is not None and request.state is life[-1]
            if life[-1] in states.FINAL:
                assert life[-1] not in MOVES

    @invariant()
    def one_open_request_per_member(self) -> None:
        open_ = [
            r.member_id.lower()
            for r in self.requests.in_states(*states.OPEN)
            if r.action is Action.SHARE
        ]
        assert len(open_) == len(set(open_))


Life.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLife = Life.TestCase


# -- the worker executing the machine's step: never tells twice ------------------------------


class Cloud:
    """Answers the worker's calls with moves Hypothesis picks among those the life allows."""

    def __init__(self, requests: ShareRequests, draw: Any) -> None:
        self.requests = requests
        self.draw = draw
        self.reminders = self  # no reminders of approvers here

    def due(self, request: ShareRequest, now: datetime) -> None:
        return None

    def next_at(self, request: ShareRequest) -> None:
        return None

    def _to(self, request: ShareRequest, choices: list[RequestState]) -> ShareRequest:
        to = self.draw(st.sampled_from(sorted(choices)))
        poll = self.draw(st.sampled_from([None, timedelta(seconds=30)]))
        moved = self.requests.move(
            request.id,
            from_={request.state},
            to=to,
            next_poll_at=self.requests.now() + poll if poll else None,
        )
        return moved or self.requests.get(request.id) or request

    async def check_image(self, request: ShareRequest) -> ShareRequest:
        if self.draw(st.booleans()):
            return request
        return self._to(request, [S.FAILED])

    async def send(self, request: ShareRequest) -> ShareRequest:
        return self._to(request, [S.PENDING, S.ACCEPTED, S.REJECTED, S.FAILED])

    async def reconcile(self, request: ShareRequest, **_: object) -> ShareRequest:
        return self._to(request, [S.PENDING, S.ACCEPTED, S.FAILED])

    async def reconcile_removal(self, request: ShareRequest) -> ShareRequest:
        return self._to(request, [S.REMOVED])

    async def end(self, request: ShareRequest) -> ShareRequest:
        if not self.requests.start_removing(request.id, from_=states.END.from_, to=states.END.to):
            return self.requests.get(request.id) or request
        return await self.reconcile_removal(self.requests.get(request.id) or request)

    async def poll(self, request: ShareRequest) -> ShareRequest:
        if self.draw(st.booleans()):
            return self.requests.update(request.id, next_poll_at=None)
        return self._to(request, [S.ACCEPTED, S.REJECTED])

    async def recheck(self, request: ShareRequest) -> ShareRequest:
        if self.draw(st.booleans()):
            return self.requests.update(request.id, next_poll_at=None)
        return self._to(request, sorted(MOVES[S.FAILED]))

    def time_up(self, request: ShareRequest) -> bool:
        return False

    def log_outcome(self, request: ShareRequest) -> None:
        pass

    def approvers_unreachable(self, request: ShareRequest, why: str) -> None:
        raise AssertionError("no approver is unreachable here")


class Thread:
    """Tells people of each state a request reaches, and notes every telling."""

    def __init__(self) -> None:
        self.told: dict[int, RequestState] = {}
        self.tellings: list[tuple[int, RequestState]] = []

    def up_to_date(self, request: ShareRequest) -> bool:
        return self.told.get(request.id) is request.state

    async def announce(self, request: ShareRequest) -> ShareRequest:
        if self.up_to_date(request):
            return request
        telling = (request.id, request.state)
        assert telling not in self.tellings, f"told twice: {telling}"
        self.tellings.append(telling)
        self.told[request.id] = request.state
        return request

    async def follow_stopped(self, request: ShareRequest) -> None:
        pass

    async def approval_progress(self, request: ShareRequest) -> None:
        pass

    def interrupted(self, request: ShareRequest) -> None:
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_worker_carrying_out_the_machine_never_tells_twice_and_tells_every_end(
    data: st.DataObject,
) -> None:
    database = Life.database
    database.write(lambda db: db.execute("DELETE FROM share_requests"))
    Life.clock.now = START
    requests = ShareRequests(database, lifecycle=LIFECYCLE)
    cloud, thread = Cloud(requests, data.draw), Thread()

    async def run() -> None:
        worker = Worker(requests=requests, service=cloud, announcer=thread)  # type: ignore[arg-type]
        asked = [
            ask(requests, needs_approval=data.draw(st.booleans(), label="needs approval"))
            for _ in range(data.draw(st.integers(1, 4), label="requests"))
        ]
        for _ in range(40):
            event = data.draw(st.sampled_from(["step", "step", "click", "end", "later"]))
            target = data.draw(st.sampled_from(asked))
            if event == "click":
                move = data.draw(st.sampled_from([states.APPROVE, states.DENY]))
                current = requests.get(target.id)
                assert current is not None
                requests.decide(
                    target.id,
                    approve=move is states.APPROVE,
                    by="UAPP1",
                    from_=move.from_,
                    to=move.to,
                    seen=current.approvals,
                )
            elif event == "end":
                requests.start_removing(target.id, from_=states.END.from_, to=states.END.to)
            elif event == "later":
                Life.clock.now += timedelta(minutes=data.draw(st.integers(1, 60 * 30)))
            for due in requests.due(8):
                await worker.advance(due.id)
        # Let everything due run its course: each request told of where it stands.
        for _ in range(20):
            for due in requests.due(8):
                await worker.advance(due.id)
        for request in requests.in_states(*RequestState):
            if request.state in states.FINAL or request.due_at is None:
                assert thread.up_to_date(request), (request.id, request.state, thread.told)

    asyncio.run(run())
