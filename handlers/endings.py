"""The reminder's buttons before a timed share ends: Extend and Remove now.

Only the person who asked, or an admin, may use them; anyone else is told so
privately. Each is recorded once (Remove now is a compare-and-set, Extend asks for
one extension per share), so a double click does nothing more. The worker does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.sharing.errors import CommandError, NotAllowed
from bot.sharing.records import Records
from bot.sharing.request import ShareRequest
from bot.sharing.service import Ending, EndRefusal, ShareService
from bot.slack import texts as messages
from bot.slack.announcer import Announcer
from bot.slack.languages import Languages
from bot.slack.texts import code, say, state_word
from bot.slack.views import EXTEND, REMOVE_NOW, member_label
from handlers.clicks import clicked_request, whisper

log = logging.getLogger(__name__)


def register(
    app: AsyncApp,
    share: ShareService,
    records: Records,
    *,
    languages: Languages,
    announcer: Announcer,
    wake: Callable[[], None],
) -> None:
    """Attach the reminder's button listeners (`wake`: the worker, once something changed)."""

    @app.action(EXTEND)
    async def extend(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        clicker = body["user"]["id"]
        language = await languages.of(clicker)
        request = _clicked_request(records, body)
        if request is None:
            await _refused(Ending(None, EndRefusal.UNKNOWN), clicker, language, respond)
            return
        try:
            ending = share.extend(request.id, clicker, language=languages.known(clicker) or "")
        except CommandError as error:  # the maximum was lowered since the share was asked
            await whisper(respond, messages.command_problem(language, error))
            return
        except NotAllowed:
            admins = announcer.admins(language)
            await whisper(respond, say(language, "not_allowed", admins=admins))
            return
        if ending.refusal is not None or ending.extension is None:
            await _refused(ending, clicker, language, respond)
            return
        wake()
        extension = ending.extension.request
        await announcer.reminder_answered(
            request,
            _channel(body),
            say(language, "reminder_extended", by=clicker, extension=extension.id),
        )
        await whisper(
            respond,
            say(
                language,
                "click_extending",
                duration=code(extension.duration or ""),
                extension=extension.id,
            ),
        )

    @app.action(REMOVE_NOW)
    async def remove_now(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        clicker = body["user"]["id"]
        language = await languages.of(clicker)
        request = _clicked_request(records, body)
        ending = (
            share.remove_now(request.id, clicker)
            if request is not None
            else Ending(None, EndRefusal.UNKNOWN)
        )
        if ending.refusal is not None or request is None:
            await _refused(ending, clicker, language, respond)
            return
        wake()
        await announcer.reminder_answered(
            request, _channel(body), say(language, "reminder_removing", by=clicker)
        )
        name = records.member_name(request.member_id)
        await whisper(
            respond,
            say(
                language,
                "click_removing",
                member=member_label(request.member_id, name),
                image=code(request.image_id),
            ),
        )


def _channel(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or "")


def _clicked_request(records: Records, body: dict[str, Any]) -> ShareRequest | None:
    """The request a click is about, only if the click came from its reminder."""
    return clicked_request(records, body, lambda told: told.reminder_ts, "reminder")


async def _refused(ending: Ending, clicker: str, language: str, respond: AsyncRespond) -> None:
    request = ending.request
    log.info(
        "reminder click refused",
        extra={
            "user": clicker,
            "refusal": ending.refusal,
            "request": request.id if request else None,
        },
    )
    if request is None or ending.refusal in {EndRefusal.UNKNOWN, None}:
        text = say(language, "click_unknown")
    elif ending.refusal is EndRefusal.NOT_OWNER:
        text = say(language, "click_not_owner", user=request.user_id)
    elif ending.refusal is EndRefusal.EXTENDED:
        extension = request.extended_by or (
            ending.extension.request.id if ending.extension else "?"
        )
        text = say(language, "click_already_extended", id=request.id, extension=extension)
    else:
        text = say(
            language, "click_share_over", id=request.id, state=state_word(language, request.state)
        )
    await whisper(respond, text)
