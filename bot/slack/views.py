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

from bot.sharing.admin import Outcome
from bot.sharing.commands import MAX_REASON
from bot.sharing.durations import time_left
from bot.sharing.oncall import RotaNow, Stale
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.states import RUNNING
from bot.sharing.values import (
    Grant,
    KnownMember,
    ListedMember,
    OnCallShift,
    RotaEntry,
    StoredImage,
    parse_stamp,
)
from bot.slack.texts import (
    code,
    escape,
    failure_word,
    local_time,
    member_status_words,
    mentions,
    say,
    state_word,
    stored_when,
    when,
)

UTC_ZONE = ZoneInfo("UTC")

BlockDict = dict[str, Any]

APPROVE = "approve"
DENY = "deny"
# The reminder's buttons before a timed share ends.
EXTEND = "share_extend"
REMOVE_NOW = "share_remove_now"
REMIND = "approval_remind"
DENY_MODAL = "deny_reason"
DENY_REASON_BLOCK = "reason"
DENY_REASON_INPUT = "reason_input"

# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
SECTION_TEXT_MAX = 3000
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
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


def _button(action_id: str, label: str, value: str, style: str | None = None) -> ButtonElement:
    text = PlainTextObject(text=clip(label, BUTTON_TEXT_MAX))
    return ButtonElement(action_id=action_id, text=text, value=value, style=style)


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


def slack_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """A time in a message: as every time is shown (`texts.local_time`), in BOT_TIMEZONE;
    `?` when unknown."""
    return "?" if moment is None else local_time(moment, zone)


def api_time(text: str | None, zone: ZoneInfo) -> str:
    """A cloud API timestamp (`2025-07-22T09:00:00Z`, `2024-06-16 02:55:13+00:00`) as
    every time is shown; one that cannot be read, as it came."""
    if not text:
        return "?"
    try:
        return slack_time(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
    except ValueError:
        return code(text)


def duration_words(request: ShareRequest, language: str) -> str:
    """How long the share lasts: `7d`, or "until removed"."""
    if request.duration:
        return code(request.duration)
    return say(language, "duration_until_removed")


def joined_duration(request: ShareRequest, asked: str, language: str) -> str:
    """For an ask that joined the open `request`: the sentence saying their durations
    differ (`asked` as `7d`, empty for until removed); empty when they do not."""
    if request.unshare or asked == (request.duration or ""):
        return ""

    def lasting(duration: str) -> str:
        if not duration:
            return say(language, "duration_until_removed")
        return say(language, "duration_for", duration=code(duration))

    return say(
        language,
        "duplicate_duration",
        duration=lasting(request.duration or ""),
        asked=lasting(asked),
    )


def _ends_line(request: ShareRequest, language: str, zone: ZoneInfo = UTC_ZONE) -> str:
    """The parent's line on a timed share: how long, and when it ends."""
    # A member that rejected still has access: its share still ends on time.
    if not request.duration or request.state in {
        RequestState.REMOVED,
        RequestState.FAILED,
        RequestState.DENIED,
    }:
        return ""
    ends = request.ends_at
    if ends is None:
        return say(language, "parent_duration", duration=code(request.duration))
    return say(
        language, "parent_ends", duration=code(request.duration), ends=slack_time(ends, zone)
    )


def member_label(member_id: str, name: str | None) -> str:
    """`a8f1…` or `a8f1…` (QA account)."""
    return code(member_id) + (f" ({escape(name)})" if name else "")


# How the cloud's `os_distro` values are written for people; others are shown as they come.
OS_NAMES = {
    "almalinux": "AlmaLinux",
    "centos": "CentOS",
    "debian": "Debian",
    "oraclelinux": "Oracle Linux",
    "rhel": "RHEL",
    "rocky": "Rocky",
    "sles": "SLES",
    "ubuntu": "Ubuntu",
    "windows": "Windows",
}
IMAGE_NAME_SHOWN = 80  # a name longer than this is cut: the id beside it says which it is
GB = 1024**3


def short_id(image_id: str) -> str:
    """`70a599e0…`: enough of a UUID to tell images apart at a glance."""
    return image_id if len(image_id) <= 9 else image_id[:8] + "…"


def os_words(image: StoredImage) -> str:
    """`Rocky 9.4`, from the image's `os_distro` and `scp_os_version`; empty when neither."""
    distro = " ".join((image.os_distro or "").split())
    version = " ".join((image.scp_os_version or "").split())
    return " ".join(p for p in (OS_NAMES.get(distro.lower(), distro), version) if p)


def image_label(image_id: str, image: StoredImage | None) -> str:
    """`rocky9-golden` · Rocky 9.4 · `70a599e0…`; the bare id when the name is not known."""
    if image is None or not (image.name or "").strip():
        return code(image_id)
    parts = [code(clip(image.name or "", IMAGE_NAME_SHOWN))]
    if words := os_words(image):
        parts.append(escape(words))
    parts.append(code(short_id(image_id)))
    return " · ".join(parts)


def size_gb(size: int) -> str:
    """Bytes as GB (2**30) for people: `10`, `2.5`; a small image is `0.1`, never `0`."""
    shown = f"{size / GB:.1f}".removesuffix(".0")
    return "0.1" if size > 0 and shown == "0" else shown


def image_facts(image: StoredImage | None, language: str) -> str:
    """The approval card's line on the image: size, visibility, owner; empty when unknown."""
    if image is None:
        return ""
    parts = []
    if image.size is not None:
        parts.append(say(language, "image_size", size=size_gb(image.size)))
    if image.visibility:
        parts.append(say(language, "image_visibility", visibility=escape(image.visibility)))
    owner = image.owner_account_name or image.owner
    if owner:
        parts.append(say(language, "image_owner", owner=code(owner)))
    return say(language, "card_image", facts=" · ".join(parts)) if parts else ""


def state_line(request: ShareRequest, language: str) -> str:
    """The parent's one-line status for the request's state."""
    if request.state is RequestState.FAILED:
        return say(language, "state_failed", what=failure_words(request, language))
    if request.state is RequestState.DENIED:
        return say(language, "state_denied", by=request.decided_by or "?")
    if request.state is RequestState.REMOVED and request.removal_result:
        if request.removal_result == "outside":
            return say(language, "state_removed_outside")
        if request.removal_result == "gone":
            return say(language, "state_removed_gone")
        if request.removed_by:
            return say(language, "state_removed_early", by=request.removed_by)
        return say(language, "state_removed_ended", duration=duration_words(request, language))
    if request.state in RUNNING:
        if request.takes_over is not None:
            return say(language, "state_takes_over", id=request.takes_over)
        if request.was_present:
            return say(language, "state_was_present")
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
    request: ShareRequest,
    language: str,
    member_name: str | None,
    image: StoredImage | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[str, list[BlockDict]]:
    """The channel message a request's thread hangs off; times in `zone`."""
    headline = say(
        language,
        "parent",
        user=request.user_id,
        verb=say(language, f"verb_{request.action}"),
        image=image_label(request.image_id, image),
        member=member_label(request.member_id, member_name),
    )
    status = state_line(request, language)
    ends = _ends_line(request, language, zone)
    made_shared = (
        say(language, "parent_made_shared")
        if request.made_shared_at and request.state is not RequestState.FAILED
        else ""
    )
    blocks: list[Block] = [
        _section(headline),
        *_reason_blocks(language, request.reason),
        _context(status, *(line for line in (ends, made_shared) if line)),
    ]
    return _fallback(f"{headline}: {status}"), _message(blocks)


def _card_heading(
    request: ShareRequest, language: str, member_name: str | None, image: StoredImage | None
) -> tuple[str, str]:
    """A card's title and its first line: who asks what."""
    title = say(language, "card_title", id=request.id)
    intro = say(
        language,
        "card_intro",
        user=request.user_id,
        verb=say(language, f"verb_{request.action}"),
        image=image_label(request.image_id, image),
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
    image: StoredImage | None = None,
    stale: Sequence[Stale] = (),
    waited: str = "",
) -> tuple[str, list[BlockDict]]:
    """The card approvers decide on, with Approve and Deny buttons.

    Whoever is on call decides first, so only they are mentioned when there are any;
    else the approvers. Either way the first `PEOPLE_SHOWN`, then "and N more". What
    the bot knows of the image (size, visibility, owner) comes first among the facts.
    An image that needs two approvals says so, and after the first, who gave it;
    `waited` (once a reminder went out) says how long the request has waited.
    """
    title, intro = _card_heading(request, language, member_name, image)
    if on_call:
        who = people_line(language, on_call, "card_oncall", "card_more_oncall")
    elif approvers:
        who = people_line(language, approvers, "card_approvers", "card_more_approvers")
    else:
        who = say(language, "card_nobody")
    if stale:
        # A rota too old to trust was skipped: say so, or the mentions look like the rota's.
        who = "\n".join([*(stale_line(language, s) for s in stale), who])
    value = str(request.id)
    facts = "\n".join(
        line
        for line in (
            image_facts(image, language),
            # Said before anyone approves: the approval changes the image too.
            say(language, "card_make_shared") if will_make_shared(request, image) else "",
            say(language, "card_why", why=why),
            say(language, "card_when", when=asked, expires=expires),
            say(language, "card_waited", waited=waited) if waited else "",
            *(
                [say(language, "card_duration", duration=duration_words(request, language))]
                if not request.unshare
                else []
            ),
            say(language, "card_two_approvals") if request.approvals_needed > 1 else "",
        )
        if line
    )
    progress: list[Block] = []
    if request.approvals_needed > 1 and request.first_approved_by:
        progress.append(
            _section(
                say(
                    language,
                    "card_first_approval",
                    count=request.approvals,
                    needed=request.approvals_needed,
                    by=request.first_approved_by,
                )
            )
        )
    blocks: list[Block] = [
        _header(title),
        _section(intro),
        *_reason_blocks(language, request.reason),
        # Two elements: the people line keeps its own 3,000 characters whatever `why` is.
        _context(facts, who),
        *progress,
        ActionsBlock(
            block_id=f"decision-{request.id}",
            elements=[
                _button(APPROVE, say(language, "approve"), value, "primary"),
                _button(DENY, say(language, "deny"), value, "danger"),
            ],
        ),
    ]
    return _fallback(f"{title}: {intro} {who}"), _message(blocks)


def age_words(language: str, seconds: float) -> str:
    """How long ago, roughly: minutes under two hours, hours under two days, then days."""
    minutes = max(0, int(seconds // 60))
    if minutes < 120:
        unit, count = "m", minutes
    elif minutes < 48 * 60:
        unit, count = "h", minutes // 60
    else:
        unit, count = "d", minutes // (24 * 60)
    return say(language, f"duration_{unit}_{'one' if count == 1 else 'other'}", count=count)


def source_words(language: str, source: str) -> str:
    """A rota source's name: PagerDuty, the calendar."""
    return say(language, f"rota_{source}")


def stale_line(language: str, stale: Stale) -> str:
    """The card's warning that a rota was skipped, being too old or never read."""
    source = source_words(language, stale.source)
    if stale.age is None:
        return say(language, "card_rota_unread", source=source)
    return say(
        language,
        "card_rota_stale",
        source=source,
        age=age_words(language, stale.age.total_seconds()),
    )


def will_make_shared(request: ShareRequest, image: StoredImage | None) -> bool:
    """Whether carrying out the request will set the image Shared (it reads private now)."""
    return (
        not request.unshare and image is not None and (image.visibility or "").lower() == "private"
    )


def decided_card(
    request: ShareRequest,
    language: str,
    member_name: str | None,
    image: StoredImage | None = None,
) -> tuple[str, list[BlockDict]]:
    """The card once decided or expired: the same facts, the decision, no buttons."""
    title, intro = _card_heading(request, language, member_name, image)
    if request.state is RequestState.EXPIRED:
        outcome = say(language, "card_expired")
    elif request.state is RequestState.DENIED:
        outcome = say(language, "card_denied", by=request.decided_by)
    elif request.first_approved_by and request.first_approved_by != request.decided_by:
        outcome = say(
            language, "card_approved_two", first=request.first_approved_by, by=request.decided_by
        )
    else:
        outcome = say(language, "card_approved", by=request.decided_by)
    blocks: list[Block] = [
        _header(title),
        _section(intro),
        *_reason_blocks(language, request.reason),
        _section(outcome),
    ]
    if request.state is RequestState.DENIED and request.deny_reason:
        blocks.append(_plain_context(clip(request.deny_reason, MAX_REASON)))
    return _fallback(f"{title}: {outcome}"), _message(blocks)


# -- a request waiting for approval -----------------------------------------------------


def people_within(language: str, people: Sequence[str], most: int) -> str:
    """The first `most` people mentioned, then how many more there are."""
    named = mentions(list(people[:most]))
    if len(people) > most:
        return say(language, "more_people", people=named, count=len(people) - most)
    return named


def waiting_message(
    request: ShareRequest,
    language: str,
    text: str,
    reached: Sequence[tuple[datetime, Sequence[str]]],
    *,
    most: int,
    zone: ZoneInfo,
) -> tuple[str, list[BlockDict]]:
    """The asker's thread message while approvers decide: who was asked and reminded,
    when, and (while it waits) the Remind button."""
    lines = []
    for number, (at, people) in enumerate(reached):
        key = "waiting_asked" if number == 0 else "waiting_reminded"
        who = people_within(language, people, most) if people else say(language, "nobody_to_ask")
        lines.append(say(language, key, people=who, when=slack_time(at, zone)))
    blocks: list[Block] = [_section(text)]
    # The newest reminders matter most: the first ask, then the last few.
    shown = lines[:1] + lines[1:][-(CONTEXT_ELEMENTS_MAX - 1) :] if lines else []
    if shown:
        blocks.append(_context(*shown))
    if request.state is RequestState.AWAITING_APPROVAL:
        blocks.append(
            ActionsBlock(
                block_id=f"waiting-{request.id}",
                elements=[_button(REMIND, say(language, "remind_button"), str(request.id))],
            )
        )
    return _fallback(" ".join([text, *shown])), _message(blocks)


# -- the reminder before a timed share ends -----------------------------------------------


def reminder(
    request: ShareRequest,
    language: str,
    member_name: str | None,
    image: StoredImage | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[str, list[BlockDict]]:
    """The thread's reminder before the share ends, with Extend and Remove now; the image
    named as the thread names it, the end in `zone`."""
    text = say(
        language,
        "reminder",
        user=request.user_id,
        member=member_label(request.member_id, member_name),
        image=image_label(request.image_id, image),
        ends=slack_time(request.ends_at, zone),
        duration=duration_words(request, language),
    )
    value = str(request.id)
    blocks: list[Block] = [
        _section(text),
        ActionsBlock(
            block_id=f"ending-{request.id}",
            elements=[
                _button(
                    EXTEND,
                    say(language, "extend", duration=request.duration or ""),
                    value,
                    "primary",
                ),
                _button(REMOVE_NOW, say(language, "remove_now"), value, "danger"),
            ],
        ),
    ]
    return _fallback(text), _message(blocks)


def rejected_open(request: ShareRequest, text: str, language: str) -> tuple[str, list[BlockDict]]:
    """The thread's line when the member of an open-ended share rejected it: it still has
    access, so the line offers Remove now (the reminder's button, under the same rules)."""
    text = f"{text} {say(language, 'outcome_rejected_open')}"
    blocks: list[Block] = [
        _section(text),
        ActionsBlock(
            block_id=f"ending-{request.id}",
            elements=[
                _button(REMOVE_NOW, say(language, "remove_now"), str(request.id), "danger"),
            ],
        ),
    ]
    return _fallback(text), _message(blocks)


def reminder_answered(
    request: ShareRequest,
    language: str,
    member_name: str | None,
    outcome: str,
    image: StoredImage | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[str, list[BlockDict]]:
    """The reminder once a button was used: the same words, what was done, no buttons."""
    text, _ = reminder(request, language, member_name, image, zone)
    return answered(text, outcome)


def answered(text: str, outcome: str) -> tuple[str, list[BlockDict]]:
    """A message whose button was used: its words, what was done, no buttons."""
    return _fallback(f"{text} {outcome}"), _message([_section(text), _context(outcome)])


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


# -- lists -----------------------------------------------------------------------------------


def request_line(
    request: ShareRequest,
    language: str,
    now: datetime | None = None,
    image: StoredImage | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> str:
    """One request in a list (status command, Home tab), with the time a timed share has
    left; when it was asked, in `zone`."""
    ends = request.ends_at
    left = ""
    if now is not None and ends is not None and request.state in RUNNING:
        left = " · " + say(language, "status_left", left=time_left(ends, now))
    return (
        say(
            language,
            "status_item",
            id=request.id,
            verb=say(language, f"verb_{request.action}"),
            image=image_label(request.image_id, image),
            member=code(request.member_id),
            state=state_word(language, request.state),
            when=slack_time(request.created_at, zone),
        )
        + left
    )


def listing(
    header: str,
    lines: Sequence[str],
    *,
    shown: int = LIST_SHOWN,
    more: Callable[[int], str] | None = None,
    notes: Sequence[str] = (),
    aim: int = TEXT_AIM,
) -> tuple[str, list[BlockDict]]:
    """A list as one message within Slack's limits: `(text, blocks)`.

    The blocks show the header, the first `shown` lines (fewer if they do not fit
    the message's blocks) in sections of whole lines, and then `more(count shown)`
    when some were left out, and the `notes`. The text fallback says the same as far
    as `aim` (`TEXT_AIM`, less what a caller puts before it) allows, so a short list
    reads exactly as the blocks.
    """
    budget = MESSAGE_BLOCKS_MAX - 2  # the header, the footer
    texts = pack(lines[:shown], max_blocks=budget)
    count = packed_count(texts)
    footer = [more(count)] if more is not None and count < len(lines) else []
    footer += [n for n in notes if n]
    blocks: list[Block] = [_section(header), *(_section(t) for t in texts)]
    if footer:
        blocks.append(_context(*footer))
    text = _lines_within(header, lines[:count], footer, aim)
    return text, _message(blocks)


def status_listing(
    language: str,
    requests: Sequence[ShareRequest],
    now: datetime | None = None,
    images: Mapping[str, StoredImage] | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[str, list[BlockDict]]:
    """`/share-image status`: the caller's recent requests; `images` names them by id;
    times in `zone`."""
    if not requests:
        text = say(language, "status_empty")
        return text, _message([_section(text)])
    known = images or {}
    lines = [request_line(r, language, now, known.get(r.image_id), zone) for r in requests]
    return listing(say(language, "status_header"), lines, shown=HOME_MINE_SHOWN)


def member_listing(
    language: str,
    image_id: str,
    members: Sequence[ListedMember],
    names: Mapping[str, str],
    removals: Mapping[str, datetime] | None = None,
    known: StoredImage | None = None,
    zone: ZoneInfo = UTC_ZONE,
    shares: Mapping[str, ShareRequest] | None = None,
) -> tuple[str, list[BlockDict]]:
    """`/share-image list <image>`: the image's members and their status.

    Newest change first: with hundreds of members, what changed lately (a share just
    accepted or rejected) is what a reader looks for. When not all fit, the footer
    says how many there are and counts them by status. `names` (member ids in lower case)
    gives the members' registered names; `removals` (member ids in lower
    case) marks the members the bot will remove by itself, and when; `shares` (member ids
    in lower case: the share through which each has access), when given, marks each
    member added through the bot (for whom, until when) or not; `known` names the image.
    Times are shown in `zone`, as everywhere.
    """
    removals = removals or {}
    image = image_label(image_id, known)
    if not members:
        private = known is not None and (known.visibility or "").lower() == "private"
        text = say(language, "list_empty_private" if private else "list_empty", image=image)
        return text, _message([_section(text)])
    ordered = sorted(members, key=lambda m: (m.updated_at, m.created_at), reverse=True)
    lines = [
        say(
            language,
            "list_item",
            member=member_label(m.member_id, names.get(m.member_id.lower())),
            status=member_status_words(language, m.status),
            created=api_time(m.created_at, zone),
            updated=api_time(m.updated_at, zone),
        )
        + _through(language, m.member_id.lower(), shares)
        + (
            " · "
            + say(language, "list_removal", ends=slack_time(removals[m.member_id.lower()], zone))
            if m.member_id.lower() in removals
            else ""
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
        notes=[say(language, "list_access")],
    )


def _through(language: str, key: str, shares: Mapping[str, ShareRequest] | None) -> str:
    """` · added through this bot for @who (request #n)`, `· until removed` when it does not
    end by itself, or ` · not through this bot`; nothing when not asked."""
    if shares is None:
        return ""
    share = shares.get(key)
    if share is None:
        return " · " + say(language, "list_not_through_bot")
    mark = " · " + say(language, "list_through_bot", user=share.user_id, id=share.id)
    if share.ends_at is None:
        mark += " · " + say(language, "list_until_removed")
    return mark


def _admin_listing(language: str, kind: str, lines: list[str]) -> tuple[str, list[BlockDict]]:
    """An admin list: `<kind>_header` over `lines`, `<kind>_empty` when there are none and
    `<kind>_more` when not all fit."""
    if not lines:
        text = say(language, f"{kind}_empty")
        return text, _message([_section(text)])
    return listing(
        say(language, f"{kind}_header"),
        lines,
        more=lambda count: say(language, f"{kind}_more", total=len(lines), shown=count),
    )


def grants_listing(language: str, grants: Sequence[Grant]) -> tuple[str, list[BlockDict]]:
    """`/share-image admin grants`, by user then role."""
    everything = say(language, "all_images")
    lines = [
        f"• <@{g.user_id}>: {g.role.value} ({code(g.image_id) if g.image_id else everything})"
        for g in grants
    ]
    return _admin_listing(language, "grants", lines)


def known_members_listing(
    language: str, members: Sequence[KnownMember]
) -> tuple[str, list[BlockDict]]:
    """`/share-image admin member list`."""
    lines = [f"• {member_label(m.member_id, m.name)}" for m in members]
    return _admin_listing(language, "members", lines)


def approvals_listing(language: str, approvals: Mapping[str, int]) -> tuple[str, list[BlockDict]]:
    """`/share-image admin policy list`: the images whose shares need two approvals."""
    lines = [
        say(language, "policies_item", image=code(image), count=count)
        for image, count in approvals.items()
    ]
    return _admin_listing(language, "policies", lines)


def rota_lines(
    language: str,
    rotas: Sequence[RotaNow],
    image_schedules: Mapping[str, str],
    *,
    now: datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> list[str]:
    """Each rota's people now and next, and which images have their own schedule."""

    def people(entries: Sequence[RotaEntry]) -> str:
        named = list(
            dict.fromkeys(
                f"<@{e.user_id}>"
                if e.user_id
                else say(language, "oncall_rota_unmatched", email=code(e.email))
                for e in entries
            )
        )
        shown = named[:PEOPLE_SHOWN]
        text = ", ".join(shown)
        if len(named) > len(shown):
            text = say(language, "card_more_oncall", people=text, count=len(named) - len(shown))
        return text

    lines: list[str] = []
    for rota in rotas:
        source = source_words(language, rota.source)
        state = rota.state
        if state is None or state.read_at is None:
            lines.append(say(language, "oncall_rota_never", source=source))
        else:
            age = age_words(language, (now - state.read_at).total_seconds())
            lines.append(say(language, "oncall_rota_read", source=source, age=age))
        if state is not None and state.error:
            lines.append(say(language, "oncall_rota_failing", error=escape(state.error)))
        if state is None or state.read_at is None:
            continue
        lines.append(
            say(language, "oncall_rota_now", people=people(rota.now))
            if rota.now
            else say(language, "oncall_rota_nobody_now")
        )
        if rota.next and rota.next[0].starts is not None:
            starts = when(rota.next[0].starts.astimezone(zone), zone)
            lines.append(say(language, "oncall_rota_next", when=starts, people=people(rota.next)))
        else:
            lines.append(say(language, "oncall_rota_no_next"))
    if image_schedules:
        pairs = sorted(image_schedules.items())
        listed = ", ".join(
            f"{code(short_id(image))} → {code(schedule)}" for image, schedule in pairs[:10]
        )
        if len(pairs) > 10:  # the command line lists them all
            listed += f", … (+{len(pairs) - 10})"
        lines.append(say(language, "oncall_rota_schedules", images=listed))
    return lines


def oncall_listing(
    language: str,
    shifts: Sequence[OnCallShift],
    *,
    now: datetime,
    past: bool = False,
    zone: ZoneInfo = UTC_ZONE,
    rotas: Sequence[RotaNow] = (),
    image_schedules: Mapping[str, str] | None = None,
) -> tuple[str, list[BlockDict]]:
    """`/share-image admin oncall list [all]`: who is on each rota now and next, then the
    typed shifts, current and coming, soonest first.

    Past shifts only with `past`; otherwise the footer says how many were left out.
    """
    from_rotas = rota_lines(language, rotas, image_schedules or {}, now=now, zone=zone)
    # The rotas' lines come first in the text too: the shifts' text keeps to what is left.
    rota_text = clip("\n".join(from_rotas), TEXT_AIM // 2)
    aim = TEXT_AIM - len(rota_text) - 1 if from_rotas else TEXT_AIM
    text, blocks = _shift_listing(language, shifts, now=now, past=past, zone=zone, aim=aim)
    if not from_rotas:
        return text, blocks
    return f"{rota_text}\n{text}", [*_message([_section(rota_text)]), *blocks]


def _shift_listing(
    language: str,
    shifts: Sequence[OnCallShift],
    *,
    now: datetime,
    past: bool,
    zone: ZoneInfo,
    aim: int = TEXT_AIM,
) -> tuple[str, list[BlockDict]]:
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
        aim=aim,
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
    if what == "policy list":
        return approvals_listing(language, outcome.approvals)
    if what == "oncall list":
        assert outcome.now is not None
        return oncall_listing(
            language,
            outcome.shifts,
            now=outcome.now,
            past=command.past,
            zone=zone,
            rotas=outcome.rotas,
            image_schedules=outcome.image_schedules,
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
        said = say(language, key, user=command.user_id, role=command.role.value, scope=scope)
        return " ".join([said, *_held_elsewhere(language, outcome)])
    if what == "member add":
        if outcome.known is not None:
            return say(
                language,
                "member_renamed",
                member=code(outcome.known.member_id),
                old=escape(outcome.known.name),
                name=escape(command.name),
            )
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
    if what == "oncall schedule":
        return schedule_change(language, outcome)
    if what == "policy":
        image = code(command.image_id)
        if not outcome.changed:
            return say(language, "policy_same", image=image, count=command.approvals)
        return say(language, "policy_two" if command.approvals > 1 else "policy_one", image=image)
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


def _held_elsewhere(language: str, outcome: Outcome) -> list[str]:
    """After "wasn't ROLE for SCOPE": where the role is held, and the command that takes it
    back (nothing when it is held nowhere else)."""
    command = outcome.command
    if not outcome.held or command.role is None:
        return []
    role = command.role.value
    if "" in outcome.held:
        return [say(language, "revoke_held_all", user=command.user_id, role=role)]
    return [
        say(
            language,
            "revoke_held_images",
            user=command.user_id,
            role=role,
            images=", ".join(code(image) for image in outcome.held),
            image=outcome.held[0],
        )
    ]


def schedule_change(language: str, outcome: Outcome) -> str:
    """What `admin oncall schedule` did, and whether PagerDuty is read at all."""
    command = outcome.command
    image = code(command.image_id)
    before = outcome.before
    if command.schedule_id:
        if not outcome.changed:
            key = "oncall_schedule_same"
        else:
            key = "oncall_schedule_changed" if before else "oncall_schedule_set"
        said = say(language, key, image=image, schedule=command.schedule_id, before=before)
        if not outcome.pagerduty:
            said += " " + say(language, "oncall_schedule_unread")
        return said
    if before is None:
        return say(language, "oncall_schedule_none", image=image)
    return say(language, "oncall_schedule_cleared", image=image, before=before)


# -- the Home tab ----------------------------------------------------------------------------


def home(
    language: str,
    mine: list[ShareRequest],
    waiting: list[ShareRequest] | None,
    cards: dict[int, str] | None = None,
    *,
    approval_channel: str = "",
    mine_total: int | None = None,
    waiting_total: int | None = None,
    now: datetime | None = None,
    images: Mapping[str, StoredImage] | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> dict[str, Any]:
    """The Home tab: the user's requests and, for approvers, what waits for them.

    `mine` newest first; `waiting` in any order (shown newest first). Each list shows
    what fits (`HOME_MINE_SHOWN`, `HOME_WAITING_SHOWN`, and never more than the view's
    blocks), then how many more there are (of `mine_total` and `waiting_total`, when
    the lists given are only the newest) and where to see them. `cards` links each
    waiting request's id to its approval card, where there is one.
    """
    cards = cards or {}
    mine_total = len(mine) if mine_total is None else mine_total
    known = images or {}
    blocks: list[Block] = [_header(say(language, "home_title"))]
    # Fixed blocks: header, 2 titles, 2 "more" lines, divider.
    budget = VIEW_BLOCKS_MAX - 6
    mine_texts = pack(
        [
            request_line(r, language, now, known.get(r.image_id), zone)
            for r in mine[:HOME_MINE_SHOWN]
        ],
        max_blocks=budget // 4,
    )
    blocks.append(_section(f"*{say(language, 'home_mine')}*"))
    blocks.extend(_section(t) for t in mine_texts or [say(language, "status_empty")])
    left_out = mine_total - packed_count(mine_texts)
    if mine and left_out > 0:
        blocks.append(_context(say(language, "home_more_mine", count=left_out)))
    if waiting is not None:
        blocks.append(DividerBlock())
        blocks.append(_section(f"*{say(language, 'home_waiting')}*"))
        newest = sorted(waiting, key=lambda r: (r.created_at, r.id), reverse=True)
        lines = [
            request_line(r, language, now, known.get(r.image_id), zone)
            + (f" · <{cards[r.id]}|#{r.id}>" if cards.get(r.id) else "")
            for r in newest[:HOME_WAITING_SHOWN]
        ]
        texts = pack(lines, max_blocks=budget - len(mine_texts))
        blocks.extend(_section(t) for t in texts or [say(language, "home_none_waiting")])
        total = len(waiting) if waiting_total is None else waiting_total
        left_out = total - packed_count(texts)
        if waiting and left_out > 0:
            key = "home_more_waiting" if approval_channel else "home_more_waiting_nochannel"
            blocks.append(_context(say(language, key, count=left_out, channel=approval_channel)))
    view = View(type="home", blocks=blocks)
    return view.to_dict()
