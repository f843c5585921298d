"""What Slack was told about each request: its messages and how far each announcement got.

Kept apart from the request's facts (`share_requests`), as Slack's bookkeeping: which
channel message a request's thread hangs off, where its approval card is, and which
of its state's messages went out already, so a retry sends only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import sqlite_utils

from bot.sharing.values import SlackData
from storage.database import Database

__all__ = ["SlackMessages"]

T = TypeVar("T")


COLUMNS = [f.name for f in fields(SlackData)]


def _record(names: list[str], row: tuple[Any, ...]) -> SlackData:
    values = dict(zip(names, row, strict=True))
    values["via_response_url"] = bool(values["via_response_url"])
    values["check_before_posting"] = bool(values["check_before_posting"])
    return SlackData(**values)


class SlackMessages:
    """The slack_messages table: one row per request Slack was told about."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, request_id: int) -> SlackData:
        """The request's Slack side (empty when nothing was posted yet)."""

        def work(db: sqlite_utils.Database) -> SlackData:
            cursor = db.execute("SELECT * FROM slack_messages WHERE request_id = ?", [request_id])
            row = cursor.fetchone()
            if row is None:
                return SlackData(request_id)
            return _record([c[0] for c in cursor.description], row)

        return self._database.read(work)

    def update(self, request_id: int, **values: Any) -> SlackData:
        """Set fields of the request's Slack side; the record as it is afterwards (read in
        the same transaction)."""
        unknown = set(values) - set(COLUMNS) | ({"request_id"} & set(values))
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        values = {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}
        names = ", ".join(["request_id", *values])
        marks = ", ".join("?" for _ in range(len(values) + 1))
        assignments = ", ".join(f"{name} = excluded.{name}" for name in values)

        def work(db: sqlite_utils.Database) -> SlackData:
            cursor = db.execute(
                f"INSERT INTO slack_messages ({names}) VALUES ({marks})"
                f" ON CONFLICT (request_id) DO UPDATE SET {assignments} RETURNING *",
                [request_id, *values.values()],
            )
            row = cursor.fetchone()
            cursor.fetchall()  # the statement runs to its end before the commit
            return _record([c[0] for c in cursor.description], row)

        return self._database.write(work)

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` (writes and reads of any table of this database) as ONE transaction:
        a step's record and what is read right after it land and are read together."""
        return self._database.write(lambda _db: work())

    def reading(self, work: Callable[[], T]) -> T:
        """Run `work` (reads of any table of this database, no writes) as ONE transaction."""
        return self._database.reads(work)
