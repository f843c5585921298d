"""Each Slack user's language, from their Slack locale, cached in memory and the database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.texts import language_of
from storage import People
from storage.errors import StorageError
from storage.people import FRESH_FOR

log = logging.getLogger(__name__)

# People whose language one process remembers in memory; past this, the one unused for
# longest is forgotten (the database still knows it: one quick read brings it back).
REMEMBERED = 10_000
# After Slack could not tell a person's language (Slack down, or a person it does not
# know), the default stands for them this long before Slack is asked again: a failing
# question is not repeated for each of their commands.
ASK_AGAIN_SECONDS = 60.0


class Languages:
    """`en` or `ko` per user: `users.info` with `include_locale`, asked once a day.

    The ack path uses `known` (memory, then the database: no network); the worker
    and the listeners that run after the ack use `of`, which asks Slack when needed,
    once for all the commands of a user that wait on it.
    """

    def __init__(
        self,
        people: People,
        client: AsyncWebClient,
        default: str = "en",
        *,
        remembered: int = REMEMBERED,
    ) -> None:
        self.people = people
        self.client = client
        self.default = default
        self.remembered = remembered
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # People Slack could not tell about, and when to ask again (at most `remembered`).
        self._unanswered: OrderedDict[str, float] = OrderedDict()
        # A lock per user being asked about, and how many callers wait on it.
        self._asking: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._lock = threading.Lock()

    def known(self, user_id: str) -> str | None:
        """The user's language if the bot already knows it, without asking Slack."""
        remembered = self._remembered(user_id)
        if remembered is not None:
            return remembered
        try:
            cached = self.people.language(user_id)
        except StorageError as error:
            log.warning("cannot read a language", extra={"user": user_id, "error": str(error)})
            return None
        if cached:
            self._remember(user_id, cached)
        return cached

    async def of(self, user_id: str) -> str:
        """The user's language; the default when Slack cannot tell."""
        language = self.known(user_id)
        if language:
            return language
        asking, waiting = self._asking.setdefault(user_id, (asyncio.Lock(), [0]))
        waiting[0] += 1
        try:
            async with asking:  # one question to Slack per user, however many wait for it
                # What an earlier waiter's question brought (kept in memory): the table was
                # read just above.
                language = self._remembered(user_id)
                if not language and not self._unanswered_lately(user_id):
                    language = await self._ask_slack(user_id)
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._asking[user_id]
        return language or self.default

    @property
    def remembered_now(self) -> int:
        """How many people's languages are in memory (never more than `remembered`)."""
        return len(self._known)

    @property
    def unanswered_now(self) -> int:
        """How many people Slack could not tell about lately (never more than `remembered`)."""
        return len(self._unanswered)

    @property
    def asking_now(self) -> int:
        """How many people are being asked about right now."""
        return len(self._asking)

    def _remembered(self, user_id: str) -> str | None:
        """The language this process knows for the user, while fresh."""
        with self._lock:
            remembered = self._known.get(user_id)
            if remembered is not None and time.monotonic() < remembered[1]:
                self._known.move_to_end(user_id)
                return remembered[0]
        return None

    def _remember(self, user_id: str, language: str) -> None:
        with self._lock:
            self._known[user_id] = (language, time.monotonic() + FRESH_FOR.total_seconds())
            self._known.move_to_end(user_id)
            while len(self._known) > self.remembered:
                self._known.popitem(last=False)

    def _unanswered_lately(self, user_id: str) -> bool:
        with self._lock:
            again_at = self._unanswered.get(user_id)
            if again_at is None:
                return False
            if time.monotonic() < again_at:
                return True
            del self._unanswered[user_id]
            return False

    async def _ask_slack(self, user_id: str) -> str | None:
        try:
            answer = await self.client.users_info(user=user_id, include_locale=True)
            locale = (answer.get("user") or {}).get("locale")
        except Exception as error:  # Slack down or slow: the default language will do
            log.warning("users.info failed", extra={"user": user_id, "error": type(error).__name__})
            with self._lock:
                self._unanswered[user_id] = time.monotonic() + ASK_AGAIN_SECONDS
                self._unanswered.move_to_end(user_id)
                while len(self._unanswered) > self.remembered:
                    self._unanswered.popitem(last=False)
            return None
        language = language_of(locale, self.default)
        self._remember(user_id, language)
        try:
            self.people.remember(user_id, language)
        except StorageError as error:
            # Only a cache: a database that cannot be written must not cost the user the answer.
            log.warning("cannot cache a language", extra={"user": user_id, "error": str(error)})
        return language
