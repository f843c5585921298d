"""Requests for one image and member reach the cloud one at a time, in the order asked;
member ids alike but for case are one member for duplicates and names."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bot.scp.sandbox import Record, Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, OTHER_IMAGE, BotHarness, member_calls


def test_share_then_unshare_with_a_slow_cloud_ends_removed_in_that_order(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    sandbox.delay = 1.0
    assert bot.ack_text(f"{IMAGE} {MEMBER}").startswith("On it")
    assert bot.ack_text(f"unshare {IMAGE} {MEMBER} changed my mind").startswith("On it")

    shared = bot.wait_state("pending", 1, timeout=15)
    removed = bot.wait_state("removed", 2, timeout=15)

    post, delete, read_back = member_calls(sandbox)
    assert (post.method, post.status, delete.method, delete.status) == ("POST", 200, "DELETE", 204)
    assert (read_back.method, read_back.path) == ("GET", f"/v1/images/{IMAGE}/members")
    assert delete.at >= post.at + sandbox.delay  # sent only once the add was answered
    assert sandbox.members(IMAGE) == []  # the user's last word holds
    assert shared.sent_at is not None and removed.sent_at is not None
    assert removed.sent_at >= (shared.finished_at or "")
    # Each request has its own parent; under load the worker may post them in either order.
    parents = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
    assert len(parents) == 2 and all(p.ts is not None for p in parents)
    [added], [gone] = sorted((bot.wait_thread(p) for p in parents), key=lambda t: "Removed" in t[0])
    assert "It is *pending*" in added
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


def test_new_requests_go_before_follow_ups_and_few_follow_ups_run_at_once(
    make_bot: Callable[..., BotHarness], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.sharing.worker.FOLLOW_UPS_AT_ONCE", 4)
    bot = make_bot(SHARE_UNKNOWN_MEMBERS="direct")
    bot.grant("U1", Role.SHARER)
    followed = [f"follow-{i:02d}" for i in range(30)]
    for member in followed:
        assert bot.ack_text(f"{IMAGE} {member}").startswith("On it")
    for request_id in range(1, len(followed) + 1):
        bot.wait_state("pending", request_id)
    bot.stop_worker()
    # Every share's status read is due at once (as after a restart), and the cloud is slow.
    bot.clock.advance(seconds=bot.settings.SHARE_STATUS_POLL_SECONDS + 1)
    sandbox.add_image(OTHER_IMAGE, visibility="shared")
    sandbox.delay = 0.2
    start = len(sandbox.records)
    assert bot.ack_text(f"{OTHER_IMAGE} {MEMBER}").startswith("On it")

    def follow_ups(records: list[Record]) -> list[Record]:
        return [r for r in records if r.method == "GET" and "/members/" in r.path]

    at_once: list[int] = []
    done = threading.Event()

    def watch() -> None:  # how many status reads the cloud is answering, every 5 ms
        while not done.wait(0.005):
            at_once.append(sum(not r.done for r in follow_ups(sandbox.records[start:])))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bot.start_worker()
    sandbox.wait_for(
        lambda records: (
            len(follow_ups(records[start:])) == len(followed)
            and all(r.done for r in records[start:])
        ),
        timeout=20,
    )
    done.set()
    watcher.join()
    records = sandbox.records[start:]
    reads = follow_ups(records)
    assert sorted(r.member_id or "" for r in reads) == followed  # each followed once
    assert max(at_once) == 4  # never more at once, and as many as allowed
    [post] = [r for r in records if r.method == "POST"]
    assert post.member_id == MEMBER and post.status == 200
    # The new request went first: sent while most status reads still waited their turn.
    assert sum(r.at < post.at for r in reads) <= 12
    assert bot.wait_state("pending", len(followed) + 1).member_id == MEMBER
