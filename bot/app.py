"""The app factory: a Bolt `AsyncApp` with every listener, built from collaborators passed in."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot import metrics
from bot.prompt_ack import PromptListenerRunner
from bot.services import Services, make_web_client
from handlers.options import Options

log = logging.getLogger(__name__)


class _NoUnusedTokenWarning(logging.Filter):
    """Drops Bolt's "`token` will be unused" warning, and only it.

    Bolt reads `SLACK_BOT_TOKEN` from the environment itself and warns that the client
    passed in wins over it. The client is built from that same setting, so the warning
    says nothing true about this bot: it would only teach operators to ignore warnings.
    """

    unused_token = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.unused_token


def bolt_logger() -> logging.Logger:
    """The logger Bolt logs through, without the one warning that never applies here."""
    logger = logging.getLogger("slack_bolt")
    if not any(isinstance(f, _NoUnusedTokenWarning) for f in logger.filters):
        logger.addFilter(_NoUnusedTokenWarning())
    return logger


class TimedApp(AsyncApp):
    """Bolt's `AsyncApp`, timing each request from Slack until its ack: Bolt returns from
    `async_dispatch` once a listener acked, over HTTP and in Socket Mode alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Answered the moment a listener acks, not at Bolt's next 10 ms look.
        self._async_listener_runner = PromptListenerRunner(self._async_listener_runner)

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        response = await super().async_dispatch(req)
        if response.status != 401:  # refused unsigned: no listener ran, nothing acked
            metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        return response


async def create_app(
    services: Services,
    *,
    client: AsyncWebClient | None = None,
    token_verification: bool = True,
) -> AsyncApp:
    """Build the Bolt app, inside the running event loop. Signature verification is
    always on.

    With `token_verification` (always, but in benchmarks) it asks `auth.test` which
    workspace the bot is in; without, no request is refused for its workspace.
    """
    settings = services.settings
    web = client or make_web_client(settings)
    if token_verification:
        # The bot's own workspace: anything from another one is refused (handlers.workspace).
        services.settle_team(str((await web.auth_test()).get("team_id") or ""))
    app = TimedApp(
        signing_secret=settings.SLACK_SIGNING_SECRET.get_secret_value(),
        client=web,
        request_verification_enabled=True,
        logger=bolt_logger(),
    )
    handlers.register(
        app,
        services.share,
        services.records,
        services.admin,
        languages=services.languages,
        announcer=services.announcer,
        options=Options(
            default_language=settings.BOT_DEFAULT_LANGUAGE,
            zone=settings.timezone,
            approval_channel=settings.SHARE_APPROVAL_CHANNEL,
            durations=settings.share_durations,
            image_list_every=timedelta(seconds=settings.IMAGE_LIST_REFRESH_SECONDS),
        ),
        ours=lambda: services.team_id,
        # `services.wake` is the worker's once `make_worker` made one: looked up each time.
        wake=lambda: services.wake(),
        after_ack=services.after_ack,
        count_command=count_command,
        count_slack_call=metrics.slack_call,
    )
    return app


def count_command(word: str, outcome: str) -> None:
    """Count a `/share-image` command by its kind (its first word, else a share)."""
    kind = word if word in metrics.COMMAND_KINDS else "share"
    metrics.COMMANDS.labels(kind=kind, outcome=outcome).inc()
