"""What the bot has on record, as the layers above the domain read it.

`Records` is the read side that handlers render from: a request and what Slack was told
of it, a user's requests, the stored images, the registered members, what the cloud's
member list last said, who is asked to approve. Nothing in it calls the cloud or Slack;
every answer comes from SQLite (or memory), so it may run on the ack path.

The protocols are the stored records `bot.slack` reads and writes: it imports no
storage; the wiring (`bot/services.py`) passes it storage's classes, which fit them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from bot.sharing.images import ImageCatalog
from bot.sharing.oncall import Asked
from bot.sharing.policy import Policy
from bot.sharing.request import ShareRequest
from bot.sharing.values import KnownMember, SlackData, StoredImage
from storage import CloudMembers, Images, KnownMembers

T = TypeVar("T")


class RequestRecords(Protocol):
    """The share requests as stored (read side)."""

    def now(self) -> datetime:
        """The database's clock."""
        ...

    def get(self, request_id: int) -> ShareRequest | None:
        """The request with this id, or None."""
        ...

    def for_user(self, user_id: str, limit: int = 10) -> list[ShareRequest]:
        """The user's latest requests, newest first."""
        ...

    def running_share(self, image_id: str, member_id: str, *, before: int) -> ShareRequest | None:
        """The share of the member that runs now, asked before `before`, if any."""
        ...

    def through_bot(self, image_id: str) -> list[ShareRequest]:
        """The image's shares carried out by the bot, newest first."""
        ...

    def timed(self, image_id: str) -> list[ShareRequest]:
        """The image's running shares that end by themselves."""
        ...


class SlackRecords(Protocol):
    """What Slack was told about each request (`storage.SlackMessages`)."""

    def get(self, request_id: int) -> SlackData:
        """The request's Slack side (empty when nothing was posted yet)."""
        ...

    def update(self, request_id: int, **values: Any) -> SlackData:
        """Set fields of the request's Slack side; the record as it is afterwards."""
        ...

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` (writes and reads of any table) as one transaction."""
        ...

    def reading(self, work: Callable[[], T]) -> T:
        """Run `work` (reads only) as one transaction."""
        ...


class MemberNames(Protocol):
    """The friendly names of registered members (`storage.KnownMembers`)."""

    def name(self, member_id: str) -> str | None:
        """The friendly name, or None for an unknown member."""
        ...


class LanguageRecords(Protocol):
    """Each user's language as last learnt from Slack (`storage.People`)."""

    def language(self, user_id: str) -> str | None:
        """The remembered language, or None when unknown or older than a day."""
        ...

    def remember(
        self, user_id: str, language: str, *, also: Callable[[], object] | None = None
    ) -> None:
        """Remember a user's language (`also`: a write that goes with it, in the same
        transaction)."""
        ...


class EmailRecords(Protocol):
    """Which Slack user an email is, as Slack last said (`storage.SlackEmails`)."""

    def get(self, email: str) -> tuple[str | None, bool]:
        """(the user id or None, whether that answer is still fresh)."""
        ...

    def remember(self, email: str, user_id: str | None) -> None:
        """Remember Slack's answer for `email` (None: Slack knows nobody by it)."""
        ...


class Records:
    """The read side handlers render from: every answer from SQLite or memory, none
    from the cloud or Slack."""

    def __init__(
        self,
        *,
        requests: RequestRecords,
        messages: SlackRecords,
        images: ImageCatalog,
        stored: Images,
        members: KnownMembers,
        seen: CloudMembers,
        policy: Policy,
        clock: Callable[[], datetime],
    ) -> None:
        self._requests = requests
        self._messages = messages
        self._images = images
        self._stored = stored
        self._members = members
        self._seen = seen
        self._policy = policy
        self._clock = clock

    def now(self) -> datetime:
        """The database's clock."""
        return self._clock()

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` (reads of any of these records, and writes through the domain's
        services) as ONE transaction: an ask and the reads its answer needs take one
        lock, one check of the file and one commit instead of one each."""
        return self._messages.together(work)

    # -- requests --------------------------------------------------------------------------

    def request(self, request_id: int) -> ShareRequest | None:
        """The request with this id, or None."""
        return self._requests.get(request_id)

    def told(self, request_id: int) -> SlackData:
        """What Slack was told of the request: its messages (empty when none yet)."""
        return self._messages.get(request_id)

    def requests_of(self, user_id: str) -> list[ShareRequest]:
        """The user's latest requests, newest first (`/share-image status`)."""
        return self._requests.for_user(user_id)

    def running_share(self, image_id: str, member_id: str, *, before: int) -> ShareRequest | None:
        """The share of the member that runs now, asked before request `before`, if any."""
        return self._requests.running_share(image_id, member_id, before=before)

    def through_bot(self, image_id: str) -> list[ShareRequest]:
        """The image's shares carried out by the bot, newest first."""
        return self._requests.through_bot(image_id)

    def timed(self, image_id: str) -> list[ShareRequest]:
        """The image's running shares that end by themselves."""
        return self._requests.timed(image_id)

    def asked(self, request: ShareRequest) -> Asked:
        """Who is asked to decide `request` now (as its card names them)."""
        return self._policy.asked(request)

    # -- images ----------------------------------------------------------------------------

    def image(self, image_id: str) -> StoredImage | None:
        """What the bot knows of the image without asking the cloud; None when nothing."""
        return self._images.known(image_id)

    def images(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        """`image` for each of `image_ids`, leaving out the unknown."""
        return self._images.known_many(image_ids)

    def find_images(self, text: str, limit: int) -> list[StoredImage]:
        """Stored images worth sharing that match `text` (name or id), newest first."""
        return self._stored.search(text, limit=limit)

    def stored_image(self, image_id: str) -> StoredImage | None:
        """The stored list's image with this id, or None."""
        return self._stored.get(image_id)

    def image_list(self) -> tuple[int, datetime | None]:
        """How many images the stored list holds, and when it was last refreshed."""
        return self._stored.count(), self._stored.refreshed_at()

    # -- members ---------------------------------------------------------------------------

    def member_name(self, member_id: str) -> str | None:
        """The registered member's friendly name, or None."""
        return self._members.name(member_id)

    def find_members(self, text: str, limit: int) -> list[KnownMember]:
        """Registered members whose name holds `text` or whose id starts with it."""
        return self._members.search(text, limit=limit)

    def members(self) -> list[KnownMember]:
        """Every registered member, by name."""
        return self._members.all()

    def listed_outside(self, image_id: str, member_id: str) -> bool:
        """Whether the cloud's last member list showed the member, not through the bot."""
        listed = self._seen.get(image_id, member_id)
        return listed is not None and listed.outside and listed.gone_at is None
