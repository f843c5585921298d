"""`python -m bot` as an operator runs it: admin commands, missing settings, `check`.

Every test runs the real entry point in a subprocess and looks only at what the
operator sees: the exit status, stdout and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.scp.sandbox import Sandbox
from bot.settings import Settings
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

    @property
    def printed(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    """Run `python -m bot *args` in tmp_path with its own database and only `env` settings."""

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        environment = {
            **os.environ,  # already cleaned of settings by the autouse fixture
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            "USER": "ops",
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def ok(run: Run) -> str:
    assert run.code == 0, run
    assert run.err == "", run
    return run.out


def one_line_failure(run: Run) -> str:
    """A failed admin command: non-zero, one line on stderr, nothing on stdout, no traceback."""
    assert run.code != 0, run
    assert run.out == "", run
    assert "Traceback" not in run.err, run
    assert run.err.endswith("\n") and run.err.count("\n") == 1, run
    return run.err.strip()


# -- grants ---------------------------------------------------------------------------------


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
        f"U123 was not sharer for {IMAGE}\n"
    )
    assert len(ok(cli("grants")).splitlines()) == 1


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
        "'bob' is not a Slack user. Mention them, like @jane.",
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


def test_a_missing_argument_is_argparse_usage(cli: Any) -> None:
    run = cli("grant", "U123")

    assert run.code == 2
    assert "usage: python -m bot" in run.err and "Traceback" not in run.err


# -- known members --------------------------------------------------------------------------


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


# -- on-call shifts ----------------------------------------------------------------------------


def test_oncall_add_list_and_remove(cli: Any) -> None:
    assert (
        ok(cli("oncall", "add", "U99", "--from", "2026-01-01T09:00", "--to", "2026-01-01T17:00"))
        == "U99 on call 2026-01-01T09:00:00+00:00 → 2026-01-01T17:00:00+00:00\n"
    )
    ok(
        cli(
            "oncall",
            "add",
            "U77",
            "--from",
            "2026-01-01T09:00+09:00",
            "--to",
            "2026-01-01T18:00+09:00",
        )
    )

    # Stored and listed in UTC, soonest first.
    assert ok(cli("oncall", "list")) == (
        "U77\t2026-01-01T00:00:00.000000Z\t2026-01-01T09:00:00.000000Z\n"
        "U99\t2026-01-01T09:00:00.000000Z\t2026-01-01T17:00:00.000000Z\n"
    )
    assert ok(cli("oncall", "remove", "U99")) == "removed 1 shift(s)\n"
    assert ok(cli("oncall", "remove", "U99")) == "removed 0 shift(s)\n"
    assert ok(cli("oncall", "list")) == (
        "U77\t2026-01-01T00:00:00.000000Z\t2026-01-01T09:00:00.000000Z\n"
    )


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        (
            "tomorrow",
            "2026-01-01T17:00",
            "'tomorrow' is not a time. Use ISO 8601, like 2026-12-01T09:00+09:00.",
        ),
        (
            "2026-01-01T09:00",
            "5pm",
            "'5pm' is not a time. Use ISO 8601, like 2026-12-01T09:00+09:00.",
        ),
        ("2026-01-02T09:00", "2026-01-01T17:00", "The shift must end after it starts."),
        ("2026-01-01T09:00", "2026-01-01T09:00", "The shift must end after it starts."),
        # The same instant in two zones is no window either.
        ("2026-01-01T09:00+09:00", "2026-01-01T00:00Z", "The shift must end after it starts."),
    ],
)
def test_bad_shift_times_are_refused(cli: Any, starts: str, ends: str, message: str) -> None:
    run = cli("oncall", "add", "U99", "--from", starts, "--to", ends)

    assert one_line_failure(run) == message
    assert "\t" not in ok(cli("oncall", "list"))  # no rows


def test_oncall_needs_a_slack_user(cli: Any) -> None:
    run = cli("oncall", "add", "jane", "--from", "2026-01-01T09:00", "--to", "2026-01-01T17:00")

    assert one_line_failure(run) == "'jane' is not a Slack user. Mention them, like @jane."


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
    assert [p.split(" is ")[0] for p in problems] == [
        "  - SCP_ENDPOINT",
        "  - SCP_API_VERSION",
        "  - PORT",
    ]
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


def test_check_passes_with_the_current_version(
    cli: Any, check_env: dict[str, str], slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3"})

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
    assert shown["SCP_API_VERSION"] == "1.3"
    assert shown["DATABASE_PATH"] == str(tmp_path / "check.db")
    assert shown["SCP_ACCOUNT_ID"] == "(empty)"
    for secret in [*secrets_of(check_env), ACCESS_KEY]:
        assert secret not in run.printed

    assert result_lines(run) == [
        "[ok] settings: all required settings present and valid",
        f"[ok] database: {tmp_path / 'check.db'}",
        "[ok] Slack token: bot sharebot in team Fake Team",
        "[ok] cloud API version: 1.3 (CURRENT); served: 1.3, 1.2, 1.1, 1.0",
        "[ok] cloud API signed read: keys and signature accepted",
    ]
    assert lines[-1] == "All checks passed."
    assert [c.method for c in slack.calls()] == ["auth.test"]
    # The signed read really was signed and accepted (404: nobody owns the probe image).
    [read] = [r for r in sandbox.records if r.path.startswith("/v1/")]
    assert (read.method, read.signed, read.status) == ("GET", True, 404)


def test_check_flags_the_deprecated_default_version(cli: Any, check_env: dict[str, str]) -> None:
    run = cli("check", env=check_env)

    assert run.code == 1, run
    [version] = [line for line in result_lines(run) if "cloud API version" in line]
    assert version == (
        "[FAIL] cloud API version: version 1.1 is DEPRECATED; the CURRENT version is 1.3 "
        "(set SCP_API_VERSION=1.3); served: 1.3, 1.2, 1.1, 1.0"
    )
    # 1.1 is still served, so everything else works.
    assert "[ok] cloud API signed read: keys and signature accepted" in result_lines(run)
    assert run.out.splitlines()[-1] == "1 check(s) failed."


def test_check_reports_a_refused_signature(cli: Any, check_env: dict[str, str]) -> None:
    wrong = "SK-wrong-secret-0123456789"
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3", "SCP_SECRET_KEY": wrong})

    assert run.code == 1, run
    [read] = [line for line in result_lines(run) if "signed read" in line]
    assert read.startswith("[FAIL] cloud API signed read: refused: ")
    assert "status=401" in read and "signature does not match" in read
    assert wrong not in run.printed and SECRET_KEY not in run.printed
    # The version list is unsigned: it still answers.
    assert any(line.startswith("[ok] cloud API version: 1.3") for line in result_lines(run))


def test_check_reports_a_wrong_access_key(cli: Any, check_env: dict[str, str]) -> None:
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3", "SCP_ACCESS_KEY": "AK-other"})

    assert run.code == 1, run
    [read] = [line for line in result_lines(run) if "signed read" in line]
    assert (
        read.startswith("[FAIL] cloud API signed read: refused: ") and "unknown access key" in read
    )


def test_check_reports_a_wrong_slack_token(
    cli: Any, check_env: dict[str, str], slack: FakeSlack
) -> None:
    wrong = "xoxb-wrong-token-0123456789"
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3", "SLACK_BOT_TOKEN": wrong})

    assert run.code == 1, run
    assert "[FAIL] Slack token: invalid_auth" in result_lines(run)
    assert "[ok] cloud API signed read: keys and signature accepted" in result_lines(run)
    assert wrong not in run.printed
    assert run.out.splitlines()[-1] == "1 check(s) failed."


def test_check_reports_an_unusable_database(
    cli: Any, check_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "occupied").mkdir()
    run = cli("check", env=check_env | {"SCP_API_VERSION": "1.3", "DATABASE_PATH": "occupied"})

    assert run.code == 1, run
    [database] = [line for line in result_lines(run) if "database" in line]
    assert database.startswith("[FAIL] database: cannot open the database at occupied")


def test_the_bot_stops_with_one_line_when_slack_refuses_its_token(
    cli: Any, check_env: dict[str, str]
) -> None:
    wrong = "xoxb-wrong-token-0123456789"
    run = cli(env=check_env | {"SLACK_BOT_TOKEN": wrong})

    assert one_line_failure(run) == (
        "share-image-bot cannot start: Slack refused SLACK_BOT_TOKEN (invalid_auth)"
    )
    assert wrong not in run.printed


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

            assert second.code != 0
            assert second.err.strip().endswith(
                f"another worker is already running on {check_env['DATABASE_PATH']}"
            )
            assert first.poll() is None  # the first one carries on
        finally:
            first.terminate()
            first.wait(15)
