"""What Slack says of a user id: a person, a bot, a deactivated account, or nobody."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sharing.admin import Account

log = logging.getLogger(__name__)


def slack_account(client: WebClient, user_id: str) -> Account:
    """`users.info` of `user_id`, as an `Account`; UNCHECKED when Slack cannot be asked."""
    try:
        answer = client.users_info(user=user_id)
    except SlackApiError as error:
        code = error.response.get("error") if error.response is not None else None
        if code in {"user_not_found", "users_not_found"}:
            return Account.UNKNOWN
        log.warning("users.info failed", extra={"user": user_id, "error": code})
        return Account.UNCHECKED
    except Exception as error:  # Slack down or slow
        log.warning("users.info failed", extra={"user": user_id, "error": type(error).__name__})
        return Account.UNCHECKED
    user = answer.get("user") or {}
    if user.get("deleted"):
        return Account.DELETED
    if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
        return Account.BOT
    return Account.PERSON
