"""The Slack Web API client the bot uses: slack-sdk's retries, every call counted.

The wiring (`bot.services.make_web_client`) builds it from the settings.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)

from bot.slack.client import CountedWebClient, SlackConnections


def web_client(
    token: str,
    base_url: str,
    *,
    timeout: int = 10,
    connection_retries: int = 2,
    connections: SlackConnections | None = None,
    count: Callable[[str, str], None] | None = None,
) -> CountedWebClient:
    """The Slack Web API client: retries rate limits (honouring Retry-After), 5xx and
    (`connection_retries` times) failed connections, and counts every call (`count`).

    Its calls go over `connections` (one aiohttp session kept for the process, so its
    connections to Slack are reused); without them, slack-sdk opens a session per call.
    """
    return CountedWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        connections=connections,
        count=count,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=connection_retries),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
