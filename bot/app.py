"""The app factory: a Bolt app with every listener, built from collaborators passed in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

import handlers
from bot.services import Services
from bot.slack.web import make_web_client

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


def create_app(
    services: Services,
    *,
    client: WebClient | None = None,
    listener_threads: int = 32,
    token_verification: bool = True,
) -> App:
    """Build the Bolt app. Signature verification is always on.

    With `token_verification` (always, but in benchmarks) it asks `auth.test` which
    workspace the bot is in; without, no request is refused for its workspace.
    """
    settings = services.settings
    web = client or make_web_client(settings)
    if token_verification:
        # The bot's own workspace: anything from another one is refused (handlers.workspace).
        services.settle_team(str(web.auth_test().get("team_id") or ""))
    app = App(
        signing_secret=settings.SLACK_SIGNING_SECRET.get_secret_value(),
        client=web,
        token_verification_enabled=token_verification,
        request_verification_enabled=True,
        # Listeners ack in milliseconds; a wider pool keeps a burst from queueing
        # behind Bolt's default five threads.
        listener_executor=ThreadPoolExecutor(listener_threads, thread_name_prefix="bolt"),
        logger=bolt_logger(),
    )
    handlers.register(app, services)
    return app
