"""The pools of kept connections (to Slack, to the cloud) shrink again after a peak.

A steady load that once had five calls under way at once keeps only the connections it
still uses: the others expire after their keep-alive time, as they would with no load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bot.scp.transport import AiohttpTransport, RecentFirstConnector
from bot.services import build_services
from tests.fakes.slack import FakeSlack
from tests.harness import settings_for

KEEPALIVE = 1.0


class _Server:
    """An HTTP/1.1 server that keeps connections open and counts them; a request to
    /wait waits until `waiting` requests have arrived."""

    def __init__(self, waiting: int) -> None:
        self.open = 0
        self.opened = 0
        self.waiting = waiting
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.opened += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                if head.startswith(b"GET /wait "):
                    self.arrived += 1
                    if self.arrived >= self.waiting:
                        self.all_here.set()
                    await self.all_here.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def _peak_then_steady(pool: type[aiohttp.TCPConnector]) -> tuple[int, int, int]:
    """Five calls at once, then one call every 50 ms for three keep-alive times: the
    connections open at the server after the peak and at the end, and all it saw."""
    server = _Server(waiting=5)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    connector = pool(limit=10, keepalive_timeout=KEEPALIVE)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(path: str) -> None:
            async with session.get(f"http://127.0.0.1:{port}{path}") as answer:
                assert await answer.read() == b"ok"

        await asyncio.gather(*(get("/wait") for _ in range(5)))
        after_peak = server.open
        for _ in range(int(3 * KEEPALIVE / 0.05)):
            await get("/")
            await asyncio.sleep(0.05)
        at_end = server.open
    listening.close()
    await listening.wait_closed()
    return after_peak, at_end, server.opened


def test_connections_a_peak_opened_expire_under_a_steady_load() -> None:
    after_peak, at_end, opened = asyncio.run(_peak_then_steady(RecentFirstConnector))
    assert after_peak == 5
    assert at_end == 1  # the one the steady calls use; the other four expired
    assert opened == 5  # and none was opened anew meanwhile


def test_aiohttps_own_pool_keeps_every_connection_of_the_peak() -> None:
    # Why the bot's pools are not aiohttp's own: it hands out the connection idle longest,
    # so a steady load keeps every connection a peak opened alive.
    after_peak, at_end, _ = asyncio.run(_peak_then_steady(aiohttp.TCPConnector))
    assert (after_peak, at_end) == (5, 5)


def test_the_bots_slack_and_cloud_pools_let_idle_connections_expire(
    slack: FakeSlack, tmp_path: Path
) -> None:
    services = build_services(settings_for(slack, "http://127.0.0.1:9", tmp_path))

    async def pools() -> list[type]:
        slack_pool = services.slack_connections.session().connector
        transport = services.cloud._http._transport
        assert isinstance(transport, AiohttpTransport)
        cloud_pool = transport._session_now().connector
        await services.aclose()
        return [type(slack_pool), type(cloud_pool)]

    assert asyncio.run(pools()) == [RecentFirstConnector, RecentFirstConnector]
