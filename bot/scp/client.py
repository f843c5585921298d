"""The signed client of the image-member API: timeouts, retries, typed answers.

Asynchronous, over one `httpx.AsyncClient`: every call that goes to the service is a
coroutine. A client's connections belong to the event loop that opened them, so one client
serves one loop (the bot's, or one `asyncio.run` of a command) and is closed in it
(`await client.aclose()`, or `async with`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bot.retry_after import retry_after_seconds
from bot.scp import errors
from bot.scp.auth import ScpAuth
from bot.scp.models import (
    Image,
    ImageList,
    ImageMember,
    ImageMemberCreateRequest,
    ImageMemberList,
    ImageSetRequest,
    VersionList,
    Visibility,
    read_error_body,
)
from bot.scp.transport import AiohttpTransport

log = logging.getLogger(__name__)

SERVICE = "virtualserver"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Answers from a gateway in front of the service: the request may have been carried out.
GATEWAY_STATUSES = frozenset({502, 504})
# Failures that mean the request never left: anything else may have reached the service.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A member created this long before our first attempt was there already: a real conflict.
CONFLICT_CLOCK_SLACK = timedelta(seconds=120)

Model = TypeVar("Model", bound=BaseModel)


# The list-images call answers at most this many per page, and the bot reads at most
# this many in all: an account with more is not one the share form can serve anyway.
MAX_PAGE = 1000
MAX_IMAGES = 10_000

# The service writes its error texts in these two languages only.
ACCEPT_LANGUAGES = {"ko": "ko-KR", "en": "en-US"}
# Connections to the cloud API: at most MAX_CONNECTIONS at once (a caller past them waits
# for one, within the pool timeout); each stays open KEEPALIVE_SECONDS after its last
# call, for the next (`bot.scp.transport`). The bot sizes the maximum to the calls it lets
# run at once, so a burst's connections serve the next burst rather than being made anew.
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0


def accept_language(language: str) -> str:
    """The `Accept-Language` for a person's language: theirs if the service has it, else English."""
    return ACCEPT_LANGUAGES.get(language, "en-US")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a call that may succeed later.

    `sleep` is awaited between attempts (`asyncio.sleep`; a test passes one that records).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited for: the user gets "try again later".
    max_retry_after: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1`: full jitter, at least Retry-After."""
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1)) * self.jitter()
        return max(backoff, retry_after or 0.0)


class VersionLevel(StrEnum):
    """How much the configured API version should worry an operator (docs/scp-api.md)."""

    OK = "ok"  # listed, CURRENT or SUPPORTED, its date not passed: nothing to say
    DEPRECATED = "deprecated"  # listed, DEPRECATED, its date not passed: plan the switch
    AT_RISK = "at risk"  # listed, its date passed: it may stop being served any day
    NOT_SERVED = "not served"  # not listed: every request with it is refused


@dataclass(frozen=True)
class VersionReport:
    """Whether the configured API version is still served, from the service's own list."""

    configured: str
    status: str | None
    current: str | None
    served: list[str]
    problem: str | None
    level: VersionLevel = VersionLevel.OK
    # The minimum support guarantee date (`not_before`) of the configured version.
    not_before: date | None = None

    @property
    def ok(self) -> bool:
        """True when the configured version is served and not deprecated."""
        return self.problem is None

    @property
    def usable(self) -> bool:
        """True while the configured version is served, deprecated or not."""
        return self.level is not VersionLevel.NOT_SERVED


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    for layout in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(value[:10], layout).date()
        except ValueError:
            continue
    return None


class _Landed(Exception):
    """An add whose answer was lost turned out to have been carried out: `member`."""

    def __init__(self, member: ImageMember) -> None:
        super().__init__(member.member_id)
        self.member = member


class ScpClient:
    """Image members (add, list, show, remove) and images (show, list, set visibility),
    signed and retried."""

    def __init__(
        self,
        base_url: str,
        auth: ScpAuth,
        *,
        api_version: str = "1.1",
        language: str = "en-US",
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        # Awaited around every request (httpx's own hooks): how the bot counts its calls.
        event_hooks: Mapping[str, list[Callable[..., Awaitable[Any]]]] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.api_version = api_version
        self.language = language
        self.retry = retry or RetryPolicy()
        self.limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            timeout=timeout or httpx.Timeout(10.0, connect=5.0),
            limits=self.limits,
            # httpx's own pool only when a test hands in a transport of its own.
            transport=transport
            or AiohttpTransport(limit=max_connections, keepalive=KEEPALIVE_SECONDS),
            event_hooks=event_hooks,
            headers={
                "Accept": "application/json",
                "Scp-Api-Version": f"{SERVICE} {api_version}",
                "User-Agent": "share-image-bot",
            },
        )
        self._closed = False

    async def aclose(self) -> None:
        """Close the connection pool. A call still under way then fails at once, as
        `CloudUnavailable`, without a retry (it may have been carried out: the caller
        reads it back, as after any lost answer)."""
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> ScpClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the member operations -------------------------------------------------

    async def add_member(
        self,
        image_id: str,
        member_id: str,
        *,
        language: str | None = None,
        sent_before: datetime | None = None,
    ) -> ImageMember:
        """Add `member_id` to the image; its answer is the member, normally `pending`.

        `sent_before` is when an earlier call for the same change began (a process that
        died mid-call): a 409 for a member created since then is that call's doing, and
        so a success, exactly as for an earlier attempt of this call.
        """
        body = ImageMemberCreateRequest(member_id=member_id).model_dump()
        started = datetime.now(UTC)

        async def before_retry() -> None:
            # The answer may have been lost after the member was added: look before sending
            # again, so that a lost answer costs a read, not a second add.
            try:
                member = await self._own_earlier_attempt(image_id, member_id, started, language)
            except errors.CloudError:
                return  # cannot tell: send again, a 409 then says the same
            if member is not None:
                raise _Landed(member)

        try:
            response, attempts = await self._send(
                "POST",
                self._members_path(image_id),
                json=body,
                language=language,
                before_retry=before_retry,
            )
        except _Landed as landed:
            return landed.member
        if response.status_code == 409 and (attempts > 1 or sent_before is not None):
            # An earlier attempt may have reached the service before its answer was lost.
            since = min(started, sent_before) if sent_before is not None else started
            member = await self._own_earlier_attempt(image_id, member_id, since, language)
            if member is not None:
                return member
        if response.is_success:
            try:
                return ImageMember.model_validate_json(response.content)
            except ValidationError:
                # The member was added but the answer got lost on the way: read it back.
                return await self.show_member(image_id, member_id, language=language)
        raise self._error(response, member_path=False)

    async def list_members(
        self, image_id: str, *, language: str | None = None
    ) -> list[ImageMember]:
        """Every member of the image with its status."""
        response, _ = await self._send("GET", self._members_path(image_id), language=language)
        return self._parse(response, ImageMemberList, member_path=False).members

    async def show_member(
        self, image_id: str, member_id: str, *, language: str | None = None
    ) -> ImageMember:
        """One member of the image; `MemberNotFound` when it is not there."""
        response, _ = await self._send(
            "GET", self._member_path(image_id, member_id), language=language
        )
        return self._parse(response, ImageMember, member_path=True)

    async def remove_member(
        self,
        image_id: str,
        member_id: str,
        *,
        language: str | None = None,
        sent_before: bool = False,
    ) -> None:
        """Remove the member from the image (answered 204).

        `sent_before`: an earlier call for this removal may have landed, so a 404 is done.
        """
        response, attempts = await self._send(
            "DELETE", self._member_path(image_id, member_id), language=language
        )
        if response.is_success:
            return
        error = self._error(response, member_path=True)
        if isinstance(error, errors.MemberNotFound) and (attempts > 1 or sent_before):
            return  # an earlier attempt removed it
        raise error

    # -- the image operations ----------------------------------------------------

    async def show_image(
        self, image_id: str, *, language: str | None = None, attempts: int | None = None
    ) -> Image:
        """One image; `ImageNotFound` when it does not exist or this account cannot see it.

        `attempts` caps the retries of this one read (a read nothing waits on for long).
        """
        response, _ = await self._send(
            "GET", self._image_path(image_id), language=language, attempts=attempts
        )
        return self._parse(response, Image, member_path=False)

    async def set_visibility(
        self, image_id: str, visibility: Visibility | str, *, language: str | None = None
    ) -> Image:
        """Make the image `private` or `shared` (only those two); the image as it is then.

        A PUT of one visibility is the same however often it is sent, so a lost answer is
        simply sent again (the usual retries), and an answer that cannot be read is read
        back with `show_image`. `ValueError` for any other visibility, before anything is sent.
        """
        value = str(getattr(visibility, "value", visibility))
        if value not in (Visibility.PRIVATE, Visibility.SHARED):
            raise ValueError(f"an image can be set to private or shared only, not {value!r}")
        body = ImageSetRequest(visibility=value).model_dump()
        response, _ = await self._send(
            "PUT", self._image_path(image_id), json=body, language=language
        )
        if not response.is_success:
            raise self._error(response, member_path=False)
        try:
            return Image.model_validate_json(response.content)
        except ValidationError:
            # Carried out, its answer lost on the way: read the image back.
            return await self.show_image(image_id, language=language)

    async def list_images(self, **query: Any) -> list[Image]:
        """The account's images, page after page by `marker`, at most `max_images`; the
        filters and limits are `image_pages`'s.

        Pages are read until one comes back empty (as the service documents its paging)
        or `max_images` are in hand; the last page asks only for what is still missing.
        """
        return [image async for page in self.image_pages(**query) for image in page]

    async def image_pages(
        self,
        *,
        name: str | None = None,
        os_distro: str | None = None,
        status: str | None = None,
        visibility: str | None = None,
        sort: str | None = None,
        page_size: int = MAX_PAGE,
        max_images: int = MAX_IMAGES,
        language: str | None = None,
    ) -> AsyncIterator[list[Image]]:
        """`list_images` one page at a time, as each arrives: a caller that keeps only
        what it needs of each holds one page of images, not the whole list."""
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE}, not {page_size}")
        if not 1 <= max_images <= MAX_IMAGES:
            raise ValueError(f"max_images must be 1 to {MAX_IMAGES}, not {max_images}")
        filters = {
            key: value
            for key, value in (
                ("name", name),
                ("os_distro", os_distro),
                ("status", status),
                ("visibility", visibility),
                ("sort", sort),
            )
            if value is not None
        }
        count = 0
        seen: set[str] = set()
        marker: str | None = None
        while count < max_images:
            params = {**filters, "limit": str(min(page_size, max_images - count))}
            if marker is not None:
                params["marker"] = marker
            response, _ = await self._send("GET", "/v1/images", params=params, language=language)
            page = self._parse(response, ImageList, member_path=False).images
            if not page:
                return
            fresh = [image for image in page if image.id not in seen]
            if not fresh:
                # A service that answers the same page again would keep us here forever.
                raise errors.CloudUnavailable(
                    f"GET /v1/images answered the same images again after marker {marker}",
                    status=response.status_code,
                    request_id=response.headers.get("X-Request-Id"),
                )
            seen.update(image.id for image in fresh)
            fresh = fresh[: max_images - count]
            count += len(fresh)
            marker = page[-1].id
            yield fresh
        log.warning("the image list was cut at %d images", max_images, extra={"images": max_images})

    # -- versions ----------------------------------------------------------------

    async def versions(self) -> VersionList:
        """The service's version list: an unsigned GET on its base URL."""
        try:
            response = await self._http.get("/", auth=None, headers={"Scp-Api-Version": ""})
        except httpx.TransportError as exc:
            raise errors.CloudUnavailable(
                f"version list unreachable: {type(exc).__name__}"
            ) from None
        if not response.is_success:
            raise self._error(response, member_path=False)
        try:
            return VersionList.model_validate_json(response.content)
        except ValidationError:
            raise errors.CloudUnavailable(
                "version list unreadable", status=response.status_code
            ) from None

    async def version_report(self, today: date | None = None) -> VersionReport:
        """Compare the configured version with the service's list.

        The date that matters is `not_before`, the minimum support guarantee date
        (`supported_until` only when it is missing): before it a DEPRECATED version is
        still guaranteed; after it any version but the CURRENT one may go any day.
        """
        today = today or datetime.now(UTC).date()
        listing = (await self.versions()).versions
        current = next((v.number for v in listing if v.status.upper() == "CURRENT"), None)
        mine = next((v for v in listing if v.number == self.api_version), None)
        served = [v.number for v in listing]
        problem: str | None = None
        level = VersionLevel.OK
        until: date | None = None
        if mine is None:
            level = VersionLevel.NOT_SERVED
            problem = f"version {self.api_version} is not served"
        else:
            status = mine.status.upper()
            until = _parse_day(mine.not_before) or _parse_day(mine.supported_until)
            if status != "CURRENT" and until is not None and until < today:
                level = VersionLevel.AT_RISK
                problem = (
                    f"version {self.api_version} is {status} and its minimum support date,"
                    f" {until.isoformat()}, has passed: it may stop being served any day"
                )
            elif status == "DEPRECATED":
                level = VersionLevel.DEPRECATED
                problem = f"version {self.api_version} is DEPRECATED" + (
                    f" (served at least until {until.isoformat()})" if until else ""
                )
        if problem and current:
            problem += f"; the CURRENT version is {current} (set SCP_API_VERSION={current})"
        return VersionReport(
            configured=self.api_version,
            status=mine.status if mine else None,
            current=current,
            served=served,
            problem=problem,
            level=level,
            not_before=until,
        )

    # -- plumbing ----------------------------------------------------------------

    @staticmethod
    def _image_path(image_id: str) -> str:
        return f"/v1/images/{quote(image_id, safe='')}"

    @classmethod
    def _members_path(cls, image_id: str) -> str:
        return f"{cls._image_path(image_id)}/members"

    @classmethod
    def _member_path(cls, image_id: str, member_id: str) -> str:
        return f"{cls._members_path(image_id)}/{quote(member_id, safe='')}"

    async def _own_earlier_attempt(
        self, image_id: str, member_id: str, started: datetime, language: str | None
    ) -> ImageMember | None:
        try:
            member = await self.show_member(image_id, member_id, language=language)
        except errors.MemberNotFound:
            return None
        created = _parse_time(member.created_at)
        if created is not None and created < started - CONFLICT_CLOCK_SLACK:
            return None
        log.info("retried add found its own earlier attempt", extra={"image": image_id})
        return member

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        language: str | None = None,
        attempts: int | None = None,
        before_retry: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[httpx.Response, int]:
        """Send with retries; the answer that ended the loop, and how many attempts it took.

        The bot's one retry policy for the cloud: up to `retry.attempts` tries after a
        reset, a timeout or a 429/502/503/504, each signed afresh (`ScpAuth` runs per
        request); between them the jittered backoff or the Retry-After asked for, whichever
        is longer, and none at all when Retry-After is over `retry.max_retry_after` (the
        answer is returned as it is).

        `before_retry` (for a request not safe to repeat) is awaited before each retry that
        follows a failure after which the request may have been carried out: a reset or a
        timeout once it could have left, a gateway's 502 or 504.
        """
        headers = {"Accept-Language": language or self.language}
        # Sorted by name, as the official SDK sends (and signs) them: a gateway that
        # canonicalises the URL before checking the signature expects that order.
        query = httpx.QueryParams(sorted(params.items())) if params else None
        most = min(attempts, self.retry.attempts) if attempts else self.retry.attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    method, path, json=json, params=query, headers=headers
                )
            except httpx.TransportError as exc:
                if self._ending():
                    # Cancelled, or the client closed under the call (a stop): no retry,
                    # and nothing said of one.
                    raise errors.CloudUnavailable(
                        f"{method} {path} stopped: the client is closing ({type(exc).__name__})"
                    ) from None
                if attempt >= most:
                    raise errors.CloudUnavailable(
                        f"{method} {path} failed after {attempt} attempts: {type(exc).__name__}"
                    ) from None
                failure = type(exc).__name__
                retry_after = None
                may_have_landed = not isinstance(exc, NOT_SENT)
            else:
                status = response.status_code
                if status not in RETRY_STATUSES or attempt >= most:
                    return response, attempt
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    return response, attempt
                request_id = read_error_body(
                    response.content, response.headers.get("content-type", "")
                ).request_id
                failure = f"HTTP {status} (request id {request_id})"
                may_have_landed = status in GATEWAY_STATUSES
            if self._ending():
                raise errors.CloudUnavailable(f"{method} {path} stopped: the client is closing")
            delay = self.retry.delay(attempt, retry_after)
            log.warning("cloud API %s %s: %s, retry in %.2fs", method, path, failure, delay)
            await self.retry.sleep(delay)
            if before_retry is not None and may_have_landed:
                await before_retry()

    def _ending(self) -> bool:
        """Whether this call is to end rather than try again: the client was closed, or
        the task making the call is being cancelled."""
        if self._closed or self._http.is_closed:
            return True
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    def _parse(self, response: httpx.Response, model: type[Model], *, member_path: bool) -> Model:
        if not response.is_success:
            raise self._error(response, member_path=member_path)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise errors.CloudUnavailable(
                "the cloud API's answer could not be read",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            ) from None

    @staticmethod
    def _error(response: httpx.Response, *, member_path: bool) -> errors.CloudError:
        body = read_error_body(response.content, response.headers.get("content-type", ""))
        status = response.status_code
        cls: type[errors.CloudError]
        if status == 400 and body.code and "version" in body.code.lower():
            cls = errors.CloudAuthError
        elif status == 404:
            cls = errors.MemberNotFound if member_path else errors.ImageNotFound
        else:
            cls = {
                400: errors.MemberRefused,
                401: errors.CloudAuthError,
                403: errors.ImageNotShareable,
                409: errors.AlreadyMember,
            }.get(
                status,
                errors.CloudUnavailable
                if status in RETRY_STATUSES or status >= 500
                else errors.CloudError,
            )
        return cls(
            f"{response.request.method} {response.request.url.path} answered {status}",
            status=status,
            request_id=body.request_id or response.headers.get("X-Request-Id"),
            code=body.code,
            detail=body.detail,
        )
