"""Settings are refused at start-up when they cannot work: placeholders, wrong kinds, names.

Each refusal names the setting and what is wrong; none repeats a secret's value.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.settings import SettingsError, is_placeholder, load_settings, raw_settings
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
GOOD: dict[str, Any] = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-abcdefABCDEF",
    "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "SCP_ENDPOINT": "https://virtualserver.kr-west1.e.samsungsdscloud.com",
    "SCP_ACCESS_KEY": "AK-0123456789abcdef",
    "SCP_SECRET_KEY": "SK-0123456789abcdef-very-secret",
}


def problems(**changes: Any) -> list[str]:
    """What load_settings says about GOOD with `changes` (an empty list: accepted)."""
    try:
        load_settings(**(GOOD | changes))
    except SettingsError as error:
        return error.problems
    return []


def test_good_settings_are_accepted() -> None:
    assert problems() == []
    assert (
        problems(SLACK_APP_TOKEN="xapp-1-A01-123-abcdef", SLACK_API_URL="http://127.0.0.1:9/api")
        == []
    )
    assert problems(SLACK_APP_TOKEN="") == []  # empty: HTTP mode
    assert load_settings(**GOOD).SLACK_API_URL == "https://slack.com/api/"
    assert load_settings(**GOOD, SLACK_API_URL="http://127.0.0.1:9/api").SLACK_API_URL == (
        "http://127.0.0.1:9/api/"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "SLACK_BOT_TOKEN",
            "xoxb-...",
            "SLACK_BOT_TOKEN is still the placeholder from .env.example: put in the Bot User"
            " OAuth Token (xoxb-…) from api.slack.com/apps → your app → OAuth & Permissions",
        ),
        (
            "SLACK_SIGNING_SECRET",
            "...",
            "SLACK_SIGNING_SECRET is still the placeholder from .env.example: put in the Signing"
            " Secret from api.slack.com/apps → your app → Basic Information",
        ),
        (
            "SLACK_APP_TOKEN",
            "xapp-...",
            "SLACK_APP_TOKEN is still the placeholder from .env.example: put in an app-level"
            " token (xapp-…) with connections:write, from Basic Information → App-Level Tokens,"
            " or leave it empty for HTTP mode",
        ),
        (
            "SCP_ACCESS_KEY",
            "...",
            "SCP_ACCESS_KEY is still the placeholder from .env.example: put in the key from the"
            " SCP console (or the sandbox's: `python -m bot sandbox` prints them)",
        ),
        (
            "SCP_SECRET_KEY",
            "…",
            "SCP_SECRET_KEY is still the placeholder from .env.example: put in the key from the"
            " SCP console (or the sandbox's: `python -m bot sandbox` prints them)",
        ),
        (
            "SCP_ACCOUNT_ID",
            "...",
            "SCP_ACCOUNT_ID is still the placeholder from .env.example: put in the account id,"
            " or leave it empty",
        ),
        (
            "SCP_ENDPOINT",
            "https://virtualserver.{region}.{env}.samsungsdscloud.com",
            "SCP_ENDPOINT has a placeholder left in it: put in the region and environment, like"
            " https://virtualserver.kr-west1.e.samsungsdscloud.com",
        ),
    ],
)
def test_placeholders_are_refused_and_named(name: str, value: str, message: str) -> None:
    assert problems(**{name: value}) == [message]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "xapp-1-A01-123-secretpart",
            "SLACK_BOT_TOKEN must start with xoxb-, but this is an app-level token (xapp-…),"
            " which belongs in SLACK_APP_TOKEN: use the Bot User OAuth Token from OAuth &"
            " Permissions",
        ),
        (
            "xoxp-1-secretpart",
            "SLACK_BOT_TOKEN must start with xoxb-, but this is a user token (xoxp-…): use the"
            " Bot User OAuth Token from OAuth & Permissions",
        ),
        (
            "secretpart-0123",
            "SLACK_BOT_TOKEN must start with xoxb-, but this is not a Slack token of any kind:"
            " use the Bot User OAuth Token from OAuth & Permissions",
        ),
    ],
)
def test_a_bot_token_of_another_kind_is_refused(value: str, message: str) -> None:
    assert problems(SLACK_BOT_TOKEN=value) == [message]
    assert "secretpart" not in message


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("xoxb-1111-secretpart", "a bot token (xoxb-…), which belongs in SLACK_BOT_TOKEN"),
        ("secretpart-0123", "not a Slack token of any kind"),
    ],
)
def test_an_app_token_of_another_kind_is_refused(value: str, kind: str) -> None:
    assert problems(SLACK_APP_TOKEN=value) == [
        f"SLACK_APP_TOKEN must start with xapp-, but this is {kind}: Socket Mode"
        " needs an app-level token with connections:write, from Basic Information → App-Level"
        " Tokens (or leave SLACK_APP_TOKEN empty for HTTP mode)"
    ]


def test_a_token_as_the_signing_secret_is_refused() -> None:
    assert problems(SLACK_SIGNING_SECRET="xoxb-1111-secretpart") == [
        "SLACK_SIGNING_SECRET is a Slack token (xoxb-…), not a signing secret: use the Signing"
        " Secret from Basic Information → App Credentials"
    ]


@pytest.mark.parametrize("value", ["ftp://slack.com/api/", "slack.com/api/", "https://", "..."])
def test_the_slack_api_url_must_be_http(value: str) -> None:
    assert problems(SLACK_API_URL=value) == [
        "SLACK_API_URL must be an http:// or https:// URL"
        + (" with a host" if value == "https://" else "")
        + ", like https://slack.com/api/"
    ]


@pytest.mark.parametrize("value", ["ftp://virtualserver.example.com", "virtualserver.example", ""])
def test_the_cloud_endpoint_must_be_http(value: str) -> None:
    assert problems(SCP_ENDPOINT=value) == [
        "SCP_ENDPOINT must be an http:// or https:// URL, like"
        " https://virtualserver.kr-west1.e.samsungsdscloud.com"
    ]


@pytest.mark.parametrize("name", ["SHARE_APPROVAL_CHANNEL", "SHARE_NOTIFY_CHANNEL"])
@pytest.mark.parametrize("value", ["#general", "general", "c0123abcd", "C", "U0123ABCD"])
def test_channels_are_ids_not_names(name: str, value: str) -> None:
    assert problems(**{name: value}) == [
        f"{name} must be a channel id like C0123ABCD, not {value!r}: in Slack, open"
        " the channel's details; its id is at the bottom"
    ]


@pytest.mark.parametrize("value", ["", "C0123ABCD", "G01ABC", "CAPPROVE"])
def test_channel_ids_are_accepted(value: str) -> None:
    assert problems(SHARE_APPROVAL_CHANNEL=value, SHARE_NOTIFY_CHANNEL=value) == []


def test_every_refusal_is_named_at_once_and_no_secret_is_repeated() -> None:
    secrets = {
        "SLACK_BOT_TOKEN": "xapp-1-bot-secret-value",
        "SLACK_SIGNING_SECRET": "xoxb-signing-secret-value",
        "SLACK_APP_TOKEN": "xoxb-app-secret-value",
        "SCP_ACCESS_KEY": "<access-secret-value>",
        "SCP_SECRET_KEY": "scp...secret-value",
    }

    found = problems(**secrets, SHARE_NOTIFY_CHANNEL="#general")

    assert [p.split(" ")[0] for p in found] == [*secrets, "SHARE_NOTIFY_CHANNEL"]
    for value in secrets.values():
        assert all(value not in problem for problem in found)
        assert all("secret-value" not in problem for problem in found)


def test_the_example_file_is_refused_as_it_stands(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SCP_ACCESS_KEY",
        "SCP_SECRET_KEY",
    ]
    assert all("placeholder from .env.example" in p for p in caught.value.problems)


def test_the_bot_refuses_the_example_before_asking_slack_anything(
    tmp_path: Path, slack: FakeSlack
) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SLACK_API_URL": slack.api_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("share-image-bot cannot start; fix these settings")
    assert "  - SLACK_BOT_TOKEN is still the placeholder from .env.example: put in" in (done.stderr)
    assert slack.calls() == []
    # Nothing was created or locked either.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_placeholders_are_recognised() -> None:
    for value in ("...", "xoxb-...", "xapp-…", "<your key>", "https://{region}.example"):
        assert is_placeholder(value), value
    for value in ("", "xoxb-1-abc", "AKTEST0123456789", "https://virtualserver.example.com"):
        assert not is_placeholder(value), value


def test_raw_settings_are_read_like_the_bot_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("SCP_ACCESS_KEY=from-file  # a comment\nSCP_SECRET_KEY=...\n")
    monkeypatch.setenv("SCP_ACCESS_KEY", "from-env")

    raw = raw_settings("SCP_ACCESS_KEY", "SCP_SECRET_KEY", "SCP_ACCOUNT_ID")

    access, secret, account = raw.values()
    assert (access.value, access.source, access.dotenv) == (
        "from-env",
        "the environment",
        "from-file",
    )
    assert (secret.value, secret.source, secret.usable) == ("...", ".env", None)
    assert (account.value, account.source, account.usable) == (None, None, None)


# -- on-call rotas ------------------------------------------------------------------------------


def test_oncall_settings_accept_small_refresh_times_and_a_rota_per_source() -> None:
    settings = load_settings(
        **GOOD,
        ONCALL_PAGERDUTY_TOKEN="u+pd-read-only-key",
        ONCALL_PAGERDUTY_SCHEDULES=" PSCHED1, PTEAM02,PSCHED1 ",
        ONCALL_PAGERDUTY_URL="http://127.0.0.1:9/",
        ONCALL_ICAL_URL="webcal://calendar.example.com/rota.ics?key=private",
        ONCALL_REFRESH_SECONDS="5",
    )

    assert settings.pagerduty_schedules == ["PSCHED1", "PTEAM02"]
    assert settings.ONCALL_PAGERDUTY_URL == "http://127.0.0.1:9"
    assert settings.ONCALL_ICAL_URL is not None
    assert settings.ONCALL_ICAL_URL.get_secret_value() == (
        "https://calendar.example.com/rota.ics?key=private"
    )
    assert settings.ONCALL_REFRESH_SECONDS == 5
    defaults = load_settings(**GOOD)
    assert (defaults.ONCALL_PAGERDUTY_TOKEN, defaults.ONCALL_ICAL_URL) == (None, None)
    assert defaults.ONCALL_REFRESH_SECONDS == 300
    assert defaults.ONCALL_PAGERDUTY_URL == "https://api.pagerduty.com"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"ONCALL_REFRESH_SECONDS": "4"},
            "ONCALL_REFRESH_SECONDS is invalid: Input should be greater than or equal to 5",
        ),
        (
            {"ONCALL_PAGERDUTY_SCHEDULES": "PSCHED1"},
            "ONCALL_PAGERDUTY_SCHEDULES is set but ONCALL_PAGERDUTY_TOKEN is not: PagerDuty"
            " answers nothing without a REST API key",
        ),
        (
            {"ONCALL_PAGERDUTY_TOKEN": "k", "ONCALL_PAGERDUTY_SCHEDULES": "PSCHED1,#oncall"},
            "ONCALL_PAGERDUTY_SCHEDULES has '#oncall', which is not a PagerDuty schedule id:"
            " give ids like P1ABCDE, comma-separated (a schedule's id ends its address in"
            " PagerDuty)",
        ),
        (
            {"ONCALL_PAGERDUTY_TOKEN": "..."},
            "ONCALL_PAGERDUTY_TOKEN is still the placeholder from .env.example: put in a"
            " PagerDuty REST API key (Integrations → API Access Keys; a read-only key is"
            " enough), or leave it empty",
        ),
        (
            {"ONCALL_PAGERDUTY_URL": "api.pagerduty.com"},
            "ONCALL_PAGERDUTY_URL must be an http:// or https:// URL, like"
            " https://api.pagerduty.com",
        ),
        (
            {"ONCALL_ICAL_URL": "ftp://calendar.example.com/rota.ics?key=s3cret-feed"},
            "ONCALL_ICAL_URL must be the feed's http:// or https:// (or webcal://) address",
        ),
    ],
)
def test_bad_oncall_settings_are_refused_and_named(changes: dict[str, str], message: str) -> None:
    assert problems(**changes) == [message]


def test_no_setting_leaks_into_the_tests_from_the_machine() -> None:
    from bot.settings import Settings
    from tests.conftest import SETTING_PREFIXES

    assert [name for name in Settings.model_fields if not name.startswith(SETTING_PREFIXES)] == []


def test_every_setting_is_in_the_readme_and_an_ignored_one_is_not_suggested() -> None:
    from bot.settings import Settings

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    for name in Settings.model_fields:
        assert [row for row in rows if f"`{name}`" in row.split(" | ")[0]], name
    # Accepted so that an old .env starts, documented as doing nothing, never suggested.
    assert "| `BOT_WORKER_RECYCLE_MB` | empty | does nothing now" in readme
    assert "BOT_WORKER_RECYCLE_MB" not in example
