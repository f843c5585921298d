"""Slash commands as Slack sends them, fired at once.

Every request is built and signed before the start (the same form fields and headers
Slack sends, `v0=` HMAC-SHA256 over `v0:{timestamp}:{body}`), one thread per request
waits on a barrier, and after the release each thread only connects, writes its bytes
and reads the answer to the end: the load generator does as little Python work as it
can while latencies are being measured. Each connection says `Connection: close`, as
every command from Slack arrives on a connection of its own.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack import slash_command_payload

EVENTS_PATH = "/slack/events"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class Command:
    """One slash command to send."""

    user_id: str
    channel_id: str
    text: str
    response_url: str


@dataclass(frozen=True)
class Ack:
    """What came back for one command."""

    command: Command
    sent_at: float  # time.time() just before connecting
    latency: float  # seconds from connecting to the last byte of the answer
    status: int  # 0 when no HTTP answer came
    body: bytes
    error: str | None = None

    @property
    def ok(self) -> bool:
        """An HTTP 200 answer."""
        return self.status == 200 and self.error is None


def signed_request(host: str, port: int, signing_secret: str, command: Command) -> bytes:
    """The raw HTTP request Slack would send for `command`, signed now."""
    payload = slash_command_payload(
        command.text,
        response_url=command.response_url,
        user_id=command.user_id,
        channel_id=command.channel_id,
    )
    body = urlencode(payload).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    head = (
        f"POST {EVENTS_PATH} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: application/json,*/*\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Slack-Request-Timestamp: {timestamp}\r\n"
        f"X-Slack-Signature: {signature}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + body


def _exchange(address: tuple[str, int], request: bytes, timeout: float) -> tuple[int, bytes]:
    chunks: list[bytes] = []
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return status, body


def fire(
    host: str,
    port: int,
    signing_secret: str,
    commands: list[Command],
    *,
    timeout: float = 10.0,
) -> list[Ack]:
    """Send every command at the same moment, one connection each; the acks in order."""
    requests = [signed_request(host, port, signing_secret, c) for c in commands]
    address = (host, port)
    results: list[Ack | None] = [None] * len(commands)
    barrier = threading.Barrier(len(commands) + 1)

    def send(index: int) -> None:
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            return
        sent_at = time.time()
        started = time.perf_counter()
        try:
            status, body = _exchange(address, requests[index], timeout)
            error = None if status else "no HTTP status in the answer"
        except OSError as exc:
            status, body, error = 0, b"", f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - started
        results[index] = Ack(commands[index], sent_at, latency, status, body, error)

    threads = [
        threading.Thread(target=send, args=(i,), name=f"slack-{i}", daemon=True)
        for i in range(len(commands))
    ]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout)
    deadline = time.monotonic() + 2 * timeout + 5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        ack
        if ack is not None
        else Ack(commands[i], 0.0, float("inf"), 0, b"", "no answer before the timeout")
        for i, ack in enumerate(results)
    ]


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
