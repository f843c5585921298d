"""`python -m bot`: run the bot, its worker, the sandbox, the check, and the admin commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot import replica
from bot.lock import take_lock
from bot.logs import configure_logging
from bot.settings import (
    SLACK_API_URL_DEFAULT,
    Settings,
    SettingsError,
    load_settings,
    raw_replica_config,
    raw_settings,
    replica_config,
    zone_named,
)
from bot.sharing import commands
from bot.sharing.errors import CommandError
from bot.slack.texts import cli_problem, languages
from storage import (
    AuditLog,
    Database,
    Grants,
    ImagePolicies,
    KnownMembers,
    OnCall,
    OnCallSchedules,
    Rota,
)
from storage.errors import StorageError

if TYPE_CHECKING:
    from bot.scp.models import ApiVersion, Image
    from bot.scp.sandbox import Sandbox
    from bot.settings import RawSetting
    from bot.sharing.admin import Account, Administration

log = logging.getLogger("bot")


def _secrets(settings: Settings) -> list[str]:
    values = [settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET, settings.SCP_SECRET_KEY]
    if settings.SLACK_APP_TOKEN is not None:
        values.append(settings.SLACK_APP_TOKEN)
    if settings.AWS_SECRET_ACCESS_KEY is not None:
        values.append(settings.AWS_SECRET_ACCESS_KEY)
    # The rota sources' key and the feed's address (which carries its own key).
    for optional in (settings.ONCALL_PAGERDUTY_TOKEN, settings.ONCALL_ICAL_URL):
        if optional is not None:
            values.append(optional)
    return [v.get_secret_value() for v in values]


# Said under the settings that stop a start: where a new user finds every setting explained.
FIRST_START = (
    "Every setting is explained in .env.example (in the project's folder, beside README.md):"
    " copy it to .env in the folder you start the bot from, fill in the values marked ...,"
    " then run `python -m bot check`."
)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        lines = "\n".join(f"  - {problem}" for problem in error.problems)
        sys.exit(
            f"share-image-bot cannot start; fix these settings (environment or .env):\n{lines}\n"
            f"{FIRST_START}"
        )


def _database_path() -> Path:
    """DATABASE_PATH for the admin commands, which need no Slack or cloud settings."""
    value = raw_settings("DATABASE_PATH")["DATABASE_PATH"].value
    return Path(value) if value else Path(str(Settings.model_fields["DATABASE_PATH"].default))


def _open_database() -> Database:
    """The admin commands' database, saying on stderr which file it is (and if it is new)."""
    path = _database_path()
    _restore_for_admin(path)
    new = not path.exists()
    try:
        database = Database(path)
    except StorageError as error:
        sys.exit(str(error))
    if new:
        print(
            f"created a NEW, EMPTY database at {path.absolute()}: if you expected grants,"
            " members or shifts, this is the wrong folder or the wrong DATABASE_PATH",
            file=sys.stderr,
        )
    else:
        print(f"using the database {path.absolute()}", file=sys.stderr)
    return database


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'operator'}"


# -- the replica (bot/replica.py) ------------------------------------------------------------


def _restore_first(settings: Settings) -> replica.ReplicaConfig | None:
    """With a replica: restore a missing database from it, or stop (never start empty)."""
    config = replica_config(settings)
    if config is not None:
        try:
            replica.restore_if_missing(config)
        except replica.ReplicaError as error:
            sys.exit(f"share-image-bot cannot start: {error}")
    return config


def _restore_for_admin(path: Path) -> None:
    """The admin commands restore a missing database too, rather than make an empty one."""
    try:
        config = raw_replica_config(path)
        if config is not None:
            replica.restore_if_missing(config)
    except replica.ReplicaError as error:
        sys.exit(str(error))


# -- running ---------------------------------------------------------------------------------


def run(settings: Settings, *, slack: bool = True, worker: bool = True) -> None:
    """Serve Slack (Socket Mode or HTTP) and carry out requests: one process, one event
    loop (`bot.runtime`); `serve` and `worker` run one side each."""
    from bot import runtime

    # With a replica: restore a missing database, then run under `litestream replicate
    # -exec` (this returns only in the bot Litestream runs, or without a replica). A
    # `worker` beside a `serve` that replicates only restores: one Litestream per database.
    if slack:
        config = replica_config(settings)
        if config is not None and not os.environ.get(replica.UNDER_LITESTREAM):
            # Slack is asked before Litestream starts: a bot that cannot reach it says so
            # in one line and leaves no database behind (the bot Litestream runs asks
            # again, as every start does).
            asyncio.run(runtime.preflight(settings))
        replica.run_under_litestream(config)
    else:
        _restore_first(settings)
    # One bot per database, refused before anything starts: the Slack side's lock and
    # the worker's, each taken by the process that runs that side.
    locks = []
    if slack:
        locks.append(take_lock(settings.DATABASE_PATH, "bot"))
    if worker:
        locks.append(take_lock(settings.DATABASE_PATH, "worker"))
    runtime.run(settings, slack=slack, worker=worker)


# -- the sandbox ------------------------------------------------------------------------------

SANDBOX_SETTINGS = ("SCP_ENDPOINT", "SCP_ACCESS_KEY", "SCP_SECRET_KEY", "SCP_ACCOUNT_ID")


def _versions_argument(value: str) -> list[ApiVersion]:
    """`--versions`: a JSON file if one is there by that name, else VERSION:STATUS[:DATE],..."""
    from bot.scp.sandbox import load_versions, parse_versions

    path = Path(value)
    try:
        if path.is_file():
            return load_versions(path.read_text(encoding="utf-8"))
        if value.endswith(".json"):
            raise ValueError(f"there is no file {value}")
        return parse_versions(value)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _images_argument(value: str) -> list[Image]:
    """`--images`: a JSON file of images, in the list call's own shape."""
    from bot.scp.sandbox import load_images

    try:
        return load_images(Path(value).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"there is no file {value}") from None
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{value}: {error}") from None


def _sandbox_lines(sandbox: Sandbox, settings: dict[str, RawSetting]) -> list[str]:
    """What `python -m bot sandbox` prints once it listens: the `.env` lines and the gaps."""
    from bot.scp.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    served = ", ".join(
        f"{v.number} ({v.status}" + (f", not_before {v.not_before}" if v.not_before else "") + ")"
        for v in sandbox.served()
    )
    images = sandbox.images()
    lines = [
        f"SCP sandbox on {sandbox.url}, serving API versions {served or 'none'}",
        f"Images ({len(images)}; any other image id is made up on first use):",
        *(
            f"  {image.id}  {image.name or '(no name)'}  {image.os_distro or '-'}"
            f" {image.scp_os_version or ''}  {image.status}, {image.visibility}"
            for image in images
        ),
        "It reads the keys the bot reads (the environment, then .env) and uses its own"
        " defaults for those not set. For the bot to use it, .env needs:",
        "",
        f"SCP_ENDPOINT={sandbox.url}",
    ]
    defaults = {"SCP_ACCESS_KEY": DEFAULT_ACCESS_KEY, "SCP_SECRET_KEY": DEFAULT_SECRET_KEY}
    differences = []
    endpoint = settings["SCP_ENDPOINT"]
    if endpoint.value is None:
        differences.append("SCP_ENDPOINT is not set")
    elif endpoint.value.rstrip("/") != sandbox.url:
        differences.append(
            f"SCP_ENDPOINT is {endpoint.value} (from {endpoint.source}): the bot calls that,"
            " not this sandbox"
        )
    for name in ("SCP_ACCESS_KEY", "SCP_SECRET_KEY", "SCP_ACCOUNT_ID"):
        setting = settings[name]
        if setting.usable is not None or (name == "SCP_ACCOUNT_ID" and setting.value == ""):
            # The bot's own value: already where the bot reads it, and possibly a real
            # key, so it is not shown.
            lines.append(f"# {name}: already set in {setting.source}, the sandbox uses it")
        else:
            lines.append(f"{name}={defaults.get(name, '')}")
            if setting.value is None:
                if name != "SCP_ACCOUNT_ID":
                    differences.append(
                        f"{name} is not set; the sandbox uses its own (the line above)"
                    )
            else:
                differences.append(
                    f"{name} in {setting.source} is still the placeholder from .env.example;"
                    " the sandbox uses its own (the line above)"
                )
        if (
            setting.environment is not None
            and setting.dotenv is not None
            and setting.environment != setting.dotenv
        ):
            differences.append(
                f"{name} in the environment differs from the one in .env: this sandbox (and a"
                " bot started from this shell) use the environment's, a bot started without"
                " it reads .env's and is refused (401)"
            )
    lines.append("")
    if differences:
        lines.append("The bot's settings differ from the sandbox's:")
        lines.extend(f"  - {difference}" for difference in differences)
    else:
        lines.append("The bot's settings (the environment and .env) match this sandbox.")
    return lines


def sandbox_command(args: argparse.Namespace) -> None:
    """`python -m bot sandbox`: the stand-in API with the bot's own cloud settings."""
    from bot.scp.sandbox import (
        DEFAULT_ACCESS_KEY,
        DEFAULT_IMAGES,
        DEFAULT_SECRET_KEY,
        DEFAULT_VERSIONS,
        run_sandbox,
    )

    raw = raw_settings(*SANDBOX_SETTINGS)

    def announce(sandbox: Sandbox) -> None:
        print("\n".join(_sandbox_lines(sandbox, raw)), flush=True)

    run_sandbox(
        args.port,
        host=args.host,
        access_key=raw["SCP_ACCESS_KEY"].usable or DEFAULT_ACCESS_KEY,
        secret_key=raw["SCP_SECRET_KEY"].usable or DEFAULT_SECRET_KEY,
        account_id=raw["SCP_ACCOUNT_ID"].usable or "",
        versions=args.versions if args.versions is not None else DEFAULT_VERSIONS,
        images=args.images if args.images is not None else DEFAULT_IMAGES,
        announce=announce,
    )


# -- administration ----------------------------------------------------------------------------
# The admin commands are Slack's `admin …` typed on the bot's host: each builds the same
# typed command (`bot.sharing.commands`), goes through the same `Administration.dispatch`
# (as the operator: no admin role needed, the last admin may go, Slack's doubts about a
# user a warning) and says its outcome in the catalogs' words (`bot.console`).

# How long an admin command waits for Slack's answer about a user id.
CLI_SLACK_TIMEOUT = 5


class _SlackAccounts:
    """What Slack, asked with SLACK_BOT_TOKEN, says of a user id; without a bot token
    nothing is asked (a person, as far as the command line knows).

    Asked once per command (no retries: an operator waits on each) and not long: the
    command line is how an operator repairs the bot, also when Slack cannot be reached
    from its host or the token is wrong. `why`: why Slack could not be asked, one line.
    """

    def __init__(self, language: str = "en") -> None:
        self._language = language
        raw = raw_settings("SLACK_BOT_TOKEN", "SLACK_API_URL")
        self._token = raw["SLACK_BOT_TOKEN"].value or ""
        self._base = raw["SLACK_API_URL"].value or SLACK_API_URL_DEFAULT
        self.why = ""

    async def __call__(self, user: str) -> Account:
        from bot.sharing.admin import Account

        token = self._token
        if not token.startswith("xoxb-") or token.rstrip(".") == "xoxb-":
            return Account.PERSON
        from slack_sdk.web.async_client import AsyncWebClient

        from bot.slack.accounts import slack_account
        from bot.slack.trouble import slack_trouble

        client = AsyncWebClient(
            token=token, base_url=self._base, timeout=CLI_SLACK_TIMEOUT, retry_handlers=[]
        )
        logging.getLogger("bot.slack.accounts").disabled = True  # the warning says it
        failures: list[Exception] = []
        account = await slack_account(client, user, failed=failures.append)
        if failures:
            self.why = slack_trouble(
                failures[0],
                f"{self._base.rstrip('/')}/users.info",
                setting="SLACK_BOT_TOKEN",
                timeout=CLI_SLACK_TIMEOUT,
                language=self._language,
            ).one_line()
        return account


def _language() -> str:
    """The command line's language: BOT_DEFAULT_LANGUAGE when the bot speaks it, else English."""
    value = (raw_settings("BOT_DEFAULT_LANGUAGE")["BOT_DEFAULT_LANGUAGE"].value or "").strip()
    return value if value in languages() else "en"


def _timezone() -> ZoneInfo:
    """BOT_TIMEZONE, as the bot reads it (the environment, then .env); UTC when unset."""
    value = raw_settings("BOT_TIMEZONE")["BOT_TIMEZONE"].value
    try:
        return zone_named(value) if value else ZoneInfo("UTC")
    except ValueError as error:
        sys.exit(f"BOT_TIMEZONE {error}")


def _typed(args: argparse.Namespace, zone: ZoneInfo) -> commands.Admin:
    """The typed command an admin command line means, by the rules Slack's `admin …`
    is read by (a user is an id here, a mention there); CommandError otherwise."""
    person = commands.user_id
    if args.command in {"grant", "revoke"}:
        return commands.role_change(
            args.command, args.user_id, args.role, args.image, person=person
        )
    if args.command == "grants":
        return commands.Admin(commands.AdminAction.GRANTS)
    if args.command == "policy":
        return commands.approvals_change([args.image_id, *(args.setting or [])])
    if args.command == "member":
        if args.action == "add":
            return commands.member_add(args.member_id, args.name or "")
        if args.action == "remove":
            return commands.member_remove(args.member_id)
        return commands.Admin(commands.AdminAction.MEMBER_LIST)
    assert args.command == "oncall", args.command
    if args.action == "add":
        # Refused before the database is opened (and again against its clock).
        return commands.shift_add(
            args.user_id, args.starts, args.ends, zone=zone, person=person, now=datetime.now(UTC)
        )
    if args.action == "remove":
        return commands.shift_removal(args.target, ["--all"] if args.all else [], person=person)
    if args.action == "schedule":
        return commands.schedule_change(args.image_id, args.schedule_id)
    words = [args.which] if args.which is not None else []
    return commands.shift_listing(words or (["--all"] if args.list_all else []))


def _administration(database: Database, accounts: _SlackAccounts) -> Administration:
    """The administration Slack's `admin …` uses, over the admin commands' database."""
    from bot.sharing.admin import Administration
    from bot.sharing.oncall import ROTA_SOURCES, StoredRota, WhoIsOnCall

    grants = Grants(database)
    rota = Rota(database)
    token = raw_settings("ONCALL_PAGERDUTY_TOKEN")["ONCALL_PAGERDUTY_TOKEN"].usable
    return Administration(
        grants=grants,
        members=KnownMembers(database),
        oncall=OnCall(database),
        audit=AuditLog(database),
        schedules=OnCallSchedules(database),
        who=WhoIsOnCall(
            [StoredRota(source, rota, grants) for source in ROTA_SOURCES], clock=database.now
        ),
        pagerduty=bool(token),
        accounts=accounts,
        policies=ImagePolicies(database),
    )


def admin_command(args: argparse.Namespace) -> None:
    """grant, revoke, grants, member …, oncall …, policy …: as Slack's `admin …`."""
    from bot import console

    language = _language()
    zone = _timezone() if args.command == "oncall" else ZoneInfo("UTC")
    try:
        command = _typed(args, zone)
    except CommandError as error:
        sys.exit(cli_problem(language, error))  # before any database is opened
    accounts = _SlackAccounts(language)
    database = _open_database()
    try:
        admin = _administration(database, accounts)
        outcome = asyncio.run(
            admin.dispatch(command, by=_actor(), now=database.now(), operator=True)
        )
    except CommandError as error:
        sys.exit(cli_problem(language, error))
    except StorageError as error:
        sys.exit(str(error))
    finally:
        database.close()
    said = console.answer(language, outcome, zone, why=accounts.why)
    if said.failed is not None:
        sys.exit(said.failed)
    for line in said.out:
        print(line)
    for line in said.err:
        print(line, file=sys.stderr)


# -- the parser ------------------------------------------------------------------------------

USER_HELP = "a Slack user id (U… or W…, in their profile: ⋮ → Copy member ID)"
DATABASE_NOTE = (
    "Uses the database at DATABASE_PATH (the environment, then .env; default\n"
    "share-image-bot.db in the current folder) and says on stderr which file that is,\n"
    "and when it has just created a new, empty one."
)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: Sequence[str],
) -> argparse.ArgumentParser:
    """A sub-command with a one-line `help`, a `description` and examples in its `--help`."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "share-image-bot: a Slack bot that shares Samsung Cloud Platform images.\n"
            "Without a command it runs the bot (`run`). Settings come from the environment\n"
            "and from .env in the current folder (the environment wins); see .env.example."
        ),
        epilog=(
            "examples:\n"
            "  python -m bot                      # serve Slack and run the worker\n"
            "  python -m bot check                # can the bot work with these settings?\n"
            "  python -m bot grant U012AB3CD admin\n"
            "  python -m bot sandbox --port 8787  # a local stand-in of the cloud API\n"
            "\n"
            "`python -m bot COMMAND --help` describes each command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    _command(
        sub,
        "run",
        "serve Slack and run the worker (the default)",
        "Serve Slack (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT) and run\n"
        "the worker, both in this one process, until SIGTERM or Ctrl-C.\n"
        "One bot per database: while one runs, a second refuses to start, naming the\n"
        "first one's process and lock file (DATABASE_PATH.lock).",
        ["python -m bot run", "PORT=3001 DATABASE_PATH=/srv/bot/bot.db python -m bot"],
    )
    _command(
        sub,
        "serve",
        "serve Slack only (run `worker` separately)",
        "Serve Slack only, without the worker; run `python -m bot worker` beside it on the\n"
        "same DATABASE_PATH, or nothing is ever carried out.",
        ["python -m bot serve & python -m bot worker"],
    )
    _command(
        sub,
        "worker",
        "carry out recorded requests only",
        "Carry out the recorded requests (the cloud calls, the Slack messages) until\n"
        "SIGTERM or Ctrl-C. One worker per database: a second refuses to start, naming\n"
        "the first one's process and lock file (DATABASE_PATH.worker.lock).",
        ["python -m bot worker"],
    )
    _command(
        sub,
        "check",
        "check settings, database, Slack and the cloud API",
        "Check the settings, the database, Slack (the bot token, SLACK_APP_TOKEN when set,\n"
        "and that the bot is in SHARE_APPROVAL_CHANNEL and SHARE_NOTIFY_CHANNEL) and the\n"
        "cloud API (its version list and a signed read). Each failure says what was\n"
        "tried, what came back and what to do. It changes nothing: a missing database\n"
        "is reported, not created.\n"
        "Exit status 0 when the bot can work ([WARN] lines allowed), 1 otherwise.",
        ["python -m bot check", "SCP_API_VERSION=1.3 python -m bot check"],
    )
    sandbox = _command(
        sub,
        "sandbox",
        "serve a local stand-in of the image-member API",
        "Serve a local stand-in of SCP's image-member API that checks signatures exactly\n"
        "like SCP and accepts any image id. It uses the keys the bot reads (SCP_ACCESS_KEY,\n"
        "SCP_SECRET_KEY, SCP_ACCOUNT_ID from the environment, then .env; its own defaults\n"
        "where none are set), prints the lines to put in .env, and says where the bot's\n"
        "settings differ. Its version list, unless --versions says otherwise, is the\n"
        "operation's documented one: 1.1 CURRENT, 1.0 DEPRECATED (not_before 2025-12-31).\n"
        "It serves a few named images (shareable ones, a public one, one not active yet)\n"
        "unless --images names a JSON file of its own; it prints them on start.",
        [
            "python -m bot sandbox --port 8787",
            "python -m bot sandbox --versions 1.3:CURRENT,1.2:SUPPORTED:2026-08-31,"
            "1.1:DEPRECATED:2026-08-31",
            "python -m bot sandbox --versions versions.json",
            '  (versions.json: {"versions": [{"id": "v1.3", "status": "CURRENT"},',
            '                                {"id": "v1.1", "status": "DEPRECATED",'
            ' "not_before": "2026-08-31"}]})',
            "python -m bot sandbox --images images.json",
            '  (images.json: {"images": [{"id": "70a599e0-31e7-49b7-b260-868f441e862b",',
            '                              "name": "rocky9-golden", "os_distro": "rocky",',
            '                              "scp_os_version": "9.4", "size": 10737418240}]})',
        ],
    )
    sandbox.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    sandbox.add_argument(
        "--versions",
        type=_versions_argument,
        metavar="LIST_OR_FILE",
        help="the version list to serve: VERSION:STATUS[:NOT_BEFORE],... (STATUS CURRENT,"
        " SUPPORTED or DEPRECATED; NOT_BEFORE the minimum support guarantee date,"
        ' YYYY-MM-DD), or a JSON file holding the service\'s answer {"versions": [...]}',
    )
    sandbox.add_argument(
        "--images",
        type=_images_argument,
        metavar="FILE",
        help='the images to serve instead of the default few: a JSON file {"images": [...]}'
        " in the list call's shape, each with an id (a UUID) and a name; status (default"
        " active), visibility (default private), os_distro, scp_os_version, size (bytes),"
        " min_disk (GB), owner_account_name and created_at optional",
    )
    for name, verb in (("grant", "Give"), ("revoke", "Take back")):
        p = _command(
            sub,
            name,
            f"{name} a role",
            f"{verb} a Slack user a role, for all images or for one (--image).\n"
            "Roles: requester (asks; an approver decides), sharer (shares with known\n"
            "members), approver (decides others' requests), admin (all that, and\n"
            "administers from Slack). Every change is recorded in the audit table.\n\n"
            + DATABASE_NOTE,
            [
                f"python -m bot {name} U012AB3CD sharer",
                f"python -m bot {name} U012AB3CD approver --image "
                "70a599e0-31e7-49b7-b260-868f441e862b",
            ],
        )
        p.add_argument("user_id", metavar="SLACK_USER_ID", help=USER_HELP)
        p.add_argument("role", metavar="ROLE", help="requester, sharer, approver or admin")
        p.add_argument(
            "--image", metavar="IMAGE_ID", help="only for this image (leave out: all images)"
        )
    _command(
        sub,
        "grants",
        "list grants",
        "List every grant: user, role, scope, who granted it and when.\n\n" + DATABASE_NOTE,
        ["python -m bot grants"],
    )
    member_command = _command(
        sub,
        "member",
        "known members",
        "Known members: friendly names for the accounts images are shared with, shown\n"
        "in Slack next to their ids.\n\n" + DATABASE_NOTE,
        [
            'python -m bot member add a8f10467abfc4b87b64614ab36eb9ae4 --name "QA account"',
            "python -m bot member list",
        ],
    )
    member = member_command.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _command(
        member,
        "add",
        "name a member account",
        "Give a member account (1 to 64 letters, digits or dashes) a friendly name:\n"
        "one line of visible text, at most 80 characters.\n\n" + DATABASE_NOTE,
        ['python -m bot member add a8f10467abfc4b87b64614ab36eb9ae4 --name "QA account"'],
    )
    add.add_argument("member_id", metavar="MEMBER_ID")
    add.add_argument("--name", required=True, help="the friendly name")
    _command(
        member,
        "remove",
        "forget a member's name",
        "Forget a known member's name (its shares stay as they are).\n\n" + DATABASE_NOTE,
        ["python -m bot member remove a8f10467abfc4b87b64614ab36eb9ae4"],
    ).add_argument("member_id", metavar="MEMBER_ID")
    _command(
        member,
        "list",
        "list known members",
        "List the known members by name.\n\n" + DATABASE_NOTE,
        ["python -m bot member list"],
    )
    oncall_command = _command(
        sub,
        "oncall",
        "on-call shifts",
        "On-call shifts: whoever is on call when a request needs approval is mentioned on\n"
        "its card.\n\n" + DATABASE_NOTE,
        [
            "python -m bot oncall add U012AB3CD --from 2026-12-01T09:00+09:00"
            " --to 2026-12-01T18:00+09:00",
            "python -m bot oncall list",
        ],
    )
    oncall = oncall_command.add_subparsers(dest="action", required=True, metavar="ACTION")
    shift = _command(
        oncall,
        "add",
        "add a shift",
        "Put a Slack user on call from one time to another (ISO 8601; without an offset,\n"
        "in BOT_TIMEZONE, default UTC). The very same shift twice is refused.\n\n" + DATABASE_NOTE,
        [
            "python -m bot oncall add U012AB3CD --from 2026-12-01T09:00+09:00"
            " --to 2026-12-01T18:00+09:00"
        ],
    )
    shift.add_argument("user_id", metavar="SLACK_USER_ID", help=USER_HELP)
    in_zone = (
        "ISO 8601, like 2026-12-01T09:00+09:00; without an offset (2026-12-01T09:00) it is"
        " in BOT_TIMEZONE (the environment, then .env; default UTC)"
    )
    shift.add_argument(
        "--from",
        dest="starts",
        required=True,
        metavar="ISO_TIME",
        help=f"when it starts: {in_zone}",
    )
    shift.add_argument(
        "--to",
        dest="ends",
        required=True,
        metavar="ISO_TIME",
        help="when it ends: the same format; after --from, not in the past, and at most"
        " 31 days after --from",
    )
    remove = _command(
        oncall,
        "remove",
        "remove a shift, or all of a user's",
        "Remove one shift by its id (`oncall list` shows ids), or every shift of a Slack\n"
        "user with --all.\n\n" + DATABASE_NOTE,
        ["python -m bot oncall remove 12", "python -m bot oncall remove U012AB3CD --all"],
    )
    remove.add_argument("target", metavar="SHIFT_ID_OR_USER", help="a shift id, or " + USER_HELP)
    remove.add_argument("--all", action="store_true", help="every shift of that user")
    listing = _command(
        oncall,
        "list",
        "list shifts, and who is on call now and next",
        "List the current and coming on-call shifts with their ids, soonest first, in\n"
        "BOT_TIMEZONE (default UTC), and how many past ones are not shown (`all` shows\n"
        "them too); then, for each rota the worker reads (PagerDuty, the calendar), who\n"
        "is on call now and next, and how old the stored rota is.\n\n" + DATABASE_NOTE,
        ["python -m bot oncall list", "python -m bot oncall list all"],
    )
    listing.add_argument(
        "which", nargs="?", metavar="all", help="past shifts too (`--all` also does)"
    )
    listing.add_argument("--all", dest="list_all", action="store_true", help="past shifts too")
    schedule = _command(
        oncall,
        "schedule",
        "the PagerDuty schedule an image's requests ask",
        "Make an image's requests ask the on-call people of one PagerDuty schedule instead\n"
        "of ONCALL_PAGERDUTY_SCHEDULES; `none` clears it. Recorded in the audit log.\n\n"
        + DATABASE_NOTE,
        [
            "python -m bot oncall schedule 70a599e0-31e7-49b7-b260-868f441e862b P1ABCDE",
            "python -m bot oncall schedule 70a599e0-31e7-49b7-b260-868f441e862b none",
        ],
    )
    schedule.add_argument("image_id", metavar="IMAGE_ID")
    schedule.add_argument("schedule_id", metavar="SCHEDULE_ID", help="a schedule id, or none")
    policy = _command(
        sub,
        "policy",
        "approvals an image's shares need",
        "How many approvals requests to share an image need: `approvals 2` asks two\n"
        "different approvers (neither the asker) for every share of it, a sharer's too;\n"
        "`approvals 1` goes back to one. Requests already waiting keep their count.\n"
        "`policy list` shows the images that need two. Every change is recorded in the\n"
        "audit table.\n\n" + DATABASE_NOTE,
        [
            "python -m bot policy 70a599e0-31e7-49b7-b260-868f441e862b approvals 2",
            "python -m bot policy 70a599e0-31e7-49b7-b260-868f441e862b approvals 1",
            "python -m bot policy list",
        ],
    )
    policy.add_argument("image_id", metavar="IMAGE_ID", help="an image id, or `list`")
    policy.add_argument(
        "setting", nargs="*", metavar="approvals 1|2", help="`approvals 2` or `approvals 1`"
    )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bot`."""
    args = parser().parse_args(argv)
    command = args.command or "run"
    if command in {"grant", "revoke", "grants", "member", "oncall", "policy"}:
        admin_command(args)
        return
    if command == "sandbox":
        configure_logging()
        sandbox_command(args)
        return
    settings = _settings()
    configure_logging(_secrets(settings))
    if command == "check":
        from bot.check import run_check

        # The report says everything, in order: no log line (a retry, a library's note)
        # between its lines.
        logging.disable(logging.CRITICAL)
        sys.exit(run_check(settings))
    try:
        run(settings, slack=command != "worker", worker=command != "serve")
    except StorageError as error:
        sys.exit(f"share-image-bot cannot start: {error}")
    except KeyboardInterrupt:
        # Ctrl-C before the loop's own signal handlers are in place: a stop like any
        # other, without a traceback.
        log.info("stopped")
