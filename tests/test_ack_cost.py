"""What a `/share-image` share costs before its ack, in SQLite, counted with SQLite's own
trace callback (the statements run by the listener's task), and what a failure inside that
one transaction leaves behind: nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.errors import StorageError
from bot.sharing.values import Role
from storage import CloudMembers, Grants, ImagePolicies, KnownMembers
from storage.database import Database
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, BotHarness, member_calls

# What a share's ack runs today: BEGIN IMMEDIATE; the asker's roles, the member's name and
# the image's approval rule (one statement); the duplicate check and the insert; the running
# share and the cloud's last list of the member (for "moves the end" / "was there"); the
# stored image; COMMIT. No step may add to it unnoticed.
MOST_STATEMENTS = 8


class ListenerStatements:
    """The statements SQLite ran for the `/share-image` listener (its task alone)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def traced(self, statement: str) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return
        coro = task.get_coro() if task is not None else None
        if getattr(coro, "__qualname__", "").startswith("PromptListenerRunner._listen"):
            self.statements.append(statement.strip())

    def transactions(self) -> int:
        """Explicit transactions, and statements run outside one (each its own)."""
        count = depth = 0
        for statement in self.statements:
            word = statement.split()[0].upper()
            if word == "BEGIN":
                count += depth == 0
                depth = 1
            elif word in {"COMMIT", "ROLLBACK"}:
                depth = 0
            elif depth == 0:
                count += 1
        return count


def traced_bot(
    make_bot: Callable[..., BotHarness], monkeypatch: pytest.MonkeyPatch
) -> tuple[BotHarness, ListenerStatements]:
    traced = ListenerStatements()
    opened: Callable[..., Any] = Database._open

    def traced_open(self: Database) -> Any:
        db = opened(self)
        db.conn.set_trace_callback(traced.traced)
        return db

    monkeypatch.setattr(Database, "_open", traced_open)
    bot = make_bot(SHARE_UNKNOWN_MEMBERS="direct")
    bot.grant("U1", Role.SHARER)
    bot.services.members.add(MEMBER, MEMBER_NAME, by="test")
    return bot, traced


def test_a_share_is_recorded_and_answered_in_one_sqlite_transaction(
    make_bot: Callable[..., BotHarness], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, traced = traced_bot(make_bot, monkeypatch)
    bot.ack_text("help")  # the user's language is looked up once, and remembered
    traced.statements.clear()

    text = bot.ack_text(f"{IMAGE} {MEMBER}")

    assert text.startswith(f"On it: sharing image `{IMAGE}` with `{MEMBER}` ({MEMBER_NAME})")
    assert traced.transactions() == 1, "\n".join(traced.statements)
    assert len(traced.statements) <= MOST_STATEMENTS, "\n".join(traced.statements)
    assert [r.member_id for r in bot.all_requests()] == [MEMBER]
    # Each of them finds its rows through an index: none reads a whole table (the account's
    # image list, the registered members, the requests), however large it grows.
    for statement in traced.statements:
        if statement.startswith("SELECT"):
            plan = bot.database.db.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
            scans = [row for row in plan if str(row[-1]).startswith("SCAN")]
            assert all(row[-1] == "SCAN CONSTANT ROW" for row in scans), (statement, plan)


def test_a_duplicate_is_answered_in_one_sqlite_transaction_and_records_nothing(
    make_bot: Callable[..., BotHarness], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, traced = traced_bot(make_bot, monkeypatch)
    bot.stop_worker()  # the first stays queued: the second joins it
    bot.ack_text(f"{IMAGE} {MEMBER}")
    traced.statements.clear()

    text = bot.ack_text(f"{IMAGE} {MEMBER}")

    assert "already" in text and "#1" in text, text
    assert traced.transactions() == 1, "\n".join(traced.statements)
    assert len(bot.all_requests()) == 1


def test_a_database_failure_after_the_record_records_nothing_and_says_so(
    bot: BotHarness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(self: CloudMembers, image_id: str, member_id: str) -> None:
        raise StorageError("database read failed: disk I/O error")

    monkeypatch.setattr(CloudMembers, "get", fails)

    text = bot.ack_text(f"{IMAGE} new-member-1")

    assert text == (
        "I couldn't write to my database, so nothing was done. Please try again in a minute."
    )
    assert bot.all_requests() == []
    assert member_calls(sandbox) == []


def test_an_ask_reads_in_one_statement_what_the_three_reads_it_replaces_say(
    tmp_path: Any,
) -> None:
    database = Database(tmp_path / "bot.db")
    grants, members, policies = Grants(database), KnownMembers(database), ImagePolicies(database)
    other = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
    grants.grant("U1", Role.SHARER, by="test")
    grants.grant("U1", Role.APPROVER, IMAGE, by="test")
    grants.grant("U2", Role.REQUESTER, other, by="test")
    members.add("Member-A", "Alpha", by="test")
    members.add("member-b", "Beta", by="test")
    policies.set_approvals(IMAGE, 2, by="test")
    cases = [
        (user, image, member)
        for user in ("U1", "U2", "U3")
        for image in (IMAGE, other)
        for member in ("Member-A", "member-a", "MEMBER-B", "member-c")
    ]
    for user, image, member in cases:
        assert grants.asking(user, image, member) == (
            grants.roles(user, image),
            members.name(member),
            policies.approvals(image),
        ), (user, image, member)
    assert grants.asking("U1", IMAGE, "member-a") == ({Role.SHARER, Role.APPROVER}, "Alpha", 2)
    assert grants.asking("U2", IMAGE, "member-c") == (set(), None, 2)
    database.close()
