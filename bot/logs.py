"""Logging: one JSON object per line, `extra` fields included, secrets scrubbed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """`{"at", "level", "logger", "message", ...extra}` on one line.

    Any configured secret is replaced by `***` in the finished line, so no field,
    `extra` value or traceback can carry one out.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # JSON may escape a secret's characters, so look for both spellings.
        found = {s for s in secrets if s and len(s) >= 6}
        self._secrets = sorted(found | {json.dumps(s)[1:-1] for s in found}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = json.dumps(line, default=str, ensure_ascii=False)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(secrets: Iterable[str] = (), level: int = logging.INFO) -> None:
    """Send JSON lines to stderr from every logger, secrets scrubbed."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; ours are logged by the client itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
