"""One administration grammar: Slack's `admin …` and the command line's admin commands
read their values into the same typed commands, run them through the same dispatcher,
and say the outcome in the catalogs' words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sharing import commands
from bot.sharing.commands import Admin
from bot.sharing.errors import CommandError
from bot.slack import texts
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, BotHarness

ROOT = Path(__file__).resolve().parents[1]
OTHER = "0b1c2d3e-0000-4000-8000-000000000001"
CLI = commands.user_id

# The same command typed in Slack, and built from the command line's values.
SAME = [
    pytest.param(
        f"admin grant <@U123|jane> SHARER {IMAGE.upper()}",
        lambda: commands.role_change("grant", "U123", "sharer", IMAGE.upper(), person=CLI),
        id="grant",
    ),
    pytest.param(
        "admin revoke <@U123> admin",
        lambda: commands.role_change("revoke", "U123", "admin", None, person=CLI),
        id="revoke",
    ),
    pytest.param(
        "admin member add m-1 QA   account",
        lambda: commands.member_add("m-1", "  QA   account "),
        id="member add",
    ),
    pytest.param(
        "admin oncall add <@U99> 2099-01-01T09:00+09:00 2099-01-01T18:00+09:00",
        lambda: commands.shift_add(
            "U99", "2099-01-01T09:00+09:00", "2099-01-01T18:00+09:00", zone=UTC, person=CLI
        ),
        id="oncall add",
    ),
    pytest.param(
        "admin oncall remove #12",
        lambda: commands.shift_removal("12", [], person=CLI),
        id="oncall remove id",
    ),
    pytest.param(
        "admin oncall remove <@U99> --all",
        lambda: commands.shift_removal("U99", ["--all"], person=CLI),
        id="oncall remove all",
    ),
    pytest.param(
        "admin oncall list ALL",
        lambda: commands.shift_listing(["all"]),
        id="oncall list all",
    ),
    pytest.param(
        f"admin oncall schedule {IMAGE} none",
        lambda: commands.schedule_change(IMAGE, "none"),
        id="oncall schedule",
    ),
    pytest.param(
        f"admin policy {IMAGE} approvals 2",
        lambda: commands.approvals_change([IMAGE, "approvals", "2"]),
        id="policy",
    ),
    pytest.param("admin policy list", lambda: commands.approvals_change(["list"]), id="policies"),
]


@pytest.mark.parametrize(("typed", "built"), SAME)
def test_slack_and_the_command_line_build_the_same_command(
    typed: str, built: Callable[[], Admin]
) -> None:
    assert commands.parse(typed) == built()


# The same bad value refused the same way (by the same key), wherever it is typed.
REFUSED = [
    pytest.param(
        "admin grant <@U11> boss",
        lambda: commands.role_change("grant", "U11", "boss", None, person=CLI),
        "role_invalid",
        id="role",
    ),
    pytest.param(
        "admin member add a8f1\u200b0467 QA",
        lambda: commands.member_add("a8f1\u200b0467", "QA"),
        "member_id_not_ascii",
        id="invisible in an id",
    ),
    pytest.param(
        "admin oncall add <@U99> 2099-01-01T09:00Z 2199-01-01T09:00Z",
        lambda: commands.shift_add(
            "U99", "2099-01-01T09:00Z", "2199-01-01T09:00Z", zone=UTC, person=CLI
        ),
        "shift_too_long",
        id="a century-long shift",
    ),
    pytest.param(
        "admin oncall remove 12 --all",
        lambda: commands.shift_removal("12", ["--all"], person=CLI),
        "oncall_all_with_id",
        id="--all with an id",
    ),
    pytest.param(
        "admin oncall list everything",
        lambda: commands.shift_listing(["everything"]),
        "oncall_list_extra",
        id="oncall list junk",
    ),
    pytest.param(
        "admin policy list all",
        lambda: commands.approvals_change(["list", "all"]),
        "policy_list_extra",
        id="policy list junk",
    ),
]


@pytest.mark.parametrize(("typed", "built", "problem"), REFUSED)
def test_slack_and_the_command_line_refuse_alike(
    typed: str, built: Callable[[], Admin], problem: str
) -> None:
    with pytest.raises(CommandError) as in_slack:
        commands.parse(typed)
    with pytest.raises(CommandError) as on_the_command_line:
        built()
    assert in_slack.value.problem == on_the_command_line.value.problem == problem


def test_a_shift_already_over_is_refused_by_the_builder_given_the_time() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(CommandError) as caught:
        commands.shift_add(
            "U99", "2020-01-01T09:00", "2020-01-01T17:00", zone=UTC, person=CLI, now=now
        )
    assert caught.value.problem == "shift_ended"


# -- the catalogs -----------------------------------------------------------------------------


def test_every_key_the_command_line_says_is_in_a_catalog() -> None:
    english = texts.catalog("en")
    source = (ROOT / "bot" / "console.py").read_text()
    said = set(re.findall(r"\bsay\(\s*\"(\w+)\"", source))
    said |= {f"account_{kind}" for kind in ("unknown", "bot", "deleted", "unchecked")}
    said |= {"rota_pagerduty", "rota_calendar"}
    assert len(said) > 30, "the scan found too few keys"
    assert sorted(k for k in said if k not in english.cli and k not in english.texts) == []


def test_a_slack_text_is_said_plain_on_the_command_line() -> None:
    # No [cli] entry: the Slack text without its markup (mentions, code).
    assert "user_is_bot" not in texts.catalog("en").cli
    assert texts.cli_say("en", "user_is_bot", user="U1") == (
        "U1 is a bot or an app, not a person, so nothing changed: roles and shifts are for people."
    )
    assert texts.cli_say("en", "time_invalid", token="'x'") == (
        "'x' is not a time. Use ISO 8601, like 2026-12-01T09:00+09:00."
    )


# -- Slack, end to end: what one grammar fixed there too ----------------------------------------


def test_slack_says_where_a_role_is_held_that_a_revoke_did_not_take_back(
    bot: BotHarness, slack: FakeSlack
) -> None:
    slack.add_user("UJANE")
    bot.ack_text(f"admin grant <@UJANE> sharer {IMAGE}", user="UADMIN")
    bot.ack_text(f"admin grant <@UJANE> sharer {OTHER}", user="UADMIN")

    said = bot.ack_text("admin revoke <@UJANE> sharer", user="UADMIN")

    images = sorted([IMAGE, OTHER])
    assert said == (
        "<@UJANE> wasn't sharer for all images. They are sharer only for"
        f" `{images[0]}`, `{images[1]}`: take that back with"
        f" `/share-image admin revoke <@UJANE> sharer {images[0]}` (one command per image)."
    )
    assert sorted(g.image_id for g in bot.services.grants.all() if g.user_id == "UJANE") == images
    bot.ack_text("admin grant <@UJANE> approver", user="UADMIN")
    assert bot.ack_text(f"admin revoke <@UJANE> approver {IMAGE}", user="UADMIN") == (
        f"<@UJANE> wasn't approver for `{IMAGE}`. They are approver for all images, which"
        " naming one image does not take back: `/share-image admin revoke <@UJANE> approver`"
        " does."
    )


def test_slack_lists_the_images_that_need_two_approvals(bot: BotHarness) -> None:
    assert bot.ack_text("admin policy list", user="UADMIN") == (
        "No image needs more than one approval."
    )
    bot.ack_text(f"admin policy {IMAGE} approvals 2", user="UADMIN")

    assert bot.ack_text("admin policy list", user="UADMIN") == (
        f"Images whose shares need two approvals:\n• `{IMAGE}`: 2 approvals"
    )


def test_slack_says_all_goes_with_a_person(bot: BotHarness, slack: FakeSlack) -> None:
    slack.add_user("UJANE")
    bot.ack_text("admin oncall add <@UJANE> 2099-01-01T00:00Z 2099-01-02T00:00Z", user="UADMIN")
    [shift] = bot.services.oncall.all()

    said = bot.ack_text(f"admin oncall remove {shift.id} --all", user="UADMIN")

    assert said.startswith(
        f"`--all` goes with a person, not with a shift id: `/share-image admin oncall remove"
        f" {shift.id}` removes that one shift."
    )
    assert bot.services.oncall.all() == [shift]


@pytest.mark.parametrize(
    ("window", "said"),
    [
        pytest.param(
            "2020-01-01T09:00Z 2020-01-01T17:00Z",
            "That shift is over already (it ends before now), so it was not added."
            " Check the dates and the year.",
            id="wholly in the past",
        ),
        pytest.param(
            "2099-01-01T09:00Z 2199-01-01T09:00Z",
            "A shift can last at most 31 days, and this one is longer, so it was not added."
            " Add it as shorter shifts (a long rota is better read from PagerDuty or a"
            " calendar).",
            id="a hundred years",
        ),
    ],
)
def test_slack_refuses_a_past_or_endless_shift_as_the_command_line_does(
    bot: BotHarness, slack: FakeSlack, window: str, said: str
) -> None:
    slack.add_user("UJANE")

    answer = bot.ack_text(f"admin oncall add <@UJANE> {window}", user="UADMIN")

    # The same words; Slack may add its usage under them.
    assert answer.split("\n")[0] == said
    assert bot.services.oncall.all() == []
    # Refused before Slack is asked who UJANE is.
    assert slack.calls("users.info") == []


def test_a_lone_surrogate_is_not_text() -> None:
    # What a command line's byte that is not UTF-8 becomes, or JSON's `\udcff`: no
    # name or reason can be stored or sent with one.
    with pytest.raises(CommandError) as caught:
        commands.member_add("m-1", "QA\udcff")
    assert caught.value.problem == "name_invisible"
    with pytest.raises(CommandError) as caught:
        commands.reason("because\ud800")
    assert caught.value.problem == "reason_invisible"


# -- the command line in BOT_DEFAULT_LANGUAGE ----------------------------------------------------


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            "USER": "ops",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_speaks_the_default_language(tmp_path: Path) -> None:
    korean = {"BOT_DEFAULT_LANGUAGE": "ko"}

    assert _cli(tmp_path, "grants", **korean).stdout == "아직 권한이 없습니다\n"
    assert _cli(tmp_path, "grant", "U123", "sharer", **korean).stdout == (
        "U123 님이 이제 모든 이미지의 sharer입니다\n"
    )
    refused = _cli(tmp_path, "grant", "U123", "boss", **korean)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr == (
        "'boss'은(는) 역할이 아닙니다. 역할: requester, sharer, approver, admin.\n"
    )
    # Listings are data: the same columns in every language.
    [row] = _cli(tmp_path, "grants", **korean).stdout.splitlines()
    assert row.split("\t")[:3] == ["U123", "sharer", "all images"]
    # A language the bot does not speak: English.
    assert _cli(tmp_path, "grant", "U123", "sharer", BOT_DEFAULT_LANGUAGE="xx").stdout == (
        "U123 already was sharer for all images\n"
    )
