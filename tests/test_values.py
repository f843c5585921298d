"""The domain's values: storage returns them, and the cloud's image maps onto the stored one."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import bot.sharing.values as values
from bot.scp import Image
from bot.sharing.images import image_row
from storage import Database, Grants, Images, KnownMembers, OnCall, SlackMessages


def test_the_cloud_image_maps_onto_the_stored_image_field_by_field() -> None:
    created = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    image = Image(
        id="7a1c0d2e-1111-4222-8333-944455556666",
        name="ubuntu-22.04-web",
        os_distro="ubuntu",
        scp_os_version="22.04",
        status="active",
        visibility="shared",
        size=2_147_483_648,
        min_disk=20,
        owner="owner-project",
        owner_account_name="platform",
        created_at=created,
        updated_at=None,
    )
    stored = image_row(image)
    assert stored == values.StoredImage(
        id="7a1c0d2e-1111-4222-8333-944455556666",
        name="ubuntu-22.04-web",
        os_distro="ubuntu",
        scp_os_version="22.04",
        status="active",
        visibility="shared",
        size=2_147_483_648,
        min_disk=20,
        owner="owner-project",
        owner_account_name="platform",
        created_at="2026-03-01T09:30:00.000000Z",
        updated_at=None,
    )
    # Every stored field comes from the cloud's image: none is left at its default.
    assert {f.name for f in fields(values.StoredImage)} <= set(Image.model_fields)


def test_storage_returns_the_domains_values(tmp_path: Path) -> None:
    database = Database(tmp_path / "bot.db")
    try:
        Grants(database).grant("U0ADMIN01", values.Role.ADMIN, by="cli")
        KnownMembers(database).add("A8F1C2D3E4", "Build account", by="U0ADMIN01")
        now = database.now()
        OnCall(database).add("U0ADMIN01", now, now.replace(year=now.year + 1), by="U0ADMIN01")
        Images(database).replace([values.StoredImage(id="img-1", name="web")], refreshed_at=now)
        SlackMessages(database).update(7, parent_channel="C0SHARES1", parent_ts="1.000")

        assert type(Grants(database).all()[0]) is values.Grant
        assert Grants(database).all()[0].role is values.Role.ADMIN
        assert type(KnownMembers(database).all()[0]) is values.KnownMember
        assert type(OnCall(database).all()[0]) is values.OnCallShift
        assert Images(database).get("img-1") == values.StoredImage(id="img-1", name="web")
        assert SlackMessages(database).get(7) == values.SlackData(
            7, parent_channel="C0SHARES1", parent_ts="1.000"
        )
    finally:
        database.close()


def test_a_stored_time_reads_back_as_the_moment_it_was() -> None:
    moment = datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC)
    assert values.stamp(moment) == "2026-12-08T01:02:03.456789Z"
    assert values.unstamp(values.stamp(moment)) == moment
    assert values.parse_stamp(None) is None
    assert values.parse_stamp("") is None
