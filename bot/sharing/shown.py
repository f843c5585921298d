"""How a refused token is quoted back: short, and with every odd character named.

A character that is not printable, or is a space of any kind, would show as nothing or as
a blank; it is written out instead, where it stands: `ab[U+200B ZERO WIDTH SPACE]cd`, or
`ab[U+200B]cd` when the message names it already.
"""

from __future__ import annotations

import unicodedata

# At most this many characters of a token are quoted back.
LONGEST = 40
# The names Unicode gives control characters only as aliases (`unicodedata.name` has none).
CONTROL_NAMES = {
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\r": "CARRIAGE RETURN",
    "\x1c": "INFORMATION SEPARATOR FOUR",
    "\x1d": "INFORMATION SEPARATOR THREE",
    "\x1e": "INFORMATION SEPARATOR TWO",
    "\x1f": "INFORMATION SEPARATOR ONE",
    "\x85": "NEXT LINE",
}


# Where Python puts a byte of a command line that is not UTF-8 (`surrogateescape`):
# U+DC80 to U+DCFF stand for the bytes 0x80 to 0xFF.
ESCAPED_BYTES = range(0xDC80, 0xDD00)


def character_name(ch: str) -> str:
    """A character as Unicode names it: `U+00A0 NO-BREAK SPACE`; a byte that was not
    UTF-8 as that byte: `byte 0xFF (not UTF-8)`."""
    if ord(ch) in ESCAPED_BYTES:
        return f"byte 0x{ord(ch) - 0xDC00:02X} (not UTF-8)"
    name = unicodedata.name(ch, "") or CONTROL_NAMES.get(ch, "CONTROL CHARACTER")
    return f"U+{ord(ch):04X} {name}"


def odd(ch: str) -> bool:
    """Whether `ch` would not show as itself: not printable, or a space of any kind."""
    return not ch.isprintable() or ch.isspace()


def shown(token: str, *, short: bool = False) -> str:
    """`token` as a message may quote it: its first `LONGEST` characters, each odd one
    named (`short`: by its code point only, for a message that names it in full)."""

    def one(ch: str) -> str:
        if not odd(ch):
            return ch
        if ord(ch) in ESCAPED_BYTES:
            return f"[0x{ord(ch) - 0xDC00:02X}]" if short else f"[{character_name(ch)}]"
        return f"[U+{ord(ch):04X}]" if short else f"[{character_name(ch)}]"

    quoted = "".join(one(ch) for ch in token[:LONGEST])
    return quoted if len(token) <= LONGEST else quoted + "…"
