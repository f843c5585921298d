"""The HTTP endpoint's bounds on strangers, against a tiny Bolt app on the real server:
slow heads and slow bodies are cut after their timeouts while signed requests are still
answered at once, big bodies get 413 unread, a crowd beyond the connection limit is turned
away, and junk gets 401 unless Slack signed it (then 400). Each refusal is counted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
from prometheus_client import REGISTRY
from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.server import MAX_BODY, Listening, first_values, make_web_app
from bot.settings import Settings, load_settings
from storage import Database

SIGNING_SECRET = "test-signing-secret-0123456789"
COMMAND = b"command=%2Fshare-image&user_id=U1&channel_id=C1&team_id=T1&text=help"


def signed_headers(body: bytes, *, stamp: int | None = None) -> dict[str, str]:
    """Slack's signature over exactly these bytes."""
    when = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(
        SIGNING_SECRET.encode(), b"v0:" + when.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": when,
        "X-Slack-Signature": f"v0={digest}",
    }


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": "xoxb-test-bot-token-0123456789",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SCP_ENDPOINT": "http://127.0.0.1:9",
        "SCP_ACCESS_KEY": "AKTEST0123456789",
        "SCP_SECRET_KEY": "SK-test-secret-0123456789abcdef",
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "SHARE_APPROVAL_CHANNEL": "CAPPROVE",
        "HTTP_HEADER_TIMEOUT_SECONDS": 1.0,
        "HTTP_BODY_TIMEOUT_SECONDS": 1.0,
        "HTTP_MAX_CONNECTIONS": 40,
    }
    return load_settings(**(values | overrides))


@dataclass
class Served:
    url: str
    port: int
    dispatched: list[str]


def tiny_app() -> tuple[AsyncApp, list[str]]:
    """A Bolt app with one command that answers "usage", and no auth.test."""
    seen: list[str] = []

    async def authorize(**kwargs: Any) -> Any:
        from slack_bolt.authorization import AuthorizeResult

        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-x")

    app = AsyncApp(signing_secret=SIGNING_SECRET, authorize=authorize)

    @app.command("/share-image")
    async def command(ack: AsyncAck, command: dict[str, Any]) -> None:
        seen.append(command["text"])
        await ack("usage")

    return app, seen


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app, seen = tiny_app()
    database = Database(tmp_path / "bot.db")
    listening = Listening(make_web_app(app, database, settings(tmp_path)))
    port = asyncio.run_coroutine_threadsafe(listening.start(0, "127.0.0.1"), loop).result(5)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, seen)
    finally:
        asyncio.run_coroutine_threadsafe(listening.stop(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        database.close()


def refused(status: int) -> float:
    return (
        REGISTRY.get_sample_value("share_image_events_refused_total", {"status": str(status)})
        or 0.0
    )


def post(served: Served, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{served.url}/slack/events", content=body, headers=headers, timeout=5)


def test_a_signed_command_reaches_bolt_and_is_answered_with_a_length(served: Served) -> None:
    answer = post(served, COMMAND, signed_headers(COMMAND))
    assert (answer.status_code, answer.text) == (200, "usage")
    assert answer.headers["content-length"] == str(len(answer.content))
    assert served.dispatched == ["help"]
    assert httpx.get(f"{served.url}/healthz").json() == {"ok": True, "database": "ok"}
    assert "share_image_events_refused_total" in httpx.get(f"{served.url}/metrics").text


MALFORMED = {
    "not UTF-8": b"payload=\xff\xfe\xfa",
    "payload not JSON": b"payload=not-json",
    "payload a list": b"payload=%5B%5D",
    "no known shape": b"hello=world",
    "command without user": b"command=%2Fshare-image&channel_id=C1&team_id=T1",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_unsigned_junk_is_401_signed_junk_400_and_both_are_counted(
    served: Served, body: bytes
) -> None:
    before = refused(401), refused(400)
    unsigned = post(served, body, {"Content-Type": "application/x-www-form-urlencoded"})
    signed = post(served, body, signed_headers(body))
    assert (unsigned.status_code, signed.status_code) == (401, 400)
    assert (refused(401) - before[0], refused(400) - before[1]) == (1, 1)
    assert served.dispatched == []


def test_forged_and_stale_signatures_are_401_from_bolt(served: Served) -> None:
    before = refused(401)
    forged = signed_headers(COMMAND) | {"X-Slack-Signature": "v0=" + "0" * 64}
    stale = signed_headers(COMMAND, stamp=int(time.time()) - 600)
    assert post(served, COMMAND, forged).status_code == 401
    assert post(served, COMMAND, stale).status_code == 401
    assert refused(401) - before == 2
    assert served.dispatched == []


def test_a_body_declared_too_big_is_413_before_it_is_read(served: Served) -> None:
    before = refused(413)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n")
        assert conn.recv(200).startswith(b"HTTP/1.1 413")
    assert post(served, b"a" * (MAX_BODY + 1), signed_headers(b"")).status_code == 413
    assert post(served, b"a" * MAX_BODY, {}).status_code == 401  # at the bound: judged
    assert refused(413) - before == 2


def _slow_head(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"POST /slack/events HTTP/1.1\r\nHo")
    return conn


def _slow_body(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    return conn


def _cut_after(conn: socket.socket) -> tuple[bytes, float]:
    """What the server sends before it closes the connection, and when it closed it."""
    received = b""
    started = time.monotonic()
    try:
        while chunk := conn.recv(4096):
            received += chunk
    except ConnectionResetError:  # closed with our request unread: a reset, also a cut
        pass
    return received, time.monotonic() - started


def test_slow_heads_and_slow_bodies_are_cut_while_signed_requests_go_through(
    served: Served,
) -> None:
    before = refused(408)
    heads = [_slow_head(served.port) for _ in range(10)]
    bodies = [_slow_body(served.port) for _ in range(10)]
    try:
        for _ in range(3):  # meanwhile, Slack's requests are answered at once
            started = time.monotonic()
            answer = post(served, COMMAND, signed_headers(COMMAND))
            assert (answer.status_code, answer.text) == (200, "usage")
            assert time.monotonic() - started < 1.0
        for conn in heads:
            received, waited = _cut_after(conn)
            assert received == b"" and waited < 3  # cut after the 1 s head timeout
        for conn in bodies:
            received, waited = _cut_after(conn)
            assert received.startswith(b"HTTP/1.1 408"), received
            assert waited < 3
    finally:
        for conn in heads + bodies:
            conn.close()
    assert refused(408) - before == 10


def test_a_head_trickling_in_a_byte_at_a_time_is_cut_at_the_timeout(served: Served) -> None:
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100  # 7 s at this pace
    cut_after = None
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        started = time.monotonic()
        for byte in head:
            try:
                conn.sendall(bytes([byte]))
            except OSError:  # the server closed it: the next send after that fails
                cut_after = time.monotonic() - started
                break
            time.sleep(0.05)
    assert cut_after is not None and 0.8 < cut_after < 3


def test_an_idle_keep_alive_connection_is_cut_at_the_head_timeout(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        received, waited = _cut_after(conn)
        assert received == b"" and 0.8 < waited < 3


def test_beyond_the_connection_limit_new_connections_are_closed_at_once(served: Served) -> None:
    held = [_slow_head(served.port) for _ in range(40)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            received, waited = _cut_after(extra)
            assert received == b"" and waited < 0.5
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.3)  # the held ones are gone: room again
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


def _answered_then_closed(conn: socket.socket, *, trickle: bool) -> tuple[bytes, float | None]:
    """Keep trickling a byte of body every 0.1 s (as a slow client does) until the server
    answers; then how long after its answer it closed the connection (None: not in 4 s)."""
    conn.settimeout(0.1)
    received = b""
    answered_at: float | None = None
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            if trickle:
                conn.sendall(b"x")
        except OSError:  # closed by the server
            break
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            if answered_at is not None and time.monotonic() - answered_at > 4:
                return received, None
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
        if answered_at is None:
            answered_at = time.monotonic()
    assert answered_at is not None, received
    return received, time.monotonic() - answered_at


def test_a_slow_body_is_answered_408_and_its_connection_closed_at_once(served: Served) -> None:
    """No lingering read of the rest of a body the server refused."""
    with _slow_body(served.port) as conn:
        received, closed_after = _answered_then_closed(conn, trickle=True)
    assert received.startswith(b"HTTP/1.1 408"), received
    assert closed_after is not None and closed_after < 0.5


def test_a_body_over_the_cap_is_answered_413_and_its_connection_closed_at_once(
    served: Served,
) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n" + b"a" * 10
        )
        received, closed_after = _answered_then_closed(conn, trickle=True)
    assert received.startswith(b"HTTP/1.1 413"), received
    assert closed_after is not None and closed_after < 0.5


# -- the shape check reads a form body as parse_qs does ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "command=%2Fshare-image&text=a+b%20c&user_id=U1&channel_id=C1&team_id=T1",
        "a=1&a=2&b=",
        "a&&=x&c=%ZZ&d=e=f",
        "a%20b=1&a+b=2&payload=%7B%22type%22%3A+%22x%22%7D",
        "",
        "&",
    ],
)
def test_a_form_body_is_read_as_parse_qs_reads_it(body: str) -> None:
    expected = {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}
    assert {name: unquote_plus(v) for name, v in first_values(body).items()} == expected
