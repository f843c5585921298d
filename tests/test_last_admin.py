"""The last admin for all images cannot be revoked from Slack; the command line still can."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.sharing.values import Role
from storage import AuditLog, Database, Grants
from tests.harness import BotHarness

ROOT = Path(__file__).parent.parent


def test_the_last_admin_revoking_themselves_from_slack_is_refused_and_told_how(
    bot: BotHarness,
) -> None:
    text = bot.ack_text("admin revoke <@UADMIN> admin", user="UADMIN")
    assert text.startswith("<@UADMIN> is the last admin for all images, so I kept them")
    assert "`python -m bot revoke UADMIN admin`" in text
    assert Role.ADMIN in bot.services.grants.roles("UADMIN", "")
    assert [e for e in bot.services.audit.recent() if e["action"] == "revoke"] == []


def test_with_another_admin_the_revocation_goes_through(bot: BotHarness) -> None:
    bot.grant("UADMIN2", Role.ADMIN)
    text = bot.ack_text("admin revoke <@UADMIN> admin", user="UADMIN2")
    assert text == "<@UADMIN> is no longer admin for all images."
    assert bot.services.grants.holders(Role.ADMIN) == ["UADMIN2"]


def test_an_admin_for_one_image_does_not_count_as_the_last_ones_replacement(
    bot: BotHarness,
) -> None:
    bot.grant("UIMG", Role.ADMIN, "70a599e0-31e7-49b7-b260-868f441e862b")
    text = bot.ack_text("admin revoke <@UADMIN> admin", user="UADMIN")
    assert "is the last admin for all images" in text


def test_two_admins_revoking_each_other_at_once_leave_one(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    grants = Grants(database)
    grants.grant("UA", Role.ADMIN, by="test")
    grants.grant("UB", Role.ADMIN, by="test")
    first = grants.revoke("UA", Role.ADMIN, keep_last_admin=True)
    second = grants.revoke("UB", Role.ADMIN, keep_last_admin=True)
    assert (first, second) == (True, None)
    assert grants.holders(Role.ADMIN) == ["UB"]
    database.close()


def test_the_command_line_may_revoke_the_last_admin_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    database = Database(path)
    Grants(database).grant("UADMIN", Role.ADMIN, by="test")
    database.close()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "revoke", "UADMIN", "admin"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done
    assert "UADMIN is no longer admin for all images" in done.stdout
    assert "warning: nobody is an admin for all images now" in done.stderr
    database = Database(path)
    assert Grants(database).holders(Role.ADMIN) == []
    assert [e["action"] for e in AuditLog(database).recent()] == ["revoke"]
    database.close()
