"""SIGTERM during a burst: how fast the bot stops, and what becomes of the work under way.

    python -m bench sigterm [--n 100] [--delay 5] [--at 1.0] [--settle 60]

Serves the real bot (`python -m bot`, HTTP mode) against the fake Slack and a cloud API
sandbox whose every answer takes `--delay` seconds, fires N signed `/share-image` commands
at once, and `--at` seconds after the first one sends SIGTERM to the process it started,
as a platform does when it stops or moves a service. It measures how long until every
process of the bot is gone (a platform's usual grace is 10 s, then SIGKILL), starts the
bot again on the same database, waits until every request is settled and counts, per
command: acked but not recorded (lost), not answered in its thread, the cloud's adds
sent twice, parents and thread replies posted twice, "already shared" replies to a share
the bot made itself, requests left half-way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.crash import unsettled, wait_settled
from bench.fakes import LocalFakes
from bench.load import Command, fire
from bench.procs import Service

EXIT_WITHIN = 10.0  # seconds: a platform's usual grace before SIGKILL
KILL_AFTER = 30.0  # seconds: the bench's own patience before it SIGKILLs what is left
SETTLED_WITHIN = 30.0  # seconds from the restart: "after a crash, on with it"
MEMBER = re.compile(r"sigterm-\d+")


@dataclass
class SigtermResult:
    """What the phase saw."""

    options: dict[str, Any]
    acked: int = 0
    signalled_after: float = 0.0  # seconds from the first command to SIGTERM
    exited_after: float | None = None  # seconds from SIGTERM until every process was gone
    exit_code: int | None = None
    killed: bool = False  # the bench had to SIGKILL it
    states_at_signal: dict[str, int] = field(default_factory=dict)
    states_at_exit: dict[str, int] = field(default_factory=dict)
    posts_at_exit: int = 0
    replies_at_exit: int = 0
    restart_ready: float = 0.0  # seconds the second start took to answer /healthz
    settled_after: float | None = None  # seconds from the restart until all settled
    states_at_end: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    lost: int = 0
    unanswered: int = 0
    posts_twice: int = 0
    posts_missing: int = 0  # shares that ended shared without the cloud seeing their add
    parents_twice: int = 0
    replies_twice: int = 0
    already_shared: int = 0
    stuck: int = 0
    logs: list[str] = field(default_factory=list)
    exit_lines: list[str] = field(default_factory=list)  # the first bot's last log lines


def states(database: Path) -> dict[str, int]:
    """Requests by state."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        rows = db.execute("SELECT state, count(*) FROM share_requests GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def said(line: str) -> str:
    """A log line in short: its level and message when it is one of the bot's JSON lines."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:160]
    if not isinstance(entry, dict):
        return line[:160]
    return f"{entry.get('level', '?')}: {str(entry.get('message', ''))[:150]}"


def wait_gone(service: Service, limit: float) -> float | None:
    """Seconds until the service's whole process group is gone (None: not within `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        service.process.poll()
        try:
            os.killpg(service.pid, 0)
        except ProcessLookupError:
            if service.process.returncode is not None:
                return time.monotonic() - started
        time.sleep(0.01)
    return None


def count(
    fakes: LocalFakes, database: Path, acked_members: set[str], result: SigtermResult
) -> None:
    """Fill `result` from what Slack and the cloud received and what the database holds."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT r.member_id, r.state, m.parent_ts FROM share_requests AS r"
            " LEFT JOIN slack_messages AS m ON m.request_id = r.id"
        ).fetchall()
    result.requests = len(rows)
    recorded = {str(member) for member, _, _ in rows}
    result.lost = len(acked_members - recorded)
    posts = [c for c in fakes.slack.calls("chat.postMessage") if c.ok]
    replies = [c for c in posts if c.args.get("thread_ts")]
    threads = {str(c.args["thread_ts"]) for c in replies}
    result.unanswered = sum(1 for _, _, parent in rows if parent is None or parent not in threads)
    said: Counter[str] = Counter(f"{c.args['thread_ts']} {c.args.get('text', '')}" for c in replies)
    result.replies_twice = sum(n - 1 for n in said.values() if n > 1)
    result.already_shared = sum(1 for c in replies if "already" in str(c.args.get("text", "")))
    parents: Counter[str] = Counter()
    for call in posts:
        if not call.args.get("thread_ts"):
            found = MEMBER.search(str(call.args.get("text", "")))
            if found:
                parents[found.group(0)] += 1
    result.parents_twice = sum(n - 1 for n in parents.values() if n > 1)
    adds = Counter(
        str(r.member_id) for r in fakes.sandbox.records if r.method == "POST" and r.member_id
    )
    result.posts_twice = sum(n - 1 for n in adds.values() if n > 1)
    result.posts_missing = len(acked_members - set(adds))
    result.states_at_end = states(database)


def run_sigterm(args: argparse.Namespace, workdir: Path) -> SigtermResult:
    """The phase; every process is gone when this returns or raises."""
    from bench.run import HOST, SIGNING_SECRET, ack_accepted, progress, share_text, start_app

    result = SigtermResult(options=vars(args).copy())
    fakes = LocalFakes(args.delay, args.images)
    service: Service | None = None
    try:
        users = [f"UBENCH{u:03d}" for u in range(min(10, args.n))]
        database = workdir / "bot.db"
        progress(f"sigterm: starting the bot (cloud answers in {args.delay:g} s)")
        service, port = start_app("bot", fakes, workdir, users, log_name="bot-1.log")
        result.logs.append(str(service.log_path))
        # The bot reads the image list once it starts: a burst before that would wait on it.
        fakes.wait_quiet(args.delay + 1.0, 60)
        commands = [
            Command(
                user_id=users[i % len(users)],
                channel_id=f"CSIGTERM{i % 10:02d}",
                text=share_text(fakes.endpoints, i, f"sigterm-{i:04d}"),
                response_url=f"{fakes.endpoints.slack_base_url}/response/sigterm-{i}",
            )
            for i in range(args.n)
        ]
        acks = fire(HOST, port, SIGNING_SECRET, commands, timeout=10)
        acked = {str(a.command.text.split()[1]) for a in acks if ack_accepted("bot", a)}
        result.acked = len(acked)
        first = min((a.sent_at for a in acks if a.sent_at), default=time.time())
        time.sleep(max(0.0, first + args.at - time.time()))
        result.signalled_after = time.time() - first
        progress(
            f"  {result.acked} of {args.n} acked; SIGTERM {result.signalled_after:.2f} s after"
            " the first command"
        )
        os.kill(service.pid, signal.SIGTERM)
        result.states_at_signal = states(database)
        result.exited_after = wait_gone(service, KILL_AFTER)
        if result.exited_after is None:
            result.killed = True
            progress(f"  still running {KILL_AFTER:g} s after SIGTERM: SIGKILL")
        service.stop(grace=0.5)
        result.exit_code = service.process.returncode
        result.exit_lines = [said(line) for line in service.log_tail(5).splitlines()]
        snap = fakes.snapshot()
        result.posts_at_exit = snap.cloud_calls.get("POST", 0)
        result.replies_at_exit = len(snap.reply_times)
        result.states_at_exit = states(database)
        progress(
            f"  gone after {result.exited_after or KILL_AFTER:.2f} s; states"
            f" {result.states_at_exit}; starting it again"
        )
        restarted = time.monotonic()
        service, _ = start_app(
            "bot", fakes, workdir, users, port=port, log_name="bot-2.log", grant=False
        )
        result.restart_ready = time.monotonic() - restarted
        result.logs.append(str(service.log_path))
        left = wait_settled(database, args.settle)
        result.settled_after = None if left else time.monotonic() - restarted
        fakes.wait_quiet(1.0, 30)
        result.stuck = unsettled(database)
        count(fakes, database, acked, result)
    finally:
        if service is not None:
            service.stop()
        fakes.close()
    return result


def checks_of(result: SigtermResult) -> list[tuple[str, bool]]:
    """The targets, met or not."""
    exited = result.exited_after
    return [
        (f"exit within {EXIT_WITHIN:g} s of SIGTERM", exited is not None and exited <= EXIT_WITHIN),
        ("every command acked", result.acked == result.options["n"]),
        ("nothing lost", result.lost == 0 and result.requests >= result.acked),
        ("every command answered in its thread", result.unanswered == 0),
        ("no add sent twice", result.posts_twice == 0),
        ("nothing said twice", result.parents_twice == 0 and result.replies_twice == 0),
        ('no "already shared" for its own share', result.already_shared == 0),
        (
            f"settled within {SETTLED_WITHIN:g} s of the restart",
            result.settled_after is not None and result.settled_after <= SETTLED_WITHIN,
        ),
    ]


def report(result: SigtermResult) -> str:
    """The figures, one per line, then the targets."""
    o = result.options

    def seconds(value: float | None) -> str:
        return "not within the wait" if value is None else f"{value:.2f} s"

    lines = [
        f"SIGTERM during a burst: {o['n']} commands at once, every cloud answer takes"
        f" {o['delay']:g} s, SIGTERM {result.signalled_after:.2f} s after the first command",
        f"  acked                          {result.acked} of {o['n']}",
        f"  gone after SIGTERM             {seconds(result.exited_after)}"
        f" (exit code {result.exit_code}{', SIGKILLed by the bench' if result.killed else ''})",
        f"  requests at SIGTERM            {result.states_at_signal}",
        f"  requests at the exit           {result.states_at_exit}",
        f"  cloud POSTs / thread replies   {result.posts_at_exit} / {result.replies_at_exit}"
        " before the exit",
        f"  restart answered /healthz in   {result.restart_ready:.2f} s",
        f"  all settled after the restart  {seconds(result.settled_after)}",
        f"  requests at the end            {result.states_at_end}",
        f"  recorded / lost                {result.requests} / {result.lost}",
        f"  not answered in their thread   {result.unanswered}",
        f"  adds sent twice                {result.posts_twice}"
        f" (acked shares the cloud never saw an add for: {result.posts_missing})",
        f"  parents / replies said twice   {result.parents_twice} / {result.replies_twice}",
        f'  "already shared" replies       {result.already_shared}',
        f"  left half-way                  {result.stuck}",
        "  the first bot's last lines:",
        *(f"    {line[:160]}" for line in result.exit_lines),
        "",
    ]
    checks = checks_of(result)
    for name, ok in checks:
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    failed = [name for name, ok in checks if not ok]
    lines.append(
        f"\n{len(checks) - len(failed)}/{len(checks)} targets met"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """`python -m bench sigterm` and its options."""
    p = argparse.ArgumentParser(
        prog="python -m bench sigterm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, default=100, help="commands fired at once (100)")
    p.add_argument("--delay", type=float, default=5.0, help="every cloud answer, seconds (5)")
    p.add_argument(
        "--at", type=float, default=1.0, help="SIGTERM this long after the first command (1.0)"
    )
    p.add_argument(
        "--images", type=int, default=100, help="images the cloud lists, shared in turn (100)"
    )
    p.add_argument(
        "--settle", type=float, default=120.0, help="wait this long for all to settle (120)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the lines")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, DB)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the phase; 0 when every target was met, 1 when one was missed, 2: no run."""
    from bench.run import in_workdir

    args = parser().parse_args(argv)
    if args.n < 1 or args.delay < 0 or args.at < 0 or args.settle <= 0:
        parser().error("--n at least 1, --delay and --at at least 0, --settle positive")
    found, code = in_workdir(
        "share-image-sigterm-", "the SIGTERM phase", args.keep, lambda w: run_sigterm(args, w)
    )
    if found is None:
        return code
    checks = checks_of(found)
    if args.json:
        print(json.dumps(asdict(found) | {"checks": dict(checks)}, indent=2))
    else:
        print(report(found))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
