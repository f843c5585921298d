"""Reading `/share-image` text into a command, with a precise complaint for anything else.

    /share-image                                      the share form
    /share-image <image_id> <member_id> [--for <duration>] [reason…]     share
    /share-image unshare <image_id> <member_id> [reason…]
    /share-image list <image_id>
    /share-image status
    /share-image help
    /share-image admin grant|revoke <@user> <role> [image_id]
    /share-image admin grants
    /share-image admin member add <member_id> <name…> | remove <member_id> | list
    /share-image admin oncall add <@user> <from> <to> | remove <shift id> | remove <@user> --all
    /share-image admin oncall list [all]
    /share-image admin oncall schedule <image_id> <PagerDuty schedule id | none>
    /share-image admin policy <image_id> approvals 1|2 | list

The command line's admin commands (`python -m bot grant …`) build the same `Admin`
commands through the same functions (`role_change`, `member_add`, …), so a rule or a
refusal is written once for both.

Nothing that fails these rules gets any further: ids reach the cloud API and its
URLs only once they match the API's own patterns, ASCII only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from bot.sharing.durations import Duration, parse_duration
from bot.sharing.errors import CommandError
from bot.sharing.shown import character_name, odd, shown
from bot.sharing.values import Role

IMAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
MEMBER_ID = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)
# PagerDuty's object ids: letters and digits (`P1ABCDE`).
SCHEDULE_ID = re.compile(r"[A-Za-z0-9]{1,32}", re.ASCII)
USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}", re.ASCII)
# What Slack sends for a mention the client resolved (`should_escape`): `<@U123|jane>`.
MENTION = re.compile(r"<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>", re.ASCII)
MAX_TEXT = 1000
MAX_REASON = 300
MAX_NAME = 80
# The longest on-call shift one command may add; a longer rota is PagerDuty's or a calendar's.
MAX_SHIFT = timedelta(days=31)
# What separates the words of a command: the space a keyboard types, and the tabs and
# line breaks a paste may bring. No other space does (no-break, em, ideographic, line
# separator…): it stays inside its word, and an id holding one is refused, naming it,
# rather than split into a shorter id and a reason.
SEPARATORS = " \t\r\n"
_WORD = re.compile(f"[^{re.escape(SEPARATORS)}]+")
_SPACES = re.compile(" {2,}")
ZWJ = "\u200d"
# What may stand between an emoji and the zero-width joiner after it: the emoji
# presentation selector and the skin tones (👩🏽‍💻, ❤️‍🔥).
EMOJI_MODIFIERS = "\ufe0f" + "".join(chr(c) for c in range(0x1F3FB, 0x1F400))
# Text that is not one line of visible characters: controls (TAB included), format
# characters (zero-width, bidi), the line and paragraph separators, and lone surrogates
# (a byte that was not UTF-8 on a command line, or a `\udcff` escape in JSON), which no
# text can be stored or sent as.
INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@dataclass(frozen=True)
class Share:
    """Share (or unshare) an image with a member."""

    image_id: str
    member_id: str
    reason: str
    unshare: bool = False
    # How long the share lasts, as asked (`--for 7d`); None: not said.
    duration: Duration | None = None

    @property
    def action(self) -> str:
        """`share` or `unshare`, as stored."""
        return "unshare" if self.unshare else "share"


@dataclass(frozen=True)
class ListMembers:
    """List an image's members."""

    image_id: str


@dataclass(frozen=True)
class Status:
    """The caller's recent requests."""


@dataclass(frozen=True)
class Help:
    """Usage."""


@dataclass(frozen=True)
class Form:
    """Nothing typed: open the share form."""


class AdminAction(StrEnum):
    """What an admin command does; the words are Slack's (`admin member add`) and the
    audit log's."""

    GRANT = "grant"
    REVOKE = "revoke"
    GRANTS = "grants"
    MEMBER_ADD = "member add"
    MEMBER_REMOVE = "member remove"
    MEMBER_LIST = "member list"
    ONCALL_ADD = "oncall add"
    ONCALL_REMOVE = "oncall remove"
    ONCALL_LIST = "oncall list"
    ONCALL_SCHEDULE = "oncall schedule"
    POLICY = "policy"
    POLICY_LIST = "policy list"


@dataclass(frozen=True)
class Admin:
    """An admin command: `what` it does, and the values it does it with."""

    what: AdminAction
    user_id: str = ""
    role: Role | None = None
    image_id: str = ""
    member_id: str = ""
    name: str = ""
    starts: datetime | None = None
    ends: datetime | None = None
    # `oncall list all` (or `--all`): past shifts too, not only current and coming ones.
    past: bool = False
    # `oncall remove <shift id>`; 0 with a user_id: every shift of that user (`--all`).
    shift_id: int = 0
    # `oncall schedule <image_id> <schedule id>`; "" for `none`: the image's own is cleared.
    schedule_id: str = ""
    # `policy <image_id> approvals <n>`: how many approvals the image's shares need.
    approvals: int = 0


Command = Share | ListMembers | Status | Help | Form | Admin


def _not_ascii(problem: str, token: str) -> CommandError:
    """`problem` for an id holding a character it cannot have, naming the first one."""
    first = next(ch for ch in token if odd(ch) or not ch.isascii())
    return CommandError(problem, token=shown(token, short=True), character=character_name(first))


def _spaced(token: str, problem: str) -> None:
    """CommandError `problem` naming the first space inside `token`, if it has one."""
    space = next((ch for ch in token if ch.isspace()), None)
    if space is not None:
        raise CommandError(problem, token=shown(token, short=True), character=character_name(space))


def image_id(token: str) -> str:
    """A valid image id (UUID, case folded to lower) or CommandError."""
    _spaced(token, "image_id_space")
    lowered = token.lower() if token.isascii() else token
    if IMAGE_ID.fullmatch(lowered):
        return lowered
    if not token.isascii():
        raise _not_ascii("image_id_not_ascii", token)
    raise CommandError("image_id_invalid", token=shown(token))


def member_id(token: str) -> str:
    """A valid member id or CommandError."""
    _spaced(token, "member_id_space")
    if MEMBER_ID.fullmatch(token):
        return token
    if not token.isascii():
        raise _not_ascii("member_id_not_ascii", token)
    if len(token) > 64:
        raise CommandError("member_id_too_long", token=shown(token))
    raise CommandError("member_id_invalid", token=shown(token))


def invisible(text: str) -> bool:
    """Whether `text` is more than one line of visible characters: it holds a control
    character (TAB too), a format character (zero-width, bidi) or a line separator.

    A zero-width joiner between two emoji is part of the emoji (👨‍👩‍👧, ❤️‍🔥), not hidden.
    """
    for at, ch in enumerate(text):
        if unicodedata.category(ch) not in INVISIBLE:
            continue
        if ch == ZWJ and _joins_emoji(text, at):
            continue
        return True
    return False


def _joins_emoji(text: str, at: int) -> bool:
    before = text[:at].rstrip(EMOJI_MODIFIERS)
    after = text[at + 1 :]
    return (
        bool(before)
        and bool(after)
        and unicodedata.category(before[-1]) == "So"
        and unicodedata.category(after[0]) == "So"
    )


def typed(text: str) -> str:
    """Free text (a reason, a name) as it is kept: trimmed of spaces of any kind, runs
    of spaces inside made one."""
    return _SPACES.sub(" ", text.strip())


def reason(words: list[str] | str) -> str:
    """The free-text reason: printable, one line, at most MAX_REASON characters.

    Given as typed (a string), it is taken as it is; given as words, they are joined
    by spaces.
    """
    text = words if isinstance(words, str) else " ".join(words)
    if len(text) > MAX_REASON:
        raise CommandError("reason_too_long", limit=str(MAX_REASON))
    if invisible(text):
        raise CommandError("reason_invisible")
    return text


def slack_user(token: str) -> str:
    """The user id of a mention Slack resolved (`<@U123|name>`); a bare word is refused.

    Only a mention names someone Slack knows: a typed `U0LOWER` or `USLACKBOT` is a word.
    """
    match = MENTION.fullmatch(token)
    if match:
        return match.group(1)
    if USER_ID.fullmatch(token):
        raise CommandError("user_bare", token=shown(token))
    raise CommandError("user_invalid", token=shown(token))


def user_id(token: str) -> str:
    """A Slack user id as the command line takes it: `U012AB3CD` (a mention also does)."""
    if USER_ID.fullmatch(token):
        return token
    match = MENTION.fullmatch(token)
    if match:
        return match.group(1)
    raise CommandError("user_id_invalid", token=shown(token))


def name(text: str) -> str:
    """A known member's name: one line of visible text, at most MAX_NAME characters."""
    if len(text) > MAX_NAME:
        raise CommandError("name_too_long", limit=str(MAX_NAME))
    if invisible(text):
        raise CommandError("name_invisible")
    return text


def role(token: str) -> Role:
    """One of the four roles."""
    try:
        return Role(token.lower())
    except ValueError:
        raise CommandError("role_invalid", token=shown(token)) from None


def moment(token: str, zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 time; in `zone` (BOT_TIMEZONE) when no offset is given."""
    try:
        parsed = datetime.fromisoformat(token)
    except ValueError:
        raise CommandError("time_invalid", token=shown(token)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def shift_window(starts: datetime, ends: datetime, now: datetime | None = None) -> None:
    """The rules of an on-call shift, wherever it is typed: it ends after it starts, lasts
    at most `MAX_SHIFT` and (given `now`) is not over already; CommandError otherwise."""
    if ends <= starts:
        raise CommandError("window_backwards")
    if ends - starts > MAX_SHIFT:
        raise CommandError("shift_too_long", days=str(MAX_SHIFT.days))
    if now is not None and ends <= now:
        raise CommandError("shift_ended")


def schedule_id(token: str) -> str:
    """A PagerDuty schedule id (`P1ABCDE`), "" for `none`, or CommandError."""
    if token.lower() in {"none", "-"}:
        return ""
    if SCHEDULE_ID.fullmatch(token):
        return token
    raise CommandError("schedule_id_invalid", token=shown(token))


def shift_id(token: str) -> int | None:
    """A shift id (`12` or `#12`) as `oncall list` shows it; None for anything else."""
    digits = token.removeprefix("#")
    if digits.isascii() and digits.isdigit() and 0 < len(digits) <= 18 and int(digits) > 0:
        return int(digits)
    return None


class Words(list[str]):
    """A command's words, each remembering where it starts in the text, so that the
    free text after the ids (a reason, a name) is read as it was typed."""

    def __init__(self, text: str) -> None:
        found = list(_WORD.finditer(text))
        super().__init__(match.group() for match in found)
        self._text = text
        self._starts = [match.start() for match in found]

    def rest(self, index: int) -> str:
        """Everything from word `index` on, read as a form's field is (`typed`): a TAB or
        a line break inside stays, for the text's own rules; empty past the last word."""
        return typed(self._text[self._starts[index] :]) if index < len(self) else ""


def _split(text: str) -> Words:
    if len(text) > MAX_TEXT:
        raise CommandError("too_long", limit=str(MAX_TEXT))
    # Spaces around the command are only spaces, whatever kind (a paste brings
    # no-break ones); inside it, only SEPARATORS separate.
    return Words(text.strip())


def _need(words: list[str], count: int, usage: str) -> None:
    if len(words) < count:
        raise CommandError("missing_arguments", usage=usage)


def parse(text: str, *, zone: tzinfo = UTC) -> Command:
    """Read the text typed after `/share-image`; times without an offset are in `zone`."""
    words = _split(text)
    if not words:
        return Form()
    if words[0].lower() in {"help", "-h", "--help", "?"}:
        return Help()
    verb = words[0].lower()
    if verb == "status":
        return Status()
    if verb == "list":
        _need(words, 2, "list <image_id>")
        if len(words) > 2:
            raise CommandError("extra_arguments", extra=shown(" ".join(words[2:])))
        return ListMembers(image_id(words[1]))
    if verb == "unshare":
        _need(words, 3, "unshare <image_id> <member_id> [reason]")
        if len(words) > 3 and _is_for(words[3]):
            # A removal takes effect at once: a duration would only be misread as the reason.
            raise CommandError("unshare_duration")
        return Share(image_id(words[1]), member_id(words[2]), reason(words.rest(3)), unshare=True)
    if verb == "admin":
        return _admin(Words(words.rest(1)), zone)
    if len(words) < 2:
        # One word: either an image id without a member, or an unknown verb.
        if IMAGE_ID.fullmatch(words[0].lower()):
            raise CommandError("member_missing")
        # An image id and a member id joined by a space that is not one (no-break…).
        if IMAGE_ID.fullmatch((words[0].split() or [""])[0].lower()):
            _spaced(words[0], "image_id_space")
        raise CommandError("unknown_command", token=shown(words[0]))
    duration, after = _duration(words, 2)
    image, member = image_id(words[0]), member_id(words[1])
    if duration is not None and any(_is_for(word) for word in words[after:]):
        raise CommandError("duration_twice")
    return Share(image, member, reason(words.rest(after)), duration=duration)


def _is_for(word: str) -> bool:
    """Whether `word` is the `--for` flag (`--for`, `--for=…`), in any case."""
    return word.partition("=")[0].lower() == "--for"


def _duration(words: list[str], at: int) -> tuple[Duration | None, int]:
    """`--for 7d` or `--for=7d` at word `at` (right after the member id), and the index
    of the word after it."""
    if at >= len(words) or not _is_for(words[at]):
        return None, at  # `--format` and the like are words of the reason
    _, equals, value = words[at].partition("=")
    if equals and not value:
        raise CommandError("duration_missing")
    if not equals:
        if at + 1 >= len(words):
            raise CommandError("duration_missing")
        return parse_duration(words[at + 1]), at + 2
    return parse_duration(value), at + 1


def _admin(words: Words, zone: tzinfo) -> Admin:
    if not words:
        raise CommandError("admin_usage")
    verb = words[0].lower()
    sub = words[1].lower() if len(words) > 1 else ""
    if verb == "grants":
        return Admin(AdminAction.GRANTS)
    if verb in {"grant", "revoke"}:
        _need(words, 3, f"admin {verb} <@user> <role> [image_id]")
        scope = words[3] if len(words) > 3 else None
        return role_change(verb, words[1], words[2], scope, person=slack_user)
    if verb == "member":
        if sub == "list":
            return Admin(AdminAction.MEMBER_LIST)
        if sub == "add":
            _need(words, 4, "admin member add <member_id> <name>")
            return member_add(words[2], words.rest(3))
        if sub == "remove":
            _need(words, 3, "admin member remove <member_id>")
            return member_remove(words[2])
        raise CommandError("admin_usage")
    if verb == "oncall":
        if sub == "list":
            return shift_listing(words[2:])
        if sub == "add":
            _need(words, 5, "admin oncall add <@user> <from> <to>")
            return shift_add(words[2], words[3], words[4], zone=zone, person=slack_user)
        if sub == "schedule":
            _need(words, 4, "admin oncall schedule <image_id> <PagerDuty schedule id | none>")
            if len(words) > 4:
                raise CommandError("extra_arguments", extra=shown(" ".join(words[4:])))
            return schedule_change(words[2], words[3])
        if sub == "remove":
            _need(words, 3, "admin oncall remove <shift id> | <@user> --all")
            return shift_removal(words[2], words[3:], person=slack_user)
        raise CommandError("admin_usage")
    if verb == "policy":
        return approvals_change(words[1:])
    raise CommandError("admin_usage")


# -- the admin commands, built from their values -------------------------------------------
# Slack's `admin …` words and the command line's arguments become the same `Admin` through
# these: the same rules and the same refusals, wherever a command is typed. `person` reads
# a user as that surface names one: a Slack mention (`slack_user`) or an id (`user_id`).


def role_change(
    verb: str, user: str, role_name: str, scope: str | None, *, person: Callable[[str], str]
) -> Admin:
    """`grant` or `revoke` a role, for all images (`scope` None) or one."""
    action = AdminAction(verb)
    assert action in {AdminAction.GRANT, AdminAction.REVOKE}, verb
    who = person(user)
    given = role(role_name)
    if scope is not None and not scope.strip():
        raise CommandError("image_scope_empty")
    image = image_id(scope) if scope is not None else ""
    return Admin(action, user_id=who, role=given, image_id=image)


def member_add(member: str, text: str) -> Admin:
    """`member add`: a known member and its name (`typed`: trimmed, runs of spaces one)."""
    checked = member_id(member)
    given = typed(text)
    if not given:
        raise CommandError("name_missing")
    return Admin(AdminAction.MEMBER_ADD, member_id=checked, name=name(given))


def member_remove(member: str) -> Admin:
    """`member remove`: forget a known member."""
    return Admin(AdminAction.MEMBER_REMOVE, member_id=member_id(member))


def shift_listing(extra: Sequence[str]) -> Admin:
    """`oncall list`, and `all` (or `--all`) for past shifts too."""
    said = [word.lower() for word in extra]
    if said and said != ["all"] and said != ["--all"]:
        raise CommandError("oncall_list_extra", extra=shown(" ".join(extra)))
    return Admin(AdminAction.ONCALL_LIST, past=bool(said))


def shift_add(
    user: str,
    starts: str,
    ends: str,
    *,
    zone: tzinfo,
    person: Callable[[str], str],
    now: datetime | None = None,
) -> Admin:
    """`oncall add`: a shift, by `shift_window`'s rules (`now` given: not over already)."""
    who = person(user)
    begins, finishes = moment(starts, zone), moment(ends, zone)
    shift_window(begins, finishes, now)
    return Admin(AdminAction.ONCALL_ADD, user_id=who, starts=begins, ends=finishes)


def shift_removal(target: str, rest: Sequence[str], *, person: Callable[[str], str]) -> Admin:
    """`oncall remove <shift id>`, or `oncall remove <user> --all` (`rest`: what follows)."""
    said = [word.lower() for word in rest]
    number = shift_id(target)
    if number is not None:
        if said in (["--all"], ["all"]):
            raise CommandError("oncall_all_with_id", id=str(number))
        if rest:
            raise CommandError("extra_arguments", extra=shown(" ".join(rest)))
        return Admin(AdminAction.ONCALL_REMOVE, shift_id=number)
    user = person(target)
    if said not in (["--all"], ["all"]):
        raise CommandError("oncall_remove_which", user=user)
    return Admin(AdminAction.ONCALL_REMOVE, user_id=user)


def schedule_change(image: str, schedule: str) -> Admin:
    """`oncall schedule <image_id> <schedule id | none>`."""
    return Admin(
        AdminAction.ONCALL_SCHEDULE, image_id=image_id(image), schedule_id=schedule_id(schedule)
    )


def approvals_change(words: Sequence[str]) -> Admin:
    """`policy <image_id> approvals 1|2`, or `policy list`."""
    if words and words[0].lower() == "list":
        if len(words) > 1:
            raise CommandError("policy_list_extra", extra=shown(" ".join(words[1:])))
        return Admin(AdminAction.POLICY_LIST)
    image, approvals = policy(list(words))
    return Admin(AdminAction.POLICY, image_id=image, approvals=approvals)


def policy(words: list[str]) -> tuple[str, int]:
    """`<image_id> approvals 1|2`: an image and how many approvals its shares need."""
    if len(words) != 3 or words[1].lower() != "approvals":
        raise CommandError("policy_usage")
    count = words[2]
    if count not in {"1", "2"}:
        raise CommandError("policy_usage")
    return image_id(words[0]), int(count)
