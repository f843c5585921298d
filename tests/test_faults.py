"""Faults: the cloud API, Slack, the worker process and the database misbehaving.

Each test asserts what the user sees (acks, thread replies, response_url posts) and
what the database holds. The cloud API is the sandbox, scripted with `Fault`s; Slack is
the fake, scripted with `rate_limit` and `fail`. Waits are on events and conditions;
short sleeps only prove that nothing (more) happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.scp import RetryPolicy
from bot.scp.sandbox import Fault, Record, Sandbox
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.states import LIFECYCLE, SEND
from bot.sharing.values import Role
from bot.sharing.worker import RESTART_GRACE
from storage import Database, Grants, ShareRequests
from storage.errors import StorageError
from storage.requests import NewRequest
from tests.fakes.slack import Call, FakeSlack
from tests.harness import (
    ACCESS_KEY,
    BOT_TOKEN,
    FAST_RETRY,
    IMAGE,
    MEMBER,
    SECRET_KEY,
    SIGNING_SECRET,
    BotHarness,
    settings_for,
)

MAIN = Path(__file__).resolve().parents[1]
SHORT = httpx.Timeout(0.3, connect=1.0)


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def make(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[..., BotHarness]]:
    """A running bot (U1 sharer, UADMIN admin, MEMBER known), with a chosen cloud client."""
    made: list[BotHarness] = []

    def build(
        *, retry: RetryPolicy = FAST_RETRY, timeout: httpx.Timeout | None = None, **overrides: Any
    ) -> BotHarness:
        settings = settings_for(slack, sandbox.url, tmp_path, **overrides)
        harness = BotHarness(settings, slack, retry=retry, timeout=timeout)
        made.append(harness)
        harness.grant("U1", Role.SHARER)
        harness.grant("UADMIN", Role.ADMIN)
        harness.services.members.add(MEMBER, "QA account", by="test")
        return harness

    yield build
    for harness in made:
        harness.close()


def calls(sandbox: Sandbox, method: str | None = None) -> list[Record]:
    """Calls on the member API (the unsigned version list left out)."""
    return [
        r
        for r in sandbox.records
        if r.path.startswith("/v1/")
        and "/members" in r.path
        and (method is None or r.method == method)
    ]


def settled(sandbox: Sandbox, count: int, method: str = "POST", timeout: float = 5.0) -> None:
    """Wait until `count` calls of `method` arrived and every one of them is finished."""
    sandbox.wait_for(
        lambda records: (
            len(found := [r for r in records if r.method == method and "/members" in r.path])
            >= count
            and all(r.done for r in found)
        ),
        timeout,
    )


def outcome(bot: BotHarness, state: str) -> tuple[str, ShareRequest]:
    """The one thread reply of a finished request, and the request as stored."""
    request = bot.wait_state(state)
    [reply] = bot.wait_thread(bot.parent("C1"))
    return reply, request


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll a condition outside the fakes (the database, a process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def nothing_open(bot: BotHarness) -> None:
    """No request is left half-way."""
    stuck = bot.services.requests.in_states(RequestState.QUEUED, RequestState.SENDING)
    assert stuck == []


def service_error(status: int, request_id: str, detail: str = "scripted") -> str:
    return json.dumps(
        {
            "errors": [
                {
                    "code": "Scripted",
                    "title": "Scripted",
                    "status": status,
                    "detail": detail,
                    "request_id": request_id,
                }
            ]
        }
    )


# -- the cloud API: timeouts -----------------------------------------------------------------


def test_a_stalled_add_times_out_and_the_retry_adds_the_member_once(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make(timeout=SHORT)
    sandbox.inject(Fault.stall(1.0, method="POST"))

    assert bot.ack_text(f"{IMAGE} {MEMBER}").startswith("On it")

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert "already" not in reply
    assert (request.api_status, request.member_status, request.error_kind) == (200, "pending", None)
    # The stalled first attempt is handled after the retry won: it finds the member there.
    settled(sandbox, 2)
    first, second = calls(sandbox, "POST")
    assert (second.status, first.status) == (200, 409)
    assert second.at - first.at < 1.0  # the retry did not wait for the stall
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    nothing_open(bot)


def test_a_cloud_api_that_never_answers_in_time_is_tried_only_as_often_as_the_policy_says(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make(timeout=httpx.Timeout(0.2, connect=1.0))
    sandbox.inject(*[Fault.stall(3.0, method="POST") for _ in range(FAST_RETRY.attempts + 2)])
    started = time.monotonic()

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "failed")
    took = time.monotonic() - started
    assert "The cloud API didn't answer properly, even after retries" in reply
    assert "Please try again in a few minutes" in reply
    assert "Request id" not in reply  # no answer came, so there is no id to give
    assert (request.error_kind, request.api_status, request.api_request_id) == (
        "unavailable",
        None,
        None,
    )
    assert took < 3.0  # bounded by the client's timeout, not by the stall
    time.sleep(0.3)
    assert len(calls(sandbox, "POST")) == FAST_RETRY.attempts
    nothing_open(bot)


def test_an_add_that_lands_after_the_bot_gave_up_is_found_and_reported(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make(timeout=httpx.Timeout(0.2, connect=1.0))
    # Each add is held longer than all three attempts take (3 x 0.2 s and the backoffs),
    # with room for a busy machine: none lands before the bot gives up.
    sandbox.inject(*[Fault.stall(2.0, method="POST") for _ in range(FAST_RETRY.attempts)])
    bot.ack_text(f"{IMAGE} {MEMBER}")
    reply, request = outcome(bot, "failed")
    assert "I'll check for the next hour and say so here" in reply
    settled(sandbox, FAST_RETRY.attempts)  # the held adds finish: the member is there now
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]

    bot.clock.advance(seconds=61)
    bot.worker.wake()
    request = bot.wait_state("pending")

    replies = bot.wait_thread(bot.parent(), 2)
    assert replies[1].startswith("Update: the cloud did carry this out after all. Shared:")
    assert (request.error_kind, request.member_status) == (None, "pending")
    assert len(calls(sandbox, "POST")) == FAST_RETRY.attempts  # read back, never sent again
    assert calls(sandbox, "GET")


def test_an_add_that_never_landed_is_rechecked_quietly_then_left(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make(timeout=httpx.Timeout(0.2, connect=1.0))
    sandbox.inject(*[Fault.reset(method="POST") for _ in range(FAST_RETRY.attempts)])
    bot.ack_text(f"{IMAGE} {MEMBER}")
    outcome(bot, "failed")

    bot.clock.advance(seconds=61)
    bot.worker.wake()
    wait_until(lambda: bot.request().next_poll_at is None, what="the recheck")

    assert bot.request().state == "failed"
    assert len(bot.thread_texts(bot.parent())) == 1  # nothing more was said
    assert sandbox.members(IMAGE) == []


# -- the cloud API: resets, 5xx, 429 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "state"),
    [
        pytest.param([Fault.reset(method="POST")] * 2, "pending", id="reset-then-ok"),
        pytest.param([Fault.reset(method="POST")] * 3, "failed", id="reset-every-time"),
        pytest.param([Fault.answer(503, method="POST")] * 2, "pending", id="503-then-ok"),
        pytest.param([Fault.answer(502, method="POST")] * 3, "failed", id="502-every-time"),
        pytest.param([Fault.answer(504, method="POST")] * 3, "failed", id="504-every-time"),
        pytest.param(
            [
                Fault.answer(
                    502, "<html>Bad Gateway</html>", content_type="text/html", method="POST"
                ),
                Fault.answer(503, '{"errors": [{"code": "Ser', method="POST"),
            ],
            "pending",
            id="html-then-cut-json-then-ok",
        ),
    ],
)
def test_transient_failures_are_retried_within_the_policy(
    make: Callable[..., BotHarness],
    sandbox: Sandbox,
    faults: list[Fault],
    state: str,
) -> None:
    bot = make()
    sandbox.inject(*faults)

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, state)
    posts = calls(sandbox, "POST")
    assert len(posts) == min(len(faults) + 1, FAST_RETRY.attempts)
    if state == "pending":
        assert reply.startswith(
            f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
        )
        assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
        assert posts[-1].status == 200 and request.api_status == 200
    else:
        assert "didn't answer properly, even after retries" in reply
        assert request.error_kind == "unavailable"
        assert sandbox.members(IMAGE) == []
        last = posts[-1]
        if last.status is not None:  # an answer came: its request id is the one to quote
            assert request.api_request_id == last.request_id
            assert f"Request id for support: `{last.request_id}`" in reply
    nothing_open(bot)


def test_a_500_is_not_retried_and_the_user_gets_its_request_id(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    sandbox.inject(Fault.answer(500, service_error(500, "req-boom"), method="POST"))

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "failed")
    assert "Request id for support: `req-boom`" in reply
    assert (request.error_kind, request.api_status, request.api_request_id) == (
        "unavailable",
        500,
        "req-boom",
    )
    assert len(calls(sandbox, "POST")) == 1


def test_cut_error_bodies_still_give_the_request_id_from_the_header(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    sandbox.inject(
        *[
            Fault.answer(
                503,
                '{"errors": [{"code": "Servi',
                headers={"X-Request-Id": f"req-cut-{n}"},
                method="POST",
            )
            for n in range(1, FAST_RETRY.attempts + 1)
        ]
    )

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "failed")
    last = f"req-cut-{FAST_RETRY.attempts}"
    assert f"Request id for support: `{last}`" in reply
    assert (request.api_status, request.api_request_id) == (503, last)
    assert len(calls(sandbox, "POST")) == FAST_RETRY.attempts


def test_a_429_retry_after_is_waited_for(make: Callable[..., BotHarness], sandbox: Sandbox) -> None:
    bot = make()
    sandbox.inject(
        Fault.answer(
            429, service_error(429, "req-slow"), headers={"Retry-After": "1"}, method="POST"
        )
    )

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    first, second = calls(sandbox, "POST")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # Retry-After: 1, not the policy's 0.01 s backoff
    assert request.api_status == 200


def test_a_429_asking_for_longer_than_allowed_fails_at_once_with_the_request_id(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    sandbox.inject(
        Fault.answer(
            429, service_error(429, "req-later"), headers={"Retry-After": "600"}, method="POST"
        )
    )
    started = time.monotonic()

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "failed")
    assert time.monotonic() - started < 2.0
    assert "Please try again in a few minutes" in reply
    assert "Request id for support: `req-later`" in reply
    assert (request.error_kind, request.api_status) == ("unavailable", 429)
    assert len(calls(sandbox, "POST")) == 1


# -- the cloud API: the add happened but the answer was lost -----------------------------------


@pytest.mark.parametrize(
    ("fault", "posts"),
    [
        # The answer may have been lost on its way: read before sending again, and the
        # member is there: one add, no second POST.
        pytest.param(Fault.apply_then_drop(method="POST"), [None], id="applied-then-reset"),
        pytest.param(
            Fault.answer(
                504,
                "<html>Gateway Timeout</html>",
                content_type="text/html",
                apply=True,
                method="POST",
            ),
            [504],
            id="applied-then-proxy-html",
        ),
        # The service said it was unavailable: sent again, and its 409 is recognised.
        pytest.param(
            Fault.answer(503, apply=True, method="POST"), [503, 409], id="applied-then-503"
        ),
    ],
)
def test_a_lost_answer_and_a_retry_add_one_member_and_say_pending(
    make: Callable[..., BotHarness], sandbox: Sandbox, fault: Fault, posts: list[int | None]
) -> None:
    bot = make()
    sandbox.inject(fault)

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert "already" not in reply
    assert (request.state, request.error_kind, request.member_status) == (
        "pending",
        None,
        "pending",
    )
    assert [r.status for r in calls(sandbox, "POST")] == posts
    assert [r.method for r in calls(sandbox)] == ["POST"] * len(posts) + ["GET"]  # read, once
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]


def test_a_reset_before_anything_was_done_is_read_then_sent_again_once(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    sandbox.inject(Fault.reset(method="POST"))

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    # The read says the first add never happened: the second is the only one.
    assert [(r.method, r.status) for r in calls(sandbox)] == [
        ("POST", None),
        ("GET", 404),
        ("POST", 200),
    ]
    assert (request.state, request.error_kind) == ("pending", None)


def test_a_cut_success_body_is_read_back_and_not_sent_again(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    sandbox.inject(Fault.answer(200, '{"created_at": "2025-07-', apply=True, method="POST"))

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert [r.method for r in calls(sandbox)] == ["POST", "GET"]
    assert request.member_created_at == sandbox.members(IMAGE)[0].created_at


def test_a_lost_answer_to_an_unshare_is_not_reported_as_nothing_to_remove(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    sandbox.inject(Fault.apply_then_drop(method="DELETE"))

    bot.ack_text(f"unshare {IMAGE} {MEMBER}")

    request = bot.wait_state("removed", request_id=2)
    parents = [c for c in bot.slack.messages("C1") if not c.args.get("thread_ts")]
    assert len(parents) == 2
    [reply] = bot.wait_thread(parents[1])
    assert reply == f"Removed `{MEMBER}` (QA account) from image `{IMAGE}`."
    assert request.error_kind is None
    assert [r.status for r in calls(sandbox, "DELETE")] == [None, 404]
    assert sandbox.members(IMAGE) == []


# -- Slack -------------------------------------------------------------------------------------


def test_a_rate_limited_post_is_retried_after_retry_after_and_delivered_once(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    slack.rate_limit("chat.postMessage", retry_after=1)

    bot.ack_text(f"{IMAGE} {MEMBER}")

    reply, _ = outcome(bot, "pending")
    limited, parent, answer = slack.calls("chat.postMessage")
    assert (limited.status, limited.response["error"]) == (429, "ratelimited")
    assert parent.ok and not parent.args.get("thread_ts")
    assert parent.time - limited.time >= 0.95  # Retry-After: 1 was honoured
    assert answer.args["thread_ts"] == parent.ts and answer.args["text"] == reply
    assert (bot.told().parent_ts, bot.told().delivery_failures) == (parent.ts, 0)
    assert len(calls(sandbox, "POST")) == 1


def _fail_after_the_parent(bot: BotHarness, sandbox: Sandbox, arm: Callable[[], None]) -> Call:
    """Stall the add, and script Slack's failure while it is under way; returns the parent."""
    sandbox.inject(Fault.stall(0.3, method="POST"))
    bot.ack_text(f"{IMAGE} {MEMBER}")
    parent = bot.parent("C1")
    sandbox.wait_for(lambda records: any(r.method == "POST" for r in records))
    arm()
    return parent


def _retry_delivery(bot: BotHarness, failures: int) -> None:
    """Let the worker's delivery back-off pass, `failures` times over."""
    for n in range(1, failures + 1):
        wait_until(
            lambda n=n: bot.told().delivery_failures == n and bot.request().lease_until is None,
            what=f"delivery failure {n} recorded",
        )
        bot.clock.advance(seconds=2**n + 1)
        bot.worker.wake()


def test_slack_failing_the_outcome_reply_is_retried_later_and_answered_once(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    parent = _fail_after_the_parent(
        bot, sandbox, lambda: slack.fail("chat.postMessage", "internal_error", times=3)
    )

    _retry_delivery(bot, 3)

    bot.wait_state("pending")
    assert parent.ts is not None
    [reply] = bot.wait_thread(parent)
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    refused = [c for c in slack.calls("chat.postMessage") if not c.ok]
    assert [c.response["error"] for c in refused] == ["internal_error"] * 3
    assert all(c.args.get("thread_ts") == parent.ts for c in refused)
    assert len(slack.updates(parent.ts)) == 1
    assert (bot.told().delivery_failures, bot.told().announced_state) == (0, "pending")
    assert len(calls(sandbox, "POST")) == 1  # the cloud API was asked once
    time.sleep(0.1)
    assert len(slack.thread(parent.ts)) == 1


def test_slack_failing_half_way_does_not_repeat_what_was_already_said(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    parent = _fail_after_the_parent(
        bot, sandbox, lambda: slack.fail("chat.update", "internal_error", times=2)
    )

    _retry_delivery(bot, 2)

    bot.wait_state("pending")
    assert parent.ts is not None
    slack.wait_for(lambda: slack.updates(parent.ts), what="the parent updated")
    time.sleep(0.1)
    assert len(slack.thread(parent.ts)) == 1  # the reply went out once, before the failures
    assert len([c for c in slack.calls("chat.update") if not c.ok]) == 2
    assert len(slack.updates(parent.ts)) == 1
    assert bot.told().delivery_failures == 0
    assert len(calls(sandbox, "POST")) == 1


# -- the worker killed mid-call ----------------------------------------------------------------


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[[BotHarness], subprocess.Popen[bytes]]]:
    """`python -m bot worker` as a real process, with the bot's settings; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(bot: BotHarness) -> subprocess.Popen[bytes]:
        settings = bot.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SCP_"))}
        env.update(
            PYTHONPATH=str(MAIN),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=settings.SLACK_API_URL,
            SCP_ENDPOINT=settings.scp_base_url,
            SCP_ACCESS_KEY=ACCESS_KEY,
            SCP_SECRET_KEY=SECRET_KEY,
            DATABASE_PATH=str(settings.DATABASE_PATH),
            SHARE_APPROVAL_CHANNEL=settings.SHARE_APPROVAL_CHANNEL,
        )
        log = (tmp_path / f"worker-{len(started) + 1}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _kill_during_the_add(
    bot: BotHarness, sandbox: Sandbox, spawn: Callable[[BotHarness], subprocess.Popen[bytes]]
) -> None:
    """Record a share with no worker running, let a worker process send it, kill -9 it mid-call."""
    bot.stop_worker()
    assert bot.ack_text(f"{IMAGE} {MEMBER}").startswith("On it")
    assert bot.request().state == "queued"

    worker = spawn(bot)
    sandbox.wait_for(lambda records: any(r.method == "POST" for r in records), timeout=30)
    [post] = calls(sandbox, "POST")
    assert not post.done  # the cloud API has the request and has not answered yet
    assert bot.request().state == "sending"
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL


def test_a_worker_killed_while_the_add_is_under_way_is_reconciled_with_a_read(
    make: Callable[..., BotHarness],
    sandbox: Sandbox,
    slack: FakeSlack,
    spawn_worker: Callable[[BotHarness], subprocess.Popen[bytes]],
) -> None:
    bot = make()
    sandbox.inject(Fault.stall(1.5, method="POST"))

    _kill_during_the_add(bot, sandbox, spawn_worker)
    settled(sandbox, 1)  # the stall ends: the member is added, and nobody hears the answer
    assert calls(sandbox, "POST")[0].status == 200
    assert bot.request().state == "sending"
    bot.start_worker()

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert "already" not in reply
    assert (request.state, bot.told().announced_state, request.member_status) == (
        "pending",
        "pending",
        "pending",
    )
    assert [r.method for r in calls(sandbox)] == ["POST", "GET"]  # reconciled by reading
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    assert len([c for c in slack.messages("C1") if not c.args.get("thread_ts")]) == 1
    nothing_open(bot)


def test_a_worker_killed_after_a_post_that_never_landed_sends_it_once_on_restart(
    make: Callable[..., BotHarness],
    sandbox: Sandbox,
    slack: FakeSlack,
    spawn_worker: Callable[[BotHarness], subprocess.Popen[bytes]],
) -> None:
    bot = make()
    sandbox.delay = 1.0  # the POST is held, then reset without being carried out
    sandbox.inject(Fault.reset(method="POST"))

    _kill_during_the_add(bot, sandbox, spawn_worker)
    sandbox.delay = 0.0
    settled(sandbox, 1)
    assert calls(sandbox, "POST")[0].status is None and sandbox.members(IMAGE) == []
    assert bot.request().state == "sending"
    bot.start_worker()

    # Read back at once: not there. The dead worker's last call could still be being
    # carried out, so it is read again for a few seconds (RESTART_GRACE), not sent again;
    # not the client's whole time budget (about 4 minutes): the dead worker retries nothing.
    settled(sandbox, 1, "GET")
    time.sleep(0.2)
    assert [r.method for r in calls(sandbox)] == ["POST", "GET"]
    assert bot.request().state == "sending"
    bot.clock.advance(seconds=RESTART_GRACE.total_seconds())
    bot.worker.wake()

    reply, request = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert (request.state, bot.told().announced_state) == ("pending", "pending")
    reads_then_sends = [(r.method, r.status) for r in calls(sandbox)][1:]
    assert reads_then_sends[0] == ("GET", 404) and reads_then_sends[-1] == ("POST", 200)
    assert [m for m, _ in reads_then_sends[:-1]] == ["GET"] * (len(reads_then_sends) - 1)
    assert [m.member_id for m in sandbox.members(IMAGE)] == [MEMBER]
    parent = bot.parent("C1")
    assert parent.ts is not None and len(slack.thread(parent.ts)) == 1
    nothing_open(bot)


# -- the database --------------------------------------------------------------------------------

OTHER_PROCESS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from bot.sharing.states import LIFECYCLE
    from bot.sharing.values import Role
    from storage import Database, Grants, ShareRequests
    from storage.requests import NewRequest

    path, go, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    database = Database(path)
    requests, grants = ShareRequests(database, lifecycle=LIFECYCLE), Grants(database)
    Path(str(go) + ".ready").touch()
    while not go.exists():
        time.sleep(0.005)
    for i in range(count):
        requests.record(NewRequest("share", "UPROC", sys.argv[4], f"p-{i}", "", "en"))
        grants.grant(f"UPROC{i}", Role.REQUESTER, by="process")
    database.close()
    print("done")
    """
)


def test_many_writers_in_threads_and_another_process_lose_no_row(tmp_path: Path) -> None:
    path, go = tmp_path / "bot.db", tmp_path / "go"
    database = Database(path)
    requests, grants = ShareRequests(database, lifecycle=LIFECYCLE), Grants(database)
    threads, each, in_process = 12, 25, 150
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, str(path), str(go), str(in_process), IMAGE],
        env={**os.environ, "PYTHONPATH": str(MAIN)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    barrier = threading.Barrier(threads + 1)
    failures: list[BaseException] = []
    created_same: list[bool] = []
    wait_until(lambda: Path(f"{go}.ready").exists() or other.poll() is not None, 30)

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(each):
                requests.record(NewRequest("share", f"U{n}", IMAGE, f"t{n}-{i}", "", "en"))
                grants.grant(f"U{n}x{i}", Role.SHARER, by="test")
            # Every thread asks for the same share once: one row, however they interleave.
            _, created = requests.record(NewRequest("share", f"U{n}", IMAGE, "same", "", "en"))
            created_same.append(created)
        except BaseException as error:  # anything at all is a failure of the test
            failures.append(error)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    go.touch()
    barrier.wait()
    for t in workers:
        t.join(60)
    out, err = other.communicate(timeout=60)

    assert failures == []
    assert (other.returncode, out.strip(), err) == (0, b"done", b"")
    with contextlib.closing(sqlite3.connect(path)) as check:
        members = [row[0] for row in check.execute("SELECT member_id FROM share_requests")]
        holders = [row[0] for row in check.execute("SELECT user_id FROM grants")]
    expected = {f"t{n}-{i}" for n in range(threads) for i in range(each)}
    expected |= {f"p-{i}" for i in range(in_process)} | {"same"}
    assert sorted(members) == sorted(expected)  # every row there, none twice
    assert created_same.count(True) == 1
    assert len(holders) == len(set(holders)) == threads * each + in_process
    database.close()


def test_a_command_waits_for_another_writer_holding_the_lock_and_goes_through(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    bot = make()
    blocker = sqlite3.connect(
        bot.settings.DATABASE_PATH, isolation_level=None, check_same_thread=False
    )
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, lambda: blocker.execute("COMMIT"))
    release.start()
    started = time.monotonic()

    ack = bot.ack_text(f"{IMAGE} {MEMBER}")

    took = time.monotonic() - started
    release.join()
    blocker.close()
    assert ack.startswith("On it")
    assert 0.9 <= took < 3.0  # it waited for the lock, and still answered within Slack's 3 s
    reply, _ = outcome(bot, "pending")
    assert reply.startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert len(calls(sandbox, "POST")) == 1


def test_a_lock_held_past_the_busy_timeout_is_a_storage_error_and_nothing_is_half_written(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path / "bot.db", busy_timeout=0.3)
    requests = ShareRequests(database, lifecycle=LIFECYCLE)
    blocker = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()

    with pytest.raises(StorageError, match="locked"):
        requests.record(NewRequest("share", "U1", IMAGE, MEMBER, "", "en"))

    assert time.monotonic() - started < 5.0
    blocker.execute("COMMIT")
    blocker.close()
    assert requests.in_states(*RequestState) == []
    request, created = requests.record(NewRequest("share", "U1", IMAGE, MEMBER, "", "en"))
    assert created and request.state == "queued"
    database.close()


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make a file impossible to open for writing, even for root; undone afterwards."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file unwritable")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("language_known", [True, False], ids=["returning-user", "new-user"])
def test_a_database_that_cannot_be_written_gets_a_kind_ack_and_nothing_is_sent(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack, language_known: bool
) -> None:
    bot = make()
    if language_known:
        # Cached, so that the command's first write is the request.
        bot.call(bot.services.languages.of("U1"))

    # Connections opened from now on (the command's) find the file read-only, as after a
    # disk error or a read-only remount. The process's few connections are shared by its
    # threads: with the worker stopped, close them, so that the command's are opened on
    # the read-only file; the worker comes back to send whatever was recorded.
    bot.stop_worker()
    bot.database.close()
    with unwritable(Path(bot.settings.DATABASE_PATH)):
        response = bot.command(f"{IMAGE} {MEMBER}")
        bot.start_worker()
        time.sleep(0.2)

    assert response.status_code == 200
    assert response.json() == {
        "text": "I couldn't write to my database, so nothing was done. "
        "Please try again in a minute.",
        "response_type": "ephemeral",
    }
    assert calls(sandbox) == [] and slack.messages() == []
    assert bot.services.requests.in_states(*RequestState) == []


def test_an_interrupted_add_that_cannot_be_read_back_for_good_is_answered(
    make: Callable[..., BotHarness], sandbox: Sandbox
) -> None:
    # The keys were rotated while the bot was down: every read is refused with 401.
    bot = make(SCP_SECRET_KEY="rotated-secret-key-0123456789")
    bot.stop_worker()
    bot.ack_text(f"{IMAGE} {MEMBER}")
    # As if the worker died mid-call.
    assert bot.services.requests.start_sending(1, from_=SEND.from_, to=SEND.to)

    bot.start_worker()

    reply, request = outcome(bot, "failed")
    assert "credentials or settings were refused" in reply
    assert request.error_kind == "misconfigured"
    assert calls(sandbox, "POST") == []  # never sent blindly
    nothing_open(bot)


def test_slow_list_commands_never_hold_up_other_acks(
    make: Callable[..., BotHarness], sandbox: Sandbox, slack: FakeSlack
) -> None:
    bot = make()
    # Each list holds a follow-up thread for 2 s: an ack held behind one would take 2 s or
    # more; one that is not takes milliseconds, and 1.5 s leaves room for a busy machine.
    sandbox.delay = 2.0
    lists = [
        threading.Thread(
            target=bot.command,
            args=(f"list {IMAGE}",),
            kwargs={"response_url": slack.response_url(f"list{n}")},
        )
        for n in range(12)  # three times the follow-up threads, each held 2 s
    ]
    for thread in lists:
        thread.start()

    started = time.monotonic()
    ack = bot.ack_text(f"{IMAGE} {MEMBER}")
    took = time.monotonic() - started

    assert ack.startswith("On it") and took < 1.5
    for thread in lists:
        thread.join()
    answers = slack.wait_for(
        lambda: len(slack.responses()) == 12 and slack.responses(), timeout=20, what="12 lists"
    )
    # Each list got its answer (the share above may or may not have landed yet).
    assert all(f"mage `{IMAGE}`" in a.body["text"] for a in answers), [a.body for a in answers]
