"""`check`'s explanations, in-process: Slack failures and the cloud API version's levels."""

from __future__ import annotations

import urllib.error
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.check import SCOPES, run_check, slack_trouble
from bot.scp.models import ApiVersion
from bot.scp.sandbox import Sandbox
from bot.services import make_web_client
from bot.sharing.values import Role
from storage import Database, Grants
from tests.fakes.slack import FakeSlack
from tests.harness import settings_for

URL = "https://slack.com/api/auth.test"


def slack_error(status: int, data: dict[str, Any]) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url=URL,
        req_args={},
        data=data,
        headers={},
        status_code=status,
    )
    return SlackApiError("refused", response)


@pytest.mark.parametrize(
    ("error", "code", "answer", "advice"),
    [
        (
            slack_error(200, {"ok": False, "error": "not_authed"}),
            "not_authed",
            "HTTP 200, Slack error not_authed",
            "no token reached Slack: SLACK_BOT_TOKEN is empty, or a proxy dropped the"
            " Authorization header",
        ),
        (
            slack_error(200, {"ok": False, "error": "account_inactive"}),
            "account_inactive",
            "HTTP 200, Slack error account_inactive",
            "the app was uninstalled or its bot deactivated: reinstall the app to the workspace"
            " and copy the new token into SLACK_BOT_TOKEN",
        ),
        (
            slack_error(200, {"ok": False, "error": "missing_scope", "needed": "channels:read"}),
            "missing_scope",
            "HTTP 200, Slack error missing_scope",
            "the token lacks a scope (channels:read): add it under OAuth & Permissions (or in"
            " manifest.yml) and reinstall the app",
        ),
        (
            slack_error(429, {"ok": False, "error": "ratelimited"}),
            "ratelimited",
            "HTTP 429, Slack error ratelimited",
            "Slack is rate-limiting this app: wait a minute and run check again",
        ),
        (
            slack_error(200, {"ok": False, "error": "something_new"}),
            "something_new",
            "HTTP 200, Slack error something_new",
            "see https://api.slack.com/methods/auth.test#errors for something_new",
        ),
        (
            slack_error(503, {"ok": False, "error": "Received a response in a non-JSON format"}),
            "HTTP 503",
            "HTTP 503, not a Slack answer",
            "Slack is having trouble: see https://slack-status.com, then try again",
        ),
        (
            urllib.error.URLError(TimeoutError("timed out")),
            "unreachable",
            "no answer (no answer within 10 s)",
            "check SLACK_API_URL, the network and any proxy (HTTPS_PROXY) between here and Slack",
        ),
        (
            urllib.error.URLError("[Errno -2] Name or service not known"),
            "unreachable",
            "no answer ([Errno -2] Name or service not known)",
            "check SLACK_API_URL, the network and any proxy (HTTPS_PROXY) between here and Slack",
        ),
    ],
)
def test_each_slack_failure_is_explained(
    error: Exception, code: str, answer: str, advice: str
) -> None:
    trouble = slack_trouble(error, URL, setting="SLACK_BOT_TOKEN")

    assert (trouble.code, trouble.tried, trouble.answer, trouble.advice) == (
        code,
        URL,
        answer,
        advice,
    )
    assert trouble.lines() == [
        f"    tried:  {URL}",
        f"    answer: {answer}",
        f"    do:     {advice}",
    ]


def checked(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path, today: date, **settings: Any
) -> tuple[int, list[str]]:
    values = settings_for(slack, sandbox.url, tmp_path, SHARE_APPROVAL_CHANNEL="", **settings)
    database = Database(values.DATABASE_PATH)
    Grants(database).grant("UADMIN", Role.ADMIN, by="test")
    database.close()
    lines: list[str] = []
    code = run_check(values, slack=make_web_client(values), echo=lines.append, today=today)
    return code, [line for line in lines if line.startswith("[")]


@pytest.mark.parametrize(
    ("version", "today", "code", "line"),
    [
        ("1.3", date(2026, 12, 1), 0, "[ok] cloud API version: 1.3 (CURRENT); served: 1.3, 1.1"),
        (
            "1.1",
            date(2026, 8, 1),
            0,
            "[WARN] cloud API version: version 1.1 is DEPRECATED (served at least until"
            " 2026-08-31); the CURRENT version is 1.3 (set SCP_API_VERSION=1.3);"
            " served: 1.3, 1.1",
        ),
        (
            "1.1",
            date(2026, 12, 1),
            0,
            "[WARN] cloud API version: MAY STOP WORKING ANY DAY: version 1.1 is DEPRECATED and"
            " its minimum support date, 2026-08-31, has passed: it may stop being served any"
            " day; the CURRENT version is 1.3 (set SCP_API_VERSION=1.3); served: 1.3, 1.1",
        ),
        (
            "1.0",
            date(2026, 12, 1),
            1,
            "[FAIL] cloud API version: version 1.0 is not served; the CURRENT version is 1.3"
            " (set SCP_API_VERSION=1.3); served: 1.3, 1.1",
        ),
    ],
    ids=["current", "deprecated", "past its date", "not served"],
)
def test_the_three_levels_of_a_version(
    slack: FakeSlack,
    sandbox: Sandbox,
    tmp_path: Path,
    version: str,
    today: date,
    code: int,
    line: str,
) -> None:
    sandbox.versions = [
        ApiVersion(id="v1.3", status="CURRENT", not_before="2026-03-01"),
        ApiVersion(id="v1.1", status="DEPRECATED", not_before="2026-08-31"),
    ]

    status, lines = checked(slack, sandbox, tmp_path, today, SCP_API_VERSION=version)

    assert status == code
    assert [x for x in lines if "cloud API version" in x] == [line]


def test_the_manifest_asks_for_every_scope_the_bot_calls_for() -> None:
    # Each Web API method the bot calls, with the bot scope Slack requires for it.
    needed = {
        "chat.postMessage": "chat:write",
        "users.info": "users:read",
        "conversations.info": "channels:read",  # check, public channels
        "conversations.info (private)": "groups:read",  # check, private channels
    }
    manifest = (Path(__file__).parent.parent / "manifest.yml").read_text(encoding="utf-8")
    scopes = manifest.split("scopes:", 1)[1].split("settings:", 1)[0]
    listed = {line.split("#")[0].strip(" -") for line in scopes.splitlines()}
    missing = {method: scope for method, scope in needed.items() if scope not in listed}
    assert missing == {}


def test_check_says_which_scopes_the_token_lacks_and_what_each_is_for(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    slack.scopes = {
        "commands",
        "chat:write",
        "im:write",
        "users:read",
        "users:read.email",
        "channels:read",
    }

    status, lines = checked(slack, sandbox, tmp_path, date(2026, 12, 1))

    assert status == 0  # a warning: the bot runs, with less
    assert [x for x in lines if "Slack scopes" in x] == [
        "[WARN] Slack scopes: the token lacks groups:read, channels:history, groups:history,"
        " im:history, mpim:history"
    ]


def test_check_is_content_with_every_scope_the_manifest_asks_for(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    manifest = (Path(__file__).parent.parent / "manifest.yml").read_text(encoding="utf-8")
    scopes = manifest.split("scopes:", 1)[1].split("bot:", 1)[1].split("settings:", 1)[0]
    listed = {line.split("#")[0].strip(" -") for line in scopes.splitlines()} - {""}
    assert listed == set(SCOPES)  # the check and the manifest name the same scopes
    slack.scopes = listed

    _, lines = checked(slack, sandbox, tmp_path, date(2026, 12, 1))

    assert "[ok] Slack scopes: all 11 the bot uses" in lines


def test_a_recycle_setting_left_in_the_env_is_one_warning_saying_it_does_nothing(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    values = settings_for(slack, sandbox.url, tmp_path, SHARE_APPROVAL_CHANNEL="")
    lines: list[str] = []
    run_check(values, slack=make_web_client(values), echo=lines.append)
    assert [line.split() for line in lines if "RECYCLE" in line] == [
        ["BOT_WORKER_RECYCLE_MB", "(empty)"]
    ]

    values = settings_for(
        slack, sandbox.url, tmp_path, SHARE_APPROVAL_CHANNEL="", BOT_WORKER_RECYCLE_MB=8
    )
    lines = []
    status = run_check(values, slack=make_web_client(values), echo=lines.append)

    assert status == 0
    assert [line for line in lines if "RECYCLE" in line] == [
        "  BOT_WORKER_RECYCLE_MB        8 (ignored)",
        "[WARN] BOT_WORKER_RECYCLE_MB: does nothing now (the worker runs in the bot's one"
        " process and is never replaced): remove it from the settings",
    ]
