"""Storage on its own: the schema's migrations keep every row, and Slack's side apart."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from bot.sharing.states import LIFECYCLE
from storage import Database, NewRequest, ShareRequests, SlackMessages
from storage.schema import SLACK_COLUMNS, migrations


def _old_database(path: Path) -> None:
    """A database as the bot left it before Slack's bookkeeping had a table of its own."""
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="split_slack_bookkeeping")
    common = {
        "action": "share",
        "user_id": "U1",
        "image_id": "70a599e0-31e7-49b7-b260-868f441e862b",
        "created_at": "2026-11-30T09:00:00.000000Z",
    }
    db.table("share_requests").insert_all(
        [
            {
                **common,
                "id": 1,
                "member_id": "m1",
                "state": "pending",
                "parent_channel": "C1",
                "parent_ts": "1700000000.000100",
                "announced_state": "pending",
                "announce_step": 0,
                "delivery_failures": 0,
                "via_response_url": 0,
            },
            {
                **common,
                "id": 2,
                "member_id": "m2",
                "state": "awaiting_approval",
                "card_channel": "CAPPROVE",
                "card_ts": "1700000000.000200",
                "via_response_url": 1,
                "announce_step": 1,
                "delivery_failures": 3,
            },
        ]
    )
    db.close()


def test_the_split_keeps_every_request_and_what_slack_was_told(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_database(path)

    database = Database(path)
    requests, messages = ShareRequests(database, lifecycle=LIFECYCLE), SlackMessages(database)

    columns = set(database.db.table("share_requests").columns_dict)
    assert columns.isdisjoint(SLACK_COLUMNS)
    first, second = requests.get(1), requests.get(2)
    assert first is not None and second is not None
    assert (first.member_id, first.state, second.member_id, second.state) == (
        "m1",
        "pending",
        "m2",
        "awaiting_approval",
    )
    told = messages.get(1)
    assert (told.parent_channel, told.parent_ts, told.announced_state) == (
        "C1",
        "1700000000.000100",
        "pending",
    )
    carded = messages.get(2)
    assert (carded.card_channel, carded.card_ts, carded.via_response_url) == (
        "CAPPROVE",
        "1700000000.000200",
        True,
    )
    # The step counter belongs to the state that was being announced.
    assert carded.steps_done("awaiting_approval") == 1 and carded.steps_done("queued") == 0
    assert carded.delivery_failures == 3
    database.close()


def test_a_request_slack_was_never_told_of_has_an_empty_slack_side(tmp_path: Path) -> None:
    database = Database(tmp_path / "new.db")
    told = SlackMessages(database).get(42)
    assert (told.parent_ts, told.card_ts, told.via_response_url, told.announced_state) == (
        None,
        None,
        False,
        None,
    )
    database.close()


def test_slack_side_updates_are_kept_field_by_field(tmp_path: Path) -> None:
    database = Database(tmp_path / "new.db")
    messages = SlackMessages(database)
    messages.update(7, parent_channel="C9", parent_ts="1.2")
    messages.update(7, card_channel="CAPPROVE", card_ts="3.4")
    told = messages.get(7)
    assert (told.parent_channel, told.parent_ts, told.card_channel, told.card_ts) == (
        "C9",
        "1.2",
        "CAPPROVE",
        "3.4",
    )
    database.close()


def test_waiting_requests_are_counted_and_filtered_in_the_database(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    requests = ShareRequests(database, lifecycle=LIFECYCLE)
    for i in range(30):
        image = "img-a" if i % 3 else "img-b"
        asker = "UAPP" if i == 7 else "UREQ"
        requests.record(NewRequest("share", asker, image, f"m{i}", "", "en", needs_approval=True))
    requests.record(NewRequest("share", "UREQ", "img-a", "direct", "", "en"))

    newest, total = requests.waiting_for(None, not_asked_by="UAPP", limit=5)
    assert total == 29  # every waiting request but the approver's own
    assert [r.member_id for r in newest] == ["m29", "m28", "m27", "m26", "m25"]
    only_b, total_b = requests.waiting_for({"img-b"}, not_asked_by="UAPP", limit=100)
    assert total_b == 10 and {r.image_id for r in only_b} == {"img-b"}
    assert requests.waiting_for(set(), not_asked_by="UAPP", limit=5) == ([], 0)
    assert requests.count_for_user("UREQ") == 30
    assert requests.count_for_user("UNOBODY") == 0
    database.close()
