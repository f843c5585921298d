"""Everything users read, looked up by key in one catalog per language, and the one place
errors become words.

The catalogs are `catalogs/<language>.toml` beside this file: a translator edits those,
never this code; a new language is one more file. `say(language, key, **values)`
renders a message; values that came from users are escaped here (`escape`, `code`), so
no reason or id can mention, link or format.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.sharing.errors import CommandError
from bot.sharing.values import unstamp

CATALOGS = Path(__file__).with_name("catalogs")
FALLBACK = "en"


@dataclass(frozen=True)
class Catalog:
    """One language's texts: `texts` by key, a request state's words, a failure's words,
    and `cli`: what the command line says where it says it otherwise (plain text, its own
    command syntax)."""

    language: str
    name: str
    texts: dict[str, str]
    states: dict[str, str]
    failures: dict[str, str]
    cli: dict[str, str] = field(default_factory=dict)

    def placeholders(self) -> dict[str, set[str]]:
        """Each key's `{placeholder}` names, for the parity check."""
        found: dict[str, set[str]] = {}
        for section, entries in (
            ("", self.texts),
            ("states.", self.states),
            ("failures.", self.failures),
            ("cli.", self.cli),
        ):
            for key, text in entries.items():
                found[section + key] = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return found


@cache
def catalogs() -> dict[str, Catalog]:
    """Every language the bot speaks, read once from its catalog file."""
    found = {}
    for path in sorted(CATALOGS.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        found[path.stem] = Catalog(
            language=path.stem,
            name=data["language"]["name"],
            texts=data["texts"],
            states=data.get("states", {}),
            failures=data.get("failures", {}),
            cli=data.get("cli", {}),
        )
    return found


def catalog(language: str) -> Catalog:
    """The catalog of `language`, or English for a language the bot does not speak."""
    known = catalogs()
    return known.get(language) or known[FALLBACK]


def languages() -> tuple[str, ...]:
    """The languages there is a catalog for."""
    return tuple(catalogs())


def language_of(locale: str | None, default: str = "en") -> str:
    """`ko` for a Korean Slack locale (`ko-KR`), `en` for English, else the default."""
    if locale:
        prefix = locale.split("-")[0].split("_")[0].lower()
        if prefix in catalogs():
            return prefix
    return default


def escape(text: str) -> str:
    """User text made inert for Slack mrkdwn: no mentions, links or channel pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """User text shown as inline code (backticks inside cannot close it)."""
    flat = " ".join(text.split())  # a newline would end the code span
    return "`" + escape(flat).replace("`", "'") + "`"


def say(language: str, key: str, **values: object) -> str:
    """The message `key` in `language` (English where the language has no such key)."""
    texts = catalog(language).texts
    template = texts.get(key) or catalog(FALLBACK).texts[key]
    return template.format(**values)


# Slack's markup in a template, for the command line: a mention of a placeholder and code.
_MENTION = re.compile(r"<@(\{\w+\})>")


def plain(template: str) -> str:
    """A Slack template as plain text: `<@{user}>` is `{user}`, code loses its backticks."""
    return _MENTION.sub(r"\1", template).replace("`", "")


def cli_say(language: str, key: str, **values: object) -> str:
    """What the command line says: the catalog's `[cli]` entry for `key`, else the Slack
    text made `plain`; values as they are (a terminal shows no markup)."""
    for chosen in (catalog(language), catalog(FALLBACK)):
        if key in chosen.cli:
            return chosen.cli[key].format(**values)
    texts = catalog(language).texts
    return plain(texts.get(key) or catalog(FALLBACK).texts[key]).format(**values)


def cli_problem(language: str, error: CommandError) -> str:
    """A refused command line, in one line; the offending text quoted."""
    values = {k: f"'{v}'" if k in {"token", "extra"} else v for k, v in error.values.items()}
    return cli_say(language, error.problem, **values)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """The one way every message shows a time: in BOT_TIMEZONE, named,
    `2026-12-07 17:35 UTC` or `2026-12-08 02:35 Asia/Seoul`. A naive moment is UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


def when(moment: datetime, zone: ZoneInfo) -> str:
    """A time someone typed, in BOT_TIMEZONE (`2026-12-01 09:00 Asia/Seoul`), and in the
    offset it was given when that differs (`(2026-12-01T01:00+01:00)`)."""
    shown = local_time(moment, zone)
    if moment.tzinfo is not None and moment.utcoffset() != moment.astimezone(zone).utcoffset():
        shown += f" ({moment.isoformat(timespec='minutes')})"
    return shown


def stored_when(text: str, zone: ZoneInfo) -> str:
    """A stored UTC timestamp shown in BOT_TIMEZONE."""
    return local_time(unstamp(text), zone)


def usage(language: str) -> str:
    """The usage text."""
    return say(language, "usage")


def state_word(language: str, state: str) -> str:
    """A request state in words."""
    return catalog(language).states.get(state) or catalog(FALLBACK).states.get(state, state)


def member_status_words(language: str, status: str) -> str:
    """A member's status and what it means (every member has access; the status says only
    whether the image shows in its own list); a status the bot does not know, as it came."""
    if status in {"pending", "accepted", "rejected"}:
        return say(language, f"member_status_{status}")
    return escape(status)


def failure_word(language: str, kind: str | None) -> str:
    """A failure in a few words, for the parent message and the notify line."""
    failures = catalog(language).failures
    return failures.get(kind or "") or failures["unexpected"]


def mentions(user_ids: list[str]) -> str:
    """`<@U1>, <@U2>`."""
    return ", ".join(f"<@{user}>" for user in user_ids)


def problem(language: str, error: CommandError) -> str:
    """What is wrong with a command or a form field, in one sentence."""
    values = {k: code(v) if k in {"token", "extra"} else v for k, v in error.values.items()}
    return say(language, error.problem, **values)


def command_problem(language: str, error: CommandError) -> str:
    """A bad command, explained, followed by the usage."""
    return problem(language, error) + "\n\n" + usage(language)


def outcome_error(
    language: str,
    kind: str,
    *,
    image: str,
    member: str,
    admins: str,
    request_id: str | None = None,
    detail: str | None = None,
    member_status: str | None = None,
) -> str:
    """The friendly words for a failed share; the one place error kinds become text."""
    key = f"error_{kind}" if f"error_{kind}" in catalog(FALLBACK).texts else "error_unexpected"
    status = f" ({member_status_words(language, member_status)})" if member_status else ""
    shown_detail = f": {escape(detail)}" if detail and kind == "member_refused" else ""
    text = say(
        language,
        key,
        image=image,
        member=member,
        admins=admins,
        status=status,
        detail=shown_detail,
        image_status=code(detail) if detail and kind == "image_not_active" else "?",
    )
    if request_id:
        text += "\n" + say(language, "request_id", request_id=escape(request_id))
    return text
