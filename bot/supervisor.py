"""`python -m bot` in HTTP mode, once it has started: gunicorn's arbiter and the worker,
supervised by a process that holds nothing else (Litestream, with a replica, runs the bot
as its child: bot/replica.py).

`python -m bot` checks the settings, restores a missing database from its replica, takes
the locks and asks Slack whether the tokens work, all with the whole bot imported. Then
it hands a `Plan` over through a pipe and replaces itself (`exec`, same process id, the
locks' descriptors kept) with `python -m bot.supervisor`, which imports gunicorn, the
the lock files and the standard library, never the settings class or the app:
about 25 MB instead of 50. gunicorn's worker, forked from it, builds the app it serves
(`bot.server.make_web_app`), and the worker is a process of its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bot import processes
from bot.logs import configure_logging

log = logging.getLogger("bot")

# The environment variable naming the pipe the plan arrives through.
PLAN_FD = "SHARE_IMAGE_BOT_PLAN_FD"
# What gunicorn's worker serves: the app factory, called there after the fork.
WEB_APP = "bot.server:make_web_app()"
# gunicorn's threads for Slack's requests: acks take milliseconds, a burst of 100 waits little.
THREADS = 32
# Far more than a plan takes (a few hundred bytes): a larger one is not a plan.
MAX_PLAN = 64 * 1024


@dataclass(frozen=True)
class Plan:
    """What the supervisor runs: all of it checked by `python -m bot` before the hand-over."""

    port: int
    database: Path
    locks: tuple[processes.Lock, ...]
    with_worker: bool
    secrets: tuple[str, ...]  # for the logs to scrub; never written anywhere
    threads: int = THREADS

    def encode(self) -> bytes:
        data = {
            "port": self.port,
            "database": str(self.database),
            "locks": [{"path": str(lock.path), "fd": lock.fd} for lock in self.locks],
            "with_worker": self.with_worker,
            "secrets": list(self.secrets),
            "threads": self.threads,
        }
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Plan:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            port=int(data["port"]),
            database=Path(data["database"]),
            locks=tuple(
                processes.Lock(Path(lock["path"]), int(lock["fd"])) for lock in data["locks"]
            ),
            with_worker=bool(data["with_worker"]),
            secrets=tuple(data["secrets"]),
            threads=int(data["threads"]),
        )


def hand_over(plan: Plan) -> NoReturn:
    """Become the supervisor running `plan`: same process, locks held all along."""
    read, write = os.pipe()
    # Written whole before the exec: a plan is far smaller than a pipe's buffer (64 KiB).
    os.write(write, plan.encode())
    os.close(write)
    for fd in (read, *(lock.fd for lock in plan.locks)):
        os.set_inheritable(fd, True)
    environment = dict(os.environ) | {PLAN_FD: str(read)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "bot.supervisor"], environment)


def _received() -> Plan:
    value = os.environ.pop(PLAN_FD, "")
    if not value.isdigit():
        sys.exit("bot.supervisor is started by `python -m bot`, not by hand")
    fd = int(value)
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_PLAN:
                sys.exit("bot.supervisor: the plan it was handed is too large")
    finally:
        os.close(fd)
    return Plan.decode(b"".join(chunks))


def _say_listening(port: int) -> None:
    """The start's one line in HTTP mode: where the bot listens and Slack's Request URL."""
    url = f"http://{socket.gethostname()}:{port}/slack/events"
    log.info(
        f"listening on 0.0.0.0:{port}; Slack's Request URL (slash command, interactivity,"
        f" event subscriptions) is {url}, or the https:// address of the proxy or tunnel in"
        " front of it, ending in /slack/events",
        extra={"mode": "http", "port": port, "request_url": url},
    )


def serve(port: int, *, threads: int = THREADS, app: str = WEB_APP) -> None:
    """Serve `app` (gunicorn's "module:factory()") with gunicorn: one process (SQLite),
    many threads, until a signal stops it."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.util import import_app

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
                # Headers are Slack's few; a request line or header block beyond these is not.
                "limit_request_line": 4094,
                "limit_request_fields": 50,
                "limit_request_field_size": 8190,
                # Once it listens (not before): the one line saying where, and what Slack needs.
                "when_ready": lambda arbiter: _say_listening(port),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return import_app(app)  # in gunicorn's worker, after the fork

    Gunicorn().run()


def main() -> None:
    """Run the plan: the worker, then gunicorn; stop in reverse."""
    plan = _received()
    configure_logging(plan.secrets)
    # SIGTERM ends it like Ctrl-C until gunicorn's arbiter puts its own handlers in place.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    processes.tune_malloc()
    worker = processes.WorkerProcess(plan.locks[-1]) if plan.with_worker else None
    if worker is not None:
        worker.start()
    try:
        serve(plan.port, threads=plan.threads)
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        if worker is not None:
            worker.stop()


if __name__ == "__main__":
    main()
