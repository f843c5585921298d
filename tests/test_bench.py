"""The benchmark's own parts: the async floor, the slow clients, the process count.

The benchmark itself runs for minutes (`python -m bench`); these check, in seconds, that
what it measures with measures what it says: a bare app that acks signed commands and
refuses forged ones, slow connections whose cut (and the answer before it) is seen when a
server cuts them and not when it does not, and Python processes counted in a tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import Command, fire
from bench.procs import MemorySampler, Service, command_line, free_port, tree
from bench.run import SIGNING_SECRET, child_env
from bench.slow import SlowConnection, SlowOptions, SlowResult, Trickler, slow_table
from tests.fakes.slack import FakeSlack

HOST = "127.0.0.1"


def test_the_async_floor_acks_signed_commands_and_refuses_forged_ones(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    port = free_port()
    with FakeSlack(socket_ping_interval=None) as slack:
        env = child_env(
            {
                "PORT": str(port),
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_API_URL": slack.api_url,
            }
        )
        service = Service(
            "async",
            [sys.executable, "-m", "bench.bare_app", "async"],
            env=env,
            cwd=tmp_path,
            log=tmp_path / "bare.log",
        )
        try:
            service.wait_healthy(f"http://{HOST}:{port}/healthz", timeout=30)
            sampler = MemorySampler(service.pid).start()
            commands = [
                Command(f"U{i}", "C1", f"image-{i} member-{i}", f"{slack.base_url}/r{i}")
                for i in range(5)
            ]
            acks = fire(HOST, port, SIGNING_SECRET, commands, timeout=10)
            [forged] = fire(HOST, port, "not-the-signing-secret", commands[:1], timeout=10)
            memory = sampler.stop()
        finally:
            service.stop()

    assert [a.status for a in acks] == [200] * 5
    assert forged.status == 401
    assert memory.python_together == 1
    # It only acks: nothing is said in Slack beyond Bolt's one auth.test.
    assert {c.method for c in slack.calls()} <= {"auth.test"}


class CuttingServer:
    """Holds connections whose request head never ends; answers 408 to a slow body after
    `after` seconds and closes, as a server with a body read timeout does."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")  # a slow head: waits here until stopped
            await asyncio.sleep(self.after)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    def __enter__(self) -> CuttingServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


@pytest.fixture
def cutting_server() -> Iterator[CuttingServer]:
    with CuttingServer(after=0.5) as server:
        yield server


def test_slow_clients_see_when_and_how_they_are_cut(cutting_server: CuttingServer) -> None:
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    trickler = Trickler(HOST, cutting_server.port, [head] * 3, [b"x" * 100] * 3)
    trickler.start({"header": 3, "body": 3})
    try:
        deadline = time.monotonic() + 5
        while trickler.cut() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # time enough for a wrong cut of the slow heads to show
    finally:
        trickler.stop()

    by_kind = {k: [c for c in trickler.connections if c.kind == k] for k in ("header", "body")}
    assert all(c.opened for c in trickler.connections)
    assert [c.cut_after for c in by_kind["header"]] == [None, None, None]
    assert [c.status for c in by_kind["body"]] == [408, 408, 408]
    assert all(0.4 <= (c.cut_after or 0) < 2.0 for c in by_kind["body"])
    assert all(0.4 <= (c.answered_after or 0) <= (c.cut_after or 0) for c in by_kind["body"])
    assert [c.answered_after for c in by_kind["header"]] == [None, None, None]


def test_the_slow_phase_passes_only_when_every_signed_command_is_answered_within_1_s() -> None:
    from bench.load import Ack

    def result(latencies: list[float], cut: bool) -> SlowResult:
        command = Command("U1", "C1", "image member", "http://x/r")
        signed = [Ack(command, 0.0, latency, 200, b'{"text": "On it"}') for latency in latencies]
        return SlowResult(
            options=SlowOptions(hold=10, headers=1, bodies=1),
            connections=[
                SlowConnection("header", opened=True, cut_after=2.0 if cut else None),
                SlowConnection("body", opened=True, cut_after=2.0, answer=b"HTTP/1.1 408 x"),
            ],
            signed=signed,
            opened_in=0.1,
            lasted=10,
            accepted=[True] * len(signed),
        )

    checks: list[tuple[str, bool]] = []
    text = slow_table(result([0.01, 0.2], cut=True), checks)
    assert all(ok for _, ok in checks), text
    assert "408 x1" in text

    checks = []
    slow_table(result([0.01, 1.2], cut=False), checks)
    assert dict(checks) == {
        "slow connections cut": False,
        "every signed command answered within 1 s": False,
    }


def test_python_processes_are_counted_in_the_whole_tree(tmp_path: Path) -> None:
    # A Python process that starts another Python process and a program that is not Python.
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "subprocess.Popen(['sleep', '30'])\n"
        "time.sleep(30)\n"
    )
    service = Service(
        "tree",
        [sys.executable, "-c", script],
        env=child_env({}),
        cwd=tmp_path,
        log=tmp_path / "tree.log",
    )
    try:
        deadline = time.monotonic() + 10
        # Until both children run their programs (a child is a copy of Python until its exec).
        while time.monotonic() < deadline:
            lines = sorted(command_line(pid) for pid in tree(service.pid))
            child = f"{sys.executable} -c import time; time.sleep(30)"
            if len(lines) == 3 and "sleep 30" in lines and child in lines:
                break
            time.sleep(0.05)
        memory = MemorySampler(service.pid).start().stop()
    finally:
        service.stop(grace=2)

    assert len(memory.processes) == 3
    assert memory.python_together == 2
    assert memory.sum_peak_rss > 0
