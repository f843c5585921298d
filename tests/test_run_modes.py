"""The real `python -m bot` process, in HTTP mode and in Socket Mode.

The bot runs as an operator starts it (a subprocess, settings in its environment);
the fake Slack and the cloud sandbox run in the test process. Each test looks at what
Slack and the cloud saw, and at how the process tree ends on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp.models import ApiVersion
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

    def start(*args: str, **env: str) -> BotProcess:
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
                [sys.executable, "-m", "bot", *args],
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


def version_line(bot: BotProcess) -> dict[str, Any]:
    """The worker's start-up word on the cloud API version."""
    return bot.wait_until(
        lambda: next(
            (
                entry
                for entry in bot.log_lines()
                if "API version" in str(entry.get("message"))
                or "API VERSION" in str(entry.get("message"))
            ),
            None,
        ),
        "the worker's version line",
        START_TIMEOUT,
    )


def assert_version_ok(bot: BotProcess) -> None:
    """The documented default, 1.1, is the sandbox's CURRENT version: nothing to worry about."""
    line = version_line(bot)
    assert (line["level"], line["message"], line["version"]) == (
        "info",
        "cloud API version ok",
        "1.1",
    )


def assert_quiet(bot: BotProcess) -> None:
    """Nothing logged as an error, by the bot or by gunicorn."""
    loud = [e for e in bot.log_lines() if e.get("level") in {"error", "critical"}]
    assert loud == [], bot.output()
    for text in ("[ERROR]", "SIGKILL", "Traceback"):
        assert text not in bot.output(), bot.output()


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
    # The process started is the same one, now the small supervisor: neither the
    # settings class (pydantic's compiled core) nor the app is loaded in it.
    assert command_line(bot.pid)[1:] == ["-m", "bot.supervisor"]
    loaded = Path(f"/proc/{bot.pid}/maps").read_text()
    assert "pydantic_core" not in loaded and "_sqlite3" not in loaded

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
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    [add] = adds(sandbox)
    assert (add.signed, add.status, add.member_id) == (True, 200, MEMBER)
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    # The forged and stale commands reached nothing: one parent message, one add.
    assert len([c for c in slack.messages("C1") if not c.args.get("thread_ts")]) == 1

    assert_version_ok(bot)
    assert httpx.get(f"{bot.url}/nowhere", timeout=5).status_code == 404
    assert_stops_cleanly(bot)
    assert_quiet(bot)
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
    # The late-2026 list: 1.1 deprecated, but still guaranteed for a while.
    guaranteed = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    sandbox.versions = [
        ApiVersion(id="v1.3", status="CURRENT", not_before="2026-03-01"),
        ApiVersion(id="v1.2", status="SUPPORTED", not_before=guaranteed),
        ApiVersion(id="v1.1", status="DEPRECATED", not_before=guaranteed),
    ]
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
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    [add] = adds(sandbox)
    assert (add.signed, add.status) == (True, 200)

    line = version_line(bot)
    assert line["level"] == "warning"
    assert line["message"] == (
        f"SCP API version deprecated, still served: version 1.1 is DEPRECATED (served at least"
        f" until {guaranteed}); the CURRENT version is 1.3 (set SCP_API_VERSION=1.3)"
    )
    assert (line["configured"], line["current"], line["not_before"]) == ("1.1", "1.3", guaranteed)
    assert_stops_cleanly(bot)
    assert_no_secrets(bot)


# -- one bot per database ---------------------------------------------------------------------


def run_once(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start prints; nothing else, no traceback."""
    assert done.returncode != 0, done
    assert done.stdout == "" and "Traceback" not in done.stderr, done
    assert done.stderr.count("\n") == 1, done
    return done.stderr.strip()


def wait_healthy(bot: BotProcess) -> None:
    bot.wait_until(lambda: _healthy(f"{bot.url}/healthz"), "GET /healthz to answer 200", 30)


def test_a_second_bot_on_the_same_database_refuses_at_once(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, bot_env: dict[str, str], tmp_path: Path
) -> None:
    first = start_bot()
    wait_healthy(first)
    asked = len(slack.calls("auth.test"))
    other_port = free_port()

    began = time.monotonic()
    second = run_once(bot_env | {"PORT": str(other_port)}, tmp_path)
    took = time.monotonic() - began

    database = bot_env["DATABASE_PATH"]
    assert refusal(second) == (
        f"share-image-bot cannot start: another bot is already running on {database}"
        f" (process {first.pid} holds the lock file {database}.lock); stop it first, or give"
        " this one its own DATABASE_PATH"
    )
    assert took < 10
    # Refused before anything: no Slack call, no server on its port, no worker restarting.
    assert len(slack.calls("auth.test")) == asked
    assert not _healthy(f"http://127.0.0.1:{other_port}/healthz")
    assert Path(f"{database}.lock").read_text() == f"{first.pid}\n"
    # A worker alone is refused too: the bot holds the worker lock for its own worker.
    assert refusal(run_once(bot_env, tmp_path, "worker")) == (
        f"share-image-bot cannot start: another worker is already running on {database}"
        f" (process {first.pid} holds the lock file {database}.worker.lock); stop it first,"
        " or give this one its own DATABASE_PATH"
    )
    # The first one never noticed.
    wait_healthy(first)
    messages = [str(e.get("message")) for e in first.log_lines()]
    assert messages.count("worker started") == 1, first.output()
    assert_stops_cleanly(first)


def test_the_bot_refuses_to_start_beside_a_worker_of_its_own(
    start_bot: Callable[..., BotProcess], bot_env: dict[str, str], tmp_path: Path
) -> None:
    worker = start_bot("worker")
    worker.wait_until(
        lambda: "worker started" in worker.output(), "the worker to start", START_TIMEOUT
    )

    done = run_once(bot_env | {"PORT": str(free_port())}, tmp_path)

    database = bot_env["DATABASE_PATH"]
    assert refusal(done) == (
        f"share-image-bot cannot start: another worker is already running on {database}"
        f" (process {worker.pid} holds the lock file {database}.worker.lock); stop it first,"
        " or give this one its own DATABASE_PATH"
    )
    assert worker.process.poll() is None
    assert worker.terminate_and_wait() == 0


def test_serve_and_worker_started_separately_work_together(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    server = start_bot("serve")
    wait_healthy(server)
    worker = start_bot("worker")
    worker.wait_until(
        lambda: "worker started" in worker.output(), "the worker to start", START_TIMEOUT
    )
    # `serve` starts no worker of its own.
    assert not any(command_line(pid)[-1:] == ["worker"] for pid in children_of(server.pid))

    with SlackSender(f"{server.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        response = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER)

    assert response.status_code == 200, response.text
    _, reply = wait_thread_reply(slack)
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    assert server.terminate_and_wait() == 0
    assert worker.terminate_and_wait() == 0
    assert_quiet(server)
    assert_quiet(worker)


def test_a_worker_that_crashed_is_started_again_with_the_bots_lock(
    start_bot: Callable[..., BotProcess],
) -> None:
    bot = start_bot()
    bot.wait_until(lambda: "worker started" in bot.output(), "the worker", START_TIMEOUT)
    [worker] = [pid for pid in children_of(bot.pid) if command_line(pid)[-1:] == ["worker"]]

    os.kill(worker, signal.SIGKILL)

    bot.wait_until(
        lambda: [str(e.get("message")) for e in bot.log_lines()].count("worker started") == 2,
        "the worker to be started again",
        START_TIMEOUT,
    )
    messages = [str(e.get("message")) for e in bot.log_lines()]
    assert messages.count("worker stopped, starting it again") == 1
    assert not any("already running" in m for m in messages), bot.output()
    assert "already running" not in bot.output()


# -- the worker's word on the API version ----------------------------------------------------


@pytest.mark.parametrize(
    ("version", "level", "message"),
    [
        ("1.1", "info", "cloud API version ok"),
        (
            "1.0",
            "error",
            "SCP API VERSION MAY STOP WORKING ANY DAY: version 1.0 is DEPRECATED and its minimum"
            " support date, 2025-12-31, has passed: it may stop being served any day; the CURRENT"
            " version is 1.1 (set SCP_API_VERSION=1.1)",
        ),
        (
            "1.3",
            "critical",
            "SCP API VERSION NOT SERVED, every request will be refused: version 1.3 is not"
            " served; the CURRENT version is 1.1 (set SCP_API_VERSION=1.1)",
        ),
    ],
)
def test_the_worker_says_how_much_the_api_version_should_worry(
    start_bot: Callable[..., BotProcess], version: str, level: str, message: str
) -> None:
    worker = start_bot("worker", SCP_API_VERSION=version)

    line = version_line(worker)

    assert (line["level"], line["message"]) == (level, message)
    assert worker.terminate_and_wait() == 0


# -- clean stops ------------------------------------------------------------------------------


def gunicorn_worker(bot: BotProcess) -> int:
    """gunicorn's worker: the child forked from the bot (same command line, not `worker`)."""
    [pid] = [p for p in children_of(bot.pid) if command_line(p) == command_line(bot.pid)]
    return pid


def ignored_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn for {pid}")


def stop_like_a_terminal(bot: BotProcess, signum: signal.Signals) -> float:
    """Send `signum` to every process of the bot at once, as Ctrl-C or a service manager does."""
    asked = time.monotonic()
    os.killpg(bot.pid, signum)
    assert bot.process.wait(30) == 0, bot.output()
    return time.monotonic() - asked


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_http_mode_stops_quietly_when_every_process_gets_the_signal(
    start_bot: Callable[..., BotProcess], signum: signal.Signals
) -> None:
    bot = start_bot()
    wait_healthy(bot)
    bot.wait_until(lambda: "worker started" in bot.output(), "the worker", START_TIMEOUT)
    # Only the arbiter takes Ctrl-C; it stops its worker with SIGQUIT. A gunicorn worker
    # taking the terminal's SIGINT as well sometimes deadlocked and was SIGKILLed 10 s on.
    assert ignored_signals(gunicorn_worker(bot)) & (1 << (signal.SIGINT - 1))

    took = stop_like_a_terminal(bot, signum)

    assert took < 8, f"took {took:.1f}s\n{bot.output()}"
    messages = [str(e.get("message")) for e in bot.log_lines()]
    assert "worker stopped, starting it again" not in messages, bot.output()
    assert not any("stopped by a signal" in m for m in messages), bot.output()
    assert_quiet(bot)
    assert not process_group_alive(bot.pid) or _group_ends(bot.pid)


def test_ctrl_c_stops_the_gunicorn_worker_gracefully(start_bot: Callable[..., BotProcess]) -> None:
    """On Ctrl-C gunicorn's worker stops as on SIGTERM: it answers what a kept-alive client
    is already sending, then closes. Its quick-quit handler, which exited at once, shut its
    thread pool down inside the signal handler and could deadlock (SIGKILLed 10 s later)
    when the signal landed while it started a thread for a new connection.
    """
    bot = start_bot()
    wait_healthy(bot)
    connection = http.client.HTTPConnection("127.0.0.1", int(bot.url.rsplit(":", 1)[1]), timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        assert (first.status, first.read()) == (200, b'{"ok": true, "database": "ok"}')

        os.killpg(bot.pid, signal.SIGINT)
        time.sleep(0.5)  # long after a quick quit would have exited
        connection.request("GET", "/healthz")
        second = connection.getresponse()
        assert (second.status, second.getheader("Connection"), second.read()) == (
            200,
            "close",
            b'{"ok": true, "database": "ok"}',
        )
    finally:
        connection.close()
    assert bot.process.wait(30) == 0, bot.output()
    assert_quiet(bot)


def test_the_plan_reaches_the_supervisor_whole(tmp_path: Path) -> None:
    from bot.processes import Lock
    from bot.supervisor import Plan

    database = tmp_path / "bot.db"
    plan = Plan(
        port=8123,
        database=database,
        locks=(Lock(tmp_path / "bot.db.lock", 7), Lock(tmp_path / "bot.db.worker.lock", 8)),
        with_worker=True,
        secrets=("xoxb-secret", "signing-secret"),
    )
    assert Plan.decode(plan.encode()) == plan
    bare = Plan(8123, database, (), with_worker=False, secrets=())
    assert Plan.decode(bare.encode()) == bare


def test_the_supervisor_refuses_to_start_by_hand(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.supervisor"],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "started by `python -m bot`, not by hand" in done.stderr


def test_the_gunicorn_worker_stops_gracefully_whatever_the_signal() -> None:
    from bot.processes import graceful_gunicorn_worker

    def graceful(signum: int, frame: object) -> None:
        pass

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)}
    try:
        signal.signal(signal.SIGTERM, graceful)
        graceful_gunicorn_worker()
        assert signal.getsignal(signal.SIGQUIT) is graceful
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_socket_mode_stops_quietly_on_ctrl_c(
    start_bot: Callable[..., BotProcess], slack: FakeSlack
) -> None:
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token)
    bot.wait_until(lambda: slack.socket_connection_count > 0, "a connection", START_TIMEOUT)
    bot.wait_until(lambda: "worker started" in bot.output(), "the worker", START_TIMEOUT)

    took = stop_like_a_terminal(bot, signal.SIGINT)

    assert took < 8, f"took {took:.1f}s\n{bot.output()}"
    assert "worker stopped, starting it again" not in bot.output()
    assert_quiet(bot)
    assert not process_group_alive(bot.pid) or _group_ends(bot.pid)


def _group_ends(pgid: int) -> bool:
    deadline = time.monotonic() + 10
    while process_group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_no_bolt_warning_about_an_unused_token_at_start(
    start_bot: Callable[..., BotProcess],
) -> None:
    bot = start_bot()
    wait_healthy(bot)

    assert "will be unused" not in bot.output()
    warnings = [e for e in bot.log_lines() if e.get("level") == "warning"]
    assert warnings == [], warnings
