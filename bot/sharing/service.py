"""The share service: who may share, what is recorded, what the cloud API is asked.

It knows nothing of Slack: handlers and the worker call it with plain values and
render what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.scp import ImageMember, MemberStatus, ScpClient, accept_language, errors
from bot.sharing import rules
from bot.sharing.commands import Share
from bot.sharing.errors import NotAllowed
from bot.sharing.images import ImageCatalog, Verdict
from bot.sharing.rules import Refusal, UnknownMembers
from bot.sharing.states import check_move
from storage import Grants, KnownMembers, RequestState, ShareRequest, ShareRequests
from storage.database import stamp
from storage.requests import NewRequest, parse_stamp

log = logging.getLogger(__name__)

MEMBER_STATES = {status.value: RequestState(status.value) for status in MemberStatus}


@dataclass(frozen=True)
class Asked:
    """A recorded ask: `created` is False when an open request already covered it."""

    request: ShareRequest
    created: bool
    member_name: str | None = None  # the member's registered name, read once per ask


@dataclass(frozen=True)
class Decision:
    """The result of an approve or deny click: the won request, or why nothing changed."""

    request: ShareRequest | None
    refusal: Refusal | None = None


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
        following: Following | None = None,
    ) -> None:
        self.requests = requests
        self.grants = grants
        self.members = members
        self.cloud = cloud
        self.images = images
        self.unknown_members = unknown_members
        self.following = following or Following()

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
    ) -> Asked:
        """Check the user may ask, then record the request (queued or awaiting approval)."""
        roles = self.grants.roles(user_id, command.image_id)
        if not rules.may_ask(roles):
            raise NotAllowed(user_id, f"{command.action} {command.image_id}")
        name = self.members.name(command.member_id)
        why = rules.why_approval(
            roles, member_known=name is not None, unknown_members=self.unknown_members
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
            )
        )
        return Asked(request, created, name)

    def refusal(self, request: ShareRequest | None, user_id: str) -> Refusal | None:
        """Why `user_id` may not decide `request` now (None: they may); checked at every click."""
        roles = self.grants.roles(user_id, request.image_id) if request is not None else set()
        return rules.refusal(request, user_id, roles, self.requests_now())

    def decide(self, request_id: int, user_id: str, *, approve: bool, reason: str = "") -> Decision:
        """Approve or deny, checked on the server each time; exactly one click wins."""
        request = self.requests.get(request_id)
        refused = self.refusal(request, user_id)
        if refused is not None:
            return Decision(request, refused)
        won = self.requests.decide(request_id, approve=approve, by=user_id, reason=reason)
        if won is not None:
            log.info(
                "request decided",
                extra={"request": request_id, "decision": won.state, "by": user_id},
            )
            if won.state == RequestState.DENIED:
                self.log_outcome(won)
            return Decision(won)
        # Another click won meanwhile, or time ran out: say which, as it stands now.
        current = self.requests.get(request_id)
        return Decision(current, self.refusal(current, user_id) or Refusal.DONE)

    def list_members(self, user_id: str, image_id: str, *, language: str) -> list[ImageMember]:
        """The image's members, from the cloud API; anyone with a role may look."""
        if not rules.may_ask(self.grants.roles(user_id, image_id)):
            raise NotAllowed(user_id, f"list {image_id}")
        return self.cloud.list_members(image_id, language=accept_language(language))

    # -- carrying out (the worker's side) --------------------------------------------------------

    def check_image(self, request: ShareRequest) -> ShareRequest:
        """Read the image before an approver is asked or a direct share is sent.

        An image that does not exist (404), is public (nothing to share) or is not active
        yet ends the request here, failed, with nothing sent; a read that fails (5xx, a
        timeout) changes nothing: the add call decides, as without the read.
        """
        if self.images is None or request.action != "share":
            return request
        checked = self.images.check(
            request.image_id, language=accept_language(request.language or "en")
        )
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
            finished_at=stamp(self.requests_now()),
        )
        self.log_outcome(failed)
        return failed

    def send(self, request: ShareRequest) -> ShareRequest:
        """Call the cloud API for a request the worker has moved to `sending`; record the answer."""
        language = accept_language(request.language or "en")
        try:
            if request.action == "unshare":
                self.cloud.remove_member(request.image_id, request.member_id, language=language)
                done = self._finished(request, RequestState.REMOVED, api_status=204)
            else:
                member = self.cloud.add_member(
                    request.image_id, request.member_id, language=language
                )
                done = self._member_answer(request, member, api_status=200)
        except errors.CloudError as error:
            done = self._failed(request, error)
        return done

    def reconcile(self, request: ShareRequest) -> ShareRequest:
        """Finish a request left in `sending` by a crash: read the member, never blindly re-add.

        While the cloud API cannot be read, the request stays in `sending` (the worker
        tries again) for at most `recheck_for` after it was sent; then, or at once for
        an answer that will not change (401, 403), the user is told it failed.
        """
        language = accept_language(request.language or "en")
        log.warning("reconciling interrupted request", extra=request.log_fields())
        try:
            member = self.cloud.show_member(request.image_id, request.member_id, language=language)
        except errors.MemberNotFound:
            if request.action == "unshare":
                return self._finished(request, RequestState.REMOVED, api_status=404)
            # The add never landed: send it now, for the first time that counts.
            return self.send(request)
        except errors.CloudError as error:
            sent = parse_stamp(request.sent_at) or self.requests_now()
            waiting = self.requests_now() < sent + self.following.recheck_for
            if isinstance(error, errors.CloudUnavailable) and waiting:
                raise
            return self._failed(request, error)
        if request.action == "unshare":
            return self.send(request)
        return self._member_answer(request, member, api_status=200)

    def recheck(self, request: ShareRequest) -> ShareRequest:
        """Read back a change that failed without an answer: it may have landed after all."""
        now = self.requests_now()
        language = accept_language(request.language or "en")
        try:
            member = self.cloud.show_member(request.image_id, request.member_id, language=language)
        except errors.MemberNotFound:
            if request.action == "unshare":
                log.info("an unanswered remove landed after all", extra={"request": request.id})
                return self._finished(request, RequestState.REMOVED, api_status=404)
            return self.requests.update(request.id, next_poll_at=None)
        except errors.CloudError:
            until = parse_stamp(request.follow_until)
            if until is None or now >= until:
                return self.requests.update(request.id, next_poll_at=None)
            return self.requests.update(
                request.id, next_poll_at=stamp(now + self.following.recheck_every)
            )
        if request.action == "unshare":
            return self.requests.update(request.id, next_poll_at=None)
        log.info("an unanswered add landed after all", extra={"request": request.id})
        return self._member_answer(request, member, api_status=200)

    def poll(self, request: ShareRequest) -> ShareRequest:
        """Re-read a pending member; record a new status, or stop following when time is up."""
        now = self.requests_now()
        follow_until = parse_stamp(request.follow_until)
        language = accept_language(request.language or "en")
        try:
            member = self.cloud.show_member(request.image_id, request.member_id, language=language)
        except errors.MemberNotFound:
            gone = self._move(
                request, RequestState.REMOVED, next_poll_at=None, finished_at=stamp(now)
            )
            self.log_outcome(gone)
            return gone
        except errors.CloudError as error:
            # Not readable now: look again at the usual pace, and stop when time is up.
            log.warning(
                "cannot read a followed member", extra={"request": request.id, "error": str(error)}
            )
            if follow_until is not None and now >= follow_until:
                return self.requests.update(request.id, next_poll_at=None)
            return self.requests.update(request.id, next_poll_at=stamp(now + self.following.every))
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
            request.id, next_poll_at=stamp(now + self.following.every), updated_at=stamp(now)
        )

    def approvers_unreachable(self, request: ShareRequest, why: str) -> ShareRequest:
        """No approval card can be posted: fail the request now rather than at its expiry."""
        failed = self._move(
            request,
            RequestState.FAILED,
            error_kind="approval_unreachable",
            error_detail=why,
            finished_at=stamp(self.requests_now()),
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
        check_move(request.state, to)
        return self.requests.update(
            request.id, state=to, only_in=RequestState(request.state), **values
        )

    def _member_answer(
        self, request: ShareRequest, member: ImageMember, *, api_status: int
    ) -> ShareRequest:
        state = MEMBER_STATES.get(member.status, RequestState.PENDING)
        now = self.requests_now()
        following = state == RequestState.PENDING
        answered = self._move(
            request,
            state,
            api_status=api_status,
            member_status=member.status,
            member_created_at=member.created_at,
            member_updated_at=member.updated_at,
            finished_at=stamp(now),
            error_kind=None,
            error_detail=None,
            follow_until=stamp(now + self.following.days) if following else None,
            next_poll_at=stamp(now + self.following.every) if following else None,
        )
        self.log_outcome(answered)
        return answered

    def _finished(
        self, request: ShareRequest, state: RequestState, *, api_status: int
    ) -> ShareRequest:
        finished = self._move(
            request,
            state,
            api_status=api_status,
            finished_at=stamp(self.requests_now()),
        )
        self.log_outcome(finished)
        return finished

    def _failed(self, request: ShareRequest, error: errors.CloudError) -> ShareRequest:
        member_status = None
        if isinstance(error, errors.AlreadyMember):
            try:
                member_status = self.cloud.show_member(request.image_id, request.member_id).status
            except errors.CloudError:
                member_status = None
        now = self.requests_now()
        unanswered = isinstance(error, errors.CloudUnavailable)
        failed = self._move(
            request,
            RequestState.FAILED,
            next_poll_at=stamp(now + self.following.recheck_every) if unanswered else None,
            follow_until=stamp(now + self.following.recheck_for) if unanswered else None,
            api_status=error.status,
            api_request_id=error.request_id,
            error_kind=error.kind,
            error_detail=(error.detail or "")[:500] or None,
            member_status=member_status,
            finished_at=stamp(self.requests_now()),
        )
        log.warning(
            "cloud API refused or failed", extra={"request": request.id, "error": str(error)}
        )
        self.log_outcome(failed)
        return failed

    @staticmethod
    def log_outcome(request: ShareRequest) -> None:
        """The one structured line per outcome, whoever reached it."""
        started = parse_stamp(request.sent_at) or parse_stamp(request.created_at)
        finished = parse_stamp(request.finished_at) or parse_stamp(request.updated_at)
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
