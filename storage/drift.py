"""What the cloud's own member lists said, as the drift reconcile last read them.

`CloudMembers` keeps one row per image and member: member ids alike but for case are one
member (`member_key`, in lower case), and `member_id` is the id as the cloud spells it, so
the bot sends that spelling once it is known. A member present and not through the bot
is `outside`; `reported_at` says that it was reported, so a restart never says it again.
`ReconcileRuns` keeps the last run (or the one under way) and what it found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from bot.sharing.values import CloudMember, ReconcileRun
from storage.database import Database, first_row, stamp

__all__ = ["CloudMembers", "ReconcileRuns"]


def _member(row: dict[str, Any]) -> CloudMember:
    return CloudMember(
        image_id=row["image_id"],
        member_key=row["member_key"],
        member_id=row["member_id"],
        status=row.get("status"),
        outside=bool(row.get("outside")),
        first_seen_at=row.get("first_seen_at"),
        seen_at=row.get("seen_at"),
        gone_at=row.get("gone_at"),
        reported_at=row.get("reported_at"),
    )


class CloudMembers:
    """The cloud_members table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def of_image(self, image_id: str) -> list[CloudMember]:
        """Every member the image was ever listed with (gone ones too)."""
        rows = self._database.read(
            lambda db: list(
                db.table("cloud_members").rows_where(
                    "image_id = ?", [image_id], order_by="member_key"
                )
            )
        )
        return [_member(row) for row in rows]

    def get(self, image_id: str, member_id: str) -> CloudMember | None:
        """The image's member with this id (any case), as last listed; None if never."""
        row = self._database.read(
            lambda db: first_row(
                db,
                "SELECT * FROM cloud_members WHERE image_id = ? AND member_key = ?",
                [image_id, member_id.lower()],
            )
        )
        return _member(row) if row is not None else None

    def seen(
        self,
        image_id: str,
        member_id: str,
        *,
        status: str | None,
        outside: bool,
        at: datetime,
    ) -> CloudMember:
        """Record the member as present now (a list, or an answer naming it); the row after.

        A member that comes back after it was gone, or that had access through the bot
        before, counts as new: its report is due again when it is outside.
        """
        now = stamp(at)
        key = member_id.lower()

        def work(db: sqlite_utils.Database) -> CloudMember:
            cursor = db.execute(
                "SELECT * FROM cloud_members WHERE image_id = ? AND member_key = ?",
                [image_id, key],
            )
            found = cursor.fetchone()
            if found is None:
                db.execute(
                    "INSERT INTO cloud_members (image_id, member_key, member_id, status,"
                    " outside, first_seen_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [image_id, key, member_id, status, int(outside), now, now],
                )
            else:
                old = _member(dict(zip([c[0] for c in cursor.description], found, strict=True)))
                fresh = old.gone_at is not None or not old.outside
                values = [member_id, status, int(outside), now]
                db.execute(
                    "UPDATE cloud_members SET member_id = ?, status = ?, outside = ?,"
                    " seen_at = ?, gone_at = NULL,"
                    " first_seen_at = CASE WHEN ? THEN ? ELSE first_seen_at END,"
                    " reported_at = CASE WHEN ? THEN NULL ELSE reported_at END"
                    " WHERE image_id = ? AND member_key = ?",
                    [*values, int(fresh), now, int(fresh), image_id, key],
                )
            row = db.execute(
                "SELECT * FROM cloud_members WHERE image_id = ? AND member_key = ?",
                [image_id, key],
            )
            names = [c[0] for c in row.description]
            return _member(dict(zip(names, row.fetchone(), strict=True)))

        return self._database.write(work)

    def gone(self, image_id: str, member_keys: list[str], *, at: datetime) -> int:
        """Record members no longer listed; how many were present before."""
        if not member_keys:
            return 0
        marks = ", ".join("?" for _ in member_keys)
        return self._database.write(
            lambda db: (
                db.execute(
                    f"UPDATE cloud_members SET gone_at = ? WHERE image_id = ?"
                    f" AND member_key IN ({marks}) AND gone_at IS NULL",
                    [stamp(at), image_id, *member_keys],
                ).rowcount
            )
        )

    def unreported(self, image_id: str, member_key: str, *, at: datetime) -> None:
        """Give back the report claimed `at` (Slack did not take it for now)."""
        self._database.write(
            lambda db: db.execute(
                "UPDATE cloud_members SET reported_at = NULL WHERE image_id = ?"
                " AND member_key = ? AND reported_at = ?",
                [image_id, member_key, stamp(at)],
            )
        )

    def reported(self, image_id: str, member_key: str, *, at: datetime) -> bool:
        """Note that an outside member was reported; False if it had been already."""
        return (
            self._database.write(
                lambda db: (
                    db.execute(
                        "UPDATE cloud_members SET reported_at = ? WHERE image_id = ?"
                        " AND member_key = ? AND reported_at IS NULL",
                        [stamp(at), image_id, member_key],
                    ).rowcount
                )
            )
            == 1
        )


COUNTS = ("images", "listed", "outside", "gone", "statuses", "failures")


class ReconcileRuns:
    """The reconcile_runs table: one row, the last run or the one under way."""

    ROW = 1

    def __init__(self, database: Database) -> None:
        self._database = database

    def last(self) -> ReconcileRun | None:
        """The last run, or the one under way; None before the first."""
        row = self._database.read(
            lambda db: next(iter(db.table("reconcile_runs").rows_where("id = ?", [self.ROW])), None)
        )
        if row is None:
            return None
        return ReconcileRun(
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            cursor=row["cursor"],
            **{name: int(row[name] or 0) for name in COUNTS},
        )

    def save(self, run: ReconcileRun) -> None:
        """Store the run as it stands (after each image, so a restart resumes it)."""
        values = {
            "id": self.ROW,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "cursor": run.cursor,
            **{name: getattr(run, name) for name in COUNTS},
        }
        self._database.write(lambda db: db.table("reconcile_runs").upsert(values, pk="id"))
