"""On-call times in BOT_TIMEZONE, no identical shift twice, removal by shift id or --all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.settings import SettingsError
from bot.sharing.values import Role
from tests.fakes.slack import FakeSlack
from tests.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]


def test_a_bad_time_zone_is_refused_at_start_naming_the_setting(
    make_bot: Callable[..., BotHarness],
) -> None:
    with pytest.raises(SettingsError) as refused:
        make_bot(BOT_TIMEZONE="Mars/Olympus")
    assert refused.value.problems == [
        "BOT_TIMEZONE is not an IANA time zone name: give one like UTC, Asia/Seoul or Europe/Berlin"
    ]


def test_times_are_read_and_shown_in_bot_timezone(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot(BOT_TIMEZONE="Asia/Seoul")
    bot.grant("UADMIN", Role.ADMIN)
    slack.add_user("UJANE")

    added = bot.ack_text(
        "admin oncall add <@UJANE> 2030-01-01T09:00 2030-01-01T18:00+01:00", user="UADMIN"
    )

    assert added == (
        "<@UJANE> is on call from 2030-01-01 09:00 Asia/Seoul"
        " to 2030-01-02 02:00 Asia/Seoul (2030-01-01T18:00+01:00)."
    )
    [shift] = bot.services.oncall.all()
    assert (shift.starts_at, shift.ends_at) == (
        "2030-01-01T00:00:00.000000Z",
        "2030-01-01T17:00:00.000000Z",
    )
    listed = bot.ack_text("admin oncall list", user="UADMIN")
    assert f"#{shift.id} <@UJANE>: 2030-01-01 09:00 Asia/Seoul → 2030-01-02 02:00 Asia/Seoul" in (
        listed
    )


def test_an_identical_shift_is_refused(bot: BotHarness, slack: FakeSlack) -> None:
    slack.add_user("UJANE")
    text = "admin oncall add <@UJANE> 2030-01-01T09:00Z 2030-01-01T18:00Z"
    assert bot.ack_text(text, user="UADMIN").startswith("<@UJANE> is on call")

    again = bot.ack_text(
        "admin oncall add <@UJANE> 2030-01-01T18:00+09:00 2030-01-02T03:00+09:00", user="UADMIN"
    )

    assert again == "`UJANE` has that very shift already; nothing changed."
    assert len(bot.services.oncall.all()) == 1


def test_a_shift_is_removed_by_its_id_or_all_of_a_users_with_all(
    bot: BotHarness, slack: FakeSlack
) -> None:
    slack.add_user("UJANE")
    for day in ("01", "02", "03"):
        bot.ack_text(
            f"admin oncall add <@UJANE> 2030-01-{day}T09:00Z 2030-01-{day}T18:00Z", user="UADMIN"
        )
    first, second, third = bot.services.oncall.all()

    assert bot.ack_text(f"admin oncall remove {second.id}", user="UADMIN") == (
        f"Removed shift #{second.id} of <@UJANE> (2030-01-02 09:00 UTC → 2030-01-02 18:00 UTC)."
    )
    assert bot.ack_text(f"admin oncall remove #{second.id}", user="UADMIN").startswith(
        f"There is no shift #{second.id};"
    )
    which = bot.ack_text("admin oncall remove <@UJANE>", user="UADMIN")
    assert which.startswith("Which shift of <@UJANE>? Give its id")
    assert [s.id for s in bot.services.oncall.all()] == [first.id, third.id]

    assert bot.ack_text("admin oncall remove <@UJANE> --all", user="UADMIN") == (
        "Removed 2 shift(s) of <@UJANE>."
    )
    assert bot.services.oncall.all() == []


def test_the_cli_reads_times_in_bot_timezone(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "BOT_TIMEZONE": "Asia/Seoul",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cli("oncall", "add", "U99", "--from", "2030-01-01T09:00", "--to", "2030-01-01T18:00")
    twice = cli("oncall", "add", "U99", "--from", "2030-01-01T09:00", "--to", "2030-01-01T18:00")
    listed = cli("oncall", "list")
    env["BOT_TIMEZONE"] = "Nowhere/Land"
    bad = cli("oncall", "list")

    assert (
        added.stdout == "#1 U99 on call 2030-01-01 09:00 Asia/Seoul → 2030-01-01 18:00 Asia/Seoul\n"
    )
    assert twice.returncode != 0 and "has that very shift already" in twice.stderr
    assert listed.stdout == "1\tU99\t2030-01-01 09:00 Asia/Seoul\t2030-01-01 18:00 Asia/Seoul\n"
    assert bad.returncode != 0 and bad.stderr.startswith("BOT_TIMEZONE is not an IANA time zone")
