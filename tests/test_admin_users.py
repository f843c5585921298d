"""From Slack a user is a mention Slack resolved, and a person Slack knows; the CLI warns."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.admin import Account
from bot.slack.accounts import slack_account
from tests.fakes.slack import FakeSlack
from tests.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]
BARE = "is a bare word, not a mention: mention the person (type @ and pick them from the list)"


@pytest.mark.parametrize("typed", ["U0LOWER", "USLACKBOT", "W0ENTERPRISE"])
def test_a_bare_word_is_not_a_user(bot: BotHarness, slack: FakeSlack, typed: str) -> None:
    text = bot.ack_text(f"admin grant {typed} sharer", user="UADMIN")

    assert text.startswith(f"`{typed}` {BARE}, like @jane.")
    assert [g.user_id for g in bot.services.grants.all()] == ["U1", "UADMIN"]
    assert slack.calls("users.info") == []  # refused before anything is asked


@pytest.mark.parametrize(
    ("setup", "mention", "said"),
    [
        ({}, "<@UNOBODY>", "Slack knows no user `UNOBODY`, so nothing changed"),
        ({"is_bot": True}, "<@UROBOT|robot>", "<@UROBOT> is a bot or an app, not a person"),
        ({"deleted": True}, "<@UGONE>", "<@UGONE> is a deactivated account, so nothing changed"),
        (None, "<@USLACKBOT>", "<@USLACKBOT> is a bot or an app, not a person"),
    ],
    ids=["unknown", "bot", "deleted", "slackbot"],
)
def test_only_people_slack_knows_get_roles_or_shifts(
    bot: BotHarness, slack: FakeSlack, setup: dict[str, bool] | None, mention: str, said: str
) -> None:
    user = mention[2:].split("|")[0].rstrip(">")
    if setup:
        slack.add_user(user, **setup)

    granted = bot.ack_text(f"admin grant {mention} sharer", user="UADMIN")
    shift = bot.ack_text(
        f"admin oncall add {mention} 2099-01-01T00:00Z 2099-01-02T00:00Z", user="UADMIN"
    )

    assert granted.startswith(said) and shift.startswith(said)
    assert user not in {g.user_id for g in bot.services.grants.all()}
    assert bot.services.oncall.all() == []
    audit = bot.database.read(lambda db: list(db.table("audit").rows))
    assert [a for a in audit if a["actor"] == "UADMIN"] == []


def test_a_person_slack_knows_is_granted(bot: BotHarness, slack: FakeSlack) -> None:
    slack.add_user("UJANE", name="jane")
    assert bot.ack_text("admin grant <@UJANE|jane> sharer", user="UADMIN") == (
        "<@UJANE> is now sharer for all images."
    )
    [asked] = slack.calls("users.info")
    assert asked.args["user"] == "UJANE"


def test_a_grant_waits_for_slack_to_answer(bot: BotHarness, slack: FakeSlack) -> None:
    slack.add_user("UJANE")
    slack.fail("users.info", "internal_error", times=5)

    text = bot.ack_text("admin grant <@UJANE> sharer", user="UADMIN")

    assert text.startswith("I couldn't ask Slack whether <@UJANE> exists, so nothing changed")
    assert "UJANE" not in {g.user_id for g in bot.services.grants.all()}


def test_the_fake_slack_knows_only_its_users(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    slack.add_user("UJANE")
    slack.add_user("UROBOT", is_bot=True)
    slack.add_user("UGONE", deleted=True)

    async def accounts() -> list[Account]:
        return [await slack_account(client, u) for u in ("UJANE", "UROBOT", "UGONE", "UNOBODY")]

    assert asyncio.run(accounts()) == [
        Account.PERSON,
        Account.BOT,
        Account.DELETED,
        Account.UNKNOWN,
    ]


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_takes_an_id_and_warns_when_slack_does_not_know_it(
    tmp_path: Path, slack: FakeSlack
) -> None:
    reach = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
    slack.add_user("UJANE")

    known = cli(tmp_path, "grant", "UJANE", "sharer", **reach)
    unknown = cli(tmp_path, "grant", "U0LOWER", "sharer", **reach)
    offline = cli(tmp_path, "grant", "U0OTHER", "sharer")

    assert known.returncode == 0 and "warning" not in known.stderr
    assert unknown.returncode == 0
    assert unknown.stdout == "U0LOWER is now sharer for all images\n"
    assert (
        "warning: Slack knows no user U0LOWER (users.info: user_not_found): check the id"
        " (their profile: ⋮ → Copy member ID); done anyway, as asked"
    ) in unknown.stderr
    assert "ention" not in unknown.stderr
    assert offline.returncode == 0 and "warning" not in offline.stderr
    listed = cli(tmp_path, "grants").stdout
    assert "UJANE\tsharer" in listed and "U0LOWER\tsharer" in listed
