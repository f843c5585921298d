"""Every renderer of `bot.slack.views` and `bot.slack.form`, one by one: a domain value in,
Block Kit out, in every language the bot speaks.

Each rendering is held to what Slack takes, three ways: the fake Slack's checks
(`tests.fakes.blockkit`: block counts, text lengths, ids unique...), `slack_sdk.models`
reading it back to the same dict (the library checks what a dict never would), and the
bot's own aims (a top-level text under 4,000 characters, action ids unique in the whole
message). Then what a reader sees: who, what, which buttons carry which request.

No server and no database: these run in well under a second each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import MISSING, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.scp.models import ImageMember
from bot.sharing.admin import Outcome
from bot.sharing.commands import MAX_NAME, MAX_REASON, Admin, AdminAction
from bot.sharing.errors import CommandError
from bot.sharing.oncall import RotaNow, Source, Stale
from bot.sharing.request import Action, RequestState, ShareRequest
from bot.sharing.values import (
    Grant,
    KnownMember,
    OnCallShift,
    Role,
    RotaEntry,
    SourceState,
    StoredImage,
)
from bot.slack import form, views
from bot.slack.form import ShareForm
from bot.slack.texts import languages
from bot.slack.views import DenyModal
from tests.fakes import blockkit
from tests.test_views import all_text

LANGUAGES = languages()
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
OTHER_IMAGE = "0b1c2d3e-0000-4000-8000-000000000001"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"
SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ASKED = NOW - timedelta(hours=3)
GB = 1024**3
ROCKY = StoredImage(
    id=IMAGE,
    name="rocky9-golden",
    os_distro="rocky",
    scp_os_version="9.4",
    status="active",
    visibility="private",
    size=10 * GB,
    owner_account_name="platform-team",
)
HANGUL = re.compile("[\uac00-\ud7a3]")


def hangul(text: str) -> bool:
    return HANGUL.search(text) is not None


# -- values to render ---------------------------------------------------------------------------


def request(**values: Any) -> ShareRequest:
    """A share request as the domain holds it; every field without a default is None."""
    given: dict[str, Any] = {
        f.name: None
        for f in fields(ShareRequest)
        if f.default is MISSING and f.default_factory is MISSING
    }
    given.update(
        id=7,
        action=Action.SHARE,
        user_id="UREQ",
        image_id=IMAGE,
        member_id=MEMBER,
        reason="QA run for release 4.2",
        state=RequestState.AWAITING_APPROVAL,
        created_at=ASKED,
        needs_approval=True,
    )
    given.update(values)
    return ShareRequest(**given)


# Every state a request can be in, and the variants of a state that read differently.
REQUESTS = [
    *(pytest.param(request(state=state), id=str(state)) for state in RequestState),
    pytest.param(request(action=Action.UNSHARE, state=RequestState.REMOVED), id="unshare"),
    pytest.param(
        request(state=RequestState.FAILED, error_kind="forbidden"), id="failed, forbidden"
    ),
    pytest.param(
        request(state=RequestState.DENIED, decided_by="UAPP", deny_reason="not this week"),
        id="denied with a reason",
    ),
    pytest.param(
        request(
            state=RequestState.ACCEPTED,
            duration="7d",
            ends_at=NOW + timedelta(days=7),
            made_shared_at=NOW,
        ),
        id="timed, made shared",
    ),
    pytest.param(request(state=RequestState.PENDING, takes_over=3), id="takes over"),
    pytest.param(request(state=RequestState.ACCEPTED, was_present=True), id="was present"),
    *(
        pytest.param(
            request(
                state=RequestState.REMOVED,
                removal_result=result,
                removed_by=by,
                duration="1d",
            ),
            id=f"removed, {result}",
        )
        for result, by in (("outside", None), ("gone", None), ("early", "UREQ"), ("ended", None))
    ),
]


def outcome(what: AdminAction, **values: Any) -> Outcome:
    """What an admin command did, as `Administration.dispatch` returns it."""
    command_values = {k: v for k, v in values.items() if k in {f.name for f in fields(Admin)}}
    rest = {k: v for k, v in values.items() if k not in command_values}
    return Outcome(Admin(what, **command_values), **rest)


SHIFT = OnCallShift(
    id=12,
    user_id="UONCALL",
    starts_at="2026-06-01T09:00:00.000000Z",
    ends_at="2026-06-01T18:00:00.000000Z",
)
PAST_SHIFT = OnCallShift(
    id=3,
    user_id="UOLD",
    starts_at="2026-05-01T09:00:00.000000Z",
    ends_at="2026-05-01T18:00:00.000000Z",
)
PAGERDUTY = RotaNow(
    Source.PAGERDUTY,
    SourceState("pagerduty", read_at=NOW - timedelta(minutes=4), tried_at=NOW, error=""),
    now=[RotaEntry("pagerduty", "alice@example.com", "UALICE", NOW - timedelta(hours=1), None)],
    next=[
        RotaEntry("pagerduty", "dave@example.com", "", NOW + timedelta(hours=8), None, "PSCHED1")
    ],
)
CALENDAR_FAILING = RotaNow(
    Source.CALENDAR,
    SourceState("calendar", read_at=None, tried_at=NOW, error="HTTP 404 <from> the feed's address"),
    now=[],
    next=[],
)

# Every admin command's outcome, as Slack's `admin …` shows it.
OUTCOMES = [
    pytest.param(outcome(AdminAction.GRANTS), id="grants, none"),
    pytest.param(
        outcome(
            AdminAction.GRANTS,
            grants=[
                Grant("UJANE", Role.SHARER, "", "UADMIN", "2026-05-01T00:00:00Z"),
                Grant("UJOE", Role.APPROVER, IMAGE, "cli:ops", "2026-05-02T00:00:00Z"),
            ],
        ),
        id="grants",
    ),
    pytest.param(outcome(AdminAction.GRANT, user_id="UJANE", role=Role.ADMIN), id="grant"),
    pytest.param(
        outcome(
            AdminAction.GRANT, user_id="UJANE", role=Role.SHARER, image_id=IMAGE, changed=False
        ),
        id="grant, held",
    ),
    pytest.param(
        outcome(
            AdminAction.REVOKE,
            user_id="UJANE",
            role=Role.SHARER,
            changed=False,
            held=[IMAGE, OTHER_IMAGE],
        ),
        id="revoke, held for images",
    ),
    pytest.param(
        outcome(
            AdminAction.REVOKE,
            user_id="UJANE",
            role=Role.SHARER,
            image_id=IMAGE,
            changed=False,
            held=[""],
        ),
        id="revoke, held for all",
    ),
    pytest.param(outcome(AdminAction.MEMBER_LIST), id="members, none"),
    pytest.param(
        outcome(
            AdminAction.MEMBER_LIST,
            members=[KnownMember(MEMBER, "QA account"), KnownMember("ops-1", "<!channel> *ops*")],
        ),
        id="members",
    ),
    pytest.param(
        outcome(AdminAction.MEMBER_ADD, member_id=MEMBER, name="QA <b>account</b>"), id="member add"
    ),
    pytest.param(
        outcome(
            AdminAction.MEMBER_ADD,
            member_id=MEMBER.upper(),
            name="QA team",
            known=KnownMember(MEMBER, "QA account"),
        ),
        id="member add, alike but for case",
    ),
    pytest.param(outcome(AdminAction.MEMBER_REMOVE, member_id=MEMBER), id="member remove"),
    pytest.param(
        outcome(AdminAction.MEMBER_REMOVE, member_id=MEMBER, changed=False), id="member unknown"
    ),
    pytest.param(
        outcome(
            AdminAction.ONCALL_ADD,
            user_id="UONCALL",
            starts=NOW,
            ends=NOW + timedelta(hours=9),
            added=12,
        ),
        id="oncall add",
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_REMOVE, shift_id=12, shift=SHIFT), id="oncall remove one"
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_REMOVE, shift_id=99, changed=False), id="oncall remove, no shift"
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_REMOVE, user_id="UONCALL", count=3), id="oncall remove all"
    ),
    pytest.param(outcome(AdminAction.ONCALL_LIST, now=NOW), id="oncall list, none"),
    pytest.param(
        outcome(
            AdminAction.ONCALL_LIST,
            now=NOW,
            shifts=[PAST_SHIFT, SHIFT],
            rotas=[PAGERDUTY, CALENDAR_FAILING],
            image_schedules={IMAGE: "P1ABCDE"},
        ),
        id="oncall list",
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_LIST, now=NOW, past=True, shifts=[PAST_SHIFT, SHIFT]),
        id="oncall list all",
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_LIST, now=NOW, shifts=[PAST_SHIFT]), id="oncall, only past"
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_SCHEDULE, image_id=IMAGE, schedule_id="P1ABCDE", before=None),
        id="schedule set",
    ),
    pytest.param(
        outcome(
            AdminAction.ONCALL_SCHEDULE,
            image_id=IMAGE,
            schedule_id="P1ABCDE",
            before="P0OLD",
            pagerduty=False,
        ),
        id="schedule changed, PagerDuty unread",
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_SCHEDULE, image_id=IMAGE, before="P0OLD"), id="schedule cleared"
    ),
    pytest.param(
        outcome(AdminAction.ONCALL_SCHEDULE, image_id=IMAGE, changed=False), id="schedule none"
    ),
    pytest.param(outcome(AdminAction.POLICY, image_id=IMAGE, approvals=2), id="policy two"),
    pytest.param(outcome(AdminAction.POLICY, image_id=IMAGE, approvals=1), id="policy one"),
    pytest.param(
        outcome(AdminAction.POLICY, image_id=IMAGE, approvals=2, changed=False), id="policy same"
    ),
    pytest.param(outcome(AdminAction.POLICY_LIST), id="policies, none"),
    pytest.param(outcome(AdminAction.POLICY_LIST, approvals={IMAGE: 2}), id="policies"),
]


# -- what Slack takes -----------------------------------------------------------------------------


def _elements(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for element in block.get("elements", []):
        if isinstance(element, dict):
            yield element
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield block[key]


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    """Every interactive element's action id, in order."""
    return [
        element["action_id"]
        for block in blocks
        for element in _elements(block)
        if "action_id" in element
    ]


def buttons(blocks: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each button's action id: its label and its value."""
    return {
        element["action_id"]: (element["text"]["text"], element.get("value", ""))
        for block in blocks
        for element in _elements(block)
        if element.get("type") == "button"
    }


# What a template left unfilled, or a catalog key shown instead of its text, would look like
# (an emoji's :short_code: is neither).
UNFILLED = re.compile(r"\{[a-z_]+\}|(?<![:\w])[a-z]+(?:_[a-z]+){2,}(?![:\w])")


def taken_message(rendered: tuple[str, list[dict[str, Any]] | None]) -> tuple[str, list[Any]]:
    """`(text, blocks)` as Slack takes them in a message, or the test fails naming why."""
    text, blocks = rendered
    assert blockkit.validate_message(blocks, text) == []
    assert text.strip() and len(text) <= views.TEXT_AIM
    assert not UNFILLED.search(text), text
    if blocks is None:
        return text, []
    # slack_sdk reads every block back to what was built (its to_dict checks its limits).
    assert [block.to_dict() for block in Block.parse_all(blocks)] == blocks
    ids = action_ids(blocks)
    assert len(ids) == len(set(ids)), ids
    return text, blocks


def taken_view(view: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """A view as `views.open` / `views.publish` take it, or the test fails naming why."""
    assert view["type"] == kind
    assert blockkit.validate_view(view, types=(kind,)) == []
    assert View(**view).to_dict() == view
    ids = action_ids(view["blocks"])
    assert len(ids) == len(set(ids)), ids
    assert not UNFILLED.search(all_text(view)), all_text(view)
    return view


def in_language(language: str, text: str) -> None:
    """Korean reads as Korean (no English fallback), English as English."""
    assert hangul(text) == (language == "ko"), text


# -- the request's messages -----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("shown", REQUESTS)
def test_the_parent_message_in_every_state(language: str, shown: ShareRequest) -> None:
    text, blocks = taken_message(views.parent(shown, language, "QA account", ROCKY, SEOUL))

    # Who asked, which image by name and which member by name; then where it stands.
    headline = blocks[0]["text"]["text"]
    assert "<@UREQ>" in headline and "`rocky9-golden`" in headline
    assert f"`{MEMBER}` (QA account)" in headline
    in_language(language, blocks[-1]["elements"][0]["text"])
    assert text.startswith(headline)
    # A reason is plain text: shown as typed, never read as markup.
    assert {
        "type": "plain_text",
        "text": f"{reason_label(language)}: QA run for release 4.2",
        "emoji": False,
    } in blocks[1]["elements"]
    assert action_ids(blocks) == []


def reason_label(language: str) -> str:
    return {"en": "Reason", "ko": "사유"}[language]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("who", "mentioned"),
    [
        pytest.param({"on_call": ["UON"], "approvers": ["UAPP"]}, ["UON"], id="on call first"),
        pytest.param(
            {"on_call": [], "approvers": ["UAPP1", "UAPP2"]}, ["UAPP1", "UAPP2"], id="approvers"
        ),
        pytest.param(
            {"on_call": [], "approvers": [f"UAPP{n}" for n in range(200)]},
            [f"UAPP{n}" for n in range(5)],
            id="200 approvers",
        ),
        pytest.param({"on_call": [], "approvers": []}, [], id="nobody"),
    ],
)
def test_the_approval_card(language: str, who: dict[str, list[str]], mentioned: list[str]) -> None:
    text, blocks = taken_message(
        views.approval_card(
            request(),
            language,
            member_name="QA account",
            why="your role asks for approval",
            asked="<!date^1780300800^{date_short} {time}|2026-06-01 09:00>",
            expires="<!date^1780387200^{date_short} {time}|2026-06-02 09:00>",
            image=ROCKY,
            **who,
        )
    )

    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == {"en": "Share request #7", "ko": "공유 요청 #7"}[language]
    assert re.findall(r"<@(U\w+)>", all_text(blocks)) == [
        "UREQ",
        *mentioned,
    ]
    # Both buttons carry the request, in the reader's language.
    assert buttons(blocks) == {
        "approve": ({"en": "Approve", "ko": "승인"}[language], "7"),
        "deny": ({"en": "Deny", "ko": "거절"}[language], "7"),
    }
    assert blocks[-1]["block_id"] == "decision-7"
    in_language(language, text)
    if len(who["approvers"]) == 200:
        assert {"en": "and 195 more approvers", "ko": "외 승인자 195명"}[language] in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_card_with_every_line_at_once(language: str) -> None:
    # Two approvals, the first given; a rota too old and one never read; a long wait; an
    # image that approving makes Shared.
    asking = request(approvals_needed=2, approvals=1, first_approved_by="UFIRST", duration="7d")
    text, blocks = taken_message(
        views.approval_card(
            asking,
            language,
            member_name="QA account",
            why="two approvals",
            on_call=["UON"],
            approvers=["UAPP"],
            asked="then",
            expires="later",
            image=ROCKY,
            stale=[Stale(Source.PAGERDUTY, timedelta(hours=30)), Stale(Source.CALENDAR, None)],
            waited="3h",
        )
    )

    seen = all_text(blocks)
    assert "<@UFIRST>" in seen and "<@UON>" in seen and "<@UAPP>" not in seen
    assert "PagerDuty" in seen and "`7d`" in seen and "10 GB" in seen
    assert buttons(blocks).keys() == {"approve", "deny"}
    in_language(language, text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("decided", "by"),
    [
        pytest.param(
            request(state=RequestState.QUEUED, decided_by="UAPP"), ["UAPP"], id="approved"
        ),
        pytest.param(
            request(
                state=RequestState.QUEUED,
                decided_by="UAPP",
                first_approved_by="UFIRST",
                approvals_needed=2,
                approvals=2,
            ),
            ["UFIRST", "UAPP"],
            id="approved by two",
        ),
        pytest.param(
            request(state=RequestState.DENIED, decided_by="UAPP", deny_reason="<!here> not now"),
            ["UAPP"],
            id="denied",
        ),
        pytest.param(request(state=RequestState.EXPIRED), [], id="expired"),
    ],
)
def test_the_decided_card_has_no_buttons(
    language: str, decided: ShareRequest, by: list[str]
) -> None:
    text, blocks = taken_message(views.decided_card(decided, language, "QA account", ROCKY))

    assert action_ids(blocks) == []
    assert re.findall(r"<@(U\w+)>", all_text(blocks[3:])) == by
    if decided.deny_reason:
        # As typed, in plain text: `<!here>` pings nobody.
        assert blocks[-1]["elements"][0] == {
            "type": "plain_text",
            "text": "<!here> not now",
            "emoji": False,
        }
    in_language(language, text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_waiting_message_shows_the_first_ask_and_the_latest_reminders(language: str) -> None:
    reached = [(ASKED + timedelta(hours=n), [f"UAPP{n}"]) for n in range(30)]
    text, blocks = taken_message(
        views.waiting_message(request(), language, "Waiting…", reached, most=3, zone=SEOUL)
    )

    assert text.startswith("Waiting… ")
    context = blocks[1]["elements"]
    assert len(context) == 10
    assert "<@UAPP0>" in context[0]["text"] and "<@UAPP29>" in context[-1]["text"]
    assert buttons(blocks) == {
        "approval_remind": ({"en": "Remind", "ko": "다시 알리기"}[language], "7")
    }
    assert blocks[-1]["block_id"] == "waiting-7"
    in_language(language, context[0]["text"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_once_decided_the_waiting_message_loses_its_button(language: str) -> None:
    text, blocks = taken_message(
        views.waiting_message(
            request(state=RequestState.QUEUED),
            language,
            "Approved.",
            [(ASKED, [])],
            most=3,
            zone=views.UTC_ZONE,
        )
    )

    assert action_ids(blocks) == []
    assert text.startswith("Approved. ")
    in_language(language, blocks[1]["elements"][0]["text"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reminder_before_a_share_ends(language: str) -> None:
    timed = request(state=RequestState.ACCEPTED, duration="7d", ends_at=NOW + timedelta(days=1))
    text, blocks = taken_message(views.reminder(timed, language, "QA account", ROCKY, SEOUL))

    assert buttons(blocks) == {
        "share_extend": ({"en": "Extend by 7d", "ko": "7d 연장"}[language], "7"),
        "share_remove_now": ({"en": "Remove now", "ko": "지금 해제"}[language], "7"),
    }
    assert blocks[-1]["block_id"] == "ending-7"
    in_language(language, text)

    done_text, done = taken_message(
        views.reminder_answered(timed, language, "QA account", "Extended.", ROCKY, SEOUL)
    )
    assert action_ids(done) == []
    assert done[0] == blocks[0] and done_text == f"{text} Extended."


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_rejected_open_share_offers_remove_now_only(language: str) -> None:
    text, blocks = taken_message(
        views.rejected_open(request(state=RequestState.REJECTED), "Rejected.", language)
    )

    assert list(buttons(blocks)) == ["share_remove_now"]
    in_language(language, text)


# -- the deny modal -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("number", [1, 7, 10**6, 10**17])
def test_the_deny_modal(language: str, number: int) -> None:
    view = taken_view(DenyModal.build(number, language, "C123", "1780300800.000100"), kind="modal")

    assert len(view["title"]["text"]) <= 24
    assert view["callback_id"] == "deny_reason"
    [field] = view["blocks"]
    assert field["block_id"] == "reason" and field["optional"] is True
    assert field["element"]["action_id"] == "reason_input"
    assert field["element"]["max_length"] == MAX_REASON
    in_language(language, view["submit"]["text"] + field["label"]["text"])
    # What comes back is what it carried.
    typed = {"reason": {"reason_input": {"type": "plain_text_input", "value": "  no  "}}}
    submitted = DenyModal.parse({**view, "state": {"values": typed}})
    assert (submitted.request_id, submitted.reason) == (number, "no")
    assert (submitted.card_channel, submitted.card_ts) == ("C123", "1780300800.000100")


# -- the lists ------------------------------------------------------------------------------------


def members(count: int) -> list[ImageMember]:
    statuses = ("accepted", "pending", "rejected")
    return [
        ImageMember(
            created_at="2026-05-01T00:00:00Z",
            image_id=IMAGE,
            member_id=f"m-{n:04d}",
            status=statuses[n % 3],
            updated_at=f"2026-05-{1 + n % 28:02d}T00:00:00Z",
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("count", [0, 1, 3, 500])
def test_an_images_member_list(language: str, count: int) -> None:
    shares = {"m-0000": request(state=RequestState.ACCEPTED, ends_at=None)}
    text, blocks = taken_message(
        views.member_listing(
            language,
            IMAGE,
            members(count),
            {"m-0000": "QA <!channel>"},
            removals={"m-0000": NOW + timedelta(days=2)},
            known=ROCKY,
            zone=SEOUL,
            shares=shares,
        )
    )

    seen = all_text(blocks)
    assert "`rocky9-golden`" in seen and text.startswith(blocks[0]["text"]["text"])
    in_language(language, seen)
    assert "<!channel>" not in seen
    if count == 0:
        assert len(blocks) == 1
    elif count < 100:
        # The name as typed, made inert; the removal the bot will make, and the share.
        assert "(QA &lt;!channel&gt;)" in seen
    if count == 500:
        # The latest 100 changes, and the rest counted.
        assert seen.count("`m-") == 100
        assert "500" in blocks[-1]["elements"][0]["text"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("count", [0, 1, 12])
def test_the_status_list(language: str, count: int) -> None:
    mine = [
        request(id=n + 1, state=RequestState.ACCEPTED, ends_at=NOW + timedelta(hours=n))
        for n in range(count)
    ]
    text, blocks = taken_message(views.status_listing(language, mine, NOW, {IMAGE: ROCKY}, SEOUL))

    assert all_text(blocks).count("#") == min(count, views.HOME_MINE_SHOWN)
    in_language(language, text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("shown", OUTCOMES)
def test_every_admin_answer(language: str, shown: Outcome) -> None:
    text, blocks = taken_message(views.admin_answer(language, shown, SEOUL))

    # A list comes as blocks, a change as one sentence.
    listed = shown.command.what in {
        AdminAction.GRANTS,
        AdminAction.MEMBER_LIST,
        AdminAction.ONCALL_LIST,
        AdminAction.POLICY_LIST,
    }
    assert bool(blocks) == listed
    assert "<!channel>" not in text + all_text(blocks)
    in_language(language, text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("count", [1, 700])
def test_long_admin_lists_stay_one_message(language: str, count: int) -> None:
    grants = [Grant(f"U{n:05d}", Role.SHARER, IMAGE, "UADMIN", "2026-05-01") for n in range(count)]
    known = [KnownMember(f"m-{n:05d}", "x" * MAX_NAME) for n in range(count)]
    shifts = [
        OnCallShift(
            n,
            f"U{n:05d}",
            f"2026-07-{1 + n % 28:02d}T00:00:00.000000Z",
            "2026-08-01T00:00:00.000000Z",
        )
        for n in range(1, count + 1)
    ]
    for rendered in (
        views.grants_listing(language, grants),
        views.known_members_listing(language, known),
        views.approvals_listing(language, {f"{IMAGE[:-5]}{n:05d}": 2 for n in range(count)}),
        views.oncall_listing(language, shifts, now=NOW, zone=SEOUL, rotas=[PAGERDUTY]),
    ):
        text, blocks = taken_message(rendered)
        if count > views.LIST_SHOWN:
            # The footer says how many there are, and so does the text.
            footer = blocks[-1]["elements"][0]["text"]
            assert str(count) in footer and text.endswith(footer)


# -- the Home tab ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_home_tab_of_a_requester(language: str) -> None:
    view = taken_view(views.home(language, [request()], None, now=NOW, zone=SEOUL), kind="home")

    assert view["blocks"][0]["type"] == "header"
    assert "divider" not in [b["type"] for b in view["blocks"]]
    in_language(language, all_text(view))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("mine", "waiting"), [(0, 0), (3, 2), (40, 400)])
def test_the_home_tab_of_an_approver(language: str, mine: int, waiting: int) -> None:
    own = [request(id=n + 1, reason="x" * MAX_REASON) for n in range(mine)]
    others = [request(id=1000 + n, user_id=f"U{n:04d}") for n in range(waiting)]
    cards = {r.id: f"https://slack.com/archives/C1/p{r.id}" for r in others}
    view = taken_view(
        views.home(
            language,
            own,
            others,
            cards,
            approval_channel="CAPPROVALS",
            mine_total=mine,
            waiting_total=waiting,
            now=NOW,
            images={IMAGE: ROCKY},
            zone=SEOUL,
        ),
        kind="home",
    )

    seen = all_text(view)
    assert [b["type"] for b in view["blocks"]].count("divider") == 1
    assert seen.count("https://slack.com/archives/C1/p") == min(waiting, views.HOME_WAITING_SHOWN)
    if waiting > views.HOME_WAITING_SHOWN:
        assert "<#CAPPROVALS>" in seen
    in_language(language, seen)


# -- the share form -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("note", ["", "The image list was last read <!date^1|then>."])
def test_the_share_form(language: str, note: str) -> None:
    view = taken_view(
        ShareForm.build(
            language,
            durations=["1d", "7d", "30d", "UNTIL_REMOVED"],
            default_duration="7d",
            channel="C123",
            note=note,
        ),
        kind="modal",
    )

    assert view["callback_id"] == "share_form"
    assert [b["block_id"] for b in view["blocks"]] == [
        "image",
        "member",
        "duration",
        "reason",
        "channel",
        *(["note"] if note else []),
    ]
    duration = view["blocks"][2]["element"]
    assert duration["initial_option"]["value"] == "7d"
    assert [o["value"] for o in duration["options"]] == ["1d", "7d", "30d", "UNTIL_REMOVED"]
    assert view["blocks"][3]["element"]["max_length"] == MAX_REASON
    assert view["blocks"][4]["element"]["initial_conversation"] == "C123"
    in_language(language, view["title"]["text"] + duration["options"][0]["text"]["text"])
    # Every problem a submission can have is shown under an input block of this view.
    problems = {
        "image": CommandError("image_id_invalid", token="'x'"),
        "member": CommandError("member_missing"),
        "duration": CommandError("duration_missing"),
        "reason": CommandError("reason_too_long", limit=str(MAX_REASON)),
    }
    answer = {"response_action": "errors", "errors": form.field_errors(language, problems)}
    assert blockkit.validate_submission_answer(answer, view) == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_menus_options(language: str) -> None:
    images = [
        replace(ROCKY, id=f"{IMAGE[:-4]}{n:04d}", name="n" * 200, status="queued" if n else None)
        for n in range(150)
    ]
    offered = form.image_options(language, images, OTHER_IMAGE)
    assert blockkit.validate_options({"options": offered}) == []
    assert len(offered) == 100 and offered[0]["value"] == OTHER_IMAGE

    known = [KnownMember(f"m-{n:03d}", "q" * MAX_NAME) for n in range(150)]
    offered = form.member_options(language, known, "new-member")
    assert blockkit.validate_options({"options": offered}) == []
    assert len(offered) == 100 and offered[-1]["value"] == "new-member"
    # A typed text that is no member id is never offered as one.
    assert form.member_options(language, [], "not an id") == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_form_says_when_the_image_list_is_empty_or_old(language: str) -> None:
    every = timedelta(minutes=10)
    said = [
        form.image_list_note(language, count=0, refreshed_at=None, now=NOW, every=every),
        form.image_list_note(language, count=0, refreshed_at=NOW, now=NOW, every=every),
        form.image_list_note(
            language, count=5, refreshed_at=NOW - timedelta(hours=1), now=NOW, every=every
        ),
    ]
    assert len(set(said)) == 3 and all(said)
    assert form.image_list_note(language, count=5, refreshed_at=NOW, now=NOW, every=every) == ""
    for note in said:
        taken_view(ShareForm.build(language, durations=["7d"], note=note), kind="modal")
        in_language(language, note)


# -- whatever people type -------------------------------------------------------------------------
# Reasons, names and image names are the users' and the cloud's: any text at their longest
# keeps every message within Slack's limits, in every language.

typed = st.text(st.characters(codec="utf-8"), max_size=MAX_REASON)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    reason=typed,
    name=st.text(st.characters(codec="utf-8"), max_size=MAX_NAME),
    image_name=st.text(st.characters(codec="utf-8"), max_size=255),
    number=st.integers(1, 10**18 - 1),
    language=st.sampled_from(LANGUAGES),
)
def test_any_typed_text_keeps_the_request_messages_within_slacks_limits(
    reason: str, name: str, image_name: str, number: int, language: str
) -> None:
    shown = request(id=number, reason=reason, deny_reason=reason, decided_by="UAPP")
    image = replace(ROCKY, name=image_name, os_distro=image_name[:40])
    renderings: list[Callable[[], tuple[str, list[Any]]]] = [
        lambda: views.parent(shown, language, name, image, SEOUL),
        lambda: views.approval_card(
            shown,
            language,
            member_name=name,
            why=reason,
            on_call=[],
            approvers=["UAPP"],
            asked="now",
            expires="later",
            image=image,
        ),
        lambda: views.decided_card(
            replace(shown, state=RequestState.DENIED), language, name, image
        ),
        lambda: views.reminder(replace(shown, duration="7d", ends_at=NOW), language, name, image),
    ]
    for render in renderings:
        text, blocks = render()
        assert blockkit.validate_message(blocks, text) == []
        assert len(text) <= views.TEXT_AIM
        assert [block.to_dict() for block in Block.parse_all(blocks)] == blocks
    view = DenyModal.build(number, language, "C1", "1.2")
    assert blockkit.validate_view(view, types=("modal",)) == []
