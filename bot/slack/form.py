"""The share form: the modal of `/share-image` with no text and of the "Share an image"
shortcut, the options its menus offer as the user types, and reading a submission back.

`ShareForm` owns every id of the view (callback, blocks, actions), builds the view and
parses what Slack sends back; the handlers only pass values through. Options are built
from what storage holds (the stored image list, the known members): answering them
must take milliseconds, so nothing here calls anything.

    Share an image
    ┌───────────────────────────────────────────────────────┐
    │ Image           [ type part of its name or id      ▾] │  external_select
    │ Member account  [ a known member's name, or the id ▾] │  external_select
    │ For how long    [ 7 days                           ▾] │  static_select
    │ Reason          [                                   ] │  plain_text_input
    │ Thread in       [ #the-command's-channel           ▾] │  conversations_select
    │ (a note when the image list is empty or out of date)  │  context
    └──────────────────────────────────────── Cancel  Share ┘
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    ConversationSelectElement,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.sharing import commands
from bot.sharing.errors import CommandError
from bot.sharing.fields import ShareFields
from bot.sharing.values import KnownMember, StoredImage
from bot.slack.texts import say
from bot.slack.views import MODAL_TEXT_MAX, UTC_ZONE, clip, slack_time

# Slack's limits on what a menu shows (https://docs.slack.dev/reference/block-kit).
OPTIONS_MAX = 100
# The longest search text a menu is answered for. What a person types into a menu is
# short (Slack caps it); a longer `value` is forged, matches no name worth offering,
# and would cost the database a pattern it refuses (SQLite stops at 50,000 characters).
SEARCH_MAX = 150
OPTION_TEXT_MAX = 75
PLACEHOLDER_MAX = 150

# A list older than this many refreshes is said to be out of date.
STALE_AFTER_REFRESHES = 3

_DURATION = re.compile(r"([0-9]+)([mhdw])", re.ASCII | re.IGNORECASE)


def _plain(text: str, limit: int) -> PlainTextObject:
    # emoji=False: names are shown as they are, no :shortcode: becomes a picture.
    return PlainTextObject(text=clip(text, limit), emoji=False)


def _searched(language: str, block_id: str, action_id: str, texts: str) -> InputBlock:
    """A field whose options Slack asks for as the user types (`texts`: its catalog keys'
    start, `<texts>_label` and `<texts>_placeholder`)."""
    return InputBlock(
        block_id=block_id,
        label=_plain(say(language, f"{texts}_label"), 2000),
        element=ExternalDataSelectElement(
            action_id=action_id,
            placeholder=_plain(say(language, f"{texts}_placeholder"), PLACEHOLDER_MAX),
            min_query_length=0,
        ),
    )


def _option(text: str, value: str, description: str = "") -> Option:
    return Option(
        value=value,
        text=_plain(text, OPTION_TEXT_MAX),
        description=_plain(description, OPTION_TEXT_MAX) if description else None,
    )


def _answer(options: Sequence[Option]) -> list[dict[str, Any]]:
    return [option.to_dict() for option in options[:OPTIONS_MAX]]


# -- what the menus offer ----------------------------------------------------------------


def image_label(image: StoredImage) -> str:
    """`rocky9-golden · rocky 9.4 · 70a599e0…` in at most an option's 75 characters."""
    short = image.id[:8] + "…"
    system = clip(" ".join(p for p in (image.os_distro, image.scp_os_version) if p), 30)
    tail = " · ".join(part for part in (system, short) if part)
    name = clip(image.name or "", OPTION_TEXT_MAX - len(tail) - 3)
    return f"{name} · {tail}" if name else tail


def image_options(
    language: str, found: Sequence[StoredImage], typed: str, *, typed_stored: bool = False
) -> list[dict[str, Any]]:
    """Options for the image menu: the stored images that match, as `storage` found them.

    A complete, valid image id that the list does not hold (`typed_stored` False: an
    image newer than the list) is offered too, first, so that an out-of-date list never
    blocks a share. One the list holds is offered only as found (so a public image,
    which needs no sharing, never is).
    """
    options: list[Option] = []
    typed_id = _valid(commands.image_id, typed.strip())
    if typed_id and not typed_stored:
        options.append(_option(say(language, "form_image_typed", id=typed_id), typed_id))
    for image in found:
        status = image.status or ""
        description = image.id if status in ("", "active") else f"{image.id} · {status}"
        options.append(_option(image_label(image), image.id, description))
    return _answer(options)


def member_options(language: str, found: Sequence[KnownMember], typed: str) -> list[dict[str, Any]]:
    """Options for the member menu: known members that match, and after them the typed
    text itself as an account id when it is a valid member id (never when it is not)."""
    options: list[Option] = []
    for member in found[: OPTIONS_MAX - 1]:
        short = member.member_id if len(member.member_id) <= 12 else member.member_id[:8] + "…"
        room = OPTION_TEXT_MAX - len(short) - 3
        options.append(
            _option(f"{clip(member.name, room)} · {short}", member.member_id, member.member_id)
        )
    typed_id = _valid(commands.member_id, typed.strip())
    if typed_id and not any(m.member_id.lower() == typed_id.lower() for m in found):
        options.append(_option(say(language, "form_member_typed", id=typed_id), typed_id))
    return _answer(options)


def _valid(read: Any, text: str) -> str:
    try:
        return str(read(text))
    except CommandError:
        return ""


def duration_label(language: str, value: str) -> str:
    """`7 days` for `7d`, "Until removed" for `UNTIL_REMOVED`."""
    match = _DURATION.fullmatch(value)
    if match is None:
        return say(language, "form_until_removed")
    amount, unit = int(match.group(1)), match.group(2).lower()
    return say(language, f"duration_{unit}_{'one' if amount == 1 else 'other'}", count=amount)


def image_list_note(
    language: str,
    *,
    count: int,
    refreshed_at: datetime | None,
    now: datetime,
    every: timedelta,
    zone: ZoneInfo = UTC_ZONE,
) -> str:
    """What the form says about the stored image list: empty, out of date, or nothing;
    when it was read, in `zone`."""
    if refreshed_at is None:
        return say(language, "form_images_unread")
    if count == 0:
        return say(language, "form_images_empty", when=slack_time(refreshed_at, zone))
    if now - refreshed_at > STALE_AFTER_REFRESHES * every:
        return say(language, "form_images_stale", when=slack_time(refreshed_at, zone))
    return ""


# -- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormSubmission:
    """A submitted form: the fields as Slack sent them, where the thread goes, the
    `response_url` Slack gave for the chosen channel (empty when none)."""

    fields: ShareFields
    channel: str
    response_url: str


class ShareForm:
    """The share modal: its ids, its view, and reading a submission back."""

    callback_id = "share_form"
    image_block, image_input = "image", "image_select"
    member_block, member_input = "member", "member_select"
    duration_block, duration_input = "duration", "duration_select"
    reason_block, reason_input = "reason", "reason_input"
    channel_block, channel_input = "channel", "channel_select"
    note_block = "note"
    max_reason = commands.MAX_REASON
    # Each field of `bot.sharing.fields` and the block that shows its problem.
    field_blocks: Mapping[str, str] = {
        "image": image_block,
        "member": member_block,
        "duration": duration_block,
        "reason": reason_block,
    }

    @classmethod
    def build(
        cls,
        language: str,
        *,
        durations: Sequence[str],
        default_duration: str = "",
        channel: str = "",
        note: str = "",
    ) -> dict[str, Any]:
        """The view for `views.open`: `durations` are option values (`7d`, `UNTIL_REMOVED`),
        `channel` the conversation the thread goes to unless the user picks another."""
        choices = [_option(duration_label(language, value), value) for value in durations]
        initial = next((o for o in choices if o.value == default_duration), None)
        blocks: list[Block] = [
            _searched(language, cls.image_block, cls.image_input, "form_image"),
            _searched(language, cls.member_block, cls.member_input, "form_member"),
            InputBlock(
                block_id=cls.duration_block,
                label=_plain(say(language, "form_duration_label"), 2000),
                element=StaticSelectElement(
                    action_id=cls.duration_input,
                    options=choices[:OPTIONS_MAX],
                    initial_option=initial or (choices[0] if choices else None),
                ),
            ),
            InputBlock(
                block_id=cls.reason_block,
                optional=True,
                label=_plain(say(language, "form_reason_label"), 2000),
                element=PlainTextInputElement(
                    action_id=cls.reason_input,
                    max_length=cls.max_reason,
                    placeholder=_plain(say(language, "form_reason_placeholder"), PLACEHOLDER_MAX),
                ),
            ),
            InputBlock(
                block_id=cls.channel_block,
                optional=True,
                label=_plain(say(language, "form_channel_label"), 2000),
                hint=_plain(say(language, "form_channel_hint"), 2000),
                element=ConversationSelectElement(
                    action_id=cls.channel_input,
                    initial_conversation=channel or None,
                    # Slack then sends a response_url for the chosen conversation: the
                    # answer's way in when the bot is not a member there, as for a command.
                    response_url_enabled=True,
                ),
            ),
        ]
        if note:
            blocks.append(
                ContextBlock(block_id=cls.note_block, elements=[MarkdownTextObject(text=note)])
            )
        view = View(
            type="modal",
            callback_id=cls.callback_id,
            title=_plain(say(language, "form_title"), MODAL_TEXT_MAX),
            submit=_plain(say(language, "form_submit"), MODAL_TEXT_MAX),
            close=_plain(say(language, "cancel"), MODAL_TEXT_MAX),
            blocks=blocks,
        )
        return view.to_dict()

    @classmethod
    def parse(cls, view: Mapping[str, Any], response_urls: Sequence[Any] = ()) -> FormSubmission:
        """What a `view_submission` says. Every value is a plain string (empty when absent
        or not a string): the caller reads each with the command's rules."""
        values: Any = view.get("state")
        values = values.get("values") if isinstance(values, Mapping) else None
        values = values if isinstance(values, Mapping) else {}

        def chosen(block: str, action: str, *path: str) -> str:
            found: Any = values.get(block)
            for key in (action, *path):
                found = found.get(key) if isinstance(found, Mapping) else None
            return found if isinstance(found, str) else ""

        channel = chosen(cls.channel_block, cls.channel_input, "selected_conversation")
        response_url = ""
        for entry in response_urls:
            if (
                isinstance(entry, Mapping)
                and entry.get("block_id") == cls.channel_block
                and entry.get("channel_id") == channel
                and isinstance(entry.get("response_url"), str)
            ):
                response_url = entry["response_url"]
        return FormSubmission(
            fields=ShareFields(
                image=chosen(cls.image_block, cls.image_input, "selected_option", "value"),
                member=chosen(cls.member_block, cls.member_input, "selected_option", "value"),
                duration=chosen(cls.duration_block, cls.duration_input, "selected_option", "value"),
                reason=chosen(cls.reason_block, cls.reason_input, "value"),
            ),
            channel=channel if _CONVERSATION.fullmatch(channel) else "",
            response_url=response_url,
        )


# A conversation id as Slack writes them; anything else is not one.
_CONVERSATION = re.compile(r"[CGD][A-Z0-9]{1,20}", re.ASCII)


def field_errors(language: str, problems: Mapping[str, CommandError]) -> dict[str, str]:
    """Each field's problem in words, keyed by its block (Slack shows them under it)."""
    return {
        ShareForm.field_blocks[name]: problem_text(language, error)
        for name, error in problems.items()
        if name in ShareForm.field_blocks
    }


def problem_text(language: str, error: CommandError) -> str:
    """A field's problem as plain text (errors in a form are not mrkdwn)."""
    values = {k: f"“{v}”" if k in {"token", "extra"} else v for k, v in error.values.items()}
    return say(language, error.problem, **values)
