"""The events URL against strangers: bodies that are not Slack's cost a bounded amount and
get 401, 400 or 413 at once, and a database that vanishes is noticed, never recreated."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.scp.sandbox import Sandbox
from bot.server import MAX_BODY
from bot.sharing.values import Role
from storage import Database
from storage.errors import StorageError
from tests.harness import IMAGE, MEMBER, SIGNING_SECRET, BotHarness, member_calls


def post(
    bot: BotHarness,
    body: bytes,
    *,
    signed: bool,
    content_type: str = "application/x-www-form-urlencoded",
) -> httpx.Response:
    """POST raw bytes to the events URL, signed over exactly those bytes when `signed`."""
    headers = {"Content-Type": content_type}
    if signed:
        # Slack's scheme over the raw bytes (slack_sdk's verifier only signs text).
        stamp = str(int(time.time()))
        signed_bytes = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(SIGNING_SECRET.encode(), signed_bytes, hashlib.sha256).hexdigest()
        headers |= {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}
    return httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=5)


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


MALFORMED = {
    "not UTF-8": b"payload=\xff\xfe\xfa",
    "payload not JSON": b"payload=not-json",
    "payload a list": b"payload=%5B%5D",
    "payload a string": b"payload=%22hi%22",
    "no known shape": b"hello=world",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_unsigned_junk_is_401_and_signed_junk_400_never_500(
    bot: BotHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    unsigned = post(bot, body, signed=False)
    signed = post(bot, body, signed=True)
    assert (unsigned.status_code, signed.status_code) == (401, 400)
    no_traceback(caplog)
    refused = [r for r in caplog.records if r.getMessage() == "refused a request to the events URL"]
    assert len(refused) == 2
    assert bot.all_requests() == [] and member_calls(sandbox) == []
    assert bot.slack.calls("chat.postMessage") == []


def _click(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "UAPP1"},
        "team": {"id": "T1"},
        "api_app_id": "A1",
        "actions": [{"action_id": "approve", "value": "1", "block_id": "decision-1"}],
        "message": {"ts": "1.2"},
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/none",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


MISSING = {
    "click without user": _click(user=None),
    "click without actions": _click(actions=None),
    "click with an empty user": _click(user={}),
    "view_submission without view": {"type": "view_submission", "user": {"id": "U1"}},
    "block_suggestion without action_id": {"type": "block_suggestion", "user": {"id": "U1"}},
    "block_suggestion without block_id": {
        "type": "block_suggestion",
        "user": {"id": "U1"},
        "action_id": "image_select",
    },
    "view_submission without callback_id": {
        "type": "view_submission",
        "user": {"id": "U1"},
        "view": {"id": "V1", "state": {"values": {}}},
    },
    "shortcut without trigger_id": {
        "type": "shortcut",
        "user": {"id": "U1"},
        "callback_id": "share_image",
    },
}


@pytest.mark.parametrize("payload", MISSING.values(), ids=MISSING.keys())
def test_signed_payloads_missing_fields_get_400_at_once(
    bot: BotHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture, payload: dict[str, Any]
) -> None:
    started = time.monotonic()
    response = post(bot, urlencode({"payload": json.dumps(payload)}).encode(), signed=True)
    assert response.status_code == 400
    assert time.monotonic() - started < 1.0  # not Bolt's 3 s wait for an ack
    no_traceback(caplog)
    assert bot.all_requests() == [] and member_calls(sandbox) == []


@pytest.mark.parametrize("missing", ["user_id", "channel_id", "command", "team_id"])
def test_a_signed_command_missing_a_field_gets_400_and_records_nothing(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    fields = bot.sender.command_payload(f"{IMAGE} {MEMBER}", user_id="U1", channel_id="C1")
    del fields[missing]
    response = post(bot, urlencode(fields).encode(), signed=True)
    assert response.status_code == 400
    no_traceback(caplog)
    assert bot.all_requests() == []


def test_a_body_declared_too_big_is_refused_before_it_is_read(bot: BotHarness) -> None:
    host, port = bot.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 300000000\r\n\r\npayload="
        )
        answer = conn.recv(200)  # answered with 300 MB still unsent
    assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413")


def test_a_body_just_over_the_bound_is_413_and_one_at_it_is_judged_on_its_signature(
    bot: BotHarness,
) -> None:
    assert post(bot, b"a" * (MAX_BODY + 1), signed=True).status_code == 413
    assert post(bot, b"a" * MAX_BODY, signed=False).status_code == 401


# -- slow clients, against the whole bot ------------------------------------------------------


def _slow(bot: BotHarness, data: bytes) -> socket.socket:
    host, port = bot.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(data)
    return conn


def _until_closed(conn: socket.socket) -> tuple[bytes, float]:
    received, started = b"", time.monotonic()
    try:
        while chunk := conn.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def test_slow_clients_are_cut_while_a_share_goes_through_at_once(
    make_bot: Any, sandbox: Sandbox
) -> None:
    bot = make_bot(HTTP_HEADER_TIMEOUT_SECONDS=1, HTTP_BODY_TIMEOUT_SECONDS=1)
    bot.grant("U1", Role.SHARER)
    bot.services.members.add(MEMBER, "QA", by="test")
    heads = [_slow(bot, b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-") for _ in range(5)]
    bodies = [
        _slow(bot, b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nab")
        for _ in range(5)
    ]
    try:
        started = time.monotonic()
        text = bot.ack_text(f"{IMAGE} {MEMBER}")
        assert time.monotonic() - started < 1.0
        assert text.startswith(f"On it: sharing image `{IMAGE}`")
        bot.wait_state("pending")
        assert [r.member_id for r in member_calls(sandbox) if r.method == "POST"] == [MEMBER]
        for conn in heads:
            assert _until_closed(conn)[0] == b""
        for conn in bodies:
            received, waited = _until_closed(conn)
            assert received.startswith(b"HTTP/1.1 408") and waited < 3, received
    finally:
        for conn in heads + bodies:
            conn.close()


# -- the database --------------------------------------------------------------------------


def test_a_database_deleted_under_the_bot_is_noticed_and_never_recreated(
    bot: BotHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(bot.settings.DATABASE_PATH)
    os.unlink(path)

    text = bot.ack_text(f"{IMAGE} {MEMBER}")
    assert "couldn't write to my database, so nothing was done" in text
    health = httpx.get(f"{bot.url}/healthz")
    assert health.status_code == 503
    assert health.json()["database"] == "unavailable"
    assert "is gone (deleted or moved)" in health.json()["problem"]
    time.sleep(0.2)  # the worker polls: it must not make a new file either
    assert not path.exists()
    assert member_calls(sandbox) == []


def test_a_database_replaced_under_the_bot_is_refused(bot: BotHarness, tmp_path: Path) -> None:
    path = Path(bot.settings.DATABASE_PATH)
    Database(tmp_path / "other.db").close()
    os.replace(tmp_path / "other.db", path)
    with pytest.raises(StorageError, match="was replaced"):
        bot.services.grants.roles("U1", IMAGE)
    assert httpx.get(f"{bot.url}/healthz").status_code == 503


def test_only_a_start_creates_the_database_and_says_so_loudly_beside_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage.database")
    (tmp_path / "share-image-bot.db").write_bytes(b"")
    fresh = Database(tmp_path / "typo.db")
    assert fresh.created
    [line] = [r for r in caplog.records if "created a" in r.getMessage()]
    assert line.levelno == logging.WARNING and "NEW, EMPTY" in line.getMessage()
    fresh.close()
    again = Database(tmp_path / "typo.db")
    assert not again.created
    again.close()


def test_roles_still_work_after_the_checks(bot: BotHarness) -> None:
    # The identity check runs on every read and write; the ordinary path is unaffected.
    bot.grant("UNEW", Role.SHARER)
    assert Role.SHARER in bot.services.grants.roles("UNEW", IMAGE)


def test_the_new_databases_own_lock_files_are_not_other_databases(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `python -m bot` takes its lock files beside the database before it opens it.
    caplog.set_level(logging.INFO, logger="storage.database")
    (tmp_path / "bot.db.lock").write_text("123\n")
    (tmp_path / "bot.db.worker.lock").write_text("124\n")
    fresh = Database(tmp_path / "bot.db")
    [line] = [r for r in caplog.records if "created a" in r.getMessage()]
    assert line.levelno == logging.INFO and "NEW, EMPTY" not in line.getMessage()
    fresh.close()
