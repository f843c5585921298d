"""Only the bot's own workspace: a request from any other is refused before any listener.

Enterprise Grid, a channel shared with another organisation, or a second install of the
same app all bring requests whose team is not the one `auth.test` named at start. Grants
are per workspace, so none of these is obeyed: the sender is told, and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.texts import say

log = logging.getLogger(__name__)


def team_of(body: dict[str, Any]) -> str:
    """The workspace a request comes from: the user's own team where the payload says it."""
    user = body.get("user")
    if isinstance(user, dict) and isinstance(user.get("team_id"), str):
        return str(user["team_id"])
    team = body.get("team")
    if isinstance(team, dict) and isinstance(team.get("id"), str):
        return str(team["id"])
    return str(body.get("team_id") or "")


class OnlyOurWorkspace(AsyncMiddleware):
    """The workspace check in front of every listener. A middleware class: Bolt hands it
    the request as it is, without building the arguments of a middleware function for
    every request."""

    def __init__(self, ours: Callable[[], str], default_language: str) -> None:
        self.ours = ours
        self.default_language = default_language

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # (Bolt calls it by this name)
    ) -> BoltResponse:
        ours_now = self.ours()
        body = req.body
        theirs = team_of(body)
        if not ours_now or theirs == ours_now:
            await next()
            return resp
        log.warning(
            "refused a request from another workspace",
            extra={
                "team": theirs,
                "ours": ours_now,
                "kind": body.get("type") or body.get("command"),
            },
        )
        # A middleware that does not call next() answers Slack with what it returns.
        context = req.context
        ack = context.ack
        assert ack is not None
        text = say(self.default_language, "other_workspace")
        if body.get("command"):
            return await ack(response_type="ephemeral", text=text)
        if body.get("type") == "view_submission":
            field = next_input((body.get("view") or {}).get("blocks") or [])
            if field:
                return await ack(response_action="errors", errors={field: text})
            return await ack()
        if body.get("type") == "block_actions" and context.respond is not None:
            await context.respond(text=text, response_type="ephemeral", replace_original=False)
        # An event (the Home tab) is only acknowledged: the bot shows nothing elsewhere.
        return await ack()


def register(app: AsyncApp, *, ours: Callable[[], str], default_language: str) -> None:
    """Attach the workspace check in front of every listener: `ours` is the bot's own
    workspace ("" until `auth.test` named it at start: nothing is refused until then)."""
    app.use(OnlyOurWorkspace(ours, default_language))


def next_input(blocks: list[Any]) -> str:
    """The block id of a view's first input, where a refusal can be shown; "" if none."""
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "input" and block.get("block_id"):
            return str(block["block_id"])
    return ""
