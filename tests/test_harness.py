"""The test harness itself: a bot it closes leaves nothing open behind it."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path

from bot.scp.sandbox import Sandbox
from tests.fakes.slack import FakeSlack
from tests.harness import BotHarness, settings_for


def test_a_slack_call_under_way_when_the_bot_is_closed_leaves_no_socket_open(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    # A listener's work after its ack goes on after Slack has its answer; a test may end
    # while it is still talking to Slack. Bolt's client opens a connection of its own
    # for each call: one is open, waiting for Slack's answer, when the harness closes.
    harness = BotHarness(settings_for(slack, sandbox.url, tmp_path), slack)
    slack.hold("chat.postMessage", 5.0)
    asyncio.run_coroutine_threadsafe(
        harness.app.client.chat_postMessage(channel="C1", text="still under way"), harness.loop
    )
    slack.wait_for(lambda: slack.calls("chat.postMessage"), what="the call under way")
    started = time.monotonic()
    harness.close()
    assert time.monotonic() - started < 3.0  # not held up by the slow answer
    assert harness.loop.is_closed()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    unclosed = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
