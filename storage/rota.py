"""On-call rotas read from where they live, the PagerDuty schedules images ask, and which
Slack user an email is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlite_utils

from bot.sharing.values import RotaEntry, SourceState
from storage.database import Database, stamp, unstamp

__all__ = ["OnCallSchedules", "Rota", "SlackEmails"]

# An email Slack matched is remembered this long; one it did not, less (a fixed profile
# shows up within the hour).
EMAIL_FRESH_FOR = timedelta(days=1)
UNKNOWN_EMAIL_FRESH_FOR = timedelta(hours=1)


def _when(text: str) -> datetime | None:
    return unstamp(text) if text else None


class Rota:
    """The rota and rota_sources tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def now(self) -> datetime:
        """The database's clock."""
        return self._database.now()

    def replace(
        self, source: str, entries: Sequence[RotaEntry], *, problems: Sequence[str] = ()
    ) -> None:
        """Make `entries` the source's whole rota, read now, in one transaction."""
        now = stamp(self._database.now())
        rows = [
            {
                "source": source,
                "schedule_id": e.schedule_id,
                "email": e.email,
                "name": e.name,
                "user_id": e.user_id,
                "starts_at": stamp(e.starts) if e.starts else "",
                "ends_at": stamp(e.ends) if e.ends else "",
            }
            for e in entries
        ]

        def work(db: sqlite_utils.Database) -> None:
            db.execute("DELETE FROM rota WHERE source = ?", [source])
            if rows:
                db.table("rota").insert_all(rows)
            db.table("rota_sources").upsert(
                {
                    "source": source,
                    "read_at": now,
                    "tried_at": now,
                    "error": "",
                    "problems": json.dumps(list(problems), ensure_ascii=False),
                },
                pk="source",
            )

        self._database.write(work)

    def failed(self, source: str, error: str) -> None:
        """Note a read that failed; the rota read last stays."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> None:
            known = db.execute("SELECT 1 FROM rota_sources WHERE source = ?", [source]).fetchone()
            if known:
                db.execute(
                    "UPDATE rota_sources SET tried_at = ?, error = ? WHERE source = ?",
                    [now, error, source],
                )
            else:
                db.table("rota_sources").insert(
                    {
                        "source": source,
                        "read_at": "",
                        "tried_at": now,
                        "error": error,
                        "problems": "[]",
                    }
                )

        self._database.write(work)

    def entries(self, source: str) -> list[RotaEntry]:
        """The source's stored rota, soonest first."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT source, email, user_id, starts_at, ends_at, schedule_id, name FROM rota"
                " WHERE source = ? ORDER BY starts_at, ends_at, email",
                [source],
            ).fetchall()
        )
        return [
            RotaEntry(r[0], r[1], r[2], _when(r[3]), _when(r[4]), r[5], r[6] or "") for r in rows
        ]

    def on_call_at(self, source: str, moment: datetime) -> list[RotaEntry]:
        """The source's entries that cover `moment` (an indexed read: cards ask it)."""
        at = stamp(moment)
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT source, email, user_id, starts_at, ends_at, schedule_id, name FROM rota"
                " WHERE source = ? AND starts_at <= ? AND (ends_at = '' OR ends_at > ?)"
                " ORDER BY starts_at, ends_at, email",
                [source, at, at],
            ).fetchall()
        )
        return [
            RotaEntry(r[0], r[1], r[2], _when(r[3]), _when(r[4]), r[5], r[6] or "") for r in rows
        ]

    def state(self, source: str) -> SourceState | None:
        """What is known of the source's reads; None when it was never tried."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT read_at, tried_at, error, problems FROM rota_sources WHERE source = ?",
                [source],
            ).fetchone()
        )
        if row is None:
            return None
        return SourceState(source, _when(row[0]), _when(row[1]), row[2], json.loads(row[3]))

    def ages(self) -> dict[str, float | None]:
        """Seconds since each source's last good read (None: never read), for metrics."""
        now = self._database.now()
        rows = self._database.read(
            lambda db: db.execute("SELECT source, read_at FROM rota_sources").fetchall()
        )
        return {
            str(source): (now - unstamp(read_at)).total_seconds() if read_at else None
            for source, read_at in rows
        }


class OnCallSchedules:
    """The oncall_schedules table: the PagerDuty schedule each image's requests ask."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def set(self, image_id: str, schedule_id: str, *, by: str) -> str | None:
        """Make `schedule_id` the image's schedule; the one it had before, if any."""
        now = stamp(self._database.now())

        def work(db: sqlite_utils.Database) -> str | None:
            row = db.execute(
                "SELECT schedule_id FROM oncall_schedules WHERE image_id = ?", [image_id]
            ).fetchone()
            db.table("oncall_schedules").upsert(
                {"image_id": image_id, "schedule_id": schedule_id, "set_by": by, "set_at": now},
                pk="image_id",
            )
            return str(row[0]) if row else None

        return self._database.write(work)

    def clear(self, image_id: str) -> str | None:
        """The image asks the configured schedules again; the schedule it had, if any."""

        def work(db: sqlite_utils.Database) -> str | None:
            row = db.execute(
                "SELECT schedule_id FROM oncall_schedules WHERE image_id = ?", [image_id]
            ).fetchone()
            db.execute("DELETE FROM oncall_schedules WHERE image_id = ?", [image_id])
            return str(row[0]) if row else None

        return self._database.write(work)

    def of(self, image_id: str) -> str | None:
        """The image's own schedule, or None."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT schedule_id FROM oncall_schedules WHERE image_id = ?", [image_id]
            ).fetchone()
        )
        return str(row[0]) if row else None

    def all(self) -> dict[str, str]:
        """Every image's own schedule: image id → schedule id."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT image_id, schedule_id FROM oncall_schedules ORDER BY image_id"
            ).fetchall()
        )
        return {str(image): str(schedule) for image, schedule in rows}


class SlackEmails:
    """The slack_emails table: which Slack user an email is, as Slack last said."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, email: str) -> tuple[str | None, bool]:
        """(the user id or None, whether that answer is still fresh)."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT user_id, fetched_at FROM slack_emails WHERE email = ?", [email.lower()]
            ).fetchone()
        )
        if row is None:
            return None, False
        user_id = str(row[0]) or None
        fresh_for = EMAIL_FRESH_FOR if user_id else UNKNOWN_EMAIL_FRESH_FOR
        return user_id, unstamp(row[1]) >= self._database.now() - fresh_for

    def remember(self, email: str, user_id: str | None) -> None:
        """Remember Slack's answer for `email` (None: Slack knows nobody by it)."""
        now = stamp(self._database.now())
        self._database.write(
            lambda db: db.table("slack_emails").upsert(
                {"email": email.lower(), "user_id": user_id or "", "fetched_at": now},
                pk="email",
            )
        )
