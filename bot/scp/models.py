"""Typed requests, responses and error bodies of the image-member and image API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

ImageId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class MemberStatus(StrEnum):
    """Where a member stands: the other account accepts or rejects a `pending` share."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ImageMemberCreateRequest(BaseModel):
    """Body of the add-member call; the service accepts no other field."""

    model_config = ConfigDict(extra="forbid")

    member_id: MemberId


class ImageMemberStatusRequest(BaseModel):
    """Body of the set-status call (made by the member's own account)."""

    model_config = ConfigDict(extra="forbid")

    status: MemberStatus


class ImageSetRequest(BaseModel):
    """Body of the set-image call (`PUT /v1/images/{image_id}`): its visibility only.

    The service's description allows `private` or `shared` here (pattern
    `private|shared`): an image becomes public or community some other way, never so.
    """

    model_config = ConfigDict(extra="forbid")

    visibility: Annotated[str, StringConstraints(pattern=r"^(private|shared)$")]


class ImageMember(BaseModel):
    """ImageMemberShowResponse: one member of one image."""

    created_at: str
    image_id: str
    member_id: str
    # Kept as text: a status the service adds later must not make a done share look failed.
    status: str
    updated_at: str


class ImageMemberList(BaseModel):
    """Answer of the list-members call."""

    members: list[ImageMember]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# `2024-06-16 02:55:13+00:00` (SCP's OpenAPI description) and `2025-07-22T09:00:00Z` (the
# operation's own example) both read; one without an offset is taken as UTC.
Timestamp = Annotated[datetime, AfterValidator(_aware)]


class ImageStatus(StrEnum):
    """The image states the bot acts on; the service has more (`queued`, `saving`, ...)."""

    ACTIVE = "active"


class Visibility(StrEnum):
    """Who sees an image: only `private` and `shared` ones are worth sharing."""

    PUBLIC = "public"
    COMMUNITY = "community"
    SHARED = "shared"
    PRIVATE = "private"


class Image(BaseModel):
    """ImageShowResponse, the fields the bot uses; the service sends many more.

    Only `id` is insisted on: a field the service leaves out or changes must not make a
    whole image list unreadable. `status` and `visibility` stay text for the same reason
    (compare with `ImageStatus` and `Visibility`).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str | None = None
    os_distro: str | None = None
    scp_os_version: str | None = None
    status: str | None = None
    visibility: str | None = None
    size: int | None = None  # bytes
    min_disk: int | None = None  # GB
    owner: str | None = None
    owner_account_name: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class ImageList(BaseModel):
    """Answer of the list-images call: one page."""

    images: list[Image]


class ApiVersion(BaseModel):
    """One entry of the service's version list.

    `not_before` is the minimum support guarantee date (`2025-12-31` or `20251231`): the
    version is served at least until then, and after it a DEPRECATED one may go any day.
    `supported_until` is in no document: read only when `not_before` is missing, and
    used by the sandbox as the day it withdraws a version.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    not_before: str | None = None
    supported_until: str | None = None
    links: list[Any] = Field(default_factory=list)

    @property
    def number(self) -> str:
        """`1.3` for an id of `v1.3`."""
        return self.id.removeprefix("v")


class VersionList(BaseModel):
    """Answer of the unsigned GET on the service's base URL."""

    versions: list[ApiVersion]


class ServiceErrorItem(BaseModel):
    """One entry of the service's own error envelope."""

    code: str | None = None
    title: str | None = None
    status: int | str | None = None
    detail: str | list[Any] | None = None
    request_id: str | None = None
    global_request_id: str | None = None


class ServiceErrors(BaseModel):
    """`{"errors": [...]}`: the service's own error envelope."""

    errors: list[ServiceErrorItem] = Field(min_length=1)


class GatewayError(BaseModel):
    """`{"status": "UNAUTHORIZED", "name": ..., "message": ...}`: the API gateway's."""

    status: str
    name: str | None = None
    message: str | None = None


class FrameworkError(BaseModel):
    """`{"timestamp": ..., "path": ..., "status": 404, "error": ..., "requestId": ...}`."""

    status: int
    error: str
    path: str | None = None
    timestamp: Any = None
    requestId: str | None = None


class ErrorBody(BaseModel):
    """What could be read from an error body, whichever envelope it came in."""

    code: str | None = None
    detail: str | None = None
    request_id: str | None = None


def _text(detail: str | list[Any] | None) -> str | None:
    if detail is None or isinstance(detail, str):
        return detail
    return "; ".join(item if isinstance(item, str) else json.dumps(item) for item in detail)


def read_error_body(content: bytes, content_type: str) -> ErrorBody:
    """Read any of the three error envelopes; anything else (HTML, truncated) gives a summary."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        kind = content_type.split(";")[0].strip() or "no content type"
        return ErrorBody(detail=f"unreadable body ({kind}, {len(content)} bytes)")
    if isinstance(data, dict):
        for envelope in (ServiceErrors, FrameworkError, GatewayError):
            try:
                parsed = envelope.model_validate(data)
            except ValidationError:
                continue
            if isinstance(parsed, ServiceErrors):
                first = parsed.errors[0]
                return ErrorBody(
                    code=first.code or first.title,
                    detail=_text(first.detail),
                    request_id=first.request_id or first.global_request_id,
                )
            if isinstance(parsed, FrameworkError):
                return ErrorBody(code=parsed.error, detail=parsed.path, request_id=parsed.requestId)
            return ErrorBody(code=parsed.status, detail=parsed.message or parsed.name)
    return ErrorBody(detail=f"unexpected JSON body ({len(content)} bytes)")
