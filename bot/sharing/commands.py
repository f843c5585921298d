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
    /share-image admin policy <image_id> approvals 1|2

Nothing that fails these rules gets any further: ids reach the cloud API and its
URLs only once they match the API's own patterns, ASCII only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from bot.sharing.durations import Duration, parse_duration
from bot.sharing.errors import CommandError
from storage.grants import Role

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


@dataclass(frozen=True)
class Admin:
    """An admin command: `what` is e.g. `grant`, `member add`, `oncall list`."""

    what: str
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


def _shown(token: str) -> str:
    """A token as it may be quoted back: printable, short."""
    visible = "".join(ch if ch.isprintable() and not ch.isspace() else "�" for ch in token)
    return visible if len(visible) <= 40 else visible[:40] + "…"


def image_id(token: str) -> str:
    """A valid image id (UUID, case folded to lower) or CommandError."""
    lowered = token.lower() if token.isascii() else token
    if IMAGE_ID.fullmatch(lowered):
        return lowered
    if not token.isascii():
        raise CommandError("image_id_not_ascii", token=_shown(token))
    raise CommandError("image_id_invalid", token=_shown(token))


def member_id(token: str) -> str:
    """A valid member id or CommandError."""
    if MEMBER_ID.fullmatch(token):
        return token
    if not token.isascii():
        raise CommandError("member_id_not_ascii", token=_shown(token))
    if len(token) > 64:
        raise CommandError("member_id_too_long", token=_shown(token))
    raise CommandError("member_id_invalid", token=_shown(token))


def reason(words: list[str]) -> str:
    """The free-text reason: printable, one line, at most MAX_REASON characters."""
    text = " ".join(words)
    if len(text) > MAX_REASON:
        raise CommandError("reason_too_long", limit=str(MAX_REASON))
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text):
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
        raise CommandError("user_bare", token=_shown(token))
    raise CommandError("user_invalid", token=_shown(token))


def user_id(token: str) -> str:
    """A Slack user id as the command line takes it: `U012AB3CD` (a mention also does)."""
    if USER_ID.fullmatch(token):
        return token
    match = MENTION.fullmatch(token)
    if match:
        return match.group(1)
    raise CommandError("user_id_invalid", token=_shown(token))


def name(text: str) -> str:
    """A known member's name: one line of visible text, at most MAX_NAME characters."""
    if len(text) > MAX_NAME:
        raise CommandError("name_too_long", limit=str(MAX_NAME))
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text):
        raise CommandError("name_invisible")
    return text


def role(token: str) -> Role:
    """One of the four roles."""
    try:
        return Role(token.lower())
    except ValueError:
        raise CommandError("role_invalid", token=_shown(token)) from None


def moment(token: str, zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 time; in `zone` (BOT_TIMEZONE) when no offset is given."""
    try:
        parsed = datetime.fromisoformat(token)
    except ValueError:
        raise CommandError("time_invalid", token=_shown(token)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def schedule_id(token: str) -> str:
    """A PagerDuty schedule id (`P1ABCDE`), "" for `none`, or CommandError."""
    if token.lower() in {"none", "-"}:
        return ""
    if SCHEDULE_ID.fullmatch(token):
        return token
    raise CommandError("schedule_id_invalid", token=_shown(token))


def shift_id(token: str) -> int | None:
    """A shift id (`12` or `#12`) as `oncall list` shows it; None for anything else."""
    digits = token.removeprefix("#")
    if digits.isascii() and digits.isdigit() and 0 < len(digits) <= 18 and int(digits) > 0:
        return int(digits)
    return None


def _split(text: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise CommandError("too_long", limit=str(MAX_TEXT))
    # str.split() also splits on no-break and other Unicode spaces; zero-width
    # characters are not spaces, so they stay inside a token and fail its check.
    return text.split()


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
            raise CommandError("extra_arguments", extra=_shown(" ".join(words[2:])))
        return ListMembers(image_id(words[1]))
    if verb == "unshare":
        _need(words, 3, "unshare <image_id> <member_id> [reason]")
        return Share(image_id(words[1]), member_id(words[2]), reason(words[3:]), unshare=True)
    if verb == "admin":
        return _admin(words[1:], zone)
    if len(words) < 2:
        # One word: either an image id without a member, or an unknown verb.
        if IMAGE_ID.fullmatch(words[0].lower()):
            raise CommandError("member_missing")
        raise CommandError("unknown_command", token=_shown(words[0]))
    duration, rest = _duration(words[2:])
    return Share(image_id(words[0]), member_id(words[1]), reason(rest), duration=duration)


def _duration(words: list[str]) -> tuple[Duration | None, list[str]]:
    """`--for 7d` or `--for=7d` right after the member id, and the words after it."""
    if not words or not words[0].lower().startswith("--for"):
        return None, words
    flag, equals, value = words[0].partition("=")
    if flag.lower() != "--for":
        return None, words  # `--format` and the like are words of the reason
    if equals and not value:
        raise CommandError("duration_missing")
    if not equals:
        if len(words) < 2:
            raise CommandError("duration_missing")
        return parse_duration(words[1]), words[2:]
    return parse_duration(value), words[1:]


def _admin(words: list[str], zone: tzinfo) -> Admin:
    if not words:
        raise CommandError("admin_usage")
    verb = words[0].lower()
    if verb == "grants":
        return Admin("grants")
    if verb in {"grant", "revoke"}:
        _need(words, 3, f"admin {verb} <@user> <role> [image_id]")
        scope = image_id(words[3]) if len(words) > 3 else ""
        return Admin(verb, user_id=slack_user(words[1]), role=role(words[2]), image_id=scope)
    if verb == "member":
        sub = words[1].lower() if len(words) > 1 else ""
        if sub == "list":
            return Admin("member list")
        if sub == "add":
            _need(words, 4, "admin member add <member_id> <name>")
            return Admin(
                "member add", member_id=member_id(words[2]), name=name(" ".join(words[3:]))
            )
        if sub == "remove":
            _need(words, 3, "admin member remove <member_id>")
            return Admin("member remove", member_id=member_id(words[2]))
        raise CommandError("admin_usage")
    if verb == "oncall":
        sub = words[1].lower() if len(words) > 1 else ""
        if sub == "list":
            extra = [w.lower() for w in words[2:]]
            if extra and extra != ["all"] and extra != ["--all"]:
                raise CommandError("extra_arguments", extra=_shown(" ".join(words[2:])))
            return Admin("oncall list", past=bool(extra))
        if sub == "add":
            _need(words, 5, "admin oncall add <@user> <from> <to>")
            starts, ends = moment(words[3], zone), moment(words[4], zone)
            if ends <= starts:
                raise CommandError("window_backwards")
            return Admin("oncall add", user_id=slack_user(words[2]), starts=starts, ends=ends)
        if sub == "schedule":
            _need(words, 4, "admin oncall schedule <image_id> <PagerDuty schedule id | none>")
            if len(words) > 4:
                raise CommandError("extra_arguments", extra=_shown(" ".join(words[4:])))
            return Admin(
                "oncall schedule", image_id=image_id(words[2]), schedule_id=schedule_id(words[3])
            )
        if sub == "remove":
            _need(words, 3, "admin oncall remove <shift id> | <@user> --all")
            number = shift_id(words[2])
            if number is not None:
                if len(words) > 3:
                    raise CommandError("extra_arguments", extra=_shown(" ".join(words[3:])))
                return Admin("oncall remove", shift_id=number)
            user = slack_user(words[2])
            if [w.lower() for w in words[3:]] not in (["--all"], ["all"]):
                raise CommandError("oncall_remove_which", user=user)
            return Admin("oncall remove", user_id=user)
        raise CommandError("admin_usage")
    if verb == "policy":
        image, approvals = policy(words[1:])
        return Admin("policy", image_id=image, approvals=approvals)
    raise CommandError("admin_usage")


def policy(words: list[str]) -> tuple[str, int]:
    """`<image_id> approvals 1|2`: an image and how many approvals its shares need."""
    if len(words) != 3 or words[1].lower() != "approvals":
        raise CommandError("policy_usage")
    count = words[2]
    if count not in {"1", "2"}:
        raise CommandError("policy_usage")
    return image_id(words[0]), int(count)
