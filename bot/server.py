"""HTTP mode: Slack's requests at `POST /slack/events`, `GET /healthz` and `GET /metrics`, on
aiohttp in the bot's one event loop (and, in Socket Mode, `GET /metrics` alone on METRICS_PORT).

A public endpoint meets strangers, so what one connection can cost is bounded here:

- a client that has not sent a whole request head (request line and headers)
  `header_timeout` seconds after it connected, or after its previous answer, is cut;
- a body larger than `MAX_BODY` is refused with 413, from its Content-Length before a
  byte of it is read; a body that takes longer than `body_timeout` seconds gets 408;
  after either the connection is closed at once (nothing more of the body is read);
- beyond `max_connections` open connections, a new one is closed at once, so a crowd of
  slow clients costs a bounded amount and is cut by the timeouts above.

Slack's signature is checked once, by Bolt's own check (its request verification, or, for
a body Bolt could not even parse, the same verifier on the raw bytes): 401 for a request
Slack did not sign just now. A signed body that is not a payload Slack sends (not UTF-8, a
`payload` that is no JSON object, a missing user, channel, action or view) gets 400. In
each case one log line says why, the refusal is counted by status, and nothing else happens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.metrics_page import MetricsPage
from bot.sharing.states import LIFECYCLE
from storage import Database, Rota, ShareRequests
from storage.errors import StorageError

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
# Slack's payloads are a few kilobytes; the largest, a modal's submission with every
# field filled, stays far under this. Anything bigger is not from Slack.
MAX_BODY = 1024 * 1024
# The defaults of the settings HTTP_HEADER_TIMEOUT_SECONDS, HTTP_BODY_TIMEOUT_SECONDS and
# HTTP_MAX_CONNECTIONS (bot/settings.py).
HEADER_SECONDS = 10.0
BODY_SECONDS = 10.0
MAX_CONNECTIONS = 1000

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


@dataclass(frozen=True)
class Limits:
    """What one client may cost: seconds for its request head and for its body, and how
    many connections may be open at once."""

    header_timeout: float = HEADER_SECONDS
    body_timeout: float = BODY_SECONDS
    max_connections: int = MAX_CONNECTIONS

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings ask for."""
        return cls(
            header_timeout=settings.HTTP_HEADER_TIMEOUT_SECONDS,
            body_timeout=settings.HTTP_BODY_TIMEOUT_SECONDS,
            max_connections=settings.HTTP_MAX_CONNECTIONS,
        )


class Refused(Exception):
    """A request the server answers itself: its HTTP `status` and a one-line `reason`."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def check_shape(content_type: str, text: str) -> None:
    """`Refused` (400) unless `text` is a payload Slack sends: an event, a command or an
    interaction payload carrying what its kind needs."""
    if content_type.startswith("application/json"):
        try:
            event = json.loads(text)
        except ValueError:
            raise Refused(400, "JSON body is not JSON") from None
        if not isinstance(event, dict):
            raise Refused(400, "JSON body is not an object")
        return
    form = first_values(text)
    if "payload" in form:
        try:
            payload = json.loads(unquote_plus(form["payload"]))
        except ValueError:
            raise Refused(400, "payload is not JSON") from None
        if not isinstance(payload, dict):
            raise Refused(400, "payload is not a JSON object")
        for path in REQUIRED.get(str(payload.get("type")), ()):
            if not _present(payload, path):
                raise Refused(400, f"{payload.get('type')} without {'.'.join(path)}")
        return
    if "command" in form:
        # (A value is empty exactly when it is empty still encoded.)
        missing = [name for name in COMMAND_FIELDS if not form.get(name)]
        if missing:
            raise Refused(400, f"command without {', '.join(missing)}")
        return
    raise Refused(400, "neither a command, a payload nor an event")


def first_values(text: str) -> dict[str, str]:
    """Each name of a form body with its first value, still encoded: what
    `parse_qs(text, keep_blank_values=True)` finds, without decoding every value (a
    command's twenty fields, its long response URL among them) when the check needs three.
    """
    form: dict[str, str] = {}
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        form.setdefault(name, value)
    return form


def _present(payload: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = payload
    for key in path:
        if not isinstance(value, dict) or not value.get(key):
            return False
        value = value[key]
    return True


async def read_body(request: web.BaseRequest, limits: Limits) -> bytes:
    """The whole body within `limits.body_timeout`, at most MAX_BODY bytes, or `Refused`."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise Refused(413, f"declared body of {declared} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            while chunk := await request.content.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY:
                    raise Refused(413, f"body over {MAX_BODY} bytes")
    except TimeoutError:
        raise Refused(408, f"body still arriving after {size} bytes") from None
    return b"".join(chunks)


def bolt_request(text: str, *, query: str, headers: dict[str, str]) -> AsyncBoltRequest:
    """The request as Bolt takes it, with its form read whole.

    Bolt takes a form body for an interaction's `payload` field whenever the word
    "payload" appears anywhere in it (slack_bolt.request.internals.parse_body): a slash
    command whose text has the word (`... reason: payload test`) reached the listeners as an
    empty body and was never answered. Such a form, with no `payload` field, is read as the
    fields it has; the raw text, which the signature covers, is Bolt's as it came.
    """
    given: dict[str, str | Sequence[str]] = dict(headers)
    request = AsyncBoltRequest(body=text, query=query, headers=given)
    if not request.body and "payload" in text and not text.startswith("{"):
        fields = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" not in fields:
            request.body = fields
            request.context = build_async_context(AsyncBoltContext({}), fields)
    return request


class RawBodyVerifier(SignatureVerifier):
    """slack-sdk's verifier (Bolt's), its timestamp rule and comparison, over the raw bytes:
    its own decodes the body as UTF-8 first, so it cannot judge a body that is not."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        raw = body if isinstance(body, bytes) else body.encode()
        signed = b"v0:" + timestamp.encode() + b":" + raw
        return "v0=" + hmac.new(self.signing_secret.encode(), signed, hashlib.sha256).hexdigest()


class SlackEvents:
    """`POST /slack/events`: the body read within the limits, checked, handed to Bolt."""

    def __init__(self, app: AsyncApp, limits: Limits, signing_secret: str) -> None:
        self._app = app
        self._limits = limits
        self._verifier = RawBodyVerifier(signing_secret)  # the check Bolt makes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await read_body(request, self._limits)
            text = self._checked(request, raw)
        except Refused as refused:
            return _refusal(refused, close=True)
        bolt = await self._app.async_dispatch(
            bolt_request(text, query=request.query_string, headers=dict(request.headers))
        )
        if bolt.status == 401:  # Bolt's signature check said no
            _refused(Refused(401, "signature missing, stale or not the body's"))
        body = bolt.body.encode() if isinstance(bolt.body, str) else bolt.body
        headers = {
            name: value
            for name, values in bolt.headers.items()
            if name.lower() not in {"content-length", "content-type"}
            for value in values[:1]
        }
        content_type = next(iter(bolt.headers.get("content-type", [])), "text/plain")
        answer = web.Response(status=bolt.status, body=body, headers=headers)
        answer.headers["Content-Type"] = content_type
        return answer

    def _checked(self, request: web.BaseRequest, raw: bytes) -> str:
        """The body as Bolt takes it; a body Bolt could not parse is judged here: 401 unless
        Slack signed it, else 400."""
        try:
            text = raw.decode("utf-8")
            check_shape(request.headers.get("Content-Type", ""), text)
        except (UnicodeDecodeError, Refused) as error:
            if not self._signed(request, raw):
                raise Refused(401, "signature missing, stale or not the body's") from None
            if isinstance(error, Refused):
                raise
            raise Refused(400, "signed body is not UTF-8") from None
        return text

    def _signed(self, request: web.BaseRequest, raw: bytes) -> bool:
        try:
            return self._verifier.is_valid(
                raw,
                request.headers.get("X-Slack-Request-Timestamp"),
                request.headers.get("X-Slack-Signature"),
            )
        except ValueError:  # a timestamp that is no number
            return False


def _refused(refused: Refused) -> None:
    metrics.EVENTS_REFUSED.labels(status=str(refused.status)).inc()
    log.warning(
        "refused a request to the events URL",
        extra={"status": refused.status, "reason": refused.reason},
    )


def _refusal(refused: Refused, *, close: bool) -> web.Response:
    _refused(refused)
    answer = web.Response(status=refused.status, text=_reason(refused.status))
    if close:
        # An unread body must not be read as the next request: the connection ends here.
        answer.force_close()
    return answer


def _reason(status: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 408: "Request Timeout"}.get(
        status, "Content Too Large"
    )


class Health:
    """`GET /healthz`: 200 when the database answers, 503 saying why when it does not."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def handle(self, request: web.Request) -> web.Response:
        try:
            self._database.check()
        except StorageError as error:
            body = {"ok": False, "database": "unavailable", "problem": str(error)}
            return web.json_response(body, status=503)
        return web.json_response({"ok": True, "database": "ok"})


def metrics_route(page: MetricsPage) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /metrics`: no signature asked (it reads nothing sent), bounded by the page.
    The page reads the database, so it is rendered off the loop."""

    async def answer(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(page.render)
        response = web.Response(body=body)
        response.headers["Content-Type"] = page.content_type
        return response

    return answer


def make_web_app(
    app: AsyncApp | None,
    database: Database,
    settings: Settings,
    *,
    page: MetricsPage | None = None,
) -> web.Application:
    """The aiohttp application: Bolt at /slack/events (when `app`), /healthz, /metrics."""
    limits = Limits.of(settings)
    web_app = web.Application(client_max_size=MAX_BODY, middlewares=[_head_read])
    web_app[LIMITS] = limits
    page = page or MetricsPage(ShareRequests(database, lifecycle=LIFECYCLE), rota=Rota(database))
    web_app.router.add_get(METRICS_PATH, metrics_route(page))
    web_app.router.add_get(HEALTH_PATH, Health(database).handle)
    if app is not None:
        secret = settings.SLACK_SIGNING_SECRET.get_secret_value()
        web_app.router.add_post(EVENTS_PATH, SlackEvents(app, limits, secret).handle)
    return web_app


LIMITS = web.AppKey("limits", Limits)


@web.middleware
async def _head_read(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A request reaches the app once its head has been read: its connection's head
    timer stops, and starts again for the next request once this one is answered."""
    protocol = request.protocol
    if isinstance(protocol, _GuardedHandler):
        protocol.head_read()
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        raise web.HTTPNotFound() from None  # as for any path: nothing else is served
    finally:
        if isinstance(protocol, _GuardedHandler):
            protocol.await_head()


class _Connections:
    """The open connections of one server, for its connection limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.turned_away = 0


class _GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a deadline for each request head and a limit on
    open connections (aiohttp has neither of its own)."""

    __slots__ = ("_connections", "_counted", "_head_timer")

    def __init__(self, manager: web.Server, *, connections: _Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        connections = self._connections
        if connections.open >= connections.limits.max_connections:
            connections.turned_away += 1
            if connections.turned_away % 100 == 1:  # one line per hundred, not a flood
                log.warning(
                    "connection limit reached: new connections are closed at once",
                    extra={"limit": connections.limits.max_connections},
                )
            transport.close()
            return
        connections.open += 1
        self._counted = True
        self.await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.head_read()
        if self._counted:
            self._counted = False
            self._connections.open -= 1
        super().connection_lost(exc)

    def await_head(self) -> None:
        """Start the head timer: the next request's head must arrive in time."""
        self.head_read()
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(
            self._connections.limits.header_timeout, self._head_too_slow
        )

    def head_read(self) -> None:
        """Stop the head timer: a request's head has arrived (or the connection ended)."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        log.info("cut a connection that sent no request head in time")
        if self.transport is not None:
            self.transport.close()


class Listening:
    """An aiohttp application served on a port with the limits of a public endpoint."""

    def __init__(self, web_app: web.Application, limits: Limits | None = None) -> None:
        self._runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        self._limits = limits or web_app.get(LIMITS) or Limits()
        self._listener: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        """Listen on `port` (0: any free one); the port it listens on."""
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        connections = _Connections(self._limits)
        loop = asyncio.get_running_loop()

        def handler() -> _GuardedHandler:
            return _GuardedHandler(
                server,
                connections=connections,
                loop=loop,
                access_log=None,
                # An idle connection is cut by the head timer; this is only a backstop.
                keepalive_timeout=max(75.0, self._limits.header_timeout),
                # A body left unread (the 408 of one that trickles, the 413 of one too big)
                # is not read on and dropped for a while: the connection closes at once.
                lingering_time=0.0,
            )

        self._listener = await loop.create_server(
            handler, host, port, reuse_address=True, backlog=1024
        )
        sockets = self._listener.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let requests under way finish for up to `grace` seconds."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        server = self._runner.server
        if server is not None:
            server.pre_shutdown()
            await server.shutdown(grace)
        await self._runner.cleanup()


def say_listening(port: int) -> None:
    """The start's one line in HTTP mode: where the bot listens and Slack's Request URL."""
    url = f"http://{socket.gethostname()}:{port}/slack/events"
    log.info(
        f"listening on 0.0.0.0:{port}; Slack's Request URL (slash command, interactivity,"
        f" event subscriptions) is {url}, or the https:// address of the proxy or tunnel in"
        " front of it, ending in /slack/events",
        extra={"mode": "http", "port": port, "request_url": url},
    )
