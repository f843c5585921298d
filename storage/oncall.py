"""On-call shifts: whoever's window covers now decides approvals first."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlite_utils

from bot.sharing.values import OnCallShift
from storage.database import Database, stamp

__all__ = ["OnCall"]


class OnCall:
    """The oncall table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, user_id: str, starts: datetime, ends: datetime, *, by: str) -> int | None:
        """Add a shift; its id, or None when the user has that very shift already."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> int | None:
            same = db.execute(
                "SELECT 1 FROM oncall WHERE user_id = ? AND starts_at = ? AND ends_at = ?",
                [user_id, stamp(starts), stamp(ends)],
            ).fetchone()
            if same is not None:
                return None
            table = db.table("oncall").insert(
                {
                    "user_id": user_id,
                    "starts_at": stamp(starts),
                    "ends_at": stamp(ends),
                    "added_by": by,
                    "added_at": now,
                }
            )
            return int(cast(int, table.last_pk))

        return self._database.write(work)

    def remove_one(self, shift_id: int) -> OnCallShift | None:
        """Remove one shift by its id; the shift, or None when there is no such shift."""

        def work(db: sqlite_utils.Database) -> OnCallShift | None:
            row = db.execute(
                "SELECT id, user_id, starts_at, ends_at FROM oncall WHERE id = ?", [shift_id]
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM oncall WHERE id = ?", [shift_id])
            return OnCallShift(*row)

        return self._database.write(work)

    def remove(self, user_id: str) -> int:
        """Remove every shift of `user_id`; how many there were."""

        def work(db: sqlite_utils.Database) -> int:
            return db.execute("DELETE FROM oncall WHERE user_id = ?", [user_id]).rowcount

        return self._database.write(work)

    def all(self) -> list[OnCallShift]:
        """Every shift, soonest first."""
        rows = self._database.read(
            lambda db: list(db.table("oncall").rows_where(order_by="starts_at, user_id"))
        )
        return [OnCallShift(r["id"], r["user_id"], r["starts_at"], r["ends_at"]) for r in rows]

    def now(self) -> datetime:
        """The database's clock."""
        return self._database.now()

    def on_call_at(self, moment: datetime) -> list[str]:
        """User ids whose window covers `moment`."""
        now = stamp(moment)
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT DISTINCT user_id FROM oncall WHERE starts_at <= ? AND ends_at > ?"
                " ORDER BY user_id",
                [now, now],
            ).fetchall()
        )
        return [row[0] for row in rows]
