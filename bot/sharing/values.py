"""The domain's values besides the request itself: roles and grants, members, shifts and
rotas, the stored image, what the cloud's member lists said, and a request's Slack side.

A leaf: it imports nothing of the project (the standard library only), so storage maps
its rows to these values at its edge, and everything above storage (the domain,
`bot.slack`, handlers) imports them from here, never from `storage`.

Timestamps stored as text keep the one sortable form `stamp` writes; `unstamp` and
`parse_stamp` read it back as a datetime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

# The image id of a grant for every image.
ALL_IMAGES = ""
# A user's language, as Slack last said it, is taken for this long before Slack is asked.
LANGUAGE_FRESH_FOR = timedelta(days=1)


def stamp(moment: datetime) -> str:
    """A sortable UTC text timestamp, the form every table stores."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    """The datetime of a stored timestamp."""
    if len(text) == 27 and text[10] == "T" and text[19] == "." and text[26] == "Z":
        # The form `stamp` writes, read without strptime (a worker step reads dozens).
        try:
            return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)
        except ValueError:
            pass  # judged below, with strptime's own error
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_stamp(value: str | None) -> datetime | None:
    """A stored timestamp as a datetime (None and "" are None)."""
    return unstamp(value) if value else None


class Role(StrEnum):
    """What a role lets its holder do."""

    REQUESTER = "requester"  # may ask; an approver decides
    SHARER = "sharer"  # shares directly (with known members, see SHARE_UNKNOWN_MEMBERS)
    APPROVER = "approver"  # approves or denies others' requests
    ADMIN = "admin"  # all of the above, and manages grants


@dataclass(frozen=True)
class Grant:
    """One role held by one user, for one image or ("") all."""

    user_id: str
    role: Role
    image_id: str
    granted_by: str
    granted_at: str
    team_id: str = ""  # the Slack workspace; "" when not known (granted from the CLI)

    @property
    def scope(self) -> str:
        """`all images` or the image id."""
        return self.image_id or "all images"


@dataclass(frozen=True)
class KnownMember:
    """A registered member account."""

    member_id: str
    name: str


@dataclass(frozen=True)
class OnCallShift:
    """One person's on-call window (typed in by an admin), as stored timestamps."""

    id: int
    user_id: str
    starts_at: str
    ends_at: str


@dataclass(frozen=True)
class RotaEntry:
    """One person on call in a source's rota, from `starts` to `ends` (None: always)."""

    source: str
    email: str
    user_id: str  # "" when Slack knows nobody by that email
    starts: datetime | None
    ends: datetime | None
    schedule_id: str = ""
    name: str = ""

    def covers(self, moment: datetime) -> bool:
        """Whether this entry is on call at `moment`."""
        return (self.starts is None or self.starts <= moment) and (
            self.ends is None or moment < self.ends
        )


@dataclass(frozen=True)
class SourceState:
    """When a rota source was last read, last tried, and what was wrong."""

    source: str
    read_at: datetime | None
    tried_at: datetime | None
    error: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoredImage:
    """One image of the account as the bot keeps and shows it: the cloud's image (see
    `bot.sharing.images.image_row`) with its times as stored timestamps."""

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
    created_at: str | None = None
    updated_at: str | None = None


class ListedMember(Protocol):
    """One member of one image as the cloud's member list shows it (`bot.scp.ImageMember`
    is one): what `/share-image list` renders. Times are the cloud's own text."""

    @property
    def member_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def created_at(self) -> str: ...

    @property
    def updated_at(self) -> str: ...


@dataclass(frozen=True)
class CloudMember:
    """One member of one image as the cloud last listed it."""

    image_id: str
    member_key: str
    member_id: str
    status: str | None
    outside: bool
    first_seen_at: str | None
    seen_at: str | None
    gone_at: str | None
    reported_at: str | None


@dataclass(frozen=True)
class ReconcileRun:
    """One reconcile: when it started and ended (None: under way), and what it found."""

    started_at: str | None = None
    finished_at: str | None = None
    cursor: str | None = None  # the last image listed by a run under way
    images: int = 0  # images it set out to list
    listed: int = 0  # lists the cloud answered
    outside: int = 0  # members found with access not through the bot (reported)
    gone: int = 0  # shares of the bot found removed outside it
    statuses: int = 0  # statuses updated (accepted, rejected)
    failures: int = 0  # lists that failed


@dataclass(frozen=True)
class SlackData:
    """One request's Slack side; every field empty until something was posted.

    Kept apart from the request's facts, as Slack's bookkeeping: which channel message
    a request's thread hangs off, where its approval card is, and which of its state's
    messages went out already, so a retry sends only what is missing.
    """

    request_id: int
    parent_channel: str | None = None
    parent_ts: str | None = None
    card_channel: str | None = None
    card_ts: str | None = None
    # The bot could not post in the request's channel: it answers through response_url.
    via_response_url: bool = False
    # The last state whose announcement was complete.
    announced_state: str | None = None
    # The state being announced now, and how many of its messages went out.
    announcing_state: str | None = None
    announce_step: int = 0
    # Passing failures of the announcement under way (rate limits, Slack down).
    delivery_failures: int = 0
    # The reminder before a share ends (with its Extend and Remove now buttons).
    reminder_ts: str | None = None
    # A worker died while announcing (or could not record what it posted): the next
    # message may have gone out already, so it is looked for in Slack before posting.
    check_before_posting: bool = False
    # The asker's thread message saying who was asked (with the Remind button), how many
    # approvals the card shows, and who was mentioned when (JSON: [[time, [user ids]], …]).
    waiting_ts: str | None = None
    card_approvals: int = 0
    reached: str | None = None

    def steps_done(self, state: str) -> int:
        """How many messages of `state`'s announcement went out already."""
        return self.announce_step if self.announcing_state == state else 0
