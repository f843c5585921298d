"""The worker: carries out recorded requests, outside Slack's 3-second ack.

Handlers only record requests. The worker finds rows that are due, leases one at a
time per thread, and moves it on: announce, call the cloud API, announce again, follow
a pending share. All state lives in SQLite, so a restart picks up where it stopped;
a request caught mid-call is reconciled with a read, never blindly sent again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Protocol

from bot import metrics
from bot.scp.errors import CloudError, CloudUnavailable
from bot.sharing.approvals import Stage, nudge_due
from bot.sharing.errors import ApproversUnreachable, DeliveryError
from bot.sharing.images import ImageCatalog
from bot.sharing.oncall import RotaKeeper
from bot.sharing.reconcile import Reconciler
from bot.sharing.request import Requests, RequestState, ShareRequest
from bot.sharing.service import RUNNING, ShareService
from storage.errors import StorageError

log = logging.getLogger(__name__)


# How often a request waiting for an earlier one for the same image and member looks again.
TURN_WAIT = timedelta(milliseconds=200)
# How often a remove the cloud refused (not a passing failure) is tried again.
REMOVAL_RETRY = timedelta(minutes=5)
# After a crash, a change the dead worker sent this recently may still be being carried
# out by the cloud: one not found is read again until then, and only then sent once more
# (well inside the 30 s after a restart in which every interrupted request is answered).
RESTART_GRACE = timedelta(seconds=10)
# How long a stopping worker waits for an image-list refresh under way.
REFRESH_JOIN_SECONDS = 2.0
# A worker due to hand over to a fresh one starts no new work for at most this long while
# what is under way ends; if it has not, it works on and asks again this much later.
DRAIN_SECONDS = 5.0
DRAIN_AGAIN_SECONDS = 60.0
# Follow-ups (status reads of pending shares, rechecks of failed ones) under way at once, at
# most: thousands due together (after a restart, an outage) never hold up new requests,
# which go first anyway, nor take a hundred threads and connections to the cloud.
FOLLOW_UPS_AT_ONCE = 16


class Announcer(Protocol):
    """Tells people what a request's state means (`bot.slack.announcer` does it in Slack)."""

    def up_to_date(self, request: ShareRequest) -> bool:
        """Whether people were told of the request's current state."""

    def announce(self, request: ShareRequest) -> ShareRequest:
        """Bring what people were told up to date; `DeliveryError` when they could not be."""

    def delivery_failed(self, request: ShareRequest, error: DeliveryError) -> datetime | None:
        """Note a failed delivery: when to try again, or None to go on without it."""

    def follow_stopped(self, request: ShareRequest) -> None:
        """Say that a still-pending share is no longer followed."""

    def remind(self, request: ShareRequest) -> None:
        """Remind the thread that a timed share ends soon, with Extend and Remove now."""

    def removal_refused(self, request: ShareRequest) -> None:
        """Say in the thread that the cloud refused to remove the member (tried again)."""

    def approval_progress(self, request: ShareRequest) -> None:
        """Show a request's approvals so far (the first of two) on its card and thread."""

    def remind_approvers(self, request: ShareRequest, stage: Stage | None) -> None:
        """Mention, in the card's thread, those a reminder `stage` goes to (None: the
        asker's Remind, to whoever is on call now); `DeliveryError` when Slack refused."""

    def interrupted(self, request: ShareRequest) -> None:
        """A worker died holding the request: its announcement may be half-way."""


class Languages(Protocol):
    """Each person's language, asked of wherever people live (Slack's locale)."""

    def of(self, user_id: str) -> str:
        """`en` or `ko` for this person."""


class Worker:
    """Drains due share requests with a pool of threads."""

    def __init__(
        self,
        *,
        requests: Requests,
        service: ShareService,
        announcer: Announcer,
        languages: Languages | None = None,
        threads: int = 32,
        poll_interval: float = 0.05,
        lease: timedelta = timedelta(minutes=3),
        images: ImageCatalog | None = None,
        image_refresh: timedelta = timedelta(seconds=300),
        recycle: Callable[[int], bool] | None = None,
        reconciler: Reconciler | None = None,
        rota: RotaKeeper | None = None,
        rota_refresh: timedelta = timedelta(seconds=300),
    ) -> None:
        self.requests = requests
        self.service = service
        self.announcer = announcer
        self.languages = languages
        self.threads = threads
        self.poll_interval = poll_interval
        self.lease = lease
        self.images = images
        self.image_refresh = image_refresh
        # Lists the members of the images it follows, every SHARE_RECONCILE_SECONDS.
        self.reconciler = reconciler
        # The on-call rotas (PagerDuty, the calendar), read on their own thread: asking who
        # is on call reads only what was stored.
        self.rota = rota if rota is not None and rota.readers else None
        self.rota_refresh = rota_refresh
        self.rota_tried = threading.Event()
        if self.rota is None:
            self.rota_tried.set()
        self._wake = threading.Event()
        # Set once the first refresh of the image list has been tried (at once without one).
        self.images_tried = threading.Event()
        if images is None:
            self.images_tried.set()
        self._busy: set[int] = set()
        self._following: set[int] = set()  # the follow-ups among them
        self.follow_ups_at_once = min(FOLLOW_UPS_AT_ONCE, threads)
        self._busy_lock = threading.Lock()
        # Asked between looks for work whether this process should end so that a fresh
        # one takes over (its memory has grown), given the steps carried out so far.
        self.recycle = recycle
        self.steps = 0
        self.drain_seconds = DRAIN_SECONDS
        self.drain_again_seconds = DRAIN_AGAIN_SECONDS
        self._draining_since: float | None = None
        self._ask_after = float("-inf")

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    def run(self, stop: threading.Event) -> bool:
        """Work until `stop` is set, then finish what is under way; True when it ended
        because `recycle` said so (with nothing under way: a fresh worker takes over)."""
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
        refresher: threading.Thread | None = None
        if self.images is not None:
            refresher = threading.Thread(
                target=self._keep_images_fresh, args=(stop,), name="image-list", daemon=True
            )
            refresher.start()
        reconciling: threading.Thread | None = None
        if self.reconciler is not None:
            reconciling = threading.Thread(
                target=self.reconciler.keep_reconciled,
                args=(stop,),
                name="reconcile",
                daemon=True,
            )
            reconciling.start()
        rota_reader: threading.Thread | None = None
        if self.rota is not None:
            rota_reader = threading.Thread(
                target=self._keep_rota_fresh, args=(stop,), name="oncall-rota", daemon=True
            )
            rota_reader.start()
        recycled = False
        with ThreadPoolExecutor(self.threads, thread_name_prefix="share-worker") as pool:
            while not stop.is_set():
                if self._handing_over():
                    recycled = True
                    metrics.WORKER_HANDOVERS.inc()
                    break
                metrics.worker_looked()
                if self._draining_since is None:
                    try:
                        self._dispatch(pool)
                    except StorageError as error:
                        log.error("cannot read due requests", extra={"error": str(error)})
                self._wake.wait(self.poll_interval)
                self._wake.clear()
        if recycled:
            stop.set()  # the refreshers' and the reconcile's waits end with this worker
        for thread in (refresher, reconciling, rota_reader):
            if thread is not None:
                thread.join(REFRESH_JOIN_SECONDS)
        return recycled

    def _handing_over(self) -> bool:
        """Whether to end now for a fresh worker: `recycle` said so, and nothing is under way.

        Once `recycle` says so, no new work starts; what is under way has `drain_seconds`
        to end. If it does not (a slow cloud), work goes on and `recycle` is asked again
        `drain_again_seconds` later.
        """
        if self.recycle is None:
            return False
        now = time.monotonic()
        with self._busy_lock:
            busy = len(self._busy)
            steps = self.steps
        if self._draining_since is None:
            if now < self._ask_after or not self.recycle(steps):
                return False
            self._draining_since = now
        if not busy:
            return True
        if now - self._draining_since > self.drain_seconds:
            log.info(
                "worker goes on: what was under way did not end in time for a fresh worker",
                extra={"busy": busy},
            )
            self._draining_since = None
            self._ask_after = now + self.drain_again_seconds
        return False

    # -- the image list --------------------------------------------------------------------

    def refresh_images(self) -> bool:
        """Store the account's image list as the cloud lists it now; False when it could not.

        A failure is logged and the stored list kept: names in messages may be a little
        old, and the next refresh tries again.
        """
        if self.images is None:
            return False
        try:
            self.images.refresh()
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

    def _keep_images_fresh(self, stop: threading.Event) -> None:
        """Refresh on start, then every `image_refresh`, until `stop`."""
        while not stop.is_set():
            try:
                self.refresh_images()
            except Exception:
                # A bug must not end the refreshes: log it whole and try at the next turn.
                log.exception("unexpected failure refreshing the image list")
            self.images_tried.set()
            stop.wait(self.image_refresh.total_seconds())

    # -- the on-call rotas -----------------------------------------------------------------

    def _keep_rota_fresh(self, stop: threading.Event) -> None:
        """Read the rotas on start, then every `rota_refresh`, until `stop`. A source that
        cannot be read keeps its last rota (the keeper logs why)."""
        assert self.rota is not None
        while not stop.is_set():
            try:
                self.rota.refresh()
            except Exception:
                # A bug must not end the reads: log it whole and try at the next turn.
                log.exception("unexpected failure reading the on-call rotas")
            self.rota_tried.set()
            stop.wait(self.rota_refresh.total_seconds())

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        with self._busy_lock:
            if len(self._busy) >= self.threads:
                return
        # As many as there are threads: those under way may come back (between a step's
        # end and its release), and are skipped.
        for due in self.requests.due(self.threads, follow_ups=self.follow_ups_at_once):
            with self._busy_lock:
                if due.id in self._busy or len(self._busy) >= self.threads:
                    continue
                if due.follow_up:
                    if len(self._following) >= self.follow_ups_at_once:
                        continue
                    self._following.add(due.id)
                self._busy.add(due.id)
            pool.submit(self._advance_then_free, due.id)

    def _advance_then_free(self, request_id: int) -> None:
        try:
            self.advance(request_id)
        finally:
            with self._busy_lock:
                self._busy.discard(request_id)
                self._following.discard(request_id)
                self.steps += 1
            self._wake.set()

    # -- one request ----------------------------------------------------------------------

    def advance(self, request_id: int) -> None:
        """Move one request as far as it can go now, and say when to look again."""
        request = self.requests.claim(request_id, self.lease)
        if request is None:
            return
        next_due: datetime | None = self.requests.now()
        seen = request
        failed = True
        try:
            request = self._step(request)
            seen = request
            next_due = self._next_due(request)
            failed = False
        except ApproversUnreachable as error:
            # Nobody could ever approve it: fail it now rather than at expiry; it is due
            # again at once, to say so.
            self.service.approvers_unreachable(request, error.error)
            next_due = self.requests.now()
        except DeliveryError as error:
            next_due = self.announcer.delivery_failed(request, error)
            if next_due is None:
                next_due = self._next_due(self._reload(request))
        except CloudError as error:
            # Reads (reconcile, follow) and removes get here; adds record their own failures.
            log.warning("cloud API call failed", extra={"request": request_id, "error": str(error)})
            next_due = self.requests.now() + self._removal_refused(request, error)
        except StorageError as error:
            log.error(
                "database failed mid-request", extra={"request": request_id, "error": str(error)}
            )
            next_due = self.requests.now() + timedelta(seconds=5)
        except Exception:
            # A bug must not stop the other requests: log it whole and look again later.
            log.exception("unexpected failure", extra={"request": request_id})
            next_due = self.requests.now() + timedelta(minutes=1)
        try:
            if failed:
                # After a failure the row may have moved on inside the step: take it as it is.
                seen = self.requests.get(request_id) or seen
            self.requests.release(request_id, next_due, seen=seen)
        except StorageError as error:
            # The lease runs out by itself; the request is picked up again then.
            log.error("cannot release request", extra={"request": request_id, "error": str(error)})

    def _step(self, request: ShareRequest) -> ShareRequest:
        now = self.requests.now()
        if not request.language and self.languages is not None:
            # Recorded before the bot knew the user's language: ask Slack now, off the ack.
            request = self.requests.update(request.id, language=self.languages.of(request.user_id))
        if request.state == RequestState.AWAITING_APPROVAL:
            expires = request.expires_at
            if expires is not None and expires <= now and self.requests.expire(request.id):
                request = self._reload(request)
                self.service.log_outcome(request)
        if request.state == RequestState.AWAITING_APPROVAL and not self.announcer.up_to_date(
            request
        ):
            # Before any approver is asked: an image that cannot be shared bothers nobody.
            request = self.service.check_image(request)
        request = self._announce(request)
        if request.state == RequestState.AWAITING_APPROVAL and self.announcer.up_to_date(request):
            request = self._keep_approvers_asking(request)
        if request.state == RequestState.QUEUED and not request.decided_by:
            # A direct share: the image is read before anything is sent (a read of the
            # last minute is reused while the request waits its turn).
            request = self.service.check_image(request)
            if request.state == RequestState.FAILED:
                return self._announce(request)
        if request.state == RequestState.QUEUED:
            if self.requests.start_sending(request.id):
                request = self.service.send(self._reload(request))
            request = self._announce(self._reload(request))
        elif request.state == RequestState.SENDING:
            # Left in `sending` by a worker that died (this one holds the worker lock, so
            # that one is gone): read back at once, then recorded, or sent once more.
            again_at = request.next_poll_at
            if again_at is None or again_at <= now:
                request = self._announce(
                    self.service.reconcile(request, under_way_until=self._landing_until(request))
                )
        elif request.state == RequestState.REMOVING:
            # Ended early, or a removal interrupted: read first, remove only if still there.
            request = self._announce(self.service.reconcile_removal(request))
        elif self.service.time_up(request):
            # On time, whatever the status polling's pace.
            request = self._announce(self.service.end(request))
        elif request.next_poll_at and request.next_poll_at <= now:
            if request.state == RequestState.PENDING:
                request = self.service.poll(request)
                if request.state == RequestState.PENDING and request.next_poll_at is None:
                    self.announcer.follow_stopped(request)
            elif request.state == RequestState.FAILED:
                request = self.service.recheck(request)
            request = self._announce(request)
        return self._remind(request)

    def _removal_refused(self, before: ShareRequest, error: CloudError) -> timedelta:
        """How long to wait after a failed call; a remove the cloud refused (credentials,
        permissions) is said once in the thread, and tried again every few minutes."""
        current = self._reload(before)
        if current.state != RequestState.REMOVING or isinstance(error, CloudUnavailable):
            return timedelta(seconds=30)
        if current.error_kind != before.error_kind:  # a new reason: say it, once
            try:
                self.announcer.removal_refused(current)
            except DeliveryError as failed:
                log.warning(
                    "cannot say a removal was refused",
                    extra={"request": current.id, "error": failed.error},
                )
        return REMOVAL_RETRY

    def _keep_approvers_asking(self, request: ShareRequest) -> ShareRequest:
        """While a request waits for approval, once its card is up: show a first approval
        of two, post the reminder that is due and the asker's Remind. Each is claimed in
        storage first (a compare-and-set only a still-waiting request wins): posted at most
        once, never after a decision. One Slack did not take for now is given back."""
        if request.approvals:
            self.announcer.approval_progress(request)
        stage = self.service.reminders.due(request, self.requests.now())
        if stage is not None and self.requests.start_approval_reminder(request.id, stage.number):
            try:
                self.announcer.remind_approvers(self._reload(request), stage)
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
                self.announcer.remind_approvers(self._reload(request), None)
            except DeliveryError as error:
                # The asker may press again; their press is not posted twice.
                log.warning(
                    "Slack did not take the asker's reminder",
                    extra={"request": request.id, "error": error.error},
                )
            request = self._reload(request)
        return request

    def _remind(self, request: ShareRequest) -> ShareRequest:
        """The one reminder before a timed share ends, once its thread is up to date."""
        now = self.requests.now()
        remind_at, ends_at = request.remind_at, request.ends_at
        if (
            request.state in RUNNING
            and request.reminded_at is None
            and remind_at is not None
            and ends_at is not None
            and remind_at <= now < ends_at
            and self.announcer.up_to_date(request)
        ):
            self.announcer.remind(request)
            self.requests.mark_reminded(request.id)
            request = self._reload(request)
        return request

    def _announce(self, request: ShareRequest) -> ShareRequest:
        """Announce until Slack is up to date, even if the state moved while announcing."""
        for _ in range(len(RequestState)):
            if self.announcer.up_to_date(request):
                break
            request = self.announcer.announce(request)
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
        now = self.requests.now()
        if request.state == RequestState.QUEUED and self.requests.waiting_turn(request.id):
            return now + TURN_WAIT  # an earlier request for this image and member goes first
        if request.state == RequestState.SENDING and request.next_poll_at:
            return request.next_poll_at  # an interrupted change, read again then
        if not self.announcer.up_to_date(request) or request.state in {
            RequestState.QUEUED,
            RequestState.SENDING,
        }:
            return now
        if request.state == RequestState.AWAITING_APPROVAL:
            times = [request.expires_at, self.service.reminders.next_at(request)]
            return min((t for t in times if t is not None), default=None)
        if request.state == RequestState.REMOVING:
            return now
        if request.state in RUNNING or request.state is RequestState.FAILED:
            times = [request.next_poll_at]
            if request.state in RUNNING:
                times.append(request.ends_at)
                if request.reminded_at is None:
                    times.append(request.remind_at)
            due = [t for t in times if t is not None]
            return min(due) if due else None
        return None
