"""Fixtures: a clean environment, the sandbox, a fake Slack, and a running bot."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from storage import Role
from tests.fakes.slack import FakeSlack
from tests.harness import (
    ACCESS_KEY,
    APP_TOKEN,
    BOT_TOKEN,
    IMAGE,
    MEMBER,
    MEMBER_NAME,
    SECRET_KEY,
    BotHarness,
    settings_for,
)

# A run started in the background without job control (`cmd &` in a script, nohup) has
# SIGINT ignored, and every process it starts inherits that: `python -m bot` would never see
# the Ctrl-C some tests press. Python's own handler is reset to the default at exec, so the
# processes the tests start get SIGINT as a terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SETTING_PREFIXES = (
    "SLACK_",
    "SCP_",
    "SHARE_",
    "BOT_",
    "IMAGE_",
    "DATABASE_",
    "PORT",
    "METRICS_PORT",
    "HTTP_HEADER_TIMEOUT_SECONDS",
    "HTTP_BODY_TIMEOUT_SECONDS",
    "HTTP_MAX_CONNECTIONS",
    "AWS_",
    "ONCALL_",
    "APPROVAL_",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the machine, and no `.env` is read from the checkout."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The cloud API stand-in, with one shareable image (Shared: it can have members)."""
    with Sandbox(ACCESS_KEY, SECRET_KEY).start() as running:
        running.add_image(IMAGE, visibility="shared")
        yield running


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API (and Socket Mode)."""
    with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


@pytest.fixture
def make_bot(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> Iterator[Callable[..., BotHarness]]:
    """Build a running bot with settings overrides; everything stops after the test."""
    made: list[BotHarness] = []

    def make(**overrides: Any) -> BotHarness:
        harness = BotHarness(settings_for(slack, sandbox.url, tmp_path, **overrides), slack)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def bot(make_bot: Callable[..., BotHarness]) -> BotHarness:
    """A running bot where U1 is a sharer and MEMBER is a known member."""
    harness = make_bot()
    harness.grant("U1", Role.SHARER)
    harness.grant("UADMIN", Role.ADMIN)
    harness.services.members.add(MEMBER, MEMBER_NAME, by="test")
    return harness


@pytest.fixture
def team(make_bot: Callable[..., BotHarness]) -> BotHarness:
    """A requester, a sharer, two approvers and an admin; MEMBER is known; notify channel on."""
    bot = make_bot(SHARE_NOTIFY_CHANNEL="CNOTIFY")
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("USHARE", Role.SHARER)
    bot.grant("UAPP1", Role.APPROVER)
    bot.grant("UAPP2", Role.APPROVER)
    bot.grant("UADMIN", Role.ADMIN)
    bot.services.members.add(MEMBER, MEMBER_NAME, by="test")
    return bot
