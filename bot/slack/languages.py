"""Each Slack user's language, from their Slack locale, cached in memory and the database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.errors import StorageError
from bot.sharing.records import LanguageRecords
from bot.sharing.values import LANGUAGE_FRESH_FOR
from bot.slack.texts import language_of

log = logging.getLogger(__name__)

# People whose language one process remembers in memory; past this, the one unused for
# longest is forgotten (the database still knows it: one quick read brings it back).
REMEMBERED = 10_000
# After Slack could not tell a person's language (Slack down, or a person it does not
# know), the default stands for them this long before Slack is asked again: a failing
# question is not repeated for each of their commands.
ASK_AGAIN_SECONDS = 60.0
# After the table was read and did not know a person (the ack path looks, then the worker
# asks Slack moments later), it is not read again for them this long: Slack is asked.
NOT_STORED_SECONDS = 10.0


class Languages:
    """`en` or `ko` per user: `users.info` with `include_locale`, asked once a day.

    The ack path uses `known` (memory, then the database: no network); the worker
    and the listeners that run after the ack use `of`, which asks Slack when needed,
    once for all the commands of a user that wait on it.
    """

    def __init__(
        self,
        people: LanguageRecords,
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
        # People the table did not know a moment ago, and until when that holds.
        self._not_stored: OrderedDict[str, float] = OrderedDict()
        # A lock per user being asked about, and how many callers wait on it.
        self._asking: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._lock = threading.Lock()

    def known(self, user_id: str) -> str | None:
        """The user's language if the bot already knows it, without asking Slack."""
        remembered = self._remembered(user_id)
        if remembered is not None or self._not_stored_lately(user_id):
            return remembered
        try:
            cached = self.people.language(user_id)
        except StorageError as error:
            log.warning("cannot read a language", extra={"user": user_id, "error": str(error)})
            return None
        if cached:
            self._remember(user_id, cached)
        else:
            with self._lock:
                self._not_stored[user_id] = time.monotonic() + NOT_STORED_SECONDS
                self._not_stored.move_to_end(user_id)
                while len(self._not_stored) > self.remembered:
                    self._not_stored.popitem(last=False)
        return cached

    async def of(self, user_id: str, *, record: Callable[[str], object] | None = None) -> str:
        """The user's language; the default when Slack cannot tell.

        `record(language)`, when given, is run with the answer, once: in the same
        transaction as the cache of Slack's answer when Slack was asked (one write for
        both), by itself otherwise.
        """
        language = self.known(user_id)
        if language:
            if record is not None:
                record(language)
            return language
        asking, waiting = self._asking.setdefault(user_id, (asyncio.Lock(), [0]))
        waiting[0] += 1
        recorded = False
        try:
            async with asking:  # one question to Slack per user, however many wait for it
                # What an earlier waiter's question brought (kept in memory): the table was
                # read just above.
                language = self._remembered(user_id)
                if not language and not self._unanswered_lately(user_id):
                    language, recorded = await self._ask_slack(user_id, record)
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._asking[user_id]
        language = language or self.default
        if record is not None and not recorded:
            record(language)
        return language

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

    def _not_stored_lately(self, user_id: str) -> bool:
        with self._lock:
            until = self._not_stored.get(user_id)
            if until is None:
                return False
            if time.monotonic() < until:
                return True
            del self._not_stored[user_id]
            return False

    def _remember(self, user_id: str, language: str) -> None:
        with self._lock:
            self._not_stored.pop(user_id, None)
            self._known[user_id] = (language, time.monotonic() + LANGUAGE_FRESH_FOR.total_seconds())
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

    async def _ask_slack(
        self, user_id: str, record: Callable[[str], object] | None = None
    ) -> tuple[str | None, bool]:
        """Slack's answer (None when it could not tell), and whether `record` ran with it
        (in the transaction that cached it)."""
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
            return None, False
        language = language_of(locale, self.default)
        self._remember(user_id, language)
        try:
            self.people.remember(
                user_id, language, also=None if record is None else lambda: record(language)
            )
        except StorageError as error:
            # Only a cache: a database that cannot be written must not cost the user the answer.
            log.warning("cannot cache a language", extra={"user": user_id, "error": str(error)})
            return language, False
        return language, record is not None
