"""Every error the bot raises on purpose, in one tree.

    ShareBotError
    ├── SettingsError            settings missing or invalid at start-up
    ├── CommandError             `/share-image` text that cannot be acted on
    ├── NotAllowed               the user has no role that permits this
    ├── StorageError             the database could not be read or written
    ├── DeliveryError            Slack did not take a message (tried again later)
    └── CloudError               the cloud API did not do what was asked
        ├── MemberRefused        400: the member id was refused
        ├── CloudAuthError       401: keys, signature, clock or version wrong (admins' problem)
        ├── ImageNotShareable    403: this account may not share this image
        ├── ImageNotFound        404: no such image, or not this account's
        ├── AlreadyMember        409: the member is already there
        ├── MemberNotFound       404 on a member path: the member is not there
        └── CloudUnavailable     5xx, 429, timeouts, resets, unreadable bodies, after retries

Each carries what a person needs to follow it up (HTTP status, the service's
request id, its detail). `bot.messages` maps them to what users read; nothing
else decides wording. None of them ever holds a secret.
"""

from __future__ import annotations


class ShareBotError(Exception):
    """Base of every error the bot raises on purpose."""


class SettingsError(ShareBotError):
    """Settings are missing or invalid; `problems` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CommandError(ShareBotError):
    """The command text cannot be acted on; `problem` is a message key, `values` fill it."""

    def __init__(self, problem: str, **values: str) -> None:
        self.problem = problem
        self.values = values
        super().__init__(problem)


class NotAllowed(ShareBotError):
    """The user holds no role that permits this; nothing was done."""

    def __init__(self, user_id: str, what: str) -> None:
        self.user_id = user_id
        self.what = what
        super().__init__(f"{user_id} may not {what}")


class StorageError(ShareBotError):
    """The database could not be read or written."""


class DeliveryError(ShareBotError):
    """Slack did not take a message; `error` is Slack's error code or the failure's type.

    `transient` errors (rate limits, 5xx, network) are worth trying again later.
    """

    def __init__(self, method: str, error: str, *, transient: bool = False) -> None:
        self.method = method
        self.error = error
        self.transient = transient
        super().__init__(f"{method} failed: {error}")


class CloudError(ShareBotError):
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
