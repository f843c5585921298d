"""A direct share's add leaves first; its parent message is posted while the add is under way.

The thread's reply waits for the parent (it is threaded under it). What happens to
Slack while the add is with the cloud never costs the cloud's answer, and a crash
between the two is read back at the next start: parent, then reply, each said once,
and the add never sent twice.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.scp.sandbox import Fault, Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, BotHarness, settings_for
from tests.test_crash_recovery import Died, lookups, parents, restart, said_once
from tests.test_faults import calls, nothing_open, wait_until

SHARED = f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"


@pytest.fixture
def make(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[..., BotHarness]]:
    """A running bot (U1 sharer, UREQ requester, UAPP1 approver), notify channel on."""
    made: list[BotHarness] = []

    def build(**overrides: Any) -> BotHarness:
        settings = settings_for(
            slack, sandbox.url, tmp_path, SHARE_NOTIFY_CHANNEL="CNOTIFY", **overrides
        )
        harness = BotHarness(settings, slack)
        made.append(harness)
        harness.grant("U1", Role.SHARER)
        harness.grant("UREQ", Role.REQUESTER)
        harness.grant("UAPP1", Role.APPROVER)
        harness.services.members.add(MEMBER, "QA account", by="test")
        return harness

    yield build
    for harness in made:
        harness.close()


def posts_done(sandbox: Sandbox) -> bool:
    return any(r.method == "POST" and r.done for r in calls(sandbox))


# -- the order -----------------------------------------------------------------------------


def test_the_add_is_carried_out_while_slack_still_holds_the_parent(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    slack.hold("chat.postMessage", 3.0)  # the parent: taken at once, answered 3 s later
    began = time.monotonic()
    bot.ack_text(f"{IMAGE} {MEMBER}")

    # The cloud has the add and answered it while the parent's answer is still on its way.
    sandbox.wait_for(lambda _records: posts_done(sandbox), timeout=2.5)
    slack.wait_for(lambda: parents(slack), timeout=2.5, what="the parent")
    assert time.monotonic() - began < 3.0  # (so Slack has not answered the parent yet)
    assert bot.told().parent_ts is None
    assert slack.thread(parents(slack)[0].ts or "") == []  # nor has any reply gone out

    request = bot.wait_state("pending")
    # The reply waited for the parent: threaded under it, said once, the add sent once.
    wait_until(lambda: bot.told().announced_state == "pending", what="the announcement")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert request.member_status == "pending"
    [parent] = parents(slack)
    [reply] = slack.thread(parent.ts or "")
    assert reply.time >= parent.time
    assert lookups(slack) == []
    nothing_open(bot)


def test_a_failed_add_is_still_told_in_the_thread_parent_then_reply(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "ValidationError",
                    "status": 400,
                    "detail": "member_id is not an account",
                    "request_id": "req-400",
                }
            ]
        }
    )
    sandbox.inject(Fault.answer(400, body, method="POST"))
    slack.hold("chat.postMessage", 1.0)  # the add's answer comes before the parent's

    bot.ack_text(f"{IMAGE} {MEMBER}")

    request = bot.wait_state("failed")
    [parent] = parents(slack)
    [reply] = bot.wait_thread(parent)
    assert f"The cloud refused member id `{MEMBER}`" in reply
    assert "Request id for support: `req-400`" in reply
    assert request.error_kind == "member_refused"
    assert len(calls(sandbox, "POST")) == 1


def test_an_approved_share_says_its_approval_before_it_is_sent(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    bot.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    wait_until(lambda: bot.told().announced_state == "awaiting_approval", what="the card")
    [parent] = parents(slack)
    [card] = slack.messages("CAPPROVE")
    cloud = bot.services.cloud
    real = cloud.add_member
    thread_when_sent: list[list[str]] = []

    async def add_member(*args: Any, **kwargs: Any) -> Any:
        thread_when_sent.append(bot.thread_texts(parent))
        return await real(*args, **kwargs)

    cloud.add_member = add_member  # type: ignore[method-assign]

    bot.sender.click(card, "approve", user_id="UAPP1")

    bot.wait_state("pending")
    texts = bot.wait_thread(parent, 3)
    assert texts[1] == "Approved by <@UAPP1>. Working on it now."
    assert texts[2].startswith(SHARED)
    # The approval was said (and the parent posted when approval was asked) before the add.
    [before_add] = thread_when_sent
    assert before_add == texts[:2]
    assert len(parents(slack)) == 1
    assert len(calls(sandbox, "POST")) == 1


# -- Slack down while the add is under way ---------------------------------------------------


def test_slack_down_during_the_parent_keeps_the_clouds_answer_and_tells_it_later(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    slack.fail("chat.postMessage", "service_unavailable")  # the parent: Slack is down

    bot.ack_text(f"{IMAGE} {MEMBER}")

    # The add went through and its answer is stored, though nothing could be said yet
    # (the worker tries Slack again 2 s after a first failure).
    request = wait_until(
        lambda: (r := bot.request()).state == "pending" and r, what="the add's answer stored"
    )
    assert request.member_status == "pending"
    [refused] = slack.calls("chat.postMessage")
    assert refused.response["error"] == "service_unavailable"
    assert parents(slack) == []
    assert bot.told().parent_ts is None

    bot.clock.advance(seconds=3)
    bot.worker.wake()

    wait_until(lambda: bot.told().announced_state == "pending", what="the announcement")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert [r.method for r in calls(sandbox)] == ["POST"]  # nothing read back, nothing resent
    nothing_open(bot)


# -- a crash between the add and the parent ------------------------------------------------


def die_before_the_parent(bot: BotHarness, sandbox: Sandbox) -> threading.Event:
    """End the worker just before its parent message goes out, once the add it sent has
    been carried out by the cloud (whose answer the dying worker may never record)."""
    announcer = bot.services.announcer
    real = announcer._post_parent
    died = threading.Event()

    async def post_parent(*args: Any, **kwargs: Any) -> Any:
        if died.is_set():
            return await real(*args, **kwargs)
        deadline = time.monotonic() + 5
        while not posts_done(sandbox):
            assert time.monotonic() < deadline, "the add never left while the parent waited"
            await asyncio.sleep(0.005)
        died.set()
        raise Died("before the parent")

    announcer._post_parent = post_parent  # type: ignore[method-assign]
    return died


def test_a_worker_killed_between_the_add_and_the_parent_says_parent_then_reply_once(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    died = die_before_the_parent(bot, sandbox)
    bot.ack_text(f"{IMAGE} {MEMBER}")

    restart(bot, died)

    wait_until(lambda: bot.told().announced_state == "pending", what="the announcement")
    said_once(bot, slack, replies=[SHARED])
    [parent] = parents(slack)
    [reply] = slack.thread(parent.ts or "")
    assert reply.time >= parent.time  # the reply never before its parent
    # Sent once: the restarted worker read the add back (or had its answer), never resent it.
    assert len(calls(sandbox, "POST")) == 1
    assert bot.request().member_status == "pending"
    # The parent might have gone out unrecorded: looked for once, found nowhere, posted.
    [looked] = lookups(slack)
    assert looked.method == "conversations.history"
    assert bot.told().check_before_posting is False
    nothing_open(bot)


def test_a_stop_while_the_parent_is_posted_finishes_the_add_and_says_it_once(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    sandbox.inject(Fault.stall(0.5, method="POST"))
    slack.hold("chat.postMessage", 0.3)
    bot.ack_text(f"{IMAGE} {MEMBER}")
    sandbox.wait_for(lambda records: any(r.method == "POST" for r in records), timeout=5)

    bot.stop_worker()  # the step under way is given its time to end: add and parent both
    request = bot.request()
    assert request.state == "pending"
    assert bot.told().parent_ts is not None
    bot.start_worker()

    wait_until(lambda: bot.told().announced_state == "pending", what="the announcement")
    said_once(bot, slack, replies=[SHARED])
    assert len(calls(sandbox, "POST")) == 1
    assert lookups(slack) == []
