"""What the bot remembers of Slack users: their language, looked up once a day."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from bot.sharing.values import LANGUAGE_FRESH_FOR
from storage.database import Database, stamp, unstamp

FRESH_FOR = LANGUAGE_FRESH_FOR


class People:
    """The people table: a cache of each user's language."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def language(self, user_id: str) -> str | None:
        """The cached language, or None when unknown or stale."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT language, fetched_at FROM people WHERE user_id = ?", [user_id]
            ).fetchone()
        )
        if row is None or unstamp(row[1]) < self._database.now() - FRESH_FOR:
            return None
        return str(row[0])

    def remember(
        self, user_id: str, language: str, *, also: Callable[[], object] | None = None
    ) -> None:
        """Cache a user's language; `also` (a write that goes with it) in the same
        transaction."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> None:
            # One statement (sqlite-utils' upsert first lists the tables, tries a scratch one).
            db.execute(
                "INSERT INTO people (user_id, language, fetched_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET language = excluded.language,"
                " fetched_at = excluded.fetched_at",
                [user_id, language, now],
            )
            if also is not None:
                also()

        self._database.write(work)
