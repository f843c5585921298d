"""Nothing said or sent twice after a crash.

The worker is "killed" at an exact instant: a `Died` exception (a BaseException, so no
handler of the bot catches it) is raised right after a scripted call returned. Nothing
after it runs: the step is not recorded and the request's lease is left behind, as when
the process is gone. A new worker is then started on the same database, as after a
restart. Each test asserts what people see (one parent, one reply per step, the right
words) and what the cloud received (one POST).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp.sandbox import Fault, Sandbox
from bot.sharing.values import Role
from bot.sharing.worker import RESTART_GRACE
from bot.slack.announcer import EVENT_TYPE
from tests.fakes.slack import Call, FakeSlack
from tests.harness import FAST_RETRY, IMAGE, MEMBER, BotHarness, settings_for
from tests.test_faults import (  # noqa: F401 - spawn_worker is a fixture
    calls,
    nothing_open,
    service_error,
    settled,
    spawn_worker,
    wait_until,
)

SHARED = f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"


class Died(BaseException):
    """The worker process ends at this instant: nothing after it runs."""


@pytest.fixture
def make(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[..., BotHarness]]:
    """A running bot (U1 sharer, UREQ requester, UAPP1 approver), notify channel on."""
    made: list[BotHarness] = []

    def build(*, timeout: httpx.Timeout | None = None, **overrides: Any) -> BotHarness:
        settings = settings_for(
            slack, sandbox.url, tmp_path, SHARE_NOTIFY_CHANNEL="CNOTIFY", **overrides
        )
        harness = BotHarness(settings, slack, retry=FAST_RETRY, timeout=timeout)
        made.append(harness)
        harness.grant("U1", Role.SHARER)
        harness.grant("UREQ", Role.REQUESTER)
        harness.grant("UAPP1", Role.APPROVER)
        harness.services.members.add(MEMBER, "QA account", by="test")
        return harness

    yield build
    for harness in made:
        harness.close()


def die_after(target: Any, name: str, when: Callable[..., bool]) -> threading.Event:
    """Make `target.name` end the worker right after a call for which `when(*args)` holds.

    Once: later calls (the restarted worker's) work normally. Returns an event set when
    the worker died.
    """
    real = getattr(target, name)
    died = threading.Event()

    @functools.wraps(real)
    async def dying(*args: Any, **kwargs: Any) -> Any:
        # (Died ends the worker's task that called it: a BaseException, it is not caught
        # as a failure, and the request stays leased as a dead process leaves it.)
        result = await real(*args, **kwargs)
        if not died.is_set() and when(*args, **kwargs):
            died.set()
            raise Died(name)
        return result

    setattr(target, name, dying)
    return died


def restart(bot: BotHarness, died: threading.Event) -> None:
    """Wait for the death, then stop what is left of the worker and start a new one."""
    assert died.wait(10), "the worker never reached the instant it was to die at"
    bot.stop_worker()
    bot.start_worker()


def parents(slack: FakeSlack, channel: str = "C1") -> list[Call]:
    return [c for c in slack.messages(channel) if not c.args.get("thread_ts")]


def lookups(slack: FakeSlack) -> list[Call]:
    return slack.calls("conversations.history") + slack.calls("conversations.replies")


def said_once(bot: BotHarness, slack: FakeSlack, *, replies: list[str]) -> None:
    """One parent in C1, exactly these replies in its thread, one notify line."""
    [parent] = parents(slack)
    assert parent.ts is not None
    assert bot.told().parent_ts == parent.ts
    texts = bot.thread_texts(parent)
    assert len(texts) == len(replies)
    for text, start in zip(texts, replies, strict=True):
        assert text.startswith(start)
    assert len(slack.messages("CNOTIFY")) == 1
    assert len(slack.updates(parent.ts)) == 1


# -- every message says which request and step it is --------------------------------------


def test_every_message_carries_its_request_and_step_and_nothing_is_looked_up_normally(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")

    [parent] = parents(slack)
    [reply] = slack.thread(parent.ts or "")
    [notify] = slack.messages("CNOTIFY")
    [update] = slack.updates(parent.ts)
    steps = [c.args["metadata"] for c in (parent, reply, notify, update)]
    assert steps == [
        {"event_type": EVENT_TYPE, "event_payload": {"request": 1, "step": step}}
        for step in ("parent", "pending:reply", "pending:notify", "parent")
    ]
    assert lookups(slack) == []  # looking costs rate-limited calls: only after a crash


# -- killed between Slack's answer and the record of the step -------------------------------


@pytest.mark.parametrize("step", ["parent", "pending:reply", "pending:notify"])
def test_a_worker_killed_after_slack_took_a_message_does_not_say_it_again(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack, step: str
) -> None:
    bot = make()
    died = die_after(
        bot.services.announcer, "_post", lambda request, told, posted_step, **_: posted_step == step
    )
    bot.ack_text(f"{IMAGE} {MEMBER}")

    restart(bot, died)

    request = bot.wait_state("pending")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert request.member_status == "pending"
    # One look in Slack, for the step that was under way, and none once it was adopted.
    [looked] = lookups(slack)
    assert looked.args["include_all_metadata"] in ("true", "1", True)
    assert bot.told().check_before_posting is False
    nothing_open(bot)


@pytest.mark.parametrize("step", ["card", "awaiting_approval:reply"])
def test_a_worker_killed_after_posting_the_approval_card_posts_it_once(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack, step: str
) -> None:
    bot = make()
    died = die_after(
        bot.services.announcer, "_post", lambda request, told, posted_step, **_: posted_step == step
    )
    bot.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")

    restart(bot, died)

    wait_until(lambda: bot.told().announced_state == "awaiting_approval", what="the card")
    [card] = slack.messages("CAPPROVE")
    assert bot.told().card_ts == card.ts
    [parent] = parents(slack)
    [awaiting] = bot.thread_texts(parent)
    assert "approv" in awaiting
    assert calls(sandbox) == []


def test_a_message_slack_took_but_the_database_could_not_record_is_not_said_twice(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    from storage.errors import StorageError

    bot = make()
    messages = bot.services.messages
    real = messages.update
    failed = threading.Event()

    def update(request_id: int, **values: Any) -> Any:
        # The writer is busy past the busy timeout, once, just after the reply went out.
        if values.get("announce_step") == 1 and not failed.is_set():
            failed.set()
            raise StorageError("database is locked")
        return real(request_id, **values)

    messages.update = update  # type: ignore[method-assign]
    bot.ack_text(f"{IMAGE} {MEMBER}")
    assert failed.wait(10)
    bot.clock.advance(seconds=6)  # the worker looks again 5 s after a database failure
    bot.worker.wake()

    bot.wait_state("pending")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert len(slack.calls("conversations.replies")) == 1


def test_a_lookup_slack_refuses_for_good_posts_rather_than_saying_nothing(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    slack.scopes = {"chat:write", "users:read"}  # installed before the history scopes
    died = die_after(bot.services.announcer, "_post", lambda _r, _t, step, **_: step == "parent")
    bot.ack_text(f"{IMAGE} {MEMBER}")

    restart(bot, died)

    bot.wait_state("pending")
    [refused] = slack.calls("conversations.history")
    assert refused.response["error"] == "missing_scope"
    assert refused.response["needed"] == "channels:history"
    # Without the scope the bot cannot tell: the parent is posted again, and the thread
    # hangs off the new one, so the request is never left without its answer.
    assert len(parents(slack)) == 2
    [parent] = [p for p in parents(slack) if p.ts == bot.told().parent_ts]
    [reply] = bot.thread_texts(parent)
    assert reply.startswith(SHARED)


# -- killed between the POST and its recorded answer ----------------------------------------


def test_a_worker_killed_after_the_cloud_answered_reads_it_back_and_sends_nothing(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    died = die_after(bot.services.cloud, "add_member", lambda *a, **k: True)
    bot.ack_text(f"{IMAGE} {MEMBER}")

    restart(bot, died)

    bot.wait_state("pending")
    said_once(bot, slack, replies=[SHARED])
    assert [r.method for r in calls(sandbox)] == ["POST", "GET"]
    assert lookups(slack) == []  # it was with the cloud, not with Slack, when it died
    nothing_open(bot)


# -- killed while a slow POST is under way ---------------------------------------------------


def _die_with_the_post_under_way(bot: BotHarness, sandbox: Sandbox) -> threading.Event:
    """The worker dies while its POST is on the wire: the cloud carries it out anyway."""
    cloud = bot.services.cloud
    real = cloud.add_member
    died = threading.Event()
    on_the_wire: list[asyncio.Future[Any]] = []

    async def add_member(*args: Any, **kwargs: Any) -> Any:
        if died.is_set():
            return await real(*args, **kwargs)
        # The POST goes on without the worker, as a request on the wire does.
        on_the_wire.append(asyncio.ensure_future(real(*args, **kwargs)))
        while not any(r.method == "POST" for r in sandbox.records):
            await asyncio.sleep(0.01)
        died.set()
        raise Died("add_member")

    cloud.add_member = add_member  # type: ignore[method-assign]
    return died


def test_a_worker_killed_during_a_4_second_post_waits_for_it_and_never_sends_twice(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    sandbox.inject(Fault.stall(4.0, method="POST"))
    died = _die_with_the_post_under_way(bot, sandbox)
    bot.ack_text(f"{IMAGE} {MEMBER}")

    restart(bot, died)

    # Read back at once: not there yet (the POST is being carried out), and not sent again.
    sandbox.wait_for(lambda records: any(r.method == "GET" and r.done for r in records))
    assert bot.request().state == "sending"
    request = bot.wait_state("pending", timeout=30)
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert calls(sandbox, "GET")[0].status == 404
    assert calls(sandbox, "GET")[-1].status == 200
    assert (request.api_status, request.error_kind) == (200, None)
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    nothing_open(bot)


def test_a_409_after_a_restart_for_the_bots_own_earlier_post_is_its_success(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    sandbox.inject(Fault.stall(1.0, method="POST"))
    died = _die_with_the_post_under_way(bot, sandbox)
    bot.ack_text(f"{IMAGE} {MEMBER}")
    assert died.wait(10)
    bot.stop_worker()
    settled(sandbox, 1)  # the first POST landed; nobody heard its answer
    # After a few seconds (RESTART_GRACE) the worker sends again if it reads nothing:
    # here a read that misses the member (as an eventually consistent read may).
    bot.clock.advance(seconds=RESTART_GRACE.total_seconds() + 1)
    sandbox.inject(
        Fault.answer(404, service_error(404, "req-miss"), method="GET", path="/members/")
    )

    bot.start_worker()

    request = bot.wait_state("pending")
    said_once(bot, slack, replies=[SHARED])
    assert [(r.method, r.status) for r in calls(sandbox)][:3] == [
        ("POST", 200),
        ("GET", 404),
        ("POST", 409),
    ]
    assert "already" not in bot.thread_texts(parents(slack)[0])[0]
    assert (request.state, request.error_kind, request.member_status) == (
        "pending",
        None,
        "pending",
    )


# -- a real process, killed with SIGKILL -------------------------------------------------


def test_a_worker_process_killed_before_hearing_that_slack_took_the_parent_posts_it_once(
    make: Callable[..., BotHarness],
    sandbox: Sandbox,
    slack: FakeSlack,
    spawn_worker: Callable[[BotHarness], subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    bot = make()
    bot.stop_worker()
    bot.ack_text(f"{IMAGE} {MEMBER}")
    slack.hold("chat.postMessage", 3.0)  # Slack takes the parent; its answer comes late

    worker = spawn_worker(bot)
    slack.wait_for(lambda: parents(slack), timeout=30, what="the parent posted")
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL
    assert bot.told().parent_ts is None  # the database never heard of it
    bot.start_worker()

    bot.wait_state("pending")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    [looked] = slack.calls("conversations.history")
    assert looked.ok
    nothing_open(bot)
