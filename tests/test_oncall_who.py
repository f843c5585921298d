"""Who is asked for an image: the sources in order, stale rotas, the cap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.sharing.oncall import (
    MAX_ASKED,
    MayApprove,
    Source,
    Stale,
    StoredRota,
    TypedShifts,
    WhoIsOnCall,
)
from bot.sharing.values import Role, RotaEntry
from storage import Database, Grants, OnCall, OnCallSchedules, Rota

NOW = datetime(2026, 12, 7, 9, 1, tzinfo=UTC)
NINE = NOW.replace(minute=0)
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
OTHER = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"


class World:
    """Storage on a clock the test moves, and the sources over it."""

    def __init__(self, path: Path) -> None:
        self.now = NOW
        self.database = Database(path, clock=lambda: self.now)
        self.grants = Grants(self.database)
        self.shifts = OnCall(self.database)
        self.rota = Rota(self.database)
        self.schedules = OnCallSchedules(self.database)
        self.who = WhoIsOnCall(
            [
                TypedShifts(self.shifts),
                StoredRota(
                    Source.PAGERDUTY,
                    self.rota,
                    self.grants,
                    schedules=self.schedules,
                    default_schedules=["PSCHED1"],
                ),
                StoredRota(Source.CALENDAR, self.rota, self.grants),
                MayApprove(self.grants),
            ],
            clock=lambda: self.now,
        )

    def pagerduty(self, *entries: tuple[str, datetime, datetime, str]) -> None:
        self.rota.replace(
            "pagerduty",
            [
                RotaEntry("pagerduty", f"{user.lower()}@example.com", user, start, end, schedule)
                for user, start, end, schedule in entries
            ],
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path / "bot.db")
    made.grants.grant("UADMIN", Role.ADMIN, "", by="test")
    yield made
    made.database.close()


def test_the_rota_changes_at_nine(world: World) -> None:
    for user in ("UALICE", "UBOB", "UAPP"):
        world.grants.grant(user, Role.APPROVER, "", by="test")
    world.pagerduty(
        ("UALICE", NINE - timedelta(days=1), NINE, "PSCHED1"),
        ("UBOB", NINE, NINE + timedelta(days=1), "PSCHED1"),
    )

    at_8_59 = world.who.for_image(IMAGE, NINE - timedelta(minutes=1))
    at_9_01 = world.who.for_image(IMAGE)

    assert (at_8_59.people, at_8_59.source) == (["UALICE"], Source.PAGERDUTY)
    assert (at_9_01.people, at_9_01.source) == (["UBOB"], Source.PAGERDUTY)


def test_typed_shifts_override_the_rota(world: World) -> None:
    world.grants.grant("UBOB", Role.APPROVER, "", by="test")
    world.pagerduty(("UBOB", NINE, NINE + timedelta(days=1), "PSCHED1"))
    world.shifts.add("USWAP", NINE, NINE + timedelta(hours=2), by="UADMIN")

    asked = world.who.for_image(IMAGE)

    assert (asked.people, asked.source) == (["USWAP"], Source.TYPED)


def test_the_images_own_schedule_is_asked_for_that_image_only(world: World) -> None:
    for user in ("UALICE", "UCAROL"):
        world.grants.grant(user, Role.APPROVER, "", by="test")
    world.pagerduty(
        ("UALICE", NINE, NINE + timedelta(days=1), "PSCHED1"),
        ("UCAROL", NINE, NINE + timedelta(days=1), "PTEAM02"),
    )
    world.schedules.set(IMAGE, "PTEAM02", by="UADMIN")

    assert world.who.for_image(IMAGE).people == ["UCAROL"]
    assert world.who.for_image(OTHER).people == ["UALICE"]


def test_someone_on_the_rota_who_may_not_decide_is_not_asked(world: World) -> None:
    world.grants.grant("UAPP", Role.APPROVER, "", by="test")
    world.grants.grant("UIMG", Role.APPROVER, IMAGE, by="test")
    world.pagerduty(
        ("UNOROLE", NINE, NINE + timedelta(days=1), "PSCHED1"),
        ("", NINE, NINE + timedelta(days=1), "PSCHED1"),  # Slack knows nobody by the email
    )

    asked = world.who.for_image(IMAGE)
    elsewhere = world.who.for_image(OTHER)

    # Nobody on the rota may decide: everyone who may, the image's approvers first.
    assert (asked.people, asked.source) == (["UIMG", "UAPP", "UADMIN"], Source.APPROVERS)
    assert (elsewhere.people, elsewhere.source) == (["UAPP", "UADMIN"], Source.APPROVERS)


def test_with_no_approver_the_admins_are_asked(world: World) -> None:
    asked = world.who.for_image(IMAGE)
    assert (asked.people, asked.source, asked.stale) == (["UADMIN"], Source.APPROVERS, [])


def test_a_rota_older_than_a_day_is_skipped_and_said(world: World) -> None:
    world.grants.grant("UBOB", Role.APPROVER, "", by="test")
    world.grants.grant("UAPP", Role.APPROVER, "", by="test")
    world.pagerduty(("UBOB", NINE - timedelta(days=3), NINE + timedelta(days=3), "PSCHED1"))
    world.rota.failed("calendar", "ONCALL_ICAL_URL answered 404")

    world.now = NOW + timedelta(hours=23)
    fresh = world.who.for_image(IMAGE)
    world.now = NOW + timedelta(hours=25)
    stale = world.who.for_image(IMAGE)

    assert fresh.people == ["UBOB"]
    assert fresh.stale == []  # PagerDuty answered: the calendar was not needed
    assert (stale.people, stale.source) == (["UAPP", "UBOB", "UADMIN"], Source.APPROVERS)
    assert stale.stale == [
        Stale(Source.PAGERDUTY, timedelta(hours=25)),
        Stale(Source.CALENDAR, None),
    ]


def test_never_more_than_twenty_are_mentioned(world: World) -> None:
    people = [f"UPERSON{n:02d}" for n in range(30)]
    for user in people:
        world.grants.grant(user, Role.APPROVER, "", by="test")
    world.pagerduty(*((user, NINE, NINE + timedelta(hours=8), "PSCHED1") for user in people))

    asked = world.who.for_image(IMAGE)

    assert len(asked.mentioned) == MAX_ASKED == 20
    assert asked.mentioned == people[:20]
    assert len(asked.people) == 30  # counted on the card ("and N more"), not mentioned
