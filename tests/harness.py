"""A running bot for tests: the real app over HTTP on 127.0.0.1, a fake Slack, the sandbox.

`BotHarness` wires the production pieces together exactly as `python -m bot` does,
except that the worker runs as a thread of the test process (so a test can stop
and restart it) and the clock can be moved forward.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx

from bot.app import create_app
from bot.scp import RetryPolicy
from bot.scp.sandbox import Record, Sandbox
from bot.server import WebApp
from bot.services import Services, build_services, make_cloud_client
from bot.settings import Settings, load_settings
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.worker import Worker
from storage import Database, Role, SlackData
from tests.fakes.slack import Call, FakeSlack, SlackSender

ACCESS_KEY = "AKTEST0123456789"
SECRET_KEY = "SK-test-secret-0123456789abcdef"
SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-1-A1-1-test-app-token-0123456789"
SECRETS = (SECRET_KEY, SIGNING_SECRET, BOT_TOKEN, APP_TOKEN)

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
OTHER_IMAGE = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"
MEMBER_NAME = "QA account"

# Fast retries: the client's real backoff is tested in the client's own tests.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2.0)


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        """Jump forward."""
        self.offset += timedelta(**delta)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256


def settings_for(slack: FakeSlack, sandbox_url: str, tmp_path: Any, **overrides: Any) -> Settings:
    """Settings pointing at the fakes."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SCP_ENDPOINT": sandbox_url,
        "SCP_ACCESS_KEY": ACCESS_KEY,
        "SCP_SECRET_KEY": SECRET_KEY,
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "SHARE_APPROVAL_CHANNEL": "CAPPROVE",
        "SHARE_NOTIFY_CHANNEL": "",
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class BotHarness:
    """The bot, served and working, with handles on everything a test looks at."""

    settings: Settings
    slack: FakeSlack
    clock: Clock = field(default_factory=Clock)
    retry: RetryPolicy = FAST_RETRY
    # The cloud client's timeout; None keeps the client's own default.
    timeout: httpx.Timeout | None = None

    def __post_init__(self) -> None:
        self.database = Database(self.settings.DATABASE_PATH, clock=self.clock)
        self.services: Services = build_services(
            self.settings,
            database=self.database,
            cloud=make_cloud_client(self.settings, retry=self.retry, timeout=self.timeout),
        )
        self.app = create_app(self.services)
        self._server = make_server(
            "127.0.0.1",
            0,
            WebApp(self.app, self.database, signing_secret=SIGNING_SECRET),
            server_class=_ThreadingWSGIServer,
            handler_class=_Quiet,
        )
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._server_thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.sender = SlackSender(f"{self.url}/slack/events", SIGNING_SECRET, fake=self.slack)
        self._worker_stop: threading.Event | None = None
        self._worker_thread: threading.Thread | None = None
        self.start_worker()

    # -- lifecycle ---------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start the worker thread (as `python -m bot worker` would)."""
        self.worker = Worker(
            requests=self.services.requests,
            service=self.services.share,
            announcer=self.services.announcer,
            languages=self.services.languages,
            threads=16,
            poll_interval=0.02,
            images=self.services.images,
            image_refresh=timedelta(seconds=self.settings.IMAGE_LIST_REFRESH_SECONDS),
            reconciler=self.services.reconciler,
            rota=self.services.rota_keeper,
            rota_refresh=timedelta(seconds=self.settings.ONCALL_REFRESH_SECONDS),
        )
        self.services.wake = self.worker.wake
        self._worker_stop = threading.Event()
        self._worker_thread = threading.Thread(
            target=self.worker.run, args=(self._worker_stop,), daemon=True
        )
        self._worker_thread.start()
        # The first image-list refresh goes before anything a test does, so that a fault a
        # test injects meets the request it is meant for.
        assert self.worker.images_tried.wait(10), "the first image-list refresh never ended"
        assert self.worker.rota_tried.wait(10), "the first read of the on-call rotas never ended"

    def stop_worker(self) -> None:
        """Stop the worker thread and wait for it."""
        if self._worker_stop is not None and self._worker_thread is not None:
            self._worker_stop.set()
            self.worker.wake()
            self._worker_thread.join(10)
            self._worker_stop = None
        self.services.wake = lambda: None

    def close(self) -> None:
        """Stop everything."""
        self.stop_worker()
        self._server.shutdown()
        self._server.server_close()
        self._server_thread.join(5)
        self.sender.close()
        self.services.close()

    # -- acting as Slack ----------------------------------------------------------------

    def command(
        self, text: str, *, user: str = "U1", channel: str = "C1", **kw: Any
    ) -> httpx.Response:
        """Type `/share-image text` as `user` in `channel`."""
        return self.sender.command(text, user_id=user, channel_id=channel, **kw)

    def ack_text(self, text: str, **kw: Any) -> str:
        """The ephemeral text the command's ack shows."""
        response = self.command(text, **kw)
        assert response.status_code == 200, response.text
        return str(response.json().get("text", "")) if response.content else ""

    def submit_deny(self, user: str, reason: str) -> httpx.Response:
        """Submit the deny modal the bot opened last, as Slack does."""
        opened = self.slack.wait_for(lambda: self.slack.calls("views.open"), what="a deny modal")
        typed = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
        return self.submit_view(user, opened[-1].args["view"], typed)

    def submit_view(
        self, user: str, view: dict[str, Any], values: dict[str, Any]
    ) -> httpx.Response:
        """Submit `view` as `user` with these input `values`, as Slack sends a submission."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T1", "domain": "fake-team"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "fake-verification-token",
            "trigger_id": "1.2.3",
            "view": {**view, "id": "V1", "team_id": "T1", "state": {"values": values}},
        }
        return self.sender.action(payload)

    def grant(self, user: str, role: Role, image: str = "") -> None:
        """Give `user` (a user of the fake Slack from now on) a role."""
        self.slack.knows_user(user)
        self.services.grants.grant(user, role, image, by="test")

    # -- looking -------------------------------------------------------------------------

    def all_requests(self) -> list[ShareRequest]:
        """Every stored request."""
        return self.services.requests.in_states(*RequestState)

    def request(self, request_id: int = 1) -> ShareRequest:
        """One stored request."""
        found = self.services.requests.get(request_id)
        assert found is not None, f"no request {request_id}"
        return found

    def told(self, request_id: int = 1) -> SlackData:
        """What Slack was told of a request: its messages and announcement."""
        return self.services.messages.get(request_id)

    def wait_state(self, state: str, request_id: int = 1, timeout: float = 10.0) -> ShareRequest:
        """Wait until a request reaches `state` and Slack has been told."""
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            found = self.services.requests.get(request_id)
            told = self.told(request_id).announced_state
            if found is not None and found.state == state and told == state:
                return found
            deadline.wait(0.02)
        raise AssertionError(f"request {request_id} never reached {state}: {found}")

    def parent(self, channel: str = "C1") -> Call:
        """The first message the bot posted in `channel` outside a thread."""
        return self.slack.wait_for(
            lambda: next(
                (c for c in self.slack.messages(channel) if not c.args.get("thread_ts")), None
            ),
            what=f"a parent message in {channel}",
        )

    def thread_texts(self, parent: Call) -> list[str]:
        """Texts posted in the parent's thread, in order."""
        assert parent.ts is not None
        return [str(c.args.get("text", "")) for c in self.slack.thread(parent.ts)]

    def wait_thread(self, parent: Call, count: int = 1) -> list[str]:
        """Wait for `count` replies in the parent's thread."""
        assert parent.ts is not None
        ts = parent.ts
        self.slack.wait_for(
            lambda: len(self.slack.thread(ts)) >= count, what=f"{count} thread replies"
        )
        return self.thread_texts(parent)


def adds(sandbox: Sandbox) -> list[Record]:
    """The add-member calls the sandbox received."""
    return [r for r in sandbox.records if r.method == "POST"]


def member_calls(sandbox: Sandbox) -> list[Record]:
    """Every call on the member API (the version list and the image reads left out)."""
    return [r for r in sandbox.records if r.path.startswith("/v1/") and "/members" in r.path]


def image_reads(sandbox: Sandbox) -> list[Record]:
    """Every read of an image or of the image list."""
    return [r for r in sandbox.records if r.path.startswith("/v1/") and "/members" not in r.path]
