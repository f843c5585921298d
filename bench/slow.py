"""Slow clients: hundreds of connections that trickle a byte a second, and Slack meanwhile.

    python -m bench slow [--hold 60] [--headers 200] [--bodies 200] [--interval 0.5]

Serves the real bot (`python -m bot`, HTTP mode) against the fake Slack and the cloud API
sandbox, then opens `--headers` connections that send a signed request's head one byte a
second (a head never finished) and `--bodies` connections that send a whole head and then
its body one byte a second, and holds them for up to `--hold` seconds. Meanwhile a signed
`/share-image` arrives every `--interval` seconds on a connection of its own, as Slack
sends them. It reports how long each signed command waited for its ack (Slack gives up
after 3 s; the target is 1 s), and for the slow connections when the bot cut them, with
what answer. A public endpoint must make slow senders pay for their slowness, not the
people using it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.fakes import Fakes, HelperFakes
from bench.load import Ack, Command, percentile, signed_request
from bench.procs import MemoryReport, MemorySampler
from bench.soak import send_one

KINDS = ("header", "body")
CONNECT_AT_ONCE = 50  # connection attempts under way at once while opening them
ANSWER_WITHIN = 1.0  # seconds: every signed command acked within this (Slack allows 3)
SIGNED_TIMEOUT = 10.0
SENDERS = 32  # threads sending the signed commands
AFTER_LAST_CUT = 2.0  # seconds of signed commands after the last slow connection was cut


@dataclass
class SlowOptions:
    """What to hold, and how long."""

    hold: float = 60.0
    headers: int = 200
    bodies: int = 200
    interval: float = 0.5
    users: int = 10


@dataclass
class SlowConnection:
    """One slow connection and what became of it."""

    kind: str  # "header" or "body"
    opened: bool = False
    error: str | None = None  # why it could not connect
    cut_after: float | None = None  # seconds from connecting until the bot closed it
    answered_after: float | None = None  # seconds from connecting to its answer's first byte
    answer: bytes = b""  # what the bot said before closing, if anything
    sent: int = 0  # bytes trickled

    @property
    def status(self) -> int | None:
        """The HTTP status of the bot's answer, if it gave one."""
        parts = self.answer.split(b"\r\n", 1)[0].split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@dataclass
class SlowResult:
    """The phase."""

    options: SlowOptions
    connections: list[SlowConnection]
    signed: list[Ack]
    opened_in: float  # seconds it took to open every slow connection
    lasted: float  # seconds from the first signed command to the last one sent
    memory: MemoryReport | None = None
    log: str = ""
    bot_alive: bool = True
    accepted: list[bool] = field(default_factory=list)  # per signed command: "On it"


class Trickler:
    """The slow connections, on an event loop of their own in a background thread."""

    def __init__(self, host: str, port: int, heads: list[bytes], bodies: list[bytes]) -> None:
        self.host, self.port = host, port
        self.plan = [("header", head, b"") for head in heads] + [
            ("body", head, body) for head, body in zip(heads, bodies, strict=True)
        ]
        self.connections: list[SlowConnection] = []
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._error: BaseException | None = None

    def start(self, counts: dict[str, int], timeout: float = 60.0) -> None:
        """Open `counts[kind]` connections of each kind; return once all are tried."""
        self.counts = counts
        self._thread.start()
        if not self._opened.wait(timeout):
            raise TimeoutError(f"the slow connections were not open within {timeout:.0f}s")
        if self._error is not None:
            raise RuntimeError(f"the slow clients failed: {self._error!r}")

    def cut(self) -> int:
        """How many of the opened connections the bot has closed so far."""
        return sum(1 for c in self.connections if c.cut_after is not None)

    def open(self) -> int:
        """How many connections were opened."""
        return sum(1 for c in self.connections if c.opened)

    def stop(self) -> None:
        """Close every connection still open and end the loop (again: nothing)."""
        stop = self._stop
        if stop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self.loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as error:  # reported by start() or seen as no cuts
            self._error = error
            self._opened.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)
        tasks = []
        opened: list[asyncio.Future[None]] = []
        for kind in KINDS:
            wanted = [p for p in self.plan if p[0] == kind][: self.counts.get(kind, 0)]
            for _, head, body in wanted:
                connection = SlowConnection(kind)
                self.connections.append(connection)
                ready: asyncio.Future[None] = self.loop.create_future()
                opened.append(ready)
                tasks.append(asyncio.create_task(self._hold(connection, head, body, gate, ready)))
        await asyncio.gather(*opened)
        self._opened.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(
        self,
        connection: SlowConnection,
        head: bytes,
        body: bytes,
        gate: asyncio.Semaphore,
        ready: asyncio.Future[None],
    ) -> None:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 10
                )
            except (OSError, TimeoutError) as error:
                connection.error = f"{type(error).__name__}: {error}"
                ready.set_result(None)
                return
        connection.opened = True
        opened = time.monotonic()
        if connection.kind == "body":  # the head at once, then the body a byte a second
            writer.write(head)
            trickle = body
        else:
            trickle = head
        ready.set_result(None)

        async def read() -> None:
            with contextlib.suppress(OSError):
                while chunk := await reader.read(4096):
                    if connection.answered_after is None:
                        connection.answered_after = time.monotonic() - opened
                    connection.answer += chunk

        async def write() -> None:
            # Spread the connections over the second, so they do not tick together.
            await asyncio.sleep(random.random())
            with contextlib.suppress(OSError):
                for i in range(len(trickle)):
                    writer.write(trickle[i : i + 1])
                    await writer.drain()
                    connection.sent += 1
                    await asyncio.sleep(1.0)
                await asyncio.Event().wait()  # all sent (not within a minute): wait

        reading = asyncio.create_task(read())
        writing = asyncio.create_task(write())
        try:
            await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
            # Either the bot closed the connection (EOF, a reset) or a write failed.
            connection.cut_after = time.monotonic() - opened
        finally:
            reading.cancel()
            writing.cancel()
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


def requests_for(
    host: str, port: int, secret: str, endpoints: Any, count: int
) -> tuple[list[bytes], list[bytes]]:
    """`count` signed share commands, split into head and body."""
    heads, bodies = [], []
    for i in range(count):
        command = Command(
            "USLOW", "CSLOW", f"slow-{i}", f"{endpoints.slack_base_url}/response/slow-{i}"
        )
        head, _, body = signed_request(host, port, secret, command).partition(b"\r\n\r\n")
        heads.append(head + b"\r\n\r\n")
        bodies.append(body)
    return heads, bodies


def run_slow(options: SlowOptions, fakes: Fakes, directory: Path) -> SlowResult:
    """Start the bot in `directory`, hold the slow connections, send signed commands."""
    from bench.run import (
        HOST,
        SIGNING_SECRET,
        ack_accepted,
        progress,
        share_text,
        start_app,
        warm_up,
    )

    users = [f"UBENCH{u:03d}" for u in range(options.users)]
    progress(
        f"slow clients: starting the bot, then {options.headers} slow-header and"
        f" {options.bodies} slow-body connections, held for up to {options.hold:g} s"
    )
    service, port = start_app("bot", fakes, directory, users)
    trickler: Trickler | None = None
    try:
        sampler = MemorySampler(service.pid).start()
        warm_up("bot", port, fakes.endpoints)
        heads, bodies = requests_for(
            HOST, port, SIGNING_SECRET, fakes.endpoints, max(options.headers, options.bodies)
        )
        trickler = Trickler(HOST, port, heads, bodies)
        started = time.monotonic()
        trickler.start({"header": options.headers, "body": options.bodies})
        opened_in = time.monotonic() - started
        progress(
            f"  {trickler.open()} slow connections open in {opened_in:.1f} s;"
            " signed commands meanwhile"
        )
        # Each on a thread of its own, on time: one the bot keeps waiting delays no other.
        pending: list[Future[Ack]] = []
        first = time.monotonic()
        all_cut_at: float | None = None
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="slow-signed") as senders:
            i = 0
            while True:
                now = time.monotonic()
                if now - first >= options.hold:
                    break
                if trickler.cut() >= trickler.open():
                    all_cut_at = all_cut_at or now
                    if now - all_cut_at >= AFTER_LAST_CUT:
                        break
                command = Command(
                    users[i % len(users)],
                    f"CSLOW{i % 10}",
                    share_text(fakes.endpoints, i, f"slow-{i:04d}"),
                    f"{fakes.endpoints.slack_base_url}/response/slow-signed-{i}",
                )
                pending.append(
                    senders.submit(send_one, port, SIGNING_SECRET, command, SIGNED_TIMEOUT)
                )
                i += 1
                if i % 10 == 0:
                    done = [f.result() for f in pending if f.done()]
                    slowest = max((a.latency for a in done), default=0.0)
                    progress(
                        f"  {now - first:4.0f} s: {i} signed sent, {len(done)} answered or"
                        f" given up, slowest {slowest * 1000:.0f} ms;"
                        f" {trickler.cut()} of {trickler.open()} slow connections cut"
                    )
                time.sleep(max(0.0, first + i * options.interval - time.monotonic()))
            lasted = time.monotonic() - first
            # The slow connections stay open until the last signed command is answered.
            signed = [f.result() for f in pending]
        trickler.stop()
        alive = service.process.poll() is None
        memory = sampler.stop()
    finally:
        if trickler is not None:
            trickler.stop()
        service.stop()
    return SlowResult(
        options=options,
        connections=trickler.connections,
        signed=signed,
        opened_in=opened_in,
        lasted=lasted,
        memory=memory,
        log=str(service.log_path),
        bot_alive=alive,
        accepted=[ack_accepted("bot", a) for a in signed],
    )


def cut_text(connections: list[SlowConnection], answered: bool = False) -> str:
    """When the cut ones were cut (or answered)."""
    times = sorted(
        t for c in connections if (t := c.answered_after if answered else c.cut_after) is not None
    )
    if not times:
        return "-"
    return (
        f"{times[0]:.1f} / {statistics.median(times):.1f} / {times[-1]:.1f} s"
        if len(times) > 1
        else f"{times[0]:.1f} s"
    )


def answers_text(connections: list[SlowConnection]) -> str:
    """What the cut ones were told."""
    counts = Counter(
        str(c.status) if c.status else "closed, no answer"
        for c in connections
        if c.cut_after is not None
    )
    return ", ".join(f"{what} x{n}" for what, n in counts.most_common()) or "-"


def slow_table(result: SlowResult, checks: list[tuple[str, bool]]) -> str:
    """The phase's figures and targets."""
    from bench.run import mb, ms, table, verdict

    o = result.options
    signed = result.signed
    latencies = [a.latency for a in signed]
    answered = sum(1 for a, ok in zip(signed, result.accepted, strict=True) if ok)
    within = sum(
        1
        for a, ok in zip(signed, result.accepted, strict=True)
        if ok and a.latency <= ANSWER_WITHIN
    )
    rows = [["", "slow-header", "slow-body", "target", "result"]]
    by_kind = {k: [c for c in result.connections if c.kind == k] for k in KINDS}
    rows.append(
        [
            "connections opened",
            *(f"{sum(c.opened for c in by_kind[k])} of {len(by_kind[k])}" for k in KINDS),
            "",
            "",
        ]
    )
    refused = {k: Counter(c.error for c in by_kind[k] if c.error) for k in KINDS}
    if any(refused.values()):
        rows.append(
            [
                "  not opened",
                *(", ".join(f"{e} x{n}" for e, n in refused[k].items()) or "-" for k in KINDS),
                "",
                "",
            ]
        )
    cut = {k: sum(1 for c in by_kind[k] if c.opened and c.cut_after is not None) for k in KINDS}
    opened = {k: sum(1 for c in by_kind[k] if c.opened) for k in KINDS}
    ok = all(cut[k] == opened[k] for k in KINDS)
    rows.append(
        [
            "cut by the bot",
            *(f"{cut[k]} of {opened[k]}" for k in KINDS),
            f"all, within the {o.hold:g} s hold",
            verdict(ok),
        ]
    )
    checks.append(("slow connections cut", ok))
    rows.append(
        [
            "  cut after (first/median/last)",
            *(cut_text(by_kind[k]) for k in KINDS),
            "the read timeouts",
            "",
        ]
    )
    rows.append(["  answer before the cut", *(answers_text(by_kind[k]) for k in KINDS), "", ""])
    if any(c.answered_after is not None for c in result.connections):
        rows.append(
            [
                "  answered after",
                *(cut_text(by_kind[k], answered=True) for k in KINDS),
                "(then closed as above)",
                "",
            ]
        )
    rows.append(
        [
            "  bytes trickled, median",
            *(
                f"{statistics.median([c.sent for c in by_kind[k] if c.opened] or [0]):g}"
                for k in KINDS
            ),
            "",
            "",
        ]
    )
    lines = [
        f"slow clients: {o.headers} slow-header and {o.bodies} slow-body connections (1 byte/s),"
        f" opened in {result.opened_in:.1f} s and held for up to {o.hold:g} s;\na signed"
        f" /share-image every {o.interval:g} s meanwhile, each on its own connection"
        f" ({result.lasted:.0f} s of them)",
        "",
        table(rows),
        "",
    ]
    ok = bool(signed) and within == len(signed)
    checks.append((f"every signed command answered within {ANSWER_WITHIN:g} s", ok))
    srows = [["signed commands", "sent", "acked", "p50", "p99", "max", "target", "result"]]
    srows.append(
        [
            "during the slow clients",
            str(len(signed)),
            f'{answered} ("On it")',
            ms(percentile(latencies, 0.5)),
            ms(percentile(latencies, 0.99)),
            ms(max(latencies, default=float("nan"))),
            f"all acked within {ANSWER_WITHIN * 1000:.0f} ms",
            verdict(ok),
        ]
    )
    lines.append(table(srows))
    errors = Counter(
        a.error or f"HTTP {a.status}"
        for a, ok in zip(signed, result.accepted, strict=True)
        if not ok
    )
    if errors:
        lines.append("not acked: " + ", ".join(f"{e} x{n}" for e, n in errors.items()))
    if result.memory is not None:
        lines.append(
            f"the bot during the phase: peak RSS {mb(result.memory.sum_peak_rss)},"
            f" {result.memory.python_together} Python process(es)"
            + ("" if result.bot_alive else "; the bot DIED during the phase")
        )
    return "\n".join(lines)


def slow_json(result: SlowResult) -> dict[str, Any]:
    """The phase as plain data."""
    return {
        "options": asdict(result.options),
        "opened_in": result.opened_in,
        "lasted": result.lasted,
        "connections": [
            {
                "kind": c.kind,
                "opened": c.opened,
                "error": c.error,
                "cut_after": c.cut_after,
                "answered_after": c.answered_after,
                "status": c.status,
                "sent": c.sent,
            }
            for c in result.connections
        ],
        "signed": [
            {"latency": a.latency, "status": a.status, "accepted": ok, "error": a.error}
            for a, ok in zip(result.signed, result.accepted, strict=True)
        ],
        "peak_rss": result.memory.sum_peak_rss if result.memory else None,
        "bot_alive": result.bot_alive,
        "log": result.log,
    }


def parser() -> argparse.ArgumentParser:
    """`python -m bench slow` and its options."""
    p = argparse.ArgumentParser(
        prog="python -m bench slow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hold", type=float, default=60.0, help="hold them at most, seconds (60)")
    p.add_argument("--headers", type=int, default=200, help="slow-header connections (200)")
    p.add_argument("--bodies", type=int, default=200, help="slow-body connections (200)")
    p.add_argument(
        "--interval", type=float, default=0.5, help="seconds between signed commands (0.5)"
    )
    p.add_argument("--delay", type=float, default=1.0, help="cloud API delay, seconds (1.0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, DB)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the phase alone; 0 unless `--check` and a target was missed (2: no run)."""
    from bench.run import child_env, in_workdir, load_note

    args = parser().parse_args(argv)
    if args.hold <= 0 or args.interval <= 0 or args.headers < 0 or args.bodies < 0:
        parser().error("--hold and --interval must be positive, the counts at least 0")
    options = SlowOptions(
        hold=args.hold, headers=args.headers, bodies=args.bodies, interval=args.interval
    )
    noted: dict[str, Any] = {}
    load_note(noted)

    def work(workdir: Path) -> SlowResult:
        fakes = HelperFakes(args.delay, env=child_env({}), log=workdir / "fakes.log", images=100)
        try:
            return run_slow(options, fakes, workdir)
        finally:
            fakes.close()

    found, code = in_workdir("share-image-slow-", "the slow-client phase", args.keep, work)
    if found is None:
        return code
    checks: list[tuple[str, bool]] = []
    text = slow_table(found, checks)
    if args.json:
        print(json.dumps(slow_json(found) | {"checks": dict(checks)}, indent=2))
    else:
        print(text)
        failed = [name for name, ok in checks if not ok]
        print(
            f"\n{len(checks) - len(failed)}/{len(checks)} targets met"
            + (f"; missed: {', '.join(failed)}" if failed else "")
        )
    return 1 if args.check and any(not ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
