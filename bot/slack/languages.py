"""Each Slack user's language, from their Slack locale, cached in memory and the database."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient

from bot.slack.texts import language_of
from storage import People
from storage.errors import StorageError
from storage.people import FRESH_FOR

log = logging.getLogger(__name__)


class Languages:
    """`en` or `ko` per user: `users.info` with `include_locale`, asked once a day.

    The ack path uses `known` (memory, then the database: no network); the worker
    and the listeners that run after the ack use `of`, which asks Slack when needed,
    once for all the commands of a user that wait on it.
    """

    def __init__(self, people: People, client: WebClient, default: str = "en") -> None:
        self.people = people
        self.client = client
        self.default = default
        self._known: dict[str, tuple[str, float]] = {}
        self._asking: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def known(self, user_id: str) -> str | None:
        """The user's language if the bot already knows it, without asking Slack."""
        remembered = self._known.get(user_id)
        if remembered is not None and time.monotonic() < remembered[1]:
            return remembered[0]
        try:
            cached = self.people.language(user_id)
        except StorageError as error:
            log.warning("cannot read a language", extra={"user": user_id, "error": str(error)})
            return None
        if cached:
            self._known[user_id] = (cached, time.monotonic() + FRESH_FOR.total_seconds())
        return cached

    def of(self, user_id: str) -> str:
        """The user's language; the default when Slack cannot tell."""
        language = self.known(user_id)
        if language:
            return language
        with self._lock:
            asking = self._asking.setdefault(user_id, threading.Lock())
        with asking:  # one question to Slack per user, however many callers wait for it
            language = self.known(user_id) or self._ask_slack(user_id)
        return language or self.default

    def _ask_slack(self, user_id: str) -> str | None:
        try:
            answer = self.client.users_info(user=user_id, include_locale=True)
            locale = (answer.get("user") or {}).get("locale")
        except Exception as error:  # Slack down or slow: the default language will do
            log.warning("users.info failed", extra={"user": user_id, "error": type(error).__name__})
            return None
        language = language_of(locale, self.default)
        self._known[user_id] = (language, time.monotonic() + FRESH_FOR.total_seconds())
        try:
            self.people.remember(user_id, language)
        except StorageError as error:
            # Only a cache: a database that cannot be written must not cost the user the answer.
            log.warning("cannot cache a language", extra={"user": user_id, "error": str(error)})
        return language
