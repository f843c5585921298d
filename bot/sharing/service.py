"""The share service: who may share, what is recorded, what the cloud API is asked.

It knows nothing of Slack: handlers and the worker call it with plain values and
render what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.scp import ImageMember, MemberStatus, ScpClient, Visibility, accept_language, errors
from bot.sharing import states
from bot.sharing.approvals import NUDGE_EVERY, ApprovalReminders, next_nudge, waiting
from bot.sharing.commands import Share
from bot.sharing.durations import ShareDurations, parse_duration, reminder_at
from bot.sharing.errors import MemberStillListed, NotAllowed
from bot.sharing.images import ImageCatalog, Verdict, verdict_of
from bot.sharing.policy import (
    MakeShared,
    Policy,
    Refusal,
    UnknownMembers,
    may_ask,
    why_approval,
)
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.states import RUNNING
from bot.sharing.values import CloudMember, Role, StoredImage
from storage import CloudMembers, Grants, ImagePolicies, KnownMembers, NewRequest, ShareRequests

log = logging.getLogger(__name__)

MEMBER_STATES = {status.value: RequestState(status.value) for status in MemberStatus}
# Statuses of a refused add that may mean "only Shared images have members": Glance answers
# 403; SCP does not publish its own, so a read of the image after the refusal decides.
NOT_SHARED_STATUSES = frozenset({400, 403, 409})
# The error kinds of a private image: refused before anything is sent (SHARE_MAKE_SHARED=never),
# and an add refused because the image is (again) private.
IMAGE_PRIVATE = "image_private"
IMAGE_NOT_SHARED = "image_not_shared"
# The cloud refused to set a private image to Shared (permissions): nothing was added.
VISIBILITY_REFUSED = "visibility_refused"
# A removal refused because the image is private now (made so outside the bot).
IMAGE_PRIVATE_NOW = "image_private_now"


@dataclass(frozen=True)
class Asked:
    """A recorded ask: `created` is False when an open request already covered it."""

    request: ShareRequest
    created: bool
    member_name: str | None = None  # the member's registered name, read once per ask
    # Asked without a duration where there is a maximum: it lasts the maximum.
    capped: bool = False
    # The duration this ask would have had (`7d`; empty: until removed), which an open
    # request it joined (`created` False) may not have.
    duration: str = ""


@dataclass(frozen=True)
class Decision:
    """The result of an approve or deny click: the won request, or why nothing changed."""

    request: ShareRequest | None
    refusal: Refusal | None = None


class EndRefusal(StrEnum):
    """Why an Extend or Remove now click changed nothing."""

    UNKNOWN = "unknown"  # no such share, or the click did not come from its reminder
    NOT_OWNER = "not_owner"  # neither the asker nor an admin
    OVER = "over"  # the share is no longer running (removed, being removed, rejected…)
    EXTENDED = "extended"  # an extension was asked already


@dataclass(frozen=True)
class Ending:
    """The result of an Extend or Remove now click: the share, the extension asked, or why not."""

    request: ShareRequest | None
    refusal: EndRefusal | None = None
    extension: Asked | None = None


class NudgeRefusal(StrEnum):
    """Why a Remind click changed nothing."""

    UNKNOWN = "unknown"  # no such request, or the click did not come from its thread
    NOT_ASKER = "not_asker"  # only the person who asked may remind
    DONE = "done"  # decided, expired or moved on: nothing to remind of
    TOO_EARLY = "too_early"  # within NUDGE_EVERY of the ask or of the last Remind


@dataclass(frozen=True)
class Nudge:
    """The result of a Remind click: recorded, or why not (and when it may be pressed)."""

    request: ShareRequest | None
    refusal: NudgeRefusal | None = None
    next_at: datetime | None = None


@dataclass(frozen=True)
class HomeFacts:
    """What a person's Home tab shows: their newest requests and, for approvers, the
    newest waiting for them (None for everyone else), each with how many there are."""

    mine: list[ShareRequest]
    mine_total: int
    waiting: list[ShareRequest] | None
    waiting_total: int


@dataclass(frozen=True)
class Following:
    """How long and how often pending shares are re-read."""

    every: timedelta = timedelta(seconds=300)
    days: timedelta = timedelta(days=7)
    # A change whose answer never came (timeouts, resets, 5xx) may still have landed:
    # it is read back this often, for this long, and the thread told if it did.
    recheck_every: timedelta = timedelta(seconds=60)
    recheck_for: timedelta = timedelta(hours=1)


class ShareService:
    """Asking, deciding and carrying out shares; every step recorded before it matters."""

    def __init__(
        self,
        *,
        requests: ShareRequests,
        grants: Grants,
        members: KnownMembers,
        cloud: ScpClient,
        images: ImageCatalog | None = None,
        unknown_members: UnknownMembers = UnknownMembers.APPROVAL,
        make_shared: MakeShared = MakeShared.AUTO,
        following: Following | None = None,
        durations: ShareDurations | None = None,
        policies: ImagePolicies | None = None,
        reminders: ApprovalReminders | None = None,
        seen: CloudMembers | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.requests = requests
        self.grants = grants
        # Who may do what: every check below asks it.
        self.policy = policy or Policy(grants, clock=requests.now)
        self.members = members
        self.cloud = cloud
        self.images = images
        self.unknown_members = unknown_members
        self.make_shared = make_shared
        self.following = following or Following()
        self.durations = durations or ShareDurations()
        self.policies = policies
        self.reminders = reminders or ApprovalReminders()
        # The cloud's member lists as last read: its spelling of ids, who is there.
        self.seen = seen

    # -- asking --------------------------------------------------------------------------

    def ask(
        self,
        user_id: str,
        command: Share,
        *,
        language: str,
        team_id: str = "",
        channel_id: str = "",
        response_url: str = "",
        extends: int | None = None,
    ) -> Asked:
        """Check the user may ask, then record the request (queued or awaiting approval).

        A share gets the duration asked, within SHARE_MAX_DURATION (longer: CommandError
        naming the limit), or the default, or the maximum when there is no default.
        """
        roles, name, needed = self._judged_by(user_id, command)
        if not may_ask(roles):
            raise NotAllowed(user_id, f"{command.action} {command.image_id}")
        granted = None if command.unshare else self.durations.grant(command.duration)
        why = why_approval(
            roles,
            member_known=name is not None,
            unknown_members=self.unknown_members,
            approvals_needed=needed,
        )
        request, created = self.requests.record(
            NewRequest(
                action=command.action,
                user_id=user_id,
                image_id=command.image_id,
                member_id=command.member_id,
                reason=command.reason,
                language=language,
                team_id=team_id,
                channel_id=channel_id,
                response_url=response_url,
                needs_approval=why is not None,
                approval_reason=why.value if why else "",
                duration=granted.duration.text if granted and granted.duration else "",
                extends=extends,
                approvals_needed=needed if why is not None else 1,
            )
        )
        return Asked(
            request,
            created,
            name,
            capped=bool(granted and granted.capped),
            duration=granted.duration.text if granted and granted.duration else "",
        )

    def _judged_by(self, user_id: str, command: Share) -> tuple[set[Role], str | None, int]:
        """The asker's roles for the image, the member's registered name, and the
        approvals the ask needs if it needs any (an unshare: one): one read of storage
        when the roles are the grants' (the policy's own) and the rules are stored."""
        if self.policies is not None and type(self.policy) is Policy:
            roles, name, needed = self.grants.asking(user_id, command.image_id, command.member_id)
        else:
            roles = self.policy.roles(user_id, command.image_id)
            name = self.members.name(command.member_id)
            needed = self.approvals_needed(command.image_id)
        return roles, name, 1 if command.unshare else needed

    def approvals_needed(self, image_id: str) -> int:
        """How many approvals a share of `image_id` needs when it needs any (its policy)."""
        return self.policies.approvals(image_id) if self.policies is not None else 1

    def refusal(
        self, request: ShareRequest | None, user_id: str, *, approving: bool = True
    ) -> Refusal | None:
        """Why `user_id` may not approve (or deny) `request` now (None: they may); checked
        at every click."""
        return self.policy.refusal(request, user_id, self.requests_now(), approving=approving)

    def decide(self, request_id: int, user_id: str, *, approve: bool, reason: str = "") -> Decision:
        """Approve or deny, checked on the server each time; exactly one click wins each
        approval (a compare-and-set on the count), and one outcome in all.

        An approve that finds the count moved since it was read (another approver's click
        landed first) is checked again and counted from there: two approvers clicking at
        once on an image that needs two both count, once each.
        """
        request = self.requests.get(request_id)
        for _ in range(3):
            refused = self.refusal(request, user_id, approving=approve)
            if refused is not None or request is None:
                return Decision(request, refused or Refusal.UNKNOWN)
            move = states.APPROVE if approve else states.DENY
            won = self.requests.decide(
                request_id,
                approve=approve,
                by=user_id,
                reason=reason,
                seen=request.approvals,
                from_=move.from_,
                to=move.to,
            )
            if won is not None:
                log.info(
                    "request decided"
                    if won.state != RequestState.AWAITING_APPROVAL
                    else "request approved once, another approval needed",
                    extra={
                        "request": request_id,
                        "decision": won.state,
                        "by": user_id,
                        "approvals": won.approvals,
                    },
                )
                if won.state == RequestState.DENIED:
                    self.log_outcome(won)
                return Decision(won)
            request = self.requests.get(request_id)
        # Another click won meanwhile, or time ran out: say which, as it stands now.
        return Decision(request, self.refusal(request, user_id, approving=approve) or Refusal.DONE)

    def nudge(self, request_id: int, user_id: str) -> Nudge:
        """The asker's Remind: recorded for the worker to post, at most once per
        NUDGE_EVERY (and not within it of the ask); checked on the server."""
        request = self.requests.get(request_id)
        if request is None:
            return Nudge(None, NudgeRefusal.UNKNOWN)
        if not self.policy.may_remind(request, user_id):
            return Nudge(request, NudgeRefusal.NOT_ASKER)
        now = self.requests_now()
        if not waiting(request, now):
            return Nudge(request, NudgeRefusal.DONE)
        if self.requests.ask_nudge(request_id, user_id, not_before=now - NUDGE_EVERY):
            log.info("asker reminded the approvers", extra=request.log_fields())
            return Nudge(self.requests.get(request_id))
        current = self.requests.get(request_id) or request
        if not waiting(current, now):
            return Nudge(current, NudgeRefusal.DONE)
        return Nudge(current, NudgeRefusal.TOO_EARLY, next_at=next_nudge(current))

    def home(self, user_id: str, *, mine: int, waiting: int) -> HomeFacts:
        """The newest `mine` of the user's requests and, if they decide on any image, the
        newest `waiting` of the requests they may decide (never their own)."""
        images = self.policy.images_decided_by(user_id)
        waiting_now: list[ShareRequest] | None = None
        waiting_total = 0
        if images is None or images:
            waiting_now, waiting_total = self.requests.waiting_for(
                images, not_asked_by=user_id, limit=waiting
            )
        return HomeFacts(
            mine=self.requests.for_user(user_id, limit=mine),
            mine_total=self.requests.count_for_user(user_id),
            waiting=waiting_now,
            waiting_total=waiting_total,
        )

    async def list_members(
        self, user_id: str, image_id: str, *, language: str
    ) -> list[ImageMember]:
        """The image's members, from the cloud API; anyone with a role may look."""
        if not self.policy.may_ask(user_id, image_id):
            raise NotAllowed(user_id, f"list {image_id}")
        cloud_language = accept_language(language)
        try:
            return await self.cloud.list_members(image_id, language=cloud_language)
        except errors.ImageNotShareable:
            # Only Shared images have members (the service refuses even to list them):
            # a private one has none to show, which one read of the image tells.
            if self.images is None or not await self._reads_private(image_id, cloud_language):
                raise
            return []

    # -- carrying out (the worker's side) --------------------------------------------------------

    async def check_image(self, request: ShareRequest) -> ShareRequest:
        """Read the image before an approver is asked or a direct share is sent (for the
        latter, a fresh stored list that shows it Shared and active is enough).

        An image that does not exist (404), is public (nothing to share) or is not active
        yet ends the request here, failed, with nothing sent; a read that fails (5xx, a
        timeout) changes nothing: the add call decides, as without the read.
        """
        if self.images is None or request.unshare:
            return request
        checked = await self.images.check(
            request.image_id,
            language=accept_language(request.language or "en"),
            # A direct share goes to the cloud next: a fresh list that shows the image
            # shareable spares it the read (one round trip). Before approvers are asked,
            # the image is read, to show it as it is.
            trust_list=request.state is RequestState.QUEUED,
        )
        if checked.verdict is Verdict.PRIVATE and self.make_shared is MakeShared.NEVER:
            # Only Shared images have members, and the bot may not make it Shared: fail
            # before any approver is asked and before anything is sent.
            return self._fail_private(request)
        if not checked.blocks:
            return request
        error = checked.error
        failed = self._move(
            request,
            RequestState.FAILED,
            error_kind=checked.verdict.value,
            error_detail=checked.image.status
            if checked.verdict is Verdict.NOT_ACTIVE and checked.image
            else None,
            api_status=error.status if error else None,
            api_request_id=error.request_id if error else None,
            finished_at=self.requests_now(),
        )
        self.log_outcome(failed)
        return failed

    async def send(self, request: ShareRequest, *, again: bool = False) -> ShareRequest:
        """Call the cloud API for a request the worker has moved to `sending`; record the answer.

        `again`: a call for it was made before (by a worker that died): a 409 for a member
        created since `sent_at`, or a 404 to a removal, is that call's doing, a success.

        One share per image and member: a share of a member the bot shares already moves
        the running share's end (nothing is added), and a member that has access not
        through the bot is taken under the bot's timer as it is (nothing is added either).
        The id goes to the cloud as the cloud spells it, once known.
        """
        language = accept_language(request.language or "en")
        request, running, outside, listed = self._cloud_spelling(request)
        try:
            if request.unshare:
                await self.cloud.remove_member(
                    request.image_id, request.member_id, language=language, sent_before=again
                )
                done = request  # read back below
            else:
                member = await self._extended_member(request, language)
                if member is None and request.extends is None:
                    taken = await self._take_over(request, language, known=(running, outside))
                    if taken is not None:
                        return taken
                if member is None:
                    request = await self._shareable(request, language, listed=listed)
                    if request.state is not RequestState.SENDING:
                        return request
                    try:
                        member = await self.cloud.add_member(
                            request.image_id,
                            request.member_id,
                            language=language,
                            sent_before=request.sent_at if again else None,
                        )
                    except errors.AlreadyMember:
                        # Someone else added it (the console, another tool): it is there.
                        present = await self._present(request, language)
                        if present is None:
                            raise
                        return self._found_present(request, present)
                done = self._member_answer(request, member, api_status=200)
        except errors.CloudError as error:
            kind = None
            if not request.unshare and await self._refused_as_private(request, error, language):
                kind = IMAGE_NOT_SHARED
            done = await self._failed(request, error, kind=kind)
            if request.made_shared_at and not isinstance(error, errors.CloudUnavailable):
                await self._unshare_refused_add(done, language)
        else:
            if request.unshare:
                # A remove that answered is read back: the member must be gone, in any
                # spelling (`MemberStillListed` otherwise: the worker says so, tries again).
                done = await self._after_removal(request, language)
        return done

    # -- one share per image and member ------------------------------------------------------

    def _cloud_spelling(
        self, request: ShareRequest
    ) -> tuple[ShareRequest, ShareRequest | None, bool, StoredImage | None]:
        """The request with the member id as the cloud spells it, once a member list, an
        answer or a running share showed it (ids alike but for case are one member); and
        what a share reads before its call, in one transaction: the pair's running share,
        whether the last member list showed the member not through the bot, and the fresh
        image list's row of the image (None when the list is not fresh)."""
        seen, images = self.seen, self.images

        def read() -> tuple[ShareRequest | None, CloudMember | None, StoredImage | None]:
            running = self.requests.running_share(
                request.image_id, request.member_id, before=request.id
            )
            listed = seen.get(request.image_id, request.member_id) if seen is not None else None
            image = None
            if images is not None and not request.unshare:
                image = images.listed(request.image_id)
            return running, listed, image

        running, listed, image = self.requests.reading(read)
        outside = (
            running is None and listed is not None and listed.outside and listed.gone_at is None
        )
        spelled = running.member_id if running is not None else listed and listed.member_id
        typed = request.member_id
        if spelled and spelled != typed and spelled.lower() == typed.lower():
            log.info(
                "sending the member id as the cloud spells it",
                extra={"request": request.id, "typed": request.member_id, "cloud": spelled},
            )
            request = self.requests.update(request.id, member_id=spelled)
        return request, running, outside, image

    async def _present(self, request: ShareRequest, language: str) -> ImageMember | None:
        """The member as the cloud has it now; None when it is not a member."""
        try:
            return await self.cloud.show_member(
                request.image_id, request.member_id, language=language
            )
        except errors.MemberNotFound:
            return None

    async def _take_over(
        self,
        request: ShareRequest,
        language: str,
        *,
        known: tuple[ShareRequest | None, bool] | None = None,
    ) -> ShareRequest | None:
        """A share of a member that has access already, without an add: the bot's own
        running share gets this request's end, an outside member this request's timer.
        None when the member is not known to be there (or is gone): it is added.
        `known`: the running share and whether the member is listed outside the bot, as
        the caller just read them (read here otherwise)."""
        if known is not None:
            running, outside = known
        else:
            running = self.requests.running_share(
                request.image_id, request.member_id, before=request.id
            )
            outside = running is None and self._listed_outside(request)
        if running is None and not outside:
            return None
        member = await self._present(request, language)
        if member is None:
            return None  # gone meanwhile: a new share, added as usual
        if running is None:
            return self._found_present(request, member)
        now = self.requests_now()
        state = MEMBER_STATES.get(member.status, RequestState.PENDING)
        moved = self._move(
            request,
            state,
            takes_over=running.id,
            **self._clock(request, state, now),
            **self._answer_values(
                member, api_status=200, now=now, following=state == RequestState.PENDING
            ),
        )
        if moved.state == state and state in RUNNING:
            # The running share ends when this one does (or, until removed, never). A member
            # that rejected meanwhile leaves the running share's end as it was.
            self.requests.update(running.id, ends_at=None, remind_at=None)
            self.requests.link_extension(running.id, moved.id)
            log.info(
                "a share of a member shared already moves its end",
                extra={**moved.log_fields(), "takes_over": running.id},
            )
        self.log_outcome(moved)
        return moved

    def _listed_outside(self, request: ShareRequest) -> bool:
        """Whether the last member list showed the member, not through the bot."""
        if self.seen is None:
            return False
        listed = self.seen.get(request.image_id, request.member_id)
        return listed is not None and listed.outside and listed.gone_at is None

    def _found_present(self, request: ShareRequest, member: ImageMember) -> ShareRequest:
        """The member had access, not through the bot: nothing was added. With a duration,
        the share is now under the bot's timer (the request went through the usual rules)."""
        now = self.requests_now()
        state = MEMBER_STATES.get(member.status, RequestState.PENDING)
        found = self._move(
            request,
            state,
            was_present=True,
            **self._clock(request, state, now),
            **self._answer_values(
                member, api_status=200, now=now, following=state == RequestState.PENDING
            ),
        )
        self._note_member(request.image_id, member)
        log.info("the member had access already, not through the bot", extra=found.log_fields())
        self.log_outcome(found)
        return found

    def _note_member(self, image_id: str, member: ImageMember) -> None:
        """Remember the cloud's spelling of a member it answered with (through the bot)."""
        if self.seen is not None:
            self.seen.seen(
                image_id,
                member.member_id,
                status=member.status,
                outside=False,
                at=self.requests_now(),
            )

    # -- what the cloud's list says (the drift reconcile) -----------------------------------------

    def removed_outside(self, request: ShareRequest) -> ShareRequest | None:
        """A running share whose member the cloud no longer lists: removed outside the bot.
        Its timer stops; the worker tells its thread (once: the state is announced once)."""
        if request.state not in RUNNING:
            return None
        now = self.requests_now()
        gone = self._move(
            request,
            RequestState.REMOVED,
            removal_result="outside",
            ends_at=None,
            remind_at=None,
            next_poll_at=None,
            finished_at=now,
            due_at=now,
        )
        if gone.state != RequestState.REMOVED or gone.removal_result != "outside":
            return None  # it moved meanwhile (the bot itself is removing it)
        log.warning("a member was removed outside the bot", extra=gone.log_fields())
        self.log_outcome(gone)
        return gone

    def ended_by_unshare(self, request: ShareRequest) -> ShareRequest | None:
        """A running share whose member a later unshare of the bot removed: it is over (its
        thread is told the member was removed outside it). None when it moved meanwhile."""
        if request.state not in RUNNING:
            return None
        now = self.requests_now()
        ended = self._move(
            request,
            RequestState.REMOVED,
            ends_at=None,
            remind_at=None,
            next_poll_at=None,
            finished_at=now,
            due_at=now,
        )
        if ended.state != RequestState.REMOVED:
            return None
        self.log_outcome(ended)
        return ended

    def note_status(self, request: ShareRequest, member: ImageMember) -> ShareRequest | None:
        """A pending share the cloud lists as accepted or rejected: recorded as a status
        read would, and due for the worker to tell its thread. None when nothing changed."""
        state = MEMBER_STATES.get(member.status)
        if request.state != RequestState.PENDING or state in {None, RequestState.PENDING}:
            return None
        assert state is not None
        changed = self._move(
            request,
            state,
            member_status=member.status,
            member_updated_at=member.updated_at,
            next_poll_at=None,
            due_at=self.requests_now(),
        )
        if changed.state != state:
            return None
        self.log_outcome(changed)
        return changed

    async def _shareable(
        self, request: ShareRequest, language: str, *, listed: StoredImage | None
    ) -> ShareRequest:
        """Make sure the image can have members before the add: a `shared` image goes on
        (so do `public` and `community` ones, which the add decides, as ever); a `private`
        one is set to Shared first (SHARE_MAKE_SHARED=auto, recorded on the request and the
        image) or fails the request with nothing sent (never). A read that fails lets the
        add decide; a refusal of the change fails the request, as the add's would."""
        if self.images is None:
            return request
        # `listed`: the fresh list's row, read with the rest before the call; one that shows
        # the image shareable is taken at its word (else the list has nothing more to say).
        if listed is not None and verdict_of(listed) is Verdict.SHAREABLE:
            return request
        try:
            image = await self.images.read(request.image_id, language=language)
        except errors.CloudError as error:
            log.warning(
                "cannot read the image before adding; the add decides",
                extra={"request": request.id, "error": str(error)},
            )
            return request
        if (image.visibility or "").lower() != Visibility.PRIVATE:
            return request
        if self.make_shared is MakeShared.NEVER:
            return self._fail_private(request)
        # Recorded before the change is asked, on the request and for the image: after a
        # crash the bot still knows it made the image Shared (the read back finds it so).
        self.images.stored.mark_made_shared(request.image_id, request.id)
        request = self.requests.update(
            request.id, only_in=RequestState.SENDING, made_shared_at=self.requests_now()
        )
        try:
            await self.images.set_visibility(request.image_id, Visibility.SHARED, language=language)
        except errors.CloudError as error:
            # Nothing was added. A change without an answer may have landed: it stays
            # recorded (a Shared image is seen only by its members, and the bot made it so).
            unanswered = isinstance(error, errors.CloudUnavailable)
            if not unanswered:
                self.images.stored.forget_made_shared(request.image_id, request_id=request.id)
                request = self.requests.update(
                    request.id, only_in=RequestState.SENDING, made_shared_at=None
                )
            return await self._failed(
                request, error, kind=None if unanswered else VISIBILITY_REFUSED
            )
        log.info("made the image Shared so it can have members", extra=request.log_fields())
        return request

    def _fail_private(self, request: ShareRequest) -> ShareRequest:
        """Only Shared images have members, and SHARE_MAKE_SHARED=never forbids making this
        private one Shared: the request fails with nothing sent."""
        failed = self._move(
            request, RequestState.FAILED, error_kind=IMAGE_PRIVATE, finished_at=self.requests_now()
        )
        self.log_outcome(failed)
        return failed

    async def _refused_as_private(
        self, request: ShareRequest, error: errors.CloudError, language: str
    ) -> bool:
        """Whether a refused add means "only Shared images have members": the refusal's
        status may (400, 403, 409: the service does not say which), and one read of the
        image after it says `private` (a 409 for a member that is there is a real conflict)."""
        if self.images is None or error.status not in NOT_SHARED_STATUSES:
            return False
        if isinstance(error, errors.AlreadyMember):
            try:
                await self.cloud.show_member(request.image_id, request.member_id, language=language)
                return False
            except (errors.MemberNotFound, errors.ImageNotShareable):
                pass  # not there, or the image has no members at all (not Shared)
            except errors.CloudError:
                return False
        return await self._reads_private(request.image_id, language)

    async def _reads_private(self, image_id: str, language: str) -> bool:
        """Whether a fresh read of the image says `private` (a failed read says no)."""
        if self.images is None:
            return False
        try:
            image = await self.images.read(image_id, language=language, fresh=True)
        except errors.CloudError:
            return False
        return (image.visibility or "").lower() == Visibility.PRIVATE

    async def _extended_member(self, request: ShareRequest, language: str) -> ImageMember | None:
        """For an extension, the member as it is (no add needed); None when it is gone."""
        if request.extends is None:
            return None
        try:
            return await self.cloud.show_member(
                request.image_id, request.member_id, language=language
            )
        except errors.MemberNotFound:
            return None

    # -- shares that end by themselves -------------------------------------------------------

    def time_up(self, request: ShareRequest) -> bool:
        """Whether a running share's end has come."""
        ends = request.ends_at
        return request.state in RUNNING and ends is not None and ends <= self.requests_now()

    async def end(self, request: ShareRequest) -> ShareRequest:
        """Remove the member of a share whose time is up: recorded as `removing` before
        the call, `removed` after it. Not started while an extension is being sent."""
        if not self.requests.start_removing(request.id, from_=states.END.from_, to=states.END.to):
            return self.requests.get(request.id) or request
        log.info("share ended, removing the member", extra=request.log_fields())
        return await self.remove(self.requests.get(request.id) or request)

    async def remove(self, request: ShareRequest) -> ShareRequest:
        """Call the remove for a request in `removing`; record the answer.

        A member already gone (404) is recorded as such. While the cloud API does not
        answer, or refuses (credentials, permissions), the request stays in `removing`
        and the worker tries again: the share must end.
        """
        language = accept_language(request.language or "en")
        try:
            await self.cloud.remove_member(request.image_id, request.member_id, language=language)
        except errors.MemberNotFound:
            return await self._after_removal(request, language, result="gone", api_status=404)
        except errors.CloudError as error:
            await self._note_error(request, error)
            raise
        return await self._after_removal(request, language)

    async def _after_removal(
        self,
        request: ShareRequest,
        language: str,
        *,
        result: str = "removed",
        api_status: int = 204,
        members: list[ImageMember] | None = None,
    ) -> ShareRequest:
        """Read the member list back after a remove: the request is `removed` only when no
        spelling of the member is listed (ids alike but for case are one member to the bot).
        One still listed keeps it in `removing` (`MemberStillListed`: the thread is told
        what is left, and the removal is tried again); an image the bot made Shared with
        nobody left on it is set back to private."""
        if members is None:
            try:
                members = await self.cloud.list_members(request.image_id, language=language)
            except errors.CloudError as error:
                if request.state is RequestState.REMOVING:
                    await self._note_error(request, error)
                    raise
                # An unshare whose list cannot be read: removing, and read again shortly.
                self._move(request, RequestState.REMOVING, removing_at=self.requests_now())
                raise
        left = [m.member_id for m in members if m.member_id.lower() == request.member_id.lower()]
        if left:
            still = MemberStillListed(request.image_id, left)
            if request.state is RequestState.SENDING:
                request = self._move(
                    request, RequestState.REMOVING, removing_at=self.requests_now()
                )
            await self._note_error(request, still)
            log.warning("a removed member is still listed", extra=request.log_fields())
            raise still
        private_again = await self._private_again(request, members, language)
        return self._removed(request, result, api_status=api_status, made_private_at=private_again)

    async def _unshare_refused_add(self, request: ShareRequest, language: str) -> None:
        """The bot made the image Shared for this share and the cloud refused the add (an
        answer: nothing was added). Leave the image as found: private again when nobody
        is a member and nothing else is on its way (`_private_again`)."""
        if self.images is None or self.images.stored.made_shared(request.image_id) != request.id:
            return
        try:
            members = await self.cloud.list_members(request.image_id, language=language)
        except errors.CloudError as error:
            log.warning(
                "cannot read the members of an image made Shared for a refused add;"
                " it stays Shared",
                extra={"request": request.id, "error": str(error)},
            )
            return
        at = await self._private_again(request, members, language)
        if at is not None:
            self.requests.update(request.id, made_private_at=at)

    async def _private_again(
        self, request: ShareRequest, members: list[ImageMember], language: str
    ) -> datetime | None:
        """Set the image back to private when the bot made it Shared itself and nobody is
        left on it (and no other request for it is on its way to the cloud); when it did."""
        if self.images is None or members:
            return None
        if self.images.stored.made_shared(request.image_id) is None:
            return None  # Shared by someone else (or always): left as found
        if self.requests.in_flight(request.image_id, besides=request.id):
            return None  # another share of it is about to add a member
        try:
            await self.images.set_visibility(
                request.image_id, Visibility.PRIVATE, language=language
            )
        except errors.CloudError as error:
            log.warning(
                "cannot set the image back to private; it stays Shared, with no members",
                extra={"request": request.id, "error": str(error)},
            )
            return None
        self.images.stored.forget_made_shared(request.image_id)
        return self.requests_now()

    async def _note_error(self, request: ShareRequest, error: errors.CloudError) -> None:
        """Record why a call for a request still in `removing` failed (it is tried again).

        A 403 on an image that now reads private is its own reason: nobody can use a
        private image, but the cloud keeps its members (they count again if it is made
        Shared), and refuses to remove them until then.
        """
        kind = error.kind
        if isinstance(error, errors.ImageNotShareable) and await self._reads_private(
            request.image_id, accept_language(request.language or "en")
        ):
            kind = IMAGE_PRIVATE_NOW
        self.requests.update(
            request.id,
            only_in=RequestState.REMOVING,
            error_kind=kind,
            error_detail=(error.detail or "")[:500] or None,
            api_request_id=error.request_id,
        )

    async def reconcile_removal(self, request: ShareRequest) -> ShareRequest:
        """Finish a request in `removing`: read the member first, and remove only if it is
        still there (a remove whose answer was lost, or a crash after it, is not sent again)."""
        language = accept_language(request.language or "en")
        try:
            members = await self.cloud.list_members(request.image_id, language=language)
        except errors.CloudError as error:
            await self._note_error(request, error)
            raise
        left = [m.member_id for m in members if m.member_id.lower() == request.member_id.lower()]
        if not left:
            # Gone: the remove landed (a crash lost its answer), or someone removed it.
            return await self._after_removal(request, language, api_status=404, members=members)
        if left == [request.member_id]:
            return await self.remove(request)
        for member_id in left:
            # Each spelling as the cloud lists it: removing another spelling left it there.
            try:
                await self.cloud.remove_member(request.image_id, member_id, language=language)
            except errors.MemberNotFound:
                continue
            except errors.CloudError as error:
                await self._note_error(request, error)
                raise
        return await self._after_removal(request, language)

    def _removed(
        self,
        request: ShareRequest,
        result: str,
        *,
        api_status: int,
        made_private_at: datetime | None = None,
    ) -> ShareRequest:
        now = self.requests_now()
        done = self._move(
            request,
            RequestState.REMOVED,
            # An unshare says "removed" as it always did, whatever path it took.
            removal_result=None if request.unshare else result,
            api_status=api_status,
            error_kind=None,
            error_detail=None,
            next_poll_at=None,
            finished_at=now,
            made_private_at=made_private_at,
        )
        if done.unshare and done.state == RequestState.REMOVED:
            # Removed by hand: the timed shares of this member have nothing left to end.
            self.requests.stop_timers(done.image_id, done.member_id)
        elif done.state == RequestState.REMOVED:
            # The list read back shows the member gone: a share whose end this one moved
            # (or that moved this one's) ended with it, by the bot's hand, not outside it.
            key = done.member_id.lower()
            for other in self.requests.through_bot(done.image_id):
                if other.id != done.id and other.member_id.lower() == key:
                    self.ended_by_unshare(other)
        self.log_outcome(done)
        return done

    def may_end(self, request: ShareRequest, user_id: str) -> bool:
        """The person who asked, or an admin, may always end (or extend) their share."""
        return self.policy.may_end(request, user_id)

    def remove_now(self, request_id: int, user_id: str) -> Ending:
        """End a running share early: recorded at once, carried out by the worker.

        Taking access back needs no approval; a second click finds it already ending.
        """
        request = self.requests.get(request_id)
        if request is None:
            return Ending(None, EndRefusal.UNKNOWN)
        if not self.may_end(request, user_id):
            return Ending(request, EndRefusal.NOT_OWNER)
        if not self.requests.start_removing(
            request_id, from_=states.END.from_, to=states.END.to, by=user_id
        ):
            return Ending(self.requests.get(request_id), EndRefusal.OVER)
        log.info("share ended early", extra={**request.log_fields(), "by": user_id})
        return Ending(self.requests.get(request_id))

    def extend(self, request_id: int, user_id: str, *, language: str) -> Ending:
        """Ask for the same duration again, through the same rules as a new request
        (roles, approval, the maximum); once per share."""
        request = self.requests.get(request_id)
        if request is None or not request.duration:
            return Ending(request, EndRefusal.UNKNOWN)
        if not self.may_end(request, user_id):
            return Ending(request, EndRefusal.NOT_OWNER)
        if request.extended_by is not None:
            return Ending(request, EndRefusal.EXTENDED)
        if request.state not in RUNNING or request.ends_at is None:
            return Ending(request, EndRefusal.OVER)
        asked = self.ask(
            user_id,
            Share(
                request.image_id,
                request.member_id,
                request.reason or "",
                duration=parse_duration(request.duration),
            ),
            language=language,
            team_id=request.team_id or "",
            channel_id=request.channel_id or "",
            response_url=request.response_url or "",
            extends=request.id,
        )
        if asked.created and not self.requests.link_extension(request.id, asked.request.id):
            log.warning("a share was extended twice at once", extra={"request": request.id})
        if not asked.created:
            return Ending(request, EndRefusal.EXTENDED, extension=asked)
        log.info("extension asked", extra={**asked.request.log_fields(), "extends": request.id})
        return Ending(self.requests.get(request_id), extension=asked)

    async def reconcile(
        self, request: ShareRequest, *, under_way_until: datetime | None = None
    ) -> ShareRequest:
        """Finish a request left in `sending` by a crash: read the member, never blindly re-add.

        Called as soon as a new worker finds it: the worker that sent it is gone (one
        worker per database) and retries nothing. A change found done is recorded as its
        answer. `under_way_until`: until then (a few seconds after `sent_at`) the dead
        worker's last call may still be being carried out, so a change not found yet is
        read again shortly (the request stays in `sending`, `next_poll_at` says when);
        after it, it is sent once more. Should that call land after all, the cloud
        answers one of the two with 409, and a 409 for a member created since `sent_at`
        is this request's own success (a 404 to a removal likewise). While the cloud API
        cannot be read, the request stays in `sending` (the worker tries again) for at
        most `recheck_for` after it was sent; then, or at once for an answer that will
        not change (401, 403), the user is told it failed.
        """
        now = self.requests_now()
        language = accept_language(request.language or "en")
        log.warning("reconciling interrupted request", extra=request.log_fields())
        try:
            member = await self.cloud.show_member(
                request.image_id, request.member_id, language=language
            )
        except (errors.MemberNotFound, errors.ImageNotShareable) as missing:
            if isinstance(missing, errors.ImageNotShareable) and (
                request.unshare or not await self._reads_private(request.image_id, language)
            ):
                return await self._failed(request, missing)
            # Not there (a private image has no members: the bot's change to Shared may
            # not have been made before the crash, and the add surely was not).
            if request.unshare:
                return self._finished(request, RequestState.REMOVED, api_status=404)
            if under_way_until is not None and now < under_way_until:
                return self._read_again(request, now, under_way_until)
            # The add never landed, and no earlier call can still land: send it once more.
            return await self.send(request, again=True)
        except errors.CloudError as error:
            sent = request.sent_at or now
            waiting = now < sent + self.following.recheck_for
            if isinstance(error, errors.CloudUnavailable) and waiting:
                raise
            return await self._failed(request, error)
        if request.unshare:
            if under_way_until is not None and now < under_way_until:
                return self._read_again(request, now, under_way_until)
            return await self.send(request, again=True)
        if request.extends is None:
            # A share of a member the bot shares already was a change of its end, not an add.
            taken = await self._take_over(request, language)
            if taken is not None:
                return taken
        return self._member_answer(request, member, api_status=200)

    def _read_again(self, request: ShareRequest, now: datetime, until: datetime) -> ShareRequest:
        """Read an interrupted change back later: sooner while it is young, and at `until`."""
        sent = request.sent_at or now
        wait = min(max(now - sent, timedelta(seconds=1)), timedelta(seconds=30))
        log.info(
            "an interrupted change may still be under way; reading it again later",
            extra={"request": request.id, "until": until.isoformat()},
        )
        return self.requests.update(
            request.id, only_in=RequestState.SENDING, next_poll_at=min(now + wait, until)
        )

    async def recheck(self, request: ShareRequest) -> ShareRequest:
        """Read back a change that failed without an answer: it may have landed after all."""
        now = self.requests_now()
        language = accept_language(request.language or "en")
        try:
            member = await self.cloud.show_member(
                request.image_id, request.member_id, language=language
            )
        except errors.MemberNotFound:
            if request.unshare:
                log.info("an unanswered remove landed after all", extra={"request": request.id})
                return self._finished(request, RequestState.REMOVED, api_status=404)
            return self.requests.update(request.id, next_poll_at=None)
        except errors.CloudError:
            until = request.follow_until
            if until is None or now >= until:
                return self.requests.update(request.id, next_poll_at=None)
            return self.requests.update(request.id, next_poll_at=now + self.following.recheck_every)
        if request.unshare:
            return self.requests.update(request.id, next_poll_at=None)
        log.info("an unanswered add landed after all", extra={"request": request.id})
        return self._member_answer(request, member, api_status=200)

    async def poll(self, request: ShareRequest) -> ShareRequest:
        """Re-read a pending member; record a new status, or stop following when time is up."""
        now = self.requests_now()
        follow_until = request.follow_until
        language = accept_language(request.language or "en")
        try:
            member = await self.cloud.show_member(
                request.image_id, request.member_id, language=language
            )
        except errors.MemberNotFound:
            gone = self._move(request, RequestState.REMOVED, next_poll_at=None, finished_at=now)
            self.log_outcome(gone)
            return gone
        except errors.CloudError as error:
            # Not readable now: look again at the usual pace, and stop when time is up.
            log.warning(
                "cannot read a followed member", extra={"request": request.id, "error": str(error)}
            )
            if follow_until is not None and now >= follow_until:
                return self.requests.update(request.id, next_poll_at=None)
            return self.requests.update(request.id, next_poll_at=now + self.following.every)
        state = MEMBER_STATES.get(member.status, RequestState.PENDING)
        if state != RequestState.PENDING:
            changed = self._move(
                request,
                state,
                member_status=member.status,
                member_updated_at=member.updated_at,
                next_poll_at=None,
            )
            self.log_outcome(changed)
            return changed
        if follow_until is not None and now >= follow_until:
            return self.requests.update(request.id, next_poll_at=None)
        return self.requests.update(
            request.id, next_poll_at=now + self.following.every, updated_at=now
        )

    def approvers_unreachable(self, request: ShareRequest, why: str) -> ShareRequest:
        """No approval card can be posted: fail the request now rather than at its expiry."""
        failed = self._move(
            request,
            RequestState.FAILED,
            error_kind="approval_unreachable",
            error_detail=why,
            finished_at=self.requests_now(),
        )
        if failed.state == RequestState.FAILED:
            self.log_outcome(failed)
        return failed

    def requests_now(self) -> datetime:
        """The storage clock."""
        return self.requests.now()

    # -- recording outcomes --------------------------------------------------------------

    def _move(self, request: ShareRequest, to: RequestState, **values: object) -> ShareRequest:
        """Move `request` to `to` with `values`: only a move its life allows, and only from
        the state it was read in (a compare-and-set); the row as it is afterwards."""
        states.check_move(request.state, to)
        moved = self.requests.move(request.id, from_={request.state}, to=to, **values)
        return moved or self.requests.get(request.id) or request

    def _member_answer(
        self, request: ShareRequest, member: ImageMember, *, api_status: int
    ) -> ShareRequest:
        state = MEMBER_STATES.get(member.status, RequestState.PENDING)
        now = self.requests_now()
        following = state == RequestState.PENDING

        def record() -> ShareRequest:
            answered = self._move(
                request,
                state,
                **self._clock(request, state, now),
                **self._answer_values(member, api_status=api_status, now=now, following=following),
            )
            self._note_member(request.image_id, member)
            if request.extends is not None and answered.ends_at is not None:
                # The extension takes over: the share it extends no longer ends by itself.
                self.requests.update(request.extends, ends_at=None, remind_at=None)
            return answered

        # The answer, the member's spelling and the extended share: one transaction.
        answered = self.requests.together(record)
        self.log_outcome(answered)
        return answered

    def _clock(
        self, request: ShareRequest, state: RequestState, now: datetime
    ) -> dict[str, datetime | None]:
        """The end and the reminder of a timed share, counted from the add's answer (an
        extension from the end of the share it extends, if that is still to come)."""
        if not request.duration or state not in RUNNING:
            return {"ends_at": None, "remind_at": None}
        start = now
        if request.extends is not None:
            extended = self.requests.get(request.extends)
            ends = extended.ends_at if extended is not None else None
            if ends is not None and ends > now and extended and extended.state in RUNNING:
                start = ends
        length = parse_duration(request.duration).length
        ends_at = start + length
        return {"ends_at": ends_at, "remind_at": reminder_at(ends_at, length)}

    def _answer_values(
        self, member: ImageMember, *, api_status: int, now: datetime, following: bool
    ) -> dict[str, object]:
        return dict(
            api_status=api_status,
            member_status=member.status,
            member_created_at=member.created_at,
            member_updated_at=member.updated_at,
            finished_at=now,
            error_kind=None,
            error_detail=None,
            follow_until=now + self.following.days if following else None,
            next_poll_at=now + self.following.every if following else None,
        )

    def _finished(
        self, request: ShareRequest, state: RequestState, *, api_status: int
    ) -> ShareRequest:
        finished = self._move(
            request,
            state,
            api_status=api_status,
            finished_at=self.requests_now(),
            next_poll_at=None,
        )
        if finished.unshare and finished.state == RequestState.REMOVED:
            # Removed by hand: the timed shares of this member have nothing left to end.
            self.requests.stop_timers(finished.image_id, finished.member_id)
        self.log_outcome(finished)
        return finished

    async def _failed(
        self, request: ShareRequest, error: errors.CloudError, *, kind: str | None = None
    ) -> ShareRequest:
        member_status = None
        if isinstance(error, errors.AlreadyMember):
            try:
                member_status = (
                    await self.cloud.show_member(request.image_id, request.member_id)
                ).status
            except errors.CloudError:
                member_status = None
        now = self.requests_now()
        unanswered = isinstance(error, errors.CloudUnavailable)
        failed = self._move(
            request,
            RequestState.FAILED,
            next_poll_at=now + self.following.recheck_every if unanswered else None,
            follow_until=now + self.following.recheck_for if unanswered else None,
            api_status=error.status,
            api_request_id=error.request_id,
            error_kind=kind or error.kind,
            error_detail=(error.detail or "")[:500] or None,
            member_status=member_status,
            finished_at=self.requests_now(),
        )
        log.warning(
            "cloud API refused or failed", extra={"request": request.id, "error": str(error)}
        )
        self.log_outcome(failed)
        return failed

    @staticmethod
    def log_outcome(request: ShareRequest) -> None:
        """The one structured line per outcome, whoever reached it."""
        started = request.sent_at or request.created_at
        finished = request.finished_at or request.updated_at
        log.info(
            "share outcome",
            extra={
                **request.log_fields(),
                "api_status": request.api_status,
                "api_request_id": request.api_request_id,
                "error": request.error_kind,
                "duration_ms": round((finished - started).total_seconds() * 1000)
                if started and finished
                else None,
            },
        )
