"""What Slack says of a user id (a person, a bot, a deactivated account, or nobody), and
who an email is."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.admin import Account
from bot.sharing.errors import DirectoryUnavailable
from bot.sharing.records import EmailRecords

log = logging.getLogger(__name__)


async def slack_account(
    client: AsyncWebClient, user_id: str, *, failed: Callable[[Exception], None] | None = None
) -> Account:
    """`users.info` of `user_id`, as an `Account`; UNCHECKED when Slack cannot be asked
    (then `failed`, if given, is handed the error, for whoever explains it)."""
    try:
        answer = await client.users_info(user=user_id)
    except SlackApiError as error:
        code = error.response.get("error") if error.response is not None else None
        if code in {"user_not_found", "users_not_found"}:
            return Account.UNKNOWN
        log.warning("users.info failed", extra={"user": user_id, "error": code})
        if failed is not None:
            failed(error)
        return Account.UNCHECKED
    except Exception as error:  # Slack down or slow
        log.warning("users.info failed", extra={"user": user_id, "error": type(error).__name__})
        if failed is not None:
            failed(error)
        return Account.UNCHECKED
    user = answer.get("user") or {}
    if user.get("deleted"):
        return Account.DELETED
    if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
        return Account.BOT
    return Account.PERSON


class SlackDirectory:
    """Who an email is in Slack (`users.lookupByEmail`), each answer remembered for a day
    (an email Slack does not know, for an hour): the rota's people, matched to mentions."""

    def __init__(self, client: AsyncWebClient, emails: EmailRecords | None) -> None:
        self.client = client
        # None: ask Slack every time, remember nothing (`check`, which writes nothing).
        self.emails = emails

    async def user_for_email(self, email: str) -> str | None:
        """The active person with that email, or None; `DirectoryUnavailable` when Slack
        could not be asked (the caller keeps what it had)."""
        if self.emails is not None:
            cached, fresh = self.emails.get(email)
            if fresh:
                return cached
        try:
            answer = await self.client.users_lookupByEmail(email=email)
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else None
            if code == "users_not_found":
                self._remember(email, None)
                return None
            if code == "missing_scope":
                raise DirectoryUnavailable(
                    "users.lookupByEmail needs the users:read.email scope: add it and"
                    " reinstall the app"
                ) from None
            raise DirectoryUnavailable(f"users.lookupByEmail failed ({code})") from None
        except Exception as error:  # Slack down or slow
            raise DirectoryUnavailable(
                f"users.lookupByEmail failed ({type(error).__name__})"
            ) from None
        user = answer.get("user") or {}
        person = not (user.get("deleted") or user.get("is_bot") or user.get("is_app_user"))
        user_id = str(user.get("id") or "") if person else ""
        self._remember(email, user_id or None)
        return user_id or None

    def _remember(self, email: str, user_id: str | None) -> None:
        if self.emails is not None:
            self.emails.remember(email, user_id)
