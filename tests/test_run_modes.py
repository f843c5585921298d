"""The real `python -m bot` process, in HTTP mode and in Socket Mode.

The bot runs as an operator starts it (a subprocess, settings in its environment);
the fake Slack and the cloud sandbox run in the test process. Each test looks at what
Slack and the cloud saw, at the metrics it exports, and at the process tree: ONE Python
process, which ends on SIGTERM, and starts again after SIGKILL.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import cloud_operation
from bot.scp.models import ApiVersion
from bot.scp.sandbox import Sandbox
from tests.command_line import run as run_command
from tests.fakes.slack import Call, FakeSlack, SlackSender
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
# Real-looking Slack user ids: the CLI (rightly) refuses ids as short as the harness's "U1".
SHARER = "U01SHARER"
ASKER = "U01ASKER1"  # a requester: an approver decides
APPROVER = "U01APPROV"
OTHER_MEMBER = "0123456789abcdef0123456789abcdef"


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
        "SHARE_APPROVAL_CHANNEL": "CAPPROVE",
    }


@pytest.fixture
def start_bot(bot_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start `python -m bot` (after granting SHARER, ASKER and APPROVER their roles, the
    first time); every process is gone after the test."""
    started: list[BotProcess] = []

    def start(*args: str, **env: str) -> BotProcess:
        environment = bot_env | env
        if not started:
            for user, role in ((SHARER, "sharer"), (ASKER, "requester"), (APPROVER, "approver")):
                # Set-up, in this process (tests/command_line.py): test_cli starts
                # `python -m bot grant` itself.
                granted = run_command(["grant", user, role], environment, tmp_path)
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


def assert_one_process(bot: BotProcess) -> None:
    """`python -m bot` is one Python process: no child at all (no replica is set)."""
    assert command_line(bot.pid)[1:3] == ["-m", "bot"], command_line(bot.pid)
    children = children_of(bot.pid)
    assert children == [], [command_line(pid) for pid in children]


def assert_stops_cleanly(bot: BotProcess) -> None:
    """SIGTERM ends the bot with status 0 within a platform's grace, nothing left over."""
    assert_one_process(bot)
    asked = time.monotonic()
    assert bot.terminate_and_wait() == 0, bot.output()
    took = time.monotonic() - asked
    # Well inside a platform's usual 10 s: nothing hung on the way out.
    assert took < 8, f"SIGTERM took {took:.1f}s\n{bot.output()}"
    messages = [str(entry.get("message")) for entry in bot.log_lines()]
    assert messages.count("worker started") <= 1, messages
    assert messages[-1:] == ["stopped"], messages
    assert _group_ends(bot.pid), "a process of the bot outlived it"
    assert "Traceback" not in bot.output(), bot.output()


def parent_in(slack: FakeSlack, channel: str, nth: int = 0) -> Call:
    """The `nth` message the bot posted in `channel` outside a thread."""
    return slack.wait_for(
        lambda: (
            [c for c in slack.messages(channel) if not c.args.get("thread_ts")][nth:] or [None]
        )[0],
        timeout=15,
        what=f"parent message {nth} in {channel}",
    )


def replies(slack: FakeSlack, parent: Call, count: int) -> list[str]:
    """The first `count` replies in the parent's thread, once there are that many."""
    assert parent.ts is not None
    ts = parent.ts
    slack.wait_for(lambda: len(slack.thread(ts)) >= count, timeout=15, what=f"{count} replies")
    return [str(c.args.get("text", "")) for c in slack.thread(ts)]


def wait_thread_reply(slack: FakeSlack) -> tuple[str, str]:
    """The parent message in C1 and the first reply in its thread."""
    parent = parent_in(slack, "C1")
    return str(parent.args.get("text", "")), replies(slack, parent, 1)[0]


Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Figures:
    """`GET /metrics`, parsed with prometheus-client's own parser: every sample by name and
    labels."""
    answer = httpx.get(url, timeout=5)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def deltas(before: Figures, after: Figures, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """How each series of `name` moved (series that did not move left out)."""
    moved = {}
    for (sample, labels), value in after.items():
        if sample == name and value != before.get((sample, labels), 0.0):
            moved[labels] = value - before.get((sample, labels), 0.0)
    return moved


def settled(sandbox: Sandbox, slack: FakeSlack) -> tuple[int, int]:
    """Wait until the bot has been quiet towards the cloud and Slack for half a second: the
    marks from which a test counts what it caused."""
    last = (-1, -1)
    while True:
        now = (len(sandbox.records), len(slack.calls()))
        if now == last and all(r.status is not None for r in sandbox.records):
            return now
        last = now
        time.sleep(0.5)


def cloud_since(sandbox: Sandbox, mark: int) -> dict[tuple[tuple[str, str], ...], float]:
    """The cloud requests the sandbox answered since `mark`, as the metric labels them."""
    counted: dict[tuple[tuple[str, str], ...], float] = {}
    for record in sandbox.records[mark:]:
        if record.status is None:
            continue
        key = (
            ("operation", cloud_operation(record.method, record.path)),
            ("status", str(record.status)),
        )
        counted[key] = counted.get(key, 0.0) + 1
    return counted


def slack_since(slack: FakeSlack, mark: int, method: str) -> float:
    return float(len([c for c in slack.calls()[mark:] if c.method == method and c.ok]))


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


# -- a share, an approval and a removal, in both modes ----------------------------------------


class Slack:
    """How a test acts as Slack towards the bot: over HTTP, or through the Socket Mode
    connection; either way, what the ack said."""

    def __init__(self, slack: FakeSlack, url: str | None) -> None:
        self.fake = slack
        self.url = url
        self.sender = SlackSender(
            f"{url or 'http://127.0.0.1:9'}/slack/events", SIGNING_SECRET, fake=slack
        )

    def command(self, text: str, *, user: str, channel: str) -> dict[str, Any]:
        if self.url is not None:
            response = self.sender.command(text, user_id=user, channel_id=channel)
            assert response.status_code == 200, response.text
            return dict(response.json()) if response.content else {}
        payload = self.sender.command_payload(
            text, fake=self.fake, user_id=user, channel_id=channel
        )
        return dict(
            self.fake.socket_send("slash_commands", payload, timeout=10).get("payload") or {}
        )

    def click(self, message: Call, action: str, *, user: str) -> None:
        if self.url is not None:
            assert self.sender.click(message, action, user_id=user).status_code == 200
            return
        payload = self.sender.click_payload(message, action, user_id=user, fake=self.fake)
        self.fake.socket_send("interactive", payload, timeout=10)

    def close(self) -> None:
        self.sender.close()


def share_approve_remove(slack: Slack, sandbox: Sandbox) -> None:
    """A direct share, a share an approver approves, and a removal, each seen through to the
    cloud and to its thread."""
    ack = slack.command(f"{IMAGE} {MEMBER} nightly build", user=SHARER, channel="C1")
    assert ack["text"].startswith(f"On it: sharing image `{IMAGE}` with `{MEMBER}`")
    shared = parent_in(slack.fake, "C1")
    assert str(shared.args["text"]).startswith(
        f"<@{SHARER}> asked to share image `{IMAGE}` with `{MEMBER}`"
    )
    assert replies(slack.fake, shared, 1)[0].startswith(
        f"Shared: `{MEMBER}` can use the image now. It is *pending*"
    )

    ack = slack.command(f"{IMAGE} {OTHER_MEMBER} QA run", user=ASKER, channel="C2")
    assert ack["text"].startswith("This needs an approver's OK"), ack
    card = parent_in(slack.fake, "CAPPROVE")
    asked = parent_in(slack.fake, "C2")
    # The asker is told once the card is posted and recorded: a click is about it from then.
    assert replies(slack.fake, asked, 1)[0].startswith("This needs approval")
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]  # nothing before approval
    slack.click(card, "approve", user=APPROVER)
    thread = replies(slack.fake, asked, 3)
    assert thread[1] == f"Approved by <@{APPROVER}>. Working on it now."
    assert thread[2].startswith(f"Shared: `{OTHER_MEMBER}` can use the image now.")

    ack = slack.command(f"unshare {IMAGE} {MEMBER}", user=SHARER, channel="C1")
    assert ack.get("response_type") == "ephemeral", ack
    removed = parent_in(slack.fake, "C1", 1)
    replies(slack.fake, removed, 1)
    assert [m.member_id for m in sandbox.members(IMAGE)] == [OTHER_MEMBER]
    assert sorted(r.member_id or "" for r in adds(sandbox)) == sorted([MEMBER, OTHER_MEMBER])
    assert [r.member_id for r in sandbox.records if r.method == "DELETE"] == [MEMBER]


def assert_counted(
    before: Figures,
    after: Figures,
    sandbox: Sandbox,
    slack: FakeSlack,
    marks: tuple[int, int],
    requests: int,
) -> None:
    """The figures moved by exactly what the sandbox and the fake Slack saw."""
    assert deltas(before, after, "share_image_commands_total") == {
        (("kind", "share"), ("outcome", "queued")): 1,
        (("kind", "share"), ("outcome", "approval")): 1,
        (("kind", "unshare"), ("outcome", "queued")): 1,
    }
    assert deltas(before, after, "share_image_ack_seconds_count") == {(): requests}
    assert deltas(before, after, "share_image_cloud_requests_total") == cloud_since(
        sandbox, marks[0]
    )
    for method in ("chat.postMessage", "chat.update"):
        labels = (("error", "ok"), ("method", method))
        moved = deltas(before, after, "share_image_slack_calls_total").get(labels, 0.0)
        assert moved == slack_since(slack, marks[1], method), method
    assert deltas(before, after, "share_image_events_refused_total") == {}
    # Kept at 0 for the alert rules that name them: nothing restarts a worker now.
    assert after[("share_image_worker_restarts_total", ())] == 0
    assert after[("share_image_worker_handovers_total", ())] == 0


def recorded(url: str) -> float:
    """Requests in the database, as the metrics count them by state (read at most 5 s ago)."""
    return sum(v for (name, _), v in scrape(url).items() if name == "share_image_requests")


def test_http_mode_is_one_process_that_shares_approves_removes_and_counts_it(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    bot = start_bot()
    wait_healthy(bot)
    assert httpx.get(f"{bot.url}/healthz", timeout=5).json() == {"ok": True, "database": "ok"}
    assert_one_process(bot)
    assert_version_ok(bot)
    marks = settled(sandbox, slack)
    before = scrape(f"{bot.url}/metrics")

    acting = Slack(slack, bot.url)
    try:
        share_approve_remove(acting, sandbox)
        settled(sandbox, slack)
        after = scrape(f"{bot.url}/metrics")
        assert_counted(before, after, sandbox, slack, marks, requests=4)

        # Forged and stale requests reach nothing, and are counted as refused.
        forged = acting.sender.command(
            f"{IMAGE} {MEMBER}", user_id=SHARER, signature="v0=" + "0" * 64
        )
        stale = acting.sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER, timestamp_offset=-600)
        assert (forged.status_code, stale.status_code) == (401, 401)
    finally:
        acting.close()
    refused = deltas(after, scrape(f"{bot.url}/metrics"), "share_image_events_refused_total")
    assert refused == {(("status", "401"),): 2}
    assert httpx.get(f"{bot.url}/nowhere", timeout=5).status_code == 404
    bot.wait_until(lambda: recorded(f"{bot.url}/metrics") == 3, "3 requests counted", 15)
    assert_stops_cleanly(bot)
    assert_quiet(bot)
    assert_no_secrets(bot)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_socket_mode_is_one_process_that_shares_approves_removes_and_counts_it(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    metrics_port = free_port()
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token, METRICS_PORT=str(metrics_port))
    bot.wait_until(
        lambda: slack.socket_connection_count > 0, "a Socket Mode connection", START_TIMEOUT
    )
    slack.wait_socket_connected()
    # No Slack endpoint over HTTP in Socket Mode: only the metrics, on METRICS_PORT.
    assert not _healthy(f"{bot.url}/healthz")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    bot.wait_until(lambda: _healthy(metrics_url), "GET /metrics on METRICS_PORT", START_TIMEOUT)
    assert_one_process(bot)
    connected = [e for e in bot.log_lines() if e.get("mode") == "socket"]
    assert len(connected) == 1, bot.output()
    marks = settled(sandbox, slack)
    before = scrape(metrics_url)

    acting = Slack(slack, None)
    try:
        share_approve_remove(acting, sandbox)
    finally:
        acting.close()
    settled(sandbox, slack)
    assert_counted(before, scrape(metrics_url), sandbox, slack, marks, requests=4)
    bot.wait_until(lambda: recorded(metrics_url) == 3, "3 requests counted", 15)
    assert_stops_cleanly(bot)
    assert_quiet(bot)
    assert_no_secrets(bot)


def test_socket_mode_says_how_much_the_api_version_should_worry(
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
    line = version_line(bot)
    assert line["level"] == "warning"
    assert line["message"] == (
        f"SCP API version deprecated, still served: version 1.1 is DEPRECATED (served at least"
        f" until {guaranteed}); the CURRENT version is 1.3 (set SCP_API_VERSION=1.3)"
    )
    assert (line["configured"], line["current"], line["not_before"]) == ("1.1", "1.3", guaranteed)
    bot.wait_until(lambda: slack.socket_connection_count > 0, "a connection", START_TIMEOUT)
    assert_stops_cleanly(bot)


# -- SIGKILL, and a start after it ------------------------------------------------------------


def test_after_sigkill_the_bot_starts_again_on_its_database_and_goes_on(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    bot = start_bot()
    wait_healthy(bot)
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER).status_code == 200
    wait_thread_reply(slack)

    bot.process.send_signal(signal.SIGKILL)
    assert bot.process.wait(10) == -signal.SIGKILL
    assert _group_ends(bot.pid)

    again = start_bot()  # the lock went with the process: no "already running"
    wait_healthy(again)
    assert_one_process(again)
    with SlackSender(f"{again.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        duplicate = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER)
        assert duplicate.status_code == 200
        assert "#1" in duplicate.json()["text"]  # the first share, remembered
        assert sender.command(f"unshare {IMAGE} {MEMBER}", user_id=SHARER).status_code == 200
    again.wait_until(lambda: sandbox.members(IMAGE) == [], "the removal", START_TIMEOUT)
    assert [r.member_id for r in adds(sandbox)] == [MEMBER]  # never sent twice
    assert_stops_cleanly(again)
    assert_quiet(again)


def test_a_recycle_setting_left_in_the_env_is_named_once_and_ignored(
    start_bot: Callable[..., BotProcess],
) -> None:
    bot = start_bot(BOT_WORKER_RECYCLE_MB="8")
    wait_healthy(bot)
    named = [e for e in bot.log_lines() if "BOT_WORKER_RECYCLE_MB" in str(e.get("message"))]
    assert [e["level"] for e in named] == ["warning"], bot.output()
    assert "does nothing now" in named[0]["message"]
    assert_stops_cleanly(bot)


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
    # Refused before anything: no Slack call, no server on its port.
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
    # `serve` starts no worker of its own, and neither starts a child.
    assert "worker started" not in server.output()
    assert children_of(server.pid) == [] and children_of(worker.pid) == []

    with SlackSender(f"{server.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        response = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER)

    assert response.status_code == 200, response.text
    _, reply = wait_thread_reply(slack)
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    assert server.terminate_and_wait() == 0
    assert worker.terminate_and_wait() == 0
    assert_quiet(server)
    assert_quiet(worker)


# -- the start's word on the API version -----------------------------------------------------


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

    took = stop_like_a_terminal(bot, signum)

    assert took < 8, f"took {took:.1f}s\n{bot.output()}"
    assert_quiet(bot)
    assert _group_ends(bot.pid)


def test_a_stop_lets_a_request_under_way_finish(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    """SIGTERM while the cloud takes 3 s to answer an add: the add is answered and the
    thread told, within the grace, and the process exits in time."""
    bot = start_bot()
    wait_healthy(bot)
    sandbox.delay = 3.0
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER).status_code == 200
    bot.wait_until(lambda: adds(sandbox), "the add to reach the cloud", START_TIMEOUT)

    asked = time.monotonic()
    assert bot.terminate_and_wait() == 0, bot.output()
    assert time.monotonic() - asked < 9
    assert [(r.member_id, r.status) for r in adds(sandbox)] == [(MEMBER, 200)]
    _, reply = wait_thread_reply(slack)
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now.")
    assert_quiet(bot)


def test_socket_mode_stops_quietly_on_ctrl_c(
    start_bot: Callable[..., BotProcess], slack: FakeSlack
) -> None:
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token)
    bot.wait_until(lambda: slack.socket_connection_count > 0, "a connection", START_TIMEOUT)
    bot.wait_until(lambda: "worker started" in bot.output(), "the worker", START_TIMEOUT)

    took = stop_like_a_terminal(bot, signal.SIGINT)

    assert took < 8, f"took {took:.1f}s\n{bot.output()}"
    assert_quiet(bot)
    assert _group_ends(bot.pid)


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
