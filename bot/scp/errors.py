"""Every error of the cloud client, in one tree.

    CloudError               the cloud API did not do what was asked
    ├── MemberRefused        400: the member id was refused
    ├── CloudAuthError       401: keys, signature, clock or version wrong (admins' problem)
    ├── ImageNotShareable    403: this account may not share this image
    ├── ImageNotFound        404: no such image, or not this account's
    ├── AlreadyMember        409: the member is already there
    ├── MemberNotFound       404 on a member path: the member is not there
    └── CloudUnavailable     5xx, 429, timeouts, resets, unreadable bodies, after retries

Each carries what a person needs to follow it up: the HTTP status, the service's
request id, its error code and detail. None of them ever holds a secret.
"""

from __future__ import annotations


class CloudError(Exception):
    """The cloud API answered with an error, or could not be reached."""

    kind = "unexpected"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.code = code
        self.detail = detail
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.args[0]]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.detail:
            parts.append(f"detail={self.detail}")
        return " ".join(parts)


class MemberRefused(CloudError):
    """400: the cloud API refused the member id (or the request)."""

    kind = "member_refused"


class CloudAuthError(CloudError):
    """401: access key, secret, signature, clock or API version rejected."""

    kind = "misconfigured"


class ImageNotShareable(CloudError):
    """403: this account may not share this image (public, or not permitted)."""

    kind = "not_shareable"


class ImageNotFound(CloudError):
    """404 on an image: it does not exist or this account does not own it."""

    kind = "image_not_found"


class MemberNotFound(CloudError):
    """404 on a member path: the image has no such member."""

    kind = "member_not_found"


class AlreadyMember(CloudError):
    """409: the member is already on the image, in some status."""

    kind = "already_member"


class CloudUnavailable(CloudError):
    """The cloud API stayed unreachable, slow, rate-limited or broken after retries."""

    kind = "unavailable"
