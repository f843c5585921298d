"""`python -m bot` once its settings are checked and its locks taken: ONE Python process,
one event loop, the Slack side and the worker as tasks of it.

- HTTP mode: one aiohttp server on PORT (`bot.server`): `/slack/events`, `/healthz`,
  `/metrics`.
- Socket Mode: Bolt's `AsyncSocketModeHandler`, and `/metrics` (with `/healthz`) alone on
  METRICS_PORT when it is set.
- The worker: `Worker.run(stop)` with at most BOT_WORKER_THREADS requests under way.

SIGTERM or SIGINT: the server stops accepting, the worker leases nothing new and gives what
is under way 7 seconds to finish (`bot.sharing.worker.FINISH_WITHIN`), the rest is cancelled
(a request caught in `sending` is read back at the next start, never sent twice), the
clients close; the process exits well within a platform's usual 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.server import Listening
    from bot.services import Services
    from bot.settings import Settings
    from bot.sharing.worker import Worker

log = logging.getLogger("bot")

# Seconds the worker may take to stop: it gives what is under way 7 s itself, then
# cancels it; this is only the backstop should it not.
GRACE = 8.0
# Seconds requests to the server under way get at a stop (acks take milliseconds).
SERVER_GRACE = 1.0
# Seconds the Slack side waits for a database lock before answering with an error: the
# ack still comes within Slack's 3 s.
ACK_BUSY_TIMEOUT = 2.0


def run(settings: Settings, *, slack: bool = True, worker: bool = True) -> None:
    """Run the bot (both sides, or one) in this process until SIGTERM or SIGINT."""
    if settings.BOT_WORKER_RECYCLE_MB is not None:
        log.warning(
            "BOT_WORKER_RECYCLE_MB does nothing now (the worker runs in the bot's one process"
            " and is never replaced): remove it from the settings",
            extra={"setting": "BOT_WORKER_RECYCLE_MB"},
        )
    if slack and not settings.socket_mode:
        _room_for_connections(settings.HTTP_MAX_CONNECTIONS)
    asyncio.run(serve(settings, slack=slack, worker=worker))


# Files the bot keeps open besides its HTTP connections: the database's, Slack's and the
# cloud's connections, the loop's own.
OTHER_FILES = 256


def _room_for_connections(connections: int) -> None:
    """Raise this process's open-file limit so HTTP_MAX_CONNECTIONS connections fit (the
    usual soft limit, 1024, is near the default 1000), within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + OTHER_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            log.warning(
                "the open-file limit leaves room for fewer connections than"
                " HTTP_MAX_CONNECTIONS: raise it (ulimit -n) or lower the setting",
                extra={"limit": raised, "wanted": wanted},
            )


async def serve(
    settings: Settings,
    *,
    slack: bool = True,
    worker: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """The bot in the running loop until `stop` (or SIGTERM/SIGINT when none is given)."""
    stop = stop or _stopped_by_signals()
    if slack:
        await preflight(settings)
    services = _services(settings, slack=slack)
    running: Worker | None = None
    worker_run: asyncio.Task[Any] | None = None
    listening: Listening | None = None
    socket_mode: AsyncSocketModeHandler | None = None
    try:
        if worker:
            running = _worker(services)
            worker_stop = asyncio.Event()
            worker_run = asyncio.create_task(running.run(worker_stop), name="worker")
            log.info("worker started", extra={"at_once": settings.BOT_WORKER_THREADS})
            await _log_version(services)
        if slack:
            listening, socket_mode = await _slack_side(services, settings)
        elif settings.METRICS_PORT is not None:
            listening = await _metrics_only(services, settings)
        await _until(stop, worker_run)
    finally:
        log.info("stopping")
        if socket_mode is not None:
            with contextlib.suppress(Exception):
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
        if listening is not None:
            await listening.stop(SERVER_GRACE)
        if worker_run is not None and running is not None:
            worker_stop.set()
            running.wake()
            await _finish(worker_run, GRACE)
        await services.aclose()
        log.info("stopped")


def _stopped_by_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _until(stop: asyncio.Event, worker_run: asyncio.Task[Any] | None) -> None:
    """Wait for the stop; a worker that ends on its own (it should not) is a stop too."""
    waiting = asyncio.create_task(stop.wait())
    watched: set[asyncio.Future[Any]] = {waiting}
    if worker_run is not None:
        watched.add(worker_run)
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if worker_run is not None and worker_run in done:
        problem = None if worker_run.cancelled() else worker_run.exception()
        log.error("the worker stopped on its own: stopping the bot", exc_info=problem)
        # Not a clean stop: the platform is to start the bot again.
        raise SystemExit("share-image-bot stopped: its worker failed (the log says why)")


async def _finish(task: asyncio.Task[Any], grace: float) -> None:
    """Let `task` end within `grace` seconds, else cancel it."""
    if task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        log.warning("the worker did not finish in time: what is under way is cancelled")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    except Exception:
        log.exception("the worker failed while stopping")


def _services(settings: Settings, *, slack: bool) -> Services:
    from bot.services import build_services
    from storage import Database

    if not slack:
        return build_services(settings)
    database = Database(
        settings.DATABASE_PATH,
        busy_timeout=ACK_BUSY_TIMEOUT,
        connections=settings.DATABASE_CONNECTIONS,
    )
    return build_services(settings, database=database)


def _worker(services: Services) -> Worker:
    """The worker of these services (woken by every recorded request, counted)."""
    from bot.services import make_worker

    return make_worker(services)


async def _slack_side(
    services: Services, settings: Settings
) -> tuple[Listening | None, AsyncSocketModeHandler | None]:
    from bot.app import create_app
    from bot.server import Listening, make_web_app, say_listening

    app = await create_app(services)
    if not settings.socket_mode:
        if settings.METRICS_PORT is not None:
            log.warning("METRICS_PORT is for Socket Mode: HTTP mode serves /metrics on PORT")
        listening = Listening(make_web_app(app, services.database, settings))
        say_listening(await listening.start(settings.PORT))
        return listening, None
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.errors import SlackApiError

    metrics = await _metrics_only(services, settings) if settings.METRICS_PORT is not None else None
    assert settings.SLACK_APP_TOKEN is not None
    handler = AsyncSocketModeHandler(app, settings.SLACK_APP_TOKEN.get_secret_value())
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
    except SlackApiError as error:
        code = error.response.get("error", "unknown error")
        raise SystemExit(
            f"share-image-bot stopped: Slack refused SLACK_APP_TOKEN ({code})"
        ) from None
    log.info(
        "connected to Slack in Socket Mode: no Request URL is needed (the app's Socket Mode"
        " must be on)",
        extra={"mode": "socket"},
    )
    return metrics, handler


async def _metrics_only(services: Services, settings: Settings) -> Listening:
    """`GET /metrics` (and /healthz) alone on METRICS_PORT."""
    from bot.server import METRICS_PATH, Listening, make_web_app

    listening = Listening(make_web_app(None, services.database, settings))
    port = await listening.start(settings.METRICS_PORT or 0)
    log.info("serving metrics", extra={"port": port, "path": METRICS_PATH})
    return listening


async def _log_version(services: Services) -> None:
    """The start's word on the cloud API version, at the level `check` gives it."""
    from bot.scp.client import VersionLevel
    from bot.scp.errors import CloudError

    try:
        report = await services.cloud.version_report()
    except CloudError as error:
        log.warning("could not read the cloud API's version list", extra={"error": str(error)})
        return
    extra = {
        "configured": report.configured,
        "current": report.current,
        "status": report.status,
        "not_before": report.not_before.isoformat() if report.not_before else None,
    }
    if report.level is VersionLevel.OK:
        log.info("cloud API version ok", extra={"version": report.configured})
    elif report.level is VersionLevel.DEPRECATED:
        log.warning("SCP API version deprecated, still served: %s", report.problem, extra=extra)
    elif report.level is VersionLevel.AT_RISK:
        log.error("SCP API VERSION MAY STOP WORKING ANY DAY: %s", report.problem, extra=extra)
    else:
        log.critical(
            "SCP API VERSION NOT SERVED, every request will be refused: %s",
            report.problem,
            extra=extra,
        )


async def preflight(settings: Settings) -> None:
    """Stop with one clear line when Slack refuses a token or cannot be reached (Bolt would
    raise a traceback; slack-sdk would log every attempt first).

    A connection that fails is not tried again: the line comes at once. Slack's rate
    limits and 5xx answers are still waited out, quietly.
    """
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )
    from slack_sdk.web.async_client import AsyncWebClient

    def client(token: str) -> AsyncWebClient:
        return AsyncWebClient(
            token=token,
            base_url=settings.SLACK_API_URL,
            timeout=10,
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )

    bot = client(settings.SLACK_BOT_TOKEN.get_secret_value())
    checks: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("SLACK_BOT_TOKEN", "auth.test", bot.auth_test)
    ]
    if settings.SLACK_APP_TOKEN is not None:
        app_token = settings.SLACK_APP_TOKEN.get_secret_value()
        app = client(app_token)
        checks.append(
            (
                "SLACK_APP_TOKEN",
                "apps.connections.open",
                lambda: app.apps_connections_open(app_token=app_token),
            )
        )
    for setting, method, call in checks:
        try:
            with quiet_slack_sdk():
                await call()
        except Exception as error:  # any failure: one line rather than a traceback
            from bot.slack.trouble import slack_trouble

            trouble = slack_trouble(error, f"{settings.SLACK_API_URL}{method}", setting=setting)
            raise SystemExit(
                f"share-image-bot cannot start: {trouble.summary(setting)}: {trouble.one_line()}"
            ) from None


@contextlib.contextmanager
def quiet_slack_sdk() -> Any:
    """Keep slack-sdk's own log lines (each failed attempt, each retry) out of a call whose
    outcome the caller says once, in its own words."""
    logger = logging.getLogger("slack_sdk")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
