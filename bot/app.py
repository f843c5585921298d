"""The app factory: a Bolt app with every listener, built from collaborators passed in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient

import handlers
from bot.services import Services
from bot.slack.web import make_web_client

log = logging.getLogger(__name__)


def create_app(
    services: Services,
    *,
    client: WebClient | None = None,
    listener_threads: int = 32,
    token_verification: bool = True,
) -> App:
    """Build the Bolt app. Signature verification is always on."""
    settings = services.settings
    app = App(
        signing_secret=settings.SLACK_SIGNING_SECRET.get_secret_value(),
        client=client or make_web_client(settings),
        token_verification_enabled=token_verification,
        request_verification_enabled=True,
        # Listeners ack in milliseconds; a wider pool keeps a burst from queueing
        # behind Bolt's default five threads.
        listener_executor=ThreadPoolExecutor(listener_threads, thread_name_prefix="bolt"),
        logger=logging.getLogger("slack_bolt"),
    )
    handlers.register(app, services)
    return app
