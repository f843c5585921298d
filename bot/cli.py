"""`python -m bot`: run the bot, its worker, the sandbox, the check, and the admin commands."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.sharing import commands
from bot.sharing.errors import CommandError
from bot.slack.texts import say
from storage import AuditLog, Database, Grants, KnownMembers, OnCall, Role
from storage.errors import StorageError

log = logging.getLogger("bot")

# Seconds the Slack-facing process waits for a database lock before answering with an error.
ACK_BUSY_TIMEOUT = 2.0


def _secrets(settings: Settings) -> list[str]:
    values = [settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET, settings.SCP_SECRET_KEY]
    if settings.SLACK_APP_TOKEN is not None:
        values.append(settings.SLACK_APP_TOKEN)
    return [v.get_secret_value() for v in values]


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        lines = "\n".join(f"  - {problem}" for problem in error.problems)
        sys.exit(
            f"share-image-bot cannot start; fix these settings (environment or .env):\n{lines}"
        )


def _database_path() -> Path:
    """DATABASE_PATH for the admin commands, which need no Slack or cloud settings."""
    value = os.environ.get("DATABASE_PATH") or dotenv_values(".env").get("DATABASE_PATH")
    return Path(value) if value else Path(str(Settings.model_fields["DATABASE_PATH"].default))


def _open_database() -> Database:
    try:
        return Database(_database_path())
    except StorageError as error:
        sys.exit(str(error))


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'operator'}"


# -- running ---------------------------------------------------------------------------------


class WorkerProcess:
    """The worker as a child process, started again if it ever stops on its own."""

    def __init__(self) -> None:
        # gunicorn forks its worker from this process, and the fork unwinds through
        # run()'s `finally` when it exits: only the process that started the worker stops it.
        self._owner = os.getpid()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._supervise, name="worker-supervisor", daemon=True
        )

    def start(self) -> None:
        """Start the worker and keep it running."""
        self._thread.start()

    def _supervise(self) -> None:
        while True:
            with self._lock:  # no new worker once stop() has begun
                if self._stop.is_set():
                    return
                process = subprocess.Popen([sys.executable, "-m", "bot", "worker"])
                self._process = process
            code = process.wait()
            if self._stop.is_set():
                return
            log.error("worker stopped, starting it again", extra={"exit_code": code})
            self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop the worker and wait for it (it finishes what is under way)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._stop.set()
            process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _check_slack_token(settings: Settings) -> None:
    """Stop with one clear line when Slack refuses the bot token (Bolt would raise)."""
    from slack_sdk.errors import SlackApiError

    from bot.services import make_web_client

    try:
        make_web_client(settings).auth_test()
    except SlackApiError as error:
        sys.exit(
            "share-image-bot cannot start: Slack refused SLACK_BOT_TOKEN "
            f"({error.response.get('error', 'unknown error')})"
        )
    except Exception as error:  # network: say so rather than a traceback
        sys.exit(f"share-image-bot cannot start: Slack is unreachable ({type(error).__name__})")


def run(settings: Settings, *, with_worker: bool = True) -> None:
    """Serve Slack (Socket Mode or HTTP) and carry out requests in a worker process."""
    from bot.app import create_app
    from bot.server import WebApp, serve
    from bot.services import build_services

    _check_slack_token(settings)
    worker = WorkerProcess() if with_worker else None
    if worker is not None:
        worker.start()
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            database = Database(settings.DATABASE_PATH, busy_timeout=ACK_BUSY_TIMEOUT)
            services = build_services(settings, database=database)
            app = create_app(services)
            assert settings.SLACK_APP_TOKEN is not None
            log.info("starting in Socket Mode")
            # SIGTERM (a platform stopping the process) ends it like Ctrl-C: cleanly.
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
            handler = SocketModeHandler(app, settings.SLACK_APP_TOKEN.get_secret_value())
            handler.start()  # type: ignore[no-untyped-call]
        else:

            def make_app() -> WebApp:
                # The ack must come within Slack's 3 s even if the database is locked.
                database = Database(settings.DATABASE_PATH, busy_timeout=ACK_BUSY_TIMEOUT)
                services = build_services(settings, database=database)
                return WebApp(
                    create_app(services),
                    services.database,
                    signing_secret=settings.SLACK_SIGNING_SECRET.get_secret_value(),
                )

            log.info("starting in HTTP mode", extra={"port": settings.PORT})
            serve(make_app, port=settings.PORT)
    finally:
        if worker is not None:
            worker.stop()


def run_worker(settings: Settings) -> None:
    """Carry out recorded requests until SIGTERM or SIGINT (or the parent goes away)."""
    from bot.scp.errors import CloudError
    from bot.services import build_services
    from bot.sharing.worker import Worker

    # One worker per database: leases are dropped at start-up, which is only safe
    # when no other worker holds any. The OS releases the lock when we die.
    lock_path = Path(f"{settings.DATABASE_PATH}.worker.lock")
    lock = lock_path.open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another worker is already running on {settings.DATABASE_PATH}")
    # Acks come first: on a busy machine the Slack-facing process gets the CPU before us.
    os.nice(5)
    services = build_services(settings)
    try:
        report = services.cloud.version_report()
        if report.problem:
            log.error(
                "SCP API VERSION PROBLEM: %s",
                report.problem,
                extra={"configured": report.configured, "current": report.current},
            )
        else:
            log.info("cloud API version ok", extra={"version": report.configured})
    except CloudError as error:
        log.warning("could not read the cloud API's version list", extra={"error": str(error)})
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()

    def watch_parent() -> None:
        while not stop.wait(2):
            if os.getppid() != parent:
                log.warning("parent process gone, stopping")
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    log.info("worker started")
    Worker(
        requests=services.requests,
        service=services.share,
        announcer=services.announcer,
        languages=services.languages,
        threads=settings.BOT_WORKER_THREADS,
    ).run(stop)
    services.close()


# -- administration ----------------------------------------------------------------------------


def _fail(error: CommandError) -> None:
    values = {k: f"'{v}'" for k, v in error.values.items()}
    sys.exit(say("en", error.problem, **values).replace("`", ""))


def admin_command(args: argparse.Namespace) -> None:
    """grant, revoke, grants, member …, oncall …"""
    from bot.sharing.admin import Administration

    database = _open_database()
    admin = Administration(
        grants=Grants(database),
        members=KnownMembers(database),
        oncall=OnCall(database),
        audit=AuditLog(database),
    )
    actor = _actor()
    try:
        if args.command in {"grant", "revoke"}:
            user = commands.slack_user(args.user_id)
            role = commands.role(args.role)
            image = commands.image_id(args.image) if args.image else ""
            scope = image or "all images"
            if args.command == "grant":
                changed = admin.grant(user, role, image, by=actor)
                print(
                    f"{user} is now {role.value} for {scope}"
                    if changed
                    else f"{user} already was {role.value} for {scope}"
                )
            else:
                changed = admin.revoke(user, role, image, by=actor, last_admin_ok=True)
                print(
                    f"{user} is no longer {role.value} for {scope}"
                    if changed
                    else f"{user} was not {role.value} for {scope}"
                )
                last = role is Role.ADMIN and not image
                if changed and last and not admin.grants.holders(Role.ADMIN):
                    print(
                        "warning: nobody is an admin for all images now; nobody can administer"
                        " the bot from Slack until `python -m bot grant <SLACK_USER_ID> admin`",
                        file=sys.stderr,
                    )
        elif args.command == "grants":
            rows = admin.grants.all()
            if not rows:
                print("no grants yet")
            for g in rows:
                print(
                    f"{g.user_id}\t{g.role.value}\t{g.scope}\tby {g.granted_by} at {g.granted_at}"
                )
        elif args.command == "member":
            if args.action == "add":
                name = commands.reason([args.name]) if args.name else ""
                if not name:
                    sys.exit("member add needs --name")
                admin.add_member(commands.member_id(args.member_id), name, by=actor)
                print(f"{args.member_id} is known as {name}")
            elif args.action == "remove":
                removed = admin.remove_member(commands.member_id(args.member_id), by=actor)
                print(f"removed {args.member_id}" if removed else f"{args.member_id} was not known")
            else:
                known = admin.members.all()
                if not known:
                    print("no known members yet")
                for m in known:
                    print(f"{m.member_id}\t{m.name}")
        elif args.command == "oncall":
            if args.action == "add":
                user = commands.slack_user(args.user_id)
                starts, ends = commands.moment(args.starts), commands.moment(args.ends)
                if ends <= starts:
                    raise CommandError("window_backwards")
                admin.add_shift(user, starts, ends, by=actor)
                print(f"{user} on call {starts.isoformat()} → {ends.isoformat()}")
            elif args.action == "remove":
                count = admin.remove_shifts(commands.slack_user(args.user_id), by=actor)
                print(f"removed {count} shift(s)")
            else:
                shifts = admin.oncall.all()
                if not shifts:
                    print("no on-call shifts")
                for s in shifts:
                    print(f"{s.user_id}\t{s.starts_at}\t{s.ends_at}")
    except CommandError as error:
        _fail(error)
    except StorageError as error:
        sys.exit(str(error))
    finally:
        database.close()


# -- the parser ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = top.add_subparsers(dest="command")
    sub.add_parser("run", help="serve Slack and run the worker (the default)")
    sub.add_parser("serve", help="serve Slack only (run `worker` separately)")
    sub.add_parser("worker", help="carry out recorded requests only")
    sub.add_parser("check", help="check settings, database, Slack and the cloud API")
    sandbox = sub.add_parser("sandbox", help="serve a local stand-in of the image-member API")
    sandbox.add_argument("--port", type=int, default=8787)
    for name in ("grant", "revoke"):
        p = sub.add_parser(name, help=f"{name} a role")
        p.add_argument("user_id", metavar="SLACK_USER_ID")
        p.add_argument("role", metavar="ROLE", help="requester, sharer, approver or admin")
        p.add_argument("--image", metavar="IMAGE_ID", help="only for this image")
    sub.add_parser("grants", help="list grants")
    member = sub.add_parser("member", help="known members").add_subparsers(
        dest="action", required=True
    )
    add = member.add_parser("add")
    add.add_argument("member_id", metavar="MEMBER_ID")
    add.add_argument("--name", required=True)
    member.add_parser("remove").add_argument("member_id", metavar="MEMBER_ID")
    member.add_parser("list")
    oncall = sub.add_parser("oncall", help="on-call shifts").add_subparsers(
        dest="action", required=True
    )
    shift = oncall.add_parser("add")
    shift.add_argument("user_id", metavar="SLACK_USER_ID")
    shift.add_argument("--from", dest="starts", required=True, metavar="ISO_TIME")
    shift.add_argument("--to", dest="ends", required=True, metavar="ISO_TIME")
    oncall.add_parser("remove").add_argument("user_id", metavar="SLACK_USER_ID")
    oncall.add_parser("list")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bot`."""
    args = parser().parse_args(argv)
    command = args.command or "run"
    if command in {"grant", "revoke", "grants", "member", "oncall"}:
        admin_command(args)
        return
    if command == "sandbox":
        from bot.scp.sandbox import run_sandbox

        configure_logging()
        run_sandbox(args.port)
        return
    settings = _settings()
    configure_logging(_secrets(settings))
    if command == "check":
        from bot.check import run_check

        sys.exit(run_check(settings))
    try:
        if command == "worker":
            run_worker(settings)
        else:
            run(settings, with_worker=command == "run")
    except StorageError as error:
        sys.exit(f"share-image-bot cannot start: {error}")
