"""Administration shared by the CLI and `/share-image admin`: every change audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.sharing.commands import Admin, shift_window
from bot.sharing.errors import CommandError, LastAdmin, NotAdmin
from bot.sharing.oncall import RotaNow, WhoIsOnCall, now_and_next
from bot.sharing.policy import keeps_last_admin, may_administer
from bot.sharing.values import Grant, KnownMember, OnCallShift, Role
from storage import AuditLog, Grants, ImagePolicies, KnownMembers, OnCall, OnCallSchedules


class Account(StrEnum):
    """What Slack says of a user id a role or a shift is for."""

    PERSON = "person"  # an active human user
    UNKNOWN = "unknown"  # users.info: user_not_found
    BOT = "bot"  # a bot user or an app (Slackbot included)
    DELETED = "deleted"  # deactivated
    UNCHECKED = "unchecked"  # Slack could not be asked


# The refusal for each account that may not hold a role or a shift.
REFUSED_ACCOUNTS = {
    Account.UNKNOWN: "user_unknown",
    Account.BOT: "user_is_bot",
    Account.DELETED: "user_deleted",
    Account.UNCHECKED: "user_unchecked",
}


async def _everyone_is_a_person(user_id: str) -> Account:
    return Account.PERSON


@dataclass(frozen=True)
class Outcome:
    """What an admin command did, for whoever tells the admin.

    `changed`: the grant was new, the revoked role was held, the member was known.
    `count`: shifts removed; `added`: the id of the shift `oncall add` added. A list
    command carries its rows and the time it was read.
    """

    command: Admin
    changed: bool = True
    count: int = 0
    grants: list[Grant] = field(default_factory=list)
    members: list[KnownMember] = field(default_factory=list)
    shifts: list[OnCallShift] = field(default_factory=list)
    now: datetime | None = None
    shift: OnCallShift | None = None  # the shift `oncall remove <id>` removed
    # `oncall list`: each rota's people now and next, and the images' own schedules.
    rotas: list[RotaNow] = field(default_factory=list)
    image_schedules: dict[str, str] = field(default_factory=dict)
    # `oncall schedule`: the image's schedule before; whether PagerDuty is read at all.
    before: str | None = None
    pagerduty: bool = True
    # `member add`: the member as it was known before (an id alike but for case), if it was.
    known: KnownMember | None = None
    # `revoke` of a role not held for that scope: the scopes it is held for ("": all images).
    held: list[str] = field(default_factory=list)
    # `revoke` that took away the last admin for all images (only the operator may).
    no_admin_left: bool = False
    added: int = 0
    # `grant`, `oncall add` by the operator: what Slack said of the user (None: not asked).
    account: Account | None = None
    # `policy list`: the images whose shares need more than one approval, and how many.
    approvals: dict[str, int] = field(default_factory=dict)


class Administration:
    """Grants, known members and on-call changes, each recorded with who made it."""

    def __init__(
        self,
        *,
        grants: Grants,
        members: KnownMembers,
        oncall: OnCall,
        audit: AuditLog,
        schedules: OnCallSchedules | None = None,
        who: WhoIsOnCall | None = None,
        pagerduty: bool = False,
        accounts: Callable[[str], Awaitable[Account]] = _everyone_is_a_person,
        policies: ImagePolicies | None = None,
    ) -> None:
        self.grants = grants
        self.policies = policies
        self.members = members
        self.oncall = oncall
        self.audit = audit
        self.schedules = schedules
        # Who is on call, for `oncall list`; and whether PagerDuty is set up at all.
        self.who = who
        self.pagerduty = pagerduty
        # Asks Slack what a user id is; commands from Slack grant only to people.
        self.accounts = accounts
        # The Slack workspace the bot serves, recorded with each grant ("" until known).
        self.team_id = ""

    async def check_person(self, user_id: str) -> None:
        """CommandError unless Slack says `user_id` is an active person."""
        problem = REFUSED_ACCOUNTS.get(await self.accounts(user_id))
        if problem:
            raise CommandError(problem, user=user_id)

    async def dispatch(
        self, command: Admin, *, by: str, now: datetime, operator: bool = False
    ) -> Outcome:
        """Carry out an admin command for `by`, from Slack or (`operator`) the command line.

        From Slack: `NotAdmin` unless `by` is an admin; a grant or a shift asks Slack
        whether the user is an active person first and is refused (CommandError) if not;
        `LastAdmin` when it would revoke the last admin for all images.

        The operator runs the bot's host and may repair it: no admin role needed, the last
        admin may go, and what Slack says of a user comes back in `Outcome.account` for a
        warning, the change made all the same.
        """
        if not operator and not self.is_admin(by):
            raise NotAdmin(by, command.what)
        what = command.what
        if what == "grants":
            return Outcome(command, grants=self.grants.all())
        if what == "member list":
            return Outcome(command, members=self.members.all())
        if what == "oncall list":
            return Outcome(
                command,
                shifts=self.oncall.all(),
                now=now,
                rotas=[now_and_next(rota, now) for rota in self.who.rotas] if self.who else [],
                image_schedules=self.schedules.all() if self.schedules else {},
            )
        if what == "oncall schedule":
            before = self.set_schedule(command.image_id, command.schedule_id, by=by)
            return Outcome(
                command,
                changed=before != (command.schedule_id or None),
                before=before,
                pagerduty=self.pagerduty,
            )
        if what == "policy list":
            return Outcome(command, approvals=self.policies.all() if self.policies else {})
        if what in {"grant", "revoke"}:
            assert command.role is not None
            if what == "grant":
                account = await self._account(command.user_id, operator)
                changed = self.grant(command.user_id, command.role, command.image_id, by=by)
                return Outcome(command, changed=changed, account=account)
            changed = self.revoke(
                command.user_id, command.role, command.image_id, by=by, last_admin_ok=operator
            )
            held = [] if changed else self.held(command.user_id, command.role, command.image_id)
            everyone = command.role is Role.ADMIN and not command.image_id
            left = changed and everyone and not self.grants.holders(Role.ADMIN)
            return Outcome(command, changed=changed, held=held, no_admin_left=left)
        if what == "member add":
            known = self.add_member(command.member_id, command.name, by=by)
            return Outcome(command, known=known)
        if what == "member remove":
            return Outcome(command, changed=self.remove_member(command.member_id, by=by))
        if what == "oncall add":
            assert command.starts is not None and command.ends is not None
            shift_window(command.starts, command.ends, now)  # before asking Slack anything
            account = await self._account(command.user_id, operator)
            number = self.add_shift(command.user_id, command.starts, command.ends, by=by)
            return Outcome(command, added=number, account=account)
        if what == "policy":
            return Outcome(
                command, changed=self.set_approvals(command.image_id, command.approvals, by=by)
            )
        assert what == "oncall remove", what
        if command.shift_id:
            removed = self.remove_shift(command.shift_id, by=by)
            return Outcome(command, changed=removed is not None, shift=removed)
        return Outcome(command, count=self.remove_shifts(command.user_id, by=by))

    async def _account(self, user_id: str, operator: bool) -> Account | None:
        """Slack's word on `user_id`: a refusal from Slack, a warning for the operator."""
        if not operator:
            await self.check_person(user_id)
            return None
        return await self.accounts(user_id)

    def held(self, user_id: str, role: Role, image_id: str) -> list[str]:
        """The scopes other than `image_id` that `user_id` holds `role` for ("": all images)."""
        scopes = [g.image_id for g in self.grants.all() if g.user_id == user_id and g.role is role]
        return [scope for scope in scopes if scope != image_id]

    def is_admin(self, user_id: str) -> bool:
        """Whether `user_id` is an admin for all images."""
        return may_administer(self.grants.roles(user_id, ""))

    def grant(self, user_id: str, role: Role, image_id: str, *, by: str) -> bool:
        """Give a role; False if already held."""
        added = self.grants.grant(user_id, role, image_id, by=by, team_id=self.team_id)
        if added:
            self.audit.record(by, "grant", f"{user_id} {role.value} {image_id or '*'}")
        return added

    def revoke(
        self, user_id: str, role: Role, image_id: str, *, by: str, last_admin_ok: bool = False
    ) -> bool:
        """Take a role away; False if not held. `LastAdmin` for the last admin for all
        images, unless `last_admin_ok` (the command line, whose operator can grant again)."""
        removed = self.grants.revoke(
            user_id,
            role,
            image_id,
            keep_last_admin=keeps_last_admin(role, image_id, operator=last_admin_ok),
        )
        if removed is None:
            raise LastAdmin(user_id)
        if removed:
            self.audit.record(by, "revoke", f"{user_id} {role.value} {image_id or '*'}")
        return removed

    def add_member(self, member_id: str, name: str, *, by: str) -> KnownMember | None:
        """Register a known member, or rename the one whose id is alike but for case;
        the record it had before (None: it is new)."""
        before = self.members.add(member_id, name, by=by)
        self.audit.record(by, "member add", f"{member_id} {name}")
        return before

    def remove_member(self, member_id: str, *, by: str) -> bool:
        """Forget a known member."""
        removed = self.members.remove(member_id)
        if removed:
            self.audit.record(by, "member remove", member_id)
        return removed

    def add_shift(self, user_id: str, starts: datetime, ends: datetime, *, by: str) -> int:
        """Put someone on call; CommandError when they have that very shift already, or
        the shift breaks `shift_window`'s rules (over already, longer than a month…)."""
        shift_window(starts, ends, self.oncall.now())
        shift = self.oncall.add(user_id, starts, ends, by=by)
        if shift is None:
            raise CommandError("oncall_exists", user=user_id)
        self.audit.record(by, "oncall add", f"{user_id} {starts.isoformat()} {ends.isoformat()}")
        return shift

    def remove_shift(self, shift_id: int, *, by: str) -> OnCallShift | None:
        """Remove one shift by its id; the shift, or None when there is none."""
        removed = self.oncall.remove_one(shift_id)
        if removed is not None:
            self.audit.record(by, "oncall remove", f"#{shift_id} {removed.user_id}")
        return removed

    def set_schedule(self, image_id: str, schedule_id: str, *, by: str) -> str | None:
        """Make the image's requests ask this PagerDuty schedule ("" : the configured
        ones again); the schedule it asked before, if any."""
        assert self.schedules is not None, "on-call schedules need the database"
        if schedule_id:
            before = self.schedules.set(image_id, schedule_id, by=by)
        else:
            before = self.schedules.clear(image_id)
        if before != (schedule_id or None):
            self.audit.record(by, "oncall schedule", f"{image_id} {schedule_id or 'none'}")
        return before

    def set_approvals(self, image_id: str, approvals: int, *, by: str) -> bool:
        """Set how many approvals (1 or 2) the image's shares need; False if it already did.

        Applies to requests asked from now on; those already waiting keep their count."""
        if self.policies is None:
            raise RuntimeError("image policies are not wired in")
        changed = self.policies.set_approvals(image_id, approvals, by=by)
        if changed:
            self.audit.record(by, "policy", f"{image_id} approvals {approvals}")
        return changed

    def remove_shifts(self, user_id: str, *, by: str) -> int:
        """Take someone off call."""
        count = self.oncall.remove(user_id)
        if count:
            self.audit.record(by, "oncall remove", f"{user_id} ({count})")
        return count
