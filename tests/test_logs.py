"""The log format: one JSON object per line, and no secret in any part of it."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter

SECRET = 'sk-"quoted\\secret-0123'


def record(**extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "bot.test", "levelname": "INFO", "msg": "hello %s", "args": ("world",)}
    )
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_line_is_json_with_the_extra_fields() -> None:
    line = json.loads(JsonFormatter().format(record(request=7, image="img")))
    assert line["message"] == "hello world"
    assert (line["level"], line["logger"], line["request"], line["image"]) == (
        "info",
        "bot.test",
        7,
        "img",
    )


def test_secrets_are_scrubbed_from_messages_extra_fields_and_tracebacks() -> None:
    formatter = JsonFormatter([SECRET])
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        import sys

        failing = record(error=f"token {SECRET}")
        failing.msg, failing.args = f"message {SECRET}", None
        failing.exc_info = sys.exc_info()
    text = formatter.format(failing)
    assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text
    line = json.loads(text)
    assert line["message"] == "message ***"
    assert line["error"] == "token ***"
    assert "failed with ***" in line["exception"]
