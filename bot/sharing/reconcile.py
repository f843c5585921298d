"""The cloud's member list is the truth: the drift reconcile.

Members are added and removed in the console too. Every `every` (SHARE_RECONCILE_SECONDS)
the worker lists the members of every image with a share running or under way and of
every image shared or unshared within `follow` (SHARE_FOLLOW_DAYS): one list per image
per run, one at a time, at most `LISTS_PER_SECOND`, so that thousands of images never
burst the API. It compares each list with the bot's records:

- a member present that the bot did not add (or removed): one line in the notify
  channel, once (the report is stored, so a restart does not say it again);
- a member the bot added that is gone: the share is recorded as removed outside the bot,
  its timer stops, and the worker tells its thread once;
- a pending member the list shows accepted or rejected: recorded, as a status read would.

A member whose request is under way (queued, sending, being removed) or changed while the
list was read is left for the next run: the list may predate what the bot just did.
The run's progress is stored after each image, so a worker that hands over or restarts
resumes it, and `check` shows the last run and what it found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from bot.scp import ImageMember, ScpClient
from bot.scp.errors import CloudError, ImageNotShareable
from bot.sharing.errors import DeliveryError
from bot.sharing.pauses import pause
from bot.sharing.request import Action, RequestState, ShareRequest
from bot.sharing.service import ShareService
from bot.sharing.states import RUNNING, TURN
from bot.sharing.values import ReconcileRun, stamp, unstamp
from storage import CloudMembers, ReconcileRuns, ShareRequests

log = logging.getLogger(__name__)

# Member lists read per second at most, one at a time: 3,000 images take 10 minutes.
LISTS_PER_SECOND = 5.0
# How often the reconcile thread looks whether a run is due (the database's clock decides).
LOOK_SECONDS = 1.0


class Teller(Protocol):
    """Says what the reconcile found where people read it (the notify channel)."""

    async def outside_member(self, image_id: str, member_id: str, status: str | None) -> None:
        """A member has access to the image, not through the bot; `DeliveryError` when
        it could not be said (it is said at the next run)."""


@dataclass(frozen=True)
class Found:
    """What one image's list showed."""

    listed: int = 0
    outside: int = 0
    gone: int = 0
    statuses: int = 0
    failures: int = 0


class Reconciler:
    """Compares the cloud's member lists with the bot's records, run after run."""

    def __init__(
        self,
        *,
        requests: ShareRequests,
        service: ShareService,
        cloud: ScpClient,
        members: CloudMembers,
        runs: ReconcileRuns,
        teller: Teller,
        every: timedelta = timedelta(hours=1),
        follow: timedelta = timedelta(days=7),
        lists_per_second: float = LISTS_PER_SECOND,
        found: Callable[[str], None] = lambda kind: None,
        dropped: Callable[[], None] = lambda: None,
    ) -> None:
        self.requests = requests
        self.service = service
        self.cloud = cloud
        self.members = members
        self.runs = runs
        self.teller = teller
        self.every = every
        self.follow = follow
        self.pause = 1.0 / lists_per_second
        # Told of each drift found ("outside", "gone") and each report Slack refused for
        # good: the edge counts them (the domain keeps no metrics of its own).
        self.found = found
        self.dropped = dropped

    def due(self) -> bool:
        """Whether a run should start (or one left under way go on) now."""
        last = self.runs.last()
        if last is None or last.started_at is None:
            return True
        if last.finished_at is None:
            return True  # a run a stopped worker left under way: resume it
        return unstamp(last.finished_at) + self.every <= self.requests.now()

    async def keep_reconciled(self, stop: asyncio.Event) -> None:
        """Run whenever one is due, until `stop`."""
        while not stop.is_set():
            try:
                if self.due():
                    await self.run(stop)
            except Exception:
                # A bug must not end the reconcile: log it whole and try at the next look.
                log.exception("unexpected failure reconciling member lists")
            await pause(stop, min(LOOK_SECONDS, self.every.total_seconds()))

    async def run(self, stop: asyncio.Event | None = None) -> ReconcileRun | None:
        """One run over every image to follow (or the rest of one under way); the run as
        it ended, or None when `stop` ended it first (it resumes at the next start)."""
        stop = stop or asyncio.Event()
        now = self.requests.now()
        last = self.runs.last()
        resuming = last is not None and last.started_at is not None and last.finished_at is None
        run = last if resuming and last is not None else ReconcileRun(started_at=stamp(now))
        images = self.requests.reconcile_images(now - self.follow)
        if run.cursor:
            images = [image for image in images if image > run.cursor]
        run = replace(run, images=run.images + len(images))
        self.runs.save(run)
        for image_id in images:
            if stop.is_set():
                return None
            found = await self.image(image_id)
            run = replace(
                run,
                cursor=image_id,
                listed=run.listed + found.listed,
                outside=run.outside + found.outside,
                gone=run.gone + found.gone,
                statuses=run.statuses + found.statuses,
                failures=run.failures + found.failures,
            )
            self.runs.save(run)
            if await pause(stop, self.pause):
                return None
        run = replace(run, finished_at=stamp(self.requests.now()), cursor=None)
        self.runs.save(run)
        log.info(
            "member lists reconciled",
            extra={
                "images": run.images,
                "listed": run.listed,
                "outside": run.outside,
                "gone": run.gone,
                "statuses": run.statuses,
                "failures": run.failures,
            },
        )
        return run

    async def image(self, image_id: str) -> Found:
        """List one image's members and compare them with the bot's records."""
        at = self.requests.now()
        try:
            listed = await self.cloud.list_members(image_id)
        except ImageNotShareable:
            # Not Shared now (made private outside the bot): the service lists no members of
            # such an image, and none of them can use it while it stays so. Nothing to compare,
            # and nothing to retry: its members come back, access and all, if it is made Shared.
            log.info("image not Shared now: its members are not listed", extra={"image": image_id})
            return Found()
        except CloudError as error:
            log.warning(
                "cannot list an image's members to reconcile",
                extra={"image": image_id, "error": str(error)},
            )
            return Found(failures=1)
        records = self.requests.for_reconcile(image_id, changed_since=at)
        busy = {r.member_id.lower() for r in records if _changing(r, at)}
        # The last unshare the bot carried out for each member: shares before it ended then.
        unshared: dict[str, int] = {}
        for request in records:
            if request.unshare and request.state is RequestState.REMOVED:
                key = request.member_id.lower()
                unshared[key] = max(unshared.get(key, 0), request.id)
        mine: dict[str, list[ShareRequest]] = {}
        for request in records:
            key = request.member_id.lower()
            if request.action is not Action.SHARE or request.state not in RUNNING:
                continue
            if request.id < unshared.get(key, 0):
                if key not in busy and request.state in RUNNING:
                    # Removed by the bot's own unshare, in another thread: this share is over.
                    self.service.ended_by_unshare(request)
                continue
            mine.setdefault(key, []).append(request)
        present = {member.member_id.lower(): member for member in listed}
        outside = gone = statuses = 0
        for key, member in present.items():
            if key in busy:
                continue
            shares = mine.get(key)
            row = self.members.seen(
                image_id, member.member_id, status=member.status, outside=not shares, at=at
            )
            if shares:
                statuses += sum(1 for r in shares if self._status(r, member))
                continue
            if row.reported_at is None and await self._report(image_id, member, at):
                outside += 1
        for key, shares in mine.items():
            if key in present or key in busy:
                continue
            for request in shares:
                if request.state in RUNNING and self.service.removed_outside(request):
                    gone += 1
                    self.found("gone")
        left = [
            m.member_key
            for m in self.members.of_image(image_id)
            if m.gone_at is None and m.member_key not in present and m.member_key not in busy
        ]
        self.members.gone(image_id, left, at=at)
        return Found(listed=1, outside=outside, gone=gone, statuses=statuses)

    def _status(self, request: ShareRequest, member: ImageMember) -> bool:
        return self.service.note_status(request, member) is not None

    async def _report(self, image_id: str, member: ImageMember, at: datetime) -> bool:
        """Say once that the member has access not through the bot; False when Slack could
        not take it now (it is said at the next run), or another run said it already.

        The report is claimed before it is posted (a compare-and-set on `reported_at`), so
        a write that fails after the post, or a second run at once, never says it twice."""
        key = member.member_id.lower()
        if not self.members.reported(image_id, key, at=at):
            return False
        try:
            await self.teller.outside_member(image_id, member.member_id, member.status)
        except DeliveryError as error:
            if error.transient:
                self.members.unreported(image_id, key, at=at)
                log.warning(
                    "cannot report a member with access not through the bot; next run",
                    extra={"image": image_id, "member": member.member_id, "error": error.error},
                )
                return False
            # Refused for good (the bot is not in the notify channel): counted and logged,
            # shown by `list`, and not tried again every run.
            self.dropped()
            log.error(
                "Slack refused the report of a member with access not through the bot",
                extra={"image": image_id, "member": member.member_id, "error": error.error},
            )
        self.found("outside")
        log.warning(
            "a member has access not through the bot",
            extra={"image": image_id, "member": member.member_id, "status": member.status},
        )
        return True


def _changing(request: ShareRequest, listed_at: datetime) -> bool:
    """Whether the request may be changing its member now, or changed it after the list."""
    updated = request.updated_at
    return request.state in TURN or (updated is not None and updated >= listed_at)
