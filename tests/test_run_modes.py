"""The real `python -m bot` process, in HTTP mode and in Socket Mode.

The bot runs as an operator starts it (a subprocess, settings in its environment);
the fake Slack and the cloud sandbox run in the test process. Each test looks at what
Slack and the cloud saw, and at how the process tree ends on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp.sandbox import Sandbox
from tests.fakes.slack import FakeSlack, SlackSender
from tests.harness import (
    ACCESS_KEY,
    IMAGE,
    MEMBER,
    SECRET_KEY,
    SECRETS,
    SIGNING_SECRET,
    adds,
)

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0
# A real-looking Slack user id: the CLI (rightly) refuses ids as short as the harness's "U1".
SHARER = "U01SHARER"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a pid reused by someone else
        return True
    return True


def children_of(pid: int) -> list[int]:
    """Live child processes of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


@dataclass
class BotProcess:
    """`python -m bot` started in its own process group, output going to files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr (anything else skipped)."""
        lines = []
        for line in self.stderr.read_text(errors="replace").splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                lines.append(parsed)
        return lines

    def wait_until(self, predicate: Callable[[], Any], what: str, timeout: float) -> Any:
        """Poll `predicate` (a process starting has no event to wait on); fail with the logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the bot exited ({self.process.returncode}) while waiting for {what}:\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")
            time.sleep(0.05)

    def terminate_and_wait(self, timeout: float = 30.0) -> int:
        """SIGTERM the main process, as a service manager does; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@pytest.fixture
def bot_env(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """The environment an operator would give the bot, pointing at the fakes."""
    return {
        **os.environ,  # cleaned of settings by the autouse fixture
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SCP_ENDPOINT": sandbox.url,
        "SCP_ACCESS_KEY": ACCESS_KEY,
        "SCP_SECRET_KEY": SECRET_KEY,
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "PORT": str(free_port()),
        "SHARE_UNKNOWN_MEMBERS": "direct",
    }


@pytest.fixture
def start_bot(bot_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start `python -m bot` (after granting SHARER); every process is gone after the test."""
    started: list[BotProcess] = []

    def start(**env: str) -> BotProcess:
        environment = bot_env | env
        granted = subprocess.run(
            [sys.executable, "-m", "bot", "grant", SHARER, "sharer"],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert granted.returncode == 0, granted
        name = f"bot-{len(started) + 1}"
        stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=tmp_path,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: nothing can escape teardown
            )
        bot = BotProcess(process, stdout, stderr, url=f"http://127.0.0.1:{environment['PORT']}")
        started.append(bot)
        return bot

    yield start
    for bot in started:
        try:
            if bot.process.poll() is None:
                bot.process.send_signal(signal.SIGTERM)
                bot.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if process_group_alive(bot.pid):
                os.killpg(bot.pid, signal.SIGKILL)
            if bot.process.poll() is None:
                bot.process.kill()
            bot.process.wait(10)


def assert_stops_cleanly(bot: BotProcess) -> None:
    """SIGTERM ends the bot with status 0, and no process of its tree is left over."""
    children = children_of(bot.pid)
    assert any(command_line(pid)[-1:] == ["worker"] for pid in children), (
        children,
        [command_line(pid) for pid in children],
    )

    asked = time.monotonic()
    assert bot.terminate_and_wait() == 0, bot.output()
    took = time.monotonic() - asked

    # Well inside gunicorn's 10 s graceful timeout: nothing hung on the way out.
    assert took < 8, f"SIGTERM took {took:.1f}s\n{bot.output()}"
    # The worker was stopped on purpose, not "crashed" and started again during shutdown.
    messages = [str(entry.get("message")) for entry in bot.log_lines()]
    assert "worker stopped, starting it again" not in messages, bot.output()
    assert messages.count("worker started") == 1, messages
    deadline = time.monotonic() + 10
    while process_group_alive(bot.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not process_group_alive(bot.pid), f"left over: {[command_line(p) for p in left]}"
    assert "Traceback" not in bot.output(), bot.output()


def wait_thread_reply(slack: FakeSlack) -> tuple[str, str]:
    """The parent message in C1 and the first reply in its thread."""
    parent = slack.wait_for(
        lambda: next((c for c in slack.messages("C1") if not c.args.get("thread_ts")), None),
        timeout=15,
        what="the parent message in C1",
    )
    assert parent.ts is not None
    ts = parent.ts
    reply = slack.wait_for(lambda: slack.thread(ts), timeout=15, what="a reply in the thread")[0]
    return str(parent.args.get("text", "")), str(reply.args.get("text", ""))


def assert_version_warning(bot: BotProcess) -> None:
    """The worker shouts that 1.1 is deprecated, naming the CURRENT 1.3."""
    line = bot.wait_until(
        lambda: next(
            (
                entry
                for entry in bot.log_lines()
                if "SCP API VERSION PROBLEM" in str(entry.get("message"))
            ),
            None,
        ),
        "the worker's version warning",
        START_TIMEOUT,
    )
    assert line["level"] == "error"
    assert "version 1.1 is DEPRECATED" in line["message"]
    assert "the CURRENT version is 1.3 (set SCP_API_VERSION=1.3)" in line["message"]
    assert (line["configured"], line["current"]) == ("1.1", "1.3")


def assert_no_secrets(bot: BotProcess) -> None:
    printed = bot.output()
    for secret in SECRETS:
        assert secret not in printed


# -- HTTP mode ----------------------------------------------------------------------------


def test_http_mode_serves_a_signed_command_and_stops_on_sigterm(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    bot = start_bot()
    bot.wait_until(
        lambda: _healthy(f"{bot.url}/healthz"), "GET /healthz to answer 200", START_TIMEOUT
    )
    health = httpx.get(f"{bot.url}/healthz", timeout=5)
    assert health.json() == {"ok": True, "database": "ok"}

    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        forged = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER, signature="v0=" + "0" * 64)
        stale = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER, timestamp_offset=-600)
        response = sender.command(f"{IMAGE} {MEMBER} nightly build", user_id=SHARER)

    assert (forged.status_code, stale.status_code) == (401, 401)
    assert response.status_code == 200, response.text
    ack = response.json()
    assert ack["response_type"] == "ephemeral"
    assert ack["text"].startswith(f"On it: sharing image `{IMAGE}` with `{MEMBER}`")

    parent, reply = wait_thread_reply(slack)
    assert parent.startswith(f"<@{SHARER}> asked to share image `{IMAGE}` with `{MEMBER}`")
    assert reply.startswith(f"Shared. `{MEMBER}` is *pending*")
    [add] = adds(sandbox)
    assert (add.signed, add.status, add.member_id) == (True, 200, MEMBER)
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    # The forged and stale commands reached nothing: one parent message, one add.
    assert len([c for c in slack.messages("C1") if not c.args.get("thread_ts")]) == 1

    assert_version_warning(bot)
    assert httpx.get(f"{bot.url}/nowhere", timeout=5).status_code == 404
    assert_stops_cleanly(bot)
    assert_no_secrets(bot)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# -- Socket Mode ----------------------------------------------------------------------------


def test_socket_mode_serves_a_command_and_stops_on_sigterm(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token)
    bot.wait_until(
        lambda: slack.socket_connection_count > 0, "a Socket Mode connection", START_TIMEOUT
    )
    slack.wait_socket_connected()
    # No HTTP server in Socket Mode.
    assert not _healthy(f"{bot.url}/healthz")

    sender = SlackSender("http://127.0.0.1:9/unused", SIGNING_SECRET, fake=slack)
    ack = slack.socket_send(
        "slash_commands",
        sender.command_payload(f"{IMAGE} {MEMBER}", fake=slack, user_id=SHARER),
        timeout=10,
    )

    payload = ack["payload"]
    assert payload["response_type"] == "ephemeral"
    assert payload["text"].startswith(f"On it: sharing image `{IMAGE}` with `{MEMBER}`")
    parent, reply = wait_thread_reply(slack)
    assert parent.startswith(f"<@{SHARER}> asked to share image `{IMAGE}` with `{MEMBER}`")
    assert reply.startswith(f"Shared. `{MEMBER}` is *pending*")
    [add] = adds(sandbox)
    assert (add.signed, add.status) == (True, 200)

    assert_version_warning(bot)
    assert_stops_cleanly(bot)
    assert_no_secrets(bot)
