"""The Slack Web API client the bot talks through: slack-sdk's, counting every call.

Every method of `WebClient` (`chat_postMessage`, `users_info`, …) goes through `api_call`,
so counting there sees each call once, after slack-sdk's own retries: its method and
Slack's error code, or "ok".
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot import metrics


class CountedWebClient(WebClient):
    """A `WebClient` whose every call is counted in `share_image_slack_calls_total`."""

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        """Call `api_method` as `WebClient` does, and count the outcome."""
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            code = error.response.get("error") if isinstance(error.response.data, dict) else None
            shown = code if isinstance(code, str) else f"http_{error.response.status_code}"
            metrics.slack_call(api_method, shown)
            raise
        except TimeoutError:
            metrics.slack_call(api_method, "timeout")
            raise
        except Exception:
            metrics.slack_call(api_method, "unreachable")
            raise
        metrics.slack_call(api_method, "ok")
        return response
