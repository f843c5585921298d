"""A share asked through the form: each field read by the rules of the typed command.

The form's values come back from Slack as strings, and a payload can be forged, so
each one is read again with the parser's own functions (`bot.sharing.commands`), never
trusted because it came from a menu the bot built. Every field is checked, so that the
form can show each problem next to its field at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.sharing import commands
from bot.sharing.durations import Duration, ShareDurations, parse_choice
from bot.sharing.errors import CommandError, FieldsInvalid

# The fields, by the names `FieldsInvalid.problems` uses.
IMAGE = "image"
MEMBER = "member"
DURATION = "duration"
REASON = "reason"


@dataclass(frozen=True)
class ShareFields:
    """What a submitted form says, as plain strings (empty when a field was left out)."""

    image: str
    member: str
    reason: str = ""
    duration: str = ""


@dataclass(frozen=True)
class FormShare:
    """A form's share, read: the command it amounts to, and the duration it will get
    (None: until removed)."""

    share: commands.Share
    duration: Duration | None


def read_share(fields: ShareFields, durations: ShareDurations) -> FormShare:
    """The share the fields ask for, as `/share-image <image> <member> --for <duration>
    [reason]` would be (without `--for` for "until removed"), within the duration
    settings.

    Raises `FieldsInvalid` holding every field's problem (a `CommandError` each).
    """
    problems: dict[str, CommandError] = {}
    image = _field(problems, IMAGE, fields.image, commands.image_id)
    member = _field(problems, MEMBER, fields.member, commands.member_id)
    # As typed after the ids: the same length and character rules (a TAB is refused).
    reason = _field(
        problems, REASON, fields.reason, lambda text: commands.reason(commands.typed(text))
    )
    asked: Duration | None = None
    duration: Duration | None = None
    try:
        if not fields.duration.strip():
            raise CommandError("form_missing")
        # "Until removed" is the absence of `--for`, as typed: the same default and cap.
        asked = parse_choice(fields.duration)
        duration = durations.grant(asked).duration
    except CommandError as error:
        problems[DURATION] = error
    if problems:
        raise FieldsInvalid(problems)
    return FormShare(commands.Share(image, member, reason, duration=asked), duration)


def choices(durations: ShareDurations) -> list[Duration | None]:
    """The durations the form offers: those the settings allow, and "until removed" (None)
    only when a share asked without a duration really lasts until removed (no default,
    no maximum), as a command without `--for` would."""
    offered = [c for c in durations.choices() if c is not None or durations.default is None]
    return offered or [durations.default]


def _field(
    problems: dict[str, CommandError],
    name: str,
    value: str,
    read: Callable[[str], str],
) -> str:
    if name in (IMAGE, MEMBER) and not value.strip():
        problems[name] = CommandError("form_missing")
        return ""
    try:
        return read(value)
    except CommandError as error:
        problems[name] = error
        return ""
