"""Telling Slack what happened: parent messages, thread replies, cards, notify lines.

`Announcer.announce(request)` brings Slack up to date with the request's state once
(`slack_messages` remembers what was said). It raises `DeliveryError` when Slack
does not take a message, and the worker tries again later: nothing is lost. It never
changes the request itself: when no approver can be asked it says so
(`ApproversUnreachable`) and the share service records the failure.

Every message carries Slack message metadata naming its request and step
(`event_type` share_image_step, `event_payload` {"request": id, "step": "pending:reply"}).
A step is recorded after Slack took it; a worker that dies in between (or a database that
will not record it) leaves the step started and not done. Only then, before posting
again, the announcer looks for the step's message in the channel's recent history or
the thread, and adopts it instead of saying it twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sharing.approvals import MOST_MENTIONED, Audience, Stage
from bot.sharing.durations import time_left
from bot.sharing.errors import ApproversUnreachable, DeliveryError, StorageError
from bot.sharing.images import ImageCatalog
from bot.sharing.oncall import MAX_ASKED, ROTA_SOURCES, Source, WhoIsOnCall
from bot.sharing.policy import Policy, cannot_decide
from bot.sharing.records import MemberNames, RequestRecords, SlackRecords
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.states import NEVER_CARRIED_OUT, OPEN, RUNNING
from bot.sharing.values import SlackData, StoredImage
from bot.slack import views
from bot.slack.texts import code, escape, mentions, outcome_error, say
from bot.slack.views import UTC_ZONE, slack_time

log = logging.getLogger(__name__)

# Sources whose people are on call (the card says "On call"), not approvers by role.
TYPED_OR_ROTA = frozenset({Source.TYPED, *ROTA_SOURCES})


MAX_DELIVERY_FAILURES = 8

# Message metadata: what every message of the bot says about itself.
EVENT_TYPE = "share_image_step"
# Looking for a message posted before a crash: pages of history read at most, each this
# long; and how far before the request was recorded its messages could be (clock skew).
LOOKUP_PAGES = 5
LOOKUP_PAGE_SIZE = 200
LOOKUP_SKEW = timedelta(minutes=5)

# Slack errors worth trying again later; any other refusal of a parent message means the
# bot cannot post there (not_in_channel, channel_not_found, is_archived…): use response_url.
TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The step of the thread's reply to a request waiting for approval.
WAITING_REPLY = f"{RequestState.AWAITING_APPROVAL}:reply"
ICONS = {
    RequestState.PENDING: ":white_check_mark:",
    RequestState.ACCEPTED: ":tada:",
    RequestState.REJECTED: ":leftwards_arrow_with_hook:",
    RequestState.REMOVED: ":wastebasket:",
    RequestState.FAILED: ":x:",
    RequestState.DENIED: ":no_entry:",
    RequestState.EXPIRED: ":hourglass:",
}


def api_time(text: str | None, zone: ZoneInfo = UTC_ZONE) -> str:
    """A cloud API timestamp (`2025-07-22T09:00:00Z`) as every time is shown, in `zone`."""
    return views.api_time(text, zone)


@dataclass
class _Step:
    """What one task that announces (a worker's step on a request it holds) read once.

    While the worker holds a request, its Slack record changes only through this
    announcer (handlers only read it): it is read once, then kept as written. Member names
    and images are read once per step as well (a name added meanwhile shows next step).
    """

    owner: Announcer
    task: weakref.ref[asyncio.Task[Any]]  # (weak: the task's context holds this memo)
    told: dict[int, SlackData] = field(default_factory=dict)
    names: dict[str, str | None] = field(default_factory=dict)
    images: dict[str, StoredImage | None] = field(default_factory=dict)  # found ones only


# The step of the task running now: set by `announce` (or `up_to_date`, which the worker's
# step asks), so it lives as long as that task (a worker's step); a task it starts, or a
# long-lived one that never announces, has none.
_STEP: ContextVar[_Step | None] = ContextVar("announcer_step", default=None)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running (a command-line tool)
        return None


class Announcer:
    """Posts and updates everything a request's people and channels should see."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        requests: RequestRecords,
        messages: SlackRecords,
        members: MemberNames,
        who: WhoIsOnCall,
        policy: Policy,
        images: ImageCatalog | None = None,
        approval_channel: str = "",
        notify_channel: str = "",
        default_language: str = "en",
        approval_ttl_hours: float = 24,
        follow_days: float = 7,
        webhook: Callable[[str], AsyncWebhookClient] | None = None,
        zone: ZoneInfo = UTC_ZONE,
        failed: Callable[[], None] = lambda: None,
        dropped: Callable[[], None] = lambda: None,
        reminded: Callable[[str], None] = lambda audience: None,
    ) -> None:
        self.client = client
        self.requests = requests
        self.messages = messages
        self.members = members
        # Who a card mentions (typed shifts, the rotas, else everyone who may approve).
        self.who = who
        # Who is asked, who is named, who can help: the policy's answers, rendered here.
        self.policy = policy
        # Counting is the wiring's: a message Slack refused (`failed`), one given up on
        # (`dropped`), approvers reminded (`reminded`, by the audience reminded).
        self._failed = failed
        self._dropped = dropped
        self._reminded = reminded
        self.images = images
        self.approval_channel = approval_channel
        self.notify_channel = notify_channel
        self.default_language = default_language
        self.approval_ttl_hours = approval_ttl_hours
        self.follow_days = follow_days
        # A command's response_url, answered through the Slack client's connections.
        self._webhook = webhook or (
            lambda url: AsyncWebhookClient(url, timeout=10, session=self.client.session)
        )
        # BOT_TIMEZONE: every time in a message is shown in it.
        self.zone = zone
        # Requests whose posts Slack took but the database could not record (this process).
        self._unsure: set[int] = set()

    # -- what a step reads once ---------------------------------------------------------------

    def _step(self, *, start: bool = False) -> _Step | None:
        """The memo of this task's step (a new one when `start` and there is none)."""
        task = _current_task()
        step = _STEP.get()
        if step is not None and step.owner is self and task is not None and step.task() is task:
            return step
        if not start or task is None:
            return None
        step = _Step(self, weakref.ref(task))
        _STEP.set(step)
        return step

    def _told(self, request_id: int) -> SlackData:
        """The request's Slack record: read once per step, then as this step wrote it."""
        step = self._step()
        if step is None:
            return self.messages.get(request_id)
        told = step.told.get(request_id)
        if told is None:
            told = step.told[request_id] = self.messages.get(request_id)
        return told

    def _note(self, request_id: int, **values: Any) -> SlackData:
        """Record fields of the request's Slack side; the record as it is now."""
        told = self.messages.update(request_id, **values)
        self._kept(told)
        return told

    def _kept(self, told: SlackData) -> None:
        """Keep a record just written (committed) as this step's."""
        step = self._step()
        if step is not None:
            step.told[told.request_id] = told

    def _name(self, member_id: str) -> str | None:
        """The member's known name, read once per step."""
        step = self._step()
        if step is None:
            return self.members.name(member_id)
        if member_id not in step.names:
            step.names[member_id] = self.members.name(member_id)
        return step.names[member_id]

    def _read_once(self, request: ShareRequest) -> SlackData:
        """Start this task's step: the request's Slack record, its member's name and its
        image, whichever the step has not read yet, read in ONE transaction."""
        step = self._step(start=True)
        if step is None:
            return self._told(request.id)
        missing = (
            request.id not in step.told
            or request.member_id not in step.names
            or (
                self.images is not None
                and step.images.get(request.image_id) is None
                and self.images.recent(request.image_id) is None
            )
        )
        if missing:
            self.messages.reading(
                lambda: (
                    self._told(request.id),
                    self._name(request.member_id),
                    self.image(request.image_id),
                )
            )
        return self._told(request.id)

    # -- the entry point ------------------------------------------------------------------

    def up_to_date(self, request: ShareRequest) -> bool:
        """Whether everyone concerned was told of the request's current state (the
        worker's step asks: its memo starts here, as in `announce`)."""
        self._step(start=True)
        return self._told(request.id).announced_state == request.state

    async def announce(self, request: ShareRequest) -> ShareRequest:
        """Say what the request's state means to everyone concerned; the request as it is now.

        Each message is a step; `announce_step` remembers how many went out, so a retry
        after Slack failed half-way sends only what is missing. A step Slack refuses for
        good (a channel the bot is not in, a deleted message) is logged and skipped; a
        passing failure raises `DeliveryError` for the worker to try again later. If the
        state moves on meanwhile (an approver clicked), the new state is announced next.
        """
        slack = self._read_once(request)
        if slack.announced_state == request.state:
            return request
        announcing = request.state
        language = request.language or self.default_language
        name = self._name(request.member_id)  # once per announcement
        done_values = {
            "announced_state": announcing,
            "announcing_state": None,
            "announce_step": 0,
            "delivery_failures": 0,
            "check_before_posting": False,
        }
        posted = False  # whether Slack took something this call has not recorded yet
        # What Slack took and is not recorded yet: written with the next record, before
        # anything else is sent (the parent message, when nothing follows it).
        unrecorded: dict[str, Any] = {}
        try:
            if slack.parent_ts is None and not slack.via_response_url:
                posted = True
                unrecorded = await self._post_parent(request, slack, language, name)
                slack = replace(slack, **unrecorded)
            done = slack.steps_done(announcing)
            steps = self._steps(request, slack, language, name)
            if unrecorded and len(steps) > done:
                slack, unrecorded = self._note(request.id, **unrecorded), {}
                posted = False
            for number, step in enumerate(steps, start=1):
                if number <= done:
                    continue
                posted = True
                try:
                    slack = await step(slack) or slack
                except ApproversUnreachable:
                    raise
                except DeliveryError as error:
                    if error.transient:
                        raise
                    self._failed()
                    self._dropped()
                    log.error(
                        "Slack refused a message for good; going on without it",
                        extra={
                            **request.log_fields(),
                            "method": error.method,
                            "error": error.error,
                        },
                    )
                last = number == len(steps)
                slack, current = self._record_step(
                    request,
                    done_values if last else {},
                    announcing_state=announcing,
                    announce_step=number,
                    check_before_posting=False,
                )
                posted = False
                self._unsure.discard(request.id)
                if current.state != announcing:
                    return current
                if last:
                    return request
        except StorageError:
            if posted:
                # Slack may hold a message the database does not know of: look first next time.
                self._unsure.add(request.id)
            raise
        try:
            self._note(request.id, **{**unrecorded, **done_values})
        except StorageError:
            if unrecorded:
                self._unsure.add(request.id)
            raise
        self._unsure.discard(request.id)
        return request

    def _record_step(
        self, request: ShareRequest, if_same: dict[str, Any], **values: Any
    ) -> tuple[SlackData, ShareRequest]:
        """Record a step that went out and read the request's state, in ONE transaction;
        when the state is still the one announced, `if_same` is written over `values` (the
        last step: the whole announcement done). The record as written, and the request."""

        def work() -> tuple[SlackData, ShareRequest]:
            current = self.requests.get(request.id) or request
            written = {**values, **if_same} if current.state == request.state else values
            return self.messages.update(request.id, **written), current

        told, current = self.messages.together(work)
        self._kept(told)
        return told, current

    def interrupted(self, request: ShareRequest) -> None:
        """A worker died holding `request`: if it was announcing, look before posting again.

        A request in `sending` was with the cloud API, and with Slack only if its parent
        message is not recorded (a direct share's parent is posted while its add is under
        way); one whose state was announced in full has nothing left to post.
        """
        told = self._told(request.id)
        if request.state == RequestState.SENDING:
            if told.parent_ts or told.via_response_url:
                return
        elif told.announced_state == request.state:
            return
        self._note(request.id, check_before_posting=True)

    def delivery_failed(self, request: ShareRequest, error: DeliveryError) -> datetime | None:
        """Slack did not take a message: when to try again, or None after too many tries."""
        self._failed()
        slack = self._told(request.id)
        failures = slack.delivery_failures + 1
        if failures >= MAX_DELIVERY_FAILURES:
            self._dropped()
            log.error(
                "giving up telling Slack",
                extra={**request.log_fields(), "error": str(error)},
            )
            self._note(
                request.id,
                announced_state=request.state,
                announcing_state=None,
                announce_step=0,
                delivery_failures=0,
            )
            return None
        log.warning(
            "Slack did not take a message, will retry",
            extra={"request": request.id, "error": str(error), "failures": failures},
        )
        self._note(request.id, delivery_failures=failures)
        return self.requests.now() + timedelta(seconds=min(300, 2**failures))

    def _steps(
        self, request: ShareRequest, slack: SlackData, language: str, name: str | None
    ) -> list[Callable[[SlackData], Awaitable[SlackData | None]]]:
        state = request.state
        reply_step = f"{state.value}:reply"
        if state is RequestState.AWAITING_APPROVAL:
            return [lambda told: self._ask_approvers(request, told, language, name)]
        if state is RequestState.QUEUED and request.decided_by:
            first = request.first_approved_by
            approved = (
                say(language, "thread_approved_two", first=first, by=request.decided_by)
                if first and first != request.decided_by
                else say(language, "thread_approved", by=request.decided_by)
            )
            return [
                lambda told: self._update_card(request, told, name),
                lambda told: self._reply(request, told, language, approved, step=reply_step),
            ]
        if state in OPEN or state is RequestState.REMOVING:
            return []  # nothing to tell until it is decided or answered
        steps: list[Callable[[SlackData], Awaitable[SlackData | None]]] = []
        if state in NEVER_CARRIED_OUT:
            steps.append(lambda told: self._update_card(request, told, name))
        outcome = self.outcome_text(request, language, name)
        if slack.announced_state == RequestState.FAILED:
            outcome = say(language, "landed_after_all") + " " + outcome
        if state is RequestState.REJECTED and not request.ends_at and not request.unshare:
            # Still has access, and nothing will end it: offer to end it now.
            steps.append(lambda told: self._reply_remove_now(request, told, language, outcome))
        else:
            steps.append(
                lambda told: self._reply(request, told, language, outcome, step=reply_step)
            )
        steps.append(lambda told: self._update_parent(request, told, language, name))
        if self.notify_channel:  # no channel, no step: nothing to send, nothing to record
            steps.append(lambda told: self._notify(request, told, name))
        return steps

    async def _reply_remove_now(
        self, request: ShareRequest, slack: SlackData, language: str, outcome: str
    ) -> None:
        """The rejected line of an open-ended share, with Remove now (as the reminder's)."""
        text, blocks = views.rejected_open(request, outcome, language)
        in_thread = bool(slack.parent_ts) and not slack.via_response_url
        answer = await self._in_thread(
            request,
            slack,
            language,
            text,
            step=f"{RequestState.REJECTED}:reply",
            blocks=blocks if in_thread else None,
        )
        if in_thread and answer is not None:
            # Its button is checked against this message, as the reminder's is.
            self._note(request.id, reminder_ts=answer.get("ts"))

    async def remind(self, request: ShareRequest) -> None:
        """The one reminder before a timed share ends, in its thread (or to the asker)."""
        language = request.language or self.default_language
        slack = self._told(request.id)
        text, blocks = views.reminder(
            request,
            language,
            self._name(request.member_id),
            self.image(request.image_id),
            self.zone,
        )
        channel, thread = (
            (request.user_id, None)
            if slack.via_response_url or not slack.parent_ts
            else (slack.parent_channel, slack.parent_ts)
        )
        answer = await self._call(
            "chat.postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            **({"thread_ts": thread} if thread else {}),
        )
        self._note(request.id, reminder_ts=answer.get("ts"))

    async def removal_refused(self, request: ShareRequest) -> None:
        """Tell the thread, once, that the cloud refused the remove; it is tried again."""
        language = request.language or self.default_language
        member = views.member_label(request.member_id, self._name(request.member_id))
        if request.error_kind == "image_private_now":
            text = say(
                language,
                "removal_image_private",
                member=member,
                image=self.image_label(request.image_id),
                admins=self.admins(language),
            )
        elif request.error_kind == "still_listed":
            left = ", ".join(code(m) for m in (request.error_detail or "").split()) or "?"
            text = say(
                language,
                "removal_still_listed",
                member=member,
                image=self.image_label(request.image_id),
                left=left,
                admins=self.admins(language),
            )
        else:
            text = say(
                language,
                "removal_refused",
                member=member,
                image=self.image_label(request.image_id),
                what=views.failure_words(request, language),
                admins=self.admins(language),
            )
        await self._reply(
            request, self._told(request.id), language, text, step="removal_refused:reply"
        )

    async def reminder_answered(self, request: ShareRequest, channel: str, outcome: str) -> None:
        """Take the buttons off a reminder once one was used, saying what was done."""
        slack = self._told(request.id)
        if not slack.reminder_ts or not channel:
            return
        language = request.language or self.default_language
        name = self._name(request.member_id)
        if request.duration:
            text, blocks = views.reminder_answered(
                request, language, name, outcome, self.image(request.image_id), self.zone
            )
        else:
            # The line of an open-ended share its member rejected: its words, without the button.
            rejected = replace(request, state=RequestState.REJECTED)
            line, _ = views.rejected_open(
                request, self.outcome_text(rejected, language, name), language
            )
            text, blocks = views.answered(line, outcome)
        try:
            await self._call(
                "chat.update", channel=channel, ts=slack.reminder_ts, text=text, blocks=blocks
            )
        except DeliveryError as error:
            # The buttons stay; a second click is refused all the same.
            log.warning(
                "cannot update the reminder", extra={"request": request.id, "error": error.error}
            )

    async def follow_stopped(self, request: ShareRequest) -> None:
        """Tell the thread the bot stopped checking a still-pending share."""
        language = request.language or self.default_language
        text = say(
            language,
            "outcome_follow_stopped",
            member=code(request.member_id),
            days=f"{self.follow_days:g}",
            image_plain=request.image_id,
        )
        await self._reply(request, self._told(request.id), language, text, step="follow_stopped")

    # -- the words ---------------------------------------------------------------------------

    def image(self, image_id: str) -> StoredImage | None:
        """What the bot knows of the image (a recent read, the stored list); never the cloud.
        Read once per step."""
        if self.images is None:
            return None
        step = self._step()
        if step is None:
            return self.images.known(image_id)
        # A read of the cloud (this step's, or a change the bot made) wins, as in `known`;
        # the stored row is looked up once per step, and again while there is none.
        recent = self.images.recent(image_id)
        if recent is not None:
            return recent
        stored = step.images.get(image_id)
        if stored is None:
            stored = step.images[image_id] = self.images.known(image_id)
        return stored

    def image_label(self, image_id: str) -> str:
        """The image named for people, or its bare id when unknown."""
        return views.image_label(image_id, self.image(image_id))

    def admins(self, language: str) -> str:
        """Who can help: the admins, mentioned, or how to make one."""
        people = self.policy.admins()
        return mentions(people) if people else say(language, "no_admins")

    def outcome_text(self, request: ShareRequest, language: str, name: str | None) -> str:
        """The thread reply for a final state."""
        member = views.member_label(request.member_id, name)
        image = self.image_label(request.image_id)
        state = request.state
        ends = (
            " " + say(language, "outcome_ends", ends=slack_time(request.ends_at, self.zone))
            if request.ends_at and state in RUNNING
            else ""
        )
        if request.made_shared_at and state in RUNNING:
            ends += " " + say(language, "made_shared", image=image)
        if request.made_private_at and state is RequestState.REMOVED:
            return (
                self._removed_text(request, language, member, image)
                + " "
                + say(language, "made_private", image=image)
            )
        if state in RUNNING and (request.takes_over is not None or request.was_present):
            return self._took_over(request, language, member, image, ends.strip())
        if state is RequestState.PENDING:
            return (
                say(
                    language,
                    "outcome_pending",
                    member=member,
                    created=api_time(request.member_created_at, self.zone),
                    updated=api_time(request.member_updated_at, self.zone),
                )
                + ends
            )
        if state in {RequestState.ACCEPTED, RequestState.REJECTED}:
            return (
                say(
                    language,
                    f"outcome_{state}",
                    member=member,
                    image=image,
                    updated=api_time(request.member_updated_at, self.zone),
                )
                + ends
            )
        if state is RequestState.REMOVED:
            return self._removed_text(request, language, member, image)
        if state is RequestState.DENIED:
            reason = (
                say(language, "deny_reason_line", reason=code(request.deny_reason))
                if request.deny_reason
                else ""
            )
            return say(language, "thread_denied", by=request.decided_by, reason=reason)
        if state is RequestState.EXPIRED:
            reached = sorted({p for _, people in self.reached(request.id) for p in people})
            whom = (
                say(
                    language,
                    "thread_expired_reached",
                    people=views.people_within(language, reached, MOST_MENTIONED),
                )
                if reached
                else say(language, "thread_expired_nobody")
            )
            return say(language, "thread_expired", hours=f"{self.approval_ttl_hours:g}") + (
                " " + whom
            )
        return outcome_error(
            language,
            request.error_kind or "unexpected",
            image=image,
            member=member,
            admins=self.admins(language),
            request_id=request.api_request_id,
            detail=request.error_detail,
            member_status=request.member_status,
        )

    @staticmethod
    def _took_over(request: ShareRequest, language: str, member: str, image: str, ends: str) -> str:
        """A share of a member that had access already: nothing was sent to the cloud."""
        if request.takes_over is not None:
            text = say(
                language, "outcome_takes_over", member=member, image=image, id=request.takes_over
            )
            until = "outcome_takes_over_until_removed"
        else:
            text = say(
                language,
                "outcome_was_present",
                member=member,
                image=image,
                status=escape(request.member_status or "?"),
            )
            until = "outcome_was_present_until_removed"
        return f"{text} {ends or say(language, until)}"

    async def outside_member(self, image_id: str, member_id: str, status: str | None) -> None:
        """Say in the notify channel, once, that a member has access not through the bot."""
        if not self.notify_channel:
            return
        language = self.default_language
        text = say(
            language,
            "drift_outside",
            member=views.member_label(member_id, self._name(member_id)),
            image=self.image_label(image_id),
            status=escape(status or "?"),
            image_plain=image_id,
        )
        await self._call(
            "chat.postMessage",
            channel=self.notify_channel,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
        )

    @staticmethod
    def _removed_text(request: ShareRequest, language: str, member: str, image: str) -> str:
        """The thread reply for a removed member: how it ended."""
        if request.removal_result == "outside":
            return say(language, "outcome_removed_outside", member=member, image=image)
        if request.removal_result == "gone":
            return say(language, "outcome_removed_gone", member=member, image=image)
        if request.removal_result and request.removed_by:
            return say(
                language, "outcome_removed_early", member=member, image=image, by=request.removed_by
            )
        if request.removal_result:
            return say(
                language,
                "outcome_removed_ended",
                member=member,
                image=image,
                duration=views.duration_words(request, language),
            )
        key = "outcome_removed" if request.unshare else "outcome_gone"
        return say(language, key, member=member, image=image)

    # -- posting -------------------------------------------------------------------------------

    async def _call(self, method: str, **args: Any) -> dict[str, Any]:
        try:
            response = await self.client.api_call(method, json=args)
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown"))
            transient = error.response.status_code >= 500 or error.response.status_code == 429
            raise DeliveryError(method, code, transient=transient or code in TRANSIENT) from None
        except Exception as error:  # urllib, socket and ssl errors: Slack unreachable
            raise DeliveryError(method, type(error).__name__, transient=True) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    @staticmethod
    def metadata(request: ShareRequest, step: str) -> dict[str, Any]:
        """The message metadata naming a request's step: how the bot finds its own messages."""
        return {"event_type": EVENT_TYPE, "event_payload": {"request": request.id, "step": step}}

    def _unsure_of(self, slack: SlackData) -> bool:
        """Whether a message of this request may have gone out without being recorded."""
        return slack.check_before_posting or slack.request_id in self._unsure

    async def _post(
        self,
        request: ShareRequest,
        slack: SlackData,
        step: str,
        *,
        channel: str,
        thread_ts: str | None = None,
        **args: Any,
    ) -> dict[str, Any]:
        """chat.postMessage with the step's metadata; a message found from before a crash
        is adopted instead (its `channel` and `ts`, as Slack's answer would give them)."""
        if self._unsure_of(slack):
            found = await self._find(request, step, channel=channel, thread_ts=thread_ts)
            if found is not None:
                log.warning(
                    "found a message posted before an interruption; not posting it again",
                    extra={"request": request.id, "step": step, "ts": found["ts"]},
                )
                return found
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        return await self._call(
            "chat.postMessage",
            channel=channel,
            metadata=self.metadata(request, step),
            **extra,
            **args,
        )

    async def _update(
        self,
        request: ShareRequest,
        step: str,
        *,
        channel: str | None,
        ts: str | None,
        text: str,
        blocks: list[dict[str, Any]],
    ) -> None:
        """chat.update of one of the request's messages, keeping the step's metadata."""
        await self._call(
            "chat.update",
            channel=channel,
            ts=ts,
            text=text,
            blocks=blocks,
            metadata=self.metadata(request, step),
        )

    async def _find(
        self, request: ShareRequest, step: str, *, channel: str, thread_ts: str | None
    ) -> dict[str, Any] | None:
        """The step's message if Slack has it: in the thread, or in the channel's history
        since the request was recorded. None when it is not there or cannot be looked for
        (no history scope, not in the channel): then it is posted, as it was never seen."""
        since = request.created_at
        params: dict[str, Any] = {
            "channel": channel,
            "include_all_metadata": True,
            "limit": LOOKUP_PAGE_SIZE,
        }
        if thread_ts:
            method, params["ts"] = "conversations.replies", thread_ts
        else:
            method = "conversations.history"
            if since is not None:
                params["oldest"] = f"{(since - LOOKUP_SKEW).timestamp():.6f}"
        for _ in range(LOOKUP_PAGES):
            try:
                page = await self._read(method, **params)
            except DeliveryError as error:
                if error.transient:
                    raise
                log.warning(
                    "cannot look for a message posted before an interruption; posting it",
                    extra={"request": request.id, "method": method, "error": error.error},
                )
                return None
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == EVENT_TYPE
                    and payload.get("request") == request.id
                    and payload.get("step") == step
                ):
                    return {"channel": page.get("channel", channel), "ts": message.get("ts")}
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
            params["cursor"] = cursor
        return None

    async def _read(self, method: str, **params: Any) -> dict[str, Any]:
        try:
            response = await self.client.api_call(method, http_verb="GET", params=params)
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown"))
            transient = error.response.status_code >= 500 or error.response.status_code == 429
            raise DeliveryError(method, code, transient=transient or code in TRANSIENT) from None
        except Exception as error:  # urllib, socket and ssl errors: Slack unreachable
            raise DeliveryError(method, type(error).__name__, transient=True) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _post_parent(
        self, request: ShareRequest, slack: SlackData, language: str, name: str | None
    ) -> dict[str, Any]:
        """Post the request's parent message; the fields that record it (not written here:
        the caller writes them with its next record, before anything else is sent)."""
        text, blocks = views.parent(
            request, language, name, self.image(request.image_id), self.zone
        )
        try:
            answer = await self._post(
                request,
                slack,
                "parent",
                channel=request.channel_id or "",
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except DeliveryError as error:
            if error.transient:
                raise
            # Not in the channel, or a channel the bot may not post in: answer privately.
            log.info(
                "cannot post in the channel, answering through response_url",
                extra={"request": request.id, "channel": request.channel_id, "error": error.error},
            )
            return {"via_response_url": True}
        return {
            "parent_channel": answer.get("channel"),
            "parent_ts": answer.get("ts"),
            "check_before_posting": False,
        }

    async def _reply(
        self, request: ShareRequest, slack: SlackData, language: str, text: str, *, step: str
    ) -> None:
        await self._in_thread(request, slack, language, text, step=step)

    async def _in_thread(
        self,
        request: ShareRequest,
        slack: SlackData,
        language: str,
        text: str,
        *,
        step: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """A reply in the request's thread (its blocks, when given); through the command's
        response_url when there is no thread. Slack's answer, or None for a response_url."""
        if slack.via_response_url:
            await self._respond(request, language, text, step=step)
            return None
        return await self._post(
            request,
            slack,
            step,
            channel=slack.parent_channel or "",
            thread_ts=slack.parent_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
            **({"blocks": blocks} if blocks is not None else {}),
        )

    async def _respond(self, request: ShareRequest, language: str, text: str, *, step: str) -> None:
        """Answer through the command's response_url; failing that, a direct message."""
        headline, _ = views.parent(
            request,
            language,
            self._name(request.member_id),
            self.image(request.image_id),
            self.zone,
        )
        full = f"{headline}\n{text}\n\n{say(language, 'invite_hint')}"
        if request.response_url:
            try:
                answer = await self._webhook(request.response_url).send(
                    text=full, response_type="ephemeral", replace_original=False
                )
                if answer.status_code == 200:
                    return
                log.warning(
                    "response_url refused",
                    extra={"request": request.id, "status": answer.status_code},
                )
            except Exception as error:  # an expired or unreachable response_url
                log.warning(
                    "response_url failed",
                    extra={"request": request.id, "error": type(error).__name__},
                )
        # A direct message: not looked for after a crash (its channel id is not known here).
        await self._call(
            "chat.postMessage",
            channel=request.user_id,
            text=full,
            unfurl_links=False,
            metadata=self.metadata(request, step),
        )

    async def _update_parent(
        self, request: ShareRequest, slack: SlackData, language: str, name: str | None
    ) -> None:
        if slack.via_response_url or not slack.parent_ts:
            return
        text, blocks = views.parent(
            request, language, name, self.image(request.image_id), self.zone
        )
        await self._update(
            request,
            "parent",
            channel=slack.parent_channel,
            ts=slack.parent_ts,
            text=text,
            blocks=blocks,
        )

    async def _ask_approvers(
        self, request: ShareRequest, slack: SlackData, language: str, name: str | None
    ) -> SlackData:
        why = self._why(request, language, name)
        channel = self.approval_channel or (
            slack.parent_channel if not slack.via_response_url else ""
        )
        if slack.card_ts is None:
            try:
                if not channel:
                    raise DeliveryError("chat.postMessage", "no_approval_channel")
                slack = await self._post_card(request, slack, channel, name)
            except DeliveryError as error:
                if error.transient:
                    raise
                # Nobody could ever approve it: the service fails it now rather than at expiry.
                log.error(
                    "cannot post the approval card",
                    extra={**request.log_fields(), "channel": channel, "error": error.error},
                )
                raise ApproversUnreachable(error.method, error.error) from None
        link = views.permalink(slack.card_channel, slack.card_ts)
        text = say(language, "thread_awaiting", why=why, channel=slack.card_channel, link=link)
        if slack.via_response_url:
            await self._reply(request, slack, language, text, step=WAITING_REPLY)
            return slack
        # In the thread: who was asked and when, with the asker's Remind button.
        shown, blocks = views.waiting_message(
            request, language, text, self.reached(request.id), most=MOST_MENTIONED, zone=self.zone
        )
        answer = await self._in_thread(
            request,
            slack,
            language,
            shown,
            step=WAITING_REPLY,
            blocks=blocks,
        )
        return self._note(request.id, waiting_ts=answer and answer.get("ts"))

    async def _post_card(
        self, request: ShareRequest, slack: SlackData, channel: str, name: str | None
    ) -> SlackData:
        text, blocks, mentioned = self._card(request, name)
        answer = await self._post(
            request, slack, "card", channel=channel, text=text, blocks=blocks, unfurl_links=False
        )
        return self._note(
            request.id,
            card_channel=answer.get("channel"),
            card_ts=answer.get("ts"),
            reached=self._reached_text(request.id, mentioned),
        )

    def _card(
        self, request: ShareRequest, name: str | None, *, waited: str = ""
    ) -> tuple[str, list[dict[str, Any]], list[str]]:
        """The approval card as it stands, and whom it mentions."""
        card_language = self.default_language
        asked = self.policy.asked(request)
        # The card mentions the first few (views.PEOPLE_SHOWN, within asked.mentioned's 20)
        # and counts the rest.
        assert views.PEOPLE_SHOWN <= MAX_ASKED
        on_call = asked.people if asked.source in TYPED_OR_ROTA else []
        approvers = [] if on_call else asked.people
        text, blocks = views.approval_card(
            request,
            card_language,
            member_name=name,
            why=self._why(request, card_language, name),
            on_call=on_call,
            approvers=approvers,
            stale=asked.stale,
            asked=slack_time(request.created_at, self.zone),
            expires=slack_time(request.expires_at, self.zone),
            image=self.image(request.image_id),
            waited=waited,
        )
        return text, blocks, list((on_call or approvers)[: views.PEOPLE_SHOWN])

    def on_call_now(self, request: ShareRequest) -> list[str]:
        """Whoever is on call for the request's image now (the rota may have moved since
        its card was posted): typed shifts, then PagerDuty and the calendar; [] when
        nobody is, so that the caller falls back to the approvers."""
        asked = self.policy.asked(request)
        return asked.mentioned if asked.source in TYPED_OR_ROTA else []

    # -- while a request waits for approval ----------------------------------------------------

    def reached(self, request_id: int) -> list[tuple[datetime, list[str]]]:
        """Who was mentioned about a waiting request, and when: the card, then each reminder."""
        raw = self._told(request_id).reached
        try:
            entries = json.loads(raw) if raw else []
            return [
                (datetime.fromisoformat(at), [str(p) for p in people]) for at, people in entries
            ]
        except (ValueError, TypeError):
            log.warning("unreadable record of who was asked", extra={"request": request_id})
            return []

    def _reached_text(self, request_id: int, people: list[str]) -> str:
        entries = [[at.isoformat(), who] for at, who in self.reached(request_id)] + [
            [self.requests.now().isoformat(), people]
        ]
        return json.dumps(entries)

    def audience(self, request: ShareRequest, stage: Stage | None) -> list[str]:
        """Whom a reminder mentions (never the asker, nor who approved already): whoever
        is on call now (else the image's approvers, else the admins), every approver of
        the image (else the admins), or the admins."""
        to = stage.audience if stage is not None else Audience.ON_CALL
        # Those who cannot decide are left out before falling back, so that an asker or a
        # first approver alone on call never leaves the reminder with nobody to mention.
        admins = self.policy.admins(besides=cannot_decide(request))
        approvers = self.policy.approvers(request)
        if to is Audience.ON_CALL:
            return self.on_call_now(request) or approvers or admins
        if to is Audience.APPROVERS:
            return approvers or admins
        return admins

    async def remind_approvers(self, request: ShareRequest, stage: Stage | None) -> None:
        """A reminder in the card's thread mentioning its audience (at most MOST_MENTIONED),
        the card saying how long the request has waited, the asker's message who was
        reminded when. `DeliveryError` when Slack did not take the reminder itself."""
        slack = self._told(request.id)
        if not slack.card_ts or not slack.card_channel:
            return
        language = self.default_language
        now = self.requests.now()
        waited = time_left(now, request.created_at)
        people = self.audience(request, stage)
        named = (
            views.people_within(language, people, MOST_MENTIONED)
            if people
            else say(language, "nobody_to_ask")
        )
        key = f"approval_reminder_{stage.audience}" if stage is not None else "approval_nudge"
        text = say(
            language,
            key,
            people=named,
            id=request.id,
            waited=waited,
            user=request.user_id,
            expires=slack_time(request.expires_at, self.zone),
        )
        step = f"reminder{stage.number}" if stage is not None else "nudge"
        await self._call(
            "chat.postMessage",
            channel=slack.card_channel,
            thread_ts=slack.card_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
            metadata=self.metadata(request, step),
        )
        self._reminded(stage.audience.value if stage is not None else "asker")
        log.info(
            "approvers reminded",
            extra={"request": request.id, "step": step, "mentioned": len(people)},
        )
        self._note(request.id, reached=self._reached_text(request.id, people[:MOST_MENTIONED]))
        await self._quietly(request, self._refresh_card(request, waited=waited))
        await self._quietly(request, self._refresh_waiting(request))

    async def approval_progress(self, request: ShareRequest) -> None:
        """The first of two approvals: on the card ("1 of 2 approvals: <@A>") and in the
        asker's thread, once."""
        slack = self._told(request.id)
        if slack.card_approvals >= request.approvals or not request.first_approved_by:
            return
        language = request.language or self.default_language
        # Claimed before it is posted (as a reminder is): a write that fails after the
        # post never makes the next look say it again.
        self._note(request.id, card_approvals=request.approvals)
        try:
            await self._refresh_card(request, waited="")
            await self._reply(
                request,
                slack,
                language,
                say(language, "thread_first_approval", by=request.first_approved_by),
                step="approval1:reply",
            )
        except DeliveryError as error:
            if error.transient:  # Slack did not take it for now: given back, said later
                self._note(request.id, card_approvals=slack.card_approvals)
            raise

    async def _refresh_card(self, request: ShareRequest, *, waited: str) -> None:
        slack = self._told(request.id)
        if not slack.card_ts:
            return
        text, blocks, _ = self._card(request, self._name(request.member_id), waited=waited)
        await self._update(
            request, "card", channel=slack.card_channel, ts=slack.card_ts, text=text, blocks=blocks
        )

    async def _refresh_waiting(self, request: ShareRequest) -> None:
        slack = self._told(request.id)
        if not slack.waiting_ts:
            return
        language = request.language or self.default_language
        name = self._name(request.member_id)
        link = views.permalink(slack.card_channel, slack.card_ts)
        text = say(
            language,
            "thread_awaiting",
            why=self._why(request, language, name),
            channel=slack.card_channel,
            link=link,
        )
        shown, blocks = views.waiting_message(
            request, language, text, self.reached(request.id), most=MOST_MENTIONED, zone=self.zone
        )
        await self._update(
            request,
            WAITING_REPLY,
            channel=slack.parent_channel,
            ts=slack.waiting_ts,
            text=shown,
            blocks=blocks,
        )

    async def _quietly(self, request: ShareRequest, update: Awaitable[None]) -> None:
        """An update of a message already posted: a failure is logged, never retried (the
        next reminder or the decision brings it up to date)."""
        try:
            await update
        except DeliveryError as error:
            log.warning(
                "cannot update a message of a waiting request",
                extra={"request": request.id, "method": error.method, "error": error.error},
            )

    def _why(self, request: ShareRequest, language: str, name: str | None) -> str:
        if request.approval_reason == "two_person":
            return say(language, "why_two_person")
        if request.approval_reason == "unknown_member":
            return say(
                language, "why_unknown_member", member=views.member_label(request.member_id, name)
            )
        return say(language, "why_role")

    async def _update_card(self, request: ShareRequest, slack: SlackData, name: str | None) -> None:
        if not slack.card_ts:
            return
        text, blocks = views.decided_card(
            request, self.default_language, name, self.image(request.image_id)
        )
        await self._update(
            request, "card", channel=slack.card_channel, ts=slack.card_ts, text=text, blocks=blocks
        )
        # The asker's message loses its Remind button: nothing is waiting any more.
        await self._quietly(request, self._refresh_waiting(request))

    async def _notify(self, request: ShareRequest, slack: SlackData, name: str | None) -> None:
        language = self.default_language
        if request.state is RequestState.FAILED:
            state = say(language, "state_failed", what=views.failure_words(request, language))
        else:
            state = views.state_line(request, language)
        if request.made_shared_at and request.state in RUNNING:
            state += " · " + say(language, "notify_made_shared")
        if request.made_private_at and request.state is RequestState.REMOVED:
            state += " · " + say(language, "notify_made_private")
        link = views.permalink(slack.parent_channel, slack.parent_ts) or "-"
        text = say(
            language,
            "notify",
            icon=ICONS.get(request.state, ""),
            user=request.user_id,
            verb=say(language, f"verb_{request.action}"),
            image=self.image_label(request.image_id),
            member=views.member_label(request.member_id, name),
            state=state,
            link=link,
        )
        await self._post(
            request,
            slack,
            f"{request.state}:notify",
            channel=self.notify_channel,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
        )
