"""Approve and Deny buttons, the deny-reason modal, and the asker's Remind button.

Rights are checked on the server at every click; the decision is a compare-and-set,
so double and simultaneous clicks give one decision. The worker does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing import commands
from bot.sharing.errors import CommandError
from bot.sharing.policy import Refusal
from bot.sharing.records import Records
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.service import Decision, Nudge, NudgeRefusal, ShareService
from bot.slack.languages import Languages
from bot.slack.texts import problem, say, state_word
from bot.slack.views import (
    APPROVE,
    DENY,
    PEOPLE_SHOWN,
    REMIND,
    DenyModal,
    MalformedSubmission,
    people_within,
    slack_time,
)
from handlers.clicks import clicked_request, whisper
from handlers.options import Options

log = logging.getLogger(__name__)


def register(
    app: AsyncApp,
    share: ShareService,
    records: Records,
    *,
    languages: Languages,
    options: Options,
    wake: Callable[[], None],
) -> None:
    """Attach the button and modal listeners (`wake`: the worker, once something changed)."""

    async def after(decision: Decision, clicker: str, respond: AsyncRespond) -> None:
        if decision.refusal is None:
            wake()
            return
        language = await languages.of(clicker)
        log.info(
            "click refused",
            extra={
                "user": clicker,
                "refusal": decision.refusal,
                "request": decision.request.id if decision.request else None,
            },
        )
        await whisper(respond, _refusal_text(records, decision, language))

    @app.action(APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        clicker = body["user"]["id"]
        request = _clicked_request(records, body)
        decision = (
            share.decide(request.id, clicker, approve=True)
            if request is not None
            else Decision(None, Refusal.UNKNOWN)
        )
        await after(decision, clicker, respond)

    @app.action(DENY)
    async def deny(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        clicker = body["user"]["id"]
        request = _clicked_request(records, body)
        refusal = share.refusal(request, clicker, approving=False)
        if refusal is not None or request is None:
            await after(Decision(request, refusal or Refusal.UNKNOWN), clicker, respond)
            return
        card = records.told(request.id)
        await client.views_open(
            trigger_id=body["trigger_id"],
            view=DenyModal.build(
                request.id,
                languages.known(clicker) or options.default_language,
                card.card_channel or "",
                card.card_ts or "",
            ),
        )

    @app.view(DenyModal.callback_id)
    async def deny_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        clicker = body["user"]["id"]
        language = languages.known(clicker) or options.default_language
        try:
            submitted = DenyModal.parse(view)
        except MalformedSubmission as error:
            log.warning(
                "deny modal with forged metadata", extra={"user": clicker, "error": str(error)}
            )
            await ack(
                response_action="errors",
                errors={DenyModal.reason_block: say(language, "click_unknown")},
            )
            return
        try:
            # The share reason's rules: one printable line, nothing invisible, not too long.
            reason = commands.reason([submitted.reason])
        except CommandError as error:
            log.info("deny reason refused", extra={"user": clicker, "problem": error.problem})
            await ack(
                response_action="errors", errors={DenyModal.reason_block: problem(language, error)}
            )
            return
        decision = share.decide(submitted.request_id, clicker, approve=False, reason=reason)
        if decision.refusal:
            await ack(
                response_action="errors",
                errors={DenyModal.reason_block: _refusal_text(records, decision, language)},
            )
            return
        await ack()
        wake()

    @app.action(REMIND)
    async def remind(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        clicker = body["user"]["id"]
        request = clicked_request(records, body, lambda told: told.waiting_ts, "waiting message")
        nudge = (
            share.nudge(request.id, clicker)
            if request is not None
            else Nudge(None, NudgeRefusal.UNKNOWN)
        )
        if nudge.refusal is None:
            wake()
        else:
            log.info(
                "remind refused",
                extra={
                    "user": clicker,
                    "refusal": nudge.refusal,
                    "request": request and request.id,
                },
            )
        await whisper(respond, _nudge_text(await languages.of(clicker), nudge, options.zone))


def _nudge_text(language: str, nudge: Nudge, zone: ZoneInfo) -> str:
    request = nudge.request
    if nudge.refusal is None:
        return say(language, "click_nudged")
    if request is None or nudge.refusal is NudgeRefusal.UNKNOWN:
        return say(language, "click_unknown")
    if nudge.refusal is NudgeRefusal.NOT_ASKER:
        return say(language, "click_nudge_not_asker", user=request.user_id)
    if nudge.refusal is NudgeRefusal.TOO_EARLY:
        return say(language, "click_nudge_too_early", when=slack_time(nudge.next_at, zone))
    return say(
        language, "click_nudge_done", id=request.id, state=state_word(language, request.state)
    )


def _clicked_request(records: Records, body: dict[str, Any]) -> ShareRequest | None:
    """The request a click is about, only if the click came from its card."""
    return clicked_request(records, body, lambda told: told.card_ts, "card")


def _refusal_text(records: Records, decision: Decision, language: str) -> str:
    request = decision.request
    refusal = decision.refusal
    if refusal is Refusal.NOT_APPROVER:
        # Whom the card asks, as the card names them (the first few, then how many more).
        people = records.asked(request).people if request else []
        named = people_within(language, people, PEOPLE_SHOWN) if people else ""
        return say(language, "click_not_approver", people=named or say(language, "nobody_to_ask"))
    if refusal is Refusal.OWN_REQUEST:
        return say(language, "click_own_request")
    if refusal is Refusal.APPROVED_ALREADY:
        return say(language, "click_approved_already")
    if request is None or refusal is Refusal.UNKNOWN:
        return say(language, "click_unknown")
    if refusal is Refusal.EXPIRED:
        return say(language, "click_expired", id=request.id)
    if request.decided_by:
        outcome = "denied" if request.state == RequestState.DENIED else "approved"
        return say(
            language,
            "click_decided",
            id=request.id,
            decision=say(language, f"decision_{outcome}"),
            by=request.decided_by,
        )
    return say(language, "click_done", id=request.id, state=state_word(language, request.state))
