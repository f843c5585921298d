"""Block Kit for everything the bot posts: parent messages, cards, the modal, the Home tab."""

from __future__ import annotations

from typing import Any

from bot.slack.texts import code, escape, failure_word, mentions, say, state_word
from storage import ShareRequest

Block = dict[str, Any]

APPROVE = "approve"
DENY = "deny"
DENY_MODAL = "deny_reason"
DENY_REASON_BLOCK = "reason"
DENY_REASON_INPUT = "reason_input"


def permalink(channel: str | None, ts: str | None) -> str:
    """A link to a message (Slack redirects it to the workspace)."""
    if not channel or not ts:
        return ""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def member_label(member_id: str, name: str | None) -> str:
    """`a8f1…` or `a8f1…` (QA account)."""
    return code(member_id) + (f" ({escape(name)})" if name else "")


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _reason_block(language: str, reason: str | None) -> list[Block]:
    # plain_text: a reason is shown as typed, never parsed for mentions, links or formatting.
    if not reason:
        return []
    return [
        {
            "type": "context",
            "elements": [
                {
                    "type": "plain_text",
                    "text": f"{say(language, 'reason_label')}: {reason}",
                    "emoji": False,
                }
            ],
        }
    ]


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


def parent(
    request: ShareRequest, language: str, member_name: str | None
) -> tuple[str, list[Block]]:
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
    blocks = [_section(headline), *_reason_block(language, request.reason), _context(status)]
    return f"{headline}: {status}", blocks


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
) -> tuple[str, list[Block]]:
    """The card approvers decide on, with Approve and Deny buttons."""
    title, intro = _card_heading(request, language, member_name)
    if on_call:
        who = say(language, "card_oncall", people=mentions(on_call))
    elif approvers:
        who = say(language, "card_approvers", people=mentions(approvers))
    else:
        who = say(language, "card_nobody")
    value = str(request.id)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        _section(intro),
        *_reason_block(language, request.reason),
        _context(
            "\n".join(
                [
                    say(language, "card_why", why=why),
                    say(language, "card_when", when=asked, expires=expires),
                    who,
                ]
            )
        ),
        {
            "type": "actions",
            "block_id": f"decision-{request.id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": say(language, "approve")},
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": say(language, "deny")},
                    "value": value,
                },
            ],
        },
    ]
    return f"{title}: {intro} {who}", blocks


def decided_card(
    request: ShareRequest, language: str, member_name: str | None
) -> tuple[str, list[Block]]:
    """The card once decided or expired: the same facts, the decision, no buttons."""
    title, intro = _card_heading(request, language, member_name)
    if request.state == "expired":
        outcome = say(language, "card_expired")
    elif request.state == "denied":
        outcome = say(language, "card_denied", by=request.decided_by)
    else:
        outcome = say(language, "card_approved", by=request.decided_by)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        _section(intro),
        *_reason_block(language, request.reason),
        _section(outcome),
    ]
    if request.state == "denied" and request.deny_reason:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "plain_text", "text": request.deny_reason, "emoji": False}],
            }
        )
    return f"{title}: {outcome}", blocks


def deny_modal(request_id: int, language: str, card_channel: str, card_ts: str) -> dict[str, Any]:
    """The modal asking an approver why they deny."""
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": f"{request_id}|{card_channel}|{card_ts}",
        "title": {"type": "plain_text", "text": say(language, "deny_title", id=request_id)[:24]},
        "submit": {"type": "plain_text", "text": say(language, "deny_submit")},
        "close": {"type": "plain_text", "text": say(language, "cancel")},
        "blocks": [
            {
                "type": "input",
                "block_id": DENY_REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": say(language, "deny_label")},
                "element": {
                    "type": "plain_text_input",
                    "action_id": DENY_REASON_INPUT,
                    "multiline": True,
                    "max_length": 300,
                },
            }
        ],
    }


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


def home(
    language: str,
    mine: list[ShareRequest],
    waiting: list[ShareRequest] | None,
    cards: dict[int, str] | None = None,
) -> dict[str, Any]:
    """The Home tab: the user's requests and, for approvers, what waits for them.

    `cards` links each waiting request's id to its approval card, where there is one.
    """
    cards = cards or {}
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": say(language, "home_title")}},
        _section(f"*{say(language, 'home_mine')}*"),
        _section(
            "\n".join(request_line(r, language) for r in mine) or say(language, "status_empty")
        ),
    ]
    if waiting is not None:
        blocks.append({"type": "divider"})
        blocks.append(_section(f"*{say(language, 'home_waiting')}*"))
        lines = [
            request_line(r, language) + (f" · <{cards[r.id]}|#{r.id}>" if cards.get(r.id) else "")
            for r in waiting
        ]
        blocks.append(_section("\n".join(lines) or say(language, "home_none_waiting")))
    return {"type": "home", "blocks": blocks}
