"""Each Slack user's language, from their Slack locale, cached in memory and the database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.errors import StorageError
from bot.sharing.records import LanguageRecords
from bot.sharing.values import LANGUAGE_FRESH_FOR
from bot.slack.texts import language_of

log = logging.getLogger(__name__)
V = TypeVar("V")

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


class _Expiring(Generic[V]):
    """At most `most` entries, each until its time is up; past `most`, the one used
    longest ago is forgotten."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() >= entry[1]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, value: V, seconds: float) -> None:
        with self._lock:
            self._entries[key] = (value, time.monotonic() + seconds)
            self._entries.move_to_end(key)
            while len(self._entries) > self.most:
                self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


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
        self._known: _Expiring[str] = _Expiring(remembered)
        # People Slack could not tell about lately, and the table did not know lately.
        self._unanswered: _Expiring[bool] = _Expiring(remembered)
        self._not_stored: _Expiring[bool] = _Expiring(remembered)
        # A lock per user being asked about, and how many callers wait on it.
        self._asking: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def known(self, user_id: str) -> str | None:
        """The user's language if the bot already knows it, without asking Slack."""
        remembered = self._known.get(user_id)
        if remembered is not None or self._not_stored.get(user_id):
            return remembered
        try:
            cached = self.people.language(user_id)
        except StorageError as error:
            log.warning("cannot read a language", extra={"user": user_id, "error": str(error)})
            return None
        if cached:
            self._remember(user_id, cached)
        else:
            self._not_stored.put(user_id, True, NOT_STORED_SECONDS)
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
                language = self._known.get(user_id)
                if not language and not self._unanswered.get(user_id):
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

    def _remember(self, user_id: str, language: str) -> None:
        self._not_stored.forget(user_id)
        self._known.put(user_id, language, LANGUAGE_FRESH_FOR.total_seconds())

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
            self._unanswered.put(user_id, True, ASK_AGAIN_SECONDS)
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
