"""The account's image list, kept so that suggestions and names need no cloud call.

The worker replaces the whole list every few minutes; readers see either the old list
or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.sharing.values import StoredImage
from storage.database import Database, first_row, stamp, unstamp

# The name the stored image had when storage defined it.
__all__ = ["Images"]

PUBLIC = "public"


COLUMNS = tuple(field.name for field in fields(StoredImage))
INT_COLUMNS = {"size", "min_disk"}
TIME_COLUMNS = {"created_at", "updated_at"}


def _as_datetime(text: str) -> datetime | None:
    """A timestamp with an offset (either ISO form), so that every stored one sorts alike."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _record(image: StoredImage | Mapping[str, Any]) -> dict[str, Any]:
    """A row for the table: known columns only, datetimes stamped, ints as ints."""
    source = asdict(image) if isinstance(image, StoredImage) else dict(image)
    record: dict[str, Any] = {}
    for column in COLUMNS:
        value = source.get(column)
        if column in TIME_COLUMNS and isinstance(value, str):
            value = _as_datetime(value) or value
        if isinstance(value, datetime):
            value = stamp(value)
        elif value is not None and column in INT_COLUMNS:
            value = int(value)
        elif value is not None:
            value = str(value)
        record[column] = value
    if not record["id"]:
        raise ValueError("an image without an id cannot be stored")
    return record


def _row(row: Mapping[str, Any]) -> StoredImage:
    return StoredImage(**{column: row[column] for column in COLUMNS})


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Images:
    """The images table and when it was last refreshed."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def replace(
        self, images: Iterable[StoredImage | Mapping[str, Any]], refreshed_at: datetime
    ) -> int:
        """Put `images` in place of the whole stored list, in one transaction; how many."""
        records = {}
        for image in images:
            record = _record(image)
            records[record["id"]] = record  # a repeated id keeps its last form

        def work(db: sqlite_utils.Database) -> int:
            db.execute("DELETE FROM images")
            if records:
                db.table("images").insert_all(records.values(), pk="id")
            db.table("image_list").upsert({"id": 1, "refreshed_at": stamp(refreshed_at)}, pk="id")
            return len(records)

        return self._database.write(work)

    def get(self, image_id: str) -> StoredImage | None:
        """The stored image with this id (ids alike but for case count as one), or None."""
        row = self._database.read(
            lambda db: first_row(
                db,
                "SELECT * FROM images WHERE lower(id) = lower(?) ORDER BY id = ? DESC LIMIT 1",
                [image_id, image_id],
            )
        )
        return None if row is None else _row(row)

    def search(self, text: str, limit: int = 100) -> list[StoredImage]:
        """Images worth sharing that match `text`, newest first, at most `limit`.

        A match has `text` anywhere in its name, ignoring case, or its id starts with
        `text`; public images are left out (every account sees them already).
        """
        if limit <= 0:
            return []
        needle = text.strip()

        def work(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            # SQLite's lower() and LIKE fold ASCII only; names may be in any script.
            db.conn.create_function("casefold", 1, _casefold, deterministic=True)
            return list(
                db.query(
                    "SELECT * FROM images"
                    " WHERE coalesce(visibility, '') != ?"
                    " AND (instr(casefold(coalesce(name, '')), casefold(?)) > 0"
                    "      OR lower(id) LIKE lower(?) ESCAPE '\\')"
                    " ORDER BY created_at IS NULL, created_at DESC, id LIMIT ?",
                    [PUBLIC, needle, _like_escaped(needle) + "%", limit],
                )
            )

        return [_row(row) for row in self._database.read(work)]

    def refreshed_at(self) -> datetime | None:
        """When the list was last replaced, or None when it never was."""
        row = self._database.read(
            lambda db: db.execute("SELECT refreshed_at FROM image_list WHERE id = 1").fetchone()
        )
        return None if row is None or row[0] is None else unstamp(row[0])

    def listed(self, image_id: str) -> tuple[datetime | None, StoredImage | None]:
        """When the list was last replaced and the image's row in it: one transaction."""
        return self._database.reads(lambda: (self.refreshed_at(), self.get(image_id)))

    def now(self) -> datetime:
        """The database's clock."""
        return self._database.now()

    def count(self) -> int:
        """How many images are stored (public ones included)."""
        return int(
            self._database.read(lambda db: db.execute("SELECT count(*) FROM images").fetchone()[0])
        )

    def set_visibility(self, image_id: str, visibility: str) -> None:
        """Note a visibility the bot itself just set (until the next refresh replaces it)."""
        self._database.write(
            lambda db: db.execute(
                "UPDATE images SET visibility = ? WHERE id = ?", [visibility, image_id]
            )
        )

    # -- images the bot made Shared --------------------------------------------------

    def mark_made_shared(self, image_id: str, request_id: int) -> None:
        """The bot set this image to Shared for `request_id` (it was private)."""
        now = stamp(self.now())
        self._database.write(
            lambda db: db.execute(
                "INSERT INTO images_made_shared (image_id, request_id, made_at) VALUES (?, ?, ?)"
                " ON CONFLICT (image_id) DO UPDATE SET request_id = excluded.request_id,"
                " made_at = excluded.made_at",
                [image_id, request_id, now],
            )
        )

    def made_shared(self, image_id: str) -> int | None:
        """The request for which the bot made this image Shared, if it did and has not set
        it back to private since; None when someone else made it Shared (or nobody did)."""
        row = self._database.read(
            lambda db: db.execute(
                "SELECT request_id FROM images_made_shared WHERE image_id = ?", [image_id]
            ).fetchone()
        )
        return None if row is None else int(row[0])

    def forget_made_shared(self, image_id: str, *, request_id: int | None = None) -> bool:
        """The bot set the image back to private (or its change to Shared was refused, for
        `request_id` only): it no longer holds it Shared. True if it did."""
        where = "image_id = ?" + (" AND request_id = ?" if request_id is not None else "")
        values: list[Any] = [image_id, *([request_id] if request_id is not None else [])]
        return bool(
            self._database.write(
                lambda db: (
                    db.execute(f"DELETE FROM images_made_shared WHERE {where}", values).rowcount
                )
            )
        )
