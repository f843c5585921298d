"""The Slack Web API client the bot uses, built from its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)

from bot.slack.client import CountedWebClient, SlackConnections

if TYPE_CHECKING:
    from bot.settings import Settings


def make_web_client(
    settings: Settings,
    *,
    timeout: int = 10,
    connection_retries: int = 2,
    connections: SlackConnections | None = None,
) -> CountedWebClient:
    """The Slack Web API client: retries rate limits (honouring Retry-After), 5xx and
    (`connection_retries` times) failed connections, and counts every call for the metrics.

    Its calls go over `connections` (one aiohttp session kept for the process, so its
    connections to Slack are reused); without them, slack-sdk opens a session per call.
    """
    return CountedWebClient(
        token=settings.SLACK_BOT_TOKEN.get_secret_value(),
        base_url=settings.SLACK_API_URL,
        timeout=timeout,
        connections=connections,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=connection_retries),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
