"""The cloud client's connections: httpx's requests sent over an aiohttp connection pool.

httpx (its signing `Auth`, hooks, models) stays the client; only the sending changes. Its
own pool (httpcore's) looks at every connection it holds each time a request starts or
ends, with a system call for each idle one, and closes a connection that falls idle while
more than its keep-alive number are open: with a hundred adds under way at once that was
most of the CPU an add cost (3.2-3.7 ms of CPU per add, against a fake answering at once),
and a new connection for most adds of the next burst. aiohttp's pool hands out and takes
back a connection in constant time and keeps what it opened (up to `limit`) for
`keepalive` seconds.

httpx's errors are kept, so the retry rules read the same: a connection that could not
be made (or no free connection in time) is `ConnectError`/`ConnectTimeout`, which cannot
have been carried out; a connection lost after the request could have left is
`ReadError`/`RemoteProtocolError`, a slow answer `ReadTimeout`. The body is passed on as
the server sent it (httpx decodes it, as with its own pool), and the URL exactly as signed.
A proxy named by the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) is used as
httpx's own pool used it (httpx reads them only for its own pool).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections import deque
from typing import Any

import aiohttp
import certifi
import httpx
from yarl import URL


class RecentFirstConnector(aiohttp.TCPConnector):
    """aiohttp's `TCPConnector`, handing out the idle connection used last first.

    aiohttp's own pool hands out the idle connection that has waited longest: under a
    steady load every connection it ever opened is used again within its keep-alive
    time, so none expires and the pool stays as large as the most calls ever under way
    at once, growing with each new record. Taking the most recent one first leaves the
    connections a rare peak opened idle at the back, where the keep-alive timer closes
    them: the pool follows the calls under way in the last keep-alive time.
    """

    def _release(self, key: Any, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super()._release(key, protocol, *args, **kwargs)
        idle = self._conns.get(key)
        # Kept for reuse (not closed): appended at the back; moved to the front, where
        # the next request takes it.
        if isinstance(idle, deque) and idle and idle[-1][0] is protocol:
            idle.rotate(1)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, made in the running loop at the first
    request (a session belongs to its loop: another loop gets a new one)."""

    def __init__(
        self,
        *,
        limit: int,
        keepalive: float,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.limit = limit
        self.keepalive = keepalive
        # The same certificate authorities httpx trusts (certifi's), not the system's.
        self._ssl = verify or ssl.create_default_context(cafile=certifi.where())
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._proxies: dict[tuple[str, str], str | None] = {}

    def proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy the environment names for this scheme and host (HTTPS_PROXY,
        HTTP_PROXY, ALL_PROXY, less NO_PROXY), as httpx's own pool took it; read once per
        host."""
        key = (scheme, host)
        if key not in self._proxies:
            proxies = urllib.request.getproxies()
            proxy = proxies.get(scheme) or proxies.get("all")
            if proxy and urllib.request.proxy_bypass(host):
                proxy = None
            self._proxies[key] = proxy or None
        return self._proxies[key]

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=RecentFirstConnector(
                    limit=self.limit, keepalive_timeout=self.keepalive, ssl=self._ssl
                ),
                # httpx decodes the body by its Content-Encoding, as with its own pool.
                auto_decompress=False,
                # Only the request's own headers: httpx has set every one it sends.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp sends a GET or a DELETE again, unseen, when a kept connection turns
            # out closed: the client's one retry policy must count every attempt (a 404
            # after a lost DELETE is success only if the DELETE may have landed).
            self._session._retry_connection = False
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the client is closed", request=request)
        session = self._session_now()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connect = timeouts.get("connect")
        pool = timeouts.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            # A free connection and then the connection itself, each within its own time.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        ]
        try:
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                ssl=self._ssl,
                proxy=self.proxy_for(request.url.scheme, request.url.host),
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    answer.status,
                    headers=[
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in answer.raw_headers
                    ],
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except aiohttp.ConnectionTimeoutError as error:
            raise httpx.ConnectTimeout(str(error) or "connect timeout", request=request) from error
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectorDNSError) as error:
            raise httpx.ConnectError(str(error), request=request) from error
        except TimeoutError as error:
            raise httpx.ReadTimeout(str(error) or "read timeout", request=request) from error
        except aiohttp.ServerDisconnectedError as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from error
        except aiohttp.ClientError as error:
            raise httpx.ReadError(str(error) or type(error).__name__, request=request) from error

    async def aclose(self) -> None:
        """Close the pool: a request under way ends at once, as a lost connection."""
        self._closed = True
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    def __repr__(self) -> str:
        return f"AiohttpTransport(limit={self.limit})"
