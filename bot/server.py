"""HTTP mode: Slack's requests at `POST /slack/events`, `GET /healthz`, behind gunicorn."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from storage import Database
from storage.errors import StorageError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class WebApp:
    """The WSGI application: Bolt for Slack's requests, a health check for load balancers."""

    def __init__(self, app: App, database: Database) -> None:
        self._slack = SlackRequestHandler(app, path=EVENTS_PATH)
        self._database = database

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return self._health(start_response)
        if path == EVENTS_PATH:
            return self._slack(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not Found"]

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._database.read(lambda db: db.execute("SELECT 1").fetchone())
            status, body = "200 OK", {"ok": True, "database": "ok"}
        except StorageError:
            status, body = "503 Service Unavailable", {"ok": False, "database": "unavailable"}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


def serve(make_app: Callable[[], WebApp], *, port: int, threads: int = 32) -> None:
    """Serve with gunicorn: one process (SQLite), many threads, until a signal stops it."""
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"0.0.0.0:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "timeout": 30,
                "graceful_timeout": 10,
                "accesslog": None,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WebApp:
            return make_app()

    Gunicorn().run()
