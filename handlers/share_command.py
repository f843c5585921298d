"""`/share-image`: parse, ask the share service, acknowledge within Slack's 3 seconds.

Everything here answers in the ack (ephemeral, only the caller sees it). The share
itself is carried out by the worker, which posts the channel message and its thread.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing import commands
from bot.sharing.admin import Administration
from bot.sharing.errors import (
    CloudError,
    CommandError,
    LastAdmin,
    NotAdmin,
    NotAllowed,
    StorageError,
)
from bot.sharing.records import Records
from bot.sharing.service import ShareService
from bot.slack import texts as messages
from bot.slack import views
from bot.slack.announcer import Announcer
from bot.slack.languages import Languages
from bot.slack.texts import code, say
from bot.slack.views import member_label, permalink
from handlers import form
from handlers.options import Options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlashCommand:
    """What `/share-image` works with: the share service, the records it answers from,
    administration, and the Slack side; `counted(word, outcome)` counts each command by
    its first word (the wiring's metrics), `after_ack` runs a slow follow-up after the ack."""

    share: ShareService
    records: Records
    admin: Administration
    languages: Languages
    announcer: Announcer
    options: Options
    wake: Callable[[], None]
    after_ack: Callable[[Callable[[], Awaitable[None]]], None]
    counted: Callable[[str, str], None]


def register(
    app: AsyncApp,
    share: ShareService,
    records: Records,
    admin: Administration,
    *,
    languages: Languages,
    announcer: Announcer,
    options: Options,
    wake: Callable[[], None],
    after_ack: Callable[[Callable[[], Awaitable[None]]], None],
    counted: Callable[[str, str], None],
) -> None:
    """Attach the slash command listener."""
    slash = SlashCommand(
        share, records, admin, languages, announcer, options, wake, after_ack, counted
    )

    @app.command("/share-image")
    async def share_image(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await handle(slash, ack, command, respond, client)


async def handle(
    slash: SlashCommand,
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient | None = None,
) -> None:
    """Answer one `/share-image` command, and count it once by its first word and outcome."""
    text = command.get("text") or ""
    words = text.split(maxsplit=1)
    outcome = "error"
    try:
        outcome = await _answer(slash, ack, command, respond, text, client)
    finally:
        slash.counted(words[0].lower() if words else "", outcome)


async def _answer(
    slash: SlashCommand,
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    text: str,
    client: AsyncWebClient | None,
) -> str:
    user = command["user_id"]
    # No network before the ack: a user the bot does not know yet gets the default
    # language here, and the worker looks theirs up for everything that follows.
    known = slash.languages.known(user)
    language = known or slash.options.default_language
    try:
        parsed = commands.parse(text, zone=slash.options.zone)
    except CommandError as error:
        log.info("bad command", extra={"user": user, "problem": error.problem})
        await ack(response_type="ephemeral", text=messages.command_problem(language, error))
        return "invalid"
    if isinstance(parsed, commands.Form) and client is not None:
        # The ack first (Slack's 3 seconds), then the form within the trigger's 3 seconds.
        await ack(response_type="ephemeral", text=say(language, "form_opening"))
        await form.open_from_command(
            slash.records, slash.languages, slash.options, client, command, respond
        )
        return "form"
    try:
        return await _dispatch(slash, ack, respond, command, parsed, language, known)
    except CommandError as error:  # a rule of the settings, or a user Slack does not know
        log.info("command refused", extra={"user": user, "problem": error.problem})
        await ack(response_type="ephemeral", text=messages.problem(language, error))
        return "refused"
    except LastAdmin as error:
        log.info("refused to revoke the last admin", extra={"user": user, "admin": error.user_id})
        await ack(response_type="ephemeral", text=say(language, "last_admin", user=error.user_id))
        return "refused"
    except NotAdmin as error:
        log.info("refused an admin command", extra={"user": user, "what": error.what})
        await ack(
            response_type="ephemeral",
            text=say(language, "admin_only", admins=slash.announcer.admins(language)),
        )
        return "refused"
    except NotAllowed as error:
        log.info("refused", extra={"user": user, "what": error.what})
        await ack(
            response_type="ephemeral",
            text=say(language, "not_allowed", admins=slash.announcer.admins(language)),
        )
        return "refused"
    except StorageError as error:
        log.error("database failed on command", extra={"user": user, "error": str(error)})
        await ack(response_type="ephemeral", text=say(language, "error_storage"))
        return "error"


async def _dispatch(
    slash: SlashCommand,
    ack: AsyncAck,
    respond: AsyncRespond,
    command: dict[str, Any],
    parsed: commands.Command,
    language: str,
    known: str | None,
) -> str:
    """Answer a parsed command; its outcome for the metrics."""
    user = command["user_id"]
    if isinstance(parsed, commands.Help | commands.Form):
        await ack(response_type="ephemeral", text=messages.usage(language))
    elif isinstance(parsed, commands.Share):
        # The checks, the record and the reads the answer needs: one transaction (a
        # failure anywhere in it records nothing). The worker is woken once it is committed.
        text, outcome = slash.records.together(
            lambda: _ask(slash, command, parsed, language, known)
        )
        if outcome != "duplicate":
            slash.wake()
        await ack(response_type="ephemeral", text=text)
        return outcome
    elif isinstance(parsed, commands.Status):
        mine = slash.records.requests_of(user)
        images = slash.records.images(r.image_id for r in mine)
        text, blocks = views.status_listing(
            language, mine, slash.records.now(), images, slash.options.zone
        )
        await ack(response_type="ephemeral", text=text, blocks=blocks)
    elif isinstance(parsed, commands.ListMembers):
        await _list(slash, ack, respond, user, parsed.image_id, language)
    else:
        result = await slash.admin.dispatch(parsed, by=user, now=slash.records.now())
        answer, listed = views.admin_answer(language, result, slash.options.zone)
        await ack(response_type="ephemeral", text=answer, blocks=listed)
    return "answered"


def _ask(
    slash: SlashCommand,
    command: dict[str, Any],
    parsed: commands.Share,
    language: str,
    known: str | None,
) -> tuple[str, str]:
    """The ack's text, and the outcome: queued, approval or duplicate."""
    asked = slash.share.ask(
        command["user_id"],
        parsed,
        language=known or "",
        team_id=command.get("team_id", ""),
        channel_id=command.get("channel_id", ""),
        response_url=command.get("response_url", ""),
    )
    request = asked.request
    name = asked.member_name
    log.info(
        "request recorded" if asked.created else "duplicate request",
        extra=request.log_fields(),
    )
    # Named as the thread names it: the stored list, never a cloud call on the ack path.
    image = views.image_label(request.image_id, slash.records.image(request.image_id))
    if not asked.created:
        told = slash.records.told(request.id)
        link = permalink(told.parent_channel, told.parent_ts) or permalink(
            told.card_channel, told.card_ts
        )
        text = say(
            language,
            "duplicate" if link else "duplicate_nolink",
            id=request.id,
            image=image,
            member=member_label(request.member_id, name),
            state=messages.state_word(language, request.state),
            link=link,
        )
        differs = views.joined_duration(request, asked.duration, language)
        return text + (" " + differs if differs else ""), "duplicate"
    lasts = ""
    if request.duration:
        key = "ack_capped" if asked.capped else "ack_duration"
        lasts = " " + say(language, key, duration=code(request.duration))
    running = (
        slash.records.running_share(request.image_id, request.member_id, before=request.id)
        if not request.unshare and request.extends is None
        else None
    )
    if running is not None:
        # One share per image and member: this one moves the running share's end.
        lasts += " " + say(
            language,
            "ack_moves_end",
            member=member_label(request.member_id, name),
            id=running.id,
        )
    elif not request.unshare and slash.records.listed_outside(request.image_id, request.member_id):
        lasts += " " + say(
            language, "ack_was_present", member=member_label(request.member_id, name)
        )
    if request.needs_approval:
        if request.approval_reason == "two_person":
            why = say(language, "why_two_person")
        elif request.approval_reason == "unknown_member":
            why = say(language, "why_unknown_member", member=member_label(request.member_id, name))
        else:
            why = say(language, "why_role")
        two = (
            " " + say(language, "ack_two_approvals")
            if request.approvals_needed > 1 and request.approval_reason != "two_person"
            else ""
        )
        return say(language, "ack_approval", why=why) + two + lasts, "approval"
    text = (
        say(
            language,
            "ack_direct",
            action=say(language, f"action_{request.action}"),
            image=image,
            member=member_label(request.member_id, name),
        )
        + lasts
    )
    return text, "queued"


async def _list(
    slash: SlashCommand,
    ack: AsyncAck,
    respond: AsyncRespond,
    user: str,
    image_id: str,
    language: str,
) -> None:
    # Ack first: the cloud API may take seconds. The answer follows via response_url.
    await ack()
    slash.after_ack(lambda: _list_reply(slash, respond, user, image_id, language))


async def _list_reply(
    slash: SlashCommand, respond: AsyncRespond, user: str, image_id: str, language: str
) -> None:
    try:
        found = await slash.share.list_members(user, image_id, language=language)
    except NotAllowed:
        await respond(text=say(language, "not_allowed", admins=slash.announcer.admins(language)))
        return
    except CloudError as error:
        log.warning("list failed", extra={"user": user, "image": image_id, "error": str(error)})
        await respond(
            text=messages.outcome_error(
                language,
                error.kind,
                image=code(image_id),
                member="-",
                admins=slash.announcer.admins(language),
                request_id=error.request_id,
                detail=error.detail,
            )
        )
        return
    # One answer within Slack's limits (a response_url takes only five): the newest
    # changes first, and when there are too many to read, how many by status.
    # Keyed in lower case: ids alike but for case are one member, however the cloud spells it.
    names = {m.member_id.lower(): m.name for m in slash.records.members()} if found else {}
    removals: dict[str, datetime] = {}
    for timed in slash.records.timed(image_id) if found else []:
        ends = timed.ends_at
        if ends is not None:
            removals.setdefault(timed.member_id.lower(), ends)
    # Each member marked: added through the bot (the newest share of it wins) or not.
    shares = {r.member_id.lower(): r for r in slash.records.through_bot(image_id)}
    known = slash.records.image(image_id)
    text, blocks = views.member_listing(
        language, image_id, found, names, removals, known, slash.options.zone, shares=shares
    )
    await respond(text=text, blocks=blocks)
