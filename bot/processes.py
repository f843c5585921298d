"""The bot's processes, and what each needs to stay small: one bot per database (lock
files), the worker as a child started again when it stops, malloc's arenas bounded and
trimmed, and gunicorn's worker stopping gracefully.

Imports nothing but the standard library: the supervising process (`bot.supervisor`)
uses it, and stays small by importing neither the settings nor the app.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bot")

# `python -m bot` hands its worker lock to the worker it starts, as this file descriptor.
WORKER_LOCK_FD = "SHARE_IMAGE_BOT_WORKER_LOCK_FD"
# A worker that stopped because it was asked to (Ctrl-C, a service manager's SIGTERM to
# every process) while the bot itself goes on: started again after this many seconds.
# Longer than gunicorn's graceful timeout, so a bot that is stopping too is never missed.
STOP_GRACE = 15.0
STOPPED_BY_REQUEST = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
# A worker that ended to be replaced by a fresh one (its memory grew: `GrowthWatch`),
# with nothing under way: started again at once, neither a crash nor a stop.
RECYCLED = 75


# Set for a worker `WorkerProcess` started: one that may end to be replaced (`RECYCLED`).
SUPERVISED = "SHARE_IMAGE_BOT_SUPERVISED_WORKER"


class GrowthWatch:
    """Whether this process has grown past its warm size by more than `growth` bytes.

    Asked by the worker between its looks for work. Its warm size is its resident memory
    the first time it is asked with at least `warm_steps` steps behind it (a first burst's
    threads, connections and caches in place), and it reads its size at most once every
    `every` seconds. What a burst's threads allocate and free leaves gaps in malloc's heap
    that neither trimming nor a smaller mmap threshold fully gives back (Python's own
    objects stay flat): a fresh process is the one bound that always holds.
    """

    def __init__(
        self,
        growth: int,
        *,
        warm_steps: int = 200,
        every: float = 1.0,
        resident: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.growth = growth
        self.warm_steps = warm_steps
        self.every = every
        self.warm: int | None = None
        self.last: int | None = None
        self._resident = resident or resident_bytes
        self._clock = clock
        self._read_at = float("-inf")

    def __call__(self, steps: int) -> bool:
        """True when the process should hand over to a fresh one."""
        if self.growth <= 0 or steps < self.warm_steps:
            return False
        now = self._clock()
        if now - self._read_at < self.every:
            return False
        self._read_at = now
        self.last = size = self._resident()
        if self.warm is None:
            self.warm = size
            return False
        return size > self.warm + self.growth


def resident_bytes() -> int:
    """This process's resident memory (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


# -- one instance per database ----------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """An exclusive lock file next to the database, holding its owner's process id.

    The OS releases it when the last process holding its descriptor ends: a crash never
    leaves it locked. Never unlocked explicitly: gunicorn's worker is forked with the
    descriptor, and unlocking there would unlock it for the bot too.
    """

    path: Path
    fd: int


def lock_path(database: Path, kind: str) -> Path:
    """`share-image-bot.db.lock` for the bot, `share-image-bot.db.worker.lock` for the worker."""
    return Path(f"{database}.lock") if kind == "bot" else Path(f"{database}.{kind}.lock")


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def take_lock(database: Path, kind: str) -> Lock:
    """Lock `kind` ("bot" or "worker") for this database, or stop naming who holds it."""
    path = lock_path(database, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        sys.exit(f"share-image-bot cannot start: cannot open the lock file {path}: {error}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        sys.exit(
            f"share-image-bot cannot start: another {kind} is already running on {database}"
            f" ({holder} holds the lock file {path}); stop it first, or give this one its"
            " own DATABASE_PATH"
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Lock(path, fd)


def inherited_worker_lock(database: Path) -> Lock | None:
    """The worker lock `python -m bot` handed to this worker, if it is one it started."""
    value = os.environ.pop(WORKER_LOCK_FD, "")
    if not value.isdigit():
        return None
    path, fd = lock_path(database, "worker"), int(value)
    try:
        mine, there = os.fstat(fd), os.stat(path)
        if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino):
            return None
        # Held by the parent through this very descriptor: taking it again succeeds.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None
    return Lock(path, fd)


class WorkerProcess:
    """The worker as a child process, started again if it ever stops on its own.

    It gets the bot's worker lock (the descriptor is inherited), so a restarted worker
    never finds the lock taken by the bot that started it.
    """

    def __init__(self, lock: Lock | None = None, *, stop_grace: float = STOP_GRACE) -> None:
        # gunicorn forks its worker from this process, and the fork unwinds through the
        # supervisor's `finally` when it exits: only the process that started it stops it.
        self._owner = os.getpid()
        self._worker_lock = lock
        self._grace = stop_grace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._supervise, name="worker-supervisor", daemon=True
        )

    def start(self) -> None:
        """Start the worker and keep it running."""
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        environment = dict(os.environ) | {SUPERVISED: "1"}
        fds: tuple[int, ...] = ()
        if self._worker_lock is not None:
            environment[WORKER_LOCK_FD] = str(self._worker_lock.fd)
            fds = (self._worker_lock.fd,)
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"], env=environment, pass_fds=fds
        )

    def _supervise(self) -> None:
        # The worker is started from this thread and inherits its signal mask: with SIGINT
        # blocked it cannot die of a Ctrl-C while it starts up (before main() ignores it).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        while True:
            with self._lock:  # no new worker once stop() has begun
                if self._stop.is_set():
                    return
                process = self._spawn()
                self._process = process
            code = process.wait()
            if code == RECYCLED:
                log.info("the worker handed over to a fresh one", extra={"exit_code": code})
                continue
            # Ctrl-C and a service manager's SIGTERM reach every process of the bot at
            # once: the worker may stop a moment before the bot does. Give the bot that
            # moment before calling it a crash.
            asked = code in STOPPED_BY_REQUEST
            if self._stop.wait(self._grace if asked else 1.0):
                return
            from bot import metrics  # prometheus-client, only once it is needed

            metrics.WORKER_RESTARTS.inc()
            if asked:
                log.warning(
                    "the worker was stopped by a signal but the bot was not: starting it again",
                    extra={"exit_code": code},
                )
            else:
                log.error("worker stopped, starting it again", extra={"exit_code": code})

    def stop(self) -> None:
        """Stop the worker and wait for it (it finishes what is under way)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._stop.set()
            process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


# glibc gives each thread that allocates under contention an arena of its own, up to 8
# per core, and what a thread frees stays in its arena. The bot's threads mostly wait:
# two arenas per process serve them (at a burst of 100: the worker 4 MB smaller, the
# process serving acks 3 MB). MALLOC_ARENA_MAX in the environment wins.
MALLOC_ARENAS = 2
# Blocks from this size up get pages of their own, given back when freed. glibc starts at
# 128 KiB and raises the bar to the largest block freed so far, so a burst's bodies and
# buffers end up inside the heap, where they leave gaps between live blocks: measured
# over 3 minutes of bursts of 100, the worker started 2.5 MB smaller and grew half as
# fast at 32 KiB. MALLOC_MMAP_THRESHOLD_ in the environment wins.
MMAP_THRESHOLD = 32 * 1024
M_MMAP_THRESHOLD = -3  # mallopt's parameter numbers, from glibc's malloc.h
M_ARENA_MAX = -8


def tune_malloc() -> None:
    """At most MALLOC_ARENAS arenas, and MMAP_THRESHOLD (glibc only; else nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        mallopt = ctypes.CDLL(None).mallopt
        if "MALLOC_ARENA_MAX" not in os.environ:
            mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# What a burst's hundred threads free stays inside malloc's heap, in pieces between
# live ones that it never gives back by itself: the worker grew with every burst. Every
# TRIM_SECONDS the free pages go back to the system (glibc's malloc_trim: milliseconds).
TRIM_SECONDS = 10.0


def trim_malloc(stop: threading.Event) -> None:
    """Start a thread giving free heap pages back every TRIM_SECONDS (glibc only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return

    def run() -> None:
        while not stop.wait(TRIM_SECONDS):
            trim(0)

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()


def graceful_gunicorn_worker() -> None:
    """In gunicorn's worker (make_app runs there, after gunicorn set its signal handlers):
    stop gracefully whatever the signal.

    On Ctrl-C the arbiter sends its worker SIGQUIT, whose gthread handler shuts the thread
    pool down inside the signal handler. When the signal lands while the worker is starting
    a pool thread for a new connection, that handler waits for a lock the interrupted code
    holds: the worker hangs until the arbiter SIGKILLs it 10 s later. SIGTERM's handler
    only marks the worker as stopping and wakes its loop, so SIGQUIT gets that one too;
    in-flight requests (acks take milliseconds) finish first. The terminal's SIGINT is
    left to the arbiter, which drives the shutdown.
    """
    graceful = signal.getsignal(signal.SIGTERM)
    if callable(graceful):
        signal.signal(signal.SIGQUIT, graceful)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
