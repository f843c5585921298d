"""What Slack was told about each request: its messages and how far each announcement got.

Kept apart from the request's facts (`share_requests`), as Slack's bookkeeping: which
channel message a request's thread hangs off, where its approval card is, and which
of its state's messages went out already, so a retry sends only what is missing.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import sqlite_utils

from bot.sharing.values import SlackData
from storage.database import Database

__all__ = ["SlackData", "SlackMessages"]


COLUMNS = [f.name for f in fields(SlackData)]


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
            values = dict(zip([c[0] for c in cursor.description], row, strict=True))
            values["via_response_url"] = bool(values["via_response_url"])
            values["check_before_posting"] = bool(values["check_before_posting"])
            return SlackData(**values)

        return self._database.read(work)

    def update(self, request_id: int, **values: Any) -> SlackData:
        """Set fields of the request's Slack side; the record as it is afterwards."""
        unknown = set(values) - set(COLUMNS) | ({"request_id"} & set(values))
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        values = {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}
        names = ", ".join(["request_id", *values])
        marks = ", ".join("?" for _ in range(len(values) + 1))
        assignments = ", ".join(f"{name} = excluded.{name}" for name in values)
        self._database.write(
            lambda db: db.execute(
                f"INSERT INTO slack_messages ({names}) VALUES ({marks})"
                f" ON CONFLICT (request_id) DO UPDATE SET {assignments}",
                [request_id, *values.values()],
            )
        )
        return self.get(request_id)
