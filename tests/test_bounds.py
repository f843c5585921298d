"""The bounds a long day runs within: threads, connections, open files and caches.

Each bound is a number the README names; these tests hold the bot to it by counting,
never by timing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp.client import KEEPALIVE_CONNECTIONS, KEEPALIVE_SECONDS, ScpClient
from bot.services import AFTER_ACK_THREADS, make_cloud_client
from bot.settings import SettingsError
from bot.sharing.worker import Worker
from bot.slack.languages import ASK_AGAIN_SECONDS, REMEMBERED, Languages
from storage import Database, People
from storage.database import CACHE_KIB, CONNECTIONS
from storage.errors import StorageError
from storage.requests import Due
from tests.fakes.slack import FakeSlack
from tests.harness import settings_for

# -- the database: a few connections for any number of threads -------------------------------


def _hammer(threads: int, work: Callable[[int], object]) -> None:
    """Run `work(i)` on `threads` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                work(i)
        except BaseException as error:
            failures.append(error)

    started = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    if failures:
        raise failures[0]


def test_a_hundred_threads_share_the_databases_few_connections(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    people = People(database)

    def work(i: int) -> None:
        people.remember(f"U{i:03d}", "ko" if i % 2 else "en")
        assert people.language(f"U{i:03d}") == ("ko" if i % 2 else "en")

    _hammer(100, work)

    assert CONNECTIONS == 4
    assert 1 <= database.open_connections <= CONNECTIONS
    assert people.language("U099") == "ko"
    database.close()
    assert database.open_connections == 0


def test_the_number_of_connections_is_the_setting(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db", connections=2)
    people = People(database)
    _hammer(30, lambda i: people.remember(f"U{i}", "en"))
    assert database.open_connections <= 2
    with pytest.raises(ValueError, match="at least one connection"):
        Database(tmp_path / "other.db", connections=0)


def test_each_connection_keeps_a_bounded_page_cache(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    size = database.read(lambda db: db.execute("PRAGMA cache_size").fetchone()[0])
    assert size == -CACHE_KIB  # negative: KiB, not pages


def test_a_read_inside_a_write_uses_the_writes_connection(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db", connections=1)
    people = People(database)

    def work(db: Any) -> tuple[bool, str | None]:
        db.table("people").insert(
            {"user_id": "U1", "language": "ko", "fetched_at": "2999-01-01T00:00:00.000000Z"}
        )
        # With one connection, a second one would wait for ever: this one sees the insert.
        inner = database.read(lambda same: same is db)
        return inner, people.language("U1")

    assert database.write(work) == (True, "ko")


def test_a_thread_waits_for_a_connection_no_longer_than_the_busy_timeout(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path / "bot.db", connections=1, busy_timeout=0.2)
    holding, release = threading.Event(), threading.Event()

    def hold(db: Any) -> None:
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=database.read, args=(hold,))
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(StorageError, match="all 1 database connections"):
            database.read(lambda db: None)
    finally:
        release.set()
        holder.join()
    assert database.read(lambda db: 1) == 1  # given back: usable again


def test_the_connections_setting_reaches_the_database(
    slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.services import build_services

    settings = settings_for(slack, "http://127.0.0.1:9", tmp_path, DATABASE_CONNECTIONS=3)
    services = build_services(settings)
    try:
        assert services.database.connections == 3
    finally:
        services.close()
    assert settings_for(slack, "http://127.0.0.1:9", tmp_path).DATABASE_CONNECTIONS == 4
    with pytest.raises(SettingsError, match="DATABASE_CONNECTIONS"):
        settings_for(slack, "http://127.0.0.1:9", tmp_path, DATABASE_CONNECTIONS=0)


# -- the worker: never more requests at once than its threads --------------------------------


class _DueRequests:
    """Just enough of ShareRequests for the worker's loop: `total` requests, all due."""

    def __init__(self, total: int) -> None:
        self.left = list(range(1, total + 1))
        self.lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def held(self) -> list[object]:
        return []

    def drop_leases(self) -> int:
        return 0

    def due(self, limit: int, *, follow_ups: int | None = None) -> list[Due]:
        with self.lock:
            return [Due(request_id, False) for request_id in self.left[:limit]]

    def done(self, request_id: int) -> None:
        with self.lock:
            self.left.remove(request_id)


class _CountingWorker(Worker):
    """A worker whose requests block until released, counting how many run at once."""

    def __init__(self, requests: _DueRequests, threads: int) -> None:
        super().__init__(
            requests=requests,  # type: ignore[arg-type]
            service=None,  # type: ignore[arg-type]
            announcer=None,  # type: ignore[arg-type]
            threads=threads,
            poll_interval=0.01,
        )
        self.due_requests = requests
        self.running = 0
        self.most = 0
        self.most_threads = 0
        self.counted = threading.Lock()
        self.release = threading.Event()
        self.full = threading.Event()

    def advance(self, request_id: int) -> None:
        with self.counted:
            self.running += 1
            self.most = max(self.most, self.running)
            pool = [t for t in threading.enumerate() if t.name.startswith("share-worker")]
            self.most_threads = max(self.most_threads, len(pool))
            if self.running == self.threads:
                self.full.set()
        self.release.wait(10)
        with self.counted:
            self.running -= 1
        self.due_requests.done(request_id)


@contextlib.contextmanager
def _running(worker: _CountingWorker) -> Iterator[list[bool]]:
    """The worker's loop in a thread; what `run` returned, once it has."""
    stop = threading.Event()
    ended: list[bool] = []
    runner = threading.Thread(target=lambda: ended.append(worker.run(stop)))
    runner.start()
    try:
        yield ended
    finally:
        worker.release.set()
        stop.set()
        worker.wake()
        runner.join(10)


def _wait_until_carried_out(requests: _DueRequests) -> None:
    for _ in range(1000):
        if not requests.left:
            return
        threading.Event().wait(0.01)


def _spin(worker: _CountingWorker) -> None:
    """Many rounds of the worker's loop."""
    for _ in range(20):
        worker.wake()
        threading.Event().wait(0.01)


def test_a_hundred_due_requests_never_run_on_more_than_the_workers_threads() -> None:
    requests = _DueRequests(100)
    worker = _CountingWorker(requests, threads=8)
    with _running(worker):
        assert worker.full.wait(10)
        _spin(worker)  # while all threads are taken
        assert worker.running == 8
        worker.release.set()
        _wait_until_carried_out(requests)
    assert not requests.left
    assert worker.most == 8
    assert worker.most_threads == 8


def test_a_worker_due_to_hand_over_starts_nothing_new_and_ends_once_idle() -> None:
    from bot import metrics

    handovers = metrics.WORKER_HANDOVERS._value.get()
    requests = _DueRequests(20)
    worker = _CountingWorker(requests, threads=8)
    worker.recycle = lambda steps: worker.full.is_set()  # due once 8 are under way
    with _running(worker) as ended:
        assert worker.full.wait(10)
        _spin(worker)  # while the 8 are under way
        worker.release.set()
        for _ in range(1000):
            if ended:
                break
            threading.Event().wait(0.01)
        # By itself: `stop` is only set when this block is left.
        assert ended == [True]
    assert metrics.WORKER_HANDOVERS._value.get() == handovers + 1
    assert worker.steps == 8  # the 8 under way ended; the other 12 were never started
    assert len(requests.left) == 12


def test_a_worker_whose_requests_do_not_end_goes_on_working() -> None:
    requests = _DueRequests(20)
    worker = _CountingWorker(requests, threads=8)
    asked: list[int] = []

    def recycle(steps: int) -> bool:
        asked.append(steps)
        return worker.full.is_set()

    worker.recycle = recycle
    worker.drain_seconds = 0.1
    worker.drain_again_seconds = 60.0
    with _running(worker) as ended:
        assert worker.full.wait(10)
        threading.Event().wait(0.5)  # longer than the drain: it gives up handing over
        asked_then = len(asked)
        worker.release.set()
        _wait_until_carried_out(requests)
    assert not requests.left  # the other 12 were carried out after all
    assert len(asked) == asked_then  # and it did not ask again within a minute
    assert ended == [False]  # it ended when told to stop, not to hand over


def test_a_worker_asked_to_stop_says_it_was_not_recycled() -> None:
    worker = _CountingWorker(_DueRequests(0), threads=2)
    worker.recycle = lambda steps: False
    stop = threading.Event()
    stop.set()
    assert worker.run(stop) is False


# -- the cloud client's connections ----------------------------------------------------------


def _pool_limits(client: ScpClient) -> tuple[int, int, float]:
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    return pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry


def test_the_cloud_client_opens_a_connection_per_calling_thread_at_most(
    slack: FakeSlack, tmp_path: Path
) -> None:
    settings = settings_for(slack, "http://127.0.0.1:9", tmp_path, BOT_WORKER_THREADS=12)
    client = make_cloud_client(settings)
    try:
        # Never more kept open than may be open.
        assert client.limits == httpx.Limits(
            max_connections=12 + AFTER_ACK_THREADS,
            max_keepalive_connections=12 + AFTER_ACK_THREADS,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        assert _pool_limits(client) == (16, 16, KEEPALIVE_SECONDS)
    finally:
        client.close()
    default = make_cloud_client(settings_for(slack, "http://127.0.0.1:9", tmp_path))
    try:
        assert _pool_limits(default) == (
            100 + AFTER_ACK_THREADS,
            KEEPALIVE_CONNECTIONS,
            KEEPALIVE_SECONDS,
        )
        assert (KEEPALIVE_CONNECTIONS, KEEPALIVE_SECONDS) == (20, 5.0)
    finally:
        default.close()


# -- caches ----------------------------------------------------------------------------------


class _Locales:
    """A Slack client that knows everyone's locale and counts the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def users_info(self, *, user: str, include_locale: bool) -> dict[str, Any]:
        self.asked.append(user)
        return {"ok": True, "user": {"id": user, "locale": "ko-KR"}}


def test_languages_in_memory_are_bounded_and_the_database_keeps_the_rest(
    tmp_path: Path,
) -> None:
    assert REMEMBERED == 10_000
    database = Database(tmp_path / "bot.db")
    slack = _Locales()
    languages = Languages(People(database), slack, remembered=3)  # type: ignore[arg-type]
    for i in range(10):
        assert languages.of(f"U{i}") == "ko"
    assert languages.remembered_now == 3
    assert languages.asking_now == 0  # no lock left behind per user ever asked about
    # Forgotten in memory, still known: the database answers, Slack is not asked again.
    assert languages.of("U0") == "ko"
    assert slack.asked == [f"U{i}" for i in range(10)]
    assert languages.remembered_now == 3


class _Unknowing:
    """A Slack client that knows nobody (or is down): every question fails."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def users_info(self, *, user: str, include_locale: bool) -> dict[str, Any]:
        self.asked.append(user)
        raise RuntimeError("user_not_found")


def test_a_question_slack_could_not_answer_is_not_repeated_for_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ASK_AGAIN_SECONDS == 60.0
    database = Database(tmp_path / "bot.db")
    slack = _Unknowing()
    languages = Languages(People(database), slack, default="en", remembered=2)  # type: ignore[arg-type]
    clock = [1000.0]
    monkeypatch.setattr("bot.slack.languages.time.monotonic", lambda: clock[0])
    for _ in range(5):
        assert languages.of("UGONE") == "en"  # the default, asked once
    assert slack.asked == ["UGONE"]
    assert languages.known("UGONE") is None  # nothing was learnt: the ack path knows nothing
    clock[0] += 61
    assert languages.of("UGONE") == "en"
    assert slack.asked == ["UGONE", "UGONE"]  # a minute later, asked again
    for i in range(5):  # and the people not answered about are bounded too
        languages.of(f"U{i}")
    assert languages.unanswered_now == 2


def test_many_callers_for_one_new_user_ask_slack_once(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    slack = _Locales()
    languages = Languages(People(database), slack)  # type: ignore[arg-type]
    _hammer(20, lambda i: languages.of("UNEW"))
    assert slack.asked == ["UNEW"]
    assert languages.asking_now == 0
