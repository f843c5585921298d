"""Around every listener: Slack calls counted (the time until the ack is measured by the
app itself, `bot.app.TimedApp`, since Bolt's async middleware does not wrap the listener)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.client import CountedWebClient


class CountedCalls(AsyncMiddleware):
    """Bolt gives each request its own plain `AsyncWebClient`; it becomes a counted one,
    which adds behaviour and its counter only (cheaper and more faithful than copying its
    settings). A middleware class: Bolt hands it the request as it is, without building
    the arguments of a middleware function for every request."""

    def __init__(self, count: Callable[[str, str], None]) -> None:
        self.count = count

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # (Bolt calls it by this name)
    ) -> BoltResponse:
        client = req.context.client
        if type(client) is AsyncWebClient:
            client.__class__ = CountedWebClient
            cast(CountedWebClient, client).count = self.count
        await next()
        return resp


def register(app: AsyncApp, *, count: Callable[[str, str], None]) -> None:
    """Attach the middleware that counts Slack calls by `count(method, outcome)`."""
    app.use(CountedCalls(count))
