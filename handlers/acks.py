"""Around every listener: the time until Slack gets its ack, and Slack calls counted."""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot import metrics
from bot.services import Services
from bot.slack.client import CountedWebClient


def register(app: App, services: Services) -> None:
    """Attach the middleware that times acks."""
    app.use(timed)


def timed(req: BoltRequest, next_: Callable[[], BoltResponse]) -> BoltResponse:
    """Time one request until its ack (Bolt returns from `next_` once a listener acked).

    Bolt gives each request its own plain `WebClient`; it becomes a counted one, which adds
    behaviour and no state (cheaper and more faithful than copying its settings).
    """
    client = req.context.client
    if type(client) is WebClient:
        client.__class__ = CountedWebClient
    started = time.perf_counter()
    try:
        return next_()
    finally:
        metrics.ACK_SECONDS.observe(time.perf_counter() - started)
