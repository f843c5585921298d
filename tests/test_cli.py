"""`python -m bot` as an operator runs it: admin commands, missing settings, `check`.

Every test runs the real entry point and looks only at what the operator sees: the exit
status, stdout and stderr. The admin commands are called in this process, as
`python -m bot` calls them (tests/command_line.py: the same environment, folder, output
and exit status), except in the tests marked `subprocess`, which start the process for
each command and outcome: grant, revoke and grants, member, a refusal, a new database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import _SlackAccounts
from bot.cli import parser as cli_parser
from bot.scp.models import ApiVersion
from bot.scp.sandbox import Sandbox
from bot.settings import Settings
from bot.sharing.admin import Account
from bot.sharing.values import RotaEntry
from storage import AuditLog, Database, Rota
from tests import command_line
from tests.fakes.slack import FakeSlack
from tests.harness import ACCESS_KEY, IMAGE, SECRET_KEY, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SCP_ENDPOINT",
    "SCP_ACCESS_KEY",
    "SCP_SECRET_KEY",
)


@dataclass(frozen=True)
class Run:
    """What one `python -m bot ...` printed and how it ended."""

    code: int
    out: str
    err: str
    # The DATABASE_PATH it ran with, and whether that file existed before it ran.
    database: Path = Path()
    existed: bool = True

    @property
    def printed(self) -> str:
        return self.out + self.err

    @property
    def database_line(self) -> str:
        """What an admin command says on stderr about the database it used."""
        path = self.database.absolute()
        if self.existed:
            return f"using the database {path}\n"
        return (
            f"created a NEW, EMPTY database at {path}: if you expected grants, members or"
            " shifts, this is the wrong folder or the wrong DATABASE_PATH\n"
        )


@pytest.fixture
def cli(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """Run `python -m bot *args` in tmp_path with its own database and only `env` settings.

    An admin command is called in this process (tests/command_line.py), the rest start
    the process; a test marked `subprocess` starts it for every command."""
    real = request.node.get_closest_marker("subprocess") is not None

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        environment = {
            **os.environ,  # already cleaned of settings by the autouse fixture
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            "USER": "ops",
            **(env or {}),
        }
        database = tmp_path / environment["DATABASE_PATH"]
        existed = database.exists()
        done = command_line.run(args, environment, tmp_path, timeout=60, subprocess=real)
        return Run(done.returncode, done.stdout, done.stderr, database, existed)

    return run


def ok(run: Run) -> str:
    """A successful admin command: status 0, and stderr names the database, nothing else."""
    assert run.code == 0, run
    assert run.err == run.database_line, run
    return run.out


def one_line_failure(run: Run) -> str:
    """A failed admin command: non-zero, one line on stderr, nothing on stdout, no traceback."""
    assert run.code != 0, run
    assert run.out == "", run
    assert "Traceback" not in run.err, run
    assert run.err.endswith("\n") and run.err.count("\n") == 1, run
    return run.err.strip()


# -- grants ---------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_grant_list_and_revoke(cli: Any) -> None:
    assert ok(cli("grant", "U123", "sharer")) == "U123 is now sharer for all images\n"
    assert ok(cli("grant", "U123", "approver", "--image", IMAGE)) == (
        f"U123 is now approver for {IMAGE}\n"
    )
    assert ok(cli("grant", "<@U456|jane>", "ADMIN")) == "U456 is now admin for all images\n"

    listed = ok(cli("grants")).splitlines()
    assert [line.split("\t")[:3] for line in listed] == [
        ["U123", "approver", IMAGE],
        ["U123", "sharer", "all images"],
        ["U456", "admin", "all images"],
    ]
    assert all(line.split("\t")[3].startswith("by cli:ops at ") for line in listed)

    assert ok(cli("revoke", "U123", "sharer")) == "U123 is no longer sharer for all images\n"
    assert [line.split("\t")[:3] for line in ok(cli("grants")).splitlines()] == [
        ["U123", "approver", IMAGE],
        ["U456", "admin", "all images"],
    ]


def test_granting_twice_and_revoking_what_is_not_held_say_so(cli: Any) -> None:
    ok(cli("grant", "U123", "sharer"))

    assert ok(cli("grant", "U123", "sharer")) == "U123 already was sharer for all images\n"
    assert ok(cli("revoke", "U123", "approver")) == "U123 was not approver for all images\n"
    # A role for all images is not revoked by naming one image.
    assert ok(cli("revoke", "U123", "sharer", "--image", IMAGE)) == (
        f"U123 was not sharer for {IMAGE}; they are sharer for all images, which an --image"
        " does not take back: `python -m bot revoke U123 sharer` does\n"
    )
    assert len(ok(cli("grants")).splitlines()) == 1


def test_revoking_for_all_images_a_role_held_for_one_says_how_to_revoke_it(cli: Any) -> None:
    other = "0b1c2d3e-0000-4000-8000-000000000001"
    ok(cli("grant", "U123", "sharer", "--image", IMAGE))

    assert ok(cli("revoke", "U123", "sharer")) == (
        f"U123 was not sharer for all images; they are sharer only for image {IMAGE}:"
        f" take that back with `python -m bot revoke U123 sharer --image {IMAGE}`\n"
    )
    ok(cli("grant", "U123", "sharer", "--image", other))
    assert ok(cli("revoke", "U123", "sharer")) == (
        f"U123 was not sharer for all images; they are sharer only for images {other}, {IMAGE}:"
        f" take that back with `python -m bot revoke U123 sharer --image {other}`"
        " (one command per image)\n"
    )
    # Nothing was revoked, and the hint works.
    assert len(ok(cli("grants")).splitlines()) == 2
    assert ok(cli("revoke", "U123", "sharer", "--image", IMAGE)) == (
        f"U123 is no longer sharer for {IMAGE}\n"
    )


def test_an_upper_case_image_id_is_stored_lower_case(cli: Any) -> None:
    ok(cli("grant", "U123", "approver", "--image", IMAGE.upper()))

    [line] = ok(cli("grants")).splitlines()
    assert line.split("\t")[2] == IMAGE
    assert ok(cli("revoke", "U123", "approver", "--image", IMAGE)) == (
        f"U123 is no longer approver for {IMAGE}\n"
    )


def test_an_empty_database_says_no_grants(cli: Any) -> None:
    assert ok(cli("grants")) == "no grants yet\n"


BAD_GRANTS = [
    pytest.param(
        ["grant", "U123", "boss"],
        "'boss' is not a role. Roles: requester, sharer, approver, admin.",
        id="bad role",
    ),
    pytest.param(
        ["grant", "bob", "sharer"],
        "'bob' is not a Slack user id (U… or W…, in their profile: ⋮ → Copy member ID).",
        id="bad user",
    ),
    pytest.param(
        ["grant", "U123", "sharer", "--image", "not-a-uuid"],
        "'not-a-uuid' is not an image id. Image ids are UUIDs like "
        "70a599e0-31e7-49b7-b260-868f441e862b.",
        id="bad image",
    ),
    pytest.param(
        ["revoke", "U123", "sharer", "--image", "70a599e0-31e7-49b7-b260-868f441e862"],
        "'70a599e0-31e7-49b7-b260-868f441e862' is not an image id. Image ids are UUIDs like "
        "70a599e0-31e7-49b7-b260-868f441e862b.",
        id="revoke, short image",
    ),
    pytest.param(
        ["revoke", "U123", "owner"],
        "'owner' is not a role. Roles: requester, sharer, approver, admin.",
        id="revoke, bad role",
        marks=pytest.mark.subprocess,
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_GRANTS)
def test_bad_grants_fail_with_one_clear_line_and_change_nothing(
    cli: Any, args: list[str], message: str
) -> None:
    ok(cli("grant", "U123", "sharer"))
    before = ok(cli("grants"))

    assert one_line_failure(cli(*args)) == message
    assert ok(cli("grants")) == before


@pytest.mark.subprocess
def test_a_missing_argument_is_argparse_usage(cli: Any) -> None:
    run = cli("grant", "U123")

    assert run.code == 2
    assert "usage: python -m bot" in run.err and "Traceback" not in run.err


# -- known members --------------------------------------------------------------------------


@pytest.mark.subprocess
def test_member_add_list_and_remove(cli: Any) -> None:
    assert ok(cli("member", "add", "a8f10467abfc4b87b64614ab36eb9ae4", "--name", "QA account")) == (
        "a8f10467abfc4b87b64614ab36eb9ae4 is known as QA account\n"
    )
    ok(cli("member", "add", "ops-1", "--name", "Ops"))

    # By name.
    assert ok(cli("member", "list")) == "ops-1\tOps\na8f10467abfc4b87b64614ab36eb9ae4\tQA account\n"
    assert ok(cli("member", "remove", "ops-1")) == "removed ops-1\n"
    assert ok(cli("member", "remove", "ops-1")) == "ops-1 was not known\n"
    assert ok(cli("member", "list")) == "a8f10467abfc4b87b64614ab36eb9ae4\tQA account\n"


def test_ids_alike_but_for_case_are_one_member_and_a_second_add_renames_it(cli: Any) -> None:
    upper, lower = "A8F10467ABFC4B87B64614AB36EB9AE4", "a8f10467abfc4b87b64614ab36eb9ae4"
    ok(cli("member", "add", upper, "--name", "QA account"))

    assert ok(cli("member", "add", lower, "--name", "QA team")) == (
        f"{lower} is the known member {upper} (ids alike but for case are one member):"
        " now known as QA team (it was QA account)\n"
    )
    assert ok(cli("member", "list")) == f"{upper}\tQA team\n"
    assert ok(cli("member", "add", upper, "--name", "QA")) == (
        f"{upper} is now known as QA (it was QA team)\n"
    )
    assert ok(cli("member", "remove", lower)) == f"removed {lower}\n"
    assert ok(cli("member", "list")) == "no known members yet\n"


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (
            "bad_id",
            "'bad_id' is not a member id. Member ids are 1 to 64 letters, digits or dashes, "
            "like a8f10467abfc4b87b64614ab36eb9ae4.",
        ),
        ("a" * 65, f"'{'a' * 40}…' is longer than 64 characters, the most a member id can have."),
    ],
)
def test_a_bad_member_id_is_refused(cli: Any, member: str, message: str) -> None:
    assert one_line_failure(cli("member", "add", member, "--name", "x")) == message
    assert "\t" not in ok(cli("member", "list"))  # no rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("member", "add", "a8f1\u200b0467", "--name", "QA"),
            "'a8f1[U+200B]0467' has characters that only look like a member id (non-ASCII or"
            " invisible), the first a U+200B ZERO WIDTH SPACE. Type or paste the plain id.",
        ),
        (
            ("member", "add", "a8f1\u00a00467", "--name", "QA"),
            "'a8f1[U+00A0]0467' has a U+00A0 NO-BREAK SPACE inside, and a member id has no"
            " spaces, so nothing was done. Type the id again, or paste it as plain text.",
        ),
        (
            ("grant", "U12\u200b3", "sharer"),
            "'U12[U+200B ZERO WIDTH SPACE]3' is not a Slack user id (U… or W…, in their"
            " profile: ⋮ → Copy member ID).",
        ),
    ],
)
def test_a_refused_id_names_its_odd_character(
    cli: Any, args: tuple[str, ...], message: str
) -> None:
    run = cli(*args)

    assert one_line_failure(run) == message
    assert "\ufffd" not in run.err


# A byte that is not UTF-8 (a terminal in Latin-1, a paste from a binary file) reaches
# Python as a lone surrogate (`surrogateescape`); it is named as the byte it was.
NOT_UTF8 = os.fsdecode(b"\xff")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("member", "add", f"a8f1{NOT_UTF8}0467", "--name", "QA"),
            "'a8f1[0xFF]0467' has characters that only look like a member id (non-ASCII or"
            " invisible), the first a byte 0xFF (not UTF-8). Type or paste the plain id.",
        ),
        (
            ("grant", f"U12{NOT_UTF8}", "sharer"),
            "'U12[byte 0xFF (not UTF-8)]' is not a Slack user id (U… or W…, in their"
            " profile: ⋮ → Copy member ID).",
        ),
        (
            ("member", "add", "ops-1", "--name", f"QA{NOT_UTF8}"),
            "The name has invisible or control characters; please retype it.",
        ),
    ],
)
def test_a_byte_that_is_not_utf8_is_named_as_that_byte_and_nothing_is_stored(
    cli: Any, args: tuple[str, ...], message: str
) -> None:
    run = cli(*args)

    assert one_line_failure(run) == message
    assert "\ufffd" not in run.err and "DCFF" not in run.err
    assert ok(cli("member", "list")) == "no known members yet\n"
    assert ok(cli("grants")) == "no grants yet\n"


def test_a_name_with_control_characters_is_refused_as_a_name(cli: Any) -> None:
    for name in ("QA\x07account", "QA\u200baccount", "line\nbreak"):
        run = cli("member", "add", "ops-1", "--name", name)

        assert one_line_failure(run) == (
            "The name has invisible or control characters; please retype it."
        )
    assert ok(cli("member", "list")) == "no known members yet\n"


def test_a_long_name_is_refused_with_the_names_limit(cli: Any) -> None:
    assert one_line_failure(cli("member", "add", "ops-1", "--name", "x" * 81)) == (
        "Keep the name under 80 characters."
    )
    assert (
        ok(cli("member", "add", "ops-1", "--name", "x" * 80)) == f"ops-1 is known as {'x' * 80}\n"
    )


# -- the database an admin command used ----------------------------------------------------


@pytest.mark.subprocess
def test_every_admin_command_names_its_database_and_a_new_one_is_called_new(
    cli: Any, tmp_path: Path
) -> None:
    first = cli("grants")

    # Run in the wrong folder, this must not look like "no grants yet" alone.
    assert first.out == "no grants yet\n"
    assert first.err == (
        f"created a NEW, EMPTY database at {tmp_path / 'bot.db'}: if you expected grants,"
        " members or shifts, this is the wrong folder or the wrong DATABASE_PATH\n"
    )
    for args in (
        ["grants"],
        ["grant", "U123", "sharer"],
        ["revoke", "U123", "sharer"],
        ["member", "add", "ops-1", "--name", "Ops"],
        ["member", "list"],
        ["member", "remove", "ops-1"],
        ["oncall", "add", "U99", "--from", "2099-01-01T09:00", "--to", "2099-01-01T17:00"],
        ["oncall", "list"],
        ["oncall", "remove", "U99", "--all"],
    ):
        run = cli(*args)
        assert run.code == 0, run
        assert run.err == f"using the database {tmp_path / 'bot.db'}\n", args


def test_a_relative_database_path_is_shown_absolute(cli: Any, tmp_path: Path) -> None:
    run = cli("grants", env={"DATABASE_PATH": "data/bot.db"})

    assert str(tmp_path / "data" / "bot.db") in run.err and "NEW, EMPTY" in run.err
    assert "NEW" not in cli("grants", env={"DATABASE_PATH": "data/bot.db"}).err


def test_a_refused_command_creates_no_database(cli: Any, tmp_path: Path) -> None:
    one_line_failure(cli("grant", "U123", "boss"))
    one_line_failure(cli("member", "add", "ops-1", "--name", "QA\x07"))

    assert not (tmp_path / "bot.db").exists()


def test_an_empty_image_option_is_refused_not_taken_for_all_images(cli: Any) -> None:
    message = (
        "--image is empty: give an image id (a UUID like 70a599e0-31e7-49b7-b260-868f441e862b),"
        " or leave --image out to mean all images"
    )
    assert one_line_failure(cli("grant", "U123", "sharer", "--image", "")) == message
    assert one_line_failure(cli("grant", "U123", "sharer", "--image", " ")) == message
    ok(cli("grant", "U123", "sharer"))
    assert one_line_failure(cli("revoke", "U123", "sharer", "--image", "")) == message
    [line] = ok(cli("grants")).splitlines()
    assert line.split("\t")[:3] == ["U123", "sharer", "all images"]


# -- help ----------------------------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def test_every_command_has_a_description_and_an_example() -> None:
    found = dict(_commands(cli_parser()))

    assert set(found) >= {
        (),
        ("run",),
        ("serve",),
        ("worker",),
        ("check",),
        ("sandbox",),
        ("grant",),
        ("revoke",),
        ("grants",),
        ("member",),
        ("member", "add"),
        ("member", "remove"),
        ("member", "list"),
        ("oncall",),
        ("oncall", "add"),
        ("oncall", "remove"),
        ("oncall", "list"),
        ("oncall", "schedule"),
    }
    for path, command in found.items():
        assert command.formatter_class is argparse.RawDescriptionHelpFormatter, path
        assert command.description and len(command.description) > 30, path
        assert command.epilog and command.epilog.startswith("examples:\n"), path
        examples = command.epilog.splitlines()[1:]
        assert any(line.strip().startswith("python -m bot") for line in examples), path
        if path:
            assert any(" ".join(path) in line for line in examples), path


def test_help_is_printed_as_written(cli: Any) -> None:
    run = cli("member", "add", "--help")

    assert run.code == 0 and run.err == "", run
    assert run.out.startswith("usage: python -m bot member add")
    assert "Give a member account (1 to 64 letters, digits or dashes) a friendly name:\n" in (
        run.out
    )
    assert run.out.rstrip().endswith(
        'examples:\n  python -m bot member add a8f10467abfc4b87b64614ab36eb9ae4 --name "QA account"'
    )
    versions = cli("sandbox", "--help").out
    assert "--versions LIST_OR_FILE" in versions and "VERSION:STATUS[:NOT_BEFORE]" in versions
    assert "python -m bot sandbox --versions 1.3:CURRENT," in versions


# -- on-call shifts ----------------------------------------------------------------------------


def test_oncall_add_list_and_remove(cli: Any) -> None:
    assert (
        ok(cli("oncall", "add", "U99", "--from", "2099-01-01T09:00", "--to", "2099-01-01T17:00"))
        == "#1 U99 on call 2099-01-01 09:00 UTC → 2099-01-01 17:00 UTC\n"
    )
    ok(
        cli(
            "oncall",
            "add",
            "U77",
            "--from",
            "2099-01-01T09:00+09:00",
            "--to",
            "2099-01-01T18:00+09:00",
        )
    )

    # Listed with their ids in BOT_TIMEZONE (UTC by default), soonest first.
    assert ok(cli("oncall", "list")) == (
        "2\tU77\t2099-01-01 00:00 UTC\t2099-01-01 09:00 UTC\n"
        "1\tU99\t2099-01-01 09:00 UTC\t2099-01-01 17:00 UTC\n"
    )
    assert ok(cli("oncall", "remove", "U99", "--all")) == "removed 1 shift(s)\n"
    assert ok(cli("oncall", "remove", "U99", "--all")) == "removed 0 shift(s)\n"
    assert ok(cli("oncall", "list")) == "2\tU77\t2099-01-01 00:00 UTC\t2099-01-01 09:00 UTC\n"
    assert ok(cli("oncall", "remove", "2")) == (
        "removed shift #2 of U77 (2099-01-01 00:00 UTC → 2099-01-01 09:00 UTC)\n"
    )
    assert ok(cli("oncall", "list")) == "no on-call shifts\n"


def test_oncall_schedule_gives_an_image_its_own_pagerduty_schedule(
    cli: Any, tmp_path: Path
) -> None:
    env = {"ONCALL_PAGERDUTY_TOKEN": "pd-test-key-0123456789"}

    assert ok(cli("oncall", "schedule", IMAGE, "PTEAM02", env=env)) == (
        f"requests for image {IMAGE} ask PagerDuty schedule PTEAM02\n"
    )
    assert ok(cli("oncall", "schedule", IMAGE, "PTEAM03", env=env)) == (
        f"requests for image {IMAGE} ask PagerDuty schedule PTEAM03 (it asked PTEAM02)\n"
    )
    assert ok(cli("oncall", "list")) == (
        f"no on-call shifts\nimage {IMAGE} asks PagerDuty schedule PTEAM03\n"
    )
    assert ok(cli("oncall", "schedule", IMAGE, "none")) == (
        f"image {IMAGE} no longer has its own schedule (it asked PTEAM03)\n"
    )
    assert ok(cli("oncall", "schedule", IMAGE, "none")) == (
        f"image {IMAGE} has no schedule of its own; nothing changed\n"
    )
    database = Database(tmp_path / "bot.db")
    audited = [(e["actor"], e["action"], e["detail"]) for e in AuditLog(database).recent()]
    database.close()
    assert audited == [
        ("cli:ops", "oncall schedule", f"{IMAGE} none"),
        ("cli:ops", "oncall schedule", f"{IMAGE} PTEAM03"),
        ("cli:ops", "oncall schedule", f"{IMAGE} PTEAM02"),
    ]


def test_oncall_schedule_without_pagerduty_warns(cli: Any) -> None:
    run = cli("oncall", "schedule", IMAGE, "PTEAM02")

    assert run.code == 0
    assert run.err.endswith(
        "warning: ONCALL_PAGERDUTY_TOKEN is not set: nobody is read from PagerDuty until it is\n"
    )


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (
            (IMAGE, "P-1"),
            "'P-1' is not a PagerDuty schedule id. Give one like P1ABCDE (the end of the"
            " schedule's address in PagerDuty), or none to clear it.",
        ),
        (
            ("nope", "PTEAM02"),
            "'nope' is not an image id. Image ids are UUIDs like"
            " 70a599e0-31e7-49b7-b260-868f441e862b.",
        ),
    ],
)
def test_a_bad_schedule_is_refused(cli: Any, words: tuple[str, str], message: str) -> None:
    assert one_line_failure(cli("oncall", "schedule", *words)) == message
    assert ok(cli("oncall", "list")) == "no on-call shifts\n"


def test_oncall_list_shows_each_stored_rota_now_and_next(cli: Any, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    database = Database(tmp_path / "bot.db")
    Rota(database).replace(
        "pagerduty",
        [
            RotaEntry(
                "pagerduty",
                "alice@example.com",
                "UALICE",
                now - timedelta(hours=1),
                now + timedelta(hours=1),
                "PSCHED1",
            ),
            RotaEntry(
                "pagerduty",
                "dave@example.com",
                "",
                now + timedelta(hours=1),
                now + timedelta(hours=9),
                "PSCHED1",
            ),
        ],
    )
    database.close()

    lines = ok(cli("oncall", "list")).splitlines()

    assert lines[0] == "no on-call shifts"
    assert lines[1].startswith("PagerDuty: read ") and lines[1].endswith(" s ago)")
    assert lines[2].startswith("  now\tUALICE\talice@example.com\t")
    assert lines[2].endswith("\tPSCHED1")
    assert lines[3].startswith("  next\t(not in Slack)\tdave@example.com\t")


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        (
            "tomorrow",
            "2099-01-01T17:00",
            "'tomorrow' is not a time. Use ISO 8601, like 2026-12-01T09:00+09:00.",
        ),
        (
            "2099-01-01T09:00",
            "5pm",
            "'5pm' is not a time. Use ISO 8601, like 2026-12-01T09:00+09:00.",
        ),
        ("2099-01-02T09:00", "2099-01-01T17:00", "The shift must end after it starts."),
        ("2099-01-01T09:00", "2099-01-01T09:00", "The shift must end after it starts."),
        # The same instant in two zones is no window either.
        ("2099-01-01T09:00+09:00", "2099-01-01T00:00Z", "The shift must end after it starts."),
        (
            "2020-01-01T09:00",
            "2020-01-01T17:00",
            "That shift is over already (it ends before now), so it was not added."
            " Check the dates and the year.",
        ),
        (
            "2099-01-01T09:00",
            "2199-01-01T09:00",
            "A shift can last at most 31 days, and this one is longer, so it was not added."
            " Add it as shorter shifts (a long rota is better read from PagerDuty or a"
            " calendar).",
        ),
    ],
)
def test_bad_shift_times_are_refused(cli: Any, starts: str, ends: str, message: str) -> None:
    run = cli("oncall", "add", "U99", "--from", starts, "--to", ends)

    assert one_line_failure(run) == message
    assert "\t" not in ok(cli("oncall", "list"))  # no rows


def test_a_shift_of_31_days_and_one_that_began_but_has_not_ended_are_taken(cli: Any) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    began = (now - timedelta(hours=1)).isoformat()
    month = (now - timedelta(hours=1) + timedelta(days=31)).isoformat()

    assert ok(cli("oncall", "add", "U99", "--from", began, "--to", month)).startswith("#1 U99")


def test_oncall_list_all_as_in_slack_shows_past_shifts_too(cli: Any, tmp_path: Path) -> None:
    ok(cli("oncall", "add", "U99", "--from", "2099-01-01T09:00", "--to", "2099-01-01T17:00"))
    # A shift that has ended since it was added (shifts cannot be added in the past).
    database = Database(tmp_path / "bot.db")
    database.write(
        lambda db: db.execute(
            "INSERT INTO oncall (user_id, starts_at, ends_at, added_by, added_at)"
            " VALUES ('U77', '2020-01-01T00:00:00.000000Z', '2020-01-01T09:00:00.000000Z',"
            " 'test', '2020-01-01T00:00:00.000000Z')"
        )
    )
    database.close()
    coming = "1\tU99\t2099-01-01 09:00 UTC\t2099-01-01 17:00 UTC\n"
    past = "2\tU77\t2020-01-01 00:00 UTC\t2020-01-01 09:00 UTC\n"

    assert ok(cli("oncall", "list")) == (
        coming + "(1 past shift(s) not shown; `python -m bot oncall list all` shows them)\n"
    )
    assert ok(cli("oncall", "list", "all")) == past + coming
    assert ok(cli("oncall", "list", "ALL")) == past + coming
    assert ok(cli("oncall", "list", "--all")) == past + coming
    refused = cli("oncall", "list", "everything")
    assert one_line_failure(refused) == (
        "`oncall list` takes nothing but `all` (past shifts too), not 'everything':"
        " `python -m bot oncall list` or `python -m bot oncall list all`"
    )


def test_oncall_add_help_describes_the_times_and_their_zone(cli: Any) -> None:
    shown = " ".join(ok_help(cli("oncall", "add", "--help")).split())

    assert (
        "--from ISO_TIME when it starts: ISO 8601, like 2026-12-01T09:00+09:00; without an"
        " offset (2026-12-01T09:00) it is in BOT_TIMEZONE (the environment, then .env;"
        " default UTC)" in shown
    )
    assert (
        "--to ISO_TIME when it ends: the same format; after --from, not in the past, and at"
        " most 31 days after --from" in shown
    )


def ok_help(run: Run) -> str:
    assert run.code == 0 and run.err == "", run
    return run.out


def test_an_unreachable_slack_is_explained_once_and_the_command_still_done(cli: Any) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    env = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_API_URL": url}

    run = cli("grant", "U123", "sharer", env=env)

    assert run.code == 0 and run.out == "U123 is now sharer for all images\n", run
    assert run.err == run.database_line + (
        "warning: could not ask Slack whether U123 exists: no answer (Connection refused)"
        f" from {url}users.info; check SLACK_API_URL, the network and any proxy"
        " (HTTPS_PROXY) between here and Slack; done anyway, as asked\n"
    )
    assert "xoxb-1-2-abc" not in run.printed


def test_a_korean_command_line_says_why_slack_was_not_reached_in_korean(cli: Any) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    env = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_API_URL": url, "BOT_DEFAULT_LANGUAGE": "ko"}

    run = cli("grant", "U123", "sharer", env=env)

    assert run.code == 0 and run.out == "U123 님이 이제 모든 이미지의 sharer입니다\n", run
    assert run.err.removeprefix(run.database_line) == (
        f"경고: Slack에 U123이(가) 있는지 물어보지 못했습니다: {url}users.info: 응답 없음"
        "(Connection refused). SLACK_API_URL, 네트워크, 그리고 이곳과 Slack 사이의 프록시"
        "(HTTPS_PROXY)를 확인하세요. 그래도 요청대로 처리했습니다\n"
    )


def test_an_unreachable_slack_costs_an_admin_command_no_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Refused at once: the command line asks once and goes on, without slack-sdk's
    # retries and their back-off (which made each command wait over a second).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_API_URL", url)
    accounts = _SlackAccounts()

    started = time.monotonic()
    account = asyncio.run(accounts("U123"))
    waited = time.monotonic() - started

    assert account is Account.UNCHECKED
    assert waited < 1.0, waited
    assert accounts.why == (
        f"no answer (Connection refused) from {url}users.info; check SLACK_API_URL, the"
        " network and any proxy (HTTPS_PROXY) between here and Slack"
    )


def test_a_slack_host_that_does_not_resolve_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: object, **kwargs: object) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_API_URL", "https://slack.example.invalid/api/")
    accounts = _SlackAccounts()

    assert asyncio.run(accounts("U123")) is Account.UNCHECKED
    # The resolver's words, not "Unknown error -2" (its code read as the system's).
    assert accounts.why.startswith(
        "no answer (slack.example.invalid not found: Name or service not known) from"
        " https://slack.example.invalid/api/users.info; "
    )


def test_a_slack_error_is_named_and_not_retried(cli: Any, slack: FakeSlack) -> None:
    env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
    slack.rate_limit("users.info", times=3, retry_after=30)

    run = cli(
        "oncall", "add", "U99", "--from", "2099-01-01T09:00", "--to", "2099-01-01T17:00", env=env
    )

    assert run.code == 0, run
    warning = run.err.removeprefix(run.database_line)
    assert warning.startswith(
        "warning: could not ask Slack whether U99 exists: HTTP 429, Slack error ratelimited"
        f" from {slack.api_url}users.info; "
    )
    assert warning.endswith("; done anyway, as asked\n") and warning.count("\n") == 1
    # Asked once: a 429's Retry-After is not waited out for a warning.
    assert len(slack.calls("users.info")) == 1


def test_oncall_needs_a_slack_user(cli: Any) -> None:
    run = cli("oncall", "add", "jane", "--from", "2099-01-01T09:00", "--to", "2099-01-01T17:00")

    assert one_line_failure(run) == (
        "'jane' is not a Slack user id (U… or W…, in their profile: ⋮ → Copy member ID)."
    )
    assert "ention" not in run.err  # nobody mentions anyone on a command line


# -- missing settings ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["serve"], ["worker"], ["check"]])
def test_missing_settings_are_named_in_one_message(cli: Any, command: list[str]) -> None:
    run = cli(*command)

    assert run.code != 0
    assert run.out == ""
    assert "Traceback" not in run.err
    assert run.err.count("cannot start") == 1
    assert run.err.startswith("share-image-bot cannot start; fix these settings")
    for name in REQUIRED:
        assert f"  - {name} is not set\n" in run.err


def test_invalid_settings_are_named_without_their_values(cli: Any) -> None:
    run = cli(
        env={
            "SLACK_BOT_TOKEN": "xoxb-secret-token-value",
            "SLACK_SIGNING_SECRET": "signing-secret-value",
            "SCP_ENDPOINT": "not a url",
            "SCP_ACCESS_KEY": "AK",
            "SCP_SECRET_KEY": "scp-secret-value",
            "SCP_API_VERSION": "latest",
            "PORT": "99999",
        }
    )

    assert run.code != 0 and "Traceback" not in run.err
    problems = [line for line in run.err.splitlines() if line.startswith("  - ")]
    assert [p.split(" ")[3] for p in problems] == ["SCP_ENDPOINT", "SCP_API_VERSION", "PORT"]
    assert "not a url" not in run.err and "latest" not in run.err
    for secret in ("xoxb-secret-token-value", "signing-secret-value", "scp-secret-value"):
        assert secret not in run.err


def test_settings_come_from_a_dotenv_file_too(cli: Any, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=s3cret\n")

    run = cli()

    assert run.code != 0
    assert "SLACK_BOT_TOKEN" not in run.err and "SLACK_SIGNING_SECRET" not in run.err
    for name in REQUIRED[2:]:
        assert f"{name} is not set" in run.err


# -- check -----------------------------------------------------------------------------------


@pytest.fixture
def check_env(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """Settings pointing at the fake Slack and the sandbox running in this process."""
    slack.add_user("UADMIN")  # the admin the tests grant from the command line
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SCP_ENDPOINT": sandbox.url,
        "SCP_ACCESS_KEY": ACCESS_KEY,
        "SCP_SECRET_KEY": SECRET_KEY,
        "DATABASE_PATH": str(tmp_path / "check.db"),
    }


def secrets_of(env: dict[str, str]) -> list[str]:
    return [env[name] for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SCP_SECRET_KEY")]


def result_lines(run: Run) -> list[str]:
    return [line for line in run.out.splitlines() if line.startswith("[")]


def explained(run: Run, first: str) -> list[str]:
    """The result line starting with `first` and the lines explaining it."""
    lines = run.out.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith(first)]
    return lines[at : at + 4]


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def test_check_passes_with_the_current_version(
    cli: Any, check_env: dict[str, str], slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    assert [c.method for c in slack.calls()] == ["users.info"]  # does Slack know UADMIN?
    slack.clear()
    run = cli("check", env=check_env)

    assert run.code == 0, run
    assert "Traceback" not in run.printed
    lines = run.out.splitlines()
    assert lines[0] == "Settings (secrets are never shown):"
    shown = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[1:] if line[:2] == "  "}
    assert list(shown) == list(Settings.model_fields)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SCP_ACCESS_KEY", "SCP_SECRET_KEY"):
        assert shown[name] == "set"
    assert shown["SLACK_APP_TOKEN"] == "not set (optional)"
    assert shown["SCP_ENDPOINT"].rstrip("/") == sandbox.url
    assert shown["SCP_API_VERSION"] == "1.1"
    assert shown["DATABASE_PATH"] == str(tmp_path / "check.db")
    assert shown["SCP_ACCOUNT_ID"] == "(empty)"
    for secret in [*secrets_of(check_env), ACCESS_KEY]:
        assert secret not in run.printed

    # The documented default, 1.1, is the sandbox's CURRENT version.
    assert result_lines(run) == [
        "[ok] settings: all required settings present and valid",
        f"[ok] database: {tmp_path / 'check.db'} (1 grant)",
        "[ok] drift reconcile: not run yet (the worker runs it every 3600 s,"
        " SHARE_RECONCILE_SECONDS)",
        "[ok] Slack token: bot sharebot in team Fake Team",
        "[ok] Slack scopes: all 11 the bot uses",
        "[ok] cloud API version: 1.1 (CURRENT); served: 1.1, 1.0",
        "[ok] cloud API signed read: keys and signature accepted",
    ]
    assert lines[-1] == "All checks passed."
    assert [c.method for c in slack.calls()] == ["auth.test"]
    # The signed read really was signed and accepted (404: nobody owns the probe image).
    [read] = [r for r in sandbox.records if r.path.startswith("/v1/")]
    assert (read.method, read.signed, read.status) == ("GET", True, 404)


def test_a_deprecated_version_still_served_is_a_warning(
    cli: Any, check_env: dict[str, str], sandbox: Sandbox
) -> None:
    guaranteed = in_days(200)
    sandbox.versions = [
        ApiVersion(id="v1.3", status="CURRENT", not_before="2026-03-01"),
        ApiVersion(id="v1.1", status="DEPRECATED", not_before=guaranteed),
    ]
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    run = cli("check", env=check_env)

    assert run.code == 0, run
    [version] = [line for line in result_lines(run) if "cloud API version" in line]
    assert version == (
        f"[WARN] cloud API version: version 1.1 is DEPRECATED (served at least until"
        f" {guaranteed}); the CURRENT version is 1.3 (set SCP_API_VERSION=1.3);"
        " served: 1.3, 1.1"
    )
    # 1.1 is still served, so everything else works.
    assert "[ok] cloud API signed read: keys and signature accepted" in result_lines(run)
    assert run.out.splitlines()[-1] == (
        "All checks passed, with 1 warning(s): read the [WARN] lines."
    )


def test_a_version_past_its_minimum_support_date_is_a_loud_warning(
    cli: Any, check_env: dict[str, str]
) -> None:
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    # The default list: 1.0 DEPRECATED, guaranteed until 2025-12-31 only.
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.0"})

    assert run.code == 0, run
    [version] = [line for line in result_lines(run) if "cloud API version" in line]
    assert version == (
        "[WARN] cloud API version: MAY STOP WORKING ANY DAY: version 1.0 is DEPRECATED and its"
        " minimum support date, 2025-12-31, has passed: it may stop being served any day;"
        " the CURRENT version is 1.1 (set SCP_API_VERSION=1.1); served: 1.1, 1.0"
    )
    assert "[ok] cloud API signed read: keys and signature accepted" in result_lines(run)


def test_a_version_not_served_fails(cli: Any, check_env: dict[str, str]) -> None:
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3"})

    assert run.code == 1, run
    [version] = [line for line in result_lines(run) if "cloud API version" in line]
    assert version == (
        "[FAIL] cloud API version: version 1.3 is not served; the CURRENT version is 1.1"
        " (set SCP_API_VERSION=1.1); served: 1.1, 1.0"
    )
    [read] = [line for line in result_lines(run) if "signed read" in line]
    assert read.startswith("[FAIL] cloud API signed read: refused: ") and "1.3" in read


def test_check_reports_a_refused_signature(cli: Any, check_env: dict[str, str]) -> None:
    wrong = "SK-wrong-secret-0123456789"
    run = cli("check", env=check_env | {"SCP_SECRET_KEY": wrong})

    assert run.code == 1, run
    [read] = [line for line in result_lines(run) if "signed read" in line]
    assert read.startswith("[FAIL] cloud API signed read: refused: ")
    assert "status=401" in read and "signature does not match" in read
    assert wrong not in run.printed and SECRET_KEY not in run.printed
    # The version list is unsigned: it still answers.
    assert any(line.startswith("[ok] cloud API version: 1.1") for line in result_lines(run))


def test_check_reports_a_wrong_access_key(cli: Any, check_env: dict[str, str]) -> None:
    run = cli("check", env=check_env | {"SCP_ACCESS_KEY": "AK-other"})

    assert run.code == 1, run
    [read] = [line for line in result_lines(run) if "signed read" in line]
    assert (
        read.startswith("[FAIL] cloud API signed read: refused: ") and "unknown access key" in read
    )


def test_check_reports_a_wrong_slack_token(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    wrong = "xoxb-wrong-token-0123456789"
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    run = cli("check", env=check_env | {"SLACK_BOT_TOKEN": wrong})

    assert run.code == 1, run
    assert explained(run, "[FAIL] Slack token") == [
        "[FAIL] Slack token: Slack refused SLACK_BOT_TOKEN (invalid_auth)",
        f"    tried:  {slack.api_url}auth.test",
        "    answer: HTTP 200, Slack error invalid_auth",
        "    do:     SLACK_BOT_TOKEN is not a valid token (mistyped, revoked, or of another"
        " workspace or app): copy it again from api.slack.com/apps → your app",
    ]
    assert "[ok] cloud API signed read: keys and signature accepted" in result_lines(run)
    assert wrong not in run.printed
    assert run.out.splitlines()[-1] == "1 check(s) failed."


def test_check_explains_an_unreachable_slack(cli: Any, check_env: dict[str, str]) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    run = cli("check", env=check_env | {"SLACK_API_URL": url})

    assert run.code == 1, run
    assert explained(run, "[FAIL] Slack token") == [
        "[FAIL] Slack token: Slack was not reached (unreachable)",
        f"    tried:  {url}auth.test",
        "    answer: no answer (Connection refused)",
        "    do:     check SLACK_API_URL, the network and any proxy (HTTPS_PROXY) between here"
        " and Slack",
    ]


def test_check_explains_a_url_that_is_not_slack(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    # Something answers there, but not Slack's Web API: a 404 in plain text.
    url = f"{slack.base_url.rstrip('/')}/wrong/"
    run = cli("check", env=check_env | {"SLACK_API_URL": url})

    assert run.code == 1, run
    assert explained(run, "[FAIL] Slack token") == [
        "[FAIL] Slack token: Slack was not reached (HTTP 404)",
        f"    tried:  {url}auth.test",
        "    answer: HTTP 404, not a Slack answer",
        "    do:     this is not Slack's Web API: check SLACK_API_URL (leave it unset for"
        " https://slack.com/api/) and any proxy",
    ]


def test_check_tries_the_app_token(cli: Any, check_env: dict[str, str], slack: FakeSlack) -> None:
    good = cli("check", env=check_env | {"SLACK_APP_TOKEN": slack.app_token})
    wrong = "xapp-1-A1-1-wrong-app-token-0123456789"
    refused = cli("check", env=check_env | {"SLACK_APP_TOKEN": wrong})

    assert "[ok] Slack app token (Socket Mode): accepted by apps.connections.open" in (
        result_lines(good)
    )
    assert refused.code == 1, refused
    assert explained(refused, "[FAIL] Slack app token") == [
        "[FAIL] Slack app token (Socket Mode): Slack refused SLACK_APP_TOKEN (invalid_auth)",
        f"    tried:  {slack.api_url}apps.connections.open",
        "    answer: HTTP 200, Slack error invalid_auth",
        "    do:     SLACK_APP_TOKEN is not a valid token (mistyped, revoked, or of another"
        " workspace or app): copy it again from api.slack.com/apps → your app",
    ]
    assert wrong not in refused.printed and slack.app_token not in good.printed


def test_check_names_a_bot_token_given_as_the_app_token(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    run = cli("check", env=check_env | {"SLACK_APP_TOKEN": slack.bot_token})

    assert run.code != 0 and run.out == "", run
    assert run.err.startswith("share-image-bot cannot start; fix these settings")
    assert (
        "  - SLACK_APP_TOKEN must start with xapp-, but this is a bot token (xoxb-…), which"
        " belongs in SLACK_BOT_TOKEN: Socket Mode needs an app-level token with"
        " connections:write, from Basic Information → App-Level Tokens (or leave"
        " SLACK_APP_TOKEN empty for HTTP mode)\n"
    ) in run.err
    assert slack.bot_token not in run.printed
    assert slack.calls() == []  # refused before anything was asked of Slack


def test_check_looks_at_the_approval_and_notify_channels(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    slack.not_in_channel.add("CNOTIFY")
    channels = {"SHARE_APPROVAL_CHANNEL": "CAPPROVE", "SHARE_NOTIFY_CHANNEL": "CNOTIFY"}
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    run = cli("check", env=check_env | channels)

    assert run.code == 1, run
    assert "[ok] approval channel: sharebot is a member of #capprove (CAPPROVE)" in (
        result_lines(run)
    )
    assert explained(run, "[FAIL] notify channel") == [
        "[FAIL] notify channel: sharebot is not a member of #cnotify (CNOTIFY)"
        " (SHARE_NOTIFY_CHANNEL): its messages there would be refused",
        f"    tried:  {slack.api_url}conversations.info",
        "    answer: channel.is_member is false",
        "    do:     in Slack, open #cnotify and type /invite @sharebot",
    ]
    assert [c.args.get("channel") for c in slack.calls("conversations.info")] == [
        "CAPPROVE",
        "CNOTIFY",
    ]


def test_check_explains_a_channel_it_cannot_see(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    slack.missing_channels.add("CGONE")
    run = cli("check", env=check_env | {"SHARE_APPROVAL_CHANNEL": "CGONE"})

    assert run.code == 1, run
    assert explained(run, "[FAIL] approval channel") == [
        "[FAIL] approval channel: cannot look up CGONE (SHARE_APPROVAL_CHANNEL): channel_not_found",
        f"    tried:  {slack.api_url}conversations.info",
        "    answer: HTTP 200, Slack error channel_not_found",
        "    do:     SHARE_APPROVAL_CHANNEL names no channel the bot can see: check the id (the"
        " channel's details, at the bottom); for a private channel, /invite @sharebot first",
    ]


def test_check_warns_when_it_may_not_look_at_channels(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    slack.fail("conversations.info", "missing_scope")
    ok(cli("grant", "UADMIN", "admin", env=check_env))
    run = cli("check", env=check_env | {"SHARE_NOTIFY_CHANNEL": "CNOTIFY"})

    assert run.code == 0, run
    assert explained(run, "[WARN] notify channel") == [
        "[WARN] notify channel: cannot tell whether sharebot is a member of CNOTIFY"
        " (SHARE_NOTIFY_CHANNEL)",
        f"    tried:  {slack.api_url}conversations.info",
        "    answer: HTTP 200, Slack error missing_scope",
        "    do:     give the app the channels:read scope (groups:read for a private channel)"
        " and reinstall it, or make sure by hand that the bot was invited",
    ]


def test_check_reports_an_unusable_database(
    cli: Any, check_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "occupied").mkdir()
    run = cli("check", env=check_env | {"DATABASE_PATH": "occupied"})

    assert run.code == 1, run
    [database] = [line for line in result_lines(run) if "database" in line]
    assert database.startswith("[FAIL] database: cannot open the database at occupied")


def test_check_warns_about_a_missing_or_empty_database(
    cli: Any, check_env: dict[str, str], tmp_path: Path
) -> None:
    missing = cli("check", env=check_env)
    assert not (tmp_path / "check.db").exists()  # said, not made
    Database(tmp_path / "check.db").close()
    empty = cli("check", env=check_env)

    assert missing.code == 0 and empty.code == 0, (missing, empty)
    assert explained(missing, "[WARN] database")[:2] == [
        f"[WARN] database: {tmp_path / 'check.db'} does not exist: the bot creates a NEW,"
        " EMPTY database there when it starts (check created nothing)",
        "    do:     if the bot ran before, DATABASE_PATH or the folder you are in is wrong;"
        " otherwise make yourself an admin: python -m bot grant <YOUR_SLACK_USER_ID> admin",
    ]
    assert explained(empty, "[WARN] database")[:2] == [
        f"[WARN] database: {tmp_path / 'check.db'} holds no grants: nobody may share yet",
        "    do:     python -m bot grant <YOUR_SLACK_USER_ID> admin",
    ]


# -- start-up ----------------------------------------------------------------------------------


def test_the_bot_stops_with_one_line_when_slack_refuses_its_token(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    wrong = "xoxb-wrong-token-0123456789"
    run = cli(env=check_env | {"SLACK_BOT_TOKEN": wrong})

    assert one_line_failure(run) == (
        "share-image-bot cannot start: Slack refused SLACK_BOT_TOKEN (invalid_auth):"
        f" HTTP 200, Slack error invalid_auth from {slack.api_url}auth.test; SLACK_BOT_TOKEN is"
        " not a valid token (mistyped, revoked, or of another workspace or app): copy it again"
        " from api.slack.com/apps → your app"
    )
    assert wrong not in run.printed


def test_a_bad_socket_mode_token_stops_the_bot_with_one_line(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    wrong = "xapp-1-A1-1-wrong-app-token-0123456789"
    run = cli(env=check_env | {"SLACK_APP_TOKEN": wrong})

    assert one_line_failure(run) == (
        "share-image-bot cannot start: Slack refused SLACK_APP_TOKEN (invalid_auth):"
        f" HTTP 200, Slack error invalid_auth from {slack.api_url}apps.connections.open;"
        " SLACK_APP_TOKEN is not a valid token (mistyped, revoked, or of another workspace or"
        " app): copy it again from api.slack.com/apps → your app"
    )
    assert wrong not in run.printed
    # Nothing was started: no worker, no connection.
    assert [c.method for c in slack.calls()] == ["auth.test", "apps.connections.open"]
    assert slack.socket_connection_count == 0


def test_a_second_worker_on_the_same_database_refuses_to_start(
    cli: Any, check_env: dict[str, str], tmp_path: Path
) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **check_env}
    with (tmp_path / "first.log").open("w") as output:
        first = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"],
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while "worker started" not in (tmp_path / "first.log").read_text():
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)

            second = cli("worker", env=check_env)

            database = check_env["DATABASE_PATH"]
            assert one_line_failure(second) == (
                f"share-image-bot cannot start: another worker is already running on {database}"
                f" (process {first.pid} holds the lock file {database}.worker.lock); stop it"
                " first, or give this one its own DATABASE_PATH"
            )
            assert Path(f"{database}.worker.lock").read_text() == f"{first.pid}\n"
            assert first.poll() is None  # the first one carries on
        finally:
            first.terminate()
            first.wait(15)
