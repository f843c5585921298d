"""The Block Kit renderers, without servers: what they say, and that long content stays
within Slack's limits and still says how much there is."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.scp.models import ImageMember
from bot.sharing import commands
from bot.sharing.oncall import Source, Stale
from bot.sharing.request import ShareRequest
from bot.sharing.values import Grant, KnownMember, OnCallShift, Role, StoredImage
from bot.slack import views
from bot.slack.views import DenyModal, MalformedSubmission
from storage.database import stamp
from storage.requests import request_of
from tests.fakes import blockkit

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
LONG_MEMBER = "m" * 32 + "-" + "0123456789abcdef0123456789abcde"  # 64 characters
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# -- Slack's limits, checked on what Slack receives -------------------------------------------
# The fake Slack's own checks (tests.fakes.blockkit), the library's, and these: the text
# fallback kept under 4,000 characters, and each limit named once more on its own.

LIMITS: dict[str, int] = {
    "section": 3000,
    "context_elements": 10,
    "context_text": 3000,
    "message_blocks": 50,
    "view_blocks": 100,
    "text": 40_000,
    "text_aim": 4_000,
    "header": 150,
    "button": 75,
    "modal_text": 24,
    "block_id": 255,
    "private_metadata": 3000,
}


def _block_problems(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    problems = []
    if len(block.get("block_id", "")) > LIMITS["block_id"]:
        problems.append("block_id too long")
    if kind == "section":
        if len(block["text"]["text"]) > LIMITS["section"]:
            problems.append(f"section of {len(block['text']['text'])} characters")
    elif kind == "context":
        elements = block["elements"]
        if not 1 <= len(elements) <= LIMITS["context_elements"]:
            problems.append(f"context with {len(elements)} elements")
        problems += [
            f"context element of {len(e['text'])} characters"
            for e in elements
            if len(e.get("text", "")) > LIMITS["context_text"]
        ]
    elif kind == "header":
        if block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > LIMITS["header"]:
            problems.append("header too long or not plain_text")
    elif kind == "actions":
        problems += [
            "button text too long"
            for e in block["elements"]
            if len(e["text"]["text"]) > LIMITS["button"]
        ]
    # The library's own checks, on the dict as Slack receives it.
    parsed = Block.parse(block)
    assert parsed is not None, block
    parsed.validate_json()
    return problems


def message_problems(text: str, blocks: list[dict[str, Any]] | None) -> list[str]:
    """Everything in a message Slack would refuse, or that breaks the aim for `text`."""
    problems = blockkit.validate_message(blocks, text)
    if not text:
        problems.append("no text fallback")
    if len(text) > LIMITS["text_aim"]:
        problems.append(f"text of {len(text)} characters")
    if blocks is not None:
        if len(blocks) > LIMITS["message_blocks"]:
            problems.append(f"{len(blocks)} blocks")
        for block in blocks:
            problems += _block_problems(block)
    json.dumps(blocks)  # plain dicts, sendable as JSON
    return problems


def view_problems(view: dict[str, Any]) -> list[str]:
    """Everything in a view Slack would refuse."""
    problems = blockkit.validate_view(view)
    if len(view["blocks"]) > LIMITS["view_blocks"]:
        problems.append(f"{len(view['blocks'])} blocks in a view")
    for key in ("title", "submit", "close"):
        if key in view and len(view[key]["text"]) > LIMITS["modal_text"]:
            problems.append(f"modal {key} too long")
    if len(view.get("private_metadata", "")) > LIMITS["private_metadata"]:
        problems.append("private_metadata too long")
    for block in view["blocks"]:
        problems += _block_problems(block)
    View(**view).validate_json()
    json.dumps(view)
    return problems


def all_text(blocks: list[dict[str, Any]] | dict[str, Any]) -> str:
    """Every text in the blocks, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return "\n".join(found)


# -- requests to render -----------------------------------------------------------------------


def make_request(**values: Any) -> ShareRequest:
    """A request with every field filled in as the store would."""
    defaults: dict[str, Any] = {}
    defaults.update(
        id=1,
        action="share",
        user_id="UREQ",
        image_id=IMAGE,
        member_id="a8f10467abfc4b87b64614ab36eb9ae4",
        state="awaiting_approval",
        created_at="2026-06-01T09:00:00.000000Z",
        needs_approval=1,
    )
    defaults.update(values)
    return request_of(defaults)


def card(**options: Any) -> tuple[str, list[dict[str, Any]]]:
    values: dict[str, Any] = {
        "member_name": "QA account",
        "why": "your role asks for approval",
        "on_call": [],
        "approvers": ["UAPP1", "UAPP2"],
        "asked": "<!date^1|today>",
        "expires": "<!date^2|tomorrow>",
    }
    values.update(options)
    request = values.pop("request", make_request(reason="QA run"))
    language = values.pop("language", "en")
    return views.approval_card(request, language, **values)


# -- parent and cards -------------------------------------------------------------------------


def test_the_parent_says_who_asked_what_and_where_it_stands() -> None:
    text, blocks = views.parent(make_request(reason="nightly", state="pending"), "en", "QA")

    assert text.startswith(f"<@UREQ> asked to share image `{IMAGE}` with `a8f1")
    assert "shared: the account can use it now; *pending* until it accepts it" in text
    assert [b["type"] for b in blocks] == ["section", "context", "context"]
    assert blocks[1]["elements"][0] == {
        "type": "plain_text",
        "text": "Reason: nightly",
        "emoji": False,
    }
    assert message_problems(text, blocks) == []


def test_a_hostile_reason_stays_plain_text() -> None:
    reason = "<!channel> *ship it* :fire: " + "x" * 300
    _, blocks = views.parent(make_request(reason=reason), "en", None)

    [element] = blocks[1]["elements"]
    assert element["type"] == "plain_text" and element["emoji"] is False
    assert element["text"].startswith("Reason: <!channel> *ship it*")
    assert len(element["text"]) <= len("Reason: ") + commands.MAX_REASON


def test_the_card_has_the_facts_and_two_buttons() -> None:
    text, blocks = card()

    assert [b["type"] for b in blocks] == ["header", "section", "context", "context", "actions"]
    assert blocks[0]["text"]["text"] == "Share request #1"
    assert blocks[2]["elements"][0]["text"] == "Reason: QA run"
    assert "Nobody is on call; approvers: <@UAPP1>, <@UAPP2>" in all_text(blocks)
    actions = blocks[-1]
    assert actions["block_id"] == "decision-1"
    assert [(e["action_id"], e["value"], e["style"]) for e in actions["elements"]] == [
        ("approve", "1", "primary"),
        ("deny", "1", "danger"),
    ]
    assert text.startswith("Share request #1: <@UREQ> asks to share")
    assert message_problems(text, blocks) == []


def test_200_approvers_are_five_mentions_and_a_count() -> None:
    approvers = [f"UAPP{n:03d}" for n in range(200)]

    text, blocks = card(approvers=approvers)

    who = blocks[3]["elements"][1]["text"]
    assert who == (
        "Nobody is on call; approvers: <@UAPP000>, <@UAPP001>, <@UAPP002>, <@UAPP003>,"
        " <@UAPP004> and 195 more approvers"
    )
    assert all_text(blocks).count("<@") == 5 + 1  # and the requester in the intro
    assert "and 195 more approvers" in text
    assert message_problems(text, blocks) == []


def test_on_call_people_are_mentioned_instead_of_approvers_and_capped_too() -> None:
    on_call = [f"UONCALL{n:02d}" for n in range(12)]

    text, blocks = card(on_call=on_call, approvers=[f"UAPP{n}" for n in range(50)])

    who = blocks[3]["elements"][1]["text"]
    assert who.startswith("On call: <@UONCALL00>, <@UONCALL01>")
    assert who.endswith("<@UONCALL04> and 7 more on call")
    assert "UAPP" not in json.dumps(blocks)
    assert message_problems(text, blocks) == []


def test_a_card_without_anyone_says_so() -> None:
    _, blocks = card(approvers=[])
    assert "Nobody is on call and no approver is set up." in all_text(blocks)


def test_the_korean_card_counts_the_rest_in_korean() -> None:
    text, blocks = card(language="ko", approvers=[f"UAPP{n:03d}" for n in range(200)])
    assert "<@UAPP004> 외 승인자 195명" in all_text(blocks)
    assert message_problems(text, blocks) == []


def test_the_people_line_keeps_its_own_context_element_whatever_the_why() -> None:
    # The why names the member (up to 64 characters and an 80-character name, escaped).
    why = "`" + LONG_MEMBER + "` (" + "&lt;" * 80 + ") is not a registered member"
    text, blocks = card(why=why * 20, approvers=[f"U{n:020d}" for n in range(300)])

    facts, who = blocks[3]["elements"]
    assert len(facts["text"]) <= 3000 and who["text"].endswith("and 295 more approvers")
    assert message_problems(text, blocks) == []


@pytest.mark.parametrize(
    ("state", "extra", "outcome"),
    [
        ("queued", {"decided_by": "UAPP1"}, "Approved by <@UAPP1>"),
        ("denied", {"decided_by": "UAPP2", "deny_reason": "<!here> no"}, "Denied by <@UAPP2>"),
        ("expired", {}, "Expired: nobody decided in time"),
    ],
)
def test_the_decided_card_keeps_the_facts_and_loses_the_buttons(
    state: str, extra: dict[str, Any], outcome: str
) -> None:
    request = make_request(state=state, reason="QA run", **extra)

    text, blocks = views.decided_card(request, "en", "QA account")

    assert "actions" not in [b["type"] for b in blocks]
    assert outcome in all_text(blocks) and outcome in text
    if state == "denied":
        assert blocks[-1]["elements"] == [
            {"type": "plain_text", "text": "<!here> no", "emoji": False}
        ]
    assert message_problems(text, blocks) == []


# -- the deny modal ---------------------------------------------------------------------------


def test_the_deny_modal_carries_the_request_and_asks_for_a_reason() -> None:
    view = DenyModal.build(42, "en", "CAPPROVE", "1700000000.000001")

    assert view["type"] == "modal" and view["callback_id"] == views.DENY_MODAL
    assert view["private_metadata"] == "42|CAPPROVE|1700000000.000001"
    assert view["title"]["text"] == "Deny request #42"
    [field] = view["blocks"]
    assert field["block_id"] == views.DENY_REASON_BLOCK and field["optional"] is True
    assert field["element"]["action_id"] == views.DENY_REASON_INPUT
    assert field["element"]["max_length"] == commands.MAX_REASON
    assert view_problems(view) == []


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_modal_title_fits_with_any_request_id(language: str) -> None:
    view = DenyModal.build(10**17, language, "C" * 20, "1700000000.000001")
    assert view_problems(view) == []


def submitted(view: dict[str, Any], reason: Any) -> dict[str, Any]:
    """The view as a view_submission brings it back."""
    typed = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
    return {**view, "id": "V1", "state": {"values": typed}}


def test_a_submission_reads_back_the_request_and_the_trimmed_reason() -> None:
    view = DenyModal.build(7, "en", "CAPPROVE", "1.2")

    submission = DenyModal.parse(submitted(view, "  use the prod image \n"))

    assert submission == views.DenySubmission(7, "use the prod image", "CAPPROVE", "1.2")
    # Read back whole: the handler refuses it with the share reason's words, not cut short.
    long = DenyModal.parse(submitted(view, "y" * 1000))
    assert long.reason == "y" * 1000


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"values": []},
        {"values": {"reason": "x"}},
        {"values": {"reason": {"reason_input": {"value": 5}}}},
    ],
)
def test_an_odd_state_is_an_empty_reason(state: Any) -> None:
    view = {**DenyModal.build(7, "en", "C", "1.2"), "state": state}
    assert DenyModal.parse(view).reason == ""


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        7,
        "",
        "x|C|1.2",
        "-1|C|1.2",
        "0|C|1.2",
        " 7|C|1.2",
        "1_0|C|1.2",
        "٧|C|1.2",
        "9" * 19,
        "7.0|C",
    ],
)
def test_forged_metadata_is_malformed(metadata: Any) -> None:
    view = {**DenyModal.build(7, "en", "C", "1.2"), "private_metadata": metadata}
    with pytest.raises(MalformedSubmission):
        DenyModal.parse(view)


def test_metadata_with_only_the_id_is_still_read() -> None:
    assert DenyModal.parse({"private_metadata": "12"}).request_id == 12


# -- Home -------------------------------------------------------------------------------------


def waiting_requests(count: int) -> list[ShareRequest]:
    """`count` requests waiting, oldest first, each for another 64-character member."""
    start = datetime(2026, 6, 1, tzinfo=UTC)
    return [
        make_request(
            id=n,
            member_id=f"{n:04d}" + LONG_MEMBER[4:],
            created_at=stamp(start + timedelta(minutes=n)),
        )
        for n in range(1, count + 1)
    ]


def card_links(requests: list[ShareRequest]) -> dict[int, str]:
    return {r.id: views.permalink("CAPPROVE", f"1700000000.{r.id:06d}") for r in requests}


def test_home_for_a_requester_has_only_their_requests() -> None:
    view = views.home("en", [make_request(state="pending")], None)

    text = all_text(view)
    assert view["type"] == "home" and "Your recent requests" in text
    assert "#1 share" in text and "Waiting for a decision" not in text
    assert view_problems(view) == []


def test_home_with_nothing_says_so() -> None:
    text = all_text(views.home("en", [], []))
    assert "You have no requests yet." in text and "Nothing is waiting for a decision." in text


def test_home_shows_20_waiting_requests_with_long_ids_in_sections_that_fit() -> None:
    waiting = waiting_requests(20)

    view = views.home("en", [], waiting, card_links(waiting), approval_channel="CAPPROVE")

    assert view_problems(view) == []
    text = all_text(view)
    assert all(f"#{n} share" in text for n in range(1, 21)) and "more waiting" not in text
    assert all(r.member_id in text for r in waiting)
    assert text.count("https://slack.com/archives/CAPPROVE/p") == 20
    lines = [line for line in text.split("\n") if line.startswith("• #")]
    assert lines[0].startswith("• #20 ") and lines[-1].startswith("• #1 ")  # newest first
    sections = [b for b in view["blocks"] if b["type"] == "section" and "#1" in b["text"]["text"]]
    assert len(sections) >= 2  # one section would have been over 3,000 characters


def test_home_shows_the_newest_waiting_requests_and_counts_the_rest() -> None:
    waiting = waiting_requests(500)

    view = views.home("en", [], waiting, card_links(waiting), approval_channel="CAPPROVE")

    assert view_problems(view) == []
    text = all_text(view)
    assert "#500 share" in text and f"#{500 - views.HOME_WAITING_SHOWN + 1} share" in text
    assert f"#{500 - views.HOME_WAITING_SHOWN} share" not in text
    assert "… and 450 more waiting for a decision: their cards are in <#CAPPROVE>." in text


def test_without_an_approval_channel_home_points_to_the_request_channels() -> None:
    view = views.home("en", [], waiting_requests(60))
    assert "and 10 more waiting for a decision: their cards are in the channels" in all_text(view)


def test_home_shows_your_newest_requests_and_counts_the_older() -> None:
    mine = list(reversed(waiting_requests(25)))  # newest first, as the store gives them

    view = views.home("ko", mine, None)

    assert view_problems(view) == []
    text = all_text(view)
    assert "#25 공유" in text and "#16 공유" in text and "#15 공유" not in text
    assert "이전 요청 15건이 더 있습니다" in text


# -- lists ------------------------------------------------------------------------------------


def image_members(count: int) -> list[ImageMember]:
    """`count` members, oldest first as the API lists them; every third accepted."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ImageMember(
            created_at=(start + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            image_id=IMAGE,
            member_id=f"{n:04d}" + LONG_MEMBER[4:],
            status="accepted" if n % 3 == 0 else "pending",
            updated_at=(start + timedelta(hours=n, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for n in range(count)
    ]


def test_a_short_member_list_reads_as_before() -> None:
    [member] = image_members(1)

    text, blocks = views.member_listing("en", IMAGE, [member], {member.member_id: "QA account"})

    assert text == (
        f"Members of image `{IMAGE}`:\n• `{member.member_id}` (QA account):"
        " *accepted: in their list* (added 2026-01-01 00:00 UTC, updated 2026-01-01 00:30 UTC)"
        "\nEvery member can use the image from the moment it is added; the status only says"
        " whether it shows in their own image list. Only removing a member takes access away."
    )
    assert message_problems(text, blocks) == []


def test_a_member_list_shows_its_times_in_the_bots_zone_as_every_message_does() -> None:
    [member] = image_members(1)
    ends = datetime(2026, 1, 8, 0, 30, tzinfo=UTC)
    seoul = ZoneInfo("Asia/Seoul")

    text, _ = views.member_listing(
        "en", IMAGE, [member], {}, {member.member_id.lower(): ends}, zone=seoul
    )

    assert (
        "(added 2026-01-01 09:00 Asia/Seoul, updated 2026-01-01 09:30 Asia/Seoul)"
        " · the bot removes it 2026-01-08 09:30 Asia/Seoul"
    ) in text
    odd = member.model_copy(update={"created_at": "yesterday"})
    assert "(added `yesterday`, updated" in views.member_listing("en", IMAGE, [odd], {})[0]


def test_status_shows_when_each_request_was_asked_in_the_bots_zone() -> None:
    asked = make_request(created_at="2026-12-07T17:35:00.000000Z")
    assert "(2026-12-07 17:35 UTC)" in views.status_listing("en", [asked])[0]
    text, _ = views.status_listing("en", [asked], zone=ZoneInfo("Asia/Seoul"))
    assert "(2026-12-08 02:35 Asia/Seoul)" in text and "UTC" not in text


def test_an_image_without_members() -> None:
    text, blocks = views.member_listing("en", IMAGE, [], {})
    assert text == f"Image `{IMAGE}` has no members." and message_problems(text, blocks) == []


def test_300_members_show_the_100_latest_changes_and_count_by_status() -> None:
    members = image_members(300)
    names = {m.member_id: "Partner <QA> & co " + "x" * 60 for m in members}

    text, blocks = views.member_listing("en", IMAGE, members, names)

    assert message_problems(text, blocks) == []
    shown = all_text(blocks)
    assert shown.count("• `") == 100
    assert members[-1].member_id in shown and members[-100].member_id in shown
    assert members[-101].member_id not in shown
    note = (
        "300 members; showing the 100 most recently updated. By status: pending 200 · accepted 100."
    )
    assert note in shown and note in text
    assert text.startswith(f"Members of image `{IMAGE}`:") and "&lt;QA&gt; &amp; co" in text


def test_700_grants_show_the_first_100_and_where_the_rest_are() -> None:
    grants = [
        Grant(f"U{n:05d}", Role.APPROVER, IMAGE if n % 2 else "", "UADMIN", "2026-01-01")
        for n in range(700)
    ]

    text, blocks = views.grants_listing("en", grants)

    assert message_problems(text, blocks) == []
    shown = all_text(blocks)
    assert shown.count("• <@U") == 100 and "<@U00099>" in shown and "<@U00100>" not in shown
    assert "700 grants; showing the first 100. `python -m bot grants`" in shown
    assert "700 grants; showing the first 100" in text
    assert "• <@U00000>: approver (all images)" in text


def test_a_few_grants_and_none() -> None:
    grant = Grant("U1", Role.ADMIN, "", "cli", "2026-01-01")
    assert views.grants_listing("en", [grant])[0] == "Grants:\n• <@U1>: admin (all images)"
    assert views.grants_listing("en", [])[0] == "No grants yet."


def test_300_known_members_show_the_first_100() -> None:
    known = [KnownMember(f"{n:04d}" + LONG_MEMBER[4:], "Partner QA " * 7) for n in range(300)]

    text, blocks = views.known_members_listing("ko", known)

    assert message_problems(text, blocks) == []
    assert "등록 멤버 300명 중 처음 100명" in all_text(blocks)
    assert views.known_members_listing("en", [])[0] == "No known members yet."


def shift(number: int, starts: datetime, hours: float = 8) -> OnCallShift:
    return OnCallShift(
        number, f"UONCALL{number}", stamp(starts), stamp(starts + timedelta(hours=hours))
    )


def test_oncall_lists_current_and_coming_shifts_and_counts_the_past() -> None:
    shifts = [
        shift(1, NOW - timedelta(days=3)),
        shift(2, NOW - timedelta(days=2)),
        shift(3, NOW - timedelta(hours=1)),  # on call now
        shift(4, NOW + timedelta(days=1)),
    ]

    text, blocks = views.oncall_listing("en", shifts, now=NOW)

    assert message_problems(text, blocks) == []
    assert "UONCALL1>" not in text and "UONCALL2>" not in text
    assert "<@UONCALL3>" in text and "<@UONCALL4>" in text
    assert "2 past shift(s) not shown; `/share-image admin oncall list all` shows them." in text

    everything, blocks = views.oncall_listing("en", shifts, now=NOW, past=True)
    assert all(f"<@UONCALL{n}>" in everything for n in range(1, 5))
    assert "past shift" not in everything
    assert message_problems(everything, blocks) == []


def test_oncall_with_only_past_shifts_says_so() -> None:
    text, blocks = views.oncall_listing("en", [shift(1, NOW - timedelta(days=3))], now=NOW)
    assert text.startswith("No current or coming on-call shifts.\n1 past shift(s) not shown")
    assert message_problems(text, blocks) == []
    assert views.oncall_listing("en", [], now=NOW)[0] == "No on-call shifts."


def test_many_coming_shifts_show_the_first_100() -> None:
    shifts = [shift(n, NOW + timedelta(hours=8 * n)) for n in range(1, 251)]
    text, blocks = views.oncall_listing("en", shifts, now=NOW)
    assert message_problems(text, blocks) == []
    assert "250 shifts; showing the first 100. `python -m bot oncall list`" in all_text(blocks)


def test_status_lists_the_recent_requests() -> None:
    text, blocks = views.status_listing("en", [make_request(id=2), make_request(id=1)])
    assert text.startswith("Your recent requests:\n• #2 share") and "• #1 share" in text
    assert message_problems(text, blocks) == []
    assert views.status_listing("en", [])[0] == "You have no requests yet."


# -- packing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 70, 2999, 3000, 5000])
def test_packing_keeps_whole_lines_in_order_within_the_limit(width: int) -> None:
    lines = [f"{n:03d}" + "x" * width for n in range(120)]

    texts = views.pack(lines, max_blocks=30)

    assert len(texts) <= 30 and all(len(t) <= 3000 for t in texts)
    got = "\n".join(texts).split("\n")
    assert len(got) == views.packed_count(texts)
    assert [line[:3] for line in got] == [f"{n:03d}" for n in range(len(got))]
    if width <= 70:
        assert got == lines  # everything fit


def test_a_listing_never_takes_more_blocks_than_a_message_has() -> None:
    lines = [f"• {n} " + "y" * 2900 for n in range(100)]
    text, blocks = views.listing("Header", lines, more=lambda shown: f"showing {shown}")
    assert message_problems(text, blocks) == []
    assert f"showing {len(blocks) - 2}" in all_text(blocks)


def test_clip_marks_the_cut() -> None:
    assert views.clip("abcdef", 4) == "abc…" and views.clip("abc", 3) == "abc"


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            "en",
            ":warning: The on-call rota from PagerDuty was last read 26 hours ago, so I'm not"
            " trusting it; asking the approvers instead.\n:warning: The on-call rota from the"
            " calendar could not be read yet; asking the approvers instead.\nNobody is on"
            " call; approvers: <@UAPP1>, <@UAPP2>",
        ),
        (
            "ko",
            ":warning: PagerDuty의 당직표는 26시간 전에 마지막으로 읽어 믿을 수 없으므로,"
            " 대신 승인자에게 묻습니다.\n"
            ":warning: 캘린더의 당직표를 아직 읽지 못해, 대신 승인자에게 묻습니다.\n"
            "당직자가 없습니다. 승인자: <@UAPP1>, <@UAPP2>",
        ),
    ],
)
def test_the_card_says_when_a_rota_was_too_old_to_trust(language: str, said: str) -> None:
    stale = [
        Stale(Source.PAGERDUTY, timedelta(hours=26, minutes=5)),
        Stale(Source.CALENDAR, None),
    ]
    text, blocks = card(language=language, stale=stale)

    context = [b for b in blocks if b["type"] == "context"][-1]
    assert context["elements"][-1]["text"] == said
    assert message_problems(text, blocks) == []


@pytest.mark.parametrize(
    ("visibility", "action", "language", "said"),
    [
        ("private", "share", "en", "approving also sets this private image to Shared"),
        ("private", "share", "ko", "승인하면 이 비공개 이미지가 Shared로도 바뀝니다"),
        ("shared", "share", "en", None),
        ("private", "unshare", "en", None),  # a removal changes no visibility
    ],
)
def test_the_card_says_before_the_click_when_approving_makes_the_image_shared(
    visibility: str, action: str, language: str, said: str | None
) -> None:
    image = StoredImage(id=IMAGE, name="rocky9-golden", visibility=visibility)
    text, blocks = card(request=make_request(action=action), image=image, language=language)
    shown = json.dumps(blocks, ensure_ascii=False)
    if said is None:
        assert "Shared" not in shown
    else:
        assert said in shown
    assert message_problems(text, blocks) == []


def test_a_rejected_open_ended_line_carries_remove_now_only() -> None:
    request = make_request(state="rejected", action="share")
    text, blocks = views.rejected_open(request, "`a8f1…` *rejected* image x.", "en")
    assert text.endswith("remove it now if that account no longer needs it.")
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [views.REMOVE_NOW]
    assert actions["elements"][0]["value"] == "1"
