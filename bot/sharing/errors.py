"""Every error the share rules raise on purpose, in one tree.

    SharingError             base of the domain's errors
    ├── CommandError         a request that cannot be acted on (bad ids, missing words)
    ├── FieldsInvalid        a form whose fields break those rules, a CommandError per field
    ├── NotAllowed           the user holds no role that permits this
    │   └── NotAdmin         an admin command from someone who is not an admin
    ├── LastAdmin            revoking the last admin for all images from Slack
    ├── DeliveryError        the people concerned could not be told (tried again later)
    │   └── ApproversUnreachable   no approval card can be posted: nobody could approve
    └── DirectoryUnavailable Slack could not say who an email is (the rota read is kept)

    bot.scp.errors.CloudError
    └── MemberStillListed    a remove answered, yet the member list still holds the member

The cloud client (`bot.scp.errors`), the rota readers (`bot.rota.errors`) and storage
(`storage.errors`) have trees of their own; `bot.slack.texts` turns all of them into what
users read, and nothing else decides wording. None of them ever holds a secret.

The layers above the domain see the cloud's and storage's errors through this module:
`CloudError` and `StorageError` are re-exported here (the same classes, not wrappers), so
handlers and `bot.slack` catch them without importing `bot.scp` or `storage`.
"""

from __future__ import annotations

from bot.scp.errors import CloudError as CloudError
from storage.errors import StorageError as StorageError


class SharingError(Exception):
    """Base of every error the share rules raise on purpose."""


class CommandError(SharingError):
    """The request cannot be acted on; `problem` is a message key, `values` fill it."""

    def __init__(self, problem: str, **values: str) -> None:
        self.problem = problem
        self.values = values
        super().__init__(problem)


class FieldsInvalid(SharingError):
    """A submitted form breaks the command's rules; `problems` maps each field to its error."""

    def __init__(self, problems: dict[str, CommandError]) -> None:
        self.problems = problems
        super().__init__(", ".join(f"{field}: {e.problem}" for field, e in problems.items()))


class NotAllowed(SharingError):
    """The user holds no role that permits this; nothing was done."""

    def __init__(self, user_id: str, what: str) -> None:
        self.user_id = user_id
        self.what = what
        super().__init__(f"{user_id} may not {what}")


class NotAdmin(NotAllowed):
    """An admin command from someone who is not an admin for all images."""


class LastAdmin(SharingError):
    """Revoking this admin would leave nobody able to administer the bot from Slack."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"{user_id} is the last admin for all images")


class DeliveryError(SharingError):
    """A message did not reach people; `error` is the platform's code or the failure's type.

    `transient` errors (rate limits, 5xx, network) are worth trying again later.
    """

    def __init__(self, method: str, error: str, *, transient: bool = False) -> None:
        self.method = method
        self.error = error
        self.transient = transient
        super().__init__(f"{method} failed: {error}")


class ApproversUnreachable(DeliveryError):
    """No approver can be asked (no approval channel, or the bot may not post there)."""


class DirectoryUnavailable(SharingError):
    """Slack could not be asked who an email is; the rota read before is kept."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class MemberStillListed(CloudError):
    """After a remove, the cloud's member list still holds the member (`left`: the ids as
    listed): it still has access, so the removal is not done and is tried again."""

    kind = "still_listed"

    def __init__(self, image_id: str, left: list[str]) -> None:
        self.left = left
        super().__init__(
            f"image {image_id} still lists {', '.join(left)} after the remove",
            detail=" ".join(left),
        )
