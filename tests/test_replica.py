"""A database that survives its host: the real `python -m bot` under `litestream replicate
-exec`, replicating to a real S3-compatible server on 127.0.0.1 (moto's) and to a
`file://` folder.

Each host is a folder of its own; a host that is gone is a folder deleted. The bot runs as
an operator starts it (the process started is Litestream, the bot its child); the fake
Slack, the cloud sandbox and the object store run in the test process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import moto.server as moto_server
import pytest

from bot.replica import (
    REACH_SECONDS,
    UNDER_LITESTREAM,
    Litestream,
    ReplicaConfig,
    ReplicaError,
    litestream_binary,
    litestream_environment,
    litestream_exec,
    replica_lock,
    restore_if_missing,
    url_problem,
)
from bot.scp.models import MemberStatus
from bot.scp.sandbox import Fault, Sandbox
from tests.fakes.slack import Call, FakeSlack, SlackSender
from tests.harness import ACCESS_KEY, IMAGE, SECRET_KEY, SECRETS, SIGNING_SECRET
from tests.test_run_modes import BotProcess, children_of

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0
ADMIN, SHARER, REQUESTER, APPROVER = "U0ADMIN01", "U0SHARE01", "U0ASKER01", "U0APPROVE1"
S3_KEY, S3_SECRET = "AKIAREPLICATEST01", "replica-secret-key-0123456789"


# -- processes (from /proc: what `ps` shows) ----------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree(pid: int) -> list[int]:
    """`pid` and every live process under it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children_of(current))
    return found


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (part.decode().partition("=") for part in raw.split(b"\0") if part)
    return {name: value for name, _, value in pairs}


def is_python(pid: int) -> bool:
    return "python" in Path(command_line(pid)[0]).name if command_line(pid) else False


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the replica, two ways ----------------------------------------------------------------


@dataclass
class Store:
    """A replica the bots share: its settings, and a way to look inside it."""

    settings: dict[str, str]
    config: Callable[[Path], ReplicaConfig]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 on 127.0.0.1, threaded, on a free port."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _bucket(endpoint: str, name: str) -> None:
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=name)


@pytest.fixture(params=["s3", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        folder = tmp_path / "replica"
        folder.mkdir()
        url = f"file://{folder}"
        settings = {"DATABASE_REPLICA_URL": url}
        return Store(settings, lambda db: ReplicaConfig(url, "", db))
    endpoint: str = request.getfixturevalue("s3_server")
    bucket = f"bot-{request.node.name.split('[')[0][-20:].replace('_', '-')}-{time.time_ns()}"
    _bucket(endpoint, bucket)
    url = f"s3://{bucket}/share-image-bot"
    settings = {
        "DATABASE_REPLICA_URL": url,
        "DATABASE_REPLICA_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }
    return Store(settings, lambda db: ReplicaConfig(url, endpoint, db, S3_KEY, S3_SECRET))


# -- hosts ----------------------------------------------------------------------------------


@dataclass
class Host:
    folder: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        return self.folder / "data" / "bot.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def hosts(
    slack: FakeSlack, sandbox: Sandbox, store: Store, tmp_path: Path
) -> Iterator[Callable[[str], Host]]:
    """New hosts (folders) sharing the replica, the fake Slack and the cloud."""

    def host(name: str) -> Host:
        folder = tmp_path / name
        folder.mkdir()
        env = {
            # The machine's environment, AWS_CA_BUNDLE and all (Litestream must not see it).
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SCP_ENDPOINT": sandbox.url,
            "SCP_ACCESS_KEY": ACCESS_KEY,
            "SCP_SECRET_KEY": SECRET_KEY,
            "DATABASE_PATH": str(folder / "data" / "bot.db"),
            "PORT": str(free_port()),
            "SHARE_UNKNOWN_MEMBERS": "direct",
            "SHARE_APPROVAL_CHANNEL": "CAPPROVE",
            "SHARE_STATUS_POLL_SECONDS": "1",
            **store.settings,
        }
        return Host(folder, env)

    yield host


@pytest.fixture
def run_bot() -> Iterator[Callable[..., BotProcess]]:
    """Start `python -m bot` on a host; every process (Litestream too) gone after the test."""
    started: list[BotProcess] = []

    def start(host: Host, *args: str) -> BotProcess:
        name = f"bot-{len(started) + 1}"
        stdout, stderr = host.folder.parent / f"{name}.out", host.folder.parent / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", *args],
                cwd=host.folder,
                env=host.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        bot = BotProcess(process, stdout, stderr, url=f"http://127.0.0.1:{host.env['PORT']}")
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.process.poll() is None:
            bot.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                bot.process.wait(20)
        if process_group_alive(bot.pid):
            os.killpg(bot.pid, signal.SIGKILL)
        if bot.process.poll() is None:
            bot.process.kill()
        bot.process.wait(10)


def the_bot(bot: BotProcess) -> int:
    """The one process Litestream runs: the bot."""
    [child] = children_of(bot.pid)
    return child


def healthy(bot: BotProcess) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"{bot.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    bot.wait_until(answers, "GET /healthz", START_TIMEOUT)


def messages(bot: BotProcess) -> list[str]:
    return [str(e.get("message") or e.get("msg")) for e in bot.log_lines()]


def loud(bot: BotProcess) -> list[dict[str, Any]]:
    """Error lines, the bot's ("error") and Litestream's ("ERROR")."""
    return [e for e in bot.log_lines() if str(e.get("level")).lower() in {"error", "critical"}]


# -- looking at a database ---------------------------------------------------------------


def table(path: Path, name: str, columns: str = "*") -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        order = "request_id" if name == "slack_messages" else "id"
        if " JOIN " in name:
            order = "id"
        return db.execute(f"SELECT {columns} FROM {name} ORDER BY {order}").fetchall()


def states(path: Path) -> dict[int, str]:
    return dict(table(path, "share_requests", "id, state"))  # type: ignore[arg-type]


REQUEST_FACTS = "id, action, user_id, channel_id, image_id, member_id, reason, created_at"


@dataclass
class Recorded:
    grants: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]
    requests: list[tuple[Any, ...]]
    states: dict[int, str]
    cards: list[tuple[Any, ...]]


def recorded(path: Path) -> Recorded:
    return Recorded(
        grants=table(path, "grants"),
        audit=table(path, "audit"),
        requests=table(path, "share_requests", REQUEST_FACTS),
        states=states(path),
        cards=table(path, "slack_messages", "request_id, parent_ts, card_ts"),
    )


# -- a day's work ---------------------------------------------------------------------------

SHARES, ASKED, APPROVED, GRANTS = 20, 12, 10, 8


def member(kind: str, n: int) -> str:
    return f"{kind}-{n:03d}"


def a_days_work(bot: BotProcess, host: Host, slack: FakeSlack) -> None:
    """Grants, direct shares, requests and approvals: 53 things recorded, all through Slack."""
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:

        def ack(text: str, user: str) -> str:
            response = sender.command(text, user_id=user)
            assert response.status_code == 200, response.text
            return str(response.json().get("text", ""))

        for user in (SHARER, REQUESTER, APPROVER, *(f"U0EXTRA{n:03d}" for n in range(GRANTS))):
            slack.add_user(user)  # people of the workspace, as users.info knows them
        for user, role in ((SHARER, "sharer"), (REQUESTER, "requester"), (APPROVER, "approver")):
            assert ack(f"admin grant <@{user}> {role}", ADMIN).startswith(f"<@{user}> is now")
        for n in range(GRANTS):
            assert ack(f"admin grant <@U0EXTRA{n:03d}> sharer", ADMIN).startswith("<@U0EXTRA")
        for n in range(SHARES):
            assert ack(f"{IMAGE} {member('share', n)} nightly", SHARER).startswith("On it")
        for n in range(ASKED):
            ack(f"{IMAGE} {member('ask', n)} QA run", REQUESTER)
        cards = slack.wait_for(
            lambda: (c := slack.messages("CAPPROVE")) and len(c) >= ASKED and c,
            timeout=30,
            what=f"{ASKED} approval cards",
        )
        for card in cards[:APPROVED]:
            assert sender.click(card, "approve", user_id=APPROVER).status_code == 200

    def settled() -> bool:
        found = states(host.database)
        pending = [s for s in found.values() if s == "pending"]
        waiting = [s for s in found.values() if s == "awaiting_approval"]
        return len(pending) == SHARES + APPROVED and len(waiting) == ASKED - APPROVED

    bot.wait_until(settled, "every share pending and two requests awaiting approval", 60)
    bot.wait_until(
        lambda: len(replies(slack)) >= SHARES + APPROVED, "every share's thread reply", 30
    )


def replies(slack: FakeSlack, text: str = "Shared:") -> list[Call]:
    return [
        c for c in slack.calls("chat.postMessage") if str(c.args.get("text", "")).startswith(text)
    ]


def posts(sandbox: Sandbox, member_id: str) -> list[str]:
    return [r.method for r in sandbox.records if r.member_id == member_id]


# -- the host is gone, after a clean stop ----------------------------------------------------


def test_a_new_host_restores_everything_and_carries_on_replicating(
    hosts: Callable[[str], Host],
    run_bot: Callable[[Host], BotProcess],
    slack: FakeSlack,
    sandbox: Sandbox,
    store: Store,
    tmp_path: Path,
) -> None:
    first = hosts("host-a")
    # The first admin, from the command line: the replica is empty, so a new database.
    granted = first.cli("grant", ADMIN, "admin")
    assert granted.returncode == 0, granted.stderr
    assert "holds no copy yet" in granted.stderr
    bot = run_bot(first)
    healthy(bot)
    a_days_work(bot, first, slack)
    # The last grant is written as it is acked, and SIGTERM follows at once: well within
    # Litestream's second between syncs, so only its final sync can carry it.
    slack.add_user("U0LASTONE1")
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        ack = sender.command("admin grant <@U0LASTONE1> approver", user_id=ADMIN)
    bot.process.send_signal(signal.SIGTERM)
    assert ack.json()["text"].startswith("<@U0LASTONE1> is now")
    assert bot.process.wait(30) == 0, bot.output()  # Litestream's code: the bot's was 0
    assert loud(bot) == [], bot.output()
    assert not process_group_alive(bot.pid)  # the bot stopped before Litestream did
    before = recorded(first.database)
    assert len(before.grants) == 1 + 3 + GRANTS + 1
    assert before.grants[-1][1] == "U0LASTONE1", before.grants[-1]
    assert len(before.requests) == SHARES + ASKED
    assert len(before.audit) == len(before.grants)
    shutil.rmtree(first.folder)  # the host is gone

    second = hosts("host-b")
    replacement = run_bot(second)
    healthy(replacement)

    [restored] = [
        e
        for e in replacement.log_lines()
        if e.get("message") == "restored the database from its replica"
    ]
    assert restored["replica"] == store.config(second.database).shown
    assert restored["path"] == str(second.database)
    assert int(restored["txid"], 16) > 0 and restored["last_write_at"].startswith("20")
    after = recorded(second.database)
    assert after.grants == before.grants
    assert after.audit == before.audit
    assert after.requests == before.requests
    assert after.cards == before.cards
    assert after.states == before.states

    # The worker carries on: it follows every pending share, and finishes what waits.
    accepted = member("share", 3)
    sandbox.set_member_status(IMAGE, accepted, MemberStatus.ACCEPTED)
    replacement.wait_until(
        lambda: states(second.database)[4] == "accepted", "the accepted share", 30
    )
    [(waiting, asked, card_ts), *_] = [
        (row[0], row[1], row[2])
        for row in table(
            second.database,
            "share_requests JOIN slack_messages ON request_id = id",
            "id, member_id, card_ts, state",
        )
        if row[3] == "awaiting_approval"
    ]
    [waiting_card] = [c for c in slack.messages("CAPPROVE") if c.ts == card_ts]
    with SlackSender(f"{replacement.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.click(waiting_card, "approve", user_id=APPROVER).status_code == 200
        slack.add_user("U0LATECOMER")
        ack = sender.command("admin grant <@U0LATECOMER> approver", user_id=ADMIN)
        assert ack.json()["text"].startswith("<@U0LATECOMER> is now")
    replacement.wait_until(
        lambda: states(second.database)[waiting] == "pending", "the late approval's share", 30
    )
    # Nothing was sent twice: one add per member that was shared, none for the others.
    shared = dict(table(second.database, "share_requests", "member_id, state"))
    assert sum(state in {"pending", "accepted"} for state in shared.values()) == (
        SHARES + APPROVED + 1
    )
    for member_id, state in shared.items():
        expected = 1 if state in {"pending", "accepted"} else 0
        assert posts(sandbox, member_id).count("POST") == expected, (member_id, state)
    assert posts(sandbox, asked).count("POST") == 1

    # It replicates to the same replica: a third host gets the second host's work.
    assert replacement.terminate_and_wait() == 0, replacement.output()
    assert loud(replacement) == [], replacement.output()
    final = recorded(second.database)
    third = tmp_path / "host-c" / "bot.db"
    outcome = restore_if_missing(store.config(third))
    assert outcome.outcome == "restored"
    assert recorded(third).grants == final.grants
    assert recorded(third).states == final.states
    assert recorded(third).audit == final.audit
    for bot_process in (bot, replacement):
        printed = bot_process.output()
        for secret in (*SECRETS, S3_SECRET):
            assert secret not in printed


# -- the host is gone, without a stop ------------------------------------------------------


def test_after_a_kill_what_was_recorded_five_seconds_before_is_all_there(
    hosts: Callable[[str], Host],
    run_bot: Callable[[Host], BotProcess],
    slack: FakeSlack,
    sandbox: Sandbox,
) -> None:
    first = hosts("host-a")
    assert first.cli("grant", ADMIN, "admin").returncode == 0
    bot = run_bot(first)
    healthy(bot)
    a_days_work(bot, first, slack)
    # One more share, caught in `sending`: its add reaches the cloud, which carries it out
    # 8 s later; the host is gone before any answer.
    caught = member("caught", 0)
    sandbox.inject(Fault.stall(8, method="POST"))
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.command(f"{IMAGE} {caught}", user_id=SHARER).status_code == 200
    sandbox.wait_for(lambda records: any(r.member_id == caught for r in records), timeout=15)
    bot.wait_until(lambda: states(first.database)[SHARES + ASKED + 1] == "sending", "sending", 15)
    before = recorded(first.database)
    time.sleep(5.5)  # Litestream ships every second: all of it is in the replica by now

    os.killpg(bot.pid, signal.SIGKILL)  # the whole host at once: no final sync
    bot.process.wait(10)
    shutil.rmtree(first.folder)
    # The cloud carries the add out after all; nobody hears of it.
    sandbox.wait_for(lambda records: any(r.member_id == caught and r.done for r in records), 15)
    assert caught in [m.member_id for m in sandbox.members(IMAGE)]

    second = hosts("host-b")
    replacement = run_bot(second)
    healthy(replacement)
    after = recorded(second.database)
    assert after.grants == before.grants
    assert after.audit == before.audit
    assert after.requests == before.requests
    request_id = SHARES + ASKED + 1
    caught_state = after.states.pop(request_id)
    assert before.states.pop(request_id) == "sending"
    assert after.states == before.states
    assert caught_state in {"sending", "pending"}  # the new worker may have read it already

    # The caught request is read back, found, and told; never sent again.
    replacement.wait_until(
        lambda: states(second.database)[request_id] == "pending", "the caught share", 30
    )
    slack.wait_for(
        lambda: [c for c in replies(slack) if caught in str(c.args.get("text"))],
        timeout=15,
        what="the caught share's reply",
    )
    calls = posts(sandbox, caught)
    assert calls[:2] == ["POST", "GET"] and calls.count("POST") == 1, calls
    assert replacement.terminate_and_wait() == 0, replacement.output()
    assert loud(replacement) == [], replacement.output()


# -- refusing to start empty over a lost database ----------------------------------------------


def test_an_unreachable_replica_stops_the_start_within_30_s_and_leaves_nothing(
    hosts: Callable[[str], Host], run_bot: Callable[[Host], BotProcess], store: Store
) -> None:
    host = hosts("host-a")
    if "DATABASE_REPLICA_ENDPOINT" in host.env:
        host.env["DATABASE_REPLICA_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # closed
        named = host.env["DATABASE_REPLICA_URL"]
    else:
        gone = host.folder.parent / "unmounted"
        host.env["DATABASE_REPLICA_URL"] = named = f"file://{gone}"

    started = time.monotonic()
    bot = run_bot(host)
    code = bot.process.wait(40)
    took = time.monotonic() - started

    assert code != 0
    assert took < 30, took
    said = bot.output()
    assert "share-image-bot cannot start" in said and named in said, said
    assert "Not starting with an empty database over a lost one" in said
    assert list(host.folder.rglob("*")) == [], list(host.folder.rglob("*"))
    # The command line refuses the same way.
    refused = host.cli("grant", ADMIN, "admin")
    assert refused.returncode != 0 and named in refused.stderr
    assert list(host.folder.rglob("*")) == []


def test_a_reachable_replica_that_fails_slowly_is_given_up_on_in_time(tmp_path: Path) -> None:
    """A port that takes the connection and never answers: Litestream's bound, not ours."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = ReplicaConfig("s3://bucket/path", endpoint, tmp_path / "bot.db", "k", "s")
        started = time.monotonic()
        with pytest.raises(ReplicaError) as refused:
            restore_if_missing(config, reach_seconds=3)
        took = time.monotonic() - started
    assert took < 10, took
    assert f"s3://bucket/path at {endpoint} cannot be reached" in str(refused.value)
    assert "did not answer within" in str(refused.value)
    assert list(tmp_path.iterdir()) == []
    assert REACH_SECONDS < 30


# -- what Litestream is given -------------------------------------------------------------


def test_litestream_gets_only_what_it_needs() -> None:
    config = ReplicaConfig("s3://bucket/path", "https://s3.example.com", Path("bot.db"), "AK", "SK")
    environment = {
        "PATH": "/usr/bin",
        "HOME": "/home/bot",
        "AWS_CA_BUNDLE": "/etc/ssl/private-ca.pem",
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "SCP_SECRET_KEY": "cloud-secret",
        "AWS_ACCESS_KEY_ID": "from-the-environment",
        "AWS_REGION": "kr-west1",  # every AWS_* variable Litestream's S3 client reads
        "ONCALL_ICAL_URL": "https://calendar.example.com/private-key/basic.ics",
    }

    given = litestream_environment(config, environment)

    assert given == {
        "PATH": "/usr/bin",
        "HOME": "/home/bot",
        "SSL_CERT_FILE": "/etc/ssl/private-ca.pem",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_REGION": "kr-west1",
    }
    replica = config.litestream_config()["dbs"][0]["replica"]
    assert (replica["endpoint"], replica["force-path-style"]) == ("https://s3.example.com", True)
    on_aws = ReplicaConfig("s3://b/p", "https://s3.eu-west-1.amazonaws.com", Path("x.db"))
    assert on_aws.litestream_config()["dbs"][0]["replica"]["force-path-style"] is False


def test_the_binary_is_the_one_next_to_the_interpreter() -> None:
    assert litestream_binary() == Path(sys.executable).parent / "litestream"
    litestream = Litestream(ReplicaConfig("file:///nowhere", "", Path("x.db")))
    version = subprocess.run(
        [str(litestream.binary), "version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip().startswith(("0.5", "v0.5"))


@pytest.mark.parametrize(
    ("url", "endpoint", "problem"),
    [
        ("s3://bucket", "", "DATABASE_REPLICA_URL must name a path in the bucket"),
        ("s3:///path", "", "DATABASE_REPLICA_URL must name a bucket"),
        ("s3://b/p?endpoint=x", "", "DATABASE_REPLICA_URL takes no ?options"),
        ("s3://key:secret@b/p", "", "DATABASE_REPLICA_URL must not hold keys"),
        ("s3://b/p", "s3.example.com", "DATABASE_REPLICA_ENDPOINT must be an http://"),
        ("file://relative/path", "", "DATABASE_REPLICA_URL must be an absolute path"),
        ("file:///srv/replica", "https://x.example", "DATABASE_REPLICA_ENDPOINT is only for s3"),
        ("", "https://x.example", "DATABASE_REPLICA_ENDPOINT is set but DATABASE_REPLICA_URL"),
        ("gs://bucket/path", "", "DATABASE_REPLICA_URL must be s3://BUCKET/PATH or file:///PATH"),
    ],
)
def test_replica_settings_that_cannot_work_are_refused_by_name(
    url: str, endpoint: str, problem: str
) -> None:
    found = url_problem(url, endpoint)
    assert found is not None and found.startswith(problem), found


def test_good_replica_settings_pass() -> None:
    assert url_problem("s3://backups/share-image-bot", "https://s3.example.com") is None
    assert url_problem("s3://backups/share-image-bot", "") is None
    assert url_problem("file:///srv/replica", "") is None


def test_the_settings_refuse_a_bad_replica_naming_it(hosts: Callable[[str], Host]) -> None:
    host = hosts("host-a")
    host.env["DATABASE_REPLICA_URL"] = "s3://bucket"
    said = host.cli("check")
    assert said.returncode != 0
    assert "DATABASE_REPLICA_URL must name a path in the bucket" in said.stderr
    assert not host.database.exists()


# -- `python -m bot check` ------------------------------------------------------------------


def test_check_shows_the_replica_reachable_its_last_sync_and_lag(
    store: Store, tmp_path: Path
) -> None:
    from bot.check import _check_replica, _Report
    from bot.settings import load_settings
    from storage import Database

    path = tmp_path / "data" / "bot.db"
    settings = load_settings(
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="signing-secret",
        SCP_ENDPOINT="http://127.0.0.1:9",
        SCP_ACCESS_KEY=ACCESS_KEY,
        SCP_SECRET_KEY=SECRET_KEY,
        DATABASE_PATH=str(path),
        **store.settings,
    )
    shown = store.config(path).shown

    def check() -> tuple[bool, list[str]]:
        lines: list[str] = []
        restores = _check_replica(settings, _Report(lines.append))
        return restores, lines

    assert check() == (
        False,
        [f"[ok] database replica: {shown} reachable and empty: a new database is made (next line)"],
    )
    assert not path.exists()

    Database(path).close()
    Litestream(store.config(path)).run("replicate", "-once", timeout=20)  # one sync
    restores, [line] = check()
    assert not restores
    assert line.startswith(f"[ok] database replica: {shown} reachable, last sync 20")
    assert "s ago), txid 0000000000000" in line, line
    assert int(line.rsplit("lag ", 1)[1].removesuffix(" s")) < 5, line

    later = time.time() + 120  # changed two minutes after the replica's last write
    os.utime(path, (later, later))
    restores, [line, advice] = check()
    assert line.startswith("[WARN] database replica:") and "lag 1" in line, line
    assert "the local database changed after the replica's last write" in line
    assert advice.strip().startswith("do:")

    path.unlink()
    restores, [line] = check()
    assert restores
    assert line.endswith(f"{path} is missing: the bot restores it from the replica at start")


def test_check_fails_when_the_replica_cannot_be_reached(tmp_path: Path) -> None:
    from bot.check import _check_replica, _Report
    from bot.settings import load_settings

    closed = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="signing-secret",
        SCP_ENDPOINT="http://127.0.0.1:9",
        SCP_ACCESS_KEY=ACCESS_KEY,
        SCP_SECRET_KEY=SECRET_KEY,
        DATABASE_PATH=str(tmp_path / "bot.db"),
        DATABASE_REPLICA_URL="s3://bucket/bot",
        DATABASE_REPLICA_ENDPOINT=closed,
        AWS_ACCESS_KEY_ID=S3_KEY,
        AWS_SECRET_ACCESS_KEY=S3_SECRET,
    )
    lines: list[str] = []
    report = _Report(lines.append)

    assert _check_replica(settings, report)  # missing: the database check must not create it

    assert report.failures == 1
    assert lines[0].startswith(
        f"[FAIL] database replica: s3://bucket/bot at {closed} cannot be reached: cannot connect"
        f" to 127.0.0.1:{closed.rsplit(':', 1)[1]} (Connection refused)"
    )
    assert not (tmp_path / "bot.db").exists()


def test_check_judges_a_missing_replica_folder_as_the_start_does(tmp_path: Path) -> None:
    """An unmounted volume: the start refuses, so check fails (it said "reachable")."""
    from bot.check import _check_replica, _Report
    from bot.settings import load_settings

    gone = tmp_path / "unmounted"
    settings = load_settings(
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="signing-secret",
        SCP_ENDPOINT="http://127.0.0.1:9",
        SCP_ACCESS_KEY=ACCESS_KEY,
        SCP_SECRET_KEY=SECRET_KEY,
        DATABASE_PATH=str(tmp_path / "bot.db"),
        DATABASE_REPLICA_URL=f"file://{gone}",
    )
    lines: list[str] = []

    assert _check_replica(settings, _Report(lines.append))

    assert lines == [
        f"[FAIL] database replica: file://{gone} cannot be reached: the folder {gone} does not"
        " exist (an unmounted volume looks just like this)",
        "    do:     create the folder (mkdir -p) for a new replica, or mount it; it must be"
        " readable; the bot refuses to start on a missing database until the replica answers",
    ]
    with pytest.raises(ReplicaError) as refused:
        restore_if_missing(ReplicaConfig(f"file://{gone}", "", tmp_path / "bot.db"))
    assert f"the folder {gone} does not exist" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


# -- who runs whom ------------------------------------------------------------------------


def test_litestream_runs_one_bot_which_alone_holds_the_secrets(
    hosts: Callable[[str], Host], run_bot: Callable[[Host], BotProcess], store: Store
) -> None:
    host = hosts("host-a")
    bot = run_bot(host)
    healthy(bot)

    # The process started is Litestream, with its configuration in memory, not on disk.
    assert Path(os.readlink(f"/proc/{bot.pid}/exe")) == litestream_binary().resolve()
    line = command_line(bot.pid)
    assert line[1:4] == ["replicate", "-config", line[3]] and line[3].startswith("/dev/fd/")
    assert "-exec" in line
    assert [p.name for p in host.folder.rglob("*") if p.suffix in {".yml", ".yaml"}] == []
    # It runs one child, the bot, and nothing else runs Litestream.
    child = the_bot(bot)
    assert is_python(child) and command_line(child)[1] == "-m", command_line(child)
    assert command_line(child)[2].startswith("bot"), command_line(child)
    everything = tree(bot.pid)
    assert [p for p in everything if Path(command_line(p)[0]).name == "litestream"] == [bot.pid]
    if (ROOT / "bot" / "runtime.py").exists():  # the bot is one process: no worker, no arbiter
        assert [p for p in everything if is_python(p)] == [child]

    # Litestream has the replica's keys and nothing of the bot's; the bot has its own.
    seen_by_litestream = environment_of(bot.pid)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SCP_SECRET_KEY", "AWS_CA_BUNDLE"):
        assert name not in seen_by_litestream
        if name in host.env:
            assert host.env[name] not in " ".join(line)
            assert host.env[name] not in json.dumps(seen_by_litestream)
    assert UNDER_LITESTREAM not in seen_by_litestream
    if "AWS_SECRET_ACCESS_KEY" in host.env:
        assert seen_by_litestream["AWS_SECRET_ACCESS_KEY"] == S3_SECRET
    seen_by_the_bot = environment_of(child)
    assert seen_by_the_bot["SLACK_BOT_TOKEN"] == host.env["SLACK_BOT_TOKEN"]
    assert seen_by_the_bot["PYTHONPATH"] == host.env["PYTHONPATH"]
    # The hand-over is emptied once read, and the bot keeps neither in-memory file open.
    for fd in Path(f"/proc/{bot.pid}/fd").iterdir():
        target = os.readlink(fd)
        if "share-image-bot-environment" in target:
            assert fd.stat().st_size == 0
    held = [os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()]
    assert not [target for target in held if "memfd:" in target], held
    [said] = [e for e in bot.log_lines() if str(e.get("message")).startswith("replicating")]
    assert said["replica"] == store.config(host.database).shown
    assert said["litestream_pid"] == bot.pid

    assert bot.terminate_and_wait() == 0, bot.output()
    assert loud(bot) == [], bot.output()
    assert not process_group_alive(bot.pid)


def test_a_second_bot_on_the_database_is_refused_before_a_second_litestream(
    hosts: Callable[[str], Host], run_bot: Callable[[Host], BotProcess], store: Store
) -> None:
    host = hosts("host-a")
    bot = run_bot(host)
    healthy(bot)
    before = tree(bot.pid)

    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=host.folder,
        env=host.env | {"PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode != 0
    assert time.monotonic() - started < 15
    lock = f"{host.database}.replica.lock"
    assert f"another bot already restores or replicates {host.database}" in second.stderr
    assert f"(process {bot.pid} holds the lock file {lock})" in second.stderr, second.stderr
    assert sorted(tree(bot.pid)) == sorted(before)
    healthy(bot)
    # The command line, which never replicates, still works beside it.
    assert host.cli("grants").returncode == 0


def test_a_worker_beside_a_replicating_serve_only_opens_the_database(
    hosts: Callable[[str], Host], run_bot: Callable[..., BotProcess], store: Store
) -> None:
    host = hosts("host-a")
    serve = run_bot(host, "serve")
    healthy(serve)
    before = tree(serve.pid)

    worker = run_bot(host, "worker")
    worker_lock = Path(f"{host.database}.worker.lock")
    worker.wait_until(
        lambda: worker_lock.exists() and worker_lock.read_text().strip() == str(worker.pid),
        "the worker's lock taken by the worker itself",
        30,
    )

    # It runs as itself, no Litestream of its own; the serve's Litestream replicates alone.
    assert worker.process.poll() is None, worker.output()
    assert is_python(worker.pid) and tree(worker.pid) == [worker.pid]
    assert sorted(tree(serve.pid)) == sorted(before)
    assert not [e for e in worker.log_lines() if "replicat" in str(e.get("message"))]
    assert worker.terminate_and_wait() == 0, worker.output()
    assert serve.terminate_and_wait() == 0, serve.output()


def test_when_litestream_dies_the_bot_stops_with_it(
    hosts: Callable[[str], Host], run_bot: Callable[[Host], BotProcess], store: Store
) -> None:
    host = hosts("host-a")
    bot = run_bot(host)
    healthy(bot)
    everything = tree(bot.pid)

    os.kill(bot.pid, signal.SIGKILL)
    bot.process.wait(10)

    def gone() -> bool:
        return not [p for p in everything if p != bot.pid and _running(p)]

    deadline = time.monotonic() + 20
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(), [command_line(p) for p in everything if _running(p)]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_the_hand_over_passes_the_command_and_environment_past_litestream(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "replica"
    folder.mkdir()
    database = tmp_path / "a folder" / "bot.db"
    database.parent.mkdir()
    sqlite3.connect(database).close()
    litestream = Litestream(ReplicaConfig(f"file://{folder}", "", database))
    seen = tmp_path / "seen.json"
    script = "import json,os,sys;json.dump([sys.argv[1:],dict(os.environ)],open(sys.argv[1],'w'))"
    argv = [sys.executable, "-c", script, str(seen), 'it\'s "quoted", $HOME and `all`']
    environment = {"PATH": os.environ["PATH"], "SLACK_BOT_TOKEN": "xoxb-never-seen-by-litestream"}

    command, fds = litestream_exec(litestream, argv, environment)
    try:
        done = subprocess.run(
            command,
            env=litestream.environment(),
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        for fd in fds:
            os.close(fd)

    assert done.returncode == 0, done.stderr
    assert "xoxb-never-seen-by-litestream" not in " ".join(command)
    assert "SLACK_BOT_TOKEN" not in litestream.environment()
    arguments, environ = json.loads(seen.read_text())
    assert arguments == argv[3:]
    assert environ.pop("LC_CTYPE", None) in {None, "C.UTF-8"}  # Python's own locale coercion
    assert environ == environment


def test_a_replica_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    database = tmp_path / "new" / "bot.db"
    held = replica_lock(database)
    with pytest.raises(ReplicaError) as refused:
        replica_lock(database)
    assert f"(process {os.getpid()} holds the lock file {database}.replica.lock)" in str(
        refused.value
    )
    held.release(remove=True)
    assert not (tmp_path / "new").exists()  # the folder made for it goes with it
    replica_lock(database).release()


def test_ctrl_c_in_a_terminal_stops_the_bot_then_litestream_with_a_final_sync(
    hosts: Callable[[str], Host],
    run_bot: Callable[[Host], BotProcess],
    slack: FakeSlack,
    store: Store,
    tmp_path: Path,
) -> None:
    """A terminal's Ctrl-C reaches the whole group: the bot gets SIGINT from the terminal
    and again from Litestream, and stops once, cleanly."""
    host = hosts("host-a")
    assert host.cli("grant", ADMIN, "admin").returncode == 0
    bot = run_bot(host)
    healthy(bot)
    slack.add_user("U0LASTONE1")
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        ack = sender.command("admin grant <@U0LASTONE1> approver", user_id=ADMIN)
    os.killpg(bot.pid, signal.SIGINT)
    assert ack.json()["text"].startswith("<@U0LASTONE1> is now")
    assert bot.process.wait(30) == 0, bot.output()
    assert loud(bot) == [], bot.output()
    restored = tmp_path / "elsewhere" / "bot.db"
    assert restore_if_missing(store.config(restored)).outcome == "restored"
    assert [row[1] for row in table(restored, "grants")] == [ADMIN, "U0LASTONE1"]


def test_a_start_that_cannot_reach_slack_says_so_before_litestream_and_leaves_nothing(
    hosts: Callable[[str], Host], run_bot: Callable[[Host], BotProcess]
) -> None:
    host = hosts("host-a")
    host.env["SLACK_API_URL"] = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens

    bot = run_bot(host)
    code = bot.process.wait(30)

    assert code != 0
    said = bot.output()
    assert "share-image-bot cannot start" in said and "Connection refused" in said, said
    # Neither Litestream's own error line nor a database created for it to replicate.
    assert "exit status" not in said, said
    assert list(host.folder.rglob("*")) == [], list(host.folder.rglob("*"))
