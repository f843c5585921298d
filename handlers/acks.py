"""Around every listener: Slack calls counted (the time until the ack is measured by the
app itself, `bot.app.TimedApp`, since Bolt's async middleware does not wrap the listener)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.client import CountedWebClient


def register(app: AsyncApp, *, count: Callable[[str, str], None]) -> None:
    """Attach the middleware that counts Slack calls by `count(method, outcome)`."""

    async def counted(
        req: AsyncBoltRequest, resp: BoltResponse, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse:
        """Bolt gives each request its own plain `AsyncWebClient`; it becomes a counted
        one, which adds behaviour and its counter only (cheaper and more faithful than
        copying its settings)."""
        client = req.context.client
        if type(client) is AsyncWebClient:
            client.__class__ = CountedWebClient
            cast(CountedWebClient, client).count = count
        await next_()
        return resp

    app.use(counted)
