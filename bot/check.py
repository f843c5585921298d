"""`python -m bot check`: one screen telling an operator whether the bot can work.

Each check prints one `[ok]`, `[WARN]` or `[FAIL]` line; a failure is followed by what
was tried, what came back and what to do, one line each. Warnings (a deprecated cloud
API version that is still served, a new empty database) leave the exit status 0.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot import replica
from bot.rota.errors import RotaError, RotaRefused
from bot.scp import ScpClient
from bot.scp.client import VersionLevel
from bot.scp.errors import CloudAuthError, CloudError, CloudUnavailable, ImageNotFound
from bot.services import make_cloud_client, make_rota_readers, make_web_client
from bot.settings import SECRET_SETTINGS, Settings, replica_config
from bot.sharing.errors import DirectoryUnavailable
from bot.sharing.oncall import ROTA_WINDOW, STALE_AFTER, RotaReader
from bot.sharing.values import Role, unstamp
from bot.slack.accounts import SlackDirectory
from bot.slack.trouble import SLACK_TIMEOUT, SlackTrouble, slack_trouble
from storage import Database, Grants, OnCallSchedules, ReconcileRuns, Rota
from storage.errors import StorageError

# A well-formed image id nobody owns: a signed read of it answers 404 when keys are good.
PROBE_IMAGE = "00000000-0000-4000-8000-000000000000"
# A replica this far behind the local database's last change gets a warning.
REPLICA_LAG_WARN = 30.0
# Settings accepted so that an old .env still starts, which do nothing now: when set, shown
# as ignored, with a warning saying so.
IGNORED_SETTINGS = {
    "BOT_WORKER_RECYCLE_MB": "does nothing now (the worker runs in the bot's one process and"
    " is never replaced): remove it from the settings",
}


def _settings_lines(settings: Settings) -> list[str]:
    lines = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in IGNORED_SETTINGS and value is not None:
            shown = f"{value} (ignored)"
        elif name in SECRET_SETTINGS:
            shown = "set" if value is not None else "not set (optional)"
        else:
            shown = str(value) if value not in (None, "") else "(empty)"
        lines.append(f"  {name:<28} {shown}")
    return lines


class _Report:
    """The lines of the check and its tally."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.failures = 0
        self.warnings = 0

    def ok(self, what: str, detail: str = "") -> None:
        self.echo(f"[ok] {what}" + (f": {detail}" if detail else ""))

    def warn(self, what: str, detail: str, *more: str) -> None:
        self.warnings += 1
        self.echo(f"[WARN] {what}: {detail}")
        for line in more:
            self.echo(line)

    def fail(self, what: str, detail: str, *more: str) -> None:
        self.failures += 1
        self.echo(f"[FAIL] {what}: {detail}")
        for line in more:
            self.echo(line)


def _check_database(path: Path, report: _Report) -> None:
    if not path.exists():
        # Said, not made: a check leaves no file behind (the bot makes it when it starts).
        _missing_database(path, report)
        return
    try:
        database = Database(path)
        try:
            grants = database.read(
                lambda db: db.execute("SELECT count(*) FROM grants").fetchone()[0]
            )
        finally:
            database.close()
    except StorageError as error:
        report.fail("database", str(error))
        return
    if not grants:
        report.warn(
            "database",
            f"{path} holds no grants: nobody may share yet",
            "    do:     python -m bot grant <YOUR_SLACK_USER_ID> admin",
        )
    else:
        report.ok("database", f"{path} ({grants} grant{'s' if grants != 1 else ''})")


def _missing_database(path: Path, report: _Report) -> None:
    """No database at `path`: whether the bot can make one there, and what to do."""
    folder = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        report.fail(
            "database",
            f"{path} does not exist, and {existing} is a file, not a folder",
            "    do:     set DATABASE_PATH to a file in a folder",
        )
    elif existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        report.fail(
            "database",
            f"{path} does not exist, and the bot may not create it: {existing} is not writable",
            "    do:     set DATABASE_PATH to a folder the bot may write in, or fix its"
            " permissions",
        )
    else:
        report.warn(
            "database",
            f"{path} does not exist: the bot creates a NEW, EMPTY database there when it"
            " starts (check created nothing)",
            "    do:     if the bot ran before, DATABASE_PATH or the folder you are in is wrong;"
            " otherwise make yourself an admin: python -m bot grant <YOUR_SLACK_USER_ID> admin",
        )


def _check_reconcile(settings: Settings, report: _Report, now: datetime | None = None) -> None:
    """The drift reconcile's last run: when, and what it found (the worker runs it)."""
    path = settings.DATABASE_PATH
    if not path.is_file():
        return  # the database line said what is wrong
    what = "drift reconcile"
    every = f"every {settings.SHARE_RECONCILE_SECONDS:g} s, SHARE_RECONCILE_SECONDS"
    try:
        database = Database(path)
        try:
            last = ReconcileRuns(database).last()
        finally:
            database.close()
    except StorageError:
        return  # the database line said what is wrong
    if last is None or last.started_at is None:
        report.ok(what, f"not run yet (the worker runs it {every})")
        return
    found = (
        f"{last.listed} of {last.images} image(s) listed; {last.outside} member(s) found with"
        f" access not through the bot, {last.gone} share(s) removed outside it,"
        f" {last.statuses} status(es) updated"
    )
    if last.finished_at is None:
        started = unstamp(last.started_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        report.ok(what, f"under way since {started} ({every}): {found} so far")
        return
    finished = unstamp(last.finished_at)
    detail = f"last run {finished.strftime('%Y-%m-%d %H:%M:%S UTC')} ({every}): {found}"
    late = (now or datetime.now(UTC)) - finished
    if last.failures:
        report.warn(
            what,
            f"{detail}; {last.failures} list(s) failed",
            "    do:     the worker's log says why (cannot list an image's members to reconcile)",
        )
    elif late.total_seconds() > 2 * settings.SHARE_RECONCILE_SECONDS + 300:
        report.warn(
            what,
            f"{detail}; none since, though one is due {every}",
            "    do:     make sure the worker runs (python -m bot starts it)",
        )
    else:
        report.ok(what, detail)


def _check_replica(settings: Settings, report: _Report, now: datetime | None = None) -> bool:
    """The replica: reachable, its last sync, the lag. True when the database is missing and
    the bot restores it at start (so the database check must not create an empty one)."""
    config = replica_config(settings)
    if config is None:  # no replica: nothing to say
        return False
    missing = not config.database.exists()
    unreachable = replica.unreachable(config)
    try:
        if unreachable:
            raise replica.ReplicaError(f"{config.shown} cannot be reached: {unreachable}")
        litestream = replica.Litestream(config)
        position = litestream.position()
        local = None if missing else litestream.local_txid()
    except replica.ReplicaError as error:
        report.fail(
            "database replica",
            str(error),
            f"    do:     {replica.reach_advice(config)}; the bot refuses to start on a missing"
            " database until the replica answers",
        )
        return missing
    if position is None:
        if missing:
            report.ok(
                "database replica",
                f"{config.shown} reachable and empty: a new database is made (next line)",
            )
        else:
            report.warn(
                "database replica",
                f"{config.shown} is reachable but holds no copy of {config.database}",
                "    do:     start the bot (python -m bot) with DATABASE_REPLICA_URL set: it"
                " replicates while it runs",
            )
        return False
    moment = now or datetime.now(UTC)
    written = position.written_at
    ago = f" ({(moment - written).total_seconds():.0f} s ago)" if written else ""
    synced = f"last sync {position.written()}{ago}, txid {position.txid_hex}"
    if missing:
        report.ok(
            "database replica",
            f"{config.shown} reachable, {synced}; {config.database} is missing: the bot restores"
            " it from the replica at start",
        )
        return True
    lag = _replica_lag(config.database, written)
    local_txid = f"local txid {local:016x}" if local is not None else "local txid unknown"
    detail = f"{config.shown} reachable, {synced}; {local_txid}, lag {lag:.0f} s"
    if lag > REPLICA_LAG_WARN:
        report.warn(
            "database replica",
            f"{detail}: the local database changed after the replica's last write",
            "    do:     make sure the bot runs with DATABASE_REPLICA_URL set (Litestream ships"
            " changes every second while it runs) and that its log has no Litestream errors",
        )
    else:
        report.ok("database replica", detail)
    return False


def _replica_lag(database: Path, written: datetime | None) -> float:
    """Seconds between the replica's last write and the local database's last change."""
    changed = max(
        (p.stat().st_mtime for p in (database, Path(f"{database}-wal")) if p.exists()),
        default=0.0,
    )
    if written is None:
        return 0.0
    # The replica's stamp is in whole seconds, and Litestream checkpoints the WAL into the
    # file (touching it) just after it ships: that much is no lag.
    return max(0.0, changed - written.timestamp() - 2.0)


# The bot scopes the bot uses (manifest.yml asks for each), and what fails without one.
SCOPES = {
    "commands": "the /share-image command and the shortcut",
    "chat:write": "every message: parents, threads, cards, notify lines",
    "im:write": "direct messages when a command's response_url has expired",
    "users:read": "users' languages, and checking a granted user is a person",
    "users:read.email": "matching the on-call rota's people to Slack users by email",
    "channels:read": "check's look at the approval and notify channels (public)",
    "groups:read": "check's look at the approval and notify channels (private)",
    "channels:history": "after a crash, finding a message already posted (public channels)",
    "groups:history": "after a crash, finding a message already posted (private channels)",
    "im:history": "after a crash, finding a message already posted (direct messages)",
    "mpim:history": "after a crash, finding a message already posted (group DMs)",
}


def _check_scopes(answer: object, report: _Report) -> None:
    """The token's scopes, as Slack reports them with every answer (`x-oauth-scopes`)."""
    headers = getattr(answer, "headers", None) or {}
    granted = next(
        (str(v) for k, v in dict(headers).items() if str(k).lower() == "x-oauth-scopes"), None
    )
    if granted is None:
        return  # Slack did not say (a proxy dropped the header): nothing to compare
    have = {scope.strip() for scope in granted.split(",") if scope.strip()}
    missing = [scope for scope in SCOPES if scope not in have]
    if not missing:
        report.ok("Slack scopes", f"all {len(SCOPES)} the bot uses")
        return
    report.warn(
        "Slack scopes",
        f"the token lacks {', '.join(missing)}",
        *(f"    {scope}: {SCOPES[scope]}" for scope in missing),
        "    do:     add them under OAuth & Permissions (or update the app from manifest.yml)"
        " and reinstall the app",
    )


async def _check_slack(settings: Settings, slack: AsyncWebClient, report: _Report) -> str | None:
    """auth.test with the bot token; the bot's user name when Slack accepts it."""
    url = f"{settings.SLACK_API_URL}auth.test"
    try:
        answer = await slack.auth_test()
    except Exception as error:  # report any failure to reach or convince Slack
        trouble = slack_trouble(error, url, setting="SLACK_BOT_TOKEN")
        report.fail("Slack token", trouble.summary("SLACK_BOT_TOKEN"), *trouble.lines())
        return None
    report.ok("Slack token", f"bot {answer.get('user')} in team {answer.get('team')}")
    _check_scopes(answer, report)
    return str(answer.get("user") or "the bot")


async def _check_app_token(settings: Settings, report: _Report) -> None:
    assert settings.SLACK_APP_TOKEN is not None
    token = settings.SLACK_APP_TOKEN.get_secret_value()
    url = f"{settings.SLACK_API_URL}apps.connections.open"
    client = AsyncWebClient(token=token, base_url=settings.SLACK_API_URL, timeout=SLACK_TIMEOUT)
    try:
        await client.apps_connections_open(app_token=token)
    except Exception as error:
        trouble = slack_trouble(error, url, setting="SLACK_APP_TOKEN")
        report.fail(
            "Slack app token (Socket Mode)", trouble.summary("SLACK_APP_TOKEN"), *trouble.lines()
        )
        return
    report.ok("Slack app token (Socket Mode)", "accepted by apps.connections.open")


async def _check_channel(
    settings: Settings,
    slack: AsyncWebClient,
    bot: str,
    what: str,
    setting: str,
    channel: str,
    report: _Report,
) -> None:
    url = f"{settings.SLACK_API_URL}conversations.info"
    try:
        answer = await slack.conversations_info(channel=channel)
    except Exception as error:
        trouble = slack_trouble(error, url, setting="SLACK_BOT_TOKEN")
        if trouble.code == "missing_scope":
            report.warn(
                what,
                f"cannot tell whether {bot} is a member of {channel} ({setting})",
                *trouble.lines()[:2],
                "    do:     give the app the channels:read scope (groups:read for a private"
                " channel) and reinstall it, or make sure by hand that the bot was invited",
            )
            return
        if trouble.code == "channel_not_found":
            trouble = SlackTrouble(
                trouble.code,
                trouble.tried,
                trouble.answer,
                f"{setting} names no channel the bot can see: check the id (the channel's"
                f" details, at the bottom); for a private channel, /invite @{bot} first",
            )
        report.fail(what, f"cannot look up {channel} ({setting}): {trouble.code}", *trouble.lines())
        return
    info = answer.get("channel") or {}
    name = f"#{info.get('name')} ({channel})" if info.get("name") else channel
    if info.get("is_member"):
        report.ok(what, f"{bot} is a member of {name}")
        return
    report.fail(
        what,
        f"{bot} is not a member of {name} ({setting}): its messages there would be refused",
        f"    tried:  {url}",
        "    answer: channel.is_member is false",
        f"    do:     in Slack, open {name.split(' ')[0]} and type /invite @{bot}",
    )


def _cloud_advice(settings: Settings, error: CloudError) -> tuple[str, ...]:
    """What to check when the cloud gave no answer at all (the error names only its kind)."""
    if not isinstance(error, CloudUnavailable):
        return ()
    return (
        f"    tried:  {settings.SCP_ENDPOINT}",
        "    do:     check SCP_ENDPOINT, the network and any proxy (HTTPS_PROXY) between here"
        " and the cloud",
    )


async def _check_cloud(
    settings: Settings, cloud: ScpClient, report: _Report, today: date | None
) -> None:
    try:
        version = await cloud.version_report(today)
    except CloudError as error:
        report.fail("cloud API version list", str(error), *_cloud_advice(settings, error))
    else:
        served = ", ".join(version.served) or "none"
        if version.level is VersionLevel.OK:
            report.ok(
                "cloud API version", f"{version.configured} ({version.status}); served: {served}"
            )
        elif version.level is VersionLevel.DEPRECATED:
            report.warn("cloud API version", f"{version.problem}; served: {served}")
        elif version.level is VersionLevel.AT_RISK:
            report.warn(
                "cloud API version",
                f"MAY STOP WORKING ANY DAY: {version.problem}; served: {served}",
            )
        else:
            report.fail("cloud API version", f"{version.problem}; served: {served}")
    try:
        await cloud.list_members(PROBE_IMAGE)
        report.ok("cloud API signed read", "keys and signature accepted")
    except ImageNotFound:
        report.ok("cloud API signed read", "keys and signature accepted")
    except CloudAuthError as error:
        report.fail("cloud API signed read", f"refused: {error}")
    except CloudError as error:
        report.fail("cloud API signed read", str(error), *_cloud_advice(settings, error))


# How `check` names each rota source on its line.
SOURCE_NAMES = {"pagerduty": "PagerDuty", "calendar": "calendar feed (ONCALL_ICAL_URL)"}


def _age(seconds: float) -> str:
    """A rota's age for a check line: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@dataclass(frozen=True)
class _Stored:
    """What the database holds of the rotas, for `check`."""

    rota: Rota | None
    schedules: list[str]
    deciders: set[str]

    def age(self, source: str, now: datetime) -> tuple[str, bool]:
        """The stored rota's age in words, and whether cards still trust it."""
        state = self.rota.state(source) if self.rota is not None else None
        if state is None or state.read_at is None:
            return "no rota stored yet (the worker reads it at start)", False
        seconds = (now - state.read_at).total_seconds()
        if seconds > STALE_AFTER.total_seconds():
            return f"the stored rota is {_age(seconds)} old: cards ask the approvers instead", False
        return f"the stored rota is {_age(seconds)} old", True


async def _check_rotas(
    settings: Settings, slack: AsyncWebClient, report: _Report, now: datetime | None
) -> None:
    """A line per on-call rota source: read it now, match its people, and say how old the
    rota the bot stored is (what cards use while the source cannot be read)."""
    readers = make_rota_readers(settings)
    if not readers:
        return
    moment = now or datetime.now(UTC)
    database = Database(settings.DATABASE_PATH) if settings.DATABASE_PATH.exists() else None
    try:
        if database is not None:
            grants = Grants(database)
            stored = _Stored(
                Rota(database),
                list(OnCallSchedules(database).all().values()),
                set(grants.holders(Role.APPROVER, Role.ADMIN)),
            )
        else:
            stored = _Stored(None, [], set())
        directory = SlackDirectory(slack, None)
        for reader in readers:
            await _check_rota(settings, reader, directory, stored, report, moment)
    finally:
        for reader in readers:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()
        if database is not None:
            database.close()


async def _check_rota(
    settings: Settings,
    reader: RotaReader,
    directory: SlackDirectory,
    stored: _Stored,
    report: _Report,
    now: datetime,
) -> None:
    what = f"on-call source {SOURCE_NAMES.get(reader.source, reader.label)}"
    age, trusted = stored.age(reader.source, now)
    schedules = list(dict.fromkeys([*settings.pagerduty_schedules, *stored.schedules]))
    if reader.source == "pagerduty" and not schedules:
        report.warn(
            what,
            f"no schedule to read; {age}",
            "    do:     set ONCALL_PAGERDUTY_SCHEDULES, or give images their own with"
            " `python -m bot oncall schedule IMAGE_ID SCHEDULE_ID`",
        )
        return
    setting = "ONCALL_PAGERDUTY_TOKEN" if reader.source == "pagerduty" else "ONCALL_ICAL_URL"
    try:
        got = await reader.read(now, now + ROTA_WINDOW, schedules)
    except RotaError as error:
        advice = (
            f"fix {setting} and run check again"
            if isinstance(error, RotaRefused)
            else "the worker keeps the stored rota and tries again at each refresh"
        )
        report.fail(
            what,
            f"{error.detail}; {age}",
            f"    do:     {advice}",
        )
        return
    problems = list(got.problems)
    people: set[str] = set()
    try:
        for email in dict.fromkeys(shift.email for shift in got.shifts):
            user = await directory.user_for_email(email)
            if user is None:
                problems.append(f"{email}: Slack knows nobody by that email")
            elif user not in stored.deciders:
                problems.append(
                    f"{email} ({user}) may not approve, so is never asked: grant them approver"
                )
            else:
                people.add(user)
    except DirectoryUnavailable as error:
        problems.append(f"cannot match people to Slack: {error.detail}")
    shifts = len(got.shifts)
    read = (
        f"read now: {shifts} shift{'s' if shifts != 1 else ''} in the next"
        f" {ROTA_WINDOW.days} days, {len(people)} approver{'s' if len(people) != 1 else ''}"
        f" matched in Slack; {age}"
    )
    if problems or not trusted:
        report.warn(what, read, *(f"    {problem}" for problem in problems))
    else:
        report.ok(what, read)


def run_check(
    settings: Settings,
    *,
    slack: AsyncWebClient | None = None,
    cloud: ScpClient | None = None,
    echo: Callable[[str], None] = print,
    today: date | None = None,
    now: datetime | None = None,
) -> int:
    """Print the check; 0 when everything works (warnings allowed), 1 otherwise.

    Synchronous: the Slack and cloud calls run in an event loop of its own."""
    return asyncio.run(
        _run_check(settings, slack=slack, cloud=cloud, echo=echo, today=today, now=now)
    )


async def _run_check(
    settings: Settings,
    *,
    slack: AsyncWebClient | None,
    cloud: ScpClient | None,
    echo: Callable[[str], None],
    today: date | None,
    now: datetime | None,
) -> int:
    report = _Report(echo)
    echo("Settings (secrets are never shown):")
    for line in _settings_lines(settings):
        echo(line)
    report.ok("settings", "all required settings present and valid")
    for name, why in IGNORED_SETTINGS.items():
        if getattr(settings, name) is not None:
            report.warn(name, why)

    if not _check_replica(settings, report):
        _check_database(settings.DATABASE_PATH, report)
        _check_reconcile(settings, report)

    slack = slack or make_web_client(settings, timeout=SLACK_TIMEOUT)
    bot = await _check_slack(settings, slack, report)
    if settings.SLACK_APP_TOKEN is not None:
        await _check_app_token(settings, report)
    if bot is not None:
        for what, setting in (
            ("approval channel", "SHARE_APPROVAL_CHANNEL"),
            ("notify channel", "SHARE_NOTIFY_CHANNEL"),
        ):
            channel = getattr(settings, setting)
            if channel:
                await _check_channel(settings, slack, bot, what, setting, channel, report)

    cloud = cloud or make_cloud_client(settings)
    try:
        await _check_cloud(settings, cloud, report, today)
    finally:
        await cloud.aclose()
    await _check_rotas(settings, slack, report, now)
    if report.failures:
        echo(f"{report.failures} check(s) failed.")
    elif report.warnings:
        echo(f"All checks passed, with {report.warnings} warning(s): read the [WARN] lines.")
    else:
        echo("All checks passed.")
    return 0 if report.failures == 0 else 1
