"""Two-person approval for sensitive images: `admin policy <image_id> approvals 2`."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.scp.sandbox import Sandbox
from bot.sharing import commands
from bot.sharing.errors import CommandError
from bot.sharing.values import Role
from bot.slack import views
from bot.slack.texts import say
from storage import AuditLog, Database
from storage.requests import request_of
from tests.command_line import run as run_command
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, OTHER_IMAGE, BotHarness, adds

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sensitive(make_bot: Callable[..., BotHarness]) -> BotHarness:
    """A team where IMAGE needs two approvals (set by an admin from Slack)."""
    bot = make_bot()
    bot.grant("UREQ", Role.REQUESTER)
    bot.grant("USHARE", Role.SHARER)
    for approver in ("UAPP1", "UAPP2", "UAPP3"):
        bot.grant(approver, Role.APPROVER)
    bot.grant("UADMIN", Role.ADMIN)
    bot.services.members.add(MEMBER, "QA account", by="test")
    said = bot.ack_text(f"admin policy {IMAGE} approvals 2", user="UADMIN")
    assert said == (
        f"Requests to share image `{IMAGE}` now need two approvals, from two different"
        " approvers, neither the asker; sharers' too."
    )
    return bot


def ask(bot: BotHarness, user: str = "UREQ") -> tuple[str, Call]:
    """The ack of a request for IMAGE, and its card."""
    said = bot.ack_text(f"{IMAGE} {MEMBER} release candidate", user=user)
    bot.wait_state("awaiting_approval")
    return said, bot.parent("CAPPROVE")


def refusals(slack: FakeSlack, count: int) -> list[str]:
    found = slack.wait_for(
        lambda: len(slack.responses()) >= count and slack.responses(), what=f"{count} answers"
    )
    return [str(r.body["text"]) for r in found]


def blocks(call: Call) -> str:
    return json.dumps(call.args["blocks"])


def test_two_approvals_from_two_approvers_complete_it(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    said, card = ask(sensitive)
    assert said.startswith("This needs an approver's OK (your role asks for approval).")
    assert "This image needs two approvals, from two different approvers." in said
    assert "Needs two approvals, from two different approvers (not the asker)" in blocks(card)
    assert sensitive.request().approvals_needed == 2

    sensitive.sender.click(card, "approve", user_id="UAPP1")
    assert card.ts is not None
    card_ts = card.ts
    [first] = slack.wait_for(lambda: slack.updates(card_ts), what="the card's 1 of 2")
    assert "1 of 2 approvals: <@UAPP1>" in blocks(first)
    assert "actions" in [b["type"] for b in first.args["blocks"]]  # still decidable
    replies = sensitive.wait_thread(sensitive.parent("C1"), 2)
    assert replies[1] == (
        "Approved by <@UAPP1> (1 of 2). It needs one more approval, from another approver."
    )
    time.sleep(0.2)
    request = sensitive.request()
    assert (request.state, request.approvals, request.first_approved_by) == (
        "awaiting_approval",
        1,
        "UAPP1",
    )
    assert adds(sandbox) == []

    sensitive.sender.click(card, "approve", user_id="UAPP2")
    request = sensitive.wait_state("pending")
    assert (request.decided_by, request.approvals) == ("UAPP2", 2)
    assert len(adds(sandbox)) == 1
    final = slack.updates(card_ts)[-1]
    assert "Approved by <@UAPP1> and <@UAPP2>" in blocks(final)
    assert "actions" not in [b["type"] for b in final.args["blocks"]]
    replies = sensitive.wait_thread(sensitive.parent("C1"), 4)
    assert replies[2] == "Approved by <@UAPP1> and <@UAPP2>. Working on it now."


@pytest.mark.parametrize(
    ("clicker", "expected"),
    [
        (
            "UAPP1",
            "You approved this already; it needs a second approval from another approver,"
            " not the same one twice.",
        ),
        ("UREQ", "You can't decide your own request; another approver has to."),
    ],
    ids=["the same approver twice", "the requester"],
)
def test_the_second_approval_is_refused_to_the_same_person_or_the_requester(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack, clicker: str, expected: str
) -> None:
    sensitive.grant("UREQ", Role.APPROVER)  # an approver asking: still not their own
    _, card = ask(sensitive)
    sensitive.sender.click(card, "approve", user_id="UAPP1")
    slack.wait_for(lambda: sensitive.told().card_approvals == 1, what="the first approval")

    sensitive.sender.click(card, "approve", user_id=clicker)

    assert refusals(slack, 1) == [expected]
    time.sleep(0.2)
    request = sensitive.request()
    assert (request.state, request.approvals) == ("awaiting_approval", 1)
    assert adds(sandbox) == []


def test_a_deny_after_the_first_approval_ends_it(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    _, card = ask(sensitive)
    sensitive.sender.click(card, "approve", user_id="UAPP1")
    slack.wait_for(lambda: sensitive.told().card_approvals == 1, what="the first approval")

    # The first approver changing their mind may deny too.
    sensitive.sender.click(card, "deny", user_id="UAPP1")
    sensitive.submit_deny("UAPP1", "wrong account after all")

    request = sensitive.wait_state("denied")
    assert request.decided_by == "UAPP1"
    sensitive.sender.click(card, "approve", user_id="UAPP2")
    [late] = refusals(slack, 1)
    assert late == "Request #1 was already denied by <@UAPP1>; nothing changed."
    time.sleep(0.2)
    assert adds(sandbox) == []


def clicks_at_once(bot: BotHarness, card: Call, clicks: list[tuple[str, str]]) -> None:
    barrier = threading.Barrier(len(clicks))
    statuses: list[int] = []

    def click(user: str, action: str) -> None:
        barrier.wait()
        statuses.append(bot.sender.click(card, action, user_id=user).status_code)

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(clicks)


def test_concurrent_second_clicks_give_one_outcome_and_one_cloud_call(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    _, card = ask(sensitive)
    sensitive.sender.click(card, "approve", user_id="UAPP1")
    slack.wait_for(lambda: sensitive.told().card_approvals == 1, what="the first approval")
    sandbox.delay = 0.3

    clicks_at_once(
        sensitive,
        card,
        [("UAPP2", "approve"), ("UAPP3", "approve"), ("UADMIN", "approve"), ("UAPP1", "approve")],
    )

    request = sensitive.wait_state("pending")
    assert request.decided_by in {"UAPP2", "UAPP3", "UADMIN"}
    assert request.approvals == 2
    answers = refusals(slack, 3)
    decided = f"Request #1 was already approved by <@{request.decided_by}>; nothing changed."
    twice = (
        "You approved this already; it needs a second approval from another approver,"
        " not the same one twice."
    )
    # UAPP1 is told one or the other, as its click lands before or after the winner's.
    assert answers.count(decided) >= 2 and set(answers) <= {decided, twice}
    time.sleep(0.3)
    assert len(adds(sandbox)) == 1


def test_two_approvers_clicking_at_once_both_count(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    _, card = ask(sensitive)

    clicks_at_once(sensitive, card, [("UAPP1", "approve"), ("UAPP2", "approve")])

    request = sensitive.wait_state("pending")
    assert {request.first_approved_by, request.decided_by} == {"UAPP1", "UAPP2"}
    assert len(adds(sandbox)) == 1 and slack.responses() == []


def test_a_sharers_direct_share_of_such_an_image_needs_the_approvals(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    said, card = ask(sensitive, user="USHARE")

    assert said == (
        "This needs an approver's OK (this image needs two approvals, whoever asks)."
        " I've asked them; you'll hear back in a thread here."
    )
    assert "Why approval: this image needs two approvals, whoever asks" in blocks(card)
    time.sleep(0.2)
    assert adds(sandbox) == []
    # Another image is shared directly, as before.
    direct = sensitive.ack_text(f"{OTHER_IMAGE} {MEMBER}", user="USHARE")
    assert direct.startswith(f"On it: sharing image `{OTHER_IMAGE}`")

    sensitive.sender.click(card, "approve", user_id="UAPP1")
    slack.wait_for(lambda: sensitive.told().card_approvals == 1, what="the first approval")
    sensitive.sender.click(card, "approve", user_id="UADMIN")
    sensitive.wait_state("pending")
    assert [r.path for r in adds(sandbox)].count(f"/v1/images/{IMAGE}/members") == 1


def test_approvals_1_goes_back_to_one_approval_and_direct_shares(
    sensitive: BotHarness, sandbox: Sandbox
) -> None:
    said = sensitive.ack_text(f"admin policy {IMAGE} approvals 1", user="UADMIN")
    assert said == (
        f"Requests to share image `{IMAGE}` need one approval again (and sharers share directly)."
    )
    assert sensitive.ack_text(f"admin policy {IMAGE} approvals 1", user="UADMIN") == (
        f"Image `{IMAGE}` already needs 1 approval(s); nothing changed."
    )
    shared = sensitive.ack_text(f"{IMAGE} {MEMBER}", user="USHARE")
    assert shared.startswith(f"On it: sharing image `{IMAGE}`")
    sensitive.wait_state("pending")
    audit = [(e["actor"], e["action"], e["detail"]) for e in sensitive.services.audit.recent()]
    assert audit[:2] == [
        ("UADMIN", "policy", f"{IMAGE} approvals 1"),
        ("UADMIN", "policy", f"{IMAGE} approvals 2"),
    ]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (f"admin policy {IMAGE} approvals 3", "Usage: `admin policy <image_id> approvals 1|2`"),
        (f"admin policy {IMAGE} approvals", "Usage: `admin policy <image_id> approvals 1|2`"),
        (f"admin policy {IMAGE} quorum 2", "Usage: `admin policy <image_id> approvals 1|2`"),
        ("admin policy nightly approvals 2", "`nightly` is not an image id."),
    ],
)
def test_bad_policy_commands_change_nothing(
    make_bot: Callable[..., BotHarness], typed: str, expected: str
) -> None:
    bot = make_bot()
    bot.grant("UADMIN", Role.ADMIN)
    said = bot.ack_text(typed, user="UADMIN")
    assert expected in said
    assert bot.services.share.approvals_needed(IMAGE) == 1
    assert [e["action"] for e in bot.services.audit.recent()] == []


def test_only_admins_set_a_policy(make_bot: Callable[..., BotHarness]) -> None:
    bot = make_bot()
    bot.grant("UADMIN", Role.ADMIN)
    bot.grant("UAPP1", Role.APPROVER)
    said = bot.ack_text(f"admin policy {IMAGE} approvals 2", user="UAPP1")
    assert said == "Only admins can do that. Admins: <@UADMIN>."
    assert bot.services.share.approvals_needed(IMAGE) == 1


def test_a_request_already_waiting_keeps_its_count(
    sensitive: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    _, card = ask(sensitive)
    sensitive.ack_text(f"admin policy {IMAGE} approvals 1", user="UADMIN")
    sensitive.sender.click(card, "approve", user_id="UAPP1")
    slack.wait_for(lambda: sensitive.told().card_approvals == 1, what="the first approval")
    assert sensitive.request().state == "awaiting_approval"


def test_unsharing_such_an_image_needs_one_approval(sensitive: BotHarness, sandbox: Any) -> None:
    # Taking access away is not what the rule guards: a sharer's unshare goes straight on.
    said = sensitive.ack_text(f"unshare {IMAGE} {MEMBER}", user="USHARE")
    assert said.startswith("On it: ") and "needs" not in said and IMAGE in said


# -- the command line ---------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str, process: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m bot *args` on tmp_path's database, as an operator runs it: started as a
    process, or with `process=False` called in this process (tests/command_line.py)."""
    return run_command(
        args,
        {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "bot.db"),
            "USER": "ops",
        },
        tmp_path,
        subprocess=process,
    )


def test_the_command_line_sets_lists_and_unsets_a_policy(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "policy", IMAGE.upper(), "approvals", "2")
    assert done.returncode == 0, done
    assert done.stdout == (
        f"requests to share {IMAGE} now need two approvals, from two different approvers"
        " (neither the asker; sharers' too)\n"
    )
    assert run_cli(tmp_path, "policy", "list").stdout == f"{IMAGE}\tapprovals 2\n"
    assert run_cli(tmp_path, "policy", IMAGE, "approvals", "2").stdout == (
        f"{IMAGE} already needs 2 approval(s); nothing changed\n"
    )
    assert run_cli(tmp_path, "policy", IMAGE, "approvals", "1").stdout == (
        f"requests to share {IMAGE} need one approval again\n"
    )
    assert run_cli(tmp_path, "policy", "list").stdout == "no image needs more than one approval\n"
    database = Database(str(tmp_path / "bot.db"))
    try:
        audit = AuditLog(database).recent()
    finally:
        database.close()
    assert [(e["actor"], e["detail"]) for e in audit] == [
        ("cli:ops", f"{IMAGE} approvals 1"),
        ("cli:ops", f"{IMAGE} approvals 2"),
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            (IMAGE, "approvals", "3"),
            "give an image id and `approvals 1` or `approvals 2`, like"
            " `python -m bot policy 70a599e0-31e7-49b7-b260-868f441e862b approvals 2`"
            " (or `python -m bot policy list`)",
        ),
        ((IMAGE,), "give an image id and `approvals 1` or `approvals 2`, like"),
        (
            ("nightly", "approvals", "2"),
            "'nightly' is not an image id. Image ids are UUIDs like",
        ),
        (("list", "all"), "`policy list` takes nothing after it"),
    ],
)
def test_the_command_line_refuses_a_bad_policy(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    done = run_cli(tmp_path, "policy", *args, process=False)
    assert done.returncode != 0 and done.stdout == ""
    assert expected in done.stderr and "Traceback" not in done.stderr
    listed = run_cli(tmp_path, "policy", "list", process=False)
    assert listed.stdout == "no image needs more than one approval\n"


# -- the parser and the Korean texts, without Slack ----------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (f"admin policy {IMAGE} approvals 2", (IMAGE, 2)),
        (f"admin POLICY {IMAGE.upper()} Approvals 1", (IMAGE, 1)),
    ],
)
def test_the_policy_command_parses(typed: str, expected: tuple[str, int]) -> None:
    parsed = commands.parse(typed)
    assert isinstance(parsed, commands.Admin)
    assert (parsed.what, parsed.image_id, parsed.approvals) == ("policy", *expected)


@pytest.mark.parametrize(
    "typed",
    [
        f"admin policy {IMAGE}",
        f"admin policy {IMAGE} approvals 0",
        f"admin policy {IMAGE} approvals ２",  # a full-width digit
        f"admin policy {IMAGE} approvals 2 now",
        "admin policy",
    ],
)
def test_a_bad_policy_command_names_the_usage(typed: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(typed)
    assert caught.value.problem == "policy_usage"


def test_the_card_and_the_thread_speak_korean() -> None:
    created = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    request = request_of(
        {
            "id": 7,
            "action": "share",
            "user_id": "UREQ",
            "image_id": IMAGE,
            "member_id": MEMBER,
            "state": "awaiting_approval",
            "created_at": "2026-12-01T00:00:00.000000Z",
            "needs_approval": 1,
            "approvals_needed": 2,
            "approvals": 1,
            "first_approved_by": "UAPP1",
        }
    )
    _, card_blocks = views.approval_card(
        request,
        "ko",
        member_name=None,
        why=say("ko", "why_two_person"),
        on_call=["UONCALL"],
        approvers=[],
        asked="a",
        expires="b",
        waited="1h 5m",
    )
    shown = json.dumps(card_blocks, ensure_ascii=False)
    assert "승인 1/2: <@UAPP1>" in shown and "대기 시간: 1h 5m" in shown
    assert "서로 다른 승인자 두 명의 승인 필요" in shown
    people = [f"U{n:03d}" for n in range(30)]
    text, blocks = views.waiting_message(
        request,
        "ko",
        "승인이 필요합니다.",
        [(created, ["UONCALL"]), (created, people)],
        most=20,
        zone=ZoneInfo("Asia/Seoul"),
    )
    assert "<@UONCALL> 님에게 요청했습니다." in text and "외 10명" in text
    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    assert blocks[2]["elements"][0]["text"]["text"] == "다시 알리기"


def test_the_first_approval_is_said_once_even_when_recording_it_fails_once(
    sensitive: BotHarness, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line is claimed before it is posted: a write that fails in between never makes
    the worker say it again on its next look."""
    from storage import SlackMessages
    from storage.errors import StorageError

    real = SlackMessages.update
    failed: list[int] = []

    def flaky(self: SlackMessages, request_id: int, **values: Any) -> Any:
        if (
            "card_approvals" in values
            and not failed
            and slack.thread(str(sensitive.parent("C1").ts))[1:]
        ):
            failed.append(request_id)
            raise StorageError("database is locked")
        return real(self, request_id, **values)

    _, card = ask(sensitive)
    sensitive.wait_thread(sensitive.parent("C1"), 1)
    monkeypatch.setattr(SlackMessages, "update", flaky)
    sensitive.sender.click(card, "approve", user_id="UAPP1")
    line = "Approved by <@UAPP1> (1 of 2). It needs one more approval, from another approver."
    slack.wait_for(lambda: line in sensitive.thread_texts(sensitive.parent("C1")), what="1 of 2")
    time.sleep(0.5)
    sensitive.clock.advance(seconds=60)
    sensitive.worker.wake()
    time.sleep(1.0)
    assert sensitive.thread_texts(sensitive.parent("C1")).count(line) == 1
