"""Fixtures: a clean environment, the sandbox, a fake Slack, and a running bot."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role
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


# -- the unit tests: `pytest -m unit` ---------------------------------------------------------
#
# A test is a unit test unless it needs the outside world: one of the fixtures below (a
# server, a fake Slack, a running bot, `python -m bot`), or a module listed below whose tests
# start such things themselves. Unit tests run in-process on values, SQLite files and
# mocked transports: `pytest -m unit` runs them all in seconds. In such a run a test that
# starts a process or opens a network connection fails and says so, so that the selection
# stays what it claims; the full run (`pytest`, what CI runs) runs everything either way.
OUTSIDE_FIXTURES = frozenset(
    {
        "sandbox",
        "slack",
        "make_bot",
        "bot",
        "team",
        "bot_env",
        "start_bot",
        "metrics_url",
        "fake",  # test_fake_slack's fake Slack
        "pagerduty",  # test_oncall_sources' fake PagerDuty
        "feed",  # test_oncall_sources' calendar feed
        "served",  # test_server's aiohttp server
    }
)
# Modules whose tests start servers or `python -m bot` themselves, and single tests (by
# name, within a module) that do so beside unit tests.
OUTSIDE_MODULES = frozenset(
    {
        "tests.test_bench",
        "tests.test_cli",
        "tests.test_layers",
        "tests.test_client_stop",
        "tests.test_oncall_times",
        "tests.test_pools",
        "tests.test_replica",
        "tests.test_run_modes",
        "tests.test_sandbox",
    }
)
OUTSIDE_TESTS = {
    "tests.test_admin_grammar": ("test_the_command_line_",),
    "tests.test_faults": ("test_many_writers_",),
    "tests.test_fake_slack": ("test_stop_leaves_", "test_socket_mode_client_is_closed_"),
    "tests.test_images_api": (
        "test_the_sandbox_command_",
        "test_a_bad_images_option_",
        "test_an_open_sandbox_",
    ),
    "tests.test_last_admin": ("test_the_command_line_",),
    "tests.test_two_person": ("test_the_command_line_",),
}


def weight(item: pytest.Item) -> int:
    """0: the test starts processes (`python -m bot`, servers of its own); 1: it uses a
    served fake or bot in-process; 2: a unit test (see above)."""
    module = item.module.__name__ if isinstance(item, pytest.Function) else ""
    if module in OUTSIDE_MODULES or item.name.startswith(OUTSIDE_TESTS.get(module, ("\0",))):
        return 0
    fixtures = set(getattr(item, "fixturenames", ()))
    if "start_bot" in fixtures:
        return 0
    return 1 if fixtures & OUTSIDE_FIXTURES else 2


def is_unit(item: pytest.Item) -> bool:
    """Whether `item` is a unit test (see above)."""
    return weight(item) == 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the unit tests; start the tests that start processes first and leave the unit
    tests for last: the long tests start at once and the short ones fill the workers' ends
    (the suite's wall time is its busiest worker's)."""
    weights = {item.nodeid: weight(item) for item in items}
    for item in items:
        if weights[item.nodeid] == 2:
            item.add_marker(pytest.mark.unit)
    items.sort(key=lambda item: weights[item.nodeid])  # stable: file order within a weight


class OutsideWorld(AssertionError):
    """A unit test reached for a process or the network."""


@pytest.fixture(autouse=True)
def unit_stays_inside(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a `-m unit` run, a unit test may start no process and open no network socket."""
    if "unit" not in (request.config.option.markexpr or ""):
        return
    if request.node.get_closest_marker("unit") is None:
        return
    where = f"{request.node.nodeid} is marked unit (tests/conftest.py) but"

    def no_process(*args: object, **kwargs: object) -> None:
        raise OutsideWorld(f"{where} starts a process: list its module in OUTSIDE_MODULES")

    real_connect, real_bind = socket.socket.connect, socket.socket.bind

    def inside(family: int, address: object, what: str) -> None:
        if family in (socket.AF_INET, socket.AF_INET6):
            raise OutsideWorld(f"{where} {what} {address!r}: list its module in OUTSIDE_MODULES")

    def connect(self: socket.socket, address: object) -> None:
        inside(self.family, address, "connects to")
        real_connect(self, address)  # type: ignore[arg-type]

    def bind(self: socket.socket, address: object) -> None:
        inside(self.family, address, "listens on")
        real_bind(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "bind", bind)


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
