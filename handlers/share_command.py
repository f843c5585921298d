"""`/share-image`: parse, ask the share service, acknowledge within Slack's 3 seconds.

Everything here answers in the ack (ephemeral, only the caller sees it). The share
itself is carried out by the worker, which posts the channel message and its thread.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.scp.errors import CloudError
from bot.services import Services
from bot.sharing import commands
from bot.sharing.errors import CommandError, LastAdmin, NotAdmin, NotAllowed
from bot.slack import texts as messages
from bot.slack import views
from bot.slack.texts import code, say
from bot.slack.views import member_label, permalink
from handlers import form
from storage.errors import StorageError

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Attach the slash command listener."""

    @app.command("/share-image")
    async def share_image(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await handle(services, ack, command, respond, client)


async def handle(
    services: Services,
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient | None = None,
) -> None:
    """Answer one `/share-image` command, and count it once by kind and outcome."""
    text = command.get("text") or ""
    words = text.split(maxsplit=1)
    kind = words[0].lower() if words and words[0].lower() in metrics.COMMAND_KINDS else "share"
    outcome = "error"
    try:
        outcome = await _answer(services, ack, command, respond, text, client)
    finally:
        metrics.COMMANDS.labels(kind=kind, outcome=outcome).inc()


async def _answer(
    services: Services,
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    text: str,
    client: AsyncWebClient | None,
) -> str:
    user = command["user_id"]
    # No network before the ack: a user the bot does not know yet gets the default
    # language here, and the worker looks theirs up for everything that follows.
    known = services.languages.known(user)
    language = known or services.settings.BOT_DEFAULT_LANGUAGE
    try:
        parsed = commands.parse(text, zone=services.settings.timezone)
    except CommandError as error:
        log.info("bad command", extra={"user": user, "problem": error.problem})
        await ack(response_type="ephemeral", text=messages.command_problem(language, error))
        return "invalid"
    if isinstance(parsed, commands.Form) and client is not None:
        # The ack first (Slack's 3 seconds), then the form within the trigger's 3 seconds.
        await ack(response_type="ephemeral", text=say(language, "form_opening"))
        await form.open_from_command(services, client, command, respond)
        return "form"
    try:
        return await _dispatch(services, ack, respond, command, parsed, language, known)
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
            text=say(language, "admin_only", admins=services.announcer.admins(language)),
        )
        return "refused"
    except NotAllowed as error:
        log.info("refused", extra={"user": user, "what": error.what})
        await ack(
            response_type="ephemeral",
            text=say(language, "not_allowed", admins=services.announcer.admins(language)),
        )
        return "refused"
    except StorageError as error:
        log.error("database failed on command", extra={"user": user, "error": str(error)})
        await ack(response_type="ephemeral", text=say(language, "error_storage"))
        return "error"


async def _dispatch(
    services: Services,
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
        text, outcome = _ask(services, command, parsed, language, known)
        await ack(response_type="ephemeral", text=text)
        return outcome
    elif isinstance(parsed, commands.Status):
        mine = services.requests.for_user(user)
        images = services.images.known_many(r.image_id for r in mine)
        text, blocks = views.status_listing(
            language, mine, services.database.now(), images, services.settings.timezone
        )
        await ack(response_type="ephemeral", text=text, blocks=blocks)
    elif isinstance(parsed, commands.ListMembers):
        await _list(services, ack, respond, user, parsed.image_id, language)
    else:
        result = await services.admin.dispatch(parsed, by=user, now=services.database.now())
        answer, listed = views.admin_answer(language, result, services.settings.timezone)
        await ack(response_type="ephemeral", text=answer, blocks=listed)
    return "answered"


def _ask(
    services: Services,
    command: dict[str, Any],
    parsed: commands.Share,
    language: str,
    known: str | None,
) -> tuple[str, str]:
    """The ack's text, and the outcome: queued, approval or duplicate."""
    asked = services.share.ask(
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
    image = views.image_label(request.image_id, services.images.known(request.image_id))
    if not asked.created:
        told = services.messages.get(request.id)
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
    services.wake()
    lasts = ""
    if request.duration:
        key = "ack_capped" if asked.capped else "ack_duration"
        lasts = " " + say(language, key, duration=code(request.duration))
    running = (
        services.requests.running_share(request.image_id, request.member_id, before=request.id)
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
    elif not request.unshare and _listed_outside(services, request.image_id, request.member_id):
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


def _listed_outside(services: Services, image_id: str, member_id: str) -> bool:
    """Whether the cloud's last member list showed the member, not through the bot."""
    listed = services.seen.get(image_id, member_id)
    return listed is not None and listed.outside and listed.gone_at is None


async def _list(
    services: Services,
    ack: AsyncAck,
    respond: AsyncRespond,
    user: str,
    image_id: str,
    language: str,
) -> None:
    # Ack first: the cloud API may take seconds. The answer follows via response_url.
    await ack()
    services.after_ack(lambda: _list_reply(services, respond, user, image_id, language))


async def _list_reply(
    services: Services, respond: AsyncRespond, user: str, image_id: str, language: str
) -> None:
    try:
        found = await services.share.list_members(user, image_id, language=language)
    except NotAllowed:
        await respond(text=say(language, "not_allowed", admins=services.announcer.admins(language)))
        return
    except CloudError as error:
        log.warning("list failed", extra={"user": user, "image": image_id, "error": str(error)})
        await respond(
            text=messages.outcome_error(
                language,
                error.kind,
                image=code(image_id),
                member="-",
                admins=services.announcer.admins(language),
                request_id=error.request_id,
                detail=error.detail,
            )
        )
        return
    # One answer within Slack's limits (a response_url takes only five): the newest
    # changes first, and when there are too many to read, how many by status.
    # Keyed in lower case: ids alike but for case are one member, however the cloud spells it.
    names = {m.member_id.lower(): m.name for m in services.members.all()} if found else {}
    removals: dict[str, datetime] = {}
    for timed in services.requests.timed(image_id) if found else []:
        ends = timed.ends_at
        if ends is not None:
            removals.setdefault(timed.member_id.lower(), ends)
    # Each member marked: added through the bot (the newest share of it wins) or not.
    shares = {r.member_id.lower(): r for r in services.requests.through_bot(image_id)}
    known = services.images.known(image_id)
    text, blocks = views.member_listing(
        language, image_id, found, names, removals, known, services.settings.timezone, shares=shares
    )
    await respond(text=text, blocks=blocks)
