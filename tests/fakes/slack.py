"""A fake Slack for tests, and a sender that talks to a Bolt app the way Slack does.

``FakeSlack`` runs three real servers on 127.0.0.1, each on a free port:

* the Web API (``api_url``), for ``slack_sdk.WebClient(base_url=fake.api_url, ...)``;
* ``response_url`` endpoints (``fake.response_url(name)``);
* the Socket Mode websocket, handed out by ``apps.connections.open``.

It records every request, answers as Slack does (including its errors), and lets a
test wait for what the bot did without sleeping::

    with FakeSlack() as fake:
        client = WebClient(base_url=fake.api_url, token=fake.bot_token)
        ...
        [message] = fake.wait_for(lambda: fake.messages("C1"))

It refuses what Slack refuses in Block Kit (``tests.fakes.blockkit``): blocks, text
and views beyond Slack's limits are answered ``invalid_blocks``, ``msg_too_long`` or
``invalid_arguments`` with the problems named, and still recorded in ``calls()``.

``SlackSender`` posts signed slash commands and button clicks to a Bolt app in HTTP
mode, or hands the same payloads to ``FakeSlack.socket_send`` for Socket Mode.

Close a ``SocketModeHandler`` *before* stopping the fake: on a server-side close the
slack_sdk client reconnects at once through ``apps.connections.open``.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import itertools
import json
import logging
import re
import secrets
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import httpx
from slack_sdk.signature import SignatureVerifier
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from .blockkit import (
    validate_blocks,
    validate_message,
    validate_options,
    validate_submission_answer,
    validate_text,
    validate_view,
)

__all__ = [
    "Call",
    "FakeSlack",
    "ResponsePost",
    "SlackSender",
    "SlackSignature",
    "block_actions_payload",
    "block_suggestion_payload",
    "shortcut_payload",
    "slash_command_payload",
    "validate_message",
    "validate_options",
    "validate_view",
    "view_submission_payload",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Fields that Slack accepts as JSON strings inside form-encoded bodies.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "metadata", "unfurls"})
_VERIFICATION_TOKEN = "fake-verification-token"
_SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
_MISSING_TEXT = "missing_text_in_message_with_blocks"
# Message metadata, as Slack takes it: an `event_type` of letters, digits and underscores,
# and an `event_payload` object. History pages: Slack's default and largest `limit`.
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]{1,255}")
_HISTORY_LIMIT, _HISTORY_MAX_LIMIT = 100, 999
# What each method needs of the token when `FakeSlack.scopes` is set; by channel type
# (C public, G private or group DM, D direct message) for the history methods.
_HISTORY_SCOPES = {"C": "channels:history", "G": "groups:history", "D": "im:history"}
_METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
}
# The scopes a token has when a test grants it all (`FakeSlack.scopes` None): the bot's.
EVERY_SCOPE = frozenset(
    {
        "commands",
        "chat:write",
        "im:write",
        "users:read",
        "users:read.email",
        "channels:read",
        "groups:read",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
    }
)

# A trigger_id opens one view, within this many seconds of the click or command.
TRIGGER_SECONDS = 3.0


@dataclass(frozen=True)
class Call:
    """One Web API request the fake received, with what it answered."""

    method: str
    args: dict[str, Any]
    time: float
    response: dict[str, Any] = field(default_factory=dict)
    status: int = 200

    @property
    def ok(self) -> bool:
        """True when Slack accepted the call."""
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def ts(self) -> str | None:
        """The message ts this call created or edited, if any."""
        value = self.response.get("ts") or self.response.get("message_ts") or self.args.get("ts")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a ``response_url``; ``ts`` is set when it was accepted.

    ``problems`` says what in the blocks or text made Slack refuse it (HTTP 400).
    """

    name: str
    body: dict[str, Any]
    time: float
    status: int
    ts: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the fake accepted the post (HTTP 200)."""
        return self.status == 200


class FakeSlack:
    """A fake Slack: Web API, response_url and Socket Mode on 127.0.0.1.

    ``not_in_channel`` and ``missing_channels`` are sets of channel ids a test
    fills to make posting there fail with ``not_in_channel`` / ``channel_not_found``.
    ``response_url_max_uses`` (5, as Slack; ``None`` for no limit) makes a URL
    answer 404 ``expired_url`` after that many accepted posts.

    Messages may carry ``metadata`` (``event_type`` + ``event_payload`` object, refused
    ``invalid_metadata_format`` / ``invalid_metadata_schema`` otherwise), which
    ``conversations.history`` and ``conversations.replies`` return only with
    ``include_all_metadata``; both page with ``limit`` and ``cursor`` as Slack does.
    ``scopes`` (None: every scope) is the set the bot token was granted: methods that
    need another answer ``missing_scope`` with ``needed`` and ``provided``.
    ``views.open`` and ``views.push`` take only a ``trigger_id`` the fake handed out
    (``trigger_id()``; a ``SlackSender`` with a fake puts one in every command, click and
    shortcut), once, within ``TRIGGER_SECONDS`` of it (by ``clock``), as Slack does:
    otherwise ``invalid_trigger_id``, ``exchanged_trigger_id`` or ``expired_trigger_id``.

    ``warnings`` lists what Slack took but warned about, one ``"<where>: <warning>"``
    each: today ``missing_text_in_message_with_blocks``, for a message (Web API or
    response_url) with blocks and no ``text`` fallback for notifications and screen
    readers. A test asserts ``fake.warnings == []`` to keep every message readable.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-1-A1-1-fake-app-token",
        team_id: str = "T1",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A1",
        socket_ping_interval: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        keep_alive: bool = False,
    ) -> None:
        self.bot_token = bot_token
        # Whether a connection stays open after an answer, as Slack's do (the benchmark);
        # by default each answer closes its connection.
        self.keep_alive = keep_alive
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.not_in_channel: set[str] = set()
        self.missing_channels: set[str] = set()
        self.response_url_max_uses: int | None = 5
        self.scopes: set[str] | None = None
        self._socket_ping_interval = socket_ping_interval
        self._clock = clock

        # One condition guards all state; it is notified on every recorded event.
        self._cond = threading.Condition()
        self._generation = 0  # bumped on every change, so waiters miss nothing
        self._calls: list[Call] = []
        self._messages: dict[str, dict[str, Any]] = {}  # ts -> current message, with "channel"
        self._last_ts = 0  # microseconds of the last ts handed out
        self._view_counter = itertools.count(1)
        # The workspace's users: users.info knows these only. Slackbot, as Slack, and the bot.
        self._users: dict[str, dict[str, Any]] = {
            "USLACKBOT": {"name": "slackbot", "real_name": "Slackbot"},
            bot_user_id: {"name": "sharebot", "is_bot": True},
        }
        self._locales: dict[str, str] = {}
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._holds: dict[str, list[float]] = {}
        self._responses: list[ResponsePost] = []
        self._expired: set[str] = set()
        self._tickets: set[str] = set()
        self._triggers: dict[str, float] = {}  # issued trigger_id -> when
        self._exchanged: set[str] = set()
        self._opened: list[dict[str, Any]] = []  # views opened, as Slack holds them
        self._sockets: list[ServerConnection] = []
        self._socket_connections = 0
        self._envelopes: list[dict[str, Any]] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self._socket_received: list[Any] = []
        self.errors: list[BaseException] = []  # exceptions raised inside the fake itself
        self.warnings: list[str] = []  # what Slack accepted with a warning; see the docstring

        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.join": self._conversations_join,
            "apps.connections.open": self._apps_connections_open,
        }

        self._httpd: _HTTPServer | None = None
        self._ws: Server | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start the HTTP and websocket servers; returns self."""
        if self._httpd is not None:
            raise RuntimeError("FakeSlack already started")
        try:
            self._httpd = httpd = _HTTPServer(self)
            self._ws = serve(
                self._socket_handler,
                "127.0.0.1",
                0,
                compression=None,  # slack_sdk's builtin client speaks no extensions
                process_request=self._socket_check_ticket,
                ping_interval=self._socket_ping_interval,
                close_timeout=1,
                logger=logging.getLogger(f"{__name__}.websocket"),
            )
            for name, target in (
                ("fake-slack-http", lambda: httpd.serve_forever(poll_interval=0.05)),
                ("fake-slack-socket", self._ws.serve_forever),
            ):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers and wait for their threads; idempotent."""
        httpd, self._httpd = self._httpd, None
        ws, self._ws = self._ws, None
        serving = {t.name for t in self._threads}
        # Websockets first: a client told to go away reconnects through
        # apps.connections.open at once, and slack_sdk spins if that call fails.
        if ws is not None:
            if "fake-slack-socket" in serving:
                ws.shutdown()  # closes open websockets with 1001 and joins their threads
            else:  # shutdown() would wait for serve_forever() forever
                for sock in (ws.socket, ws.shutdown_watcher, ws.shutdown_notifier):
                    sock.close()
        if httpd is not None:
            if "fake-slack-http" in serving:  # shutdown() waits for serve_forever to notice
                httpd.shutdown()
            httpd.server_close()  # also joins request threads (ThreadingMixIn.block_on_close)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``WebClient(base_url=...)``, ending in ``/api/``."""
        return f"{self.base_url}/api/"

    @property
    def socket_url(self) -> str:
        """``ws://127.0.0.1:WSPORT`` (``apps.connections.open`` adds path and ticket)."""
        if self._ws is None:
            raise RuntimeError("FakeSlack is not started")
        return f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}"

    def response_url(self, name: str) -> str:
        """A response_url whose posts are recorded under ``name``."""
        return f"{self.base_url}/response/{quote(name, safe='')}"

    # ------------------------------------------------------------------ scripting

    def add_user(
        self, user_id: str, *, is_bot: bool = False, deleted: bool = False, **fields: Any
    ) -> None:
        """Make ``user_id`` a user of the workspace (``users.info`` answers
        ``user_not_found`` for anyone else, as Slack does); a bot or a deactivated one."""
        with self._cond:
            user = self._users.setdefault(user_id, {})
            user.update(fields)
            user.update(is_bot=is_bot, deleted=deleted)

    def add_person(self, user_id: str, email: str, **fields: Any) -> None:
        """Make ``user_id`` a person whose profile email is ``email``
        (``users.lookupByEmail`` finds them by it)."""
        self.add_user(user_id, email=email, **fields)

    def knows_user(self, user_id: str) -> None:
        """``user_id`` is a user, as it is already if added before (fields kept)."""
        with self._cond:
            self._users.setdefault(user_id, {})

    def set_locale(self, user_id: str, locale: str) -> None:
        """Locale that ``users.info(include_locale=True)`` reports for this user (a user now)."""
        with self._cond:
            self._users.setdefault(user_id, {})
            self._locales[user_id] = locale

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Override fields of the user that ``users.info`` returns (name, tz, ...)."""
        with self._cond:
            self._users.setdefault(user_id, {}).update(fields)

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 and Retry-After."""
        with self._cond:
            self._rate_limits.setdefault(method, []).extend([retry_after] * times)

    def fail(self, method: str, error: str = "internal_error", times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``ok: false`` and ``error``."""
        with self._cond:
            self._failures.setdefault(method, []).extend([error] * times)

    def hold(self, method: str, seconds: float, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``method`` at once (they are recorded and
        take effect) but send the answer only ``seconds`` later: a client that dies
        meanwhile never learns that Slack took its message."""
        with self._cond:
            self._holds.setdefault(method, []).extend([seconds] * times)

    def expire_response_url(self, name: str) -> None:
        """Make this response_url answer 404 ``expired_url`` from now on."""
        with self._cond:
            self._expired.add(name)

    def trigger_id(self) -> str:
        """A new trigger_id, as Slack puts in a command, click or shortcut."""
        trigger = _trigger_id()
        with self._cond:
            self._triggers[trigger] = self._clock()
        return trigger

    def age_trigger(self, trigger: str, seconds: float) -> None:
        """Make ``trigger`` as old as if it was handed out ``seconds`` earlier."""
        with self._cond:
            self._triggers[trigger] -= seconds

    def opened_views(self) -> list[dict[str, Any]]:
        """Every view opened (``views.open`` / ``views.push``), as Slack holds it, oldest first."""
        with self._cond:
            return copy.deepcopy(self._opened)

    def clear(self) -> None:
        """Forget recorded calls, responses, warnings and socket traffic (not the scripting)."""
        with self._cond:
            self._calls.clear()
            self.warnings.clear()
            self._responses.clear()
            self._envelopes.clear()
            self._acks.clear()
            self._socket_received.clear()

    # ------------------------------------------------------------------ reading

    def calls(self, method: str | None = None) -> list[Call]:
        """Every recorded Web API call (accepted or not), oldest first."""
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[Call]:
        """Accepted ``chat.postMessage`` calls, optionally in one channel."""
        return [
            c
            for c in self.calls("chat.postMessage")
            if c.ok
            and (channel is None or channel in (c.args.get("channel"), c.response["channel"]))
        ]

    def thread(self, ts: str) -> list[Call]:
        """Accepted ``chat.postMessage`` calls replying in the thread of ``ts``."""
        return [c for c in self.messages() if str(c.args.get("thread_ts")) == ts]

    def updates(self, ts: str | None = None) -> list[Call]:
        """Accepted ``chat.update`` calls, optionally for one message."""
        return [c for c in self.calls("chat.update") if c.ok and (ts is None or c.args["ts"] == ts)]

    def ephemerals(self, user: str | None = None) -> list[Call]:
        """Accepted ``chat.postEphemeral`` calls, optionally for one user."""
        return [
            c
            for c in self.calls("chat.postEphemeral")
            if c.ok and (user is None or c.args.get("user") == user)
        ]

    def message(self, ts: str) -> dict[str, Any] | None:
        """The message ``ts`` as it stands now (after updates), with its ``channel``."""
        with self._cond:
            found = self._messages.get(ts)
            return copy.deepcopy(found) if found is not None else None

    def responses(
        self, name: str | None = None, *, include_rejected: bool = False
    ) -> list[ResponsePost]:
        """Posts to response_urls (accepted ones unless ``include_rejected``)."""
        with self._cond:
            return [
                r
                for r in self._responses
                if (name is None or r.name == name) and (include_rejected or r.ok)
            ]

    def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, *, what: str = ""
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        Re-checked whenever the fake records something (and every 0.1 s, for
        predicates over state outside the fake). Raises AssertionError with a dump
        of everything recorded when ``timeout`` passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._generation
            # Called without the lock, so a predicate may itself call the fake over HTTP.
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                label = what or getattr(predicate, "__qualname__", repr(predicate))
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {label}\n{self.dump()}"
                )
            with self._cond:
                if self._generation == seen:
                    self._cond.wait(min(remaining, 0.1))

    def _changed(self) -> None:
        """Wake every waiter; call with the lock held."""
        self._generation += 1
        self._cond.notify_all()

    def dump(self) -> str:
        """Everything recorded, one line each, for failure messages."""
        with self._cond:
            lines = [f"FakeSlack recorded {len(self._calls)} Web API call(s):"]
            lines += [f"  {i}. {_describe(c)}" for i, c in enumerate(self._calls, 1)]
            lines.append(f"response_url posts ({len(self._responses)}):")
            lines += [
                f"  {r.name}: HTTP {r.status} {_short(r.body)}"
                + (f" {_short(list(r.problems), 400)}" if r.problems else "")
                for r in self._responses
            ]
            lines.append(
                f"socket mode: {len(self._sockets)} open, {self._socket_connections} ever, "
                f"{len(self._envelopes)} envelope(s) sent, {len(self._acks)} ack(s)"
            )
            lines += [f"  ack {_short(a)}" for a in self._acks.values()]
            if self.errors:
                lines.append("errors inside the fake:")
                lines += [f"  {e!r}" for e in self.errors]
            return "\n".join(lines)

    # ------------------------------------------------------------------ socket mode

    @property
    def socket_connection_count(self) -> int:
        """How many Socket Mode connections were ever opened (reconnects count)."""
        with self._cond:
            return self._socket_connections

    def wait_socket_connected(self, timeout: float = 5.0) -> None:
        """Wait until a Socket Mode client is connected and has been sent ``hello``."""
        self.wait_for(lambda: bool(self._sockets), timeout, what="a Socket Mode connection")

    def socket_received(self) -> list[Any]:
        """Everything the Socket Mode client sent (acks included), oldest first."""
        with self._cond:
            return list(self._socket_received)

    def socket_send(
        self,
        type_: str,
        payload: dict[str, Any],
        accepts_response_payload: bool = True,
        *,
        timeout: float = 5.0,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> dict[str, Any]:
        """Send an envelope to the connected client and return its ack.

        ``type_`` is ``"slash_commands"``, ``"interactive"`` or ``"events_api"``.
        The ack is ``{"envelope_id": ..., "payload": {...}}`` (payload optional).
        """
        envelope_id = self.socket_send_nowait(
            type_,
            payload,
            accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        return self.socket_ack(envelope_id, timeout)

    def socket_send_nowait(
        self,
        type_: str,
        payload: dict[str, Any],
        accepts_response_payload: bool = True,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send an envelope without waiting; returns its envelope_id for ``socket_ack``."""
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type_ == "events_api" or retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        with self._cond:
            if not self._sockets:
                raise AssertionError(f"no Socket Mode client is connected\n{self.dump()}")
            connection = self._sockets[-1]
            self._envelopes.append(envelope)
        self._socket_write(connection, envelope)
        return str(envelope["envelope_id"])

    def socket_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the client's ack of ``envelope_id`` and return it."""
        return self.wait_for(
            lambda: self._acks.get(envelope_id), timeout, what=f"the ack of envelope {envelope_id}"
        )

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        with self._cond:
            if not self._sockets:
                raise AssertionError("no Socket Mode client is connected")
            connection = self._sockets[-1]
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        self._socket_write(connection, message)

    def _socket_write(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        try:
            connection.send(json.dumps(message))
        except ConnectionClosed as e:
            raise AssertionError(f"the Socket Mode client went away: {e}\n{self.dump()}") from e

    def _socket_check_ticket(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        parts = urlsplit(request.path)
        ticket = dict(parse_qsl(parts.query)).get("ticket")
        with self._cond:
            valid = parts.path == "/link/" and ticket in self._tickets
        if valid:
            return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid ticket\n")

    def _socket_handler(self, connection: ServerConnection) -> None:
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {
                "host": "fake-slack",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        try:
            # Counted before the hello: the client may say it is connected (and a test
            # look at the count) as soon as the hello arrives.
            with self._cond:
                self._socket_connections += 1
            connection.send(json.dumps(hello))
            with self._cond:
                self._sockets.append(connection)
                self._changed()
            for raw in connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = {"unparsed": raw}
                with self._cond:
                    self._socket_received.append(message)
                    if isinstance(message, dict) and message.get("envelope_id"):
                        self._acks[str(message["envelope_id"])] = message
                    self._changed()
        except ConnectionClosed:
            pass  # slack_sdk's client drops the TCP connection without a close frame
        finally:
            with self._cond:
                if connection in self._sockets:
                    self._sockets.remove(connection)
                self._changed()

    # ------------------------------------------------------------------ HTTP side

    def _handle_http(
        self, verb: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        try:
            if parts.path.startswith("/api/"):
                return self._handle_api(parts.path[len("/api/") :], parts.query, headers, body)
            if parts.path.startswith("/response/") and verb == "POST":
                return self._handle_response_url(
                    unquote(parts.path[len("/response/") :]), headers, body
                )
            return 404, {"Content-Type": "text/plain"}, b"not found"
        except Exception as e:  # a bug in the fake: answer 500 and keep it for the dump
            logger.exception("FakeSlack failed on %s %s", verb, target)
            with self._cond:
                self.errors.append(e)
                self._changed()
            return 500, {"Content-Type": "text/plain"}, f"fake slack error: {e!r}".encode()

    def _handle_api(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        status: int = 200
        extra_headers: dict[str, str] = {}
        try:
            args, bad_body = _decode_params(headers.get("content-type", ""), query, body), False
        except ValueError:
            args, bad_body = {}, True
        bearer = _bearer(headers.get("authorization"))
        body_token = args.pop("token", None)
        token = bearer or body_token
        with self._cond:
            handler = self._methods.get(method)
            response: dict[str, Any]
            if handler is None:
                response = {"ok": False, "error": "unknown_method", "req_method": method}
            elif bad_body:
                response = {"ok": False, "error": "invalid_json"}
            elif error := self._auth_error(method, token):
                response = {"ok": False, "error": error}
            elif needed := self._missing_scope(method, args):
                response = {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(sorted(self.scopes or ())),
                }
            elif self._rate_limits.get(method):
                retry_after = self._rate_limits[method].pop(0)
                status, extra_headers = 429, {"Retry-After": str(retry_after)}
                response = {"ok": False, "error": "ratelimited"}
            elif self._failures.get(method):
                response = {"ok": False, "error": self._failures[method].pop(0)}
            else:
                response = handler(args)
            self._calls.append(Call(method, args, self._clock(), response, status))
            self._changed()
            held = self._holds[method].pop(0) if self._holds.get(method) else 0.0
        if held:
            time.sleep(held)
        payload = json.dumps(response).encode()
        if token is not None and self._auth_error(method, token) is None:
            # Slack names the token's scopes on every answer to a token it accepts.
            extra_headers["x-oauth-scopes"] = ",".join(
                sorted(self.scopes if self.scopes is not None else EVERY_SCOPE)
            )
        return status, {"Content-Type": "application/json; charset=utf-8", **extra_headers}, payload

    def _auth_error(self, method: str, token: str | None) -> str | None:
        wanted, other = (
            (self.app_token, self.bot_token)
            if method == "apps.connections.open"
            else (self.bot_token, self.app_token)
        )
        if not token:
            return "not_authed"
        if token == wanted:
            return None
        return "not_allowed_token_type" if token == other else "invalid_auth"

    def _missing_scope(self, method: str, args: Mapping[str, Any]) -> str | None:
        """The scope `method` needs that the token lacks, when scopes are modelled."""
        if self.scopes is None:
            return None
        needed = _METHOD_SCOPES.get(method)
        if method in {"conversations.history", "conversations.replies"}:
            kind = _resolve_channel(str(args.get("channel") or "C"))[:1]
            needed = _HISTORY_SCOPES.get(kind, "channels:history")
        return needed if needed is not None and needed not in self.scopes else None

    def _handle_response_url(
        self, name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        text_plain = {"Content-Type": "text/plain"}
        problems: list[str] = []
        try:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/x-www-form-urlencoded":
                data = json.loads(dict(parse_qsl(body.decode())).get("payload", ""))
            else:
                data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            data = {"unparsed": body.decode(errors="replace")}
            status, answer = 400, b"invalid_payload"
        else:
            has_content = any(data.get(k) for k in ("text", "blocks", "attachments"))
            status, answer = (
                (200, b"ok") if has_content or data.get("delete_original") else (400, b"no_text")
            )
            # Refused as the Web API does, but in a webhook's words: HTTP 400 and the error.
            if status == 200 and (refusal := _message_refusal(data)):
                problems = list(refusal.get("errors", []))
                status, answer = 400, str(refusal["error"]).encode()
        with self._cond:
            used = sum(1 for r in self._responses if r.name == name and r.ok)
            limit = self.response_url_max_uses
            if name in self._expired or (limit is not None and used >= limit):
                status, answer = 404, b"expired_url"
            ts = self._next_ts() if status == 200 else None
            if status == 200 and _missing_text(data):
                self.warnings.append(f"response_url {name}: {_MISSING_TEXT}")
            post = ResponsePost(name, data, self._clock(), status, ts, tuple(problems))
            self._responses.append(post)
            self._changed()
        return status, text_plain, answer

    # ------------------------------------------------------------------ Web API methods
    # Each runs under self._cond and returns the JSON answer.

    def _next_ts(self) -> str:
        # As Slack's: the moment of posting (so `oldest` and `latest` mean what they say),
        # always increasing, never two alike.
        micros = max(int(self._clock() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel_error(self, channel: str | None) -> str | None:
        if not channel or channel in self.missing_channels:
            return "channel_not_found"
        if channel in self.not_in_channel or _resolve_channel(channel) in self.not_in_channel:
            return "not_in_channel"
        return None

    def _message_fields(self, args: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "text" in args:
            fields["text"] = args["text"] or ""
        if "blocks" in args:
            fields["blocks"] = _with_block_ids(_blocks_arg(args["blocks"]))
        if "attachments" in args:
            fields["attachments"] = copy.deepcopy(args["attachments"])
        if "metadata" in args:
            fields["metadata"] = copy.deepcopy(args["metadata"])
        return fields

    def _history_page(
        self, messages: list[dict[str, Any]], args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One page of `messages` (already in Slack's order), as history methods answer."""
        try:
            limit = int(args.get("limit") or _HISTORY_LIMIT)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        start: int | None = 0
        if args.get("cursor"):
            start = _decode_cursor(str(args["cursor"]))
            if start is None or start > len(messages):
                return {"ok": False, "error": "invalid_cursor"}
        limit = max(1, min(limit, _HISTORY_MAX_LIMIT))
        page = messages[start : start + limit]
        with_metadata = _truthy(args.get("include_all_metadata"))
        shown = [{k: copy.deepcopy(v) for k, v in m.items() if k != "channel"} for m in page]
        if not with_metadata:
            for m in shown:
                m.pop("metadata", None)
        more = start + limit < len(messages)
        answer: dict[str, Any] = {"ok": True, "messages": shown, "has_more": more}
        answer["response_metadata"] = {"next_cursor": _encode_cursor(start + limit) if more else ""}
        return answer

    def _readable(self, channel: Any) -> str | None:
        """Why the bot cannot read `channel`'s history, or None."""
        if not channel or channel in self.missing_channels:
            return "channel_not_found"
        if channel in self.not_in_channel or _resolve_channel(str(channel)) in self.not_in_channel:
            return "not_in_channel"
        return None

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if error := self._readable(channel):
            return {"ok": False, "error": error}
        resolved = _resolve_channel(str(channel))
        try:
            oldest = float(args.get("oldest") or 0)
            latest = float(args["latest"]) if args.get("latest") else None
        except ValueError:
            return {"ok": False, "error": "invalid_ts_oldest"}
        inclusive = _truthy(args.get("inclusive"))
        replied = {str(m["thread_ts"]) for m in self._messages.values() if m.get("thread_ts")}

        def within(ts: float) -> bool:
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= latest if inclusive else ts < latest)
            return after and before

        # Newest first; thread replies are not in a channel's history, their parents are.
        found = [
            {**m, **({"thread_ts": ts} if ts in replied else {})}
            for ts, m in sorted(self._messages.items(), key=lambda kv: float(kv[0]), reverse=True)
            if m["channel"] == resolved and not m.get("thread_ts") and within(float(ts))
        ]
        return self._history_page(found, args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), str(args.get("ts") or "")
        if error := self._readable(channel):
            return {"ok": False, "error": error}
        resolved = _resolve_channel(str(channel))
        parent = self._messages.get(ts)
        if parent is None or parent["channel"] != resolved:
            return {"ok": False, "error": "thread_not_found"}
        replies = sorted(
            (
                m
                for m in self._messages.values()
                if m["channel"] == resolved and str(m.get("thread_ts")) == ts
            ),
            key=lambda m: float(m["ts"]),
        )
        # The parent first, then the replies oldest first, as Slack answers.
        return self._history_page([parent, *replies], args)

    def _warned(
        self, method: str, args: Mapping[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        """``answer`` with Slack's warning when the message has blocks but no text fallback."""
        if _missing_text(args):
            answer["warning"] = _MISSING_TEXT
            answer["response_metadata"] = {"warnings": [_MISSING_TEXT]}
            self.warnings.append(f"{method}: {_MISSING_TEXT}")
        return answer

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-team.slack.com/",
            "team": "Fake Team",
            "user": "sharebot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if error := self._channel_error(channel):
            return {"ok": False, "error": error}
        assert channel is not None
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            return {"ok": False, "error": "no_text"}
        if refusal := _message_refusal(args) or _metadata_refusal(args):
            return refusal
        resolved = _resolve_channel(channel)
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": "",
            "ts": ts,
            **self._message_fields(args),
        }
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        self._messages[ts] = {**copy.deepcopy(message), "channel": resolved}
        answer = {"ok": True, "channel": resolved, "ts": ts, "message": message}
        return self._warned("chat.postMessage", args, answer)

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), str(args.get("ts") or "")
        stored = self._messages.get(ts)
        if not channel or stored is None or stored["channel"] != _resolve_channel(channel):
            return {"ok": False, "error": "message_not_found"}
        fields = self._message_fields(args)
        if not fields:
            return {"ok": False, "error": "no_text"}
        if refusal := _message_refusal(args) or _metadata_refusal(args):
            return refusal
        # Fields not sent are kept, as Slack does (an empty list removes blocks).
        stored.update(fields)
        stored["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        message = {k: v for k, v in copy.deepcopy(stored).items() if k != "channel"}
        answer = {
            "ok": True,
            "channel": stored["channel"],
            "ts": ts,
            "text": stored.get("text", ""),
            "message": message,
        }
        return self._warned("chat.update", args, answer)

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if error := self._channel_error(channel):
            return {"ok": False, "error": error}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_found"}
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            return {"ok": False, "error": "no_text"}
        if refusal := _message_refusal(args):
            return refusal
        # Not stored: chat.update cannot edit an ephemeral message.
        return self._warned("chat.postEphemeral", args, {"ok": True, "message_ts": self._next_ts()})

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user")
        if not user_id or user_id not in self._users:
            return {"ok": False, "error": "user_not_found"}
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": str(user_id).lower(),
            "real_name": f"User {user_id}",
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "Asia/Seoul",
            "tz_offset": 32400,
            "profile": {"real_name": f"User {user_id}", "display_name": str(user_id).lower()},
        }
        user.update(copy.deepcopy(self._users.get(user_id, {})))
        if _truthy(args.get("include_locale")):
            user["locale"] = self._locales.get(user_id, "en-US")
        return {"ok": True, "user": user}

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        # Slack matches the profile's email ignoring case; anyone else is users_not_found.
        email = str(args.get("email") or "")
        if not email:
            return {"ok": False, "error": "invalid_arguments"}
        found = next(
            (
                user_id
                for user_id, fields in self._users.items()
                if str(fields.get("email", "")).lower() == email.lower()
            ),
            None,
        )
        if found is None:
            return {"ok": False, "error": "users_not_found"}
        answer = self._users_info({"user": found})
        answer["user"]["profile"]["email"] = self._users[found]["email"]
        return answer

    def _view(self, view: Any, **extra: Any) -> dict[str, Any]:
        body = dict(view) if isinstance(view, dict) else {}
        return {
            "id": f"V{next(self._view_counter):08d}",
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            **body,
            "blocks": _with_block_ids(body.get("blocks", [])),
            **extra,
        }

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id") or not isinstance(args.get("view"), dict):
            return {"ok": False, "error": "invalid_arguments"}
        if refusal := _view_refusal(args["view"], ("home",)):
            return refusal
        return {"ok": True, "view": self._view(args["view"])}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = args.get("trigger_id")
        if not trigger or not isinstance(trigger, str):
            return {"ok": False, "error": "invalid_trigger_id"}
        if not isinstance(args.get("view"), dict):
            return {"ok": False, "error": "invalid_arguments"}
        if refusal := _view_refusal(args["view"], ("modal",)):
            return refusal
        if error := self._trigger_error(trigger):
            return {"ok": False, "error": error}
        self._exchanged.add(trigger)
        view = self._view(args["view"], state={"values": {}}, hash=secrets.token_hex(8))
        self._opened.append(copy.deepcopy(view))
        return {"ok": True, "view": view}

    def _trigger_error(self, trigger: str) -> str | None:
        issued = self._triggers.get(trigger)
        if issued is None:
            return "invalid_trigger_id"
        if trigger in self._exchanged:
            return "exchanged_trigger_id"
        if self._clock() - issued > TRIGGER_SECONDS:
            return "expired_trigger_id"
        return None

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        # Same checks as views.open; the fake keeps no stack, so never push_limit_reached.
        return self._views_open(args)

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not (args.get("view_id") or args.get("external_id")) or not isinstance(
            args.get("view"), dict
        ):
            return {"ok": False, "error": "invalid_arguments"}
        if refusal := _view_refusal(args["view"], ("modal", "home")):
            return refusal
        return {"ok": True, "view": self._view(args["view"])}

    def _conversation(self, channel: str) -> dict[str, Any]:
        resolved = _resolve_channel(channel)
        return {
            "id": resolved,
            "name": channel.lstrip("#").lower(),
            "is_channel": resolved.startswith("C"),
            "is_group": resolved.startswith("G"),
            "is_im": resolved.startswith("D"),
            "is_private": resolved.startswith("G"),
            "is_archived": False,
            "is_member": channel not in self.not_in_channel and resolved not in self.not_in_channel,
        }

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel or channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": self._conversation(channel)}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel or channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        self.not_in_channel.discard(channel)
        self.not_in_channel.discard(_resolve_channel(channel))
        return {"ok": True, "channel": self._conversation(channel)}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            return {"ok": False, "error": "internal_error"}
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"ok": True, "url": f"{self.socket_url}/link/?ticket={ticket}&app_id={self.app_id}"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is not a failure of the fake.
        logger.debug("FakeSlack HTTP connection from %s failed", client_address, exc_info=True)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can
        # stall for seconds on machines without working DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle client must not keep server_close() waiting forever
    server: _HTTPServer

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer_headers, payload = self.server.fake._handle_http(
            self.command, self.path, headers, body
        )
        self.send_response(status)
        for key, value in answer_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        keep = self.server.fake.keep_alive
        if not keep:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = not keep

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


# ---------------------------------------------------------------------- helpers


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[len("bearer ") :].strip()
    return None


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _resolve_channel(channel: str) -> str:
    # Posting to a user id opens the bot's DM with them, which Slack answers as "D...".
    if channel[:1] in ("U", "W"):
        return "D" + channel[1:]
    return channel


def _decode_params(content_type: str, query: str, body: bytes) -> dict[str, Any]:
    args: dict[str, Any] = {
        k: _maybe_json(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
    }
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return args
    if ctype == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body is not an object")
        args.update(data)
    elif ctype == "multipart/form-data":
        args.update(_parse_multipart(content_type, body))
    else:
        for key, value in parse_qsl(body.decode(), keep_blank_values=True):
            args[key] = _maybe_json(key, value)
    return args


def _maybe_json(key: str, value: str) -> Any:
    if key in _JSON_FIELDS and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        fields[name] = data if part.get_filename() else _maybe_json(name, data.decode())
    return fields


def _blocks_arg(value: Any) -> Any:
    """``blocks`` as Slack reads them: a JSON string decoded, ``""`` as none sent."""
    if value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message_refusal(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Slack's answer to a message whose ``text`` or ``blocks`` it refuses, else None."""
    text = args.get("text")
    if isinstance(text, str) and validate_text(text):
        return {"ok": False, "error": "msg_too_long"}
    blocks = _blocks_arg(args.get("blocks"))
    if blocks is not None and not isinstance(blocks, list):
        return {"ok": False, "error": "invalid_blocks_format"}
    if problems := validate_blocks(blocks):
        return {"ok": False, "error": "invalid_blocks", "errors": problems}
    return None


def _metadata_refusal(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Slack's answer to message metadata it does not take, or None."""
    if "metadata" not in args:
        return None
    metadata = args["metadata"]
    if isinstance(metadata, str):  # a form field that was not JSON
        return {"ok": False, "error": "invalid_metadata_format"}
    if not isinstance(metadata, dict) or set(metadata) - {"event_type", "event_payload"}:
        return {"ok": False, "error": "invalid_metadata_format"}
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        return {"ok": False, "error": "invalid_metadata_schema"}
    if not isinstance(payload, dict):
        return {"ok": False, "error": "invalid_metadata_schema"}
    return None


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int | None:
    try:
        kind, _, offset = base64.b64decode(cursor, validate=True).decode().partition(":")
        return int(offset) if kind == "offset" and int(offset) >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None


def _missing_text(args: Mapping[str, Any]) -> bool:
    """True for a message with blocks and no text fallback (Slack takes it, and warns)."""
    text = args.get("text")
    return bool(_blocks_arg(args.get("blocks"))) and not (isinstance(text, str) and text.strip())


def _view_refusal(view: Any, types: tuple[str, ...]) -> dict[str, Any] | None:
    """Slack's answer to a view it refuses (``types``: those the method takes), else None."""
    if problems := validate_view(view, types=types):
        messages = [f"[ERROR] {problem}" for problem in problems]
        return {
            "ok": False,
            "error": "invalid_arguments",
            "response_metadata": {"messages": messages},
        }
    return None


def _with_block_ids(blocks: Any) -> Any:
    """Copy of blocks with a block_id on each, as Slack stores a posted message."""
    if not isinstance(blocks, list):
        return copy.deepcopy(blocks)
    out = copy.deepcopy(blocks)
    for block in out:
        if isinstance(block, dict) and not block.get("block_id"):
            block["block_id"] = secrets.token_urlsafe(4)
    return out


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(call: Call) -> str:
    keys = ("channel", "user", "user_id", "ts", "thread_ts", "text")
    shown = " ".join(f"{k}={call.args[k]!r}" for k in keys if k in call.args)
    if "blocks" in call.args:
        shown += f" blocks={len(call.args['blocks'] or [])}"
    if call.ok:
        outcome = "ok" + (f" ts={call.ts}" if call.ts else "")
    else:
        outcome = f"error={call.response.get('error')!r}"
        problems = call.response.get("errors") or call.response.get("response_metadata", {}).get(
            "messages"
        )
        if problems:
            outcome += f" {_short(problems, 400)}"
    status = f" HTTP {call.status}" if call.status != 200 else ""
    return f"{call.method} {shown} -> {outcome}{status}".replace("  ", " ")


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


# ---------------------------------------------------------------------- what Slack sends


def slash_command_payload(
    text: str,
    *,
    response_url: str,
    command: str = "/share-image",
    user_id: str = "U1",
    user_name: str | None = None,
    channel_id: str = "C1",
    channel_name: str | None = None,
    team_id: str = "T1",
    team_domain: str = "fake-team",
    api_app_id: str = "A1",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields of a slash command, in Slack's order (form body, or Socket Mode payload)."""
    return {
        "token": _VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or _default_channel_name(channel_id),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }


def block_actions_payload(
    message: Call | ResponsePost,
    action_id: str,
    *,
    user_id: str,
    response_url: str,
    user_name: str | None = None,
    team_id: str = "T1",
    team_domain: str = "fake-team",
    api_app_id: str = "A1",
    channel_id: str | None = None,
    channel_name: str | None = None,
    trigger_id: str | None = None,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a button the bot really posted.

    ``message`` is a recorded ``chat.postMessage`` / ``chat.update`` /
    ``chat.postEphemeral`` call, or a ``ResponsePost``. Its blocks must hold a
    button with ``action_id``; its block_id and value are taken from there. Pass
    the original post to click what an approver saw before an update (a stale
    click), or the ``chat.update`` call to click the message as it is now.
    """
    if isinstance(message, ResponsePost):
        if message.ts is None:
            raise AssertionError(f"the response_url post was rejected: {message}")
        shown = {**message.body, "ts": message.ts}
        ephemeral = message.body.get("response_type") != "in_channel"
        channel = channel_id or "C1"
        ts = message.ts
    else:
        if not message.ok:
            raise AssertionError(f"cannot click on a message Slack refused: {_describe(message)}")
        shown = dict(message.response.get("message") or message.args)
        ephemeral = message.method == "chat.postEphemeral"
        channel = channel_id or str(message.response.get("channel") or message.args["channel"])
        ts = str(message.ts)
        shown["ts"] = ts
    block_id, button = _find_button(shown.get("blocks"), action_id)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": button.get("type", "button"),
        "action_ts": action_ts or f"{time.time():.6f}",
    }
    if "text" in button:
        action["text"] = button["text"]
    if "value" in button:
        action["value"] = button["value"]
    if "style" in button:
        action["style"] = button["style"]
    user_name = user_name or user_id.lower()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": _VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name or _default_channel_name(channel)},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not ephemeral:  # Slack leaves the message out for ephemeral ones
        payload["message"] = {k: v for k, v in shown.items() if k != "channel"}
    return payload


def shortcut_payload(
    callback_id: str,
    *,
    user_id: str,
    trigger_id: str,
    team_id: str = "T1",
    team_domain: str = "fake-team",
    api_app_id: str = "A1",
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A global shortcut (``type: shortcut``): no channel, no response_url."""
    user_name = user_id.lower()
    return {
        "type": "shortcut",
        "token": _VERIFICATION_TOKEN,
        "action_ts": action_ts or f"{time.time():.6f}",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "team_id": team_id},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": api_app_id,
        "callback_id": callback_id,
        "trigger_id": trigger_id,
    }


def _input_elements(view: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(block, element) of each input block of a view Slack holds."""
    return [
        (block, block["element"])
        for block in view.get("blocks") or []
        if isinstance(block, dict)
        and block.get("type") == "input"
        and isinstance(block.get("element"), dict)
    ]


def _view_as_sent(view: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(dict(view)), "state": {"values": values}}


def block_suggestion_payload(
    view: Mapping[str, Any],
    action_id: str,
    value: str,
    *,
    user_id: str,
    team_id: str = "T1",
    team_domain: str = "fake-team",
    api_app_id: str = "A1",
) -> dict[str, Any]:
    """What Slack sends while a user types ``value`` into the external_select
    ``action_id`` of an open modal ``view`` (a view ``views.open`` answered)."""
    found = [(b, e) for b, e in _input_elements(view) if e.get("action_id") == action_id]
    if not found:
        raise AssertionError(f"no external_select {action_id!r} in the view")
    [(block, element)] = found
    if element.get("type") not in ("external_select", "multi_external_select"):
        raise AssertionError(f"{action_id!r} is a {element.get('type')}, not a menu")
    least = int(element.get("min_query_length", 3))
    if len(value) < least:
        raise AssertionError(f"Slack asks for options only from {least} characters on")
    user_name = user_id.lower()
    return {
        "type": "block_suggestion",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "container": {"type": "view", "view_id": view.get("id")},
        "api_app_id": api_app_id,
        "token": _VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block["block_id"],
        "value": value,
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": _view_as_sent(view, {}),
    }


def view_submission_payload(
    view: Mapping[str, Any],
    chosen: Mapping[str, str | None],
    *,
    user_id: str,
    response_url: Callable[[str], str] | None = None,
    team_id: str = "T1",
    team_domain: str = "fake-team",
    api_app_id: str = "A1",
) -> dict[str, Any]:
    """What Slack sends when a user submits ``view`` with ``chosen``: block id -> the
    value picked (an option's value, a conversation id, the text typed; ``None``: left
    empty). Blocks not named keep their initial value. Slack does not submit a form
    whose required field is empty: that raises here. ``response_url(name)`` makes the
    URLs Slack sends for conversations_select menus with ``response_url_enabled``.
    """
    values: dict[str, Any] = {}
    response_urls: list[dict[str, Any]] = []
    unknown = set(chosen) - {block.get("block_id") for block, _ in _input_elements(view)}
    if unknown:
        raise AssertionError(f"no input blocks {sorted(unknown)} in the view")
    for block, element in _input_elements(view):
        block_id, action_id, kind = block["block_id"], element.get("action_id"), element["type"]
        if block_id in chosen:
            picked = chosen[block_id]
        elif kind == "conversations_select":
            picked = element.get("initial_conversation")
        elif kind.endswith("select") and isinstance(element.get("initial_option"), dict):
            picked = element["initial_option"].get("value")
        else:
            picked = element.get("initial_value")
        if picked in (None, "") and not block.get("optional"):
            raise AssertionError(f"Slack does not submit the form: {block_id!r} is required")
        state: dict[str, Any] = {"type": kind}
        if kind == "conversations_select":
            state["selected_conversation"] = picked or None
            if picked and element.get("response_url_enabled") and response_url is not None:
                response_urls.append(
                    {
                        "block_id": block_id,
                        "action_id": action_id,
                        "channel_id": picked,
                        "response_url": response_url(f"view-{block_id}-{picked}"),
                    }
                )
        elif kind.endswith("_select"):
            state["selected_option"] = _chosen_option(element, picked) if picked else None
        else:
            state["value"] = picked or None
        values[block_id] = {action_id: state}
    user_name = user_id.lower()
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": _VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": _view_as_sent(view, values),
        "response_urls": response_urls,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def _chosen_option(element: Mapping[str, Any], value: str) -> dict[str, Any]:
    """The option as Slack sends it back: the menu's own, or (an external menu, or a
    forged value) one with that value."""
    for option in element.get("options") or []:
        if option.get("value") == value:
            return copy.deepcopy(dict(option))
    return {"text": {"type": "plain_text", "text": value[:75], "emoji": True}, "value": value}


def _default_channel_name(channel_id: str) -> str:
    return "directmessage" if channel_id.startswith("D") else f"channel-{channel_id.lower()}"


def _find_button(blocks: Any, action_id: str) -> tuple[str, dict[str, Any]]:
    seen = []
    for block in blocks or []:
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            seen.append(element.get("action_id"))
            if element.get("action_id") == action_id:
                block_id = block.get("block_id") or secrets.token_urlsafe(4)
                return block_id, element
    raise AssertionError(f"no element with action_id {action_id!r} in the message; found {seen}")


# ---------------------------------------------------------------------- sender


class SlackSignature(httpx.Auth):
    """Signs a request as Slack does: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``.

    ``timestamp_offset`` shifts the timestamp (negative: a stale request);
    ``signature`` replaces the computed signature (a forged request).
    """

    requires_request_body = True

    def __init__(
        self,
        signing_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        timestamp_offset: float = 0.0,
        signature: str | None = None,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._clock = clock
        self._offset = timestamp_offset
        self._signature = signature

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock() + self._offset))
        signature = self._signature or self._verifier.generate_signature(
            timestamp=timestamp, body=request.content
        )
        request.headers["X-Slack-Request-Timestamp"] = timestamp
        request.headers["X-Slack-Signature"] = str(signature)
        yield request


class SlackSender:
    """Sends slash commands and clicks to a Bolt app exactly as Slack does.

    HTTP mode: signed form posts to ``events_url`` (``transport`` may be an
    ``httpx.WSGITransport`` around the app). Socket Mode: ``socket_*`` methods hand
    the same payloads to ``FakeSlack.socket_send``. Without an explicit
    ``response_url``, each request gets ``fake.response_url("command-N")`` or
    ``"action-N"`` (N counts from 1 per sender).
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        clock: Callable[[], float] = time.time,
        *,
        fake: FakeSlack | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        team_id: str = "T1",
        api_app_id: str = "A1",
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.clock = clock
        self.fake = fake
        self.team_id = team_id
        self.api_app_id = api_app_id
        self._transport = transport
        self._timeout = timeout
        self._client: httpx.Client | None = None
        # Tests send from many threads at once: one client (and pool) for all of them.
        self._client_lock = threading.Lock()
        self._commands = itertools.count(1)
        self._actions = itertools.count(1)

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- payloads

    def command_payload(
        self,
        text: str,
        *,
        fake: FakeSlack | None = None,
        response_url: str | None = None,
        **fields: Any,
    ) -> dict[str, str]:
        """Slash command fields; ``fields`` as in ``slash_command_payload``."""
        fields.setdefault("team_id", self.team_id)
        fields.setdefault("api_app_id", self.api_app_id)
        self._with_trigger(fake, fields)
        url = response_url or self._default_response_url(fake, f"command-{next(self._commands)}")
        return slash_command_payload(text, response_url=url, **fields)

    def click_payload(
        self,
        message: Call | ResponsePost,
        action_id: str,
        *,
        user_id: str,
        fake: FakeSlack | None = None,
        response_url: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A ``block_actions`` payload; ``fields`` as in ``block_actions_payload``."""
        fields.setdefault("team_id", self.team_id)
        fields.setdefault("api_app_id", self.api_app_id)
        fields.setdefault("action_ts", f"{self.clock():.6f}")
        self._with_trigger(fake, fields)
        url = response_url or self._default_response_url(fake, f"action-{next(self._actions)}")
        return block_actions_payload(
            message, action_id, user_id=user_id, response_url=url, **fields
        )

    def _with_trigger(self, fake: FakeSlack | None, fields: dict[str, Any]) -> None:
        """A trigger_id the fake will take, unless the test gave one."""
        fake = fake or self.fake
        if not fields.get("trigger_id") and fake is not None:
            fields["trigger_id"] = fake.trigger_id()

    def _default_response_url(self, fake: FakeSlack | None, name: str) -> str:
        fake = fake or self.fake
        # Without a fake, a closed local port: a post fails fast, never reaches the internet.
        return (
            fake.response_url(name) if fake is not None else f"http://127.0.0.1:9/response/{name}"
        )

    # -- HTTP mode

    def command(
        self,
        text: str,
        *,
        user_id: str = "U1",
        channel_id: str = "C1",
        command: str = "/share-image",
        response_url: str | None = None,
        user_name: str | None = None,
        team_id: str | None = None,
        trigger_id: str | None = None,
        channel_name: str | None = None,
        timestamp_offset: float = 0.0,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """POST a slash command as ``application/x-www-form-urlencoded``."""
        if self.fake is not None:
            self.fake.knows_user(user_id)  # whoever types a command is a user
        payload = self.command_payload(
            text,
            response_url=response_url,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            user_name=user_name,
            team_id=team_id or self.team_id,
            trigger_id=trigger_id,
            channel_name=channel_name,
        )
        return self.post(
            urlencode(payload),
            timestamp_offset=timestamp_offset,
            signature=signature,
            signed=signed,
        )

    def action(
        self,
        payload: dict[str, Any],
        *,
        timestamp_offset: float = 0.0,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """POST an interaction (block_actions, view_submission...) as ``payload=<JSON>``."""
        user = payload.get("user")
        if self.fake is not None and isinstance(user, dict) and isinstance(user.get("id"), str):
            self.fake.knows_user(user["id"])  # whoever clicks is a user of some workspace
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(
            body, timestamp_offset=timestamp_offset, signature=signature, signed=signed
        )

    def click(
        self,
        message_call: Call | ResponsePost,
        action_id: str,
        *,
        user_id: str,
        user_name: str | None = None,
        response_url: str | None = None,
        trigger_id: str | None = None,
        timestamp_offset: float = 0.0,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """Click the button ``action_id`` in a message the bot posted."""
        payload = self.click_payload(
            message_call,
            action_id,
            user_id=user_id,
            user_name=user_name,
            response_url=response_url,
            trigger_id=trigger_id,
        )
        return self.action(
            payload, timestamp_offset=timestamp_offset, signature=signature, signed=signed
        )

    def shortcut(
        self, callback_id: str, *, user_id: str = "U1", trigger_id: str | None = None
    ) -> httpx.Response:
        """Choose the global shortcut ``callback_id`` from Slack's shortcuts menu."""
        fake = self.fake
        trigger = trigger_id or (fake.trigger_id() if fake is not None else _trigger_id())
        return self.action(
            shortcut_payload(
                callback_id,
                user_id=user_id,
                trigger_id=trigger,
                team_id=self.team_id,
                api_app_id=self.api_app_id,
            )
        )

    def suggest(
        self, view: Mapping[str, Any], action_id: str, value: str, *, user_id: str = "U1"
    ) -> list[dict[str, Any]]:
        """Type ``value`` into the menu ``action_id`` of the open ``view``; the options the
        app answered. An answer Slack would refuse (over 100 options, a text over 75
        characters, a value over 150...) fails here, as the menu would show nothing."""
        payload = block_suggestion_payload(
            view,
            action_id,
            value,
            user_id=user_id,
            team_id=self.team_id,
            api_app_id=self.api_app_id,
        )
        response = self.action(payload)
        if response.status_code != 200:
            raise AssertionError(f"options request answered {response.status_code}")
        answer = response.json()
        if problems := validate_options(answer):
            raise AssertionError(f"Slack refuses these options: {problems}")
        return list(answer.get("options") or [])

    def submit(
        self, view: Mapping[str, Any], chosen: Mapping[str, str | None], *, user_id: str = "U1"
    ) -> dict[str, Any]:
        """Submit the open ``view`` with ``chosen`` (see ``view_submission_payload``); the
        app's answer (``{}``: the modal closes). An answer Slack would refuse (errors on
        a block that is no input of the view, say) fails here."""
        fake = self.fake
        payload = view_submission_payload(
            view,
            chosen,
            user_id=user_id,
            response_url=fake.response_url if fake is not None else None,
            team_id=self.team_id,
            api_app_id=self.api_app_id,
        )
        response = self.action(payload)
        if response.status_code != 200:
            raise AssertionError(f"view_submission answered {response.status_code}")
        answer = response.json() if response.content else {}
        if problems := validate_submission_answer(answer, view):
            raise AssertionError(f"Slack refuses this answer: {problems}")
        return dict(answer)

    def post(
        self,
        body: str | bytes,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp_offset: float = 0.0,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """POST a raw body to ``events_url``, signed unless ``signed=False``."""
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(transport=self._transport, timeout=self._timeout)
        auth = (
            SlackSignature(
                self.signing_secret,
                clock=self.clock,
                timestamp_offset=timestamp_offset,
                signature=signature,
            )
            if signed
            else httpx.USE_CLIENT_DEFAULT  # the client has no auth of its own
        )
        headers = {"Content-Type": content_type, "User-Agent": _SLACK_USER_AGENT}
        content = body.encode() if isinstance(body, str) else body
        return self._client.post(self.events_url, content=content, headers=headers, auth=auth)

    # -- Socket Mode

    def socket_command(
        self, fake: FakeSlack, text: str, *, timeout: float = 5.0, **fields: Any
    ) -> dict[str, Any]:
        """Send a slash command over Socket Mode; returns the client's ack."""
        payload = self.command_payload(text, fake=fake, **fields)
        fake.knows_user(payload["user_id"])
        return fake.socket_send("slash_commands", payload, timeout=timeout)

    def socket_click(
        self,
        fake: FakeSlack,
        message_call: Call | ResponsePost,
        action_id: str,
        *,
        user_id: str,
        timeout: float = 5.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """Click a button over Socket Mode; returns the client's ack."""
        payload = self.click_payload(message_call, action_id, user_id=user_id, fake=fake, **fields)
        fake.knows_user(user_id)
        return fake.socket_send(
            "interactive", payload, accepts_response_payload=False, timeout=timeout
        )
