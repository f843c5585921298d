"""`GET /metrics`: the process's figures (`bot.metrics`, one registry) and the database's,
read at scrape time.

Apart from the definitions, because reading the database needs the domain and storage.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Protocol

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from bot.sharing.request import RequestState
from storage.errors import StorageError

if TYPE_CHECKING:
    from storage.requests import Tally


class RequestFigures(Protocol):
    """What the database tells about requests (`storage.ShareRequests` does)."""

    def tally(self) -> Tally:
        """Counts by state, the oldest due request, approvals waiting."""


class RotaFigures(Protocol):
    """How old each stored on-call rota is (`storage.Rota` says)."""

    def ages(self) -> dict[str, float | None]:
        """Seconds since each source's last good read; None when never read."""


def _version() -> str:
    try:
        return metadata.version("share-image-bot")
    except metadata.PackageNotFoundError:
        return "unknown"


class _DatabaseCollector:
    """Figures read from the database at each scrape, and the build."""

    def __init__(self, requests: RequestFigures, rota: RotaFigures | None = None) -> None:
        self._requests = requests
        self._rota = rota
        self._build = (_version(), platform.python_version())

    def collect(self) -> Iterable[Metric]:
        build = GaugeMetricFamily(
            "share_image_build_info",
            "The running bot's version and Python version; always 1.",
            labels=["version", "python"],
        )
        build.add_metric(list(self._build), 1)
        yield build
        up = GaugeMetricFamily(
            "share_image_database_up", "1 when this scrape could read the database, else 0."
        )
        try:
            tally = self._requests.tally()
        except StorageError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        states = GaugeMetricFamily(
            "share_image_requests",
            "Share requests in the database, by state (every state, 0 when none).",
            labels=["state"],
        )
        for state in RequestState:
            states.add_metric([state.value], tally.by_state.get(state.value, 0))
        yield states
        yield GaugeMetricFamily(
            "share_image_oldest_due_seconds",
            "Seconds since the most overdue request became due for the worker (0 when none"
            " is due): growing means the worker is stuck, down or behind.",
            value=tally.oldest_due_seconds,
        )
        yield GaugeMetricFamily(
            "share_image_approvals_waiting",
            "Requests waiting for an approver's decision (not yet expired).",
            value=tally.awaiting_decision,
        )
        if self._rota is not None:
            yield from self._rota_ages(self._rota)

    def _rota_ages(self, rota: RotaFigures) -> Iterable[Metric]:
        try:
            ages = rota.ages()
        except StorageError:
            return
        family = GaugeMetricFamily(
            "share_image_oncall_rota_age_seconds",
            "Seconds since each on-call rota source (pagerduty, calendar) was last read well;"
            " past a day, cards ask the approvers instead.",
            labels=["source"],
        )
        for source, age in sorted(ages.items()):
            if age is not None:
                family.add_metric([source], age)
        yield family


class MetricsPage:
    """The text `GET /metrics` answers: the process's figures, always current, and the
    database's.

    Bounded whoever asks: one reading of the database at a time, and one younger than
    `max_age` seconds is served again, so a flood of requests costs one reading every
    `max_age` seconds (counting 100,000 requests by state takes tens of milliseconds).
    """

    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(
        self,
        requests: RequestFigures,
        *,
        rota: RotaFigures | None = None,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = _DatabaseCollector(requests, rota)
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, bytes] | None = None

    def render(self) -> bytes:
        """The Prometheus text exposition: the process's figures as they are now, the
        database's fresh or at most `max_age` seconds old."""
        return generate_latest(REGISTRY) + self._database_text()

    def _database_text(self) -> bytes:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < self._max_age:
                return self._last[1]
            body = generate_latest(self._database)
            self._last = (now, body)
            return body
