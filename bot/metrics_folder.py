"""The folder where every process of one run keeps its metrics (prometheus-client's
multiprocess mode), chosen before any of them imports prometheus-client.

prometheus-client decides at import whether values live in memory or in per-process
files, from `PROMETHEUS_MULTIPROC_DIR`; so this module imports nothing of it, and the
command line calls `prepare` before it imports the rest of the bot. The folder is the
operator's `PROMETHEUS_MULTIPROC_DIR` if set, else `DATABASE_PATH.metrics` beside the
database; the worker and gunicorn's worker inherit it from the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def folder_for(database: Path) -> Path:
    """The metrics folder of the bot on this database."""
    chosen = os.environ.get(VARIABLE)
    return Path(chosen) if chosen else Path(f"{database}.metrics")


def prepare(database: Path, *, clean: str = "") -> Path:
    """Make the folder and point prometheus-client at it; for a new run, clean it first.

    `clean="all"`: the run owns every process that writes there (`python -m bot` holds the
    bot's and the worker's locks), so last run's files go. `clean="dead"`: only files of
    processes no longer running go (`serve`, while a `worker` started apart may be writing).
    """
    if "prometheus_client.values" in sys.modules and VARIABLE not in os.environ:
        # Values made in memory already: they would never reach the folder.
        raise RuntimeError("prometheus_client was imported before the metrics folder was set")
    folder = folder_for(database)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if clean:
            for path in folder.glob("*.db"):
                if clean == "all" or not _alive(path):
                    path.unlink(missing_ok=True)
    except OSError as error:
        sys.exit(f"share-image-bot cannot start: cannot use the metrics folder {folder}: {error}")
    os.environ[VARIABLE] = str(folder)
    return folder


def _alive(path: Path) -> bool:
    """Whether the process that wrote `counter_1234.db` (and the like) still runs."""
    pid = path.stem.rpartition("_")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
