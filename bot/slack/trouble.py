"""Why a Slack Web API call failed, in an operator's words: what was tried, what came
back, what to do (for `check`, a start-up that stops, and the admin commands); the words
are the catalogs' (`[cli]`, `slack_*`)."""

from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.slack.texts import cli_say

# How long `check` waits for Slack's answer.
SLACK_TIMEOUT = 10

# Slack's error codes the catalogs advise on (`[cli]`'s `slack_advice_<code>`); any other
# code points to the method's documented errors.
ADVISED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "ratelimited",
        "team_access_not_granted",
    }
)


@dataclass(frozen=True)
class SlackTrouble:
    """Why a Slack call failed, in the operator's terms."""

    code: str  # Slack's error code, or what kind of failure ("HTTP 404", "unreachable")
    tried: str  # the URL
    answer: str  # the HTTP status and Slack's error, or why there was no answer
    advice: str  # what to do
    language: str = "en"  # the catalog the words come from

    @property
    def refused(self) -> bool:
        """Slack itself answered, with an error code (rather than no answer or no Slack)."""
        return self.code not in {"unreachable", "error"} and not self.code.startswith("HTTP ")

    def summary(self, setting: str) -> str:
        """`Slack refused SLACK_BOT_TOKEN (invalid_auth)`, or that Slack was not reached."""
        key = "slack_refused" if self.refused else "slack_not_reached"
        return cli_say(self.language, key, setting=setting, code=self.code)

    def lines(self) -> list[str]:
        """The three lines `check` prints under a failure."""
        return [
            f"    tried:  {self.tried}",
            f"    answer: {self.answer}",
            f"    do:     {self.advice}",
        ]

    def one_line(self) -> str:
        """Everything on one line, for a start-up that stops."""
        return cli_say(
            self.language,
            "slack_trouble_line",
            answer=self.answer,
            tried=self.tried,
            advice=self.advice,
        )


def slack_trouble(
    error: Exception,
    url: str,
    *,
    setting: str,
    timeout: float = SLACK_TIMEOUT,
    language: str = "en",
) -> SlackTrouble:
    """Explain a failed Slack Web API call to `url`, made with the token in `setting`
    (and a client that waits `timeout` seconds for an answer), in `language`."""

    def say(key: str, **values: object) -> str:
        return cli_say(language, key, **values)

    if isinstance(error, SlackApiError):
        response: Any = error.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status is not None and status >= 400 and (not code or "non-JSON" in code):
            advice = say("slack_advice_outage" if status >= 500 else "slack_advice_not_slack")
            answer = say("slack_answer_not_slack", status=status)
            return SlackTrouble(f"HTTP {status}", url, answer, advice, language)
        needed = data.get("needed") if isinstance(data, dict) else None
        advice = say(
            f"slack_advice_{code}" if code in ADVISED else "slack_advice_other",
            setting=setting,
            needed=f" ({needed})" if needed else "",
            method=url.rsplit("/", 1)[-1],
            code=code,
        )
        shown = f"HTTP {status}, " if status is not None else ""
        answer = say("slack_answer_error", shown=shown, code=code or say("slack_error_unknown"))
        return SlackTrouble(code or "error", url, answer, advice, language)
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        if isinstance(reason, TimeoutError | socket.timeout):
            why = say("slack_no_answer_within", seconds=f"{timeout:g}")
    elif isinstance(error, TimeoutError | socket.timeout):
        why = say("slack_no_answer_within", seconds=f"{timeout:g}")
    elif isinstance(error, aiohttp.ClientConnectorError):
        # The async client's failed connection: refused, no such host, TLS…
        # (asyncio's own wording names the address: the system's words say what happened)
        failure = error.os_error
        if isinstance(failure, socket.gaierror):
            # A name that does not resolve: its errno is the resolver's, not the system's.
            why = say("slack_host_not_found", host=error.host, why=failure.strerror or failure)
        else:
            why = os.strerror(failure.errno) if failure.errno else str(failure)
    else:
        why = f"{type(error).__name__}: {error}"
    return SlackTrouble(
        "unreachable",
        url,
        say("slack_no_answer", why=why),
        say("slack_advice_unreachable"),
        language,
    )
