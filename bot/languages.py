"""Each Slack user's language, from their Slack locale, cached in the database."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.errors import StorageError
from bot.messages import language_of
from storage import People

log = logging.getLogger(__name__)


class Languages:
    """`en` or `ko` per user: `users.info` with `include_locale`, asked once a day."""

    def __init__(self, people: People, client: WebClient, default: str = "en") -> None:
        self.people = people
        self.client = client
        self.default = default

    def of(self, user_id: str) -> str:
        """The user's language; the default when Slack cannot tell."""
        cached = self.people.language(user_id)
        if cached:
            return cached
        try:
            answer = self.client.users_info(user=user_id, include_locale=True)
            locale = (answer.get("user") or {}).get("locale")
        except Exception as error:  # Slack down or slow: the default language will do
            log.warning("users.info failed", extra={"user": user_id, "error": type(error).__name__})
            return self.default
        language = language_of(locale, self.default)
        try:
            self.people.remember(user_id, language)
        except StorageError as error:
            # Only a cache: a database that cannot be written must not cost the user the answer.
            log.warning("cannot cache a language", extra={"user": user_id, "error": str(error)})
        return language
