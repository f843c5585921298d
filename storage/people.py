"""What the bot remembers of Slack users: their language, looked up once a day."""

from __future__ import annotations

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

    def remember(self, user_id: str, language: str) -> None:
        """Cache a user's language."""
        now = stamp(self._database.now())
        self._database.write(
            lambda db: db.table("people").upsert(
                {"user_id": user_id, "language": language, "fetched_at": now}, pk="user_id"
            )
        )
