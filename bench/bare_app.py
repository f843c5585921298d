"""The floors: two Bolt apps whose `/share-image` only acks, each served the usual way.

    python -m bench.bare_app sync    a sync `App` under gunicorn (one gthread worker)
    python -m bench.bare_app async   an `AsyncApp` on Bolt's own aiohttp server

Both are configured by the environment the bot reads (PORT, SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN, SLACK_API_URL), check Slack's signature, call `auth.test` once, answer
`GET /healthz` and ack every `/share-image` with nothing else. Neither imports the bot:
whatever separates the bot's acks from the faster of the two is the bot's own doing.
gunicorn is no dependency of the bot; the benchmark's extra installs it
(`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The sync floor is served the way the bot was before it became one asyncio process:
# gunicorn, one worker process (SQLite), 32 threads, Bolt's listener pool of 32.
SERVER_THREADS = 32
LISTENER_THREADS = 32
EVENTS_PATH = "/slack/events"
KINDS = ("sync", "async")


def sync_wsgi_app() -> Any:
    """The sync app as a WSGI callable: `/slack/events` through Bolt, `/healthz` beside it."""
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        request_verification_enabled=True,
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="bolt"),
    )

    @app.command("/share-image")
    def share_image(ack: Ack) -> None:
        ack()

    bolt = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return bolt(environ, start_response)

    return wsgi


def serve_sync(port: int) -> None:
    """gunicorn, configured in code as the bot configured it, until a signal stops it."""
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": SERVER_THREADS,
                "timeout": 30,
                "graceful_timeout": 10,
                "accesslog": None,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return sync_wsgi_app()  # in gunicorn's worker, after the fork

    Gunicorn().run()


def serve_async(port: int) -> None:
    """Bolt's `AsyncApp` on the aiohttp application Bolt builds for it, plus `/healthz`."""
    from aiohttp import web
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=AsyncWebClient(
            token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
        ),
        request_verification_enabled=True,
    )

    @app.command("/share-image")
    async def share_image(ack: AsyncAck) -> None:
        await ack()

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    web_app = app.web_app(path=EVENTS_PATH, port=port)
    web_app.router.add_get("/healthz", healthz)
    web.run_app(web_app, host="127.0.0.1", port=port, print=None, access_log=None)


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.bare_app sync|async`."""
    args = sys.argv[1:] if argv is None else argv
    kind = args[0] if args else ""
    if kind not in KINDS:
        sys.exit(f"usage: python -m bench.bare_app {'|'.join(KINDS)}")
    port = int(os.environ["PORT"])
    if kind == "sync":
        serve_sync(port)
    else:
        serve_async(port)


if __name__ == "__main__":
    main()
