"""`/share-image` end to end: signed Slack requests in, fake Slack and the sandbox out."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.scp.sandbox import Fault, Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import FakeSlack
from tests.harness import IMAGE, MEMBER, OTHER_IMAGE, BotHarness, adds, member_calls


def test_direct_share_answers_in_a_thread_with_the_pending_status(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    ack = bot.ack_text(f"{IMAGE} {MEMBER} nightly QA build")

    assert ack.startswith("On it: sharing image `70a599e0-31e7-49b7-b260-868f441e862b` with")
    assert "(QA account)" in ack
    parent = bot.parent("C1")
    assert parent.args["text"].startswith(
        f"<@U1> asked to share image `{IMAGE}` with `{MEMBER}` (QA account)"
    )
    replies = bot.wait_thread(parent)
    assert replies[0].startswith(
        f"Shared: `{MEMBER}` (QA account) can use the image now. It is *pending*"
    )
    assert re.search(
        r"added \d{4}-\d\d-\d\d \d\d:\d\d UTC, updated \d{4}-\d\d-\d\d \d\d:\d\d UTC", replies[0]
    )

    request = bot.wait_state("pending")
    assert (request.user_id, request.image_id, request.member_id) == ("U1", IMAGE, MEMBER)
    assert request.reason == "nightly QA build"
    assert request.api_status == 200 and request.member_status == "pending"
    told = bot.told(request.id)
    assert told.parent_channel == "C1" and told.parent_ts == parent.ts
    assert request.sent_at and request.finished_at

    [update] = slack.updates(parent.ts)
    assert "the account can use it now; *pending* until it accepts it" in json.dumps(
        update.args["blocks"]
    )
    [add] = adds(sandbox)
    assert add.signed and add.status == 200 and add.member_id == MEMBER
    assert sandbox.members(IMAGE)[0].status == "pending"


def _unshareable(sandbox: Sandbox, bot: BotHarness) -> None:
    # Shared, but this account may not give it members (a permission): the add's 403.
    sandbox.add_image(OTHER_IMAGE, shareable=False, visibility="shared")


def _refused(sandbox: Sandbox, bot: BotHarness) -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "ValidationError",
                    "title": "ValidationError",
                    "status": 400,
                    "detail": "member_id is not an account",
                    "request_id": "req-400",
                }
            ]
        }
    )
    sandbox.inject(Fault.answer(400, body, method="POST"))


def _down(sandbox: Sandbox, bot: BotHarness) -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "ServiceUnavailable",
                    "status": 503,
                    "detail": "maintenance",
                    "request_id": "req-503",
                }
            ]
        }
    )
    sandbox.inject(*[Fault.answer(503, body, method="POST") for _ in range(3)])


def _html(sandbox: Sandbox, bot: BotHarness) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    sandbox.inject(
        *[Fault.answer(502, page, content_type="text/html", method="POST") for _ in range(3)]
    )


# A member already there (a 409 to the add) is no failure: tests/test_drift.py says what
# the thread says then.
OUTCOMES: list[tuple[str, Callable[[Sandbox, BotHarness], None], str, str, list[str]]] = [
    (
        "not found",
        lambda s, b: None,
        "11111111-2222-4333-8444-555555555555",
        "image_not_found",
        ["wasn't found, or it doesn't belong to the bot's cloud account"],
    ),
    (
        "forbidden",
        _unshareable,
        OTHER_IMAGE,
        "not_shareable",
        ["can't be shared from this account"],
    ),
    (
        "member refused",
        _refused,
        IMAGE,
        "member_refused",
        [
            f"The cloud refused member id `{MEMBER}`",
            "member_id is not an account",
            "Request id for support: `req-400`",
        ],
    ),
    (
        "unavailable",
        _down,
        IMAGE,
        "unavailable",
        [
            "didn't answer properly, even after retries",
            "Please try again",
            "Request id for support: `req-503`",
        ],
    ),
    ("proxy html", _html, IMAGE, "unavailable", ["Please try again"]),
]


@pytest.mark.parametrize(
    ("setup", "image", "kind", "expected"),
    [pytest.param(s, i, k, e, id=name) for name, s, i, k, e in OUTCOMES],
)
def test_each_cloud_answer_becomes_a_precise_thread_reply(
    bot: BotHarness,
    sandbox: Sandbox,
    slack: FakeSlack,
    setup: Callable[[Sandbox, BotHarness], None],
    image: str,
    kind: str,
    expected: list[str],
) -> None:
    setup(sandbox, bot)
    bot.ack_text(f"{image} {MEMBER}")

    parent = bot.parent()
    [reply] = bot.wait_thread(parent)
    for fragment in expected:
        assert fragment in reply
    request = bot.wait_state("failed")
    assert request.error_kind == kind
    [update] = slack.updates(parent.ts)
    assert ":x: not done:" in json.dumps(update.args["blocks"])


def test_a_configuration_problem_tells_the_user_kindly_and_the_log_in_detail(
    make_bot: Callable[..., BotHarness], caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot(SCP_SECRET_KEY="not-the-right-secret-key")
    bot.grant("U1", Role.SHARER)
    bot.grant("UADMIN", Role.ADMIN)
    bot.services.members.add(MEMBER, "QA", by="test")

    bot.ack_text(f"{IMAGE} {MEMBER}")

    [reply] = bot.wait_thread(bot.parent())
    assert "credentials or settings were refused" in reply and "<@UADMIN>" in reply
    assert "signature" not in reply.lower()
    request = bot.wait_state("failed")
    assert (request.error_kind, request.api_status) == ("misconfigured", 401)
    logged = " ".join(r.getMessage() + json.dumps(vars(r), default=str) for r in caplog.records)
    assert "401" in logged and "signature" in logged.lower()
    assert "not-the-right-secret-key" not in logged


BAD_INPUT = [
    ("help", "*Usage*"),
    (IMAGE, "Which account should get the image?"),
    (f"not-a-uuid {MEMBER}", "`not-a-uuid` is not an image id"),
    (f"../../etc/passwd {MEMBER}", "`../../etc/passwd` is not an image id"),
    (f"{IMAGE}/../x {MEMBER}", "is not an image id"),
    (f"{IMAGE}%2F.. {MEMBER}", "is not an image id"),
    (f"{IMAGE}?x=1 {MEMBER}", "is not an image id"),
    (f"{IMAGE} a8f1/../../members", "is not a member id"),
    (f"{IMAGE} a8f1%2e%2e", "is not a member id"),
    (f"{IMAGE} a8f1?status=accepted", "is not a member id"),
    (f"{IMAGE} {'a' * 65}", "longer than 64 characters"),
    (f"{IMAGE} а8f10467", "only look like a member id"),  # Cyrillic а
    (f"{IMAGE.replace('0', '０', 1)} {MEMBER}", "only look like an image id"),  # fullwidth 0
    (f"{IMAGE} {MEMBER}\u200b", "only look like a member id"),  # zero-width space
    # The odd character is named, never a U+FFFD in its place.
    (
        f"{IMAGE} {MEMBER}\u200b",
        f"`{MEMBER}[U+200B]` has characters that only look like a member id (non-ASCII or"
        " invisible), the first a U+200B ZERO WIDTH SPACE.",
    ),
    (
        f"{IMAGE} \u0430{MEMBER[1:]}",
        "the first a U+0430 CYRILLIC SMALL LETTER A.",
    ),
    (f"{IMAGE} <@U999>", "is not a member id"),
    (f"{IMAGE} {MEMBER} {'x' * 400}", "Keep the reason under 300 characters"),
    (f"{IMAGE} {MEMBER} because\u202eevil", "invisible or control characters"),
    (f"{IMAGE} {MEMBER} nightly\tbuild", "invisible or control characters"),  # a TAB
    (f"{IMAGE} ab\u00a0cd", "`ab[U+00A0]cd` has a U+00A0 NO-BREAK SPACE inside"),
    (f"{IMAGE} ab\u3000cd QA", "`ab[U+3000]cd` has a U+3000 IDEOGRAPHIC SPACE inside"),
    (f"{IMAGE}\u2003{MEMBER}", "has a U+2003 EM SPACE inside, and an image id has no spaces"),
    (f"unshare {IMAGE} ab\x85cd", "`ab[U+0085]cd` has a U+0085 NEXT LINE inside"),
    (f"{IMAGE} ab\x1ccd", "`ab[U+001C]cd` has a U+001C INFORMATION SEPARATOR FOUR inside"),
    (f"{IMAGE} {MEMBER} --for 7d --for 1d", "`--for` is there twice"),
    (f"unshare {IMAGE} {MEMBER} --for 1d", "`unshare` removes the member now and takes no"),
    ("frobnicate", "I don't know `frobnicate`"),
    ("list", "Something is missing: `/share-image list <image_id>`"),
    ("x" * 1200, "longer than 1000 characters"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_INPUT)
def test_bad_input_gets_a_precise_message_and_changes_nothing(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack, text: str, expected: str
) -> None:
    ack = bot.ack_text(text)

    assert expected in ack
    assert "/share-image <image_id> <member_id> [--for <duration>] [reason]" in ack  # usage follows
    time.sleep(0.1)  # give a (wrongly) started worker the chance to show itself
    assert member_calls(sandbox) == []
    assert slack.messages() == []
    assert bot.all_requests() == []


def test_a_reason_with_an_emoji_joined_by_zero_width_joiners_is_shared_as_typed(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    family = "👨\u200d👩\u200d👧"
    ack = bot.ack_text(f"{IMAGE} {MEMBER} for the family {family} build")

    assert ack.startswith("On it")
    request = bot.wait_state("pending")
    assert request.reason == f"for the family {family} build"
    assert f"for the family {family} build" in json.dumps(
        bot.parent().args["blocks"], ensure_ascii=False
    )
    assert len(adds(sandbox)) == 1


def test_whitespace_tricks_are_tolerated_when_the_ids_are_clean(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    ack = bot.ack_text(f"\u00a0 {IMAGE.upper()}\t\t{MEMBER}  \n")
    assert ack.startswith("On it")
    bot.wait_state("pending")
    assert [r.path for r in adds(sandbox)] == [f"/v1/images/{IMAGE}/members"]


def test_someone_without_a_role_is_refused_and_told_who_can_help(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    ack = bot.ack_text(f"{IMAGE} {MEMBER}", user="UNOBODY")

    assert "You don't have a role that lets you share images" in ack
    assert "<@UADMIN>" in ack
    time.sleep(0.1)
    assert member_calls(sandbox) == [] and slack.messages() == []
    assert bot.all_requests() == []


def test_a_role_for_another_image_does_not_count(bot: BotHarness, sandbox: Sandbox) -> None:
    bot.grant("U2", Role.SHARER, OTHER_IMAGE)
    assert "You don't have a role" in bot.ack_text(f"{IMAGE} {MEMBER}", user="U2")
    assert bot.ack_text(f"{OTHER_IMAGE} {MEMBER}", user="U2").startswith("On it")


def test_a_requester_is_told_approval_is_needed_and_nothing_is_sent(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    bot.grant("UREQ", Role.REQUESTER)
    ack = bot.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")

    assert "This needs an approver's OK (your role asks for approval)" in ack
    bot.wait_state("awaiting_approval")
    assert member_calls(sandbox) == []


def test_outside_the_channel_the_answer_goes_to_the_response_url(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    slack.not_in_channel.add("CPRIVATE")
    url = slack.response_url("private")

    bot.ack_text(f"{IMAGE} {MEMBER}", channel="CPRIVATE", response_url=url)

    [post] = slack.wait_for(lambda: slack.responses("private"), what="a response_url post")
    assert post.body["response_type"] == "ephemeral"
    assert "It is *pending*" in post.body["text"]
    assert "Invite me" in post.body["text"]
    request = bot.wait_state("pending")
    told = bot.told(request.id)
    assert told.via_response_url is True and told.parent_ts is None
    assert len(adds(sandbox)) == 1


def test_an_expired_response_url_falls_back_to_a_direct_message(
    bot: BotHarness, slack: FakeSlack
) -> None:
    slack.not_in_channel.add("CPRIVATE")
    url = slack.response_url("old")
    slack.expire_response_url("old")

    bot.ack_text(f"{IMAGE} {MEMBER}", channel="CPRIVATE", response_url=url)

    dm = slack.wait_for(lambda: slack.messages("U1"), what="a direct message")
    assert "It is *pending*" in dm[0].args["text"]


@pytest.mark.parametrize(
    "forgery",
    [
        {"signature": "v0=" + "0" * 64},
        {"timestamp_offset": -301.0},
        {"signed": False},
    ],
    ids=["forged", "stale", "unsigned"],
)
def test_forged_or_stale_requests_get_401_and_reach_nothing(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack, forgery: dict[str, Any]
) -> None:
    response = bot.command(f"{IMAGE} {MEMBER}", **forgery)

    assert response.status_code == 401
    time.sleep(0.1)
    assert member_calls(sandbox) == [] and slack.messages() == []
    assert bot.all_requests() == []


def test_many_commands_at_once_are_all_acked_and_answered(
    bot: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    # How fast is the benchmark's to measure (python -m bench); here: every one of 20
    # simultaneous commands gets its ack, its thread reply and exactly one add.
    sandbox.delay = 0.5
    members = [f"acct{n:04d}" for n in range(20)]
    for m in members:
        bot.services.members.add(m, f"account {m}", by="test")
    acks: dict[str, tuple[int, str]] = {}

    def type_command(member: str) -> None:
        response = bot.command(f"{IMAGE} {member}", channel=f"C{member}")
        acks[member] = (response.status_code, response.text)

    threads = [threading.Thread(target=type_command, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(status == 200 for status, _ in acks.values())
    assert all(member in text for member, (_, text) in acks.items())
    slack.wait_for(
        lambda: len([m for m in slack.messages() if m.args.get("thread_ts")]) == 20,
        timeout=60,
        what="20 thread replies",
    )
    assert sorted(call.member_id or "" for call in adds(sandbox)) == members


def test_health_check_answers(bot: BotHarness) -> None:
    import httpx

    response = httpx.get(f"{bot.url}/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True, "database": "ok"}
    assert httpx.get(f"{bot.url}/nothing-here").status_code == 404


def test_one_structured_log_line_per_outcome_and_no_secrets(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.harness import SECRETS

    caplog.set_level(logging.INFO)
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")

    outcomes = [r for r in caplog.records if r.getMessage() == "share outcome"]
    assert len(outcomes) == 1
    line: Any = outcomes[0]
    assert (line.request, line.user, line.image, line.member, line.state, line.api_status) == (
        1,
        "U1",
        IMAGE,
        MEMBER,
        "pending",
        200,
    )
    assert isinstance(line.duration_ms, int)
    everything = " ".join(r.getMessage() + json.dumps(vars(r), default=str) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in everything


def test_a_command_whose_text_has_the_word_payload_is_answered(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    # Bolt reads a form holding the word "payload" anywhere as an interaction's payload
    # field: without the server's reading of the form, this command got no answer at all.
    ack = bot.ack_text(f"{IMAGE} {MEMBER} payload test for the QA build")

    assert ack.startswith("On it: sharing image")
    request = bot.wait_state("pending")
    assert request.reason == "payload test for the QA build"
    [add] = adds(sandbox)
    assert add.member_id == MEMBER
