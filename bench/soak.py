"""Soak: the real bot under load for minutes, its memory, threads and files per minute.

    python -m bench soak [--minutes 15] [--pattern steady|burst|both]

`--pattern steady` (10 commands a second, cloud delay 0.2 s) sends signed `/share-image`
commands at a steady rate (each on a connection of its own, as Slack does) to
`python -m bot` in HTTP mode, against the fake Slack and the cloud API sandbox in a
helper process. `--pattern burst` sends bursts of `--burst` commands at once (100 every
10 s by default, cloud delay 1 s); `both` runs the one and then the other. Every minute
it prints the ack latency of that minute's commands, and for each of the bot's processes
its resident memory, threads and open files (sockets among them). At the end it waits
for every thread reply, checks that every command was acked, added once in the cloud
and answered, and prints the growth per 1,000 commands from the end of the first minute
(the warm-up) to the end of the run, against its targets: under 0.3 MB of RSS, no
thread and no open file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fakes import Endpoints, HelperFakes, Snapshot
from bench.load import Ack, Command, _exchange, fire, percentile, signed_request
from bench.procs import MB, Service, command_line, free_port, is_python, pss, tree

HOST = "127.0.0.1"
SENDERS = 64  # threads that send steady commands: far more than ever wait at once
SAMPLE_SECONDS = 1.0
WARMUP_COMMANDS = 3
STATES_DONE = ("pending", "accepted", "rejected", "removed", "failed", "denied", "expired")
IMAGES = 100  # images the cloud lists; the commands share them in turn, a new member each

# Targets, from the issue: growth per 1,000 commands after the warm-up minute.
RSS_GROWTH_LIMIT = 0.3 * MB
THREADS_GROWTH_LIMIT = 0
FILES_GROWTH_LIMIT = 0


@dataclass(frozen=True)
class ProcessSample:
    """One process of the tree at one moment."""

    role: str
    rss: int
    pss: int  # shared pages split between their sharers: what the tree really holds
    threads: int
    files: int
    sockets: int


def sample_process(pid: int, role: str) -> ProcessSample | None:
    """RSS, threads and open files of one process from /proc (None if it is gone)."""
    rss = threads = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == "VmRSS":
                rss = int(rest.split()[0]) * 1024
            elif name == "Threads":
                threads = int(rest.split()[0])
        files = sockets = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            files += 1
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    sockets += 1
    except (OSError, ValueError):
        return None
    return ProcessSample(role, rss, pss(pid) or 0, threads, files, sockets)


def role_of(pid: int, root: int) -> str:
    """A short name for each of the bot's processes, whatever it is made of."""
    if pid == root:
        return "main"
    line = command_line(pid)
    if line == command_line(root):
        return "fork"  # a forked copy of the first process (a server's worker, say)
    if line.endswith("bot worker"):
        return "worker"
    return line.rsplit(" ", 1)[-1][:12]


@dataclass
class Minute:
    """What one minute of the run saw."""

    index: int
    sent: int = 0  # commands sent, to the end of this minute
    latencies: list[float] = field(default_factory=list)  # of this minute's acks
    refused: int = 0  # this minute's commands without an "On it" answer
    peak: dict[str, ProcessSample] = field(default_factory=dict)  # role -> highest RSS
    last: dict[str, ProcessSample] = field(default_factory=dict)  # role -> at the end
    peak_tree: int = 0
    replies: int = 0  # thread replies, to the end of this minute
    spans: list[float] = field(default_factory=list)  # bursts: first command to last reply
    load: float = 0.0  # the machine's 1-minute load average at the end of the minute
    posts: int = 0  # cloud POSTs, to the end of this minute
    python: int = 0  # the most Python processes in the tree at once

    @property
    def last_tree(self) -> int:
        """The tree's RSS at the end of the minute."""
        return sum(p.rss for p in self.last.values())

    @property
    def last_pss(self) -> int:
        """The tree's PSS at the end of the minute."""
        return sum(p.pss for p in self.last.values())

    @property
    def last_threads(self) -> int:
        """The tree's threads at the end of the minute."""
        return sum(p.threads for p in self.last.values())

    @property
    def last_files(self) -> int:
        """The tree's open files at the end of the minute."""
        return sum(p.files for p in self.last.values())


class Recorder:
    """Acks and /proc samples, sorted into minutes."""

    def __init__(self, root: int, started: float, minute_seconds: float, minutes: int) -> None:
        self.root = root
        self.started = started
        self.minute_seconds = minute_seconds
        self.count = minutes  # samples after the run belong to its last minute
        self.lock = threading.Lock()
        self.minutes: list[Minute] = []
        self.acks: list[Ack] = []
        self._roles: dict[int, str] = {}

    def minute(self, at: float) -> Minute:
        index = min(self.count - 1, max(0, int((at - self.started) // self.minute_seconds)))
        while len(self.minutes) <= index:
            self.minutes.append(Minute(len(self.minutes) + 1))
        return self.minutes[index]

    def ack(self, ack: Ack) -> None:
        with self.lock:
            self.acks.append(ack)
            entry = self.minute(ack.sent_at or time.time())
            entry.latencies.append(ack.latency)
            if not accepted(ack):
                entry.refused += 1

    def sample(self) -> None:
        now = time.time()
        found: dict[str, ProcessSample] = {}
        python = 0
        for pid in tree(self.root):
            role = self._roles.get(pid) or self._roles.setdefault(pid, role_of(pid, self.root))
            taken = sample_process(pid, role)
            if taken is not None:
                found[role] = taken
                python += is_python(pid)
        with self.lock:
            entry = self.minute(now)
            entry.last = found
            entry.python = max(entry.python, python)
            with contextlib.suppress(OSError, ValueError):
                entry.load = float(Path("/proc/loadavg").read_text().split()[0])
            entry.peak_tree = max(entry.peak_tree, sum(p.rss for p in found.values()))
            for role, taken in found.items():
                if role not in entry.peak or taken.rss > entry.peak[role].rss:
                    entry.peak[role] = taken


def accepted(ack: Ack) -> bool:
    """An HTTP 200 with the "On it" text of a recorded share."""
    if not ack.ok:
        return False
    try:
        return str(json.loads(ack.body).get("text", "")).startswith("On it")
    except ValueError:
        return False


def make_command(i: int, args: argparse.Namespace, endpoints: Endpoints) -> Command:
    """Command `i`: a listed image and a new member, from one of the users in a channel."""
    user = f"UBENCH{i % args.users:03d}"
    channel = f"CBENCH{(i + i // args.users) % args.channels:03d}"
    image = endpoints.images[i % len(endpoints.images)] if endpoints.images else uuid.uuid4()
    return Command(
        user_id=user,
        channel_id=channel,
        text=f"{image} soak-{i:06d}",
        response_url=f"{endpoints.slack_base_url}/response/soak-{i}",
    )


def send_one(port: int, secret: str, command: Command, timeout: float = 10.0) -> Ack:
    """Sign and send one command on its own connection, now."""
    request = signed_request(HOST, port, secret, command)
    sent_at = time.time()
    started = time.perf_counter()
    try:
        status, body = _exchange((HOST, port), request, timeout)
        error = None if status else "no HTTP status in the answer"
    except OSError as exc:
        status, body, error = 0, b"", f"{type(exc).__name__}: {exc}"
    return Ack(command, sent_at, time.perf_counter() - started, status, body, error)


# -- the run -----------------------------------------------------------------------------------


class SharedFakes:
    """The fakes helper for two threads (the sampler's and the driver's): one at a time."""

    def __init__(self, fakes: HelperFakes) -> None:
        self.fakes = fakes
        self.lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        with self.lock:
            return self.fakes.snapshot()

    def wait_replies(self, count: int, timeout: float) -> Snapshot:
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if len(snap.reply_times) >= count or time.monotonic() >= deadline:
                return snap
            time.sleep(0.05)


def drive(
    args: argparse.Namespace,
    port: int,
    secret: str,
    endpoints: Endpoints,
    rec: Recorder,
    fakes: SharedFakes,
) -> int:
    """Send commands for `--minutes` at `--rate`, steadily or in bursts; how many were sent."""
    duration = args.minutes * 60.0
    total = 0
    start = rec.started
    if args.pattern == "steady":
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="soak-send") as senders:
            while True:
                due = start + total / args.rate
                if due - start >= duration:
                    break
                time.sleep(max(0.0, due - time.time()))
                command = make_command(total, args, endpoints)
                senders.submit(lambda c=command: rec.ack(send_one(port, secret, c)))
                total += 1
                with rec.lock:
                    rec.minute(due).sent = total
        return total
    every = args.burst / args.rate
    while True:
        due = start + (total // args.burst) * every
        if due - start >= duration:
            break
        time.sleep(max(0.0, due - time.time()))
        commands = [make_command(total + k, args, endpoints) for k in range(args.burst)]
        total += args.burst
        with rec.lock:
            rec.minute(due).sent = total
        acks = fire(HOST, port, secret, commands, timeout=10)
        for ack in acks:
            rec.ack(ack)
        with rec.lock:
            replied = sum(accepted(a) for a in rec.acks)
        first = min((a.sent_at for a in acks if a.sent_at), default=due)
        # Every reply so far, this burst's last among them (or the next burst comes first).
        snap = fakes.wait_replies(replied, timeout=max(1.0, every - 2.0))
        if len(snap.reply_times) >= replied:
            with rec.lock:
                rec.minute(due).spans.append(snap.reply_times[replied - 1] - first)
    return total


def stuck_requests(database: Path) -> dict[str, int]:
    """Requests not in a state where the worker is done with them, by state."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM share_requests WHERE state NOT IN"
            f" ({', '.join('?' * len(STATES_DONE))}) GROUP BY state",
            STATES_DONE,
        ).fetchall()
    return {str(state): int(count) for state, count in rows}


@dataclass
class SoakResult:
    """The whole run."""

    options: dict[str, Any]
    minutes: list[Minute]
    sent: int
    acked: int
    final: Snapshot
    settled_seconds: float
    stuck: dict[str, int]
    roles: list[str]

    @property
    def parents(self) -> int:
        return self.final.slack_calls.get("chat.postMessage", 0) - len(self.final.reply_times)


def run_soak(args: argparse.Namespace, workdir: Path) -> SoakResult:
    """Start the fakes and the bot, drive the load, sample every second, check the end."""
    from bench.run import SIGNING_SECRET, bench_env, child_env, grant_sharers, progress

    fakes = HelperFakes(args.delay, env=child_env({}), log=workdir / "fakes.log", images=IMAGES)
    service = None
    try:
        directory = workdir / "bot"
        directory.mkdir()
        port = free_port()
        env = bench_env(fakes.endpoints, directory, port)
        users = [f"UBENCH{u:03d}" for u in range(args.users)]
        fakes.add_users(users)
        grant_sharers(users, env, directory)
        service = Service(
            "bot", [sys.executable, "-m", "bot"], env=env, cwd=directory, log=directory / "out.log"
        )
        service.wait_healthy(f"http://{HOST}:{port}/healthz", timeout=30)
        base = fakes.endpoints.slack_base_url
        for w in range(WARMUP_COMMANDS):
            warm = Command("UWARMUP", "CWARMUP", "help", f"{base}/w{w}")
            if not send_one(port, SIGNING_SECRET, warm).ok:
                raise RuntimeError(f"the bot did not answer the warm-up:\n{service.log_tail()}")
        # Its image list read at the start (one cloud delay) is over by now.
        fakes.wait_quiet(args.delay + 0.5, 30)
        minutes = max(1, math.ceil(args.minutes * 60.0 / args.minute_seconds))
        rec = Recorder(service.pid, time.time(), args.minute_seconds, minutes)
        stop = threading.Event()
        shared = SharedFakes(fakes)

        def sampler() -> None:
            printed = 0
            while not stop.wait(SAMPLE_SECONDS):
                rec.sample()
                with rec.lock:
                    finished = len(rec.minutes) - 1
                while printed < finished:
                    snap = shared.snapshot()
                    done = rec.minutes[printed]
                    done.replies = len(snap.reply_times)
                    done.posts = snap.cloud_calls.get("POST", 0)
                    printed += 1
                    progress(f"  minute {done.index}: {row_text(done)}")

        watcher = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
        progress(
            f"soak: {args.pattern}, {args.minutes:g} min at {args.rate:g} commands/s,"
            f" cloud delay {args.delay:g} s"
        )
        watcher.start()
        try:
            sent = drive(args, port, SIGNING_SECRET, fakes.endpoints, rec, shared)
        finally:
            stop.set()
            watcher.join(10)
        ended = time.time()
        acked = sum(accepted(a) for a in rec.acks)
        fakes.wait_replies(acked, since=0.0, timeout=120)
        final = fakes.wait_quiet(1.0, timeout=60)
        settled = time.time() - ended
        rec.sample()  # the end state, after the last reply
        last = rec.minutes[-1]
        last.replies, last.posts = len(final.reply_times), final.cloud_calls.get("POST", 0)
        if service.process.poll() is not None:
            raise RuntimeError(f"the bot died during the soak:\n{service.log_tail()}")
        roles = sorted({r for m in rec.minutes for r in m.last}, key=role_order)
        return SoakResult(
            options={k: v for k, v in vars(args).items() if k != "func"},
            minutes=rec.minutes,
            sent=sent,
            acked=acked,
            final=final,
            settled_seconds=settled,
            stuck=stuck_requests(directory / "bot.db"),
            roles=roles,
        )
    finally:
        if service is not None:
            service.stop()
        fakes.close()


def role_order(role: str) -> tuple[int, str]:
    order = {"main": 0, "web": 1, "worker": 2}
    return (order.get(role, 9), role)


# -- the report --------------------------------------------------------------------------------


def mb(value: float) -> str:
    return f"{value / MB:.1f}"


def ms(seconds: float) -> str:
    return "-" if seconds != seconds or math.isinf(seconds) else f"{seconds * 1000:.0f}"


def row_text(m: Minute) -> str:
    parts = [
        f"sent {m.sent}, p50 {ms(percentile(m.latencies, 0.5))} ms,"
        f" p99 {ms(percentile(m.latencies, 0.99))} ms, tree {mb(m.last_tree)} MB"
        f" (peak {mb(m.peak_tree)})"
    ]
    for role in sorted(m.last, key=role_order):
        p = m.last[role]
        parts.append(f"{role} {mb(p.rss)} MB/{p.threads} thr/{p.files} fds")
    return "; ".join(parts)


def report(result: SoakResult) -> str:
    """The per-minute table and the end figures."""
    roles = result.roles
    o = result.options
    head = [
        "min",
        "sent",
        "acks",
        "p50 ms",
        "p99 ms",
        "tree MB",
        "peak MB",
        "PSS MB",
        *(["burst s"] if o["pattern"] == "burst" else []),
        *(f"{r} MB" for r in roles),
        *(f"{r} thr" for r in roles),
        *(f"{r} fds" for r in roles),
        "replies",
        "load",
    ]
    rows = [head]
    for m in result.minutes:
        rows.append(
            [
                str(m.index),
                str(m.sent),
                str(len(m.latencies) - m.refused) + (f" ({m.refused} not)" if m.refused else ""),
                ms(percentile(m.latencies, 0.5)),
                ms(percentile(m.latencies, 0.99)),
                mb(m.last_tree),
                mb(m.peak_tree),
                mb(m.last_pss),
                *([f"{max(m.spans):.2f}" if m.spans else "-"] if o["pattern"] == "burst" else []),
                *(mb(m.last[r].rss) if r in m.last else "-" for r in roles),
                *(str(m.peak[r].threads) if r in m.peak else "-" for r in roles),
                *(str(m.peak[r].files) if r in m.peak else "-" for r in roles),
                str(m.replies),
                f"{m.load:.1f}",
            ]
        )
    from bench.run import table

    every = o["burst"] / o["rate"]
    shape = (
        f"{o['rate']:g} commands/s"
        if o["pattern"] == "steady"
        else f"bursts of {o['burst']} every {every:g} s ({o['rate']:g} commands/s on average)"
    )
    lines = [
        f"soak, {o['pattern']}: {o['minutes']:g} min, {shape}, {o['users']} users,"
        f" {o['channels']} channels, cloud delay {o['delay']:g} s; {os.cpu_count()} CPUs",
        "",
        table(rows),
        "",
        "MB: resident memory (RSS) at the end of the minute; peak: the highest RSS sum of the"
        " tree seen in the minute\n(sampled every second); PSS: the tree's proportional set"
        " size at the end of the minute (shared pages counted once);\nthr, fds: the minute's"
        " highest threads and open files per process"
        + (
            "; burst s: the slowest burst of the minute,\nfrom its first command to its last"
            " thread reply"
            if o["pattern"] == "burst"
            else ""
        )
        + ". load: the machine's load average (other work on it slows the acks)."
        " The last row is taken after the last reply.",
        "",
    ]
    all_latencies = [a for m in result.minutes for a in m.latencies]
    spans = sorted(x for m in result.minutes for x in m.spans)
    if spans:
        lines.append(
            f"bursts: {len(spans)} completed, first command to last reply: median"
            f" {spans[len(spans) // 2]:.2f} s, slowest {spans[-1]:.2f} s"
        )
    posts = result.final.cloud_calls.get("POST", 0)
    lines += [
        f"commands sent {result.sent}, acked {result.acked}"
        f" (p50 {ms(percentile(all_latencies, 0.5))} ms,"
        f" p99 {ms(percentile(all_latencies, 0.99))} ms); cloud POSTs {posts};"
        f" members added twice {result.final.posts_twice};"
        f" parent messages {result.parents}; thread replies {len(result.final.reply_times)};"
        f" still open: {', '.join(f'{s} {n}' for s, n in result.stuck.items()) or 'none'};"
        f" quiet {result.settled_seconds:.1f} s after the last command",
    ]
    lines.append(growth_text(result))
    lines.append("")
    checks = checks_of(result)
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks]
    failed = [name for name, ok in checks if not ok]
    lines.append(
        f"{len(checks) - len(failed)}/{len(checks)} targets met"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)


def growth(result: SoakResult) -> tuple[float, float, float] | None:
    """RSS (bytes), threads and open files the tree gained per 1,000 commands after the
    warm-up minute (None: too short a run to tell)."""
    if len(result.minutes) < 3:
        return None
    first, last = result.minutes[0], result.minutes[-1]
    commands = result.sent - first.sent
    if commands <= 0:
        return None
    per = 1000 / commands
    return (
        (last.last_tree - first.last_tree) * per,
        (last.last_threads - first.last_threads) * per,
        (last.last_files - first.last_files) * per,
    )


def checks_of(result: SoakResult) -> list[tuple[str, bool]]:
    """The soak's targets, met or not."""
    posts = result.final.cloud_calls.get("POST", 0)
    checks = [
        ("every command acked", result.acked == result.sent),
        (
            "every command added once in the cloud",
            posts == result.sent and result.final.posts_twice == 0,
        ),
        (
            "every command answered in its thread, nothing stuck",
            result.parents == result.sent
            and len(result.final.reply_times) == result.sent
            and not result.stuck,
        ),
        ("one Python process", max((m.python for m in result.minutes), default=0) == 1),
    ]
    grew = growth(result)
    if grew is None:
        checks.append(("growth measured (2 minutes after the warm-up minute)", False))
        return checks
    rss, threads, files = grew
    checks += [
        (f"RSS growth per 1,000 commands < {RSS_GROWTH_LIMIT / MB:g} MB", rss < RSS_GROWTH_LIMIT),
        (f"thread growth per 1,000 commands <= {THREADS_GROWTH_LIMIT}", threads <= 0),
        (f"open-file growth per 1,000 commands <= {FILES_GROWTH_LIMIT}", files <= 0),
    ]
    return checks


def growth_text(result: SoakResult) -> str:
    """Growth per 1,000 commands from the end of minute 1 to the end of the run."""
    if len(result.minutes) < 3:
        return "growth: too short a run (needs 2 minutes after the warm-up minute)"
    first, last = result.minutes[0], result.minutes[-1]
    commands = result.sent - first.sent
    if commands <= 0:
        return "growth: no commands after the warm-up minute"
    per = 1000 / commands

    def grow(before: int, after: int, unit: float = 1.0, digits: int = 2) -> str:
        return f"{(after - before) / unit * per:+.{digits}f}"

    parts = [
        f"tree {grow(first.last_tree, last.last_tree, MB)} MB RSS,"
        f" {grow(first.last_pss, last.last_pss, MB)} MB PSS,"
        f" {grow(first.last_threads, last.last_threads, digits=1)} threads,"
        f" {grow(first.last_files, last.last_files, digits=1)} fds"
    ]
    for role in result.roles:
        a, b = first.last.get(role), last.last.get(role)
        if a and b:
            parts.append(
                f"{role} {grow(a.rss, b.rss, MB)} MB, {grow(a.threads, b.threads, digits=1)}"
                f" threads, {grow(a.files, b.files, digits=1)} fds"
            )
    return (
        f"growth per 1,000 commands after the warm-up minute ({commands} commands;"
        f" {mb(first.last_tree)} -> {mb(last.last_tree)} MB): " + "; ".join(parts)
    )


def parser() -> argparse.ArgumentParser:
    """`python -m bench soak` and its options."""
    p = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=15.0, help="how long (15)")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="commands a second on average (10: steady, or bursts of 100 every 10 s)",
    )
    p.add_argument(
        "--pattern",
        choices=["steady", "burst", "both"],
        default="steady",
        help="steady load, bursts, or the one and then the other (steady)",
    )
    p.add_argument("--burst", type=int, default=100, help="commands per burst (100)")
    p.add_argument(
        "--delay", type=float, default=None, help="cloud delay, s (steady: 0.2; burst: 1.0)"
    )
    p.add_argument("--users", type=int, default=50, help="distinct Slack users (50)")
    p.add_argument("--channels", type=int, default=10, help="distinct channels (10)")
    p.add_argument("--minute-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, DB)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak(s); 0 when every target was met, else 1 (2: no run)."""
    from bench.run import in_workdir, progress

    given = parser().parse_args(argv)
    patterns = ["steady", "burst"] if given.pattern == "both" else [given.pattern]
    worst = 0
    results = []
    for pattern in patterns:
        args = argparse.Namespace(**vars(given))
        args.pattern = pattern
        if args.rate is None:
            args.rate = 10.0
        if args.delay is None:
            args.delay = 0.2 if pattern == "steady" else 1.0
        if args.rate <= 0 or args.minutes <= 0 or args.burst < 1 or args.users < 1:
            progress("--rate, --minutes, --burst and --users must be positive")
            return 2
        found, code = in_workdir(
            "share-image-soak-",
            "the soak",
            args.keep,
            lambda workdir, args=args: run_soak(args, workdir),
        )
        if found is None:
            return code
        results.append(found)
        if not args.json:
            print(report(found) + "\n", flush=True)
        worst = max(worst, 0 if all(ok for _, ok in checks_of(found)) else 1)
    if given.json:
        print(json.dumps([as_json(r) for r in results], indent=2))
    return worst


def as_json(result: SoakResult) -> dict[str, Any]:
    """The run as plain data."""

    def proc(p: ProcessSample) -> dict[str, int]:
        return {
            "rss": p.rss,
            "pss": p.pss,
            "threads": p.threads,
            "files": p.files,
            "sockets": p.sockets,
        }

    return {
        "options": result.options,
        "sent": result.sent,
        "acked": result.acked,
        "cloud_calls": result.final.cloud_calls,
        "slack_calls": result.final.slack_calls,
        "thread_replies": len(result.final.reply_times),
        "stuck": result.stuck,
        "members_added_twice": result.final.posts_twice,
        "checks": dict(checks_of(result)),
        "minutes": [
            {
                "minute": m.index,
                "sent": m.sent,
                "ack_p50": percentile(m.latencies, 0.5),
                "ack_p99": percentile(m.latencies, 0.99),
                "refused": m.refused,
                "tree_rss": m.last_tree,
                "tree_rss_peak": m.peak_tree,
                "tree_pss": m.last_pss,
                "burst_spans": m.spans,
                "processes": {r: proc(p) for r, p in m.last.items()},
                "peaks": {r: proc(p) for r, p in m.peak.items()},
            }
            for m in result.minutes
        ],
    }
