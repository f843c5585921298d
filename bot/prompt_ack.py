"""Slack's answer as soon as a listener acks: Bolt's listener runner without its polling.

Bolt's `AsyncApp` (unless `process_before_response`) starts each listener as a task and then
looks every 10 ms whether it has acked: every request waits up to 10 ms after its ack for
nothing, and in a burst of a hundred commands the hundred waiting requests wake a hundred
times every 10 ms, CPU taken from the acks themselves. Here the ack wakes the request it
belongs to at once (or the listener's end, should it end without acking), and nothing wakes
in between. Everything else is Bolt's: the listener runs as its own task, work after its
ack goes on after the answer was sent, an exception before the ack answers 500 through the
app's error handler, no ack within the listener's `ack_timeout` answers nothing (Bolt's
warning), lazy listeners and `process_before_response` are left to Bolt's own runner.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.listener.async_listener import AsyncListener
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.logger.messages import warning_did_not_call_ack
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse


class _SignallingAck(AsyncAck):
    """Bolt's ack, which also wakes the request waiting for it."""

    acked: asyncio.Future[None]

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        _release(self.acked)
        return response


def _release(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


class PromptListenerRunner(AsyncioListenerRunner):
    """Bolt's `AsyncioListenerRunner`, answering the moment the listener acks."""

    def __init__(self, like: AsyncioListenerRunner) -> None:
        super().__init__(
            logger=like.logger,
            process_before_response=like.process_before_response,
            listener_error_handler=like.listener_error_handler,
            listener_start_handler=like.listener_start_handler,
            listener_completion_handler=like.listener_completion_handler,
            lazy_listener_runner=like.lazy_listener_runner,
        )
        # Listeners still running after their ack (a task is kept only by its references).
        self._running: set[asyncio.Task[None]] = set()

    async def run(
        self,
        request: AsyncBoltRequest,
        response: BoltResponse,
        listener_name: str,
        listener: AsyncListener,
        starting_time: float | None = None,
    ) -> BoltResponse | None:
        ack = request.context.ack
        if (
            self.process_before_response
            or request.lazy_only
            or listener.lazy_functions
            or listener.auto_acknowledgement
            or type(ack) is not AsyncAck
        ):
            return await super().run(request, response, listener_name, listener, starting_time)
        starting_time = starting_time if starting_time is not None else time.time()
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.__class__ = _SignallingAck
        assert isinstance(ack, _SignallingAck)
        ack.acked = acked
        task = asyncio.ensure_future(self._listen(ack, request, response, listener))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: _release(acked))
        remaining = listener.ack_timeout - (time.time() - starting_time)
        too_late = asyncio.get_running_loop().call_later(max(0.0, remaining), _release, acked)
        try:
            await acked
        finally:
            too_late.cancel()
        if ack.response is None:
            self.logger.warning(warning_did_not_call_ack(listener_name))
            return None
        return ack.response

    async def _listen(
        self,
        ack: AsyncAck,
        request: AsyncBoltRequest,
        response: BoltResponse | None,
        listener: AsyncListener,
    ) -> None:
        """The listener, as Bolt runs it: an exception before the ack answers 500."""
        try:
            await self.listener_start_handler.handle(request=request, response=response)
            # (Bolt hands on the response it has, None included.)
            await listener.run_ack_function(request=request, response=response)  # type: ignore[arg-type]
        except Exception as error:
            failed = response if response is not None else BoltResponse(status=500)
            failed.status = 500
            # Acked already: the answer has gone, the handler only hears of the error.
            told = failed if ack.response is None else None
            await self.listener_error_handler.handle(error=error, request=request, response=told)
            ack.response = told
        finally:
            await self.listener_completion_handler.handle(request=request, response=response)
