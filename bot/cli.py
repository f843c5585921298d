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

from dotenv import dotenv_values

from bot import replica
from bot.lock import take_lock
from bot.logs import configure_logging
from bot.settings import (
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
from bot.slack.texts import say, stored_when, when
from storage import (
    AuditLog,
    Database,
    Grants,
    ImagePolicies,
    KnownMembers,
    OnCall,
    OnCallSchedules,
    Role,
    Rota,
)
from storage.errors import StorageError
from storage.requests import parse_stamp

if TYPE_CHECKING:
    from bot.scp.models import ApiVersion, Image
    from bot.scp.sandbox import Sandbox
    from bot.settings import RawSetting
    from bot.sharing.admin import Administration

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
    value = os.environ.get("DATABASE_PATH") or dotenv_values(".env").get("DATABASE_PATH")
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
        replica.run_under_litestream(replica_config(settings))
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
    from bot.settings import raw_settings

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


def _fail(error: CommandError) -> None:
    values = {k: f"'{v}'" if k in {"token", "extra"} else v for k, v in error.values.items()}
    sys.exit(say("en", error.problem, **values).replace("`", ""))


def _member_name(text: str | None) -> str:
    """`member add --name`: one line of visible text, at most commands.MAX_NAME characters."""
    name = (text or "").strip()
    if not name:
        sys.exit('member add needs a --name, like --name "QA account"')
    return commands.name(name)  # the same rules as `/share-image admin member add`


# How long an admin command waits for Slack's answer about a user id.
CLI_SLACK_TIMEOUT = 5


def _tell_if_slack_does_not_know(user: str) -> None:
    """A warning on stderr when Slack, asked with SLACK_BOT_TOKEN, says `user` is no person.

    A warning, not a refusal: the command line is how an operator repairs the bot, also
    when Slack cannot be reached from its host or the token is wrong, and they typed an
    id they copied from Slack. Without a bot token nothing is asked.
    """
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.sharing.admin import Account
    from bot.slack.accounts import slack_account

    saved = dotenv_values(".env")
    token = os.environ.get("SLACK_BOT_TOKEN") or saved.get("SLACK_BOT_TOKEN") or ""
    if not token.startswith("xoxb-") or token.rstrip(".") == "xoxb-":
        return
    from bot.slack.trouble import slack_trouble

    url = os.environ.get("SLACK_API_URL") or saved.get("SLACK_API_URL") or ""
    base = url or "https://slack.com/api/"
    # Asked once: no retries (an operator waits on each), and not long.
    client = AsyncWebClient(
        token=token, base_url=base, timeout=CLI_SLACK_TIMEOUT, retry_handlers=[]
    )
    logging.getLogger("bot.slack.accounts").disabled = True  # the line below says it
    failures: list[Exception] = []
    account = asyncio.run(slack_account(client, user, failed=failures.append))
    why = ""
    if failures:
        trouble = slack_trouble(
            failures[0],
            f"{base.rstrip('/')}/users.info",
            setting="SLACK_BOT_TOKEN",
            timeout=CLI_SLACK_TIMEOUT,
        )
        why = trouble.one_line()
    said = {
        Account.UNKNOWN: f"Slack knows no user {user} (users.info: user_not_found): check the id"
        " (their profile: ⋮ → Copy member ID)",
        Account.BOT: f"{user} is a bot or an app in Slack, not a person",
        Account.DELETED: f"{user} is a deactivated account in Slack",
        Account.UNCHECKED: f"could not ask Slack whether {user} exists: {why}",
    }.get(account)
    if said:
        print(f"warning: {said}; done anyway, as asked", file=sys.stderr)


def _held_elsewhere(admin: Administration, user: str, role: Role, image: str) -> str:
    """After "was not ROLE for SCOPE": the scopes `user` does hold `role` for, and the
    command that takes each back ("" when they hold it nowhere)."""
    scopes = [g.image_id for g in admin.grants.all() if g.user_id == user and g.role is role]
    others = [scope for scope in scopes if scope != image]
    if not others:
        return ""
    if "" in others:
        return (
            f"; they are {role.value} for all images, which an --image does not take back:"
            f" `python -m bot revoke {user} {role.value}` does"
        )
    images = ", ".join(others)
    take_back = f"python -m bot revoke {user} {role.value} --image {others[0]}"
    return (
        f"; they are {role.value} only for image{'s' if len(others) > 1 else ''} {images}:"
        f" take that back with `{take_back}`"
        + (" (one command per image)" if len(others) > 1 else "")
    )


def _image_option(value: str | None) -> str:
    """`--image`: absent means all images; present, it must be an image id."""
    if value is None:
        return ""
    if not value.strip():
        sys.exit(
            "--image is empty: give an image id (a UUID like 70a599e0-31e7-49b7-b260-868f441e862b),"
            " or leave --image out to mean all images"
        )
    return commands.image_id(value)


class _Session:
    """The admin commands' database, opened (and named) only once a command is valid."""

    def __init__(self) -> None:
        self._database: Database | None = None
        self._admin: Administration | None = None

    @property
    def admin(self) -> Administration:
        if self._admin is None:
            from bot.sharing.admin import Administration

            database = self._database = _open_database()
            self._admin = Administration(
                grants=Grants(database),
                members=KnownMembers(database),
                oncall=OnCall(database),
                audit=AuditLog(database),
                schedules=OnCallSchedules(database),
                policies=ImagePolicies(database),
            )
        return self._admin

    @property
    def rota(self) -> Rota:
        """The stored on-call rotas (the database is open once `admin` was asked)."""
        assert self._database is not None
        return Rota(self._database)

    def close(self) -> None:
        if self._database is not None:
            self._database.close()


def _timezone() -> ZoneInfo:
    """BOT_TIMEZONE, as the bot reads it (the environment, then .env); UTC when unset."""
    value = raw_settings("BOT_TIMEZONE")["BOT_TIMEZONE"].value
    try:
        return zone_named(value) if value else ZoneInfo("UTC")
    except ValueError as error:
        sys.exit(f"BOT_TIMEZONE {error}")


def _remove_shifts(
    admin: Administration, args: argparse.Namespace, zone: ZoneInfo, actor: str
) -> None:
    """`oncall remove SHIFT_ID`, or `oncall remove SLACK_USER_ID --all`."""
    number = commands.shift_id(args.target)
    if number is not None:
        if args.all:
            sys.exit("--all goes with a Slack user id, not with a shift id")
        removed = admin.remove_shift(number, by=actor)
        if removed is None:
            sys.exit(f"there is no shift #{number}; `python -m bot oncall list` shows their ids")
        starts = stored_when(removed.starts_at, zone)
        ends = stored_when(removed.ends_at, zone)
        print(f"removed shift #{number} of {removed.user_id} ({starts} → {ends})")
        return
    user = commands.user_id(args.target)
    if not args.all:
        sys.exit(
            f"which shift of {user}? give its id (`python -m bot oncall list` shows them),"
            f" or add --all to remove every shift of {user}"
        )
    count = admin.remove_shifts(user, by=actor)
    print(f"removed {count} shift(s)")


def _set_schedule(session: _Session, args: argparse.Namespace, actor: str) -> None:
    """`oncall schedule IMAGE_ID SCHEDULE_ID`, or `… none`: audited like Slack's."""
    image = commands.image_id(args.image_id)
    schedule = commands.schedule_id(args.schedule_id)
    before = session.admin.set_schedule(image, schedule, by=actor)
    if schedule:
        was = f" (it asked {before})" if before and before != schedule else ""
        same = " already" if before == schedule else ""
        print(f"requests for image {image}{same} ask PagerDuty schedule {schedule}{was}")
        if not (raw_settings("ONCALL_PAGERDUTY_TOKEN")["ONCALL_PAGERDUTY_TOKEN"].usable):
            print(
                "warning: ONCALL_PAGERDUTY_TOKEN is not set: nobody is read from PagerDuty"
                " until it is",
                file=sys.stderr,
            )
    elif before:
        print(f"image {image} no longer has its own schedule (it asked {before})")
    else:
        print(f"image {image} has no schedule of its own; nothing changed")


def _past_too(which: str | None) -> bool:
    """`oncall list all`, as Slack takes it: past shifts as well."""
    if which is None:
        return False
    if which.lower() == "all":
        return True
    sys.exit(
        f"`oncall list` takes nothing but `all` (past shifts too), not {which!r}:"
        " `python -m bot oncall list` or `python -m bot oncall list all`"
    )


def _print_shifts(session: _Session, past: bool, zone: ZoneInfo) -> None:
    """`oncall list`: current and coming shifts with their ids (`past`: ended ones too)."""
    shifts = session.admin.oncall.all()
    if not shifts:
        print("no on-call shifts")
        return
    now = session.rota.now()
    ended = [s for s in shifts if (parse_stamp(s.ends_at) or now) <= now]
    listed = shifts if past else [s for s in shifts if s not in ended]
    if not listed:
        print("no current or coming on-call shifts")
    for s in listed:
        shown = (stored_when(s.starts_at, zone), stored_when(s.ends_at, zone))
        print(f"{s.id}\t{s.user_id}\t{shown[0]}\t{shown[1]}")
    if ended and not past:
        print(f"({len(ended)} past shift(s) not shown; `python -m bot oncall list all` shows them)")


def _print_rotas(rota: Rota, admin: Administration, zone: ZoneInfo) -> None:
    """`oncall list`: each stored rota's people now and next, with their source."""
    from bot.sharing.oncall import ROTA_SOURCES, StoredRota, now_and_next

    now = rota.now()
    for source in ROTA_SOURCES:
        state = rota.state(source)
        if state is None:
            continue
        label = {"pagerduty": "PagerDuty", "calendar": "calendar"}[source]
        seen = now_and_next(StoredRota(source, rota, admin.grants), now)
        if state.read_at is None:
            print(f"{label}: not read yet")
        else:
            age = (now - state.read_at).total_seconds()
            print(f"{label}: read {when(state.read_at.astimezone(zone), zone)} ({age:.0f} s ago)")
        if state.error:
            print(f"  last read failed: {state.error}")
        for what, entries in (("now", seen.now), ("next", seen.next)):
            if not entries:
                print(f"  {what}\tnobody")
            for e in entries:
                user = e.user_id or "(not in Slack)"
                span = (
                    f"{when(e.starts.astimezone(zone), zone) if e.starts else 'always'}"
                    f" → {when(e.ends.astimezone(zone), zone) if e.ends else 'always'}"
                )
                schedule = f"\t{e.schedule_id}" if e.schedule_id else ""
                print(f"  {what}\t{user}\t{e.email}\t{span}{schedule}")
    for image, schedule in admin.schedules.all().items() if admin.schedules else ():
        print(f"image {image} asks PagerDuty schedule {schedule}")


def _policy(admin: Administration, args: argparse.Namespace, actor: str) -> None:
    """`policy IMAGE_ID approvals 1|2`, or `policy list`."""
    if args.image_id == "list":
        if args.setting:
            sys.exit("`policy list` takes nothing after it")
        rules = admin.policies.all() if admin.policies is not None else {}
        if not rules:
            print("no image needs more than one approval")
        for image, count in rules.items():
            print(f"{image}\tapprovals {count}")
        return
    try:
        image, count = commands.policy([args.image_id, *(args.setting or [])])
    except CommandError as error:
        if error.problem != "policy_usage":
            raise
        sys.exit(
            "give an image id and `approvals 1` or `approvals 2`, like"
            " `python -m bot policy 70a599e0-31e7-49b7-b260-868f441e862b approvals 2`"
            " (or `python -m bot policy list`)"
        )
    if admin.set_approvals(image, count, by=actor):
        print(
            f"requests to share {image} now need two approvals, from two different approvers"
            " (neither the asker; sharers' too)"
            if count > 1
            else f"requests to share {image} need one approval again"
        )
    else:
        print(f"{image} already needs {count} approval(s); nothing changed")


def admin_command(args: argparse.Namespace) -> None:
    """grant, revoke, grants, member …, oncall …, policy …"""
    session = _Session()
    actor = _actor()
    try:
        if args.command in {"grant", "revoke"}:
            user = commands.user_id(args.user_id)
            role = commands.role(args.role)
            image = _image_option(args.image)
            scope = image or "all images"
            admin = session.admin
            if args.command == "grant":
                changed = admin.grant(user, role, image, by=actor)
                _tell_if_slack_does_not_know(user)
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
                    + _held_elsewhere(admin, user, role, image)
                )
                last = role is Role.ADMIN and not image
                if changed and last and not admin.grants.holders(Role.ADMIN):
                    print(
                        "warning: nobody is an admin for all images now; nobody can administer"
                        " the bot from Slack until `python -m bot grant <SLACK_USER_ID> admin`",
                        file=sys.stderr,
                    )
        elif args.command == "grants":
            rows = session.admin.grants.all()
            if not rows:
                print("no grants yet")
            for g in rows:
                print(
                    f"{g.user_id}\t{g.role.value}\t{g.scope}\tby {g.granted_by} at {g.granted_at}"
                )
        elif args.command == "member":
            if args.action == "add":
                member = commands.member_id(args.member_id)
                name = _member_name(args.name)
                before = session.admin.add_member(member, name, by=actor)
                if before is None:
                    print(f"{args.member_id} is known as {name}")
                elif before.member_id == member:
                    print(f"{member} is now known as {name} (it was {before.name})")
                else:
                    print(
                        f"{member} is the known member {before.member_id} (ids alike but for"
                        f" case are one member): now known as {name} (it was {before.name})"
                    )
            elif args.action == "remove":
                member = commands.member_id(args.member_id)
                removed = session.admin.remove_member(member, by=actor)
                print(f"removed {args.member_id}" if removed else f"{args.member_id} was not known")
            else:
                known = session.admin.members.all()
                if not known:
                    print("no known members yet")
                for m in known:
                    print(f"{m.member_id}\t{m.name}")
        elif args.command == "policy":
            _policy(session.admin, args, actor)
        elif args.command == "oncall":
            zone = _timezone()
            if args.action == "add":
                user = commands.user_id(args.user_id)
                starts = commands.moment(args.starts, zone)
                ends = commands.moment(args.ends, zone)
                # Refused before the database is opened (and again against its clock).
                commands.shift_window(starts, ends, datetime.now(UTC))
                shift = session.admin.add_shift(user, starts, ends, by=actor)
                _tell_if_slack_does_not_know(user)
                print(f"#{shift} {user} on call {when(starts, zone)} → {when(ends, zone)}")
            elif args.action == "remove":
                _remove_shifts(session.admin, args, zone, actor)
            elif args.action == "schedule":
                _set_schedule(session, args, actor)
            else:
                _print_shifts(session, args.list_all or _past_too(args.which), zone)
                _print_rotas(session.rota, session.admin, zone)
    except CommandError as error:
        _fail(error)
    except StorageError as error:
        sys.exit(str(error))
    finally:
        session.close()


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
