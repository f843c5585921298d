"""The fake Slack speaks the real protocol: driven here by slack_sdk and slack_bolt themselves."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack import (
    Call,
    FakeSlack,
    SlackSender,
    SlackSignature,
    validate_message,
    validate_options,
    validate_view,
)

SECRET = "test-signing-secret"
NOW = 1_700_000_000.0
COMMAND_FIELDS = [
    *("token", "team_id", "team_domain", "channel_id", "channel_name", "user_id"),
    *("user_name", "command", "text", "api_app_id", "response_url", "trigger_id"),
]

APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Share image *img-1*?"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "req-1",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "deny",
                "value": "req-1",
                "text": {"type": "plain_text", "text": "Deny"},
            },
        ],
    },
]


class FrozenClock:
    """slack_sdk.signature.Clock at a fixed time."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(base_url=fake.api_url, token=fake.bot_token)


# ---------------------------------------------------------------------- Web API


def test_post_thread_update_and_read_back(fake: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="Sharing img-1", blocks=APPROVAL_BLOCKS)
    reply = client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text="approved")
    client.chat_update(channel="C1", ts=parent["ts"], text="Shared img-1", blocks=[])

    assert parent["ok"] and parent["channel"] == "C1"
    assert parent["ts"] < reply["ts"]
    assert abs(float(parent["ts"]) - time.time()) < 60  # a ts is the moment of posting
    assert parent["message"]["blocks"][1]["block_id"] == "decision"
    assert parent["message"]["blocks"][0]["block_id"]  # Slack assigns missing block_ids
    assert [m.args["text"] for m in fake.messages("C1")] == ["Sharing img-1", "approved"]
    assert fake.messages("C1")[0].args["blocks"] == APPROVAL_BLOCKS
    assert [m.args["text"] for m in fake.thread(parent["ts"])] == ["approved"]
    assert [u.args["text"] for u in fake.updates(parent["ts"])] == ["Shared img-1"]
    assert fake.message(parent["ts"]) is not None
    assert fake.message(parent["ts"])["blocks"] == []  # type: ignore[index]
    assert [c.method for c in fake.calls()] == ["chat.postMessage"] * 2 + ["chat.update"]


def test_update_of_unknown_message_is_refused(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.chat_update(channel="C1", ts="1.000000", text="nope")
    assert caught.value.response["error"] == "message_not_found"


def test_form_encoded_blocks_are_decoded_and_locale_is_per_user(
    fake: FakeSlack, client: WebClient
) -> None:
    client.api_call(
        "chat.postMessage",
        params={"channel": "C1", "text": "t", "blocks": json.dumps(APPROVAL_BLOCKS)},
    )
    fake.set_locale("U2", "ko-KR")
    fake.add_user("U3")

    assert fake.messages()[0].args["blocks"] == APPROVAL_BLOCKS
    assert client.users_info(user="U2", include_locale=True)["user"]["locale"] == "ko-KR"
    assert client.users_info(user="U3", include_locale=True)["user"]["locale"] == "en-US"
    assert "locale" not in client.users_info(user="U3")["user"]


def test_users_info_knows_only_the_workspaces_users(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("UROBOT", is_bot=True)
    fake.add_user("UGONE", deleted=True)

    with pytest.raises(SlackApiError) as caught:
        client.users_info(user="U0LOWER")
    assert caught.value.response["error"] == "user_not_found"
    assert client.users_info(user="UROBOT")["user"]["is_bot"] is True
    assert client.users_info(user="UGONE")["user"]["deleted"] is True
    assert client.users_info(user="USLACKBOT")["user"]["id"] == "USLACKBOT"


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-wrong", "invalid_auth"), ("xapp-1-A1-1-fake-app-token", "not_allowed_token_type")],
)
def test_wrong_token_is_refused(fake: FakeSlack, token: str, error: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        WebClient(base_url=fake.api_url, token=token).auth_test()
    assert caught.value.response["error"] == error


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.api_call("chat.teleport")
    assert caught.value.response["error"] == "unknown_method"


def test_not_in_channel_raises(fake: FakeSlack, client: WebClient) -> None:
    fake.not_in_channel.add("C9")
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C9", text="hi")
    assert caught.value.response["error"] == "not_in_channel"
    assert fake.messages() == [] and not fake.calls("chat.postMessage")[0].ok


def test_scripted_failure_then_success(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="first")
    client.chat_postMessage(channel="C1", text="second")
    assert [m.args["text"] for m in fake.messages()] == ["second"]


def test_rate_limit_is_survived_by_the_retry_handler(fake: FakeSlack) -> None:
    client = WebClient(
        base_url=fake.api_url,
        token=fake.bot_token,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.rate_limit("chat.postMessage", retry_after=0)

    client.chat_postMessage(channel="C1", text="hello")

    assert [c.status for c in fake.calls("chat.postMessage")] == [429, 200]
    assert [m.args["text"] for m in fake.messages()] == ["hello"]


def test_rate_limit_without_retry_handler_raises(fake: FakeSlack, client: WebClient) -> None:
    fake.rate_limit("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="hello")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"


def test_wait_for_returns_the_value_or_dumps_the_calls(fake: FakeSlack, client: WebClient) -> None:
    threading.Timer(0.05, client.chat_postMessage, kwargs={"channel": "C1", "text": "late"}).start()
    [message] = fake.wait_for(lambda: fake.messages("C1"))
    assert message.args["text"] == "late"

    with pytest.raises(AssertionError, match=r"(?s)waiting for nothing.*chat\.postMessage"):
        fake.wait_for(lambda: fake.messages("C2"), timeout=0.05, what="nothing")


# ---------------------------------------------------------------------- response_url


def test_response_url_records_posts_until_expired(fake: FakeSlack) -> None:
    webhook = WebhookClient(fake.response_url("r1"))

    sent = webhook.send(text="only you", response_type="ephemeral", replace_original=False)
    fake.expire_response_url("r1")
    expired = webhook.send(text="too late")

    assert sent.status_code == 200
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert [r.body["text"] for r in fake.responses("r1")] == ["only you"]
    assert fake.responses("r1")[0].body["response_type"] == "ephemeral"


def test_response_url_allows_five_posts(fake: FakeSlack) -> None:
    webhook = WebhookClient(fake.response_url("r1"))
    statuses = [webhook.send(text=str(i)).status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]


# ---------------------------------------------------------------------- signing


def _captured(sender_kwargs: dict[str, Any], **request: Any) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    with SlackSender("http://bot.test/slack/events", SECRET, lambda: NOW, transport=transport) as s:
        s.command("img-1 123456789012", **sender_kwargs, **request)
    return seen[0]


def test_signature_matches_slacks_published_vector() -> None:
    # The worked example in Slack's "Verifying requests from Slack" guide.
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
        "%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    auth = SlackSignature("8f742231b10e8888abcd99yyyzzz85a5", clock=lambda: 1531420618)
    request = next(auth.sync_auth_flow(httpx.Request("POST", "http://bot.test/", content=body)))

    assert request.headers["X-Slack-Request-Timestamp"] == "1531420618"
    assert request.headers["X-Slack-Signature"] == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_signed_command_is_valid_for_slack_sdk() -> None:
    request = _captured({})
    verifier = SignatureVerifier(SECRET, clock=FrozenClock(NOW))  # type: ignore[arg-type]

    assert verifier.is_valid_request(request.content, dict(request.headers))
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = dict(httpx.QueryParams(request.content.decode()))
    for name in COMMAND_FIELDS:
        assert fields[name], name
    assert fields["command"] == "/share-image" and fields["text"] == "img-1 123456789012"


@pytest.mark.parametrize(
    "hostile",
    [{"timestamp_offset": -600}, {"signature": "v0=forged"}, {"signed": False}],
    ids=["stale", "forged", "unsigned"],
)
def test_hostile_requests_are_invalid(hostile: dict[str, Any]) -> None:
    request = _captured(hostile)
    verifier = SignatureVerifier(SECRET, clock=FrozenClock(NOW))  # type: ignore[arg-type]
    assert not verifier.is_valid_request(request.content, dict(request.headers))


# ---------------------------------------------------------------------- Bolt, both modes


def _bolt_app(fake: FakeSlack) -> App:
    app = App(
        signing_secret=SECRET,
        client=WebClient(base_url=fake.api_url, token=fake.bot_token),
    )

    @app.command("/share-image")
    def share(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        ack(f"Request for {command['text']} received")
        client.chat_postMessage(
            channel=command["channel_id"], text="approve?", blocks=APPROVAL_BLOCKS
        )

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_update(
            channel=body["channel"]["id"],
            ts=body["message"]["ts"],
            text=f"approved {action['value']} in {action['block_id']} by {body['user']['id']}",
            blocks=[],
        )

    @app.action("deny")
    def deny(ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="denied", replace_original=False)

    return app


def test_bolt_http_mode_accepts_commands_and_clicks(fake: FakeSlack) -> None:
    transport = httpx.WSGITransport(app=SlackRequestHandler(_bolt_app(fake)))
    with SlackSender(
        "http://bot.test/slack/events", SECRET, transport=transport, fake=fake
    ) as slack:
        answer = slack.command("img-1", channel_id="C1", response_url=fake.response_url("cmd"))
        [posted] = fake.wait_for(lambda: fake.messages("C1"))
        clicked = slack.click(posted, "approve", user_id="U2")
        [update] = fake.wait_for(lambda: fake.updates(posted.ts))
        slack.click(posted, "deny", user_id="U3", response_url=fake.response_url("deny"))
        [denied] = fake.wait_for(lambda: fake.responses("deny"))
        forged = slack.command("img-1", signature="v0=forged")

    assert (answer.status_code, answer.text) == (200, "Request for img-1 received")
    assert clicked.status_code == 200
    assert update.args["text"] == "approved req-1 in decision by U2"
    assert denied.body["text"] == "denied"
    assert forged.status_code == 401
    assert fake.calls()[0].method == "auth.test"  # Bolt checks its token at start-up


def test_bolt_socket_mode_acks_a_command(fake: FakeSlack) -> None:
    handler = SocketModeHandler(_bolt_app(fake), fake.app_token)
    try:
        handler.connect()
        fake.wait_socket_connected()
        sender = SlackSender("", SECRET)
        ack = sender.socket_command(fake, "img-1", channel_id="C1")
        [posted] = fake.wait_for(lambda: fake.messages("C1"))
        click_ack = sender.socket_click(fake, posted, "approve", user_id="U2")
        [update] = fake.wait_for(lambda: fake.updates(posted.ts))
    finally:
        handler.close()

    assert ack["payload"] == {"text": "Request for img-1 received"}
    assert "payload" not in click_ack and click_ack["envelope_id"]
    assert update.args["text"] == "approved req-1 in decision by U2"
    assert fake.calls("apps.connections.open")[0].ok


def test_socket_mode_client_reconnects_on_disconnect_request(fake: FakeSlack) -> None:
    handler = SocketModeHandler(_bolt_app(fake), fake.app_token)
    try:
        handler.connect()
        fake.wait_socket_connected()
        fake.socket_disconnect("refresh_requested")
        fake.wait_for(lambda: fake.socket_connection_count == 2, what="a second connection")
        ack = SlackSender("", SECRET).socket_command(fake, "img-2")
    finally:
        handler.close()

    assert ack["payload"] == {"text": "Request for img-2 received"}
    assert len(fake.calls("apps.connections.open")) == 2


def test_click_needs_a_button_the_bot_posted(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="no buttons")
    [posted] = fake.messages()
    with pytest.raises(AssertionError, match="approve"):
        SlackSender("", SECRET, fake=fake).click_payload(posted, "approve", user_id="U2")


def test_click_payload_is_a_real_block_actions(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="approve?", blocks=APPROVAL_BLOCKS)
    posted: Call = fake.messages()[0]
    payload = SlackSender("", SECRET, fake=fake).click_payload(posted, "deny", user_id="U2")

    assert payload["type"] == "block_actions"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted.ts,
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == posted.ts
    assert payload["response_url"] == fake.response_url("action-1")
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "deny",
        "decision",
        "req-1",
        "button",
    )


# ---------------------------------------------------------------------- lifecycle


def test_stop_leaves_no_threads_or_sockets() -> None:
    before = set(threading.enumerate())
    with FakeSlack() as fake:
        client = WebClient(base_url=fake.api_url, token=fake.bot_token)
        client.auth_test()
        WebhookClient(fake.response_url("r")).send(text="x")
    assert set(threading.enumerate()) == before
    fake.stop()  # idempotent


def test_socket_mode_client_is_closed_by_stop() -> None:
    # A client left connected is closed by the server (1001), without hanging stop().
    before = set(threading.enumerate())
    fake = FakeSlack().start()
    app = _bolt_app(fake)
    handler = SocketModeHandler(app, fake.app_token)
    handler.connect()
    fake.wait_socket_connected()
    fake.stop()
    handler.close()
    app.listener_runner.listener_executor.shutdown()
    leftover = [t for t in set(threading.enumerate()) - before if t.name.startswith("fake-slack")]
    assert leftover == []


# ---------------------------------------------------------------------- Slack's limits

Blocks = list[dict[str, Any]]


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str = "x") -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def button(**fields: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "b", "text": plain("Go"), **fields}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def option(text: str = "o", value: str = "v") -> dict[str, Any]:
    return {"text": plain(text), "value": value}


def select(**fields: Any) -> dict[str, Any]:
    return {"type": "static_select", "action_id": "s", "options": [option()], **fields}


def text_input(**fields: Any) -> dict[str, Any]:
    element = {"type": "plain_text_input", "action_id": "i", **fields.pop("element", {})}
    return {"type": "input", "label": plain("Why"), "element": element, **fields}


def modal(**fields: Any) -> dict[str, Any]:
    return {"type": "modal", "title": plain("Deny"), "blocks": [section()], **fields}


# Each builds blocks with `n` of something; Slack takes `limit` of it and refuses one more,
# naming `path`.
MESSAGE_LIMITS: list[tuple[str, Callable[[int], Blocks], int, str]] = [
    ("blocks", lambda n: [section()] * n, 50, "blocks"),
    ("section_text", lambda n: [section("s" * n)], 3000, "blocks[0].text.text"),
    (
        "section_fields",
        lambda n: [{"type": "section", "fields": [mrkdwn("f")] * n}],
        10,
        "blocks[0].fields",
    ),
    (
        "section_field_text",
        lambda n: [{"type": "section", "fields": [mrkdwn("f"), plain("f" * n)]}],
        2000,
        "blocks[0].fields[1].text",
    ),
    (
        "context_elements",
        lambda n: [{"type": "context", "elements": [mrkdwn("c")] * n}],
        10,
        "blocks[0].elements",
    ),
    (
        "context_mrkdwn",
        lambda n: [{"type": "context", "elements": [mrkdwn("c" * n)]}],
        3000,
        "blocks[0].elements[0].text",
    ),
    (
        "context_plain_text",
        lambda n: [section(), {"type": "context", "elements": [mrkdwn("c"), plain("c" * n)]}],
        3000,
        "blocks[1].elements[1].text",
    ),
    ("header", lambda n: [{"type": "header", "text": plain("h" * n)}], 150, "blocks[0].text.text"),
    (
        "button_text",
        lambda n: [actions(button(text=plain("b" * n)))],
        75,
        "blocks[0].elements[0].text.text",
    ),
    (
        "button_value",
        lambda n: [actions(button(value="v" * n))],
        2000,
        "blocks[0].elements[0].value",
    ),
    (
        "button_url",
        lambda n: [actions(button(url="https://e.test/" + "u" * (n - 15)))],
        3000,
        "blocks[0].elements[0].url",
    ),
    (
        "action_id",
        lambda n: [actions(button(action_id="a" * n))],
        255,
        "blocks[0].elements[0].action_id",
    ),
    (
        "accessory_action_id",
        lambda n: [{**section(), "accessory": button(action_id="a" * n)}],
        255,
        "blocks[0].accessory.action_id",
    ),
    (
        "block_id",
        lambda n: [section(), {**section(), "block_id": "b" * n}],
        255,
        "blocks[1].block_id",
    ),
    (
        "actions_elements",
        lambda n: [actions(*(button(action_id=f"b{i}") for i in range(n)))],
        25,
        "blocks[0].elements",
    ),
    (
        "select_placeholder",
        lambda n: [actions(select(placeholder=plain("p" * n)))],
        150,
        "blocks[0].elements[0].placeholder.text",
    ),
    (
        "select_options",
        lambda n: [actions(select(options=[option()] * n))],
        100,
        "blocks[0].elements[0].options",
    ),
    (
        "option_text",
        lambda n: [actions(select(options=[option(), option("o" * n)]))],
        75,
        "blocks[0].elements[0].options[1].text.text",
    ),
    (
        "option_value",
        lambda n: [actions(select(options=[option(value="v" * n)]))],
        150,
        "blocks[0].elements[0].options[0].value",
    ),
    ("input_label", lambda n: [text_input(label=plain("l" * n))], 2000, "blocks[0].label.text"),
    ("input_hint", lambda n: [text_input(hint=plain("h" * n))], 2000, "blocks[0].hint.text"),
    (
        "input_max_length",
        lambda n: [text_input(element={"max_length": n})],
        3000,
        "blocks[0].element.max_length",
    ),
]


@pytest.mark.parametrize(
    ("make", "limit", "path"),
    [pytest.param(make, limit, path, id=name) for name, make, limit, path in MESSAGE_LIMITS],
)
def test_blocks_at_a_limit_are_taken_and_one_more_is_invalid_blocks(
    fake: FakeSlack, client: WebClient, make: Callable[[int], Blocks], limit: int, path: str
) -> None:
    taken = client.chat_postMessage(channel="C1", text="fallback", blocks=make(limit))
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="fallback", blocks=make(limit + 1))

    assert taken["ok"]
    assert caught.value.response.status_code == 200  # Slack answers errors with HTTP 200
    assert caught.value.response["error"] == "invalid_blocks"
    [problem] = caught.value.response["errors"]
    assert problem.startswith(f"{path}: "), problem
    assert [c.ok for c in fake.calls("chat.postMessage")] == [True, False]  # refused, recorded
    assert len(fake.messages()) == 1
    assert fake.warnings == []


def test_a_problem_says_where_and_by_how_much(client: WebClient) -> None:
    blocks = [section(), section(), section(), section("s" * 3412)]
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert caught.value.response.data == {
        "ok": False,
        "error": "invalid_blocks",
        "errors": ["blocks[3].text.text: 3,412 characters, more than 3,000"],
    }
    assert validate_message(blocks, "fallback") == caught.value.response["errors"]


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        pytest.param(
            [{"type": "header", "text": mrkdwn("Title")}],
            "blocks[0].text.type: must be 'plain_text', not 'mrkdwn'",
            id="header_mrkdwn",
        ),
        pytest.param(
            [section("")], "blocks[0].text.text: must not be empty", id="empty_text_object"
        ),
        pytest.param(
            [{"type": "section", "text": {"type": "markdown", "text": "x"}}],
            "blocks[0].text.type: must be 'plain_text' or 'mrkdwn', not 'markdown'",
            id="text_object_type",
        ),
        pytest.param(
            [{"type": "section", "text": "just a string"}],
            "blocks[0].text: must be a text object, not a string",
            id="text_not_an_object",
        ),
        pytest.param(
            [{"type": "carousel"}], "blocks[0].type: unknown block type 'carousel'", id="unknown"
        ),
        pytest.param(
            [actions({"type": "slider", "action_id": "s"})],
            "blocks[0].elements[0].type: unknown element type 'slider'",
            id="unknown_element",
        ),
        pytest.param(
            [{**section(), "block_id": "a"}, {**section(), "block_id": "a"}],
            "blocks[1].block_id: 'a' is already used by blocks[0]",
            id="duplicate_block_id",
        ),
        pytest.param(
            [actions(button(), button())],
            "blocks[0].elements[1].action_id: 'b' is already used in this block",
            id="duplicate_action_id",
        ),
        pytest.param(
            [{"type": "input", "label": plain("Why")}],
            "blocks[0].element: missing",
            id="input_without_element",
        ),
        pytest.param([{"type": "section"}], "blocks[0]: needs text or fields", id="empty_section"),
        pytest.param(
            [actions(button(text=plain("")))],
            "blocks[0].elements[0].text.text: must not be empty",
            id="empty_button_text",
        ),
    ],
)
def test_blocks_slack_cannot_show_are_invalid_blocks(
    client: WebClient, blocks: Blocks, problem: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert caught.value.response["error"] == "invalid_blocks"
    assert caught.value.response["errors"] == [problem]


@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update", "chat.postEphemeral"])
@pytest.mark.parametrize(
    ("text", "blocks", "error"),
    [
        pytest.param("t" * 40_001, None, "msg_too_long", id="text"),
        pytest.param("t", [section()] * 51, "invalid_blocks", id="blocks"),
        pytest.param("t", {"type": "section"}, "invalid_blocks_format", id="not_a_list"),
    ],
)
def test_every_message_method_refuses_what_slack_does(
    fake: FakeSlack,
    client: WebClient,
    method: str,
    text: str,
    blocks: Blocks | None,
    error: str,
) -> None:
    ts = client.chat_postMessage(channel="C1", text="original")["ts"]
    args: dict[str, Any] = {"channel": "C1", "text": text, "ts": ts, "user": "U1"}
    if blocks is not None:
        args["blocks"] = blocks
    with pytest.raises(SlackApiError) as caught:
        client.api_call(method, json=args)
    assert caught.value.response["error"] == error
    assert not fake.calls(method)[-1].ok
    assert fake.message(ts)["text"] == "original"  # type: ignore[index]


@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update", "chat.postEphemeral"])
def test_every_message_method_takes_a_message_at_the_limits(
    fake: FakeSlack, client: WebClient, method: str
) -> None:
    ts = client.chat_postMessage(channel="C1", text="original")["ts"]
    blocks = [{**section("s" * 3000), "block_id": f"{i:0255d}"} for i in range(50)]
    args = {"channel": "C1", "text": "t" * 40_000, "blocks": blocks, "ts": ts, "user": "U1"}

    answer = client.api_call(method, json=args)

    assert answer["ok"] and "warning" not in answer
    assert fake.calls(method)[-1].ok and fake.warnings == []


def test_form_encoded_blocks_are_checked_too(fake: FakeSlack, client: WebClient) -> None:
    too_many = json.dumps([section()] * 51)
    with pytest.raises(SlackApiError) as caught:
        client.api_call(
            "chat.postMessage", params={"channel": "C1", "text": "t", "blocks": too_many}
        )
    assert caught.value.response["errors"] == ["blocks: 51 blocks, more than 50"]
    broken = {"channel": "C1", "text": "t", "blocks": "[{"}
    with pytest.raises(SlackApiError) as caught:
        client.api_call("chat.postMessage", params=broken)
    assert caught.value.response["error"] == "invalid_blocks_format"


def test_a_message_needs_text_or_blocks(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.api_call("chat.postMessage", json={"channel": "C1", "text": ""})
    assert caught.value.response["error"] == "no_text"


def test_blocks_without_a_text_fallback_are_taken_with_a_warning(
    fake: FakeSlack, client: WebClient
) -> None:
    # Through api_call: slack_sdk's chat_postMessage warns itself before sending.
    answer = client.api_call("chat.postMessage", json={"channel": "C1", "blocks": [section()]})
    client.api_call(
        "chat.update",
        json={"channel": "C1", "ts": answer["ts"], "text": "  ", "blocks": [section()]},
    )
    WebhookClient(fake.response_url("r1")).send(blocks=[section()])

    assert answer["ok"] and answer["warning"] == "missing_text_in_message_with_blocks"
    assert answer["response_metadata"] == {"warnings": ["missing_text_in_message_with_blocks"]}
    assert fake.warnings == [
        "chat.postMessage: missing_text_in_message_with_blocks",
        "chat.update: missing_text_in_message_with_blocks",
        "response_url r1: missing_text_in_message_with_blocks",
    ]
    fake.clear()
    assert fake.warnings == []


# -- views

# Each builds a view with `n` of something, for `method`; Slack takes `limit` of it.
VIEW_LIMITS: list[tuple[str, str, Callable[[int], dict[str, Any]], int, str]] = [
    ("modal_blocks", "views.open", lambda n: modal(blocks=[section()] * n), 100, "view.blocks"),
    (
        "home_blocks",
        "views.publish",
        lambda n: {"type": "home", "blocks": [section()] * n},
        100,
        "view.blocks",
    ),
    ("title", "views.open", lambda n: modal(title=plain("t" * n)), 24, "view.title.text"),
    ("submit", "views.push", lambda n: modal(submit=plain("s" * n)), 24, "view.submit.text"),
    ("close", "views.update", lambda n: modal(close=plain("c" * n)), 24, "view.close.text"),
    ("callback_id", "views.open", lambda n: modal(callback_id="c" * n), 255, "view.callback_id"),
    (
        "private_metadata",
        "views.open",
        lambda n: modal(private_metadata="m" * n),
        3000,
        "view.private_metadata",
    ),
    (
        "home_private_metadata",
        "views.publish",
        lambda n: {"type": "home", "blocks": [], "private_metadata": "m" * n},
        3000,
        "view.private_metadata",
    ),
    (
        "input_label",
        "views.open",
        lambda n: modal(submit=plain("Deny"), blocks=[text_input(label=plain("l" * n))]),
        2000,
        "view.blocks[0].label.text",
    ),
    (
        "input_max_length",
        "views.open",
        lambda n: modal(submit=plain("Deny"), blocks=[text_input(element={"max_length": n})]),
        3000,
        "view.blocks[0].element.max_length",
    ),
    (
        "section_in_home",
        "views.publish",
        lambda n: {"type": "home", "blocks": [section("s" * n)]},
        3000,
        "view.blocks[0].text.text",
    ),
]

VIEW_ARGS = {"trigger_id": "1.2.abc", "user_id": "U1", "view_id": "V1"}


@pytest.mark.parametrize(
    ("method", "make", "limit", "path"),
    [pytest.param(*case[1:], id=case[0]) for case in VIEW_LIMITS],
)
def test_a_view_at_a_limit_is_taken_and_one_more_is_invalid_arguments(
    fake: FakeSlack,
    client: WebClient,
    method: str,
    make: Callable[[int], dict[str, Any]],
    limit: int,
    path: str,
) -> None:
    args = {**VIEW_ARGS, "trigger_id": fake.trigger_id()}
    taken = client.api_call(method, json={**args, "view": make(limit)})
    with pytest.raises(SlackApiError) as caught:
        client.api_call(method, json={**args, "view": make(limit + 1)})

    assert taken["ok"]
    assert caught.value.response["error"] == "invalid_arguments"
    [message] = caught.value.response["response_metadata"]["messages"]
    assert message.startswith(f"[ERROR] {path}: "), message
    assert [c.ok for c in fake.calls(method)] == [True, False]


@pytest.mark.parametrize(
    ("method", "view", "message"),
    [
        pytest.param(
            "views.open",
            {"type": "modal", "blocks": []},
            "[ERROR] view.title: missing",
            id="modal_without_title",
        ),
        pytest.param(
            "views.open",
            modal(title=mrkdwn("Deny")),
            "[ERROR] view.title.type: must be 'plain_text', not 'mrkdwn'",
            id="mrkdwn_title",
        ),
        pytest.param(
            "views.open",
            modal(blocks=[text_input()]),
            "[ERROR] view.submit: missing, and a modal with input blocks needs it",
            id="input_without_submit",
        ),
        pytest.param(
            "views.publish",
            modal(),
            "[ERROR] view.type: must be one of 'home', not 'modal'",
            id="modal_on_home",
        ),
        pytest.param(
            "views.open",
            {"type": "home", "blocks": []},
            "[ERROR] view.type: must be one of 'modal', not 'home'",
            id="home_as_modal",
        ),
        pytest.param(
            "views.update",
            {"type": "modal", "title": plain("t")},
            "[ERROR] view.blocks: missing",
            id="no_blocks",
        ),
    ],
)
def test_views_slack_cannot_show_are_invalid_arguments(
    client: WebClient, method: str, view: dict[str, Any], message: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.api_call(method, json={**VIEW_ARGS, "view": view})
    assert caught.value.response.data == {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [message]},
    }


def test_views_through_slack_sdk_methods(fake: FakeSlack, client: WebClient) -> None:
    long_title = modal(title=plain("Deny request #1234567890"))  # 24 characters
    assert client.views_open(trigger_id=fake.trigger_id(), view=long_title)["ok"]
    assert client.views_push(trigger_id=fake.trigger_id(), view=long_title)["ok"]
    with pytest.raises(SlackApiError) as caught:
        client.views_update(view_id="V1", view=modal(title=plain("Deny request #12345678901")))
    assert caught.value.response["response_metadata"]["messages"] == [
        "[ERROR] view.title.text: 25 characters, more than 24"
    ]
    assert validate_view(long_title) == []


# -- response_url


@pytest.mark.parametrize(
    ("body", "answer", "problems"),
    [
        pytest.param({"text": "t" * 40_001}, "msg_too_long", [], id="text"),
        pytest.param(
            {"text": "t", "blocks": [section("s" * 3001)]},
            "invalid_blocks",
            ["blocks[0].text.text: 3,001 characters, more than 3,000"],
            id="blocks",
        ),
        pytest.param({"text": "t", "blocks": "{}"}, "invalid_blocks_format", [], id="format"),
    ],
)
def test_response_url_refuses_what_slack_does_and_keeps_its_posts(
    fake: FakeSlack, body: dict[str, Any], answer: str, problems: list[str]
) -> None:
    webhook = WebhookClient(fake.response_url("r1"))
    refused = webhook.send_dict(body)
    at_limit = webhook.send(text="t" * 40_000, blocks=[section("s" * 3000)] * 50)

    assert (refused.status_code, refused.body) == (400, answer)
    assert at_limit.status_code == 200
    [rejected, taken] = fake.responses("r1", include_rejected=True)
    assert (rejected.ok, list(rejected.problems)) == (False, problems)
    assert taken.ok and taken.ts
    assert [webhook.send(text=str(i)).status_code for i in range(5)] == [200] * 4 + [404]


# -- block_suggestion answers


def options(count: int, text: str = "o", value: str = "v") -> list[dict[str, Any]]:
    return [option(text, value)] * count


@pytest.mark.parametrize(
    ("answer", "problems"),
    [
        pytest.param({"options": []}, [], id="none"),
        pytest.param({"options": options(100, "o" * 75, "v" * 150)}, [], id="at_limits"),
        pytest.param(
            {"option_groups": [{"label": plain("g" * 75), "options": options(100)}] * 100},
            [],
            id="groups_at_limits",
        ),
        pytest.param(
            {"options": options(101)}, ["options: 101 options, more than 100"], id="101_options"
        ),
        pytest.param(
            {"options": [option(), option("o" * 76)]},
            ["options[1].text.text: 76 characters, more than 75"],
            id="long_text",
        ),
        pytest.param(
            {"options": [option(value="v" * 151)]},
            ["options[0].value: 151 characters, more than 150"],
            id="long_value",
        ),
        pytest.param(
            {"options": [{"text": mrkdwn("*o*"), "value": "v"}]},
            ["options[0].text.type: must be 'plain_text', not 'mrkdwn'"],
            id="mrkdwn_text",
        ),
        pytest.param(
            {"options": [{"text": plain("o")}]}, ["options[0].value: missing"], id="no_value"
        ),
        pytest.param(
            {"option_groups": [{"label": plain("g"), "options": options(1)}] * 101},
            ["option_groups: 101 option groups, more than 100"],
            id="101_groups",
        ),
        pytest.param(
            {"option_groups": [{"label": plain("g"), "options": options(101)}]},
            ["option_groups[0].options: 101 options, more than 100"],
            id="101_in_a_group",
        ),
        pytest.param(
            {"option_groups": [{"label": plain("g" * 76), "options": options(1)}]},
            ["option_groups[0].label.text: 76 characters, more than 75"],
            id="long_label",
        ),
        pytest.param(
            {"options": [], "option_groups": []},
            ["answer: must hold either options or option_groups"],
            id="both",
        ),
        pytest.param({}, ["answer: must hold either options or option_groups"], id="neither"),
    ],
)
def test_validate_options(answer: dict[str, Any], problems: list[str]) -> None:
    assert validate_options(answer) == problems


# ---------------------------------------------------------------------- message metadata

META = {"event_type": "share_image_step", "event_payload": {"request": 7, "step": "parent"}}


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        pytest.param({"event_type": "has space", "event_payload": {}}, "invalid_metadata_schema"),
        pytest.param({"event_type": "", "event_payload": {}}, "invalid_metadata_schema"),
        pytest.param({"event_type": "x" * 256, "event_payload": {}}, "invalid_metadata_schema"),
        pytest.param({"event_type": "ok_type", "event_payload": "text"}, "invalid_metadata_schema"),
        pytest.param({"event_type": "ok_type", "event_payload": [1]}, "invalid_metadata_schema"),
        pytest.param({"event_type": "ok_type"}, "invalid_metadata_schema"),
        pytest.param({"event_type": "ok", "event_payload": {}, "x": 1}, "invalid_metadata_format"),
        pytest.param(["not", "an", "object"], "invalid_metadata_format"),
    ],
)
def test_metadata_slack_would_refuse_is_refused_on_post_and_update(
    fake: FakeSlack, client: WebClient, metadata: Any, error: str
) -> None:
    posted = client.chat_postMessage(channel="C1", text="a message")
    for call in (
        lambda: client.api_call(
            "chat.postMessage", json={"channel": "C1", "text": "x", "metadata": metadata}
        ),
        lambda: client.api_call(
            "chat.update",
            json={"channel": "C1", "ts": posted["ts"], "text": "x", "metadata": metadata},
        ),
    ):
        with pytest.raises(SlackApiError) as refused:
            call()
        assert refused.value.response["error"] == error
    assert len(fake.messages("C1")) == 1
    assert "metadata" not in (fake.message(posted["ts"]) or {})


def test_history_and_replies_show_metadata_only_when_asked_and_page_with_cursors(
    fake: FakeSlack, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="C1", text="parent", metadata=META)
    for n in range(5):
        client.chat_postMessage(channel="C1", text=f"top {n}")
        client.chat_postMessage(
            channel="C1", thread_ts=parent["ts"], text=f"reply {n}", metadata=META
        )
    client.chat_postMessage(channel="C2", text="elsewhere", metadata=META)

    plain = client.conversations_history(channel="C1")
    assert [m["text"] for m in plain["messages"]] == [f"top {n}" for n in range(4, -1, -1)] + [
        "parent"
    ]
    assert all("metadata" not in m for m in plain["messages"])
    assert plain["messages"][-1]["thread_ts"] == parent["ts"]  # replies live in the thread

    texts, cursor, pages = [], None, 0
    while True:
        page = client.conversations_history(
            channel="C1", limit=2, cursor=cursor, include_all_metadata=True
        )
        pages += 1
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert pages == 3 and texts[-1] == "parent" and len(texts) == 6
    assert page["messages"][-1]["metadata"] == META

    since = client.conversations_history(channel="C1", oldest=parent["ts"])
    assert "parent" not in [m["text"] for m in since["messages"]]  # oldest is exclusive

    thread = client.conversations_replies(channel="C1", ts=parent["ts"], limit=3)
    assert [m["text"] for m in thread["messages"]] == ["parent", "reply 0", "reply 1"]
    assert all("metadata" not in m for m in thread["messages"])
    rest = client.conversations_replies(
        channel="C1",
        ts=parent["ts"],
        cursor=thread["response_metadata"]["next_cursor"],
        include_all_metadata=True,
    )
    assert [m["text"] for m in rest["messages"]] == [f"reply {n}" for n in range(2, 5)]
    assert all(m["metadata"] == META for m in rest["messages"])


@pytest.mark.parametrize(
    ("setup", "method", "args", "error"),
    [
        (lambda f: f.not_in_channel.add("C1"), "conversations.history", {}, "not_in_channel"),
        (lambda f: f.missing_channels.add("C1"), "conversations.history", {}, "channel_not_found"),
        (lambda f: f.not_in_channel.add("C1"), "conversations.replies", {}, "not_in_channel"),
        (lambda f: None, "conversations.replies", {"ts": "1.000001"}, "thread_not_found"),
        (lambda f: None, "conversations.history", {"cursor": "bm90IGEgY3Vyc29y"}, "invalid_cursor"),
    ],
)
def test_history_methods_answer_slacks_errors(
    fake: FakeSlack,
    client: WebClient,
    setup: Callable[[FakeSlack], None],
    method: str,
    args: dict[str, Any],
    error: str,
) -> None:
    parent = client.chat_postMessage(channel="C1", text="parent")
    setup(fake)
    params = {"channel": "C1", "ts": parent["ts"], **args}
    with pytest.raises(SlackApiError) as refused:
        client.api_call(method, http_verb="GET", params=params)
    assert refused.value.response["error"] == error


@pytest.mark.parametrize(
    ("channel", "needed"),
    [("C1", "channels:history"), ("G1", "groups:history"), ("D1", "im:history")],
)
def test_a_token_without_the_history_scope_is_refused_with_the_scope_named(
    fake: FakeSlack, client: WebClient, channel: str, needed: str
) -> None:
    fake.scopes = {"chat:write", "users:read"}
    client.chat_postMessage(channel=channel, text="still allowed")
    with pytest.raises(SlackApiError) as refused:
        client.conversations_history(channel=channel)
    assert refused.value.response["error"] == "missing_scope"
    assert refused.value.response["needed"] == needed
    assert refused.value.response["provided"] == "chat:write,users:read"
    fake.scopes.add(needed)
    assert client.conversations_history(channel=channel)["ok"]
