"""A cloud call caught by a stop: the client closed under it, or its task cancelled.

Neither is a failure to retry: the call ends at once, says nothing of a retry and sends
nothing more (what it sent is read back at the next start, as after any lost answer).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from bot.scp import ScpAuth, ScpClient, errors

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"


class SlowCloud:
    """A server that takes every request and answers none within the test: a request
    waits until the test is over (the server's stop does not wait 30 s for it)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.arrived = asyncio.Event()
        self.over = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(f"{request.method} {request.path}")
        self.arrived.set()
        await self.over.wait()
        return web.json_response({})

    async def __aenter__(self) -> SlowCloud:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        self.over.set()
        await self.runner.cleanup()


def retries_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retry in" in r.getMessage()]


def test_a_call_under_way_when_the_client_closes_ends_at_once_without_a_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[BaseException | None, float, list[str]]:
        async with SlowCloud() as cloud:
            client = ScpClient(cloud.url, ScpAuth("AK-stop-test", "SK-stop-test-secret"))
            call = asyncio.create_task(client.add_member(IMAGE, MEMBER))
            await asyncio.wait_for(cloud.arrived.wait(), 10)  # the call is under way
            loop = asyncio.get_running_loop()
            began = loop.time()
            await client.aclose()
            try:
                await asyncio.wait_for(call, 2)
            except BaseException as error:
                return error, loop.time() - began, cloud.received
            return None, loop.time() - began, cloud.received

    with caplog.at_level(logging.INFO):
        error, took, received = asyncio.run(scenario())
    assert isinstance(error, errors.CloudUnavailable)
    assert "closing" in str(error)
    assert took < 0.5
    assert retries_said(caplog) == []
    assert received == [f"POST /v1/images/{IMAGE}/members"]  # sent once, never again


def test_a_cancelled_call_is_not_retried_nor_said_to_be(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[bool, list[str]]:
        async with SlowCloud() as cloud:
            client = ScpClient(cloud.url, ScpAuth("AK-stop-test", "SK-stop-test-secret"))
            call = asyncio.create_task(client.add_member(IMAGE, MEMBER))
            await asyncio.wait_for(cloud.arrived.wait(), 10)  # the call is under way
            call.cancel()
            await asyncio.wait({call}, timeout=2)
            await client.aclose()
            await asyncio.sleep(0.2)  # room for a retry that should not come
            return call.cancelled(), cloud.received

    with caplog.at_level(logging.INFO):
        cancelled, received = asyncio.run(scenario())
    assert cancelled
    assert retries_said(caplog) == []
    assert received == [f"POST /v1/images/{IMAGE}/members"]
