"""Who may do what: the policy's table over real grants, and the people it names.

The first part asks `Policy` about every role, action, own or other request, and a grant
for the image, for all images or for another image, over a real database. The second
drives the bot as Slack does and checks that the approval card and every refusal of an
approve or a deny name the same people, in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.sharing.admin import Administration
from bot.sharing.errors import LastAdmin
from bot.sharing.oncall import MayApprove, TypedShifts, WhoIsOnCall
from bot.sharing.policy import Action, Policy, allows, keeps_last_admin
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.values import Role
from storage import AuditLog, Database, Grants, KnownMembers, OnCall
from storage.database import stamp
from storage.requests import COLUMNS, request_of
from tests.fakes.slack import Call, FakeSlack
from tests.harness import IMAGE, MEMBER, OTHER_IMAGE, BotHarness

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ASKER = "UASKER"
SOMEONE = "USOMEONE"

A = Action
# What each role (held for the image concerned) lets its holder do, with their own
# request and with someone else's. `None`: no role at all.
TABLE: dict[tuple[Role | None, str], set[Action]] = {
    (None, "own"): {A.END, A.REMIND},
    (None, "other"): set(),
    (Role.REQUESTER, "own"): {A.ASK, A.END, A.EXTEND, A.REMIND},
    (Role.REQUESTER, "other"): {A.ASK},
    (Role.SHARER, "own"): {A.ASK, A.SHARE_DIRECTLY, A.END, A.EXTEND, A.REMIND},
    (Role.SHARER, "other"): {A.ASK, A.SHARE_DIRECTLY},
    (Role.APPROVER, "own"): {A.ASK, A.END, A.EXTEND, A.REMIND},
    (Role.APPROVER, "other"): {A.ASK, A.APPROVE, A.DENY},
    (Role.ADMIN, "own"): {A.ASK, A.SHARE_DIRECTLY, A.END, A.EXTEND, A.REMIND, A.ADMINISTER},
    (Role.ADMIN, "other"): {A.ASK, A.SHARE_DIRECTLY, A.APPROVE, A.DENY, A.END, A.EXTEND}
    | {A.ADMINISTER},
}


def expected(role: Role | None, scope: str, whose: str) -> set[Action]:
    """The table, for a grant of `role` for `scope` ("image", "all", "other image")."""
    if scope == "other image":
        role = None  # a grant for another image gives nothing for this one
    allowed = set(TABLE[(role, whose)])
    if scope == "image":
        allowed.discard(A.ADMINISTER)  # administering is for admins of all images only
    return allowed


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "bot.db", clock=lambda: NOW)
    yield db
    db.close()


def request_by(user: str, image: str = IMAGE, **changes: object) -> ShareRequest:
    """A request for `image` asked by `user`, waiting for approval for another hour."""
    values: dict[str, object] = dict.fromkeys(COLUMNS)
    values.update(
        id=1,
        action="share",
        user_id=user,
        image_id=image,
        member_id="m1",
        state=RequestState.AWAITING_APPROVAL.value,
        created_at=stamp(NOW - timedelta(hours=1)),
        needs_approval=1,
        expires_at=stamp(NOW + timedelta(hours=1)),
        duration="7d",
    )
    values.update(changes)
    return request_of(values)


@pytest.mark.parametrize("scope", ["image", "all", "other image"])
@pytest.mark.parametrize("role", [None, *Role], ids=lambda r: getattr(r, "value", "no role"))
def test_the_table_of_who_may_do_what(database: Database, role: Role | None, scope: str) -> None:
    grants = Grants(database)
    grants.grant("UHOLDER", Role.ADMIN, by="test")  # someone else, for all images
    if role is not None:
        image = {"image": IMAGE, "all": "", "other image": OTHER_IMAGE}[scope]
        grants.grant(SOMEONE, role, image, by="test")
    policy = Policy(grants, clock=lambda: NOW)

    wrong: list[str] = []
    for whose in ("own", "other"):
        asker = SOMEONE if whose == "own" else ASKER
        request = request_by(asker)
        own = whose == "own"
        found = {a for a in Action if policy.may(a, SOMEONE, IMAGE, own=own)}
        wanted = expected(role, scope, whose)
        if found != wanted:
            wrong.append(f"{whose}: allowed {sorted(found)}, expected {sorted(wanted)}")
        # The questions the service and the handlers ask give the same answers.
        as_asked = {
            A.APPROVE: policy.refusal(request, SOMEONE, NOW) is None,
            A.DENY: policy.refusal(request, SOMEONE, NOW, approving=False) is None,
            A.END: policy.may_end(request, SOMEONE),
            A.REMIND: policy.may_remind(request, SOMEONE),
            A.ASK: policy.may_ask(SOMEONE, IMAGE),
            A.ADMINISTER: policy.may_administer(SOMEONE),
        }
        for action, answer in as_asked.items():
            if answer != (action in wanted):
                wrong.append(f"{whose}: {action} answered {answer}")
    assert wrong == []


def test_a_refused_click_says_why_in_the_table_s_order(database: Database) -> None:
    grants = Grants(database)
    grants.grant("UAPP", Role.APPROVER, by="test")
    grants.grant("USHARE", Role.SHARER, by="test")
    policy = Policy(grants, clock=lambda: NOW)
    assert policy.refusal(None, "UAPP", NOW) == "unknown"
    assert policy.refusal(request_by("UAPP"), "USHARE", NOW) == "not_approver"
    assert policy.refusal(request_by("UAPP"), "UAPP", NOW) == "own_request"
    assert policy.refusal(request_by(ASKER, state="expired"), "UAPP", NOW) == "expired"
    assert policy.refusal(request_by(ASKER, state="denied"), "UAPP", NOW) == "done"
    first = request_by(ASKER, first_approved_by="UAPP", approvals=1, approvals_needed=2)
    assert policy.refusal(first, "UAPP", NOW) == "approved_already"
    assert policy.refusal(first, "UAPP", NOW, approving=False) is None  # may still deny


@pytest.mark.parametrize(
    ("role", "image", "operator", "kept"),
    [
        (Role.ADMIN, "", False, True),  # from Slack: the last admin for all images stays
        (Role.ADMIN, "", True, False),  # the command line's operator may
        (Role.ADMIN, IMAGE, False, False),  # an admin of one image is nobody's last resort
        (Role.APPROVER, "", False, False),
    ],
)
def test_the_last_admin_rule(
    database: Database, role: Role, image: str, operator: bool, kept: bool
) -> None:
    assert keeps_last_admin(role, image, operator=operator) is kept
    grants = Grants(database)
    grants.grant("UONLY", role, image, by="test")
    admin = Administration(
        grants=grants,
        members=KnownMembers(database),
        oncall=OnCall(database),
        audit=AuditLog(database),
    )
    if kept:
        with pytest.raises(LastAdmin):
            admin.revoke("UONLY", role, image, by="UONLY", last_admin_ok=operator)
        assert grants.roles("UONLY", image) == {role}
    else:
        assert admin.revoke("UONLY", role, image, by="UONLY", last_admin_ok=operator)
        assert grants.roles("UONLY", image) == set()


def test_whom_a_request_asks_never_its_asker_nor_its_first_approver(database: Database) -> None:
    grants = Grants(database)
    for user, role, image in [
        ("UAPP1", Role.APPROVER, ""),
        ("UAPP2", Role.APPROVER, ""),
        ("UIMG", Role.APPROVER, IMAGE),
        ("UELSEWHERE", Role.APPROVER, OTHER_IMAGE),
        ("UADMIN", Role.ADMIN, ""),
    ]:
        grants.grant(user, role, image, by="test")
    shifts = OnCall(database)
    policy = Policy(
        grants, who=WhoIsOnCall([TypedShifts(shifts), MayApprove(grants)], clock=lambda: NOW)
    )

    asked = policy.asked(request_by("UAPP2", first_approved_by="UIMG"))
    assert asked.people == ["UAPP1", "UADMIN"]
    assert policy.asked(request_by(ASKER)).people == ["UIMG", "UAPP1", "UAPP2", "UADMIN"]
    assert policy.approvers(request_by(ASKER)) == ["UIMG", "UAPP1", "UAPP2"]
    assert policy.admins(besides={"UADMIN"}) == []

    shifts.add("UAPP2", NOW - timedelta(hours=1), NOW + timedelta(hours=1), by="test")
    assert policy.asked(request_by(ASKER)).people == ["UAPP2"]  # on call comes first
    # On call but the asker: the next in line are asked, never nobody.
    assert policy.asked(request_by("UAPP2")).people == ["UIMG", "UAPP1", "UADMIN"]


def test_the_pure_table_agrees_with_a_role_less_stranger() -> None:
    assert [a for a in Action if allows(a, set())] == []
    assert [a for a in Action if allows(a, set(), own=True)] == [A.END, A.REMIND]


# -- the card and every refusal name the same people -------------------------------------


def strings(value: Any) -> Iterator[str]:
    """Every string inside a Block Kit structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def named(text: str) -> tuple[list[str], int]:
    """The people a line mentions, in order, and how many more it counts."""
    more = re.search(r"and (\d+) more", text)
    return re.findall(r"<@(U[A-Z0-9]+)>", text), int(more.group(1)) if more else 0


def card_names(card: Call) -> tuple[list[str], int]:
    [line] = [
        s
        for s in strings(card.args["blocks"])
        if s.startswith(("Nobody is on call; approvers:", "On call:"))
    ]
    return named(line.split(":", 1)[1])


def refusal_names(text: str) -> tuple[list[str], int]:
    prefix = "Only approvers and admins can decide share requests. Who may decide this one: "
    assert text.startswith(prefix), text
    return named(text[len(prefix) :])


def refusals(slack: FakeSlack, count: int) -> list[str]:
    answers = slack.wait_for(
        lambda: slack.responses() if len(slack.responses()) >= count else [],
        what=f"{count} ephemeral refusals",
    )
    return [str(a.body["text"]) for a in answers]


@pytest.mark.parametrize(
    "setting",
    ["approvers of the image first", "more than the card shows", "someone on call", "asker"],
)
def test_the_card_and_every_refused_decision_name_the_same_people(
    team: BotHarness, slack: FakeSlack, setting: str
) -> None:
    asker = "UREQ"
    team.grant("UIMG", Role.APPROVER, IMAGE)
    team.grant("UELSEWHERE", Role.APPROVER, OTHER_IMAGE)
    if setting == "more than the card shows":
        for number in range(3, 8):
            team.grant(f"UAPP{number}", Role.APPROVER)
    if setting == "someone on call":
        team.grant("UONCALL", Role.APPROVER)
        now = team.clock()
        team.services.oncall.add(
            "UONCALL", now - timedelta(hours=1), now + timedelta(hours=8), by="test"
        )
    if setting == "asker":
        asker = "UAPP1"  # an approver asking may not decide: named neither there nor here
    team.ack_text(f"{IMAGE} {MEMBER} QA run", user=asker)
    team.wait_state("awaiting_approval")
    card = team.parent("CAPPROVE")

    on_card = card_names(card)
    people, more = on_card
    assert asker not in people and "UELSEWHERE" not in people
    if setting == "someone on call":
        assert people == ["UONCALL"]
    else:
        assert people[:2] == ["UIMG", "UAPP1" if asker != "UAPP1" else "UAPP2"]
        assert more == (4 if setting == "more than the card shows" else 0)

    # Someone who may not decide: Approve, Deny, and a deny modal they got hold of.
    team.sender.click(card, "approve", user_id="USHARE")
    team.sender.click(card, "deny", user_id="USHARE")
    texts = refusals(slack, 2)
    team.sender.click(card, "deny", user_id="UAPP2" if asker != "UAPP2" else "UAPP1")
    modal = team.submit_deny("USHARE", "no").json()
    assert modal["response_action"] == "errors"
    texts.append(modal["errors"]["reason"])

    assert [refusal_names(t) for t in texts] == [on_card] * 3
    assert team.request().state == "awaiting_approval"
