"""HTTP mode: Slack's requests at `POST /slack/events`, `GET /healthz` and `GET /metrics`,
behind gunicorn (and, in Socket Mode, `GET /metrics` alone on METRICS_PORT).

Before Bolt sees a request, the gate here bounds what a stranger can cost: a body over
`MAX_BODY` is refused with 413 before it is read, a body that trickles in slower than
`BODY_SECONDS` is dropped with 408, a request without Slack's valid signature gets 401
whatever it contains, and a signed one that is not a payload Slack sends (not UTF-8, a
`payload` that is no JSON object, a missing user, channel, action or view) gets 400. In
each case one log line says why, and nothing else happens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import BoltRequest

from bot import metrics, processes
from bot.metrics_page import MetricsPage
from storage import Database, Rota, ShareRequests
from storage.errors import StorageError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from slack_bolt import App

    from bot.services import Services
    from bot.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
METRICS_PATH = "/metrics"
# Slack's payloads are a few kilobytes; the largest, a modal's submission with every
# field filled, stays far under this. Anything bigger is not from Slack.
MAX_BODY = 1024 * 1024
# How long a client may take to send its body, start to end.
BODY_SECONDS = 10.0
# Slack signs each request with its time; older ones are replays (Slack's own rule).
MAX_AGE_SECONDS = 300
# Seconds the Slack-facing process waits for a database lock before answering with an error.
ACK_BUSY_TIMEOUT = 2.0

# What each kind of payload must carry for any listener to act on it.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "block_actions": (("user", "id"), ("actions",)),
    "view_submission": (("user", "id"), ("view", "callback_id")),
    "view_closed": (("user", "id"), ("view",)),
    # An options request names its menu; what was typed may be empty.
    "block_suggestion": (("user", "id"), ("action_id",), ("block_id",)),
    # A shortcut opens a modal, which needs its trigger.
    "shortcut": (("user", "id"), ("callback_id",), ("trigger_id",)),
}
COMMAND_FIELDS = ("command", "user_id", "channel_id", "team_id")


class Refused(Exception):
    """A request the gate answers itself: `status` and a one-line `reason` for the log."""

    def __init__(self, status: str, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class SlackGate:
    """Reads and checks one request to the events URL; the body as text, or `Refused`."""

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock

    def read(self, environ: WSGIEnvironment) -> str:
        """The checked body, or `Refused` saying why not."""
        raw = self._body(environ)
        self._verify(environ, raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("400 Bad Request", "signed body is not UTF-8") from None
        self._check_shape(environ.get("CONTENT_TYPE", ""), text)
        return text

    def _body(self, environ: WSGIEnvironment) -> bytes:
        declared = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(declared) if declared else None
        except ValueError:
            raise Refused("400 Bad Request", "Content-Length is not a number") from None
        if length is not None and (length < 0 or length > MAX_BODY):
            raise Refused("413 Content Too Large", f"declared body of {length} bytes")
        connection = environ.get("gunicorn.socket")
        if isinstance(connection, socket.socket):
            connection.settimeout(BODY_SECONDS)
        stream = environ["wsgi.input"]
        deadline = time.monotonic() + BODY_SECONDS
        chunks: list[bytes] = []
        size = 0
        wanted = MAX_BODY + 1 if length is None else length
        try:
            while size < wanted:
                chunk = stream.read(min(65536, wanted - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise Refused("408 Request Timeout", f"body still arriving after {size} bytes")
        except (TimeoutError, OSError):
            raise Refused("408 Request Timeout", f"body stalled after {size} bytes") from None
        finally:
            if isinstance(connection, socket.socket):
                connection.settimeout(None)
        if size > MAX_BODY:
            raise Refused("413 Content Too Large", f"body over {MAX_BODY} bytes")
        return b"".join(chunks)

    def _verify(self, environ: WSGIEnvironment, raw: bytes) -> None:
        stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not stamp or not signature:
            raise Refused("401 Unauthorized", "unsigned request")
        try:
            age = abs(self._clock() - int(stamp))
        except ValueError:
            raise Refused("401 Unauthorized", "signature timestamp is not a number") from None
        if age > MAX_AGE_SECONDS:
            raise Refused("401 Unauthorized", "signature too old or from the future")
        signed = b"v0:" + stamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._secret, signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise Refused("401 Unauthorized", "signature does not match the body")

    @staticmethod
    def _check_shape(content_type: str, text: str) -> None:
        if content_type.startswith("application/json"):
            try:
                event = json.loads(text)
            except ValueError:
                raise Refused("400 Bad Request", "JSON body is not JSON") from None
            if not isinstance(event, dict):
                raise Refused("400 Bad Request", "JSON body is not an object")
            return
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            try:
                payload = json.loads(form["payload"][0])
            except ValueError:
                raise Refused("400 Bad Request", "payload is not JSON") from None
            if not isinstance(payload, dict):
                raise Refused("400 Bad Request", "payload is not a JSON object")
            for path in REQUIRED.get(str(payload.get("type")), ()):
                if not _present(payload, path):
                    kind = payload.get("type")
                    raise Refused("400 Bad Request", f"{kind} without {'.'.join(path)}")
            return
        if "command" in form:
            missing = [name for name in COMMAND_FIELDS if not form.get(name, [""])[0]]
            if missing:
                raise Refused("400 Bad Request", f"command without {', '.join(missing)}")
            return
        raise Refused("400 Bad Request", "neither a command, a payload nor an event")


def _present(payload: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = payload
    for key in path:
        if not isinstance(value, dict) or not value.get(key):
            return False
        value = value[key]
    return True


class WebApp:
    """The WSGI application: Bolt for Slack's requests, a health check for load balancers."""

    def __init__(
        self,
        app: App,
        database: Database,
        *,
        signing_secret: str,
        page: MetricsPage | None = None,
    ) -> None:
        self._app = app
        self._gate = SlackGate(signing_secret)
        self._database = database
        self._page = page or MetricsPage(ShareRequests(database), rota=Rota(database))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return self._health(start_response)
        if path == METRICS_PATH and method in {"GET", "HEAD"}:
            return metrics_answer(self._page, start_response)
        if path == EVENTS_PATH and method == "POST":
            return self._slack(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not Found"]

    def _slack(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            body = self._gate.read(environ)
        except Refused as refused:
            metrics.EVENTS_REFUSED.labels(status=refused.status.split(" ", 1)[0]).inc()
            log.warning(
                "refused a request to the events URL",
                extra={"status": refused.status, "reason": refused.reason},
            )
            answer = [("Content-Type", "text/plain; charset=utf-8")]
            if "gunicorn.socket" in environ:
                # An unread body must not be drained for the next request: close instead.
                answer.append(("Connection", "close"))
            start_response(refused.status, answer)
            return [refused.status.split(" ", 1)[1].encode()]
        headers: dict[str, str | Sequence[str]] = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        response = self._app.dispatch(
            BoltRequest(body=body, query=environ.get("QUERY_STRING", ""), headers=headers)
        )
        body_bytes = response.body.encode() if isinstance(response.body, str) else response.body
        listed = [
            (name, str(value))
            for name, values in response.headers.items()
            if name.lower() != "content-length"
            for value in ([values] if isinstance(values, str) else values)
        ]
        # A length, as Bolt's own adapter sends: without it the answer goes out chunked.
        listed.append(("Content-Length", str(len(body_bytes))))
        start_response(f"{response.status} {_reason(response.status)}", listed)
        return [body_bytes]

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._database.check()
            status, body = "200 OK", {"ok": True, "database": "ok"}
        except StorageError as error:
            status = "503 Service Unavailable"
            body = {"ok": False, "database": "unavailable", "problem": str(error)}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


def metrics_answer(page: MetricsPage, start_response: StartResponse) -> Iterable[bytes]:
    """`GET /metrics`: no signature asked (it reads nothing sent), bounded by the page."""
    body = page.render()
    start_response(
        "200 OK", [("Content-Type", page.content_type), ("Content-Length", str(len(body)))]
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics(port: int, database: Database) -> WSGIServer:
    """Serve `GET /metrics` on `port` (0: any free one) from a thread; the server."""
    page = MetricsPage(ShareRequests(database), rota=Rota(database))

    def only_metrics(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == METRICS_PATH and environ.get("REQUEST_METHOD") in {
            "GET",
            "HEAD",
        }:
            return metrics_answer(page, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not Found"]

    server = make_server(
        "0.0.0.0", port, only_metrics, server_class=_MetricsServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("serving metrics", extra={"port": server.server_port, "path": METRICS_PATH})
    return server


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def slack_side_services(settings: Settings) -> Services:
    """The services of the process that answers Slack (HTTP or Socket Mode): its database
    gives up on a lock after ACK_BUSY_TIMEOUT, so the ack comes within Slack's 3 s."""
    from bot.services import build_services

    database = Database(
        settings.DATABASE_PATH,
        busy_timeout=ACK_BUSY_TIMEOUT,
        connections=settings.DATABASE_CONNECTIONS,
    )
    return build_services(settings, database=database)


def make_web_app() -> WebApp:
    """The app gunicorn's worker serves, built there after the fork (`bot.supervisor`)."""
    from bot.app import create_app
    from bot.settings import load_settings

    processes.graceful_gunicorn_worker()
    processes.trim_malloc(threading.Event())
    settings = load_settings()
    services = slack_side_services(settings)
    return WebApp(
        create_app(services),
        services.database,
        signing_secret=settings.SLACK_SIGNING_SECRET.get_secret_value(),
    )
