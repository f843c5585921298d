"""The share form: opened by `/share-image` with no text and by the "Share an image"
shortcut, its menus' options, and its submission.

Options are answered from SQLite alone (the stored image list, the known members),
within Slack's three seconds whatever the cloud does. A submission goes through the
same parser and the same share service as the typed command; a problem is shown next
to its field and nothing is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.durations import choice_value
from bot.sharing.errors import CommandError, FieldsInvalid, NotAllowed, StorageError
from bot.sharing.fields import choices, read_share
from bot.sharing.records import Records
from bot.sharing.service import ShareService
from bot.slack import texts as messages
from bot.slack.form import (
    OPTIONS_MAX,
    SEARCH_MAX,
    ShareForm,
    field_errors,
    image_list_note,
    image_options,
    member_options,
    problem_text,
)
from bot.slack.languages import Languages
from bot.slack.texts import say
from bot.slack.views import joined_duration
from handlers.options import Options

log = logging.getLogger(__name__)

SHORTCUT = "share_image"


def register(
    app: AsyncApp,
    share: ShareService,
    records: Records,
    *,
    languages: Languages,
    options: Options,
    wake: Callable[[], None],
) -> None:
    """Attach the shortcut, the menus' options and the submission listeners. The menus
    read the image list as SQLite holds it: they never wait on the cloud."""

    @app.shortcut(SHORTCUT)
    async def shortcut(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = body["user"]["id"]
        try:
            await open_form(records, languages, options, client, body["trigger_id"], user)
        except SlackApiError as error:
            # A global shortcut has no response_url: the log is the only place left.
            log.warning(
                "could not open the share form",
                extra={"user": user, "error": error.response.get("error")},
            )

    @app.options(ShareForm.image_input)
    async def image_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        typed = str(body.get("value") or "").strip()
        if len(typed) > SEARCH_MAX:
            await ack(options=[])
            return
        found = records.find_images(typed, limit=OPTIONS_MAX)
        known = any(image.id == typed.lower() for image in found) or (
            len(typed) == 36 and records.stored_image(typed) is not None
        )
        language = _language(languages, options, body)
        await ack(options=image_options(language, found, typed, typed_stored=known))

    @app.options(ShareForm.member_input)
    async def member_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        typed = str(body.get("value") or "")
        if len(typed.strip()) > SEARCH_MAX:
            await ack(options=[])
            return
        language = _language(languages, options, body)
        await ack(
            options=member_options(language, records.find_members(typed, limit=OPTIONS_MAX), typed)
        )

    @app.view(ShareForm.callback_id)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await submit(share, languages, options, wake, ack, body, view)


def _language(languages: Languages, options: Options, body: dict[str, Any]) -> str:
    user = str((body.get("user") or {}).get("id") or "")
    return languages.known(user) or options.default_language


async def open_form(
    records: Records,
    languages: Languages,
    options: Options,
    client: AsyncWebClient,
    trigger_id: str,
    user: str,
    channel: str = "",
) -> None:
    """Open the form for `user`; the thread defaults to `channel` (a command's own).

    Raises SlackApiError when Slack will not open it (an expired trigger, say).
    """
    language = languages.known(user) or options.default_language
    durations = options.durations
    values = [choice_value(choice) for choice in choices(durations)]
    default = choice_value(durations.default) if durations.default else values[0]
    count, refreshed_at = records.image_list()
    note = image_list_note(
        language,
        count=count,
        refreshed_at=refreshed_at,
        now=records.now(),
        every=options.image_list_every,
        zone=options.zone,
    )
    view = ShareForm.build(
        language, durations=values, default_duration=default, channel=channel, note=note
    )
    await client.views_open(trigger_id=trigger_id, view=view)
    log.info("share form opened", extra={"user": user, "channel": channel})


async def open_from_command(
    records: Records,
    languages: Languages,
    options: Options,
    client: AsyncWebClient,
    command: dict[str, Any],
    respond: AsyncRespond,
) -> None:
    """After the command's ack: open the form, or say through response_url why not."""
    user = command["user_id"]
    try:
        await open_form(
            records,
            languages,
            options,
            client,
            command.get("trigger_id") or "",
            user,
            command.get("channel_id") or "",
        )
    except SlackApiError as error:
        code = str(error.response.get("error") or "error")
        log.warning("could not open the share form", extra={"user": user, "error": code})
        language = languages.known(user) or options.default_language
        await respond(text=say(language, "form_open_failed", error=code), response_type="ephemeral")


async def submit(
    share: ShareService,
    languages: Languages,
    options: Options,
    wake: Callable[[], None],
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
) -> None:
    """Read the submission with the command's rules and ask as the command does."""
    user = body["user"]["id"]
    language = _language(languages, options, body)
    form = ShareForm.parse(view, body.get("response_urls") or ())
    try:
        asked = read_share(form.fields, options.durations)
    except FieldsInvalid as error:
        log.info("form refused", extra={"user": user, "problem": str(error)})
        await ack(response_action="errors", errors=field_errors(language, error.problems))
        return
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""
    try:
        recorded = share.ask(
            user,
            asked.share,
            language=languages.known(user) or "",
            team_id=str(team),
            # No channel: the thread goes to the user's direct messages with the bot.
            channel_id=form.channel or user,
            response_url=form.response_url,
        )
    except CommandError as error:  # a rule of the settings, such as the longest share
        log.info("form refused by the settings", extra={"user": user, "problem": error.problem})
        await ack(
            response_action="errors",
            errors={ShareForm.duration_block: problem_text(language, error)},
        )
        return
    except NotAllowed as error:
        log.info("refused", extra={"user": user, "what": error.what})
        await ack(
            response_action="errors",
            errors={ShareForm.image_block: say(language, "form_not_allowed")},
        )
        return
    except StorageError as error:
        log.error("database failed on the form", extra={"user": user, "error": str(error)})
        await ack(
            response_action="errors", errors={ShareForm.image_block: say(language, "error_storage")}
        )
        return
    request = recorded.request
    if not recorded.created:
        log.info("duplicate request", extra=request.log_fields())
        await ack(
            response_action="errors",
            errors={
                ShareForm.image_block: " ".join(
                    text
                    for text in (
                        say(
                            language,
                            "form_duplicate",
                            id=request.id,
                            state=messages.state_word(language, request.state),
                        ),
                        joined_duration(request, recorded.duration, language),
                    )
                    if text
                )
            },
        )
        return
    log.info(
        "request recorded",
        extra={**request.log_fields(), "via": "form", "duration": str(asked.duration or "")},
    )
    await ack()
    wake()
