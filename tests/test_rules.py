"""Who may ask, share and decide: the rules on their own, without Slack or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sharing import policy as rules
from bot.sharing.policy import Refusal, UnknownMembers, WhyApproval
from bot.sharing.request import RequestState, ShareRequest
from bot.sharing.values import Role
from storage.database import stamp
from storage.requests import COLUMNS, request_of

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
roles = st.sets(st.sampled_from(list(Role)))


def waiting(**changes: object) -> ShareRequest:
    """A request awaiting approval, asked by UREQ, expiring in an hour."""
    values: dict[str, object] = dict.fromkeys(COLUMNS)
    values.update(
        id=1,
        action="share",
        user_id="UREQ",
        image_id="70a599e0-31e7-49b7-b260-868f441e862b",
        member_id="m1",
        state=RequestState.AWAITING_APPROVAL.value,
        created_at=stamp(NOW - timedelta(hours=1)),
        needs_approval=1,
        expires_at=stamp(NOW + timedelta(hours=1)),
    )
    values.update(changes)
    return request_of(values)


@pytest.mark.parametrize(
    ("held", "known", "policy", "why"),
    [
        ({Role.REQUESTER}, True, UnknownMembers.APPROVAL, WhyApproval.ROLE),
        ({Role.APPROVER}, True, UnknownMembers.DIRECT, WhyApproval.ROLE),
        ({Role.SHARER}, True, UnknownMembers.APPROVAL, None),
        ({Role.SHARER}, False, UnknownMembers.APPROVAL, WhyApproval.UNKNOWN_MEMBER),
        ({Role.SHARER}, False, UnknownMembers.DIRECT, None),
        ({Role.ADMIN}, False, UnknownMembers.APPROVAL, WhyApproval.UNKNOWN_MEMBER),
    ],
)
def test_why_a_request_needs_approval(
    held: set[Role], known: bool, policy: UnknownMembers, why: WhyApproval | None
) -> None:
    assert rules.why_approval(held, member_known=known, unknown_members=policy) == why


@given(roles)
def test_anyone_with_a_role_may_ask_and_nobody_without(held: set[Role]) -> None:
    assert rules.may_ask(held) == bool(held)


@given(roles)
def test_only_approvers_and_admins_decide(held: set[Role]) -> None:
    assert rules.may_decide(held) == bool(held & {Role.APPROVER, Role.ADMIN})


@pytest.mark.parametrize(
    ("request_", "user", "held", "refusal"),
    [
        (None, "UAPP", {Role.APPROVER}, Refusal.UNKNOWN),
        (waiting(), "USHARE", {Role.SHARER}, Refusal.NOT_APPROVER),
        (waiting(), "UREQ", {Role.APPROVER}, Refusal.OWN_REQUEST),
        (waiting(state="expired"), "UAPP", {Role.APPROVER}, Refusal.EXPIRED),
        (waiting(expires_at=stamp(NOW)), "UAPP", {Role.APPROVER}, Refusal.EXPIRED),
        (waiting(state="queued", decided_by="UAPP2"), "UAPP", {Role.ADMIN}, Refusal.DONE),
        (waiting(state="denied"), "UAPP", {Role.APPROVER}, Refusal.DONE),
        (waiting(), "UAPP", {Role.APPROVER}, None),
        (waiting(), "UADMIN", {Role.ADMIN}, None),
    ],
)
def test_who_may_decide_what_and_when(
    request_: ShareRequest | None, user: str, held: set[Role], refusal: Refusal | None
) -> None:
    assert rules.refusal(request_, user, held, NOW) == refusal


@given(roles, st.sampled_from(list(RequestState)), st.integers(-120, 120))
def test_a_decision_is_only_ever_allowed_on_a_live_waiting_request(
    held: set[Role], state: RequestState, minutes_left: int
) -> None:
    request = waiting(state=state.value, expires_at=stamp(NOW + timedelta(minutes=minutes_left)))
    allowed = rules.refusal(request, "UAPP", held, NOW) is None
    assert allowed == (
        rules.may_decide(held) and state is RequestState.AWAITING_APPROVAL and minutes_left > 0
    )
