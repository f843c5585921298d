"""The floor: a Bolt app whose `/share-image` only acks, served exactly like the bot.

`python -m bench.bare_app`, configured by the environment the bot reads (PORT,
SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL, DATABASE_PATH). It goes through
the bot's own `bot.supervisor.serve` (gunicorn, one gthread worker, the same threads) and
`WebApp` (the same WSGI wrapper and `/healthz`), and sizes Bolt's listener pool like
`bot.app.create_app`: whatever separates the bot's acks from this app's is the bot's.
"""

from __future__ import annotations

import inspect
import os
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.app import create_app
from bot.server import WebApp
from bot.supervisor import THREADS, serve
from storage import Database

LISTENER_THREADS: int = inspect.signature(create_app).parameters["listener_threads"].default
SERVER_THREADS = THREADS


def make_app() -> WebApp:
    """The bare app: signature verification and `auth.test` on, one listener that acks."""
    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        request_verification_enabled=True,
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="bolt"),
    )

    @app.command("/share-image")
    def share_image(ack: Ack) -> None:
        ack()

    return WebApp(
        app,
        Database(os.environ["DATABASE_PATH"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )


def main() -> None:
    """Serve until gunicorn is told to stop."""
    serve(int(os.environ["PORT"]), app="bench.bare_app:make_app()")


if __name__ == "__main__":
    main()
