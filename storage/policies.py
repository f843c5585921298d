"""Per-image approval rules: how many approvals an image's requests need (1 unless set)."""

from __future__ import annotations

import sqlite_utils

from storage.database import Database, stamp


class ImagePolicies:
    """The image_policies table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def approvals(self, image_id: str) -> int:
        """How many approvals a request for `image_id` needs: 1 unless set otherwise."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT approvals FROM image_policies WHERE image_id = ?", [image_id]
            ).fetchone()
        )
        return int(row[0]) if row is not None else 1

    def set_approvals(self, image_id: str, approvals: int, *, by: str) -> bool:
        """Set the approvals `image_id` needs (1 forgets the rule); False if it already was."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> bool:
            row = db.execute(
                "SELECT approvals FROM image_policies WHERE image_id = ?", [image_id]
            ).fetchone()
            before = int(row[0]) if row is not None else 1
            if before == approvals:
                return False
            if approvals == 1:
                db.execute("DELETE FROM image_policies WHERE image_id = ?", [image_id])
            else:
                db.execute(
                    "INSERT INTO image_policies (image_id, approvals, set_by, set_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET"
                    " approvals = excluded.approvals, set_by = excluded.set_by,"
                    " set_at = excluded.set_at",
                    [image_id, approvals, by, now],
                )
            return True

        return self._database.write(work)

    def all(self) -> dict[str, int]:
        """Every image with a rule of its own, and the approvals it needs."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT image_id, approvals FROM image_policies ORDER BY image_id"
            ).fetchall()
        )
        return {str(image): int(count) for image, count in rows}
