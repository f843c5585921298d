"""Only the workspace the bot was installed in: anything from another is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role
from storage import Database, Grants
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, BotHarness, adds

ELSEWHERE = "I only work in the Slack workspace I was installed in"


def test_the_bot_learns_its_workspace_from_auth_test(bot: BotHarness, slack: FakeSlack) -> None:
    assert bot.services.team_id == "T1"
    assert slack.calls("auth.test")


def test_a_command_from_another_workspace_is_refused(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    slack.add_user("UNEW")
    grant = bot.ack_text("admin grant <@UNEW> admin", user="UADMIN", team_id="T2")
    share = bot.ack_text(f"{IMAGE} {MEMBER} from afar", user="U1", team_id="T2")

    assert grant.startswith(ELSEWHERE) and share.startswith(ELSEWHERE)
    assert Role.ADMIN not in bot.services.grants.roles("UNEW", "")
    assert bot.all_requests() == []
    time.sleep(0.1)
    assert adds(sandbox) == []


def test_grants_record_the_workspace(bot: BotHarness, slack: FakeSlack) -> None:
    slack.add_user("UNEW")
    bot.ack_text("admin grant <@UNEW> sharer", user="UADMIN")
    [made] = [g for g in bot.services.grants.all() if g.user_id == "UNEW"]
    assert made.team_id == "T1"


def test_grants_made_before_are_recorded_as_the_bots_own_workspace_at_start(
    make_bot: Callable[..., BotHarness], tmp_path: Path
) -> None:
    database = Database(tmp_path / "bot.db")
    Grants(database).grant("UOLD", Role.ADMIN, by="cli:ops")
    assert [g.team_id for g in Grants(database).all()] == [""]
    database.close()

    bot = make_bot()

    assert [(g.user_id, g.team_id) for g in bot.services.grants.all()] == [("UOLD", "T1")]


def test_a_click_from_another_workspace_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    team.wait_state("awaiting_approval")
    posted = team.parent("CAPPROVE")

    payload = team.sender.click_payload(posted, "approve", user_id="UAPP1", team_id="T2")
    assert team.sender.action(payload).status_code == 200

    [refusal] = slack.wait_for(lambda: slack.responses(), what="the refusal")
    assert refusal.body["text"].startswith(ELSEWHERE)
    assert refusal.body["response_type"] == "ephemeral"
    time.sleep(0.1)
    assert team.request().state == "awaiting_approval"
    assert adds(sandbox) == []


def test_a_modal_from_another_workspace_is_refused_in_the_modal(
    team: BotHarness, slack: FakeSlack
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER} QA run", user="UREQ")
    team.wait_state("awaiting_approval")
    team.sender.click(team.parent("CAPPROVE"), "deny", user_id="UAPP2")
    opened = slack.wait_for(lambda: slack.calls("views.open"), what="a deny modal")
    view = opened[-1].args["view"]
    typed = {"reason": {"reason_input": {"type": "plain_text_input", "value": "no"}}}
    payload = {
        "type": "view_submission",
        "team": {"id": "T2", "domain": "elsewhere"},
        "user": {"id": "UAPP2", "username": "uapp2", "name": "uapp2", "team_id": "T2"},
        "api_app_id": "A1",
        "token": "fake-verification-token",
        "trigger_id": "1.2.3",
        "view": {**view, "id": "V1", "team_id": "T2", "state": {"values": typed}},
    }

    answer = team.sender.action(payload).json()

    assert answer["response_action"] == "errors"
    assert answer["errors"]["reason"].startswith(ELSEWHERE)
    assert team.request().state == "awaiting_approval"


def test_the_home_tab_of_another_workspace_shows_nothing(bot: BotHarness, slack: FakeSlack) -> None:
    event = {
        "token": "fake-verification-token",
        "team_id": "T2",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"},
    }
    answer = bot.sender.post(json.dumps(event), content_type="application/json")

    assert answer.status_code == 200
    time.sleep(0.2)
    assert slack.calls("views.publish") == []
