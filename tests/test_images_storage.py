"""The stored image list: replaced whole, searched as the share form searches it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sharing.values import StoredImage
from storage import Database, Images

WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _image(
    image_id: str, name: str, created: str, visibility: str = "private"
) -> dict[str, object]:
    return {
        "id": image_id,
        "name": name,
        "os_distro": "rocky",
        "scp_os_version": "9.4",
        "status": "active",
        "visibility": visibility,
        "size": 10 * 1024**3,
        "min_disk": 100,
        "owner": "acc-1",
        "owner_account_name": None,
        "created_at": datetime.fromisoformat(created),
        "updated_at": created.replace("T", " "),  # the other form the cloud uses
        "unknown_field": "dropped",
    }


@pytest.fixture
def images(tmp_path: Path) -> Images:
    return Images(Database(tmp_path / "bot.db"))


SEEDED = [
    _image("70a599e0-31e7-49b7-b260-868f441e862b", "rocky9-golden", "2025-01-02T00:00:00+00:00"),
    _image(
        "81b6aaf1-0000-4000-8000-000000000001", "Ubuntu-22.04-Base", "2025-03-01T00:00:00+00:00"
    ),
    _image(
        "92c7bbf2-0000-4000-8000-000000000002",
        "ubuntu-public",
        "2025-04-01T00:00:00+00:00",
        "public",
    ),
    _image(
        "a3d8ccf3-0000-4000-8000-000000000003", "Ärzte-Ünit", "2025-02-01T00:00:00+00:00", "shared"
    ),
]


def test_a_new_database_has_no_list_and_no_refresh(images: Images) -> None:
    assert images.count() == 0
    assert images.refreshed_at() is None
    assert images.search("") == []
    assert images.get("70a599e0-31e7-49b7-b260-868f441e862b") is None


def test_replace_stores_the_whole_list_and_when(images: Images) -> None:
    assert images.replace(SEEDED, WHEN) == 4
    assert images.count() == 4
    assert images.refreshed_at() == WHEN
    row = images.get("70A599E0-31E7-49B7-B260-868F441E862B")
    assert row == StoredImage(
        id="70a599e0-31e7-49b7-b260-868f441e862b",
        name="rocky9-golden",
        os_distro="rocky",
        scp_os_version="9.4",
        status="active",
        visibility="private",
        size=10 * 1024**3,
        min_disk=100,
        owner="acc-1",
        owner_account_name=None,
        created_at="2025-01-02T00:00:00.000000Z",
        updated_at="2025-01-02T00:00:00.000000Z",
    )

    later = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    assert images.replace([row], later) == 1
    assert images.count() == 1
    assert images.refreshed_at() == later
    assert images.get("81b6aaf1-0000-4000-8000-000000000001") is None


def test_an_empty_answer_empties_the_list_but_records_the_refresh(images: Images) -> None:
    images.replace(SEEDED, WHEN)
    images.replace([], WHEN)
    assert images.count() == 0
    assert images.refreshed_at() == WHEN


def test_a_failing_replace_keeps_the_old_list(images: Images) -> None:
    images.replace(SEEDED, WHEN)
    with pytest.raises(ValueError):
        images.replace([SEEDED[0], {"name": "no id"}], datetime(2026, 12, 2, tzinfo=UTC))
    assert images.count() == 4
    assert images.refreshed_at() == WHEN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["Ubuntu-22.04-Base", "Ärzte-Ünit", "rocky9-golden"]),
        ("UBUNTU", ["Ubuntu-22.04-Base"]),
        ("golden", ["rocky9-golden"]),
        ("ärzte", ["Ärzte-Ünit"]),
        ("70a5", ["rocky9-golden"]),
        ("70A599E0-31E7", ["rocky9-golden"]),
        ("31e7", []),  # inside the id, not its start
        ("92c7", []),  # a public image is never offered
        ("%", []),
        ("_", []),
        ("nothing", []),
    ],
)
def test_search_by_any_part_of_the_name_or_the_start_of_the_id(
    images: Images, text: str, expected: list[str]
) -> None:
    images.replace(SEEDED, WHEN)
    assert [row.name for row in images.search(text)] == expected


def test_search_keeps_to_its_limit_newest_first(images: Images) -> None:
    many = [
        _image(
            f"{n:08x}-0000-4000-8000-000000000000",
            f"img-{n:03}",
            f"2025-01-01T00:{n // 60:02}:{n % 60:02}+00:00",
        )
        for n in range(24 * 6)
    ]
    images.replace(many, WHEN)
    found = images.search("img")
    assert len(found) == 100
    assert found[0].name == "img-143"
    assert found[-1].name == "img-044"
    assert [row.name for row in images.search("img", limit=2)] == ["img-143", "img-142"]
    assert images.search("img", limit=0) == []


def test_readers_in_other_threads_never_see_half_a_list(images: Images) -> None:
    images.replace(SEEDED, WHEN)
    counts: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            counts.append(images.count())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(20):
            images.replace(SEEDED[:2], WHEN)
            images.replace(SEEDED, WHEN)
    finally:
        stop.set()
        reader.join()
    assert set(counts) <= {2, 4}
