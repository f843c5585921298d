"""Hostile input: forged and replayed requests, forged clicks, escaping arguments, markup, secrets.

Each test asserts what the attacker (or the victim) sees and that nothing was decided,
sent or stored that should not be.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.logs import configure_logging
from bot.scp.sandbox import Fault, Sandbox
from bot.sharing.values import Role
from tests.fakes.slack import Call, FakeSlack
from tests.harness import (
    ACCESS_KEY,
    IMAGE,
    MEMBER,
    OTHER_IMAGE,
    SECRET_KEY,
    SECRETS,
    SIGNING_SECRET,
    BotHarness,
    image_reads,
    member_calls,
    settings_for,
)

UNKNOWN = "ffffffffffffffffffffffffffffffff"
USAGE = "/share-image <image_id> <member_id> [--for <duration>] [reason]"


def ask(bot: BotHarness, member: str = MEMBER, *, request_id: int = 1) -> Call:
    """UREQ asks; returns the approval card once it is posted."""
    bot.ack_text(f"{IMAGE} {member} QA run", user="UREQ")
    bot.wait_state("awaiting_approval", request_id=request_id)
    cards = bot.slack.wait_for(
        lambda: len(cards := bot.slack.messages("CAPPROVE")) >= request_id and cards,
        what=f"card {request_id}",
    )
    return cards[request_id - 1]


def post_signed(
    bot: BotHarness,
    body: str,
    *,
    timestamp: int | None = None,
    secret: str = SIGNING_SECRET,
    signed_body: str | None = None,
) -> httpx.Response:
    """POST `body` to the bot with Slack's headers, signed over `signed_body` (default: body)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(
        timestamp=stamp, body=signed_body if signed_body is not None else body
    )
    return httpx.post(
        f"{bot.url}/slack/events",
        content=body.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(signature),
        },
    )


def click_body(bot: BotHarness, card: Call, action: str = "approve", **edits: Any) -> str:
    """The form body of a click on `card`; `edits` replace fields of the clicked action."""
    payload = bot.sender.click_payload(card, action, user_id=edits.pop("user_id", "UAPP1"))
    payload["actions"][0].update(edits)
    return urlencode({"payload": json.dumps(payload)})


def undecided(bot: BotHarness, *request_ids: int) -> None:
    """The requests still wait for a decision, and nobody is recorded as deciding."""
    for request_id in request_ids or (1,):
        request = bot.request(request_id)
        assert (request.state, request.decided_by, request.decided_at) == (
            "awaiting_approval",
            None,
            None,
        )


def nothing_sent(bot: BotHarness, sandbox: Sandbox, posted_before: int) -> None:
    """No cloud call, no card edited, no new message, no modal."""
    time.sleep(0.15)  # a wrongly woken worker would show itself by now
    assert member_calls(sandbox) == []
    assert bot.slack.updates() == []
    assert len(bot.slack.messages()) == posted_before
    assert bot.slack.calls("views.open") == []


# -- signatures ---------------------------------------------------------------------------------

SIGNATURE_FORGERIES: dict[str, dict[str, Any]] = {
    "forged": {"signature": "v0=" + "0" * 64},
    "unsigned": {"signed": False},
    "stale": {"timestamp_offset": -301.0},
    # Slack's rule is five minutes either way, judged when the bot reads the request: a
    # minute beyond it, so that a request that waits a second on a busy machine is still
    # from the future when it is checked.
    "from-the-future": {"timestamp_offset": 360.0},
    "wrong-scheme": {"signature": "v1=abc"},
}


def test_clicks_that_slack_did_not_sign_just_now_get_401_and_decide_nothing(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, subtests: pytest.Subtests
) -> None:
    card = ask(team)
    posted = len(slack.messages())

    for name, forgery in SIGNATURE_FORGERIES.items():
        for action in ("approve", "deny"):
            with subtests.test(forgery=name, action=action):
                response = team.sender.click(card, action, user_id="UAPP1", **forgery)

                assert response.status_code == 401
                nothing_sent(team, sandbox, posted)
                assert slack.responses() == []
                undecided(team)


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "body-edited-after-signing", "signature-of-another-request"],
)
def test_signatures_that_do_not_belong_to_the_body_get_401(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, tamper: str
) -> None:
    card = ask(team)
    posted = len(slack.messages())
    body = click_body(team, card)
    kwargs: dict[str, Any] = {
        "wrong-secret": {"secret": "not-the-signing-secret"},
        # Signed as a click by an approver, then edited to come from someone else.
        "body-edited-after-signing": {"signed_body": body.replace("UAPP1", "UAPP2")},
        "signature-of-another-request": {"signed_body": urlencode({"text": "status"})},
    }[tamper]

    assert post_signed(team, body, **kwargs).status_code == 401

    # The same forged ways on a command: nothing is recorded.
    command = urlencode(team.sender.command_payload(f"{IMAGE} {UNKNOWN}", user_id="USHARE"))
    assert post_signed(team, command, **kwargs).status_code == 401
    nothing_sent(team, sandbox, posted)
    assert slack.responses() == []
    undecided(team)
    assert len(team.all_requests()) == 1


def test_a_replayed_click_is_refused_by_age_or_by_state(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    card = ask(team)
    body = click_body(team, card)
    then = int(time.time()) - 301
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=str(then), body=body)
    # The captured request was genuine when it was sent, 5 minutes and a second ago...
    at_the_time = SignatureVerifier(SIGNING_SECRET, clock=_Frozen(then))
    assert at_the_time.is_valid(body=body, timestamp=str(then), signature=signature)

    # ...and is refused now.
    assert post_signed(team, body, timestamp=then).status_code == 401
    time.sleep(0.15)
    undecided(team)
    assert member_calls(sandbox) == [] and slack.responses() == []

    # Inside the 5 minutes a replay is a double click: the compare-and-set refuses it.
    now = int(time.time())
    assert post_signed(team, body, timestamp=now).status_code == 200
    team.wait_state("pending")
    assert post_signed(team, body, timestamp=now).status_code == 200
    [refusal] = slack.wait_for(lambda: slack.responses(), what="the replay's refusal")
    assert refusal.body["text"] == "Request #1 was already approved by <@UAPP1>; nothing changed."
    assert refusal.body["response_type"] == "ephemeral"
    time.sleep(0.15)
    assert len([r for r in member_calls(sandbox) if r.method == "POST"]) == 1
    assert team.request().decided_by == "UAPP1"


class _Frozen:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


# -- forged button payloads -------------------------------------------------------------------


def _refused_click(bot: BotHarness, body: str) -> dict[str, Any]:
    """Send a click; return the one ephemeral answer posted to its response_url."""
    name = json.loads(parse_qs(body)["payload"][0])["response_url"].rsplit("/", 1)[1]
    assert post_signed(bot, body).status_code == 200
    [refusal] = bot.slack.wait_for(lambda: bot.slack.responses(name), what="the refusal")
    assert refusal.body["response_type"] == "ephemeral"
    assert refusal.body.get("replace_original") is False
    return refusal.body


UNKNOWN_REQUEST = "That request doesn't exist (any more); nothing was done."


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_a_click_carrying_another_requests_id_than_its_card_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, action: str
) -> None:
    first = ask(team)
    ask(team, UNKNOWN, request_id=2)
    posted = len(slack.messages())

    # The card of #1, edited to approve #2 (whose own card is elsewhere).
    refusal = _refused_click(team, click_body(team, first, action, value="2"))

    assert refusal["text"] == UNKNOWN_REQUEST
    nothing_sent(team, sandbox, posted)
    undecided(team, 1, 2)


FORGED_VALUES: list[Any] = [
    "999",
    "0",
    "-1",
    "abc",
    "",
    "1 OR 1=1",
    "1.0",
    "1e0",
    "0x1",
    "²",
    None,
    [1],
    {"id": 1},
]


def test_a_click_with_a_value_that_is_no_request_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, subtests: pytest.Subtests
) -> None:
    card = ask(team)
    posted = len(slack.messages())

    for value in FORGED_VALUES:
        for action in ("approve", "deny"):
            with subtests.test(value=value, action=action):
                refusal = _refused_click(team, click_body(team, card, action, value=value))

                assert refusal["text"] == UNKNOWN_REQUEST
                nothing_sent(team, sandbox, posted)
                undecided(team)


def test_a_click_that_claims_no_message_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    card = ask(team)
    posted = len(slack.messages())
    payload = team.sender.click_payload(card, "approve", user_id="UAPP1")
    del payload["message"]
    del payload["container"]["message_ts"]

    refusal = _refused_click(team, urlencode({"payload": json.dumps(payload)}))

    assert refusal["text"] == UNKNOWN_REQUEST
    nothing_sent(team, sandbox, posted)
    undecided(team)


@pytest.mark.parametrize("clicker", ["UREQ", "USHARE", "UNOBODY"])
def test_a_deny_click_without_the_right_is_refused_without_opening_the_modal(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, clicker: str
) -> None:
    card = ask(team)
    posted = len(slack.messages())

    refusal = _refused_click(team, click_body(team, card, "deny", user_id=clicker))

    assert refusal["text"].startswith("Only approvers and admins can decide share requests.")
    nothing_sent(team, sandbox, posted)
    undecided(team)


def test_an_approver_with_a_role_for_another_image_cannot_decide(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    team.grant("UOTHER", Role.APPROVER, OTHER_IMAGE)
    card = ask(team)
    posted = len(slack.messages())

    refusal = _refused_click(team, click_body(team, card, user_id="UOTHER"))

    assert refusal["text"].startswith("Only approvers and admins can decide")
    nothing_sent(team, sandbox, posted)
    undecided(team)


@pytest.mark.parametrize("action", ["approve", "deny"])
@pytest.mark.parametrize("marked", [True, False], ids=["marked-expired", "time-just-ran-out"])
def test_a_decision_on_an_expired_request_is_refused(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, action: str, marked: bool
) -> None:
    card = ask(team)
    if not marked:
        team.stop_worker()  # nobody has marked it yet: only the clock says it is over
    team.clock.advance(hours=24, seconds=1)
    if marked:
        team.worker.wake()
        team.wait_state("expired")
    posted = len(slack.messages())
    updates = len(slack.updates())

    refusal = _refused_click(team, click_body(team, card, action))

    assert refusal["text"] == "Request #1 expired before a decision; nothing was sent."
    time.sleep(0.15)
    assert member_calls(sandbox) == [] and slack.calls("views.open") == []
    assert len(slack.messages()) == posted and len(slack.updates()) == updates
    request = team.request()
    assert request.state == ("expired" if marked else "awaiting_approval")
    assert request.decided_by is None


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("abc|CAPPROVE|1.2", UNKNOWN_REQUEST),
        ("|||", UNKNOWN_REQUEST),
        ("999|CAPPROVE|1.2", UNKNOWN_REQUEST),
    ],
)
def test_a_deny_modal_with_forged_metadata_is_refused_in_the_modal(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, metadata: str, expected: str
) -> None:
    ask(team)
    posted = len(slack.messages())
    forged = {"type": "modal", "callback_id": "deny_reason", "private_metadata": metadata}
    typed = {"reason": {"reason_input": {"value": "no"}}}

    response = team.submit_view("UAPP1", forged, typed)

    assert response.json() == {"response_action": "errors", "errors": {"reason": expected}}
    nothing_sent(team, sandbox, posted)
    undecided(team)


# -- arguments built to escape ------------------------------------------------------------------

FULLWIDTH_IMAGE = IMAGE.replace("a", "\uff41", 1)  # ａ
ESCAPES: list[Any] = [
    # unshare: the same ids reach a DELETE on /members/{member_id}
    ("USHARE", f"unshare ../../etc/passwd {MEMBER}", "`../../etc/passwd` is not an image id"),
    ("USHARE", f"unshare {IMAGE}/../../x {MEMBER}", "is not an image id"),
    ("USHARE", f"unshare {IMAGE}%2F..%2F {MEMBER}", "is not an image id"),
    ("USHARE", f"unshare {IMAGE} {MEMBER}/../../../images", "is not a member id"),
    ("USHARE", f"unshare {IMAGE} {MEMBER}?status=accepted", "is not a member id"),
    ("USHARE", f"unshare {IMAGE} {MEMBER}#fragment", "is not a member id"),
    ("USHARE", f"unshare {IMAGE} %2e%2e", "`%2e%2e` is not a member id"),
    ("USHARE", f"unshare {IMAGE} {MEMBER};rm", "is not a member id"),
    ("USHARE", f"unshare {IMAGE} \u0430{MEMBER[1:]}", "only look like a member id"),  # Cyrillic
    ("USHARE", f"unshare {IMAGE} {MEMBER}\u2060", "only look like a member id"),  # word joiner
    ("USHARE", f"unshare {FULLWIDTH_IMAGE} {MEMBER}", "only look like an image id"),
    ("USHARE", f"unshare {IMAGE}", "Something is missing: `/share-image unshare <image_id>"),
    ("USHARE", f"unshare {IMAGE} {'b' * 65}", "longer than 64 characters"),
    ("USHARE", f"unshare {IMAGE} {MEMBER} {'x' * 301}", "Keep the reason under 300 characters"),
    ("USHARE", f"unshare {IMAGE} {MEMBER} ok\u200bthen", "invisible or control characters"),
    ("USHARE", f"unshare {IMAGE} {MEMBER} line\x00feed", "invisible or control characters"),
    ("USHARE", f"unshare <!channel> {MEMBER}", "`&lt;!channel&gt;` is not an image id"),
    ("USHARE", f"UNSHARE {IMAGE} <@U999>", "`&lt;@U999&gt;` is not a member id"),
    # list: the id reaches a GET on /members
    ("USHARE", "list ../../etc/passwd", "`../../etc/passwd` is not an image id"),
    ("USHARE", f"list {IMAGE}/members", "is not an image id"),
    ("USHARE", f"list {IMAGE}?member_id=x", "is not an image id"),
    ("USHARE", f"list {IMAGE}%00", "is not an image id"),
    ("USHARE", f"list {IMAGE[:-1]}", "is not an image id"),
    ("USHARE", f"list {IMAGE}\u200b", "only look like an image id"),
    ("USHARE", f"list {FULLWIDTH_IMAGE}", "only look like an image id"),
    ("USHARE", f"list {IMAGE} {MEMBER}", f"I didn't expect `{MEMBER}` there."),
    ("USHARE", "list <https://evil.example|click>", "`&lt;https://evil.example|click&gt;`"),
    ("USHARE", "list", "Something is missing: `/share-image list <image_id>`"),
    # admin commands, typed by an admin
    ("UADMIN", "admin grant <!channel> admin", "`&lt;!channel&gt;` is not a Slack user"),
    ("UADMIN", "admin grant <!subteam^S1|@everyone> admin", "is not a Slack user"),
    ("UADMIN", "admin grant <@U123>\u200b admin", "is not a Slack user"),
    ("UADMIN", "admin revoke U123;DROP sharer", "`U123;DROP` is not a Slack user"),
    ("UADMIN", "admin grant <@U123> superuser", "`superuser` is not a role"),
    ("UADMIN", "admin grant <@U123> \uff41dmin", "is not a role"),  # fullwidth a
    ("UADMIN", "admin grant <@U123> admin ../../x", "`../../x` is not an image id"),
    ("UADMIN", f"admin grant <@U123> admin {FULLWIDTH_IMAGE}", "only look like an image id"),
    ("UADMIN", "admin member add ../x Partner", "`../x` is not a member id"),
    ("UADMIN", f"admin member add {MEMBER}?x Partner", "is not a member id"),
    ("UADMIN", f"admin member add {MEMBER} {'n' * 81}", "Keep the name under 80 characters"),
    ("UADMIN", f"admin member add {MEMBER} evil\u202ename", "invisible or control characters"),
    ("UADMIN", "admin member add", "Something is missing"),
    ("UADMIN", "admin member remove %2e%2e", "`%2e%2e` is not a member id"),
    ("UADMIN", "admin oncall add <@U123> 2026-01-01T00:00Z ../../x", "`../../x` is not a time"),
    ("UADMIN", "admin oncall add <@U123> 2026-01-02 2026-01-01", "must end after it starts"),
    ("UADMIN", "admin oncall remove <!here>", "`&lt;!here&gt;` is not a Slack user"),
    ("UADMIN", "admin frobnicate", "Admin commands:"),
]


def _everything(bot: BotHarness) -> tuple[Any, ...]:
    services = bot.services
    return (
        services.grants.all(),
        services.members.all(),
        services.oncall.all(),
        services.audit.recent(),
        bot.all_requests(),
    )


def test_arguments_built_to_escape_are_refused_precisely_and_change_nothing(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack, subtests: pytest.Subtests
) -> None:
    for user, text, expected in ESCAPES:
        with subtests.test(text=text):
            before = _everything(team)

            ack = team.ack_text(text, user=user)

            assert expected in ack
            assert USAGE in ack  # the usage follows every complaint
            for raw in ("<!channel>", "<!here>", "<!subteam", "<@U999>", "<https://", "\u202e"):
                assert raw not in ack
            time.sleep(0.1)  # a wrongly woken worker would show itself by now
            assert member_calls(sandbox) == []
            assert slack.messages() == [] and slack.responses() == []
            assert _everything(team) == before


# -- Slack markup in what users type ------------------------------------------------------------

REASON = "<!channel> <@U123> *bold* <https://evil.example|click> <!here> <#C999|general> ~strike~"
NAME = "<!here> Partner <https://evil.example/name|n>"
DENY_REASON = "<!channel> no <https://evil.example/deny|x>"
RAW = ("<!channel>", "<!here>", "<@U123>", "<https://evil", "<#C999", "*bold*", "~strike~")
NAMED = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"


def text_objects(value: Any) -> Iterator[tuple[str, str]]:
    """Every Block Kit text object in `value`, as (type, text)."""
    if isinstance(value, dict):
        if value.get("type") in {"mrkdwn", "plain_text"} and isinstance(value.get("text"), str):
            yield value["type"], value["text"]
        for item in value.values():
            yield from text_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from text_objects(item)


def test_markup_in_reasons_and_names_never_reaches_slack_unescaped(
    team: BotHarness, sandbox: Sandbox, slack: FakeSlack
) -> None:
    sandbox.add_image(OTHER_IMAGE, visibility="shared")
    slack.not_in_channel.add("CPRIVATE")
    acks = [team.ack_text(f"admin member add {NAMED} {NAME}", user="UADMIN")]

    # 1: shared directly, in the channel.
    acks.append(team.ack_text(f"{IMAGE} {MEMBER} {REASON}", user="USHARE"))
    team.wait_state("pending", 1)
    # 2: asked, then denied with a reason full of markup too.
    acks.append(team.ack_text(f"{IMAGE} {NAMED} {REASON}", user="UREQ"))
    team.wait_state("awaiting_approval", 2)
    card = slack.wait_for(lambda: slack.messages("CAPPROVE"), what="the card")[0]
    team.sender.click(card, "deny", user_id="UAPP1")
    assert team.submit_deny("UAPP1", DENY_REASON).status_code == 200
    team.wait_state("denied", 2)
    # 3: asked, then approved.
    acks.append(team.ack_text(f"{OTHER_IMAGE} {MEMBER} {REASON}", user="UREQ"))
    team.wait_state("awaiting_approval", 3)
    card = slack.wait_for(lambda: len(c := slack.messages("CAPPROVE")) == 2 and c)[1]
    team.sender.click(card, "approve", user_id="UAPP2")
    team.wait_state("pending", 3)
    # 4: shared where the bot is not a member: the answer goes to the response_url.
    url = slack.response_url("private")
    acks.append(
        team.ack_text(
            f"{OTHER_IMAGE} {NAMED} {REASON}", user="USHARE", channel="CPRIVATE", response_url=url
        )
    )
    team.wait_state("pending", 4)
    slack.wait_for(lambda: slack.responses("private"), what="the private answer")

    # The shares went through, and the database keeps what was typed, as typed.
    assert [r.reason for r in team.all_requests()] == [REASON] * 4
    assert team.request(2).deny_reason == DENY_REASON
    assert {m.member_id: m.name for m in team.services.members.all()}[NAMED] == NAME
    assert len([r for r in member_calls(sandbox) if r.method == "POST"]) == 3

    shown_as_typed = 0
    sent = [c.args for c in slack.calls("chat.postMessage") + slack.calls("chat.update")]
    sent += [{"view": c.args.get("view")} for c in slack.calls("views.open")]
    sent += [r.body for r in slack.responses(include_rejected=True)]
    sent += [{"text": ack} for ack in acks]
    assert len(sent) > 15
    for args in sent:
        mrkdwn = [str(args.get("text") or "")]
        for kind, text in text_objects([args.get("blocks"), args.get("view")]):
            if kind == "mrkdwn":
                mrkdwn.append(text)
            else:
                shown_as_typed += REASON in text or DENY_REASON in text
        for text in mrkdwn:
            for raw in RAW:
                assert raw not in text, f"unescaped {raw!r} in {text!r}"
            assert (
                "<https://evil.example/name" not in text
                and "<https://evil.example/deny" not in text
            )
    # The reasons are shown, in plain_text, exactly as typed: on parents, cards and updates.
    assert shown_as_typed >= 8


# -- secrets -------------------------------------------------------------------------------------

WRONG_SECRET_KEY = "SK-wrong-secret-9876543210fedcba"
LOUD = ("slack_sdk", "slack_bolt", "httpx", "httpcore", "urllib3", "bot", "handlers", "storage")


class SignatureKeepingSandbox(Sandbox):
    """The sandbox, also keeping every `Scp-Signature` it was sent (they must never leak)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signatures: list[str] = []

    def _serve(self, method: str, target: str, headers: Message, body: bytes) -> Any:
        if signature := headers.get("Scp-Signature"):
            self.signatures.append(str(signature))
        return super()._serve(method, target, headers, body)


@contextlib.contextmanager
def the_bots_logging(secrets: list[str]) -> Iterator[None]:
    """The bot's own JSON logging to stderr, with every logger at DEBUG; undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LOUD}
    configure_logging(secrets, level=logging.DEBUG)
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def dump_database(path: Path) -> str:
    """Every row of every table, every column, as text."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "share_requests" in tables
        return "\n".join(
            f"{table}: {row!r}"
            for table in tables
            for row in db.execute(f'SELECT * FROM "{table}"')
        )


def test_no_secret_reaches_a_log_line_a_slack_message_or_a_stored_row(
    slack: FakeSlack, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    secrets = [*SECRETS, WRONG_SECRET_KEY]
    acks: list[str] = []
    with (
        SignatureKeepingSandbox(ACCESS_KEY, SECRET_KEY) as sandbox,
        the_bots_logging(secrets),
        contextlib.ExitStack() as stack,
    ):
        sandbox.add_image(IMAGE, visibility="shared")
        bot = BotHarness(
            settings_for(slack, sandbox.url, tmp_path, SHARE_NOTIFY_CHANNEL="CNOTIFY"), slack
        )
        stack.callback(bot.close)
        for user, role in [("UREQ", Role.REQUESTER), ("USHARE", Role.SHARER)]:
            bot.grant(user, role)
        bot.grant("UAPP1", Role.APPROVER)
        bot.grant("UADMIN", Role.ADMIN)
        for member in (MEMBER, NAMED, UNKNOWN):
            bot.services.members.add(member, "QA", by="test")

        # Success, with Slack rate-limiting the first post.
        slack.rate_limit("chat.postMessage", retry_after=1)
        acks.append(bot.ack_text(f"{IMAGE} {MEMBER} nightly", user="USHARE"))
        bot.wait_state("pending", 1)
        # An approval, and a denial.
        acks.append(bot.ack_text(f"{IMAGE} {NAMED} please", user="UREQ"))
        bot.wait_state("awaiting_approval", 2)
        card = slack.wait_for(lambda: slack.messages("CAPPROVE"))[0]
        bot.sender.click(card, "approve", user_id="UAPP1")
        bot.wait_state("pending", 2)
        acks.append(bot.ack_text(f"unshare {IMAGE} {MEMBER} done", user="UREQ"))
        bot.wait_state("awaiting_approval", 3)
        card = slack.wait_for(lambda: len(c := slack.messages("CAPPROVE")) == 2 and c)[1]
        bot.sender.click(card, "deny", user_id="UAPP1")
        bot.submit_deny("UAPP1", "not today")
        bot.wait_state("denied", 3)
        # The cloud API down (503 until the retries run out).
        sandbox.inject(*[Fault.answer(503, method="POST") for _ in range(3)])
        acks.append(bot.ack_text(f"{IMAGE} {UNKNOWN}", user="USHARE"))
        bot.wait_state("failed", 4)
        # Reading, listing, a forged click, the response_url path.
        acks += [bot.ack_text("status", user="USHARE"), bot.ack_text("admin grants", user="UADMIN")]
        bot.command(f"list {IMAGE}", user="USHARE", response_url=slack.response_url("list"))
        slack.wait_for(lambda: slack.responses("list"))
        assert bot.sender.click(card, "approve", user_id="UAPP1", signed=False).status_code == 401

        # A second bot whose cloud secret is wrong: 401 from the gateway.
        other = tmp_path / "misconfigured"
        other.mkdir()
        wrong = BotHarness(
            settings_for(slack, sandbox.url, other, SCP_SECRET_KEY=WRONG_SECRET_KEY), slack
        )
        stack.callback(wrong.close)
        wrong.grant("USHARE", Role.SHARER)
        wrong.services.members.add(MEMBER, "QA", by="test")
        acks.append(wrong.ack_text(f"{IMAGE} {MEMBER}", user="USHARE", channel="C2"))
        assert wrong.wait_state("failed").error_kind == "misconfigured"

    captured = capfd.readouterr()
    logged = captured.err + captured.out
    lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    loggers = {line["logger"] for line in lines}
    # The capture worked: the bot's outcome lines, and the libraries' DEBUG chatter.
    # Two shares, a denial, the 503 and the 401: one outcome line each.
    assert sum(line["message"] == "share outcome" for line in lines) == 5
    assert {"slack_sdk.web.async_base_client", "httpcore.connection"} <= loggers
    assert any(line["level"] == "debug" for line in lines)
    assert len(member_calls(sandbox)) == 7
    assert len(sandbox.signatures) == len(member_calls(sandbox)) + len(image_reads(sandbox))
    places = {
        "logs": logged,
        "slack calls": json.dumps(
            [(c.method, c.args, c.response) for c in slack.calls()], ensure_ascii=False
        ),
        "response_url posts": json.dumps(
            [r.body for r in slack.responses(include_rejected=True)], ensure_ascii=False
        ),
        "acks": "\n".join(acks),
        "database": dump_database(tmp_path / "bot.db"),
        "misconfigured database": dump_database(other / "bot.db"),
    }
    for secret in [*secrets, *sandbox.signatures]:
        for place, text in places.items():
            assert secret not in text, f"a secret ({secret[:6]}…) is in the {place}"
