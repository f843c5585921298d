"""Why a Slack Web API call failed, in an operator's words: what was tried, what came
back, what to do (for `check`, a start-up that stops, and the admin commands)."""

from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

# How long `check` waits for Slack's answer.
SLACK_TIMEOUT = 10

# What to do about each error code Slack answers with; {setting} is the token's setting.
SLACK_ADVICE = {
    "invalid_auth": (
        "{setting} is not a valid token (mistyped, revoked, or of another workspace or app):"
        " copy it again from api.slack.com/apps → your app"
    ),
    "not_authed": (
        "no token reached Slack: {setting} is empty, or a proxy dropped the Authorization header"
    ),
    "account_inactive": (
        "the app was uninstalled or its bot deactivated: reinstall the app to the workspace"
        " and copy the new token into {setting}"
    ),
    "token_revoked": (
        "the token was revoked: reinstall the app and copy the new token into {setting}"
    ),
    "token_expired": (
        "the token expired (token rotation is on): turn rotation off for the app, reinstall it"
        " and copy the new token into {setting}"
    ),
    "not_allowed_token_type": (
        "{setting} holds the wrong kind of token: SLACK_BOT_TOKEN takes the Bot User OAuth"
        " Token (xoxb-…), SLACK_APP_TOKEN an app-level token (xapp-…) with connections:write"
    ),
    "missing_scope": (
        "the token lacks a scope{needed}: add it under OAuth & Permissions (or in"
        " manifest.yml) and reinstall the app"
    ),
    "ratelimited": "Slack is rate-limiting this app: wait a minute and run check again",
    "team_access_not_granted": (
        "the app is not installed in this workspace: install it, then copy its token into {setting}"
    ),
}


@dataclass(frozen=True)
class SlackTrouble:
    """Why a Slack call failed, in the operator's terms."""

    code: str  # Slack's error code, or what kind of failure ("HTTP 404", "unreachable")
    tried: str  # the URL
    answer: str  # the HTTP status and Slack's error, or why there was no answer
    advice: str  # what to do

    @property
    def refused(self) -> bool:
        """Slack itself answered, with an error code (rather than no answer or no Slack)."""
        return self.code not in {"unreachable", "error"} and not self.code.startswith("HTTP ")

    def summary(self, setting: str) -> str:
        """`Slack refused SLACK_BOT_TOKEN (invalid_auth)`, or that Slack was not reached."""
        if self.refused:
            return f"Slack refused {setting} ({self.code})"
        return f"Slack was not reached ({self.code})"

    def lines(self) -> list[str]:
        """The three lines `check` prints under a failure."""
        return [
            f"    tried:  {self.tried}",
            f"    answer: {self.answer}",
            f"    do:     {self.advice}",
        ]

    def one_line(self) -> str:
        """Everything on one line, for a start-up that stops."""
        return f"{self.answer} from {self.tried}; {self.advice}"


def slack_trouble(
    error: Exception, url: str, *, setting: str, timeout: float = SLACK_TIMEOUT
) -> SlackTrouble:
    """Explain a failed Slack Web API call to `url`, made with the token in `setting`
    (and a client that waits `timeout` seconds for an answer)."""
    if isinstance(error, SlackApiError):
        response: Any = error.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status is not None and status >= 400 and (not code or "non-JSON" in code):
            if status >= 500:
                advice = "Slack is having trouble: see https://slack-status.com, then try again"
            else:
                advice = (
                    "this is not Slack's Web API: check SLACK_API_URL"
                    " (leave it unset for https://slack.com/api/) and any proxy"
                )
            return SlackTrouble(f"HTTP {status}", url, f"HTTP {status}, not a Slack answer", advice)
        needed = data.get("needed") if isinstance(data, dict) else None
        template = SLACK_ADVICE.get(
            code, f"see https://api.slack.com/methods/{url.rsplit('/', 1)[-1]}#errors for {code}"
        )
        advice = template.format(setting=setting, needed=f" ({needed})" if needed else "")
        shown = f"HTTP {status}, " if status is not None else ""
        return SlackTrouble(code or "error", url, f"{shown}Slack error {code or 'unknown'}", advice)
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        if isinstance(reason, TimeoutError | socket.timeout):
            why = f"no answer within {timeout:g} s"
    elif isinstance(error, TimeoutError | socket.timeout):
        why = f"no answer within {timeout:g} s"
    elif isinstance(error, aiohttp.ClientConnectorError):
        # The async client's failed connection: refused, no such host, TLS…
        # (asyncio's own wording names the address: the system's words say what happened)
        failure = error.os_error
        if isinstance(failure, socket.gaierror):
            # A name that does not resolve: its errno is the resolver's, not the system's.
            why = f"{error.host} not found: {failure.strerror or failure}"
        else:
            why = os.strerror(failure.errno) if failure.errno else str(failure)
    else:
        why = f"{type(error).__name__}: {error}"
    return SlackTrouble(
        "unreachable",
        url,
        f"no answer ({why})",
        "check SLACK_API_URL, the network and any proxy (HTTPS_PROXY) between here and Slack",
    )
