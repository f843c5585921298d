"""Opening the database: WAL, a busy timeout, one connection per thread, migrations."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import sqlite_utils

from storage.errors import StorageError
from storage.schema import migrations

T = TypeVar("T")

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """A sortable UTC text timestamp, the form every table stores."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    """The datetime of a stored timestamp."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class Database:
    """The bot's SQLite file. Each thread gets its own connection; all share WAL mode.

    Storage classes call `db` for the current thread's `sqlite_utils.Database` and
    `write(fn)` for writes that must survive lock contention.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # Only opening the database creates its file: a connection opened later (another
        # thread's) must never make a new, empty one where the real one went missing.
        self._may_create = True
        self.created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            migrations.apply(self.db)
            stat = self.path.stat()
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open the database at {self.path}: {error}") from error
        self._may_create = False
        self._identity = (stat.st_dev, stat.st_ino)
        if self.created:
            self._say_created()

    def _say_created(self) -> None:
        others = sorted(
            p.name
            for p in self.path.parent.glob("*")
            # The database's own companions (`X.lock`, `X.worker.lock`, `X-wal`) are not others.
            if not p.name.startswith(self.path.name)
            and (p.suffix == ".db" or ".db." in p.name or p.name.endswith(".lock"))
        )
        if others:
            log.warning(
                "created a NEW, EMPTY database although its folder holds other database files:"
                " is DATABASE_PATH right?",
                extra={"path": str(self.path.absolute()), "others": others},
            )
        else:
            log.info("created a new, empty database", extra={"path": str(self.path.absolute())})

    def check(self) -> None:
        """`StorageError` unless the file at `path` is still the one this process opened."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise StorageError(
                f"the database file {self.path} is gone (deleted or moved) while the bot was"
                " running; nothing is read or written until it is back or the bot restarts"
            ) from None
        except OSError as error:
            raise StorageError(f"cannot look at the database file {self.path}: {error}") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise StorageError(
                f"the database file {self.path} was replaced while the bot was running;"
                " nothing is read or written until the bot restarts on it"
            )

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        current: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if current is None:
            mode = "rwc" if self._may_create else "rw"
            try:
                conn = sqlite3.connect(
                    f"file:{quote(str(self.path.absolute()))}?mode={mode}",
                    uri=True,
                    timeout=self.busy_timeout,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as error:
                # The file went missing between the check and the open: never make a new one.
                raise StorageError(f"cannot open the database at {self.path}: {error}") from None
            current = sqlite_utils.Database(conn)
            self._local.db = current
            with self._lock:
                self._connections.append(conn)
        return current

    def now(self) -> datetime:
        """The clock every table's timestamps come from (injectable for tests)."""
        return self.clock()

    def write(self, work: Callable[[sqlite_utils.Database], T]) -> T:
        """Run `work` in one transaction, retrying while another writer holds the lock.

        SQLite's own busy handler waits inside each attempt; a lock error that comes
        back at once (a checkpoint, a recovering WAL) is tried again, and no attempt
        starts after `busy_timeout` has passed.
        """
        self.check()
        deadline = time.monotonic() + self.busy_timeout
        # Writers of this process queue on a lock that wakes the next one at once;
        # SQLite's busy handler alone sleeps in steps of up to 100 ms between tries.
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StorageError("database write failed: this process's writers are stuck")
        try:
            return self._write(work, deadline)
        finally:
            self._write_lock.release()

    def _write(self, work: Callable[[sqlite_utils.Database], T], deadline: float) -> T:
        attempt = 0
        while True:
            attempt += 1
            db = self.db
            try:
                # IMMEDIATE takes the write lock up front (waiting up to busy_timeout),
                # so a read inside the transaction never goes stale under another writer.
                db.conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.conn.execute("COMMIT")
                except BaseException:
                    if db.conn.in_transaction:
                        db.conn.rollback()
                    raise
                return result
            except sqlite3.OperationalError as error:
                locked = "locked" in str(error) or "busy" in str(error)
                if not locked or time.monotonic() >= deadline:
                    raise StorageError(f"database write failed: {error}") from error
                log.info("database busy, trying again", extra={"attempt": attempt})
                time.sleep(min(0.05 * attempt, max(0.0, deadline - time.monotonic())))
            except sqlite3.Error as error:
                raise StorageError(f"database write failed: {error}") from error

    def read(self, work: Callable[[sqlite_utils.Database], T]) -> T:
        """Run a read, turning SQLite failures into `StorageError`."""
        self.check()
        try:
            return work(self.db)
        except sqlite3.Error as error:
            raise StorageError(f"database read failed: {error}") from error

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
