"""A running bot for tests: the real app over HTTP on 127.0.0.1, a fake Slack, the sandbox.

`BotHarness` wires the production pieces together exactly as `python -m bot` does: ONE
event loop (in a background thread of the test process) hosts the aiohttp server and the
worker's tasks. `h.call(coro)` runs a coroutine on that loop and returns its result; the
test thread still reads SQLite directly. The worker can be stopped and started again, and
the clock moved forward.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from bot.app import create_app
from bot.scp import RetryPolicy
from bot.scp.sandbox import Record, Sandbox
from bot.server import Listening, make_web_app
from bot.services import Services, build_services, make_cloud_client, make_worker
from bot.settings import Settings, load_settings
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.values import Role, SlackData
from storage import Database
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

# How long a closing harness lets the work still under way on its loop (a listener's Slack
# calls after its ack) end before cancelling it.
LEFTOVER_GRACE = 0.5


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        """Jump forward."""
        self.offset += timedelta(**delta)


T = TypeVar("T")


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
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="bot-loop", daemon=True
        )
        self._loop_thread.start()
        self.database = Database(self.settings.DATABASE_PATH, clock=self.clock)
        self.services: Services = build_services(
            self.settings,
            database=self.database,
            cloud=make_cloud_client(self.settings, retry=self.retry, timeout=self.timeout),
        )
        self.app = self.call(create_app(self.services))
        self._listening = Listening(make_web_app(self.app, self.database, self.settings))
        port = self.call(self._listening.start(0, "127.0.0.1"))
        self.url = f"http://127.0.0.1:{port}"
        self.sender = SlackSender(f"{self.url}/slack/events", SIGNING_SECRET, fake=self.slack)
        self._worker_stop: asyncio.Event | None = None
        self._worker_run: concurrent.futures.Future[Any] | None = None
        # What ended the last worker, when it did not simply stop (tests make it die).
        self.worker_failure: BaseException | None = None
        self.start_worker()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the bot's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- lifecycle ---------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start the worker's tasks on the bot's loop (as `python -m bot` does)."""
        self.worker = make_worker(self.services, at_once=16, poll_interval=0.02)
        stop = self._worker_stop = asyncio.Event()
        self._worker_run = asyncio.run_coroutine_threadsafe(self.worker.run(stop), self.loop)
        # The first image-list refresh goes before anything a test does, so that a fault a
        # test injects meets the request it is meant for.
        tried = (self.worker.images_tried, "the first image-list refresh never ended")
        read = (self.worker.rota_tried, "the first read of the on-call rotas never ended")
        for event, problem in (tried, read):
            try:
                self.call(asyncio.wait_for(event.wait(), 10))
            except TimeoutError:
                raise AssertionError(problem) from None

    def stop_worker(self) -> None:
        """Stop the worker's tasks and wait for them."""
        stop, run = self._worker_stop, self._worker_run
        if stop is not None and run is not None:
            self.loop.call_soon_threadsafe(stop.set)
            self.loop.call_soon_threadsafe(self.worker.wake)
            try:
                run.result(10)
            except Exception as error:  # a worker a test made die: kept for it to look at
                self.worker_failure = error
            self._worker_stop = self._worker_run = None
        self.services.wake = lambda: None

    def close(self) -> None:
        """Stop everything: the worker, the server, the clients, the loop."""
        try:
            self.stop_worker()
            self.call(self._listening.stop(1.0))
            self.sender.close()
            self.call(self._end_tasks(grace=LEFTOVER_GRACE))
            self.call(self.services.aclose())
        finally:
            try:
                self.call(self._wind_down())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._loop_thread.join(5)
                self.loop.close()

    async def _end_tasks(self, grace: float) -> None:
        """Let the tasks still running on the loop (a listener's work after its ack, which
        a test need not wait for) end within `grace` seconds, then cancel the rest and
        wait for them. A task left pending on a loop that stops is closed later by the
        garbage collector, after the loop: a Slack call it had under way then closes its
        connection on a closed loop, and the socket stays open (a ResourceWarning in
        whichever test runs next)."""
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5.0)

    async def _wind_down(self) -> None:
        """What `asyncio.run` does before it closes its loop: the tasks still there
        cancelled, the closed connections' last callbacks run, async generators and the
        default executor shut down."""
        await self._end_tasks(grace=0.0)
        await asyncio.sleep(0)  # connections closed just now release their sockets
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

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
