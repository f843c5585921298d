"""Block Kit for everything the bot posts: parent messages, cards, the modal, the Home tab,
and the long lists (members, grants, on-call).

Blocks are built with `slack_sdk.models`, whose `to_dict()` checks many of Slack's
limits; what it does not check (a context element's length, how many blocks a message
holds) is kept here. Everything returned is a plain dict, ready to send as JSON.

Long content stays within Slack's limits by design, never by luck:

* a list is packed into sections of whole lines, each under `SECTION_TEXT_MAX`;
* it shows at most a useful number of entries and then says how many were left out
  and where the rest can be seen;
* every message's `text` fallback stays under `TEXT_AIM` (Slack takes 40,000, but a
  notification or screen reader gains nothing from more).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.scp.models import ImageMember
from bot.sharing.admin import Outcome
from bot.sharing.commands import MAX_REASON
from bot.slack.texts import (
    code,
    escape,
    failure_word,
    mentions,
    say,
    state_word,
    stored_when,
    when,
)
from storage import Grant, KnownMember, OnCallShift, ShareRequest
from storage.requests import parse_stamp

UTC_ZONE = ZoneInfo("UTC")

BlockDict = dict[str, Any]

APPROVE = "approve"
DENY = "deny"
DENY_MODAL = "deny_reason"
DENY_REASON_BLOCK = "reason"
DENY_REASON_INPUT = "reason_input"

# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
SECTION_TEXT_MAX = 3000
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
TEXT_MAX = 40_000
TEXT_AIM = 4_000  # what a message's top-level text is kept under
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
MODAL_TEXT_MAX = 24  # a modal's title, submit and close

# How much of a long list is shown. A card mentions a handful of people: more would be a
# wall of pings nobody reads, and the rest can decide from the card all the same.
PEOPLE_SHOWN = 5
# A list message shows at most this many entries (a few screens): beyond that a list in
# Slack is a wall nobody reads; the message says how many there are and where the whole
# list is (the CLI on the bot's host, or the approval channel).
LIST_SHOWN = 100
HOME_MINE_SHOWN = 10  # as many as `/share-image status` shows
HOME_WAITING_SHOWN = 50


# -- small pieces ----------------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, limit))


def _plain(text: str, limit: int) -> PlainTextObject:
    # emoji=False: user text is shown as typed, no :shortcode: becomes a picture.
    return PlainTextObject(text=clip(text, limit), emoji=False)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=_mrkdwn(text))


def _context(*texts: str) -> ContextBlock:
    return ContextBlock(
        elements=[_mrkdwn(t, CONTEXT_TEXT_MAX) for t in texts[:CONTEXT_ELEMENTS_MAX]]
    )


def _header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=clip(text, HEADER_TEXT_MAX)))


def _plain_context(text: str) -> ContextBlock:
    # plain_text: a reason is shown as typed, never parsed for mentions, links or formatting.
    return ContextBlock(elements=[_plain(text, CONTEXT_TEXT_MAX)])


def _message(blocks: Sequence[Block]) -> list[BlockDict]:
    """Blocks as Slack takes them; `to_dict()` checks each one."""
    if len(blocks) > MESSAGE_BLOCKS_MAX:  # a bug here, never the user's content
        raise ValueError(f"{len(blocks)} blocks, more than a message takes")
    return [block.to_dict() for block in blocks]


def _fallback(text: str) -> str:
    return clip(text, TEXT_AIM)


def pack(lines: Sequence[str], *, max_blocks: int, limit: int = SECTION_TEXT_MAX) -> list[str]:
    """Whole lines joined into at most `max_blocks` texts of at most `limit` characters.

    Lines go in order until the blocks are full; how many made it is the sum of the
    texts' line counts (`packed_count`). A line longer than `limit` is cut.
    """
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for raw in lines:
        line = clip(raw.replace("\n", " "), limit)
        if current and size + 1 + len(line) > limit:
            texts.append("\n".join(current))
            current, size = [], 0
            if len(texts) == max_blocks:
                return texts
        size += len(line) + (1 if current else 0)
        current.append(line)
    if current and len(texts) < max_blocks:
        texts.append("\n".join(current))
    return texts


def packed_count(texts: Sequence[str]) -> int:
    """How many lines `pack` put into `texts`."""
    return sum(t.count("\n") + 1 for t in texts)


def _lines_within(header: str, lines: Sequence[str], footer: Sequence[str], limit: int) -> str:
    """The header, as many lines as fit, an ellipsis if some did not, then the footer."""
    reserved = len(header) + sum(len(f) + 1 for f in footer) + 2  # newlines and "…"
    kept: list[str] = []
    size = reserved
    for line in lines:
        size += len(line) + 1
        if size > limit:
            kept.append("…")
            break
        kept.append(line)
    return clip("\n".join([header, *kept, *footer]), limit)


# -- links and words -------------------------------------------------------------------------


def permalink(channel: str | None, ts: str | None) -> str:
    """A link to a message (Slack redirects it to the workspace)."""
    if not channel or not ts:
        return ""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def member_label(member_id: str, name: str | None) -> str:
    """`a8f1…` or `a8f1…` (QA account)."""
    return code(member_id) + (f" ({escape(name)})" if name else "")


def state_line(request: ShareRequest, language: str) -> str:
    """The parent's one-line status for the request's state."""
    if request.state == "failed":
        return say(language, "state_failed", what=failure_words(request, language))
    if request.state == "denied":
        return say(language, "state_denied", by=request.decided_by or "?")
    key = f"state_{request.state}"
    return say(language, key)


def failure_words(request: ShareRequest, language: str) -> str:
    """A short name for a failure, for the parent and notify lines."""
    return failure_word(language, request.error_kind)


def _reason_blocks(language: str, reason: str | None) -> list[Block]:
    if not reason:
        return []
    shown = clip(reason, MAX_REASON)
    return [_plain_context(f"{say(language, 'reason_label')}: {shown}")]


def people_line(language: str, people: Sequence[str], key: str, more_key: str) -> str:
    """`key` naming the first `PEOPLE_SHOWN` people, then how many more there are."""
    shown = list(people[:PEOPLE_SHOWN])
    named = mentions(shown)
    if len(people) > len(shown):
        named = say(language, more_key, people=named, count=len(people) - len(shown))
    return say(language, key, people=named)


# -- the request's messages ------------------------------------------------------------------


def parent(
    request: ShareRequest, language: str, member_name: str | None
) -> tuple[str, list[BlockDict]]:
    """The channel message a request's thread hangs off."""
    headline = say(
        language,
        "parent",
        user=request.user_id,
        verb=say(language, f"verb_{request.action}"),
        image=code(request.image_id),
        member=member_label(request.member_id, member_name),
    )
    status = state_line(request, language)
    blocks: list[Block] = [
        _section(headline),
        *_reason_blocks(language, request.reason),
        _context(status),
    ]
    return _fallback(f"{headline}: {status}"), _message(blocks)


def _card_heading(request: ShareRequest, language: str, member_name: str | None) -> tuple[str, str]:
    """A card's title and its first line: who asks what."""
    title = say(language, "card_title", id=request.id)
    intro = say(
        language,
        "card_intro",
        user=request.user_id,
        verb=say(language, f"verb_{request.action}"),
        image=code(request.image_id),
        member=member_label(request.member_id, member_name),
    )
    return title, intro


def approval_card(
    request: ShareRequest,
    language: str,
    *,
    member_name: str | None,
    why: str,
    on_call: list[str],
    approvers: list[str],
    asked: str,
    expires: str,
) -> tuple[str, list[BlockDict]]:
    """The card approvers decide on, with Approve and Deny buttons.

    Whoever is on call decides first, so only they are mentioned when there are any;
    else the approvers. Either way the first `PEOPLE_SHOWN`, then "and N more".
    """
    title, intro = _card_heading(request, language, member_name)
    if on_call:
        who = people_line(language, on_call, "card_oncall", "card_more_oncall")
    elif approvers:
        who = people_line(language, approvers, "card_approvers", "card_more_approvers")
    else:
        who = say(language, "card_nobody")
    value = str(request.id)
    facts = "\n".join(
        [
            say(language, "card_why", why=why),
            say(language, "card_when", when=asked, expires=expires),
        ]
    )
    blocks: list[Block] = [
        _header(title),
        _section(intro),
        *_reason_blocks(language, request.reason),
        # Two elements: the people line keeps its own 3,000 characters whatever `why` is.
        _context(facts, who),
        ActionsBlock(
            block_id=f"decision-{request.id}",
            elements=[
                ButtonElement(
                    action_id=APPROVE,
                    style="primary",
                    text=PlainTextObject(text=clip(say(language, "approve"), BUTTON_TEXT_MAX)),
                    value=value,
                ),
                ButtonElement(
                    action_id=DENY,
                    style="danger",
                    text=PlainTextObject(text=clip(say(language, "deny"), BUTTON_TEXT_MAX)),
                    value=value,
                ),
            ],
        ),
    ]
    return _fallback(f"{title}: {intro} {who}"), _message(blocks)


def decided_card(
    request: ShareRequest, language: str, member_name: str | None
) -> tuple[str, list[BlockDict]]:
    """The card once decided or expired: the same facts, the decision, no buttons."""
    title, intro = _card_heading(request, language, member_name)
    if request.state == "expired":
        outcome = say(language, "card_expired")
    elif request.state == "denied":
        outcome = say(language, "card_denied", by=request.decided_by)
    else:
        outcome = say(language, "card_approved", by=request.decided_by)
    blocks: list[Block] = [
        _header(title),
        _section(intro),
        *_reason_blocks(language, request.reason),
        _section(outcome),
    ]
    if request.state == "denied" and request.deny_reason:
        blocks.append(_plain_context(clip(request.deny_reason, MAX_REASON)))
    return _fallback(f"{title}: {outcome}"), _message(blocks)


# -- the deny modal --------------------------------------------------------------------------


class MalformedSubmission(ValueError):
    """A deny-modal submission whose metadata is not the bot's own (forged or broken)."""


@dataclass(frozen=True)
class DenySubmission:
    """What a submitted deny modal says: which request, from which card, and why."""

    request_id: int
    reason: str
    card_channel: str = ""
    card_ts: str = ""


class DenyModal:
    """The modal asking an approver why they deny: its ids, its view, reading it back.

    `private_metadata` carries `<request id>|<card channel>|<card ts>`; only the id is
    trusted for anything, and only once it is a plain positive number.
    """

    callback_id = DENY_MODAL
    reason_block = DENY_REASON_BLOCK
    reason_input = DENY_REASON_INPUT
    max_reason = MAX_REASON
    _REQUEST_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)

    @classmethod
    def build(
        cls, request_id: int, language: str, card_channel: str, card_ts: str
    ) -> dict[str, Any]:
        """The view for `views.open`."""
        view = View(
            type="modal",
            callback_id=cls.callback_id,
            private_metadata=f"{request_id}|{card_channel}|{card_ts}",
            title=PlainTextObject(
                text=clip(say(language, "deny_title", id=request_id), MODAL_TEXT_MAX)
            ),
            submit=PlainTextObject(text=clip(say(language, "deny_submit"), MODAL_TEXT_MAX)),
            close=PlainTextObject(text=clip(say(language, "cancel"), MODAL_TEXT_MAX)),
            blocks=[
                InputBlock(
                    block_id=cls.reason_block,
                    optional=True,
                    label=PlainTextObject(text=say(language, "deny_label")),
                    element=PlainTextInputElement(
                        # One line, as a share reason: the same rules apply to both.
                        action_id=cls.reason_input,
                        multiline=False,
                        max_length=cls.max_reason,
                    ),
                )
            ],
        )
        return view.to_dict()

    @classmethod
    def parse(cls, view: Mapping[str, Any]) -> DenySubmission:
        """The submission in a `view_submission`'s view; MalformedSubmission if forged."""
        metadata = view.get("private_metadata")
        if not isinstance(metadata, str):
            raise MalformedSubmission("no private_metadata")
        request_id, _, card = metadata.partition("|")
        if not cls._REQUEST_ID.fullmatch(request_id):
            raise MalformedSubmission("the request id is not a number")
        card_channel, _, card_ts = card.partition("|")
        return DenySubmission(
            request_id=int(request_id),
            reason=cls._reason(view),
            card_channel=card_channel,
            card_ts=card_ts,
        )

    @classmethod
    def _reason(cls, view: Mapping[str, Any]) -> str:
        """The typed reason, trimmed; empty when there is none or it is not text.

        Not cut to length: the handler holds it to the share reason's rules, length included.
        """
        found: Any = view.get("state")
        for key in ("values", cls.reason_block, cls.reason_input, "value"):
            found = found.get(key) if isinstance(found, Mapping) else None
        return found.strip() if isinstance(found, str) else ""


def deny_modal(request_id: int, language: str, card_channel: str, card_ts: str) -> dict[str, Any]:
    """The modal asking an approver why they deny."""
    return DenyModal.build(request_id, language, card_channel, card_ts)


# -- lists -----------------------------------------------------------------------------------


def request_line(request: ShareRequest, language: str) -> str:
    """One request in a list (status command, Home tab)."""
    return say(
        language,
        "status_item",
        id=request.id,
        verb=say(language, f"verb_{request.action}"),
        image=code(request.image_id),
        member=code(request.member_id),
        state=state_word(language, request.state),
        when=request.created_at[:16].replace("T", " ") + " UTC",
    )


def listing(
    header: str,
    lines: Sequence[str],
    *,
    shown: int = LIST_SHOWN,
    more: Callable[[int], str] | None = None,
    notes: Sequence[str] = (),
) -> tuple[str, list[BlockDict]]:
    """A list as one message within Slack's limits: `(text, blocks)`.

    The blocks show the header, the first `shown` lines (fewer if they do not fit
    the message's blocks) in sections of whole lines, and then `more(count shown)`
    when some were left out, and the `notes`. The text fallback says the same as far
    as `TEXT_AIM` allows, so a short list reads exactly as the blocks.
    """
    budget = MESSAGE_BLOCKS_MAX - 2  # the header, the footer
    texts = pack(lines[:shown], max_blocks=budget)
    count = packed_count(texts)
    footer = [more(count)] if more is not None and count < len(lines) else []
    footer += [n for n in notes if n]
    blocks: list[Block] = [_section(header), *(_section(t) for t in texts)]
    if footer:
        blocks.append(_context(*footer))
    text = _lines_within(header, lines[:count], footer, TEXT_AIM)
    return text, _message(blocks)


def status_listing(language: str, requests: Sequence[ShareRequest]) -> tuple[str, list[BlockDict]]:
    """`/share-image status`: the caller's recent requests."""
    if not requests:
        text = say(language, "status_empty")
        return text, _message([_section(text)])
    lines = [request_line(r, language) for r in requests]
    return listing(say(language, "status_header"), lines, shown=HOME_MINE_SHOWN)


def member_listing(
    language: str,
    image_id: str,
    members: Sequence[ImageMember],
    names: Mapping[str, str],
) -> tuple[str, list[BlockDict]]:
    """`/share-image list <image>`: the image's members and their status.

    Newest change first: with hundreds of members, what changed lately (a share just
    accepted or rejected) is what a reader looks for. When not all fit, the footer
    says how many there are and counts them by status.
    """
    image = code(image_id)
    if not members:
        text = say(language, "list_empty", image=image)
        return text, _message([_section(text)])
    ordered = sorted(members, key=lambda m: (m.updated_at, m.created_at), reverse=True)
    lines = [
        say(
            language,
            "list_item",
            member=member_label(m.member_id, names.get(m.member_id)),
            status=escape(m.status),
            created=escape(m.created_at),
            updated=escape(m.updated_at),
        )
        for m in ordered
    ]
    by_status = Counter(m.status for m in members)
    summary = " · ".join(f"{escape(status)} {count}" for status, count in by_status.most_common())
    return listing(
        say(language, "list_header", image=image),
        lines,
        more=lambda count: (
            say(language, "list_more", total=len(members), shown=count)
            + " "
            + say(language, "list_summary", counts=summary)
        ),
    )


def grants_listing(language: str, grants: Sequence[Grant]) -> tuple[str, list[BlockDict]]:
    """`/share-image admin grants`, by user then role."""
    if not grants:
        text = say(language, "grants_empty")
        return text, _message([_section(text)])
    everything = say(language, "all_images")
    lines = [
        f"• <@{g.user_id}>: {g.role.value} ({code(g.image_id) if g.image_id else everything})"
        for g in grants
    ]
    return listing(
        say(language, "grants_header"),
        lines,
        more=lambda count: say(language, "grants_more", total=len(grants), shown=count),
    )


def known_members_listing(
    language: str, members: Sequence[KnownMember]
) -> tuple[str, list[BlockDict]]:
    """`/share-image admin member list`."""
    if not members:
        text = say(language, "members_empty")
        return text, _message([_section(text)])
    lines = [f"• {member_label(m.member_id, m.name)}" for m in members]
    return listing(
        say(language, "members_header"),
        lines,
        more=lambda count: say(language, "members_more", total=len(members), shown=count),
    )


def oncall_listing(
    language: str,
    shifts: Sequence[OnCallShift],
    *,
    now: datetime,
    past: bool = False,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[str, list[BlockDict]]:
    """`/share-image admin oncall list [all]`: current and coming shifts, soonest first.

    Past shifts only with `past`; otherwise the footer says how many were left out.
    """
    if not shifts:
        text = say(language, "oncall_empty")
        return text, _message([_section(text)])
    ended = {s.id for s in shifts if (parse_stamp(s.ends_at) or now) <= now}
    listed = list(shifts) if past else [s for s in shifts if s.id not in ended]
    note = say(language, "oncall_past_hidden", count=len(ended)) if ended and not past else ""
    if not listed:
        text = "\n".join([say(language, "oncall_none_coming"), note])
        return text, _message([_section(say(language, "oncall_none_coming")), _context(note)])
    lines = [
        f"• #{s.id} <@{s.user_id}>: {stored_when(s.starts_at, zone)}"
        f" → {stored_when(s.ends_at, zone)}"
        for s in listed
    ]
    return listing(
        say(language, "oncall_header"),
        lines,
        more=lambda count: say(language, "oncall_more", total=len(listed), shown=count),
        notes=[note],
    )


def admin_answer(
    language: str, outcome: Outcome, zone: ZoneInfo = UTC_ZONE
) -> tuple[str, list[BlockDict] | None]:
    """What an admin command's ack says: a list as text and blocks, a change as text.

    Times are shown in `zone` (BOT_TIMEZONE)."""
    command = outcome.command
    what = command.what
    if what == "grants":
        return grants_listing(language, outcome.grants)
    if what == "member list":
        return known_members_listing(language, outcome.members)
    if what == "oncall list":
        assert outcome.now is not None
        return oncall_listing(
            language, outcome.shifts, now=outcome.now, past=command.past, zone=zone
        )
    return admin_change(language, outcome, zone), None


def admin_change(language: str, outcome: Outcome, zone: ZoneInfo = UTC_ZONE) -> str:
    """What an admin change did, in one sentence."""
    command = outcome.command
    what = command.what
    if what in {"grant", "revoke"}:
        assert command.role is not None
        scope = code(command.image_id) if command.image_id else say(language, "all_images")
        if what == "grant":
            key = "granted" if outcome.changed else "grant_existed"
        else:
            key = "revoked" if outcome.changed else "revoke_missing"
        return say(language, key, user=command.user_id, role=command.role.value, scope=scope)
    if what == "member add":
        return say(
            language, "member_added", member=code(command.member_id), name=escape(command.name)
        )
    if what == "member remove":
        return say(
            language,
            "member_removed" if outcome.changed else "member_missing_known",
            member=code(command.member_id),
        )
    if what == "oncall add":
        assert command.starts is not None and command.ends is not None
        return say(
            language,
            "oncall_added",
            user=command.user_id,
            starts=when(command.starts, zone),
            ends=when(command.ends, zone),
        )
    assert what == "oncall remove", what
    if command.shift_id:
        shift = outcome.shift
        if shift is None:
            return say(language, "oncall_no_such_shift", id=command.shift_id)
        return say(
            language,
            "oncall_removed_one",
            id=shift.id,
            user=shift.user_id,
            starts=stored_when(shift.starts_at, zone),
            ends=stored_when(shift.ends_at, zone),
        )
    return say(language, "oncall_removed", user=command.user_id, count=outcome.count)


# -- the Home tab ----------------------------------------------------------------------------


def home(
    language: str,
    mine: list[ShareRequest],
    waiting: list[ShareRequest] | None,
    cards: dict[int, str] | None = None,
    *,
    approval_channel: str = "",
) -> dict[str, Any]:
    """The Home tab: the user's requests and, for approvers, what waits for them.

    `mine` newest first; `waiting` in any order (shown newest first). Each list shows
    what fits (`HOME_MINE_SHOWN`, `HOME_WAITING_SHOWN`, and never more than the view's
    blocks), then how many more there are and where to see them. `cards` links each
    waiting request's id to its approval card, where there is one.
    """
    cards = cards or {}
    blocks: list[Block] = [_header(say(language, "home_title"))]
    # Fixed blocks: header, 2 titles, 2 "more" lines, divider.
    budget = VIEW_BLOCKS_MAX - 6
    mine_texts = pack(
        [request_line(r, language) for r in mine[:HOME_MINE_SHOWN]], max_blocks=budget // 4
    )
    blocks.append(_section(f"*{say(language, 'home_mine')}*"))
    blocks.extend(_section(t) for t in mine_texts or [say(language, "status_empty")])
    left_out = len(mine) - packed_count(mine_texts)
    if mine and left_out > 0:
        blocks.append(_context(say(language, "home_more_mine", count=left_out)))
    if waiting is not None:
        blocks.append(DividerBlock())
        blocks.append(_section(f"*{say(language, 'home_waiting')}*"))
        newest = sorted(waiting, key=lambda r: (r.created_at, r.id), reverse=True)
        lines = [
            request_line(r, language) + (f" · <{cards[r.id]}|#{r.id}>" if cards.get(r.id) else "")
            for r in newest[:HOME_WAITING_SHOWN]
        ]
        texts = pack(lines, max_blocks=budget - len(mine_texts))
        blocks.extend(_section(t) for t in texts or [say(language, "home_none_waiting")])
        left_out = len(waiting) - packed_count(texts)
        if waiting and left_out > 0:
            key = "home_more_waiting" if approval_channel else "home_more_waiting_nochannel"
            blocks.append(_context(say(language, key, count=left_out, channel=approval_channel)))
    view = View(type="home", blocks=blocks)
    return view.to_dict()
