"""Process trees: start one in its own session, watch its memory, stop all of it.

Memory comes from /proc: `VmHWM` is the kernel's own peak resident set of a process,
so no peak between two samples is missed; sampling only finds the processes (a tree may
grow: gunicorn forks its worker, a program may start helpers) and the peak of their
simultaneous `VmRSS`. Shared pages (a forked child shares its parent's) count in each
process's RSS, so the sum overstates what the tree really holds; the proportional set
size (`Pss`, shared pages split between sharers) is shown next to it. Nothing here knows
what the program under test is made of: the same code measures one process or five.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

KB = 1024
MB = 1024 * 1024


def free_port() -> int:
    """A port nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's `children` list."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(child) for child in text.split())
    return found


def tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    seen: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def status(pid: int) -> dict[str, int]:
    """The memory fields of /proc/<pid>/status, in bytes (empty if it is gone)."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in {"VmRSS", "VmHWM"}:
                values[name] = int(rest.split()[0]) * KB
    return values


def pss(pid: int) -> int | None:
    """The proportional set size in bytes, or None if unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * KB
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used so far (None if it is gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def cpu_of_tree(root: int) -> dict[int, float]:
    """CPU seconds used so far by each live process of the tree."""
    found = {pid: cpu_seconds(pid) for pid in tree(root)}
    return {pid: used for pid, used in found.items() if used is not None}


def is_python(pid: int) -> bool:
    """Whether the process runs a Python interpreter (its executable's name), False if gone."""
    try:
        name = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False
    return name.startswith(("python", "pypy"))


def command_line(pid: int) -> str:
    """The process's command line, or '?'."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return "?"


@dataclass
class ProcessMemory:
    """One process of the tree: its peak RSS and, at the end, its PSS."""

    pid: int
    role: str
    peak_rss: int = 0
    final_pss: int | None = None
    python: bool = False


@dataclass
class MemoryReport:
    """The tree's memory: per process, their sum, and the peak of the simultaneous sum."""

    processes: list[ProcessMemory] = field(default_factory=list)
    peak_rss_together: int = 0
    samples: int = 0
    python_together: int = 0  # the most Python processes alive at once in the tree

    @property
    def sum_peak_rss(self) -> int:
        """Sum of each process's own peak RSS (VmHWM): the conservative figure."""
        return sum(p.peak_rss for p in self.processes)

    @property
    def sum_pss(self) -> int | None:
        """Sum of PSS at the end, if every process's could be read."""
        values = [p.final_pss for p in self.processes]
        return None if any(v is None for v in values) else sum(v or 0 for v in values)


class MemorySampler:
    """Samples a process tree's memory in a daemon thread until `stop()`."""

    def __init__(self, root: int, *, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self._report = MemoryReport()
        self._seen: dict[int, ProcessMemory] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        """Sample now and then every `interval`."""
        self.sample()
        self._thread.start()
        return self

    def role(self, pid: int) -> str:
        """What the process is, in words."""
        with self._lock:
            entry = self._seen.get(pid)
        return entry.role if entry is not None else self._role(pid)

    def _role(self, pid: int) -> str:
        line = command_line(pid)
        shown = line.replace(sys.executable, "python", 1)
        if pid == self.root:
            return shown
        if line == command_line(self.root):
            return "forked copy of the first process"
        return shown

    def sample(self) -> None:
        """Find the tree's processes and record their memory."""
        together = python = 0
        with self._lock:
            for pid in tree(self.root):
                values = status(pid)
                if not values:
                    continue
                entry = self._seen.get(pid)
                if entry is None:
                    entry = self._seen[pid] = ProcessMemory(pid, self._role(pid))
                # Read each time: a process may exec another program (Litestream, say).
                entry.python = is_python(pid)
                python += entry.python
                entry.peak_rss = max(entry.peak_rss, values.get("VmHWM", 0))
                together += values.get("VmRSS", 0)
            self._report.peak_rss_together = max(self._report.peak_rss_together, together)
            self._report.python_together = max(self._report.python_together, python)
            self._report.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> MemoryReport:
        """Take a last sample (with PSS), stop sampling and report."""
        self._stop.set()
        self._thread.join(5)
        self.sample()
        with self._lock:
            for entry in self._seen.values():
                entry.final_pss = pss(entry.pid)
            self._report.processes = sorted(self._seen.values(), key=lambda p: p.pid)
            return self._report


class Service:
    """A child process in its own session (so its whole tree can be signalled), logged."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The root process id (also the process group id)."""
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the service's output."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_healthy(self, url: str, timeout: float) -> float:
        """Poll `url` until it answers 200; seconds it took. Raises if it dies or times out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=1.0) as answer,
            ):
                if answer.status == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after `grace`."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(max(0.1, deadline - time.monotonic()))
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive() or self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self._log.close()
