"""Crash rounds: SIGKILL the bot at a random moment of a burst, restart it, count twice-said.

    python -m bench crash-rounds [--rounds 30] [--n 30] [--delay 0.2] [--post-delay 4]
                                 [--kill all|worker] [--seed S]

Serves the real bot (`python -m bot` in HTTP mode) on one database against the fake
Slack and the cloud API sandbox (`--delay` on every cloud call; `--post-delay` makes each
POST take that long in all). Each round fires N share commands at once, kills the bot
with SIGKILL (`--kill all`: the whole process group; `--kill worker`: only a separate
worker process, `python -m bot worker`, when the bot runs one) at a random moment of
the work that follows, starts it again on the same database, and goes on. At the end
it waits for every request to settle and counts, per request, what was said or sent
more than once: parent messages, thread replies (the same text twice in one thread),
notify lines, and POSTs to the cloud; and what went wrong otherwise: replies saying
"already shared" for a share the bot made itself, parents without a thread, requests
left half-way, commands acked but never recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.fakes import ACCESS_KEY, SECRET_KEY, LocalFakes
from bench.load import Command, fire
from bench.procs import Service, command_line, free_port, tree
from bench.run import (
    HOST,
    SIGNING_SECRET,
    ack_accepted,
    child_env,
    grant_sharers,
    in_workdir,
    progress,
)
from bot.scp.sandbox import Fault

NOTIFY = "CCRASHNOTIFY"
MEMBER = re.compile(r"crash-r\d+-\d+")
SETTLE_TIMEOUT = 600.0  # seconds: a request whose POST may still be under way waits for it


@dataclass
class Tally:
    """What the fakes received, and how much of it was twice."""

    requests: int = 0
    acked: int = 0
    parents_twice: int = 0
    replies_twice: int = 0
    notify_twice: int = 0
    posts_twice: int = 0
    posts_cut: int = 0
    already_shared: int = 0
    orphan_parents: int = 0
    stuck: int = 0
    lost: int = 0
    kills: list[float] = field(default_factory=list)


def _twice(counts: Counter[str]) -> int:
    """How many more than one there were, summed over the keys."""
    return sum(count - 1 for count in counts.values() if count > 1)


def start_bot(env: dict[str, str], directory: Path, number: int, port: int) -> Service:
    """`python -m bot` on the shared database, answering health checks."""
    service = Service(
        f"bot-{number}",
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=directory,
        log=directory / f"bot-{number}.log",
    )
    service.wait_healthy(f"http://{HOST}:{port}/healthz", timeout=60)
    return service


def worker_pid(service: Service, timeout: float = 30.0) -> int:
    """The bot's worker process (`python -m bot worker`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in tree(service.pid):
            if command_line(pid).endswith("-m bot worker"):
                return pid
        time.sleep(0.05)
    raise RuntimeError(f"no worker process under {service.pid}")


def kill(service: Service, which: str) -> None:
    """SIGKILL the whole bot (its process group), or only its worker."""
    with contextlib.suppress(ProcessLookupError):
        if which == "worker":
            os.kill(worker_pid(service), signal.SIGKILL)
            return
        os.killpg(service.pid, signal.SIGKILL)
    service.process.wait(10)


def unsettled(database: Path) -> int:
    """Requests not finished and told: queued, sending, or their state not announced."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        (count,) = db.execute(
            "SELECT count(*) FROM share_requests AS r LEFT JOIN slack_messages AS m"
            " ON m.request_id = r.id WHERE r.state IN ('queued', 'sending')"
            " OR m.announced_state IS NOT r.state"
        ).fetchone()
    return int(count)


def wait_settled(database: Path, timeout: float) -> int:
    """Wait until every request is settled (or `timeout`); how many are not."""
    deadline = time.monotonic() + timeout
    left = unsettled(database)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = unsettled(database)
    return left


def count(fakes: LocalFakes, database: Path, tally: Tally) -> None:
    """Fill `tally` from what Slack and the cloud received and what the database holds."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        tally.requests = db.execute("SELECT count(*) FROM share_requests").fetchone()[0]
        recorded = {ts for (ts,) in db.execute("SELECT parent_ts FROM slack_messages")}
    posts = [c for c in fakes.slack.calls("chat.postMessage") if c.ok]
    parents: Counter[str] = Counter()
    replies: Counter[str] = Counter()
    notify: Counter[str] = Counter()
    threads = {str(c.args["thread_ts"]) for c in posts if c.args.get("thread_ts")}
    for call in posts:
        text = str(call.args.get("text", ""))
        found = MEMBER.search(text)
        member = found.group(0) if found else "?"
        if call.args.get("channel") == NOTIFY:
            notify[member] += 1
        elif call.args.get("thread_ts"):
            replies[f"{call.args['thread_ts']} {text}"] += 1
            tally.already_shared += "already" in text
        else:
            parents[member] += 1
            if call.ts not in recorded and call.ts not in threads:
                tally.orphan_parents += 1
    tally.parents_twice = _twice(parents)
    tally.replies_twice = _twice(replies)
    tally.notify_twice = _twice(notify)
    # An add the cloud received whole (a POST cut off before its body is no add at all).
    adds = [r for r in fakes.sandbox.records if r.method == "POST" and r.member_id]
    members = Counter(str(r.member_id) for r in adds)
    tally.posts_twice = _twice(members)
    tally.posts_cut = sum(
        1 for r in fakes.sandbox.records if r.method == "POST" and not r.member_id
    )
    for member, times in sorted(members.items()):
        if times > 1:
            statuses = [r.status for r in adds if r.member_id == member]
            progress(f"  {member}: {times} POSTs, answered {statuses}")


def crash_rounds(args: argparse.Namespace, workdir: Path) -> Tally:
    """Run the rounds; every process is gone when this returns or raises."""
    rng = random.Random(args.seed)
    fakes = LocalFakes(args.delay)
    tally = Tally()
    service: Service | None = None
    try:
        port = free_port()
        database = workdir / "bot.db"
        env = child_env(
            {
                "SLACK_BOT_TOKEN": fakes.endpoints.bot_token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": fakes.endpoints.slack_api_url,
                "SCP_ENDPOINT": fakes.endpoints.sandbox_url,
                "SCP_ACCESS_KEY": ACCESS_KEY,
                "SCP_SECRET_KEY": SECRET_KEY,
                "DATABASE_PATH": str(database),
                "PORT": str(port),
                "SHARE_UNKNOWN_MEMBERS": "direct",
                "SHARE_NOTIFY_CHANNEL": NOTIFY,
            }
        )
        users = [f"UCRASH{u:02d}" for u in range(min(10, args.n))]
        fakes.add_users(users)
        grant_sharers(users, env, workdir)
        started = 1
        service = start_bot(env, workdir, started, port)
        post_extra = max(0.0, args.post_delay - args.delay) if args.post_delay else 0.0
        # The kill comes within the time the burst's work takes (a little more).
        window = args.window or max(args.delay, args.post_delay or 0.0) + 0.6
        if post_extra:  # every POST (resends too) takes --post-delay in all
            fakes.sandbox.inject(
                *[Fault.stall(post_extra, method="POST")] * (args.n * args.rounds * 3)
            )
        for round_number in range(1, args.rounds + 1):
            commands = [
                Command(
                    user_id=users[i % len(users)],
                    channel_id=f"CCRASH{i % 10:02d}",
                    text=f"{uuid.uuid4()} crash-r{round_number}-{i:03d}",
                    response_url=f"{fakes.endpoints.slack_base_url}/response/r{round_number}-{i}",
                )
                for i in range(args.n)
            ]
            acks = fire(HOST, port, SIGNING_SECRET, commands, timeout=10)
            tally.acked += sum(ack_accepted("bot", a) for a in acks)
            moment = rng.uniform(0.0, window)
            time.sleep(moment)
            kill(service, args.kill)
            tally.kills.append(moment)
            if args.kill == "all":
                service.stop(grace=1)
                started += 1
                service = start_bot(env, workdir, started, port)
            # Let the round's work settle before the next burst (requests whose POST may
            # still be under way go on waiting for it meanwhile).
            wait_settled(database, min(window * 4, 20.0))
            progress(
                f"round {round_number}/{args.rounds}: killed after {moment:.2f} s,"
                f" {unsettled(database)} request(s) not settled yet"
            )
        tally.stuck = wait_settled(database, SETTLE_TIMEOUT)
        fakes.wait_quiet(1.0, 30)
        count(fakes, database, tally)
        tally.lost = tally.acked - tally.requests
    finally:
        if service is not None:
            service.stop()
        fakes.close()
    return tally


def report(args: argparse.Namespace, tally: Tally, took: float) -> str:
    """The figures, one per line."""
    post = f", each POST {args.post_delay:g} s" if args.post_delay else ""
    lines = [
        f"crash rounds: {args.rounds} rounds of {args.n} commands, SIGKILL ({args.kill}) at a"
        f" random moment, cloud delay {args.delay:g} s{post}, seed {args.seed}",
        f"  requests recorded          {tally.requests} ({tally.acked} commands acked)",
        f"  parents posted twice       {tally.parents_twice}",
        f"  thread replies twice       {tally.replies_twice}",
        f"  notify lines twice         {tally.notify_twice}",
        f"  POSTs sent twice           {tally.posts_twice}",
        f"  POSTs cut before the body  {tally.posts_cut} (killed mid-write: no add)",
        f'  "already shared" replies   {tally.already_shared}',
        f"  parents without a thread   {tally.orphan_parents}",
        f"  requests left half-way     {tally.stuck}",
        f"  acked but not recorded     {tally.lost}",
        f"  ({took:.0f} s)",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The options."""
    p = argparse.ArgumentParser(prog="python -m bench crash-rounds", description=__doc__)
    p.add_argument("--rounds", type=int, default=30, help="rounds (30)")
    p.add_argument("--n", type=int, default=30, help="commands per round (30)")
    p.add_argument("--delay", type=float, default=0.2, help="cloud API delay, seconds (0.2)")
    p.add_argument("--post-delay", type=float, default=0.0, help="each POST's time, seconds")
    p.add_argument("--kill", choices=["all", "worker"], default="all", help="what is killed")
    p.add_argument(
        "--window", type=float, default=0.0, help="kill within this many seconds of the burst"
    )
    p.add_argument("--seed", type=int, default=1, help="random seed for the kill moments")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when nothing was said or sent twice and nothing went wrong, else 1."""
    args = parser().parse_args(argv)
    started = time.monotonic()
    found, code = in_workdir(
        "share-image-crash-",
        "the crash rounds",
        args.keep,
        lambda workdir: crash_rounds(args, workdir),
    )
    if found is None:
        return code
    tally = found
    print(report(args, tally, time.monotonic() - started))
    bad = (
        tally.parents_twice,
        tally.replies_twice,
        tally.notify_twice,
        tally.posts_twice,
        tally.already_shared,
        tally.orphan_parents,
        tally.stuck,
        tally.lost,
    )
    return 1 if any(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
