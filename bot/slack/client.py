"""The Slack Web API client the bot talks through: slack-sdk's async one, counting every call.

Every method of `AsyncWebClient` (`chat_postMessage`, `users_info`, …) goes through
`api_call`, so counting there sees each call once, after slack-sdk's own retries: its
method and Slack's error code, or "ok".

The bot's Slack clients share one aiohttp session (`SlackConnections`): its connections
to Slack are kept and reused, not opened for every call. The session is made inside the
running event loop at the first call and closed by `aclose()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

# Connections to Slack kept open at once, at most (calls beyond wait for one).
CONNECTIONS = 32
# Seconds an idle connection to Slack is kept for the next call.
KEEPALIVE = 30.0


class SlackConnections:
    """One aiohttp session, its pool of connections to Slack, for all of a process's
    Slack clients; made lazily inside the running loop."""

    def __init__(
        self,
        limit: int = CONNECTIONS,
        *,
        connector: type[aiohttp.TCPConnector] = aiohttp.TCPConnector,
    ) -> None:
        self.limit = limit
        # The pool's class: the wiring passes one that lets idle connections expire.
        self.connector = connector
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session, opened now if there is none in this loop (a session belongs to
        the loop it was made in: another loop, as a second `asyncio.run`, gets its own)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=self.connector(limit=self.limit, keepalive_timeout=KEEPALIVE)
            )
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections (a later call opens a new one)."""
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()


def not_counted(method: str, outcome: str) -> None:
    """Counts nothing: a client the wiring gave no counter."""


class CountedWebClient(AsyncWebClient):
    """An `AsyncWebClient` whose every call is counted by `count(method, outcome)` (the
    wiring passes the metrics' `share_image_slack_calls_total`), over the shared
    `connections` when given (else a session per call, slack-sdk's way)."""

    def __init__(
        self,
        *args: Any,
        connections: SlackConnections | None = None,
        count: Callable[[str, str], None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.connections = connections
        self.count = count or not_counted

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        """Call `api_method` as `AsyncWebClient` does, and count the outcome."""
        # (A client made elsewhere and counted by a change of class has no connections.)
        connections = getattr(self, "connections", None)
        if connections is not None:
            self.session = connections.session()
        count: Callable[[str, str], None] = getattr(self, "count", None) or not_counted
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            code = error.response.get("error") if isinstance(error.response.data, dict) else None
            shown = code if isinstance(code, str) else f"http_{error.response.status_code}"
            count(api_method, shown)
            raise
        except TimeoutError:
            count(api_method, "timeout")
            raise
        except Exception:
            count(api_method, "unreachable")
            raise
        count(api_method, "ok")
        assert isinstance(response, AsyncSlackResponse)
        return response

    async def _request(self, *, http_verb: str, api_url: str, req_args: dict[str, Any]) -> Any:
        # A shared session has no timeout of this client's: each request carries its own.
        req_args.setdefault("timeout", aiohttp.ClientTimeout(total=self.timeout))
        return await super()._request(http_verb=http_verb, api_url=api_url, req_args=req_args)
