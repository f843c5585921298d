"""The bot's Bolt app answers the moment a listener acks (`bot.prompt_ack`), with Bolt's
rules otherwise: work after the ack goes on after the answer, an error before it is a 500,
a listener that ends without acking answers nothing without waiting out Slack's 3 s."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.async_app import AsyncAck
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.listener import asyncio_runner
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import TimedApp
from bot.prompt_ack import PromptListenerRunner


async def _authorize(**_: Any) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-test")


def _app() -> TimedApp:
    return TimedApp(
        signing_secret="secret", request_verification_enabled=False, authorize=_authorize
    )


def _command(text: str = "") -> AsyncBoltRequest:
    body = urlencode(
        {
            "command": "/share-image",
            "text": text,
            "user_id": "U1",
            "channel_id": "C1",
            "team_id": "T1",
        }
    )
    return AsyncBoltRequest(
        body=body, headers={"content-type": ["application/x-www-form-urlencoded"]}
    )


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bolt's own runner looks every 10 ms with `asyncio.sleep`: here that fails."""

    async def polled(delay: float) -> None:
        raise AssertionError("the ack was polled for")

    watched = SimpleNamespace(ensure_future=asyncio.ensure_future, sleep=polled)
    monkeypatch.setattr(asyncio_runner, "asyncio", watched)


def test_the_answer_leaves_at_the_ack_while_the_listener_goes_on(no_polling: None) -> None:
    async def scenario() -> None:
        app = _app()
        assert isinstance(app._async_listener_runner, PromptListenerRunner)
        release = asyncio.Event()
        finished: list[str] = []

        @app.command("/share-image")
        async def listener(ack: AsyncAck) -> None:
            await ack(text="On it")
            await release.wait()
            finished.append("after the ack")

        response = await asyncio.wait_for(app.async_dispatch(_command()), 1.0)
        assert (response.status, response.body) == (200, "On it")
        assert finished == []  # answered while the listener still works
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert finished == ["after the ack"]

    asyncio.run(scenario())


def test_an_error_before_the_ack_answers_500(no_polling: None) -> None:
    async def scenario() -> None:
        app = _app()

        @app.command("/share-image")
        async def listener(ack: AsyncAck) -> None:
            raise RuntimeError("broken")

        response = await asyncio.wait_for(app.async_dispatch(_command()), 1.0)
        assert response.status == 500

    asyncio.run(scenario())


def test_a_listener_that_ends_without_acking_is_not_waited_for(no_polling: None) -> None:
    async def scenario() -> None:
        app = _app()

        @app.command("/share-image")
        async def listener(ack: AsyncAck) -> None:
            return None

        started = time.monotonic()
        response = await asyncio.wait_for(app.async_dispatch(_command()), 2.0)
        assert time.monotonic() - started < 1.0  # not Slack's 3 s
        assert response.status != 200

    asyncio.run(scenario())
