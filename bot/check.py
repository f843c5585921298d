"""`python -m bot check`: one screen telling an operator whether the bot can work."""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient

from bot.scp import ScpClient
from bot.scp.errors import CloudAuthError, CloudError, ImageNotFound
from bot.services import make_cloud_client, make_web_client
from bot.settings import Settings
from storage import Database
from storage.errors import StorageError

# A well-formed image id nobody owns: a signed read of it answers 404 when keys are good.
PROBE_IMAGE = "00000000-0000-4000-8000-000000000000"
SECRET_SETTINGS = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SCP_ACCESS_KEY",
    "SCP_SECRET_KEY",
}


def _settings_lines(settings: Settings) -> list[str]:
    lines = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in SECRET_SETTINGS:
            shown = "set" if value is not None else "not set (optional)"
        else:
            shown = str(value) if value not in (None, "") else "(empty)"
        lines.append(f"  {name:<28} {shown}")
    return lines


def run_check(
    settings: Settings,
    *,
    slack: WebClient | None = None,
    cloud: ScpClient | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Print the check; 0 when everything works, 1 otherwise."""
    failures = 0

    def result(ok: bool, what: str, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        echo(f"[{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))

    echo("Settings (secrets are never shown):")
    for line in _settings_lines(settings):
        echo(line)
    result(True, "settings", "all required settings present and valid")

    try:
        database = Database(settings.DATABASE_PATH)
        database.read(lambda db: db.execute("SELECT count(*) FROM grants").fetchone())
        database.close()
        result(True, "database", str(settings.DATABASE_PATH))
    except StorageError as error:
        result(False, "database", str(error))

    slack = slack or make_web_client(settings)
    try:
        answer = slack.auth_test()
        result(True, "Slack token", f"bot {answer.get('user')} in team {answer.get('team')}")
    except Exception as error:  # report any failure to reach or convince Slack
        detail = getattr(getattr(error, "response", None), "get", lambda _k: None)("error")
        result(False, "Slack token", str(detail or type(error).__name__))

    cloud = cloud or make_cloud_client(settings)
    try:
        report = cloud.version_report()
        served = ", ".join(report.served) or "none"
        if report.ok:
            result(
                True,
                "cloud API version",
                f"{report.configured} ({report.status}); served: {served}",
            )
        else:
            result(False, "cloud API version", f"{report.problem}; served: {served}")
    except CloudError as error:
        result(False, "cloud API version list", str(error))
    try:
        cloud.list_members(PROBE_IMAGE)
        result(True, "cloud API signed read", "keys and signature accepted")
    except ImageNotFound:
        result(True, "cloud API signed read", "keys and signature accepted")
    except CloudAuthError as error:
        result(False, "cloud API signed read", f"refused: {error}")
    except CloudError as error:
        result(False, "cloud API signed read", str(error))
    finally:
        cloud.close()
    echo("All checks passed." if not failures else f"{failures} check(s) failed.")
    return 0 if failures == 0 else 1
