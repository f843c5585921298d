"""The fake Slack speaks the real protocol: driven here by slack_sdk and slack_bolt themselves."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
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

from tests.fakes.slack import Call, FakeSlack, SlackSender, SlackSignature

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
    assert parent["ts"] < reply["ts"] and parent["ts"].startswith("1700000000.")
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

    assert fake.messages()[0].args["blocks"] == APPROVAL_BLOCKS
    assert client.users_info(user="U2", include_locale=True)["user"]["locale"] == "ko-KR"
    assert client.users_info(user="U3", include_locale=True)["user"]["locale"] == "en-US"
    assert "locale" not in client.users_info(user="U3")["user"]


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
