"""The domain on asyncio, without the HTTP app: the worker's tasks carrying a share out
against the sandbox and the fake Slack, the check before a share that trusts a fresh
image list, and the worker's bounds, acks-first pause and stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.scp.sandbox import Record, Sandbox
from bot.services import Services, build_services, make_cloud_client, make_worker
from bot.sharing.commands import Share
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.values import Role
from bot.sharing.worker import AGAIN_AFTER, Outcome, Worker
from storage import Database
from tests.fakes.slack import FakeSlack
from tests.harness import FAST_RETRY, IMAGE, MEMBER, settings_for

GHOST_IMAGE = "99999999-9999-4999-8999-999999999999"


def _services(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path, **overrides: Any) -> Services:
    settings = settings_for(slack, sandbox.url, tmp_path, **overrides)
    services = build_services(
        settings,
        database=Database(settings.DATABASE_PATH),
        cloud=make_cloud_client(settings, retry=FAST_RETRY),
    )
    slack.knows_user("U1")
    services.grants.grant("U1", Role.SHARER, "", by="test")
    services.members.add(MEMBER, "QA account", by="test")
    return services


async def _until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)
    return found


async def _with_worker(
    services: Services, work: Callable[[Worker], Awaitable[None]], **options: Any
) -> None:
    """Run the worker as `python -m bot` does (a task of the loop), do `work`, then stop
    it and release every client."""
    worker = make_worker(services, poll_interval=0.02, **options)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.images_tried.wait(), 10)
        await work(worker)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await services.aclose()


def _share(services: Services, image: str = IMAGE) -> ShareRequest:
    asked = services.share.ask("U1", Share(image, MEMBER, "qa"), language="en", channel_id="C1")
    services.wake()
    return asked.request


def _done(services: Services, request_id: int) -> ShareRequest | None:
    request = services.requests.get(request_id)
    told = services.messages.get(request_id).announced_state
    if request is not None and request.state not in {
        RequestState.QUEUED,
        RequestState.SENDING,
    }:
        return request if told == request.state else None
    return None


def _after(sandbox: Sandbox, mark: int) -> list[Record]:
    return [r for r in sandbox.records[mark:] if r.path.startswith("/v1/images")]


# -- one cloud round trip for an ordinary share -------------------------------------------


def test_a_share_of_an_image_the_fresh_list_knows_is_one_call_to_the_cloud(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    services = _services(slack, sandbox, tmp_path)

    async def work(worker: Worker) -> None:
        assert services.images.stored.get(IMAGE) is not None  # the list, as refreshed on start
        mark = len(sandbox.records)
        request = _share(services)
        done = await _until(lambda: _done(services, request.id), "the share carried out")
        assert done.state is RequestState.PENDING
        calls = _after(sandbox, mark)
        assert [(r.method, r.path) for r in calls] == [("POST", f"/v1/images/{IMAGE}/members")]
        [parent] = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
        [reply] = slack.thread(str(parent.ts))
        assert "*pending*" in str(reply.args["text"])

    asyncio.run(_with_worker(services, work))


def test_an_image_the_list_does_not_know_is_read_before_the_add(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    services = _services(slack, sandbox, tmp_path)

    async def work(worker: Worker) -> None:
        # The list as it was before the image was made: it does not know it.
        services.images.stored.replace([], services.images.stored.now())
        mark = len(sandbox.records)
        request = _share(services)
        done = await _until(lambda: _done(services, request.id), "the share carried out")
        assert done.state is RequestState.PENDING
        calls = [(r.method, r.path) for r in _after(sandbox, mark)]
        assert calls == [("GET", f"/v1/images/{IMAGE}"), ("POST", f"/v1/images/{IMAGE}/members")]

    asyncio.run(_with_worker(services, work))


def test_a_stale_list_is_not_trusted(slack: FakeSlack, sandbox: Sandbox, tmp_path: Path) -> None:
    services = _services(slack, sandbox, tmp_path, IMAGE_LIST_REFRESH_SECONDS=60)

    async def work(worker: Worker) -> None:
        rows = [services.images.stored.get(IMAGE)]
        an_hour_ago = services.images.stored.now() - timedelta(hours=1)
        services.images.stored.replace([r for r in rows if r is not None], an_hour_ago)
        mark = len(sandbox.records)
        request = _share(services)
        await _until(lambda: _done(services, request.id), "the share carried out")
        methods = [r.method for r in _after(sandbox, mark)]
        assert methods == ["GET", "POST"]

    asyncio.run(_with_worker(services, work))


def test_an_image_deleted_since_the_list_was_read_is_not_found_by_the_add(
    slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    services = _services(slack, sandbox, tmp_path)

    async def work(worker: Worker) -> None:
        # The list still shows an image someone deleted since: Shared and active.
        known = services.images.stored.get(IMAGE)
        assert known is not None
        ghost = replace(known, id=GHOST_IMAGE, name="deleted-since")
        services.images.stored.replace([known, ghost], services.images.stored.now())
        mark = len(sandbox.records)
        request = _share(services, GHOST_IMAGE)
        done = await _until(lambda: _done(services, request.id), "the share failed")
        assert done.state is RequestState.FAILED
        assert done.error_kind == "image_not_found"
        calls = _after(sandbox, mark)
        assert [(r.method, r.status) for r in calls] == [("POST", 404)]
        [parent] = [m for m in slack.messages("C1") if not m.args.get("thread_ts")]
        [reply] = slack.thread(str(parent.ts))
        assert "wasn't found" in str(reply.args["text"])
        assert sandbox.members(GHOST_IMAGE) == []

    asyncio.run(_with_worker(services, work))


# -- the worker's bounds, pause and stop ------------------------------------------------------


class _Due:
    def __init__(self, request_id: int, follow_up: bool = False) -> None:
        self.id = request_id
        self.follow_up = follow_up


class _Requests:
    """Due requests and nothing else: what the worker's loop reads."""

    def __init__(self, count: int, *, follow_ups: bool = False) -> None:
        self.left = list(range(1, count + 1))
        self.follow_ups = follow_ups
        self.looks = 0

    def held(self) -> list[object]:
        return []

    def drop_leases(self) -> int:
        return 0

    def due(self, limit: int, *, follow_ups: int | None = None) -> list[_Due]:
        self.looks += 1
        return [_Due(request_id, self.follow_ups) for request_id in self.left[:limit]]


class _Blocking(Worker):
    """A worker whose requests wait until released, counting how many run at once."""

    def __init__(self, requests: _Requests, **options: Any) -> None:
        super().__init__(
            requests=requests,  # type: ignore[arg-type]
            service=None,  # type: ignore[arg-type]
            announcer=None,  # type: ignore[arg-type]
            poll_interval=0.01,
            **options,
        )
        self.due_requests = requests
        self.running = 0
        self.most = 0
        self.started: list[tuple[int, float]] = []
        self.release = asyncio.Event()

    async def advance(self, request_id: int) -> None:
        self.started.append((request_id, time.monotonic()))
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        self.due_requests.left.remove(request_id)


def test_no_more_requests_are_under_way_than_the_bound() -> None:
    async def scenario() -> None:
        requests = _Requests(100)
        worker = _Blocking(requests, at_once=8)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await _until(lambda: worker.running == 8, "8 under way")
        for _ in range(20):  # many looks while every slot is taken
            worker.wake()
            await asyncio.sleep(0.01)
        assert worker.running == 8 and worker.under_way == 8
        worker.release.set()
        await _until(lambda: not requests.left, "all carried out")
        stop.set()
        await running
        assert worker.most == 8

    asyncio.run(scenario())


def test_the_old_threads_keyword_still_sets_the_bound() -> None:
    worker = _Blocking(_Requests(0), threads=5)
    assert worker.at_once == 5 and worker.threads == 5


def test_follow_ups_take_at_most_their_own_share_of_the_bound() -> None:
    async def scenario() -> None:
        requests = _Requests(100, follow_ups=True)
        worker = _Blocking(requests, at_once=40)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await _until(lambda: worker.running == worker.follow_ups_at_once, "follow-ups started")
        await asyncio.sleep(0.1)
        assert worker.running == worker.follow_ups_at_once == 16
        worker.release.set()
        stop.set()
        await running

    asyncio.run(scenario())


def test_a_burst_of_wakes_starts_work_once_the_wakes_pause() -> None:
    async def scenario() -> None:
        requests = _Requests(0)
        worker = _Blocking(requests, at_once=8)
        worker.poll_interval = 10.0  # only wakes make it look
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.05)
        # A burst: a command every 5 ms for 100 ms, each recorded and waking the worker.
        began = time.monotonic()
        for request_id in range(1, 21):
            requests.left.append(request_id)
            worker.wake()
            await asyncio.sleep(0.005)
        burst_end = time.monotonic()
        await _until(lambda: worker.started, "work started")
        first = worker.started[0][1]
        # Nothing started while the wakes kept coming, and it started soon after they paused.
        assert first >= burst_end
        assert first - burst_end < 0.15
        assert first - began <= worker.acks_first_at_most + 0.1
        worker.release.set()
        stop.set()
        await running

    asyncio.run(scenario())


def test_a_burst_that_goes_on_waits_no_longer_than_the_bound() -> None:
    async def scenario() -> None:
        requests = _Requests(0)
        worker = _Blocking(requests, at_once=8)
        worker.poll_interval = 10.0
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.05)
        requests.left.append(1)
        began = time.monotonic()
        while not worker.started and time.monotonic() - began < 2:
            worker.wake()  # wakes that never pause
            await asyncio.sleep(0.005)
        assert worker.started
        assert worker.started[0][1] - began < worker.acks_first_at_most + 0.15
        worker.release.set()
        stop.set()
        await running

    asyncio.run(scenario())


def test_a_stopping_worker_cancels_what_does_not_end_in_time() -> None:
    async def scenario() -> None:
        requests = _Requests(3)
        worker = _Blocking(requests, at_once=8, finish_within=0.2)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await _until(lambda: worker.running == 3, "3 under way")
        looks = requests.looks
        began = time.monotonic()
        stop.set()
        await asyncio.wait_for(running, 5)
        assert 0.2 <= time.monotonic() - began < 2
        assert worker.running == 0  # cancelled
        assert requests.left == [1, 2, 3]  # not carried out: read back at the next start
        assert requests.looks == looks  # nothing new leased after the stop

    asyncio.run(scenario())


def test_the_delays_after_each_outcome_are_one_table() -> None:
    assert set(AGAIN_AFTER) == set(Outcome)
    assert AGAIN_AFTER[Outcome.REMOVAL_REFUSED] == timedelta(minutes=5)
    assert AGAIN_AFTER[Outcome.APPROVERS_UNREACHABLE] == timedelta(0)


def test_a_worker_told_to_stop_before_it_starts_ends_at_once() -> None:
    async def scenario() -> None:
        worker = _Blocking(_Requests(5), at_once=2)
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(worker.run(stop), 2)
        assert not worker.started

    asyncio.run(scenario())
