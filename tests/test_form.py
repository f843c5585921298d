"""The share form, driven as Slack drives it: `views.open` from the command and the
shortcut, `block_suggestion` while the user types, `view_submission` when they submit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.scp.sandbox import Sandbox
from bot.sharing.values import Role, StoredImage
from storage import Images
from tests.fakes.blockkit import validate_submission_answer
from tests.fakes.slack import FakeSlack, view_submission_payload
from tests.harness import IMAGE, MEMBER, MEMBER_NAME, OTHER_IMAGE, BotHarness, adds

PUBLIC_IMAGE = "11111111-2222-4333-8444-555555555555"
UNKNOWN_MEMBER = "ffffffffffffffffffffffffffffffff"


def store_images(bot: BotHarness, *images: StoredImage, ago: timedelta = timedelta()) -> None:
    """Put the account's image list in storage, as the worker's refresh does."""
    Images(bot.database).replace(images, refreshed_at=bot.clock() - ago)


def golden() -> list[StoredImage]:
    return [
        StoredImage(
            id=IMAGE,
            name="rocky9-golden",
            os_distro="rocky",
            scp_os_version="9.4",
            status="active",
            visibility="private",
            created_at="2026-11-01T00:00:00Z",
        ),
        StoredImage(
            id=OTHER_IMAGE,
            name="Ubuntu-22-GPU",
            os_distro="ubuntu",
            scp_os_version="22.04",
            status="active",
            visibility="shared",
            created_at="2026-11-02T00:00:00Z",
        ),
        StoredImage(
            id=PUBLIC_IMAGE,
            name="rocky9-public",
            os_distro="rocky",
            scp_os_version="9.4",
            status="active",
            visibility="public",
            created_at="2026-11-03T00:00:00Z",
        ),
    ]


def open_form(bot: BotHarness, **command: Any) -> dict[str, Any]:
    """Type `/share-image` with no text; the form Slack then shows."""
    before = len(bot.slack.opened_views())
    ack = bot.ack_text("", **command)
    assert ack.startswith("Opening the share form")
    assert "/share-image <image_id> <member_id> [--for <duration>] [reason]" in ack
    views = bot.slack.wait_for(
        lambda: bot.slack.opened_views()[before:] or None, what="the share form"
    )
    [view] = views
    return view


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def option_values(options: list[dict[str, Any]]) -> list[str]:
    return [o["value"] for o in options]


# -- opening -------------------------------------------------------------------------------


def test_the_command_without_text_opens_the_form_in_its_channel(
    bot: BotHarness, slack: FakeSlack
) -> None:
    store_images(bot, *golden())
    view = open_form(bot, channel="C7")

    assert view["callback_id"] == "share_form"
    assert view["title"]["text"] == "Share an image"
    kinds = {b["block_id"]: b["element"]["type"] for b in view["blocks"] if b["type"] == "input"}
    assert kinds == {
        "image": "external_select",
        "member": "external_select",
        "duration": "static_select",
        "reason": "plain_text_input",
        "channel": "conversations_select",
    }
    channel = block(view, "channel")
    assert channel["optional"] and channel["element"]["initial_conversation"] == "C7"
    assert channel["element"]["response_url_enabled"] is True
    duration = block(view, "duration")["element"]
    assert [o["text"]["text"] for o in duration["options"]] == [
        "1 day",
        "7 days",
        "30 days",
        "Until removed",
    ]
    assert [b["type"] for b in view["blocks"]].count("context") == 0  # a fresh list: no note
    [opened] = slack.calls("views.open")
    assert opened.ok
    assert bot.all_requests() == []


def test_help_still_shows_the_usage_and_opens_nothing(bot: BotHarness, slack: FakeSlack) -> None:
    assert "*Usage*" in bot.ack_text("help")
    assert slack.calls("views.open") == []


def test_the_shortcut_opens_the_form_with_no_channel(bot: BotHarness, slack: FakeSlack) -> None:
    store_images(bot, *golden())
    response = bot.sender.shortcut("share_image", user_id="U1")

    assert response.status_code == 200
    [view] = slack.wait_for(lambda: slack.opened_views() or None, what="the share form")
    assert view["callback_id"] == "share_form"
    assert "initial_conversation" not in block(view, "channel")["element"]


def test_durations_follow_the_settings_and_leave_out_those_above_the_maximum(
    make_bot: Callable[..., BotHarness],
) -> None:
    bot = make_bot(
        SHARE_DURATIONS="12h,7d,30d", SHARE_MAX_DURATION="7d", SHARE_DEFAULT_DURATION="12h"
    )
    bot.grant("U1", Role.SHARER)
    duration = block(open_form(bot), "duration")["element"]
    assert option_values(duration["options"]) == ["12h", "7d"]  # no 30d, no "until removed"
    assert duration["initial_option"]["value"] == "12h"


@pytest.mark.parametrize(
    ("stored", "ago", "note"),
    [
        pytest.param([], timedelta(), "image list was empty when I last read it", id="empty"),
        pytest.param("golden", timedelta(minutes=16), "The image list is out of date", id="stale"),
    ],
)
def test_the_form_says_when_the_image_list_is_empty_or_out_of_date(
    bot: BotHarness, stored: Any, ago: timedelta, note: str
) -> None:
    store_images(bot, *(golden() if stored == "golden" else []), ago=ago)
    view = open_form(bot)
    [context] = [b for b in view["blocks"] if b["type"] == "context"]
    assert note in context["elements"][0]["text"]


def test_a_list_three_refreshes_old_is_not_yet_out_of_date(bot: BotHarness) -> None:
    store_images(bot, *golden(), ago=timedelta(minutes=14))  # 300 s refreshes: 15 min is 3
    assert [b for b in open_form(bot)["blocks"] if b["type"] == "context"] == []


def test_a_trigger_used_late_cannot_open_the_form_and_the_user_is_told(
    bot: BotHarness, slack: FakeSlack
) -> None:
    trigger = slack.trigger_id()
    slack.age_trigger(trigger, 4)  # handed out four seconds ago: Slack's three have passed
    bot.ack_text("", trigger_id=trigger)

    [post] = slack.wait_for(lambda: slack.responses() or None, what="the explanation")
    assert "I couldn't open the form (expired_trigger_id)" in post.body["text"]
    assert [c.response["error"] for c in slack.calls("views.open")] == ["expired_trigger_id"]


def test_the_fake_takes_a_trigger_once_and_only_its_own(bot: BotHarness, slack: FakeSlack) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
    client = bot.services.announcer.client
    trigger = slack.trigger_id()
    assert bot.call(client.views_open(trigger_id=trigger, view=view))["ok"]
    for used in (trigger, "12345.67890.abcdef"):
        with pytest.raises(SlackApiError):
            bot.call(client.views_open(trigger_id=used, view=view))
    assert [c.response.get("error") for c in slack.calls("views.open")] == [
        None,
        "exchanged_trigger_id",
        "invalid_trigger_id",
    ]


# -- options -------------------------------------------------------------------------------


def test_images_are_suggested_from_the_stored_list_by_name_or_id_never_public(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    store_images(bot, *golden())
    view = open_form(bot)
    records = len(sandbox.records)

    by_name = bot.sender.suggest(view, "image_select", "ROCKY")
    assert option_values(by_name) == [IMAGE]  # the public rocky9-public is left out
    [rocky] = by_name
    assert rocky["text"]["text"] == "rocky9-golden · rocky 9.4 · 70a599e0…"
    assert rocky["description"]["text"] == IMAGE
    assert option_values(bot.sender.suggest(view, "image_select", "gpu")) == [OTHER_IMAGE]
    assert option_values(bot.sender.suggest(view, "image_select", IMAGE[:6])) == [IMAGE]
    assert option_values(bot.sender.suggest(view, "image_select", "")) == [OTHER_IMAGE, IMAGE]
    assert bot.sender.suggest(view, "image_select", PUBLIC_IMAGE) == []
    assert bot.sender.suggest(view, "image_select", "nothing-like-it") == []
    assert len(sandbox.records) == records  # no cloud call on the options path


def test_a_complete_image_id_the_list_lacks_is_still_offered(bot: BotHarness) -> None:
    store_images(bot, *golden()[:1])
    view = open_form(bot)
    [typed] = bot.sender.suggest(view, "image_select", OTHER_IMAGE.upper())
    assert typed["value"] == OTHER_IMAGE
    assert typed["text"]["text"] == f"{OTHER_IMAGE} (not in the image list)"


def test_at_most_a_hundred_images_are_offered_each_within_slacks_limits(
    bot: BotHarness,
) -> None:
    many = [
        StoredImage(
            id=f"00000000-0000-4000-8000-{n:012d}",
            name=f"build-{n}-" + "x" * 120,
            os_distro="rocky-linux-enterprise",
            scp_os_version="9.4.1-20261101",
            status="queued" if n % 2 else "active",
            visibility="private",
        )
        for n in range(150)
    ]
    store_images(bot, *many)
    options = bot.sender.suggest(open_form(bot), "image_select", "build")  # the fake checks
    assert len(options) == 100
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    assert any(o["description"]["text"].endswith(" · queued") for o in options)


@pytest.mark.parametrize("menu", ["image_select", "member_select"])
def test_a_search_text_longer_than_slack_sends_gets_no_options(
    bot: BotHarness, sandbox: Sandbox, menu: str
) -> None:
    long_name = "rocky9-" + "g" * 143  # 150 characters: still searched
    store_images(bot, *golden(), StoredImage(id=OTHER_IMAGE, name=long_name, visibility="private"))
    bot.services.members.add(MEMBER, "m" * 150, by="test")
    view = open_form(bot)
    records = len(sandbox.records)

    # A forged value of any length answers at once, with nothing to choose.
    for typed in ("x" * 151, "%_" * 5_000, "r" * 50_000, "rocky9-" * 10_000):
        assert bot.sender.suggest(view, menu, typed) == []
    found = bot.sender.suggest(view, menu, long_name if menu == "image_select" else "m" * 150)
    assert len(found) == 1
    assert len(sandbox.records) == records


def test_members_are_suggested_by_name_and_a_typed_id_only_when_valid(bot: BotHarness) -> None:
    bot.services.members.add("b0b0b0b0", "Billing QA", by="test")
    store_images(bot, *golden())
    view = open_form(bot)

    # "qa" is a valid member id too, so it is offered as one, after the known members.
    assert option_values(bot.sender.suggest(view, "member_select", "qa")) == [
        "b0b0b0b0",
        MEMBER,
        "qa",
    ]
    [qa] = bot.sender.suggest(view, "member_select", "QA acc")
    assert qa["text"]["text"] == f"{MEMBER_NAME} · a8f10467…"
    [typed] = bot.sender.suggest(view, "member_select", UNKNOWN_MEMBER)
    assert typed == {
        "text": {"type": "plain_text", "text": f"{UNKNOWN_MEMBER} (account id)", "emoji": False},
        "value": UNKNOWN_MEMBER,
    }
    # A known id typed is offered once, as the known member.
    assert option_values(bot.sender.suggest(view, "member_select", MEMBER)) == [MEMBER]
    for invalid in ("not an id", "a8f1/../x", "x" * 65, "а8f10467"):
        assert bot.sender.suggest(view, "member_select", invalid) == []


# -- submitting -------------------------------------------------------------------------------


def submit(bot: BotHarness, view: dict[str, Any], user: str = "U1", **chosen: Any) -> Any:
    values = {"image": IMAGE, "member": MEMBER, "duration": "7d", **chosen}
    return bot.sender.submit(view, values, user_id=user)


@pytest.mark.parametrize(
    ("chosen", "errors"),
    [
        pytest.param(
            {"image": "not-a-uuid"},
            {"image": "“not-a-uuid” is not an image id."},
            id="forged_image",
        ),
        pytest.param(
            {"image": f"{IMAGE}/../x", "member": "a8f1/../../members"},
            {"image": "is not an image id", "member": "is not a member id"},
            id="both_ids",
        ),
        pytest.param({"member": "x" * 65}, {"member": "longer than 64 characters"}, id="long"),
        pytest.param({"reason": "x" * 301}, {"reason": "under 300 characters"}, id="reason"),
        pytest.param(
            {"reason": "because\u202eevil"}, {"reason": "invisible or control"}, id="invisible"
        ),
        pytest.param({"reason": "nightly\tbuild"}, {"reason": "invisible or control"}, id="tab"),
        pytest.param(
            {"member": "ab\u00a0cd"},
            {"member": "has a U+00A0 NO-BREAK SPACE inside, and a member id has no spaces"},
            id="no_break_space",
        ),
        pytest.param({"duration": "0d"}, {"duration": "is zero"}, id="zero_duration"),
        pytest.param({"duration": "forever"}, {"duration": "is not a duration"}, id="duration"),
    ],
)
def test_a_bad_field_is_shown_next_to_it_and_nothing_is_recorded(
    bot: BotHarness,
    sandbox: Sandbox,
    slack: FakeSlack,
    chosen: dict[str, str],
    errors: dict[str, str],
) -> None:
    view = open_form(bot)
    answer = submit(bot, view, **chosen)

    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == set(errors)
    for field, words in errors.items():
        assert words in answer["errors"][field]
    assert bot.all_requests() == []
    assert adds(sandbox) == [] and slack.messages() == []


def test_a_duration_above_the_maximum_is_refused_naming_the_limit(
    make_bot: Callable[..., BotHarness],
) -> None:
    bot = make_bot(SHARE_MAX_DURATION="7d")
    bot.grant("U1", Role.SHARER)
    view = open_form(bot)
    answer = submit(bot, view, duration="30d")  # forged: the menu leaves it out
    assert answer["errors"] == {
        "duration": "“30d” is longer than the 7d a share may last here. Ask for 7d or less."
    }
    assert bot.all_requests() == []
    # "Until removed" forged is a share asked without --for: the maximum, as typed.
    assert submit(bot, view, duration="until_removed") == {}
    assert bot.request(1).duration == "7d"


def test_until_removed_is_offered_only_when_a_share_can_last_until_removed(
    make_bot: Callable[..., BotHarness],
) -> None:
    bot = make_bot(SHARE_DEFAULT_DURATION="7d")
    bot.grant("U1", Role.SHARER)
    duration = block(open_form(bot), "duration")["element"]
    assert option_values(duration["options"]) == ["1d", "7d", "30d"]
    assert duration["initial_option"]["value"] == "7d"


def test_no_role_is_shown_on_the_image_field(bot: BotHarness, slack: FakeSlack) -> None:
    view = open_form(bot, user="UNOBODY")
    answer = submit(bot, view, user="UNOBODY")
    assert answer == {
        "response_action": "errors",
        "errors": {
            "image": "You don't have a role that lets you share this image, so nothing was"
            " sent. An admin can grant you one."
        },
    }
    assert bot.all_requests() == [] and slack.messages() == []


def test_a_duplicate_is_shown_on_the_image_field_and_nothing_new_is_recorded(
    team: BotHarness,
) -> None:
    team.ack_text(f"{IMAGE} {MEMBER} --for 7d first", user="UREQ")
    team.wait_state("awaiting_approval")
    view = open_form(team, user="UREQ")
    answer = submit(team, view, user="UREQ")
    assert answer["errors"] == {
        "image": "Request #1 for this image and member is already awaiting approval; follow it"
        " in its thread. Nothing new was recorded."
    }
    # Another duration joins it all the same, and is told the durations differ.
    answer = submit(team, view, user="UREQ", duration="1d")
    assert answer["errors"] == {
        "image": "Request #1 for this image and member is already awaiting approval; follow it"
        " in its thread. Nothing new was recorded. The durations differ: that request is for"
        " `7d`, yours for `1d`. A request waiting for its answer keeps its own."
    }
    assert len(team.all_requests()) == 1 and team.request(1).duration == "7d"


def test_success_closes_the_form_and_the_thread_goes_to_the_chosen_channel(
    bot: BotHarness, sandbox: Sandbox
) -> None:
    store_images(bot, *golden())
    view = open_form(bot, channel="C1")
    image = bot.sender.suggest(view, "image_select", "rocky")[0]["value"]
    member = bot.sender.suggest(view, "member_select", "QA")[0]["value"]

    answer = bot.sender.submit(
        view,
        {
            "image": image,
            "member": member,
            "duration": "30d",
            "reason": "  nightly   QA ",
            "channel": "C2",
        },
        user_id="U1",
    )

    assert answer == {}  # the modal closes
    request = bot.wait_state("pending")
    assert (request.image_id, request.member_id, request.reason) == (IMAGE, MEMBER, "nightly QA")
    assert (request.channel_id, request.team_id, request.user_id) == ("C2", "T1", "U1")
    assert request.duration == "30d" and request.ends_at is not None
    assert request.response_url.endswith("/view-channel-C2")
    parent = bot.parent("C2")
    assert "asked to share image" in parent.args["text"]
    [reply] = bot.wait_thread(parent)
    assert "pending" in reply
    assert len(adds(sandbox)) == 1
    assert bot.slack.messages("C1") == []


def test_needing_approval_goes_on_exactly_as_if_typed(team: BotHarness) -> None:
    view = open_form(team, user="UREQ")
    assert submit(team, view, user="UREQ", member=UNKNOWN_MEMBER) == {}
    request = team.wait_state("awaiting_approval")
    assert request.needs_approval and request.approval_reason == "role"
    assert team.parent("CAPPROVE").args["text"]  # the card, in the approval channel
    [waiting] = team.wait_thread(team.parent("C1"))
    assert "This needs approval" in waiting


def test_from_the_shortcut_the_thread_goes_to_the_users_direct_messages(
    bot: BotHarness, slack: FakeSlack
) -> None:
    bot.sender.shortcut("share_image", user_id="U1")
    [view] = slack.wait_for(lambda: slack.opened_views() or None, what="the share form")
    assert submit(bot, view) == {}

    request = bot.wait_state("pending")
    assert request.channel_id == "U1" and request.response_url == ""
    parent = bot.parent("D1")  # Slack's DM of the bot with U1
    assert bot.wait_thread(parent)


def test_a_channel_the_bot_is_not_in_gets_the_commands_fallback(
    bot: BotHarness, slack: FakeSlack
) -> None:
    slack.not_in_channel.add("C9")
    view = open_form(bot)
    assert submit(bot, view, channel="C9") == {}
    bot.wait_state("pending")
    posts = slack.wait_for(lambda: slack.responses("view-channel-C9") or None, what="a reply")
    assert "pending" in posts[-1].body["text"]
    assert "invite" in posts[-1].body["text"].lower()
    assert slack.messages("C9") == []


def test_a_required_field_left_empty_cannot_be_submitted(bot: BotHarness) -> None:
    view = open_form(bot)
    with pytest.raises(AssertionError, match="'member' is required"):
        view_submission_payload(view, {"image": IMAGE, "member": None}, user_id="U1")


def test_errors_on_a_block_the_view_lacks_are_what_slack_refuses(bot: BotHarness) -> None:
    view = open_form(bot)
    assert validate_submission_answer({}, view) == []
    assert (
        validate_submission_answer({"response_action": "errors", "errors": {"image": "no"}}, view)
        == []
    )
    assert validate_submission_answer(
        {"response_action": "errors", "errors": {"nowhere": "no", "member": ""}}, view
    ) == [
        "answer.errors.nowhere: no input block with this block_id",
        "answer.errors.member: must be a non-empty string",
    ]


def test_a_forged_channel_is_not_a_place_to_post(bot: BotHarness, slack: FakeSlack) -> None:
    view = open_form(bot, channel="C1")
    payload = view_submission_payload(
        view, {"image": IMAGE, "member": MEMBER, "duration": "1d"}, user_id="U1"
    )
    payload["view"]["state"]["values"]["channel"]["channel_select"]["selected_conversation"] = (
        "<!channel>"
    )
    response = bot.sender.action(payload)
    assert response.status_code == 200 and not response.content
    request = bot.wait_state("pending")
    assert request.channel_id == "U1"  # not a conversation id: the user's DMs
    assert json.dumps([c.args for c in slack.messages()]).count("<!channel>") == 0


def test_the_manifest_declares_the_shortcut_and_the_options_url() -> None:
    manifest = (Path(__file__).parent.parent / "manifest.yml").read_text()
    assert "callback_id: share_image\n" in manifest
    assert "type: global\n" in manifest
    assert "message_menu_options_url: https://bot.example.com/slack/events\n" in manifest
