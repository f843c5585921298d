"""Who may ask, share and decide: the rules, in one place, testable without Slack."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bot.sharing.request import RequestState, ShareRequest
from storage import Role

MAY_ASK = frozenset({Role.REQUESTER, Role.SHARER, Role.APPROVER, Role.ADMIN})
SHARES_DIRECTLY = frozenset({Role.SHARER, Role.ADMIN})
DECIDES = frozenset({Role.APPROVER, Role.ADMIN})


class UnknownMembers(StrEnum):
    """What a `sharer` sharing with a member nobody registered goes through."""

    APPROVAL = "approval"
    DIRECT = "direct"


class MakeShared(StrEnum):
    """What the bot does with a private image asked to be shared (only Shared ones have
    members): `auto` sets it to Shared first and says so; `never` refuses the request."""

    AUTO = "auto"
    NEVER = "never"


class WhyApproval(StrEnum):
    """Why a request waits for an approver."""

    ROLE = "role"  # the asker may only ask
    UNKNOWN_MEMBER = "unknown_member"  # nobody registered the member
    TWO_PERSON = "two_person"  # the image needs two approvals, whoever asks


class Refusal(StrEnum):
    """Why an approve or deny click changed nothing."""

    UNKNOWN = "unknown"  # no such request, or the click did not come from its card
    NOT_APPROVER = "not_approver"
    OWN_REQUEST = "own_request"
    APPROVED_ALREADY = "approved_already"  # the clicker gave the first of two approvals
    DONE = "done"  # someone decided already, or it moved on
    EXPIRED = "expired"


def may_ask(roles: set[Role]) -> bool:
    """Whether these roles let their holder ask for a share at all."""
    return bool(roles & MAY_ASK)


def why_approval(
    roles: set[Role],
    *,
    member_known: bool,
    unknown_members: UnknownMembers,
    approvals_needed: int = 1,
) -> WhyApproval | None:
    """Why a request by a holder of `roles` needs an approver; None when it does not.

    An image that needs two approvals needs them whoever asks: the rule is the image's,
    not the role's."""
    if not roles & SHARES_DIRECTLY:
        return WhyApproval.ROLE
    if approvals_needed > 1:
        return WhyApproval.TWO_PERSON
    if unknown_members is UnknownMembers.APPROVAL and not member_known:
        return WhyApproval.UNKNOWN_MEMBER
    return None


def may_decide(roles: set[Role]) -> bool:
    """Whether these roles let their holder approve or deny."""
    return bool(roles & DECIDES)


def refusal(
    request: ShareRequest | None,
    user_id: str,
    roles: set[Role],
    now: datetime,
    *,
    approving: bool = True,
) -> Refusal | None:
    """Why `user_id` may not approve (or, `approving` False, deny) `request` now; None when
    they may. The first of two approvers may not approve again, but may still deny."""
    if request is None:
        return Refusal.UNKNOWN
    if not may_decide(roles):
        return Refusal.NOT_APPROVER
    if request.user_id == user_id:
        return Refusal.OWN_REQUEST
    if request.state == RequestState.EXPIRED:
        return Refusal.EXPIRED
    if request.state != RequestState.AWAITING_APPROVAL:
        return Refusal.DONE
    if request.expires_at is not None and request.expires_at <= now:
        return Refusal.EXPIRED  # time ran out before the worker marked it
    if approving and request.first_approved_by == user_id:
        return Refusal.APPROVED_ALREADY
    return None
