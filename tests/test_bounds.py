"""The bounds a long day runs within: threads, connections, open files and caches.

Each bound is a number the README names; these tests hold the bot to it by counting,
never by timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp.client import KEEPALIVE_SECONDS, ScpClient
from bot.scp.transport import AiohttpTransport
from bot.services import AFTER_ACK_THREADS, make_cloud_client
from bot.settings import SettingsError
from bot.slack.languages import ASK_AGAIN_SECONDS, REMEMBERED, Languages
from storage import Database, People
from storage.database import CACHE_KIB, CONNECTIONS
from storage.errors import StorageError
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
        asyncio.run(services.aclose())
    assert settings_for(slack, "http://127.0.0.1:9", tmp_path).DATABASE_CONNECTIONS == 4
    with pytest.raises(SettingsError, match="DATABASE_CONNECTIONS"):
        settings_for(slack, "http://127.0.0.1:9", tmp_path, DATABASE_CONNECTIONS=0)


# -- the cloud client's connections ----------------------------------------------------------


def _pool_limits(client: ScpClient) -> tuple[int, float]:
    transport = client._http._transport
    assert isinstance(transport, AiohttpTransport)
    return transport.limit, transport.keepalive


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
        assert _pool_limits(client) == (16, KEEPALIVE_SECONDS)
    finally:
        asyncio.run(client.aclose())
    default = make_cloud_client(settings_for(slack, "http://127.0.0.1:9", tmp_path))
    try:
        # Every connection a burst opened is kept for the next one, for 5 s.
        assert _pool_limits(default) == (100 + AFTER_ACK_THREADS, KEEPALIVE_SECONDS)
        assert KEEPALIVE_SECONDS == 5.0
    finally:
        asyncio.run(default.aclose())


# -- caches ----------------------------------------------------------------------------------


class _Locales:
    """A Slack client that knows everyone's locale and counts the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def users_info(self, *, user: str, include_locale: bool) -> dict[str, Any]:
        self.asked.append(user)
        await asyncio.sleep(0.01)  # an answer takes a moment: others ask meanwhile
        return {"ok": True, "user": {"id": user, "locale": "ko-KR"}}


def test_languages_in_memory_are_bounded_and_the_database_keeps_the_rest(
    tmp_path: Path,
) -> None:
    assert REMEMBERED == 10_000
    database = Database(tmp_path / "bot.db")
    slack = _Locales()
    languages = Languages(People(database), slack, remembered=3)  # type: ignore[arg-type]
    for i in range(10):
        assert asyncio.run(languages.of(f"U{i}")) == "ko"
    assert languages.remembered_now == 3
    assert languages.asking_now == 0  # no lock left behind per user ever asked about
    # Forgotten in memory, still known: the database answers, Slack is not asked again.
    assert asyncio.run(languages.of("U0")) == "ko"
    assert slack.asked == [f"U{i}" for i in range(10)]
    assert languages.remembered_now == 3


class _Unknowing:
    """A Slack client that knows nobody (or is down): every question fails."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def users_info(self, *, user: str, include_locale: bool) -> dict[str, Any]:
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
        assert asyncio.run(languages.of("UGONE")) == "en"  # the default, asked once
    assert slack.asked == ["UGONE"]
    assert languages.known("UGONE") is None  # nothing was learnt: the ack path knows nothing
    clock[0] += 61
    assert asyncio.run(languages.of("UGONE")) == "en"
    assert slack.asked == ["UGONE", "UGONE"]  # a minute later, asked again
    for i in range(5):  # and the people not answered about are bounded too
        asyncio.run(languages.of(f"U{i}"))
    assert languages.unanswered_now == 2


def test_many_callers_for_one_new_user_ask_slack_once(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    slack = _Locales()
    languages = Languages(People(database), slack)  # type: ignore[arg-type]

    async def twenty_at_once() -> list[str]:
        return await asyncio.gather(*(languages.of("UNEW") for _ in range(20)))

    assert asyncio.run(twenty_at_once()) == ["ko"] * 20
    assert slack.asked == ["UNEW"]
    assert languages.asking_now == 0


def test_the_cloud_client_goes_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    transport = AiohttpTransport(limit=4, keepalive=5.0)
    assert transport.proxy_for("https", "scp.example") == "http://proxy.example:3128"
    assert transport.proxy_for("https", "api.internal.example") is None
    assert transport.proxy_for("http", "scp.example") is None
