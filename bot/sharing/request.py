"""A share request as the domain sees it: a value with enums and datetimes.

A leaf: it imports nothing of the project. Storage maps its rows to `ShareRequest`
values and back at its own edge (`storage.requests`), so nothing above it parses a
timestamp or compares a state with a string. The states' meaning and the moves between
them are in `bot.sharing.states`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class RequestState(StrEnum):
    """Where a share request stands."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SENDING = "sending"
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REMOVING = "removing"
    REMOVED = "removed"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"


class IllegalMove(Exception):
    """A move the request's life does not allow: a bug, never a user's doing."""


class Action(StrEnum):
    """What a request asks of the cloud: add the member, or remove it."""

    SHARE = "share"
    UNSHARE = "unshare"


@dataclass(frozen=True)
class ShareRequest:
    """One ask, its decision and the cloud API's answer (what Slack was told is apart)."""

    id: int
    action: Action
    user_id: str
    team_id: str | None
    channel_id: str | None
    response_url: str | None
    image_id: str
    member_id: str
    reason: str | None
    language: str | None
    state: RequestState
    created_at: datetime
    updated_at: datetime | None
    needs_approval: bool
    approval_reason: str | None
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    deny_reason: str | None
    sent_at: datetime | None
    finished_at: datetime | None
    api_status: int | None
    api_request_id: str | None
    error_kind: str | None
    error_detail: str | None
    member_status: str | None
    # The cloud's own timestamps, as it wrote them (shown, never computed with).
    member_created_at: str | None
    member_updated_at: str | None
    follow_until: datetime | None
    next_poll_at: datetime | None
    due_at: datetime | None
    lease_until: datetime | None
    # A share that ends by itself (duration None: until removed).
    duration: str | None = None  # as asked, `7d`
    ends_at: datetime | None = None
    remind_at: datetime | None = None
    reminded_at: datetime | None = None
    removing_at: datetime | None = None
    removed_by: str | None = None
    removal_result: str | None = None
    extends: int | None = None
    extended_by: int | None = None
    # Approval: how many approvals it needs and has, and who gave the first of two.
    approvals_needed: int = 1
    approvals: int = 0
    first_approved_by: str | None = None
    first_approved_at: datetime | None = None
    # The last reminder stage posted to approvers (0: none yet), and the asker's Remind.
    approval_reminders: int = 0
    nudge_asked_at: datetime | None = None
    nudge_sent_at: datetime | None = None
    # One share per image and member: the running share whose end this request moved
    # (nothing was added), and whether the member already had access not through the bot.
    takes_over: int | None = None
    was_present: bool = False
    # The image was private: the bot set it Shared for this request (SHARE_MAKE_SHARED=auto).
    made_shared_at: datetime | None = None
    # After this request's removal the image had no member left: the bot set it private again.
    made_private_at: datetime | None = None

    @property
    def unshare(self) -> bool:
        """Whether the request removes the member rather than adding it."""
        return self.action is Action.UNSHARE

    def log_fields(self) -> dict[str, Any]:
        """What a log line says about the request (never a secret: none is stored)."""
        return {
            "request": self.id,
            "user": self.user_id,
            "action": self.action.value,
            "image": self.image_id,
            "member": self.member_id,
            "state": self.state.value,
        }
