"""The Slack Web API client the bot uses, built from its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.slack.client import CountedWebClient

if TYPE_CHECKING:
    from bot.settings import Settings


def make_web_client(
    settings: Settings, *, timeout: int = 10, connection_retries: int = 2
) -> WebClient:
    """The Slack Web API client: retries rate limits (honouring Retry-After), 5xx and
    (`connection_retries` times) failed connections, and counts every call for the metrics.

    It opens a connection per call and closes it after (slack_sdk keeps no pool): the
    connections to Slack are at most the threads that call it.
    """
    return CountedWebClient(
        token=settings.SLACK_BOT_TOKEN.get_secret_value(),
        base_url=settings.SLACK_API_URL,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=connection_retries),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )
