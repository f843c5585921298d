"""The worker: carries out recorded requests, outside Slack's 3-second ack.

Handlers only record requests. The worker finds rows that are due, leases each one it
takes, and moves it on as a task of the event loop: announce, call the cloud API,
announce again, follow a pending share. At most `at_once` requests are under way at
once (BOT_WORKER_THREADS, read as that bound), of which at most FOLLOW_UPS_AT_ONCE are
follow-ups. All state lives in SQLite, so a restart picks up where it stopped; a request
caught mid-call is reconciled with a read, never blindly sent again.

The image-list refresh, the drift reconcile and the rota read are tasks of the worker too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.scp.errors import CloudError, CloudUnavailable
from bot.sharing import states
from bot.sharing.approvals import Stage, nudge_due
from bot.sharing.errors import ApproversUnreachable, DeliveryError
from bot.sharing.images import ImageCatalog
from bot.sharing.oncall import RotaKeeper
from bot.sharing.pauses import pause
from bot.sharing.reconcile import Reconciler
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.service import ShareService
from storage import ShareRequests
from storage.errors import StorageError

log = logging.getLogger(__name__)


# How often a remove the cloud refused (not a passing failure) is tried again.
REMOVAL_RETRY = timedelta(minutes=5)
# After a crash, a change the dead worker sent this recently may still be being carried
# out by the cloud: one not found is read again until then, and only then sent once more
# (well inside the 30 s after a restart in which every interrupted request is answered).
RESTART_GRACE = timedelta(seconds=10)
# Follow-ups (status reads of pending shares, rechecks of failed ones) under way at once, at
# most: thousands due together (after a restart, an outage) never hold up new requests,
# which go first anyway, nor take every connection to the cloud.
FOLLOW_UPS_AT_ONCE = 16
# Acks first: while commands keep waking the worker (a burst), new work starts once the
# wakes pause this long, or once the burst has lasted ACKS_FIRST_AT_MOST: the burst's acks
# are answered before its shares compete with them for the loop.
ACKS_FIRST_QUIET = 0.02
ACKS_FIRST_AT_MOST = 0.2
# A stopping worker leases nothing new and gives what is under way this long to end;
# then it is cancelled (a request caught in `sending` is read back at the next start).
FINISH_WITHIN = 7.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of this thread, if one is running."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _seen(task: asyncio.Task[ShareRequest]) -> None:
    """Mark a task's failure as seen (asyncio logs one nobody looked at)."""
    if not task.cancelled():
        task.exception()


class Outcome(StrEnum):
    """How one step of a request ended, when nothing in the request says when to go on."""

    APPROVERS_UNREACHABLE = "approvers_unreachable"  # failed now: said at once
    CLOUD_FAILED = "cloud_failed"  # a read or remove without an answer
    REMOVAL_REFUSED = "removal_refused"  # a remove the cloud refused (credentials, rights)
    STORAGE_FAILED = "storage_failed"  # the database failed mid-request
    BUG = "bug"  # anything else: logged whole


# When to look at a request again after each outcome: the worker's rescheduling, as data.
# (A step that ends normally is due when its state says: `_next_due`; a delivery Slack did
# not take, when the announcer says.)
AGAIN_AFTER: dict[Outcome, timedelta] = {
    Outcome.APPROVERS_UNREACHABLE: timedelta(0),
    Outcome.CLOUD_FAILED: timedelta(seconds=30),
    Outcome.REMOVAL_REFUSED: REMOVAL_RETRY,
    Outcome.STORAGE_FAILED: timedelta(seconds=5),
    Outcome.BUG: timedelta(minutes=1),
}


class Announcer(Protocol):
    """Tells people what a request's state means (`bot.slack.announcer` does it in Slack)."""

    def up_to_date(self, request: ShareRequest) -> bool:
        """Whether people were told of the request's current state."""

    async def announce(self, request: ShareRequest) -> ShareRequest:
        """Bring what people were told up to date; `DeliveryError` when they could not be.

        Nothing is said (and `request` comes back at once) when they were told already; a
        request in another state comes back only when it moved while being announced."""

    def delivery_failed(self, request: ShareRequest, error: DeliveryError) -> datetime | None:
        """Note a failed delivery: when to try again, or None to go on without it."""

    async def follow_stopped(self, request: ShareRequest) -> None:
        """Say that a still-pending share is no longer followed."""

    async def remind(self, request: ShareRequest) -> None:
        """Remind the thread that a timed share ends soon, with Extend and Remove now."""

    async def removal_refused(self, request: ShareRequest) -> None:
        """Say in the thread that the cloud refused to remove the member (tried again)."""

    async def approval_progress(self, request: ShareRequest) -> None:
        """Show a request's approvals so far (the first of two) on its card and thread."""

    async def remind_approvers(self, request: ShareRequest, stage: Stage | None) -> None:
        """Mention, in the card's thread, those a reminder `stage` goes to (None: the
        asker's Remind, to whoever is on call now); `DeliveryError` when Slack refused."""

    def interrupted(self, request: ShareRequest) -> None:
        """A worker died holding the request: its announcement may be half-way."""


class Languages(Protocol):
    """Each person's language, asked of wherever people live (Slack's locale)."""

    async def of(self, user_id: str, *, record: Callable[[str], object] | None = None) -> str:
        """`en` or `ko` for this person; `record(language)` run once with it (in the
        transaction that caches Slack's answer, when Slack was asked)."""


class Worker:
    """Carries out due share requests as tasks of the event loop, `at_once` at most."""

    def __init__(
        self,
        *,
        requests: ShareRequests,
        service: ShareService,
        announcer: Announcer,
        languages: Languages | None = None,
        at_once: int | None = None,
        threads: int | None = None,
        poll_interval: float = 0.05,
        lease: timedelta = timedelta(minutes=3),
        images: ImageCatalog | None = None,
        image_refresh: timedelta = timedelta(seconds=300),
        reconciler: Reconciler | None = None,
        rota: RotaKeeper | None = None,
        rota_refresh: timedelta = timedelta(seconds=300),
        looked: Callable[[], None] = lambda: None,
        finish_within: float = FINISH_WITHIN,
        acks_first_quiet: float = ACKS_FIRST_QUIET,
        acks_first_at_most: float = ACKS_FIRST_AT_MOST,
        recycle: object = None,
    ) -> None:
        self.requests = requests
        self.service = service
        self.announcer = announcer
        self.languages = languages
        # `threads` is the old name of `at_once` (BOT_WORKER_THREADS): still accepted.
        self.at_once = at_once or threads or 32
        self.poll_interval = poll_interval
        self.lease = lease
        self.images = images
        self.image_refresh = image_refresh
        # Lists the members of the images it follows, every SHARE_RECONCILE_SECONDS.
        self.reconciler = reconciler
        # The on-call rotas (PagerDuty, the calendar), read by a task of their own: asking
        # who is on call reads only what was stored.
        self.rota = rota if rota is not None and rota.readers else None
        self.rota_refresh = rota_refresh
        # Told each time the worker looks for due work (the edge keeps it as a metric).
        self.looked = looked
        self.finish_within = finish_within
        self.acks_first_quiet = acks_first_quiet
        self.acks_first_at_most = acks_first_at_most
        # `recycle` (a worker replaced once its memory grew) is gone: one process, no
        # threads to fragment its heap. Accepted, and ignored, for callers that pass it.
        del recycle
        self.rota_tried = asyncio.Event()
        if self.rota is None:
            self.rota_tried.set()
        # Set once the first refresh of the image list has been tried (at once without one).
        self.images_tried = asyncio.Event()
        if images is None:
            self.images_tried.set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop `run` runs in
        self._woken_at = float("-inf")  # the last wake by a recorded request
        self.follow_ups_at_once = min(FOLLOW_UPS_AT_ONCE, self.at_once)
        self._slots = asyncio.Semaphore(self.at_once)
        self._follow_slots = asyncio.Semaphore(self.follow_ups_at_once)
        self._busy: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.steps = 0

    @property
    def threads(self) -> int:
        """The old name of `at_once`."""
        return self.at_once

    def wake(self) -> None:
        """Look for due work now rather than at the next poll: the ack path calls it after
        recording a request; from another thread it is handed to the worker's loop."""
        loop = self._loop
        if loop is not None and loop is not _running_loop():
            loop.call_soon_threadsafe(self._woken)
        else:
            self._woken()

    def _woken(self) -> None:
        self._woken_at = time.monotonic()
        self._wake.set()

    @property
    def under_way(self) -> int:
        """How many requests are being carried out now."""
        return len(self._busy)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then lease nothing new, give what is under way
        `finish_within` seconds to end, and cancel what has not."""
        self._loop = asyncio.get_running_loop()
        try:
            for request in self.requests.held():
                self.announcer.interrupted(request)
            dropped = self.requests.drop_leases()
        except StorageError as error:
            log.error(
                "cannot pick up requests left by a stopped worker", extra={"error": str(error)}
            )
            dropped = 0
        if dropped:
            log.warning("picked up requests left by a stopped worker", extra={"count": dropped})
        background: list[asyncio.Task[None]] = []
        if self.images is not None:
            background.append(asyncio.create_task(self._keep_images_fresh(stop)))
        if self.reconciler is not None:
            background.append(asyncio.create_task(self.reconciler.keep_reconciled(stop)))
        if self.rota is not None:
            background.append(asyncio.create_task(self._keep_rota_fresh(stop)))
        try:
            while not stop.is_set():
                await self._acks_first(stop)
                if stop.is_set():
                    break
                self.looked()
                try:
                    await self._dispatch()
                except StorageError as error:
                    log.error("cannot read due requests", extra={"error": str(error)})
                self._wake.clear()
                await self._next_look(stop)
        finally:
            await self._finish([*self._tasks, *background])

    async def _next_look(self, stop: asyncio.Event) -> None:
        """Wait for a wake, the poll interval, or `stop`, whichever comes first."""
        if self._wake.is_set():
            return
        woken = asyncio.ensure_future(self._wake.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {woken, stopped}, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            woken.cancel()
            stopped.cancel()

    async def _acks_first(self, stop: asyncio.Event) -> None:
        """While wakes keep coming (a burst of commands), wait until they pause for
        `acks_first_quiet`, or for `acks_first_at_most` in all."""
        began = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            quiet_for = now - self._woken_at
            left = self.acks_first_at_most - (now - began)
            if quiet_for >= self.acks_first_quiet or left <= 0:
                return
            await asyncio.sleep(min(self.acks_first_quiet - quiet_for, left))

    async def _finish(self, tasks: list[asyncio.Task[None]]) -> None:
        """Give `tasks` `finish_within` seconds to end, then cancel what is left."""
        if not tasks:
            return
        try:
            _, late = await asyncio.wait(tasks, timeout=self.finish_within)
        except asyncio.CancelledError:
            # The worker itself is cancelled (its runner's backstop): its work goes with it,
            # rather than running on against clients that are about to close.
            for task in tasks:
                task.cancel()
            raise
        if late:
            log.warning(
                "stopping: cancelling work that did not end in time; it is read back at the"
                " next start",
                extra={"tasks": len(late), "requests": sorted(self._busy)},
            )
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=1.0)

    # -- the image list --------------------------------------------------------------------

    async def refresh_images(self) -> bool:
        """Store the account's image list as the cloud lists it now; False when it could not.

        A failure is logged and the stored list kept: names in messages may be a little
        old, and the next refresh tries again.
        """
        if self.images is None:
            return False
        try:
            await self.images.refresh()
        except CloudError as error:
            log.warning(
                "cannot refresh the image list; keeping the stored one",
                extra={"error": str(error)},
            )
            return False
        except StorageError as error:
            log.error("cannot store the image list", extra={"error": str(error)})
            return False
        return True

    async def _keep_images_fresh(self, stop: asyncio.Event) -> None:
        """Refresh on start, then every `image_refresh`, until `stop`."""
        while not stop.is_set():
            try:
                await self.refresh_images()
            except Exception:
                # A bug must not end the refreshes: log it whole and try at the next turn.
                log.exception("unexpected failure refreshing the image list")
            self.images_tried.set()
            await pause(stop, self.image_refresh.total_seconds())

    # -- the on-call rotas -----------------------------------------------------------------

    async def _keep_rota_fresh(self, stop: asyncio.Event) -> None:
        """Read the rotas on start, then every `rota_refresh`, until `stop`. A source that
        cannot be read keeps its last rota (the keeper logs why)."""
        assert self.rota is not None
        while not stop.is_set():
            try:
                await self.rota.refresh()
            except Exception:
                # A bug must not end the reads: log it whole and try at the next turn.
                log.exception("unexpected failure reading the on-call rotas")
            self.rota_tried.set()
            await pause(stop, self.rota_refresh.total_seconds())

    async def _dispatch(self) -> None:
        """Start a task for each due request, while there is room under `at_once` (and,
        for follow-ups, under FOLLOW_UPS_AT_ONCE)."""
        if self._slots.locked():
            return
        # As many as there may be room for: those under way may come back (between a
        # step's end and its release), and are skipped.
        for due in self.requests.due(self.at_once, follow_ups=self.follow_ups_at_once):
            if self._slots.locked():
                break
            if due.id in self._busy:
                continue
            if due.follow_up and self._follow_slots.locked():
                continue
            # Free slots: taken at once, without waiting.
            await self._slots.acquire()
            if due.follow_up:
                await self._follow_slots.acquire()
            self._busy.add(due.id)
            task = asyncio.create_task(self._advance_then_free(due.id, due.follow_up))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _advance_then_free(self, request_id: int, follow_up: bool) -> None:
        try:
            await self.advance(request_id)
        finally:
            self._busy.discard(request_id)
            self._slots.release()
            if follow_up:
                self._follow_slots.release()
            self.steps += 1
            self._wake.set()

    # -- one request ----------------------------------------------------------------------

    async def advance(self, request_id: int) -> None:
        """Move one request as far as it can go now, and say when to look again."""
        request = self.requests.claim(request_id, self.lease)
        if request is None:
            return
        next_due: datetime | None = self.requests.now()
        seen = request
        failed = True
        try:
            request = await self._step(request)
            seen = request
            next_due = self._next_due(request)
            failed = False
        except ApproversUnreachable as error:
            # Nobody could ever approve it: fail it now rather than at expiry; it is due
            # again at once, to say so.
            self.service.approvers_unreachable(request, error.error)
            next_due = self._after(Outcome.APPROVERS_UNREACHABLE)
        except DeliveryError as error:
            next_due = self.announcer.delivery_failed(request, error)
            if next_due is None:
                next_due = self._next_due(self._reload(request))
        except CloudError as error:
            # Reads (reconcile, follow) and removes get here; adds record their own failures.
            log.warning("cloud API call failed", extra={"request": request_id, "error": str(error)})
            failed_at = self.requests.now()  # before anything is said (a clock may move)
            next_due = self._after(await self._removal_refused(request, error), at=failed_at)
        except StorageError as error:
            log.error(
                "database failed mid-request", extra={"request": request_id, "error": str(error)}
            )
            next_due = self._after(Outcome.STORAGE_FAILED)
        except Exception:
            # A bug must not stop the other requests: log it whole and look again later.
            log.exception("unexpected failure", extra={"request": request_id})
            next_due = self._after(Outcome.BUG)
        try:
            if failed:
                # After a failure the row may have moved on inside the step: take it as it is.
                seen = self.requests.get(request_id) or seen
            self.requests.release(request_id, next_due, seen=seen)
        except StorageError as error:
            # The lease runs out by itself; the request is picked up again then.
            log.error("cannot release request", extra={"request": request_id, "error": str(error)})

    def _facts(self) -> states.Facts:
        """What the machine may ask about a request, as things stand now."""
        return states.Facts(
            now=self.requests.now(), told=self.announcer.up_to_date, time_up=self.service.time_up
        )

    async def _step(self, request: ShareRequest) -> ShareRequest:
        """One step of the request's life: the machine says what applies (`states.STEP`),
        this carries it out."""
        if not request.language and self.languages is not None:
            # Recorded before the bot knew the user's language: ask Slack now, off the ack;
            # stored on the request with the cache of Slack's answer (one transaction).
            stored: list[ShareRequest] = []
            await self.languages.of(
                request.user_id,
                record=lambda language: stored.append(
                    self.requests.update(request.id, language=language)
                ),
            )
            request = stored[-1] if stored else request
        for choices in states.STEP:
            facts = self._facts()
            for work in choices:
                if states.applies(work, request, facts):
                    before = request
                    if states.tells_during(work, request):
                        request = await self._telling_while(work, request)
                    else:
                        request = await self._carry_out(work, request)
                    if states.tells_after(work, before, request):
                        request = await self._announce(request)
                    break
        return request

    async def _telling_while(self, work: states.Work, request: ShareRequest) -> ShareRequest:
        """Carry out `work` while people are told of `request` as it stands (a direct
        share's parent message is posted while its add is with the cloud); the request as
        the work left it.

        The work goes first: it runs as a task of its own, which this one lets start (the
        request stored as `sending`, the call on its way) before it tells. The telling
        stays in this task (the announcer's memo of the step lives here), so what is said
        after the work (the thread's reply) is said after the telling, under its parent.
        Whatever the telling meets, the work is awaited: a message Slack did not take never
        loses the cloud's answer, which the work records and the next try says. Only when
        the step itself ends (cancelled, the process going) does the work end with it: a
        request caught in `sending` is read back at the next start.
        """
        doing = asyncio.create_task(self._carry_out(work, request))
        # A work left behind by a step that ended (below) is not awaited: its failure is
        # noted as seen, and read back with the request at the next start.
        doing.add_done_callback(_seen)
        try:
            await asyncio.sleep(0)  # the work's first stretch: up to its call leaving
            await self._announce(request)
        except Exception:
            try:
                await doing
            except Exception:
                # Both failed: the work's failure is logged here, the telling's goes up
                # (tried again soon; a request left in `sending` is read back then).
                log.warning(
                    "could not tell while sending", extra={"request": request.id}, exc_info=True
                )
            raise
        except BaseException:
            doing.cancel()
            raise
        return await doing

    async def _carry_out(self, work: states.Work, request: ShareRequest) -> ShareRequest:
        """Do `work` to `request`; the request as it is afterwards."""
        W = states.Work
        match work:
            case W.EXPIRE:
                if self.requests.expire(request.id, from_=states.EXPIRE.from_, to=states.EXPIRE.to):
                    request = self._reload(request)
                    self.service.log_outcome(request)
                return request
            case W.CHECK_BEFORE_ASKING | W.CHECK_BEFORE_SENDING:
                # Before sending, a read of the last minute is reused while it waits its turn.
                return await self.service.check_image(request)
            case W.TELL:
                return await self._announce(request)
            case W.KEEP_ASKING:
                return await self._keep_approvers_asking(request)
            case W.SEND:
                sending = self.requests.start_sending(
                    request.id, from_=states.SEND.from_, to=states.SEND.to
                )
                # `send` hands back the request as its last write left it: not read again.
                if sending is None:
                    return self._reload(request)
                return await self.service.send(sending)
            case W.READ_BACK:
                # Left in `sending` by a worker that died (this one holds the worker lock, so
                # that one is gone): read back at once, then recorded, or sent once more.
                return await self.service.reconcile(
                    request, under_way_until=self._landing_until(request)
                )
            case W.REMOVE:
                # Ended early, or a removal interrupted: read first, remove only if still there.
                return await self.service.reconcile_removal(request)
            case W.END:
                return await self.service.end(request)
            case W.POLL:
                request = await self.service.poll(request)
                if request.state is RequestState.PENDING and request.next_poll_at is None:
                    await self.announcer.follow_stopped(request)
                return request
            case W.RECHECK:
                return await self.service.recheck(request)
            case W.REMIND:
                # The one reminder before a timed share ends, once its thread is up to date.
                await self.announcer.remind(request)
                self.requests.mark_reminded(request.id)
                return self._reload(request)
        raise AssertionError(work)  # pragma: no cover - every work is matched above

    async def _removal_refused(self, before: ShareRequest, error: CloudError) -> Outcome:
        """What a failed call was; a remove the cloud refused (credentials, permissions)
        is said once in the thread, and tried again every few minutes."""
        current = self._reload(before)
        if current.state != RequestState.REMOVING or isinstance(error, CloudUnavailable):
            return Outcome.CLOUD_FAILED
        if current.error_kind != before.error_kind:  # a new reason: say it, once
            try:
                await self.announcer.removal_refused(current)
            except DeliveryError as failed:
                log.warning(
                    "cannot say a removal was refused",
                    extra={"request": current.id, "error": failed.error},
                )
        return Outcome.REMOVAL_REFUSED

    def _after(self, outcome: Outcome, *, at: datetime | None = None) -> datetime:
        """When to look again after `outcome` (the `AGAIN_AFTER` table), counted from
        `at` (when it happened; now by default)."""
        return (at or self.requests.now()) + AGAIN_AFTER[outcome]

    async def _keep_approvers_asking(self, request: ShareRequest) -> ShareRequest:
        """While a request waits for approval, once its card is up: show a first approval
        of two, post the reminder that is due and the asker's Remind. Each is claimed in
        storage first (a compare-and-set only a still-waiting request wins): posted at most
        once, never after a decision. One Slack did not take for now is given back."""
        if request.approvals:
            await self.announcer.approval_progress(request)
        stage = self.service.reminders.due(request, self.requests.now())
        if stage is not None and self.requests.start_approval_reminder(request.id, stage.number):
            try:
                await self.announcer.remind_approvers(self._reload(request), stage)
            except DeliveryError as error:
                if error.transient:
                    self.requests.undo_approval_reminder(
                        request.id, stage.number, request.approval_reminders
                    )
                    raise
                log.error(
                    "Slack refused an approval reminder; going on without it",
                    extra={"request": request.id, "stage": stage.number, "error": error.error},
                )
            request = self._reload(request)
        asked = request.nudge_asked_at
        if nudge_due(request) and asked and self.requests.take_nudge(request.id, asked):
            try:
                await self.announcer.remind_approvers(self._reload(request), None)
            except DeliveryError as error:
                # The asker may press again; their press is not posted twice.
                log.warning(
                    "Slack did not take the asker's reminder",
                    extra={"request": request.id, "error": error.error},
                )
            request = self._reload(request)
        return request

    async def _announce(self, request: ShareRequest) -> ShareRequest:
        """Announce until Slack is up to date, even if the state moved while announcing.

        `announce` looks itself whether there is anything to say (and returns at once when
        not), and hands back the request in another state only when it moved meanwhile:
        one in the same state is told. (No look of the worker's own before and after each
        announcement: that was two reads of the Slack record more per announcement.)
        """
        for _ in range(len(RequestState)):
            announced = await self.announcer.announce(request)
            if announced.state == request.state:
                return announced
            request = announced
        return request

    @staticmethod
    def _landing_until(request: ShareRequest) -> datetime | None:
        """Until when the dead worker's last call for `request` may still be being carried
        out by the cloud: a read that misses it before then is tried again, not resent."""
        sent = request.sent_at
        return None if sent is None else sent + RESTART_GRACE

    def _reload(self, request: ShareRequest) -> ShareRequest:
        return self.requests.get(request.id) or request

    def _next_due(self, request: ShareRequest) -> datetime | None:
        """When to look at `request` again: the machine says (`states.next_due`)."""
        return states.next_due(
            request,
            self._facts(),
            waiting_turn=lambda r: self.requests.waiting_turn(r.id),
            next_reminder=self.service.reminders.next_at,
        )
