"""What a direct share costs the worker in SQLite transactions, counted with SQLite's own
trace callback: every explicit transaction (BEGIN ... COMMIT) is one, and so is every
statement run outside one (SQLite wraps it in a transaction of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role
from storage.database import Database
from tests.harness import IMAGE, BotHarness, adds

# Issue 18's bound for one direct share, every step of it in the worker.
GOAL = 12
# What a direct share costs today: no step may add to it unnoticed. (44 when the announcer
# read the request and its Slack record again after every message, and each storage call
# was a transaction of its own.) The claim; the language (the table, then Slack's answer
# cached and stored on the request together); the parent message (a read of the Slack
# record, the member's name and the image; its record); the image check; queued ->
# sending; the reads before the add; the answer; the two messages of `pending` (the reply
# and the parent's update: with no notify channel there is no notify step), each recorded
# with a read of the state; the release.
MOST_TRANSACTIONS = 11


class Transactions:
    """Statements SQLite ran for the worker's requests, and the transactions they made."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def traced(self, statement: str) -> None:
        task = asyncio.current_task() if _in_loop() else None
        coro = task.get_coro() if task is not None else None
        if coro is not None and getattr(coro, "__qualname__", "").startswith(
            "Worker._advance_then_free"
        ):
            self.statements.append(statement.strip())

    def grouped(self) -> list[list[str]]:
        """The statements of each transaction, as `count` counts them."""
        groups: list[list[str]] = []
        depth = 0
        for statement in self.statements:
            words = statement.upper().split()
            word = words[0] if words else ""
            if word in {"BEGIN", "SAVEPOINT"}:
                if depth == 0:
                    groups.append([])
                depth += 1
            elif word in {"COMMIT", "END"} or (word == "ROLLBACK" and "TO" not in words):
                depth = 0
            elif word == "RELEASE":
                depth = max(0, depth - 1)
            elif depth == 0:
                groups.append([statement])
            else:
                groups[-1].append(statement)
        return groups

    def count(self) -> int:
        transactions = 0
        depth = 0  # BEGIN, or SAVEPOINTs (the outermost opens a transaction as BEGIN does)
        for statement in self.statements:
            words = statement.upper().split()
            word = words[0] if words else ""
            if word in {"BEGIN", "SAVEPOINT"}:
                if depth == 0:
                    transactions += 1
                depth += 1
            elif word in {"COMMIT", "END"} or (word == "ROLLBACK" and "TO" not in words):
                depth = 0
            elif word == "RELEASE":
                depth = max(0, depth - 1)
            elif depth == 0:
                transactions += 1
        return transactions


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def trace_every_connection(monkeypatch: pytest.MonkeyPatch, into: Transactions) -> None:
    opened: Callable[..., Any] = Database._open

    def traced_open(self: Database) -> Any:
        db = opened(self)
        db.conn.set_trace_callback(into.traced)
        return db

    monkeypatch.setattr(Database, "_open", traced_open)


def direct_share_transactions(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> Transactions:
    """One direct share, carried out and answered in its thread, its worker's statements."""
    transactions = Transactions()
    trace_every_connection(monkeypatch, transactions)
    bot = make_bot(SHARE_UNKNOWN_MEMBERS="direct")
    bot.grant("U1", Role.SHARER)
    bot.database.close()  # every connection from now on is traced
    assert bot.ack_text(f"{IMAGE} member-tx-1").startswith("On it")
    shared = bot.wait_state("pending", 1)
    parent = bot.parent()
    [reply] = bot.wait_thread(parent)
    assert "It is *pending*" in reply
    assert len(adds(sandbox)) == 1 and shared.finished_at is not None
    return transactions


def test_a_direct_share_costs_the_worker_no_more_sqlite_transactions_than_today(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = direct_share_transactions(make_bot, sandbox, monkeypatch)
    counted = transactions.count()
    assert 0 < counted <= MOST_TRANSACTIONS, "\n".join(transactions.statements)


def test_a_direct_share_reads_its_slack_record_once_and_stores_the_language_with_its_cache(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = direct_share_transactions(make_bot, sandbox, monkeypatch).grouped()
    statements = [s for group in groups for s in group]
    assert sum(s.startswith("SELECT * FROM slack_messages") for s in statements) == 1
    # Slack's answer cached, and stored on the request, in one transaction.
    [language] = [g for g in groups if any(s.startswith("INSERT INTO people") for s in g)]
    assert any(s.startswith("UPDATE share_requests SET language") for s in language)
    # Every message of `pending` recorded with a read of the request's state.
    records = [g for g in groups if any("INSERT INTO slack_messages" in s for s in g)]
    # The parent, then the reply and the parent's update; no channel to notify, no record.
    assert len(records) == 3
    assert all(any(s.startswith("SELECT * FROM share_requests") for s in g) for g in records[1:])


def test_a_direct_share_costs_the_worker_at_most_12_sqlite_transactions(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = direct_share_transactions(make_bot, sandbox, monkeypatch)
    assert transactions.count() <= GOAL


# -- the database's transactions, put together ---------------------------------------------


def traced_database(tmp_path: Any) -> tuple[Database, list[str]]:
    database = Database(tmp_path / "bot.db")
    statements: list[str] = []
    database.db.conn.set_trace_callback(statements.append)
    return database, statements


def test_a_write_inside_a_write_is_one_transaction_and_both_roll_back_together(
    tmp_path: Any,
) -> None:
    database, statements = traced_database(tmp_path)

    def both(db: Any) -> int:
        database.write(
            lambda inner: inner.execute(
                "INSERT INTO audit (at, actor, action, detail) VALUES ('t', 'a', 'x', 'd')"
            )
        )
        return len(database.read(lambda inner: inner.execute("SELECT * FROM audit").fetchall()))

    assert database.write(both) == 1
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "SELECT", "COMMIT"]

    def failing(db: Any) -> None:
        database.write(lambda inner: inner.execute("DELETE FROM audit"))
        raise ValueError("no")

    with pytest.raises(ValueError):
        database.write(failing)
    assert database.read(lambda db: db.execute("SELECT count(*) FROM audit").fetchone()[0]) == 1


def test_reads_put_together_are_one_transaction_and_may_not_write(tmp_path: Any) -> None:
    database, statements = traced_database(tmp_path)

    def two() -> tuple[Any, Any]:
        first = database.read(lambda db: db.execute("SELECT count(*) FROM audit").fetchone())
        return first, database.read(lambda db: db.execute("SELECT 1").fetchone())

    assert database.reads(two) == ((0,), (1,))
    assert [s.split()[0] for s in statements] == ["BEGIN", "SELECT", "SELECT", "COMMIT"]
    with pytest.raises(RuntimeError, match="write inside"):
        database.reads(lambda: database.write(lambda db: db.execute("DELETE FROM audit")))
    # Nothing is left open: the next write is a transaction of its own.
    database.write(lambda db: db.execute("DELETE FROM audit"))
