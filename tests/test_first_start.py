"""A first start, tried as a new user would, and a restart after a crash.

Everything runs through the real entry point, `python -m bot`, as a subprocess: what is
asserted is what an operator sees on the terminal (stdout, stderr, the files left), and
what Slack and the cloud sandbox saw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bot.cli import FIRST_START
from bot.scp.sandbox import Fault, Sandbox
from tests.fakes.slack import FakeSlack, SlackSender
from tests.harness import IMAGE, MEMBER, SIGNING_SECRET
from tests.test_faults import calls
from tests.test_run_modes import (  # noqa: F401 - bot_env and start_bot are fixtures
    ROOT,
    SHARER,
    START_TIMEOUT,
    BotProcess,
    bot_env,
    free_port,
    process_group_alive,
    run_once,
    start_bot,
    wait_healthy,
)

STARTED = "listening on"
CONNECTED = "connected to Slack in Socket Mode"


def json_lines(text: str) -> list[str]:
    """The lines of `text` that are JSON log lines."""
    found = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            found.append(line)
    return found


def messages(bot: BotProcess, start: str) -> list[dict[str, object]]:
    return [e for e in bot.log_lines() if str(e.get("message", "")).startswith(start)]


# -- settings missing ---------------------------------------------------------------------


def test_missing_settings_point_to_env_example_and_say_to_copy_it(
    bot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = {k: v for k, v in bot_env.items() if not k.startswith(("SLACK_", "SCP_"))}
    done = run_once(settings, tmp_path)

    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith("share-image-bot cannot start; fix these settings")
    assert done.stderr.endswith(f"\n{FIRST_START}\n")
    assert "copy it to .env" in FIRST_START and ".env.example" in FIRST_START
    # The file it points to is there, and names every setting the message named.
    example = (ROOT / ".env.example").read_text()
    for line in done.stderr.splitlines():
        if line.startswith("  - "):
            name = line.removeprefix("  - ").split()[0]
            assert f"\n{name}=" in example, name
    assert list(tmp_path.iterdir()) == []  # nothing written


# -- Slack cannot be reached ----------------------------------------------------------------


def test_slack_out_of_reach_at_start_is_one_line_at_once(
    bot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/api/"
    asked = time.monotonic()
    done = run_once(bot_env | {"SLACK_API_URL": nobody}, tmp_path)
    took = time.monotonic() - asked

    assert done.returncode != 0 and done.stdout == "", done
    assert done.stderr == (
        "share-image-bot cannot start: Slack was not reached (unreachable): no answer"
        f" (Connection refused) from {nobody}auth.test; check SLACK_API_URL, the network and"
        " any proxy (HTTPS_PROXY) between here and Slack\n"
    )
    # Not tried again and again first: slack-sdk's retries took 3 s and logged 7 lines.
    assert took < 10, took
    assert not (tmp_path / "bot.db").exists()


# -- a successful start says where it listens ----------------------------------------------


def test_http_mode_says_once_where_it_listens_and_slacks_request_url(
    start_bot: Callable[..., BotProcess],  # noqa: F811
) -> None:
    bot = start_bot()
    wait_healthy(bot)

    port = bot.url.rsplit(":", 1)[1]
    [line] = bot.wait_until(lambda: messages(bot, STARTED), "the listening line", START_TIMEOUT)
    url = f"http://{socket.gethostname()}:{port}/slack/events"
    assert line["message"] == (
        f"listening on 0.0.0.0:{port}; Slack's Request URL (slash command, interactivity,"
        f" event subscriptions) is {url}, or the https:// address of the proxy or tunnel in"
        " front of it, ending in /slack/events"
    )
    assert (line["mode"], line["port"], line["request_url"]) == ("http", int(port), url)
    assert messages(bot, CONNECTED) == []
    assert not [e for e in bot.log_lines() if str(e.get("logger", "")).startswith("slack_sdk")]


def test_socket_mode_says_once_that_it_is_connected(
    start_bot: Callable[..., BotProcess],  # noqa: F811
    slack: FakeSlack,
) -> None:
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token)

    [line] = bot.wait_until(lambda: messages(bot, CONNECTED), "the connected line", START_TIMEOUT)
    assert slack.socket_connection_count == 1
    assert line["mode"] == "socket"
    assert "no Request URL is needed" in str(line["message"])
    assert messages(bot, STARTED) == []
    assert "Bolt app is running" not in bot.output()  # Bolt's own banner: one line is enough
    time.sleep(0.5)
    assert len(messages(bot, CONNECTED)) == 1


# -- check -----------------------------------------------------------------------------------


def test_check_creates_no_database_and_prints_no_log_lines(
    bot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    missing = folder / "bot.db"

    done = run_once(bot_env | {"DATABASE_PATH": str(missing)}, tmp_path, "check")

    assert done.returncode == 0, done
    assert json_lines(done.stdout) == [] and done.stderr == "", done
    assert (
        f"[WARN] database: {missing} does not exist: the bot creates a NEW, EMPTY database"
        " there when it starts (check created nothing)"
    ) in done.stdout.splitlines()
    assert not missing.exists()
    assert list(folder.iterdir()) == []


def test_check_with_slack_and_the_cloud_out_of_reach_prints_only_its_report(
    bot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = run_once(
        bot_env | {"SLACK_API_URL": f"{nowhere}/api/", "SCP_ENDPOINT": nowhere},
        tmp_path,
        "check",
    )

    assert done.returncode == 1, done
    assert done.stderr == "" and json_lines(done.stdout) == [], done
    report = [line for line in done.stdout.splitlines() if not line.startswith("  ")]
    assert report[-1] == "3 check(s) failed."
    assert all(line.startswith(("[", "Settings")) for line in report[:-1]), report
    # Each cloud failure says what was tried and what to check, not only the error's kind.
    lines = done.stdout.splitlines()
    for what in ("[FAIL] cloud API version list:", "[FAIL] cloud API signed read:"):
        [at] = [i for i, line in enumerate(lines) if line.startswith(what)]
        assert lines[at + 1 : at + 3] == [
            f"    tried:  {nowhere}/",
            "    do:     check SCP_ENDPOINT, the network and any proxy (HTTPS_PROXY) between"
            " here and the cloud",
        ], lines
    assert not (tmp_path / "bot.db").exists()


def test_check_says_when_the_database_cannot_be_made(
    bot_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "afile").write_text("")
    done = run_once(
        bot_env | {"DATABASE_PATH": str(tmp_path / "afile" / "bot.db")}, tmp_path, "check"
    )

    assert done.returncode == 1, done
    assert (
        f"[FAIL] database: {tmp_path / 'afile' / 'bot.db'} does not exist, and"
        f" {tmp_path / 'afile'} is a file, not a folder"
    ) in done.stdout.splitlines()


# -- what a run leaves in the folder ---------------------------------------------------------


def test_every_file_a_run_leaves_in_a_checkout_is_ignored_by_git(
    start_bot: Callable[..., BotProcess],  # noqa: F811
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    # The way a new user runs it: in the checkout, with the default database name.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    bot = start_bot(DATABASE_PATH="share-image-bot.db")
    wait_healthy(bot)
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER).status_code == 200
    slack.wait_for(lambda: slack.messages("C1"), timeout=30, what="the share answered")
    left = {p.name for p in tmp_path.iterdir()}
    bot.process.send_signal(signal.SIGTERM)
    assert bot.process.wait(15) == 0

    assert {"share-image-bot.db", "share-image-bot.db.lock"} <= left, left
    assert "share-image-bot.db.worker.lock" in left, left
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # Only the test's own files show (the bot's output captured, the .gitignore copied).
    shown = [line[3:] for line in status if not line[3:].startswith("bot-")]
    assert shown == [".gitignore"], status


# -- after a crash, on with it ----------------------------------------------------------------


def share_and_kill_during_the_add(
    start: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    """Start the bot, send a share, SIGKILL every process of the bot while its POST waits."""
    bot = start()
    wait_healthy(bot)
    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        assert sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER).status_code == 200
    sandbox.wait_for(lambda records: any(r.method == "POST" for r in records), timeout=30)
    [post] = calls(sandbox, "POST")
    assert not post.done  # the cloud has the request and has not answered yet
    os.killpg(bot.pid, signal.SIGKILL)
    assert bot.process.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while process_group_alive(bot.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_group_alive(bot.pid)


def answered_after_restart(
    start: Callable[..., BotProcess], slack: FakeSlack
) -> tuple[float, list[str]]:
    """Restart the bot; seconds until the share's thread was answered, and its replies."""
    restarted = time.monotonic()
    start()
    [parent] = slack.wait_for(
        lambda: [c for c in slack.messages("C1") if not c.args.get("thread_ts")],
        timeout=30,
        what="the parent message",
    )
    assert parent.ts is not None
    ts = parent.ts
    slack.wait_for(lambda: slack.thread(ts), timeout=30, what="the thread answered")
    took = time.monotonic() - restarted
    time.sleep(1.0)  # anything said twice would be said by now
    return took, [str(c.args.get("text", "")) for c in slack.thread(ts)]


def test_a_bot_killed_during_an_add_that_landed_reads_it_back_after_the_restart(
    start_bot: Callable[..., BotProcess],  # noqa: F811
    slack: FakeSlack,
    sandbox: Sandbox,
) -> None:
    sandbox.inject(Fault.stall(2.0, method="POST"))  # the cloud adds it, for nobody to hear
    share_and_kill_during_the_add(start_bot, slack, sandbox)
    sandbox.wait_for(lambda records: all(r.done for r in records), timeout=10)

    took, replies = answered_after_restart(start_bot, slack)

    assert took < 30, took
    [reply] = replies
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    assert [(r.method, r.status) for r in calls(sandbox)] == [("POST", 200), ("GET", 200)]
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    assert len([c for c in slack.messages("C1") if not c.args.get("thread_ts")]) == 1


def test_a_bot_killed_during_an_add_that_never_landed_sends_it_once_after_the_restart(
    start_bot: Callable[..., BotProcess],  # noqa: F811
    slack: FakeSlack,
    sandbox: Sandbox,
) -> None:
    sandbox.delay = 1.0  # the POST is held, then dropped without being carried out
    sandbox.inject(Fault.reset(method="POST"))
    share_and_kill_during_the_add(start_bot, slack, sandbox)
    sandbox.wait_for(lambda records: all(r.done for r in records), timeout=10)
    sandbox.delay = 0.0
    assert sandbox.members(IMAGE) == []

    took, replies = answered_after_restart(start_bot, slack)

    # Before, it waited out the client's whole time budget (about 4 minutes); now it
    # reads for a few seconds after the send (RESTART_GRACE), then sends once more.
    assert took < 30, took
    [reply] = replies
    assert reply.startswith(f"Shared: `{MEMBER}` can use the image now. It is *pending*")
    seen = [(r.method, r.status) for r in calls(sandbox)]
    assert seen[:2] == [("POST", None), ("GET", 404)] and seen[-1] == ("POST", 200), seen
    assert set(seen[1:-1]) == {("GET", 404)}, seen  # only reads in between
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    assert len([c for c in slack.messages("C1") if not c.args.get("thread_ts")]) == 1
