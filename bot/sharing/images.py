"""What the bot knows of the account's images, and whether one can be shared now.

Three sources, cheapest first: a small cache of recent reads, the stored image list
(refreshed by the worker every `IMAGE_LIST_REFRESH_SECONDS`), and the cloud API's
show-image call. Renderers use `known` (never a cloud call); the worker uses `check`
before an approver is asked or a direct share is sent. Right before an add
(`trust_list`), while the stored list is fresh and shows the image shareable (Shared and
active), its word is taken: an ordinary share is one call to the cloud (the add), not
two. An image the list does not know, or shows otherwise, is read; one deleted since
the refresh is the add's 404 ("not found"). Before approvers are asked the image is
read all the same: the card shows it as it is, and a person waits anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bot.scp import Image, ImageStatus, ScpClient, Visibility, errors
from bot.sharing.values import StoredImage, stamp
from storage import Images

log = logging.getLogger(__name__)

# A read is reused for this long and the cache holds at most this many images: long
# enough for one request's check and its first announcements, short enough that a
# change in the console (an image made private, activated) shows within a minute.
CACHE_SECONDS = 60.0
CACHE_SIZE = 512
# A check's read is tried at most this often: when the cloud is down, the add call (with
# its own retries) is what decides, and it should not wait on the read for long.
CHECK_ATTEMPTS = 2
# The stored list counts as fresh for IMAGE_LIST_REFRESH_SECONDS after its refresh and
# this much more (a refresh under way takes a moment to list every page).
LIST_FRESH_GRACE = timedelta(seconds=30)


class Verdict(StrEnum):
    """What a check before sharing found; the values are the failures' error kinds."""

    SHAREABLE = "shareable"
    NOT_FOUND = "image_not_found"  # 404: no such image, or not this account's
    PUBLIC = "image_public"  # every account sees it already: nothing to share
    NOT_ACTIVE = "image_not_active"  # still being made (or broken): not shareable yet
    # Only Shared images have members: the bot sets it Shared first, or refuses
    # (SHARE_MAKE_SHARED); which one is the share service's to say.
    PRIVATE = "image_private"
    UNREAD = "unread"  # the read failed (5xx, timeout): the add call decides


@dataclass(frozen=True)
class ImageCheck:
    """A check's verdict, with the image as read (when it was) and the read's failure."""

    verdict: Verdict
    image: StoredImage | None = None
    error: errors.CloudError | None = None

    @property
    def blocks(self) -> bool:
        """Whether the request must end here, with nothing sent."""
        return self.verdict in {Verdict.NOT_FOUND, Verdict.PUBLIC, Verdict.NOT_ACTIVE}


@dataclass
class _Flight:
    """One read under way; others asking for the same image wait for its answer."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    row: StoredImage | None = None
    error: errors.CloudError | None = None


# The stored image's times, which the cloud's image holds as datetimes.
STORED_TIMES = ("created_at", "updated_at")


def image_row(image: Image) -> StoredImage:
    """The cloud API's image as the bot stores and shows it: the same fields (the cloud
    client may not import the domain, so the two types stay apart), times stamped."""
    values: dict[str, Any] = {f.name: getattr(image, f.name) for f in fields(StoredImage)}
    for name in STORED_TIMES:
        values[name] = stamp(values[name]) if values[name] else None
    return StoredImage(**values)


def verdict_of(image: StoredImage) -> Verdict:
    """Whether an image as read can be shared now."""
    if (image.visibility or "").lower() == Visibility.PUBLIC:
        return Verdict.PUBLIC
    # No status at all says nothing: the add call decides.
    if image.status and image.status.lower() != ImageStatus.ACTIVE:
        return Verdict.NOT_ACTIVE
    if (image.visibility or "").lower() == Visibility.PRIVATE:
        return Verdict.PRIVATE
    return Verdict.SHAREABLE


class ImageCatalog:
    """The account's images: the stored list, recent reads, and the checks before sharing."""

    def __init__(
        self,
        stored: Images,
        cloud: ScpClient,
        *,
        cache_seconds: float = CACHE_SECONDS,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        list_fresh: timedelta | None = None,
    ) -> None:
        self.stored = stored
        self.cloud = cloud
        # How long after a refresh the stored list is taken at its word (None: never).
        self.list_fresh = list_fresh
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, StoredImage]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    async def read(
        self,
        image_id: str,
        *,
        language: str | None = None,
        fresh: bool = False,
        trust_list: bool = False,
    ) -> StoredImage:
        """The image from the cloud API, or a read of the last `cache_seconds` (`fresh`:
        never a cached one, as after a refusal that a change since may explain);
        `trust_list`: the fresh stored list's row when it shows the image shareable.

        `ImageNotFound` when there is no such image; any other `CloudError` as raised.
        Checks of one image asked at once (a burst of shares) wait for one read.
        """
        if trust_list and not fresh:
            listed = self.listed(image_id)
            if listed is not None and verdict_of(listed) is Verdict.SHAREABLE:
                return listed
        with self._lock:
            if fresh:
                self._cache.pop(image_id, None)
            cached = self._fresh(image_id)
            if cached is not None:
                return cached
            flight = self._flights.get(image_id)
            leading = flight is None
            if flight is None:
                flight = self._flights[image_id] = _Flight()
        if not leading:
            await flight.done.wait()
            if flight.row is not None:
                return flight.row
            raise flight.error or errors.CloudUnavailable(f"reading image {image_id} failed")
        try:
            flight.row = image_row(
                await self.cloud.show_image(image_id, language=language, attempts=CHECK_ATTEMPTS)
            )
            self._remember(image_id, flight.row)
            return flight.row
        except errors.CloudError as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[image_id]
            flight.done.set()

    async def set_visibility(
        self, image_id: str, visibility: Visibility, *, language: str | None = None
    ) -> StoredImage:
        """Set the image `private` or `shared` in the cloud; the image as it is then, kept
        as the latest read and in the stored list (until the next refresh)."""
        row = image_row(await self.cloud.set_visibility(image_id, visibility, language=language))
        self._remember(image_id, row)
        self.stored.set_visibility(image_id, row.visibility or visibility.value)
        log.info("image visibility set", extra={"image": image_id, "visibility": visibility.value})
        return row

    def known(self, image_id: str) -> StoredImage | None:
        """What the bot knows of the image without asking the cloud; None when nothing."""
        cached = self._cached(image_id)
        if cached is not None:
            return cached
        return self.stored.get(image_id)

    def known_many(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        """`known` for each of `image_ids` (each looked up once), leaving out the unknown."""
        found: dict[str, StoredImage] = {}
        for image_id in dict.fromkeys(image_ids):
            image = self.known(image_id)
            if image is not None:
                found[image_id] = image
        return found

    def listed(self, image_id: str) -> StoredImage | None:
        """The stored list's row of the image while the list is fresh (refreshed within
        `list_fresh`); None when the list is older, or does not know the image."""
        if self.list_fresh is None:
            return None
        refreshed, row = self.stored.listed(image_id)
        if refreshed is None or self.stored.now() - refreshed > self.list_fresh + LIST_FRESH_GRACE:
            return None
        return row

    async def check(
        self, image_id: str, *, language: str | None = None, trust_list: bool = False
    ) -> ImageCheck:
        """Whether the image can be shared now; a failed read does not block (`UNREAD`).
        `trust_list`: a fresh stored list that shows it shareable is taken at its word."""
        try:
            image = await self.read(image_id, language=language, trust_list=trust_list)
        except errors.ImageNotFound as error:
            return ImageCheck(Verdict.NOT_FOUND, error=error)
        except errors.CloudError as error:
            log.warning(
                "cannot read the image before sharing; the add call decides",
                extra={"image": image_id, "error": str(error)},
            )
            return ImageCheck(Verdict.UNREAD, error=error)
        return ImageCheck(verdict_of(image), image)

    async def refresh(self) -> int:
        """Replace the stored list with the account's images as the cloud lists them now.

        Page by page, only the rows are kept (never the API's whole answers); the rows are
        written off the event loop, in one transaction, since thousands take milliseconds.
        """
        started = self.stored.now()
        rows = [image_row(image) async for page in self.cloud.image_pages() for image in page]
        count = await asyncio.to_thread(self.stored.replace, rows, started)
        log.info("image list refreshed", extra={"images": count})
        return count

    def forget(self) -> None:
        """Drop every cached read."""
        with self._lock:
            self._cache.clear()

    def _cached(self, image_id: str) -> StoredImage | None:
        with self._lock:
            return self._fresh(image_id)

    def recent(self, image_id: str) -> StoredImage | None:
        """A cloud read of the last `cache_seconds` (or a change the bot made), from memory
        only; None when there is none."""
        return self._cached(image_id)

    def _fresh(self, image_id: str) -> StoredImage | None:
        """A read of the last `cache_seconds`; the caller holds the lock."""
        entry = self._cache.get(image_id)
        if entry is None:
            return None
        read_at, row = entry
        if self._clock() - read_at >= self.cache_seconds:
            del self._cache[image_id]
            return None
        self._cache.move_to_end(image_id)
        return row

    def _remember(self, image_id: str, row: StoredImage) -> None:
        with self._lock:
            self._cache[image_id] = (self._clock(), row)
            self._cache.move_to_end(image_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
