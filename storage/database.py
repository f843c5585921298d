"""Opening the database: WAL, a busy timeout, a few connections for all threads, migrations."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import sqlite_utils

from bot.sharing.values import stamp as stamp
from bot.sharing.values import unstamp as unstamp
from storage.errors import StorageError
from storage.schema import migrations

T = TypeVar("T")

# Connections one process keeps open to the file, whatever its number of threads: each
# read or write borrows one for its few milliseconds. Writes queue on one lock anyway.
CONNECTIONS = 4
# SQLite's page cache per connection, in KiB: with CONNECTIONS, what a process can hold
# in page caches (1 MB). SQLite's default of 2,000 KiB fills up on a large database (8 MB a
# process on 100,000 requests) and reads no faster: the pages it misses come from the
# operating system's file cache.
CACHE_KIB = 256
# Prepared statements Python keeps per connection (the sqlite3 module's default).
STATEMENTS = 128

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def first_row(
    db: sqlite_utils.Database, sql: str, params: list[Any] | tuple[Any, ...] = ()
) -> dict[str, Any] | None:
    """The first row `sql` selects, by column name, or None: one statement (sqlite-utils'
    `query` wraps each in a savepoint, `rows_where` first lists the tables)."""
    cursor = db.conn.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


class Database:
    """The bot's SQLite file, through at most `connections` connections, all in WAL mode.

    Storage classes call `read(fn)` and `write(fn)`: each borrows a connection for the
    call (a call inside another on the same thread uses the same one), so a hundred
    threads share a few connections, their page caches and their open files.

    A `write` inside another `write` (or a `read` inside either, or inside `reads`) joins
    its transaction: callers put together what belongs together (a step's record and the
    read that follows it) as one transaction. `fn` is synchronous: a transaction never
    spans an `await`, so the tasks of one event loop never share one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
        connections: int = CONNECTIONS,
    ) -> None:
        if connections < 1:
            raise ValueError("a database needs at least one connection")
        self.path = Path(path)
        self._where = str(self.path)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.connections = connections
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._idle: list[sqlite_utils.Database] = []
        self._opening = 0
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        # Only opening the database creates its file: a connection opened later (another
        # thread's) must never make a new, empty one where the real one went missing.
        self._may_create = True
        self.created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._borrowed() as db:
                migrations.apply(db)
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
        """`StorageError` unless the file at `path` is still the one this process opened.

        Every outermost read and write asks it: one `stat` of the path as a string (no
        `pathlib` on the way), the cost of a statement or less."""
        try:
            stat = os.stat(self._where)
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
        """A connection for this thread alone, kept until `close` (for one-thread tools).

        Inside `read` or `write` it is the connection that call borrowed.
        """
        held: sqlite_utils.Database | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = self._take()
        return held

    @property
    def open_connections(self) -> int:
        """Connections open now (never more than `connections`)."""
        with self._lock:
            return len(self._connections)

    @contextmanager
    def _borrowed(self) -> Iterator[sqlite_utils.Database]:
        """A connection for the length of one call; the thread's own if it holds one."""
        held: sqlite_utils.Database | None = getattr(self._local, "held", None)
        if held is not None:
            yield held
            return
        db = self._lend()
        try:
            yield db
        finally:
            self._give_back(db)

    def _lend(self) -> sqlite_utils.Database:
        """A connection this thread holds until `_give_back` (it holds none now)."""
        db = self._take()
        self._local.held = db
        return db

    def _give_back(self, db: sqlite_utils.Database) -> None:
        self._local.held = None
        with self._returned:
            if db.conn in self._connections:  # not closed meanwhile
                self._idle.append(db)
            self._returned.notify()

    def _take(self) -> sqlite_utils.Database:
        deadline = time.monotonic() + self.busy_timeout
        with self._returned:
            while not self._idle:
                if len(self._connections) + self._opening < self.connections:
                    self._opening += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StorageError(
                        f"all {self.connections} database connections of this process stayed"
                        f" busy for {self.busy_timeout:g} s"
                    )
                self._returned.wait(remaining)
            else:
                return self._idle.pop()  # the most recently used: its cache is warm
        try:
            db = self._open()
        finally:
            with self._returned:
                self._opening -= 1
                self._returned.notify()
        return db

    def _open(self) -> sqlite_utils.Database:
        mode = "rwc" if self._may_create else "rw"
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path.absolute()))}?mode={mode}",
                uri=True,
                timeout=self.busy_timeout,
                check_same_thread=False,
                cached_statements=STATEMENTS,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except sqlite3.Error as error:
            # The file went missing between the check and the open: never make a new one.
            raise StorageError(f"cannot open the database at {self.path}: {error}") from None
        with self._lock:
            self._connections.append(conn)
        return sqlite_utils.Database(conn)

    def now(self) -> datetime:
        """The clock every table's timestamps come from (injectable for tests)."""
        return self.clock()

    def write(self, work: Callable[[sqlite_utils.Database], T]) -> T:
        """Run `work` in one transaction, retrying while another writer holds the lock.

        SQLite's own busy handler waits inside each attempt; a lock error that comes
        back at once (a checkpoint, a recovering WAL) is tried again, and no attempt
        starts after `busy_timeout` has passed.
        """
        if getattr(self._local, "writing", False):
            # Inside another `write` of this thread: one transaction with it (its lock, its
            # connection, its commit), so writes that belong together land together.
            return work(self.db)
        if getattr(self._local, "reading", False):
            raise RuntimeError("a write inside `reads`: use `write` for work that writes")
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
        with self._borrowed() as db:
            self._local.writing = True
            try:
                return self._attempts(db, work, deadline)
            finally:
                self._local.writing = False

    def _attempts(
        self, db: sqlite_utils.Database, work: Callable[[sqlite_utils.Database], T], deadline: float
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
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
        """Run a read, turning SQLite failures into `StorageError`.

        Inside a `write` or `reads` of this thread it joins their transaction; alone, each
        of its statements is a transaction of its own (SQLite's autocommit).
        """
        local = self._local
        held: sqlite_utils.Database | None = getattr(local, "held", None)
        if held is not None and (
            getattr(local, "writing", False) or getattr(local, "reading", False)
        ):
            return work(held)  # inside this thread's transaction: it joins
        self.check()
        # (Written out rather than `with self._borrowed()`: the ack path makes several
        # reads, and a generator's context manager costs more than the read's statement.)
        db = held if held is not None else self._lend()
        try:
            return work(db)
        except sqlite3.Error as error:
            raise StorageError(f"database read failed: {error}") from error
        finally:
            if held is None:
                self._give_back(db)

    def reads(self, work: Callable[[], T]) -> T:
        """Run `work`, which reads through any of the storage classes, as ONE transaction:
        one snapshot of the file, one round of locking instead of one per statement.

        `work` must not write (a write inside would have to upgrade a read transaction,
        which another writer can make fail at once): `write` is for work that writes,
        and reads inside it join it the same way. Inside either, `work` simply joins.
        """
        if self._in_transaction():
            return work()
        self.check()
        try:
            with self._borrowed() as db:
                db.conn.execute("BEGIN")
                self._local.reading = True
                try:
                    return work()
                finally:
                    self._local.reading = False
                    if db.conn.in_transaction:
                        db.conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise StorageError(f"database read failed: {error}") from error

    def _in_transaction(self) -> bool:
        """Whether this thread is inside a `write` or `reads` (whose connection it holds)."""
        local = self._local
        return bool(getattr(local, "writing", False) or getattr(local, "reading", False))

    def close(self) -> None:
        """Close every connection (a later call opens new ones)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle.clear()
        self._local = threading.local()
