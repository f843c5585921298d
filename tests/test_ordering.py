"""Requests for one image and member reach the cloud one at a time, in the order asked;
member ids alike but for case are one member for duplicates and names."""

from __future__ import annotations

from bot.scp.sandbox import Sandbox
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, BotHarness, member_calls


def test_share_then_unshare_with_a_slow_cloud_ends_removed_in_that_order(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    sandbox.delay = 1.0
    assert bot.ack_text(f"{IMAGE} {MEMBER}").startswith("On it")
    assert bot.ack_text(f"unshare {IMAGE} {MEMBER} changed my mind").startswith("On it")

    shared = bot.wait_state("pending", 1, timeout=15)
    removed = bot.wait_state("removed", 2, timeout=15)

    post, delete = member_calls(sandbox)
    assert (post.method, post.status, delete.method, delete.status) == ("POST", 200, "DELETE", 204)
    assert delete.at >= post.at + sandbox.delay  # sent only once the add was answered
    assert sandbox.members(IMAGE) == []  # the user's last word holds
    assert shared.sent_at is not None and removed.sent_at is not None
    assert removed.sent_at >= (shared.finished_at or "")
    first, second = (m for m in slack.messages("C1") if not m.args.get("thread_ts"))
    assert first.ts is not None and second.ts is not None
    [added] = bot.wait_thread(first)
    [gone] = bot.wait_thread(second)
    assert "is *pending*" in added
    assert gone == f"Removed `{MEMBER}` (QA account) from image `{IMAGE}`."


def test_member_ids_alike_but_for_case_are_one_request_and_one_name(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    sandbox.delay = 0.5
    bot.ack_text(f"{IMAGE} {MEMBER}")
    again = bot.ack_text(f"{IMAGE} {MEMBER.upper()}")
    assert again.startswith("Request #1 for image")
    assert f"({MEMBER_NAME})" in again  # the known member's name, whatever the case
    bot.wait_state("pending", 1)
    assert [r.member_id for r in bot.all_requests()] == [MEMBER]
    assert len([c for c in member_calls(sandbox) if c.method == "POST"]) == 1
