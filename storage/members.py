"""Known members: accounts the team has registered, with a friendly name."""

from __future__ import annotations

import sqlite_utils

from bot.sharing.values import KnownMember
from storage.database import Database, stamp

__all__ = ["KnownMembers"]


class KnownMembers:
    """The known_members table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, member_id: str, name: str, *, by: str) -> KnownMember | None:
        """Register a member, or rename the one known by an id alike but for case (its
        id keeps the spelling it was first registered with); the record it had before,
        or None when it was new."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> KnownMember | None:
            alike = db.execute(
                "SELECT member_id, name FROM known_members WHERE lower(member_id) = lower(?)"
                " ORDER BY member_id = ? DESC, added_at, member_id",
                [member_id, member_id],
            ).fetchall()
            before = KnownMember(member_id=alike[0][0], name=alike[0][1]) if alike else None
            kept = before.member_id if before else member_id
            # One record per member: any other spelling of the same id goes.
            db.execute(
                "DELETE FROM known_members WHERE lower(member_id) = lower(?) AND member_id != ?",
                [member_id, kept],
            )
            db.table("known_members").upsert(
                {"member_id": kept, "name": name, "added_by": by, "added_at": now},
                pk="member_id",
            )
            return before

        return self._database.write(work)

    def remove(self, member_id: str) -> bool:
        """Forget a member (by its id in any case); False when it was not registered."""

        def work(db: sqlite_utils.Database) -> bool:
            cursor = db.execute(
                "DELETE FROM known_members WHERE lower(member_id) = lower(?)", [member_id]
            )
            return cursor.rowcount > 0

        return self._database.write(work)

    def name(self, member_id: str) -> str | None:
        """The friendly name, or None for an unknown member."""
        row = self._database.read(
            lambda db: db.execute(
                # Ids alike but for case name the same member (exact match first).
                "SELECT name FROM known_members WHERE lower(member_id) = lower(?)"
                " ORDER BY member_id = ? DESC LIMIT 1",
                [member_id, member_id],
            ).fetchone()
        )
        return None if row is None else str(row[0])

    def all(self) -> list[KnownMember]:
        """Every registered member, by name."""
        rows = self._database.read(
            lambda db: list(db.table("known_members").rows_where(order_by="name, member_id"))
        )
        return [KnownMember(member_id=row["member_id"], name=row["name"]) for row in rows]

    def search(self, text: str, limit: int = 100) -> list[KnownMember]:
        """Members whose name holds `text` (ignoring case) or whose id starts with it, by name."""
        needle = text.strip()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

        def work(db: sqlite_utils.Database) -> list[tuple[str, str]]:
            # SQLite's lower() folds ASCII only; names may be in any script.
            db.conn.create_function("casefold", 1, _casefold, deterministic=True)
            return db.execute(
                "SELECT member_id, name FROM known_members"
                " WHERE instr(casefold(name), casefold(?)) > 0"
                " OR lower(member_id) LIKE lower(?) ESCAPE '\\'"
                " ORDER BY name, member_id LIMIT ?",
                [needle, escaped + "%", max(limit, 0)],
            ).fetchall()

        return [KnownMember(member_id=m, name=n) for m, n in self._database.read(work)]


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()
