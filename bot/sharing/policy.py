"""Who may do what: every rule about people and their roles, in one place.

    action           who may                                         for
    ask              any role (requester, sharer, approver, admin)   the image, or all images
    share directly   sharer, admin (a known member, one approval)    the image, or all images
    approve, deny    approver, admin; never on their own request     the image, or all images
    end (Remove now) whoever asked, or an admin                      the image, or all images
    extend           whoever asked, or an admin; and may still ask   the image, or all images
    remind           whoever asked, only
    administer       admin                                           all images only

The last admin for all images cannot be revoked from Slack (nobody could administer
the bot from there); the command line's operator may, and can grant again.

Who is asked to approve a request, and whom every refusal of an approve or a deny
names, is one answer (`Policy.asked`): whoever is on call for the image (typed shifts,
then the stored rotas), else everyone who may approve (`who_may_approve`: the approvers
of that image, then of all images, then the admins); never the asker, nor whoever gave
its first approval. The sources are `ApproverSource`s of `WhoIsOnCall`: a new source of
approvers (another on-call tool) is one new class there, and every message follows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from enum import StrEnum

from bot.sharing.oncall import Asked, MayApprove, WhoIsOnCall, approvers_of
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.values import ALL_IMAGES, Role
from storage import Grants


class Action(StrEnum):
    """What someone may or may not do."""

    ASK = "ask"
    SHARE_DIRECTLY = "share_directly"
    APPROVE = "approve"
    DENY = "deny"
    END = "end"
    EXTEND = "extend"
    REMIND = "remind"
    ADMINISTER = "administer"


MAY_ASK = frozenset({Role.REQUESTER, Role.SHARER, Role.APPROVER, Role.ADMIN})
SHARES_DIRECTLY = frozenset({Role.SHARER, Role.ADMIN})
DECIDES = frozenset({Role.APPROVER, Role.ADMIN})
ENDS_ANY = frozenset({Role.ADMIN})  # ends or extends anyone's share
ADMINISTERS = frozenset({Role.ADMIN})  # held for all images


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


# -- the rules, on roles alone -------------------------------------------------------------


def allows(action: Action, roles: Collection[Role], *, own: bool = False) -> bool:
    """Whether holding `roles` lets someone do `action` (`own`: to a request they asked).

    `roles` are those held for the image concerned (its own grants and all-image ones);
    for `ADMINISTER`, those held for all images. The table of the module's docstring,
    and nothing else: the checks of a request's state come on top (`refusal`)."""
    held = set(roles)
    if action is Action.ASK:
        return bool(held & MAY_ASK)
    if action is Action.SHARE_DIRECTLY:
        return bool(held & SHARES_DIRECTLY)
    if action in {Action.APPROVE, Action.DENY}:
        return not own and bool(held & DECIDES)
    if action is Action.END:
        return own or bool(held & ENDS_ANY)
    if action is Action.EXTEND:
        # An extension is a new ask: whoever asks it must still hold a role.
        return (own or bool(held & ENDS_ANY)) and bool(held & MAY_ASK)
    if action is Action.REMIND:
        return own
    assert action is Action.ADMINISTER, action
    return bool(held & ADMINISTERS)


def may_ask(roles: Collection[Role]) -> bool:
    """Whether these roles let their holder ask for a share at all (and list members)."""
    return allows(Action.ASK, roles)


def may_decide(roles: Collection[Role]) -> bool:
    """Whether these roles let their holder approve or deny (others' requests)."""
    return allows(Action.APPROVE, roles)


def may_administer(roles: Collection[Role]) -> bool:
    """Whether these roles, held for all images, let their holder administer the bot."""
    return allows(Action.ADMINISTER, roles)


def why_approval(
    roles: Collection[Role],
    *,
    member_known: bool,
    unknown_members: UnknownMembers,
    approvals_needed: int = 1,
) -> WhyApproval | None:
    """Why a request by a holder of `roles` needs an approver; None when it does not.

    An image that needs two approvals needs them whoever asks: the rule is the image's,
    not the role's."""
    if not allows(Action.SHARE_DIRECTLY, roles):
        return WhyApproval.ROLE
    if approvals_needed > 1:
        return WhyApproval.TWO_PERSON
    if unknown_members is UnknownMembers.APPROVAL and not member_known:
        return WhyApproval.UNKNOWN_MEMBER
    return None


def refusal(
    request: ShareRequest | None,
    user_id: str,
    roles: Collection[Role],
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
    action = Action.APPROVE if approving else Action.DENY
    if not allows(action, roles, own=request.user_id == user_id):
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


def cannot_decide(request: ShareRequest) -> set[str]:
    """Who may not approve the request whatever their roles: its asker, and whoever gave
    its first approval. Nobody asks them, and no message names them as deciders."""
    return {p for p in (request.user_id, request.first_approved_by) if p}


def keeps_last_admin(role: Role, image_id: str, *, operator: bool = False) -> bool:
    """Whether revoking `role` for `image_id` must leave someone an admin for all images.

    From Slack, yes: nobody could administer the bot there otherwise. The command line's
    `operator` may revoke the last one (they can grant again from the shell). Storage
    checks and removes in one transaction, so two admins revoking each other at once
    cannot leave nobody."""
    return not operator and role is Role.ADMIN and image_id == ALL_IMAGES


# -- the rules, asked about people ---------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Policy:
    """Who may do what, answered from the grants; and who is asked to approve a request.

    `who`: where the people asked come from (typed shifts, rotas, then everyone who may
    approve); without it, everyone who may approve."""

    def __init__(
        self,
        grants: Grants,
        *,
        who: WhoIsOnCall | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.grants = grants
        self.who = who or WhoIsOnCall([MayApprove(grants)], clock=clock)

    def roles(self, user_id: str, image_id: str) -> set[Role]:
        """The roles `user_id` holds for `image_id` (its own grants and all-image ones)."""
        return self.grants.roles(user_id, image_id)

    def may(
        self, action: Action, user_id: str, image_id: str = ALL_IMAGES, *, own: bool = False
    ) -> bool:
        """Whether `user_id` may do `action` for `image_id` (`own`: their own request)."""
        scope = ALL_IMAGES if action is Action.ADMINISTER else image_id
        return allows(action, self.roles(user_id, scope), own=own)

    def may_ask(self, user_id: str, image_id: str) -> bool:
        """Whether `user_id` may ask for a share of `image_id` (or list its members)."""
        return self.may(Action.ASK, user_id, image_id)

    def may_administer(self, user_id: str) -> bool:
        """Whether `user_id` is an admin for all images."""
        return self.may(Action.ADMINISTER, user_id)

    def may_end(self, request: ShareRequest, user_id: str) -> bool:
        """Whether `user_id` may end the share early or ask to extend it: its asker, or an
        admin (for its image or all). Extending asks again, under `may_ask` too."""
        return self.may(Action.END, user_id, request.image_id, own=request.user_id == user_id)

    def may_remind(self, request: ShareRequest, user_id: str) -> bool:
        """Whether `user_id` may press Remind on the request: only whoever asked."""
        return allows(Action.REMIND, (), own=request.user_id == user_id)

    def refusal(
        self,
        request: ShareRequest | None,
        user_id: str,
        now: datetime,
        *,
        approving: bool = True,
    ) -> Refusal | None:
        """Why `user_id` may not approve (or deny) `request` now; None when they may."""
        roles = self.roles(user_id, request.image_id) if request is not None else set()
        return refusal(request, user_id, roles, now, approving=approving)

    def images_decided_by(self, user_id: str) -> set[str] | None:
        """The images whose requests `user_id` may decide: None for every image."""
        return self.grants.images_decided_by(user_id)

    # -- whom to ask, whom to name -------------------------------------------------------

    def asked(self, request: ShareRequest, now: datetime | None = None) -> Asked:
        """Who is asked to decide `request` now: the card mentions them, a reminder to
        whoever is on call too, and every refusal of an approve or a deny names them."""
        return self.who.for_image(request.image_id, now, besides=cannot_decide(request))

    def approvers(self, request: ShareRequest) -> list[str]:
        """The approvers of the request's image, then those of all images (no admins)."""
        skip = cannot_decide(request)
        return [p for p in approvers_of(self.grants, request.image_id) if p not in skip]

    def admins(self, *, besides: Collection[str] = ()) -> list[str]:
        """The admins for all images: who can grant a role, or help when nothing else can."""
        return [p for p in self.grants.holders(Role.ADMIN) if p not in besides]
