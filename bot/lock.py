"""One bot per database: an exclusive lock file next to it, holding its owner's process id.

`python -m bot` takes both locks (the Slack side's and the worker's), `serve` the first and
`worker` the second, so an operator may split them into two processes on one database but
never run two of either. The OS releases a lock when its process ends: a crash never
leaves it locked.
"""

from __future__ import annotations

import fcntl
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lock:
    """A lock file this process holds (through `fd`, until it ends)."""

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
