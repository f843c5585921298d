"""The bot's peers for the benchmark: the fake Slack Web API and the cloud API sandbox.

By default they run in a helper process (`python -m bench.fakes --delay 1.0 --images 100`), so that
neither they nor the load generator wait on the other's GIL. The helper prints its
endpoints as one JSON line, then answers one JSON line per request read on stdin:

    {"op": "snapshot", "since": T}                       -> a Snapshot
    {"op": "wait_replies", "count": N, "since": T, "timeout": S}
    {"op": "wait_quiet", "quiet": S, "timeout": S}
    {"op": "quit"}

`LocalFakes` is the same thing inside the calling process (`--fakes inline`).

The sandbox serves every image id it is asked about (an image made up on first use is
Shared), and lists `--images` named Shared images of its own: commands that use those
are shares of images the bot's stored image list knows, as most shares are.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from bot.scp.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Sandbox
from tests.fakes.slack import FakeSlack

ACCESS_KEY = DEFAULT_ACCESS_KEY
SECRET_KEY = DEFAULT_SECRET_KEY
BOT_TOKEN = "xoxb-bench-bot-token"
POLL = 0.02


@dataclass(frozen=True)
class Endpoints:
    """Where the fakes listen."""

    slack_api_url: str  # for SLACK_API_URL, ends in /api/
    slack_base_url: str  # response_url endpoints live under it
    bot_token: str
    sandbox_url: str  # for SCP_ENDPOINT
    images: list[str] = field(default_factory=list)  # listed Shared images, named


@dataclass(frozen=True)
class Snapshot:
    """What the fakes have received so far (totals), and the thread replies since a moment."""

    slack_calls: dict[str, int]
    cloud_calls: dict[str, int]
    reply_times: list[float]  # time.time() of each accepted thread reply since `since`
    taken_at: float
    posts_twice: int = 0  # members the cloud received more than one whole add for

    @property
    def slack_total(self) -> int:
        """Every Web API call."""
        return sum(self.slack_calls.values())

    @property
    def cloud_total(self) -> int:
        """Every cloud API request."""
        return sum(self.cloud_calls.values())


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per-method counts made between two snapshots (methods with none left out)."""
    names = sorted(set(before) | set(after))
    counts = {name: after.get(name, 0) - before.get(name, 0) for name in names}
    return {name: count for name, count in counts.items() if count}


class Fakes(Protocol):
    """The fakes, wherever they run."""

    endpoints: Endpoints
    pid: int  # the process serving them (this one when inline)

    def add_users(self, users: Sequence[str]) -> None:
        """Make `users` people of the workspace, as Slack knows them (`users.info` answers
        for them, in English), so the bot asks about each once, as it would in real life."""
        ...

    def snapshot(self, since: float = 0.0) -> Snapshot:
        """Totals now, with the thread replies at or after `since`."""
        ...

    def wait_replies(self, count: int, since: float, timeout: float) -> Snapshot:
        """Wait until `count` thread replies arrived at or after `since` (or `timeout`)."""
        ...

    def wait_quiet(self, quiet: float, timeout: float) -> Snapshot:
        """Wait until no call arrived for `quiet` seconds (or `timeout`)."""
        ...

    def close(self) -> None:
        """Stop serving."""
        ...


class LocalFakes:
    """FakeSlack and the sandbox (open images, a fixed delay) in this process."""

    def __init__(self, delay: float, images: int = 0) -> None:
        self.pid = os.getpid()
        # Connections kept between calls, as Slack keeps them: a new connection for each
        # call would charge the bot a connect and a close that it does not pay against Slack.
        self.slack = FakeSlack(
            bot_token=BOT_TOKEN, socket_ping_interval=None, keep_alive=True
        ).start()
        try:
            # Shared images, as an account that shares every day has them: the bench measures
            # the share itself, not the one-time change of a private image to Shared.
            self.sandbox = Sandbox(
                ACCESS_KEY, SECRET_KEY, open_images=True, open_visibility="shared", delay=delay
            ).start()
        except BaseException:
            self.slack.stop()
            raise
        listed = [
            self.sandbox.add_image(
                str(uuid.uuid4()), name=f"bench-image-{i:03d}", visibility="shared"
            ).id
            for i in range(images)
        ]
        self.endpoints = Endpoints(
            slack_api_url=self.slack.api_url,
            slack_base_url=self.slack.base_url,
            bot_token=BOT_TOKEN,
            sandbox_url=self.sandbox.url,
            images=listed,
        )

    def add_users(self, users: Sequence[str]) -> None:
        for user in users:
            self.slack.set_locale(user, "en-US")

    def snapshot(self, since: float = 0.0) -> Snapshot:
        calls = self.slack.calls()
        replies = sorted(
            c.time
            for c in calls
            if c.method == "chat.postMessage" and c.ok and c.args.get("thread_ts")
            if c.time >= since
        )
        records = self.sandbox.records
        # A whole add names its member; a POST cut off before its body added nobody.
        adds = Counter(r.member_id for r in records if r.method == "POST" and r.member_id)
        return Snapshot(
            slack_calls=dict(Counter(c.method for c in calls)),
            cloud_calls=dict(Counter(r.method for r in records)),
            reply_times=replies,
            taken_at=time.time(),
            posts_twice=sum(1 for count in adds.values() if count > 1),
        )

    def wait_replies(self, count: int, since: float, timeout: float) -> Snapshot:
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot(since)
            if len(snap.reply_times) >= count or time.monotonic() >= deadline:
                return snap
            time.sleep(POLL)

    def wait_quiet(self, quiet: float, timeout: float) -> Snapshot:
        deadline = time.monotonic() + timeout
        last = self.snapshot()
        settled_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(POLL)
            now = self.snapshot()
            if (now.slack_total, now.cloud_total) != (last.slack_total, last.cloud_total):
                last, settled_since = now, time.monotonic()
            elif time.monotonic() - settled_since >= quiet:
                break
        return last

    def close(self) -> None:
        self.sandbox.stop()
        self.slack.stop()


class HelperFakes:
    """`LocalFakes` in a child process (its own session), driven over stdin/stdout."""

    def __init__(
        self,
        delay: float,
        *,
        env: dict[str, str],
        log: Path,
        images: int = 0,
        start_timeout: float = 20.0,
    ) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fakes", "--delay", str(delay), "--images", str(images)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
        )
        self.pid = self.process.pid
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin: IO[bytes] = self.process.stdin
        self._stdout = self.process.stdout.fileno()
        self._buffer = b""
        try:
            self.endpoints = Endpoints(**self._read(start_timeout))
        except BaseException:
            self.close()
            raise

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the fakes helper did not answer within {timeout:.0f}s")
                if selector.select(remaining):
                    chunk = os.read(self._stdout, 65536)
                    if not chunk:
                        raise RuntimeError(
                            f"the fakes helper exited ({self.process.poll()}); see {self._log.name}"
                        )
                    self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        self._stdin.write(json.dumps(request).encode() + b"\n")
        self._stdin.flush()
        return self._read(timeout)

    def add_users(self, users: Sequence[str]) -> None:
        self._ask({"op": "add_users", "users": list(users)}, 10.0)

    def snapshot(self, since: float = 0.0) -> Snapshot:
        return Snapshot(**self._ask({"op": "snapshot", "since": since}, 10.0))

    def wait_replies(self, count: int, since: float, timeout: float) -> Snapshot:
        request = {"op": "wait_replies", "count": count, "since": since, "timeout": timeout}
        return Snapshot(**self._ask(request, timeout + 10.0))

    def wait_quiet(self, quiet: float, timeout: float) -> Snapshot:
        request = {"op": "wait_quiet", "quiet": quiet, "timeout": timeout}
        return Snapshot(**self._ask(request, timeout + 10.0))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._stdin.write(b'{"op": "quit"}\n')
                self._stdin.flush()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            # Its own session: the group is the helper and nothing else.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self._stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def serve_helper(delay: float, images: int) -> None:
    """The helper process: serve, and answer requests on stdin until it closes."""
    fakes = LocalFakes(delay, images)
    out = sys.stdout

    def say(data: dict[str, Any]) -> None:
        out.write(json.dumps(data) + "\n")
        out.flush()

    try:
        say(asdict(fakes.endpoints))
        for line in sys.stdin:
            request = json.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            if op == "add_users":
                fakes.add_users([str(user) for user in request["users"]])
                say({"added": len(request["users"])})
            elif op == "snapshot":
                say(asdict(fakes.snapshot(float(request.get("since", 0.0)))))
            elif op == "wait_replies":
                snap = fakes.wait_replies(
                    int(request["count"]), float(request["since"]), float(request["timeout"])
                )
                say(asdict(snap))
            elif op == "wait_quiet":
                say(asdict(fakes.wait_quiet(float(request["quiet"]), float(request["timeout"]))))
            else:
                say({"error": f"unknown op {op!r}"})
    finally:
        fakes.close()


def main() -> None:
    """`python -m bench.fakes`."""
    parser = argparse.ArgumentParser(prog="python -m bench.fakes", description=__doc__)
    parser.add_argument("--delay", type=float, default=1.0, help="cloud API delay, seconds")
    parser.add_argument("--images", type=int, default=0, help="named Shared images to list")
    args = parser.parse_args()
    serve_helper(args.delay, args.images)


if __name__ == "__main__":
    main()
