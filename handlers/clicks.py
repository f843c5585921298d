"""What a button click is about: the request it names, if it came from that request's message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncRespond

from bot.sharing.records import Records
from bot.sharing.request import ShareRequest
from bot.sharing.values import SlackData

log = logging.getLogger(__name__)


def clicked_request(
    records: Records, body: dict[str, Any], message: Callable[[SlackData], str | None], what: str
) -> ShareRequest | None:
    """The request a click names, only if the click came from its own message (`message`
    picks that message's ts from what Slack was told: the card, the reminder). A click
    from anywhere else (a forged value, an old copy) is None, and logged."""
    try:
        request_id = int(body["actions"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    request = records.request(request_id)
    if request is None:
        return None
    clicked_ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get(
        "message_ts"
    )
    expected = message(records.told(request_id))
    if expected is None or clicked_ts != expected:
        log.warning(f"click does not match the request's {what}", extra={"request": request_id})
        return None
    return request


async def whisper(respond: AsyncRespond, text: str) -> None:
    """Answer whoever clicked, only them, and leave the clicked message as it is."""
    await respond(text=text, response_type="ephemeral", replace_original=False)
