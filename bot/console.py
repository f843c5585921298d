"""What the command line says of an admin command's `Outcome`: the words of the catalogs
(`[cli]`, else Slack's made plain), in the operator's language.

The command line and Slack's `admin …` run the same typed commands through the same
`Administration.dispatch`; this is the command line's renderer, as `bot.slack.views`
is Slack's. Listings are tab-separated rows, one per line, for scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.sharing.admin import REFUSED_ACCOUNTS, Outcome
from bot.sharing.oncall import RotaNow
from bot.sharing.values import parse_stamp
from bot.slack.texts import cli_say, stored_when, when

# `say(key, **values)` in the operator's language.
_Say = Callable[..., str]


@dataclass
class Said:
    """What to print: `out` on stdout, `err` (warnings) on stderr; `failed`: the one line
    to exit with instead (nothing was there to change)."""

    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    failed: str | None = None


def answer(language: str, outcome: Outcome, zone: ZoneInfo, *, why: str = "") -> Said:
    """The command line's answer to `outcome`; `why`: why Slack could not be asked."""
    said = Said()
    command = outcome.command
    what = command.what

    def say(key: str, **values: object) -> str:
        return cli_say(language, key, **values)

    if outcome.account is not None and outcome.account in REFUSED_ACCOUNTS:
        account = say(f"account_{outcome.account.value}", user=command.user_id, why=why)
        said.err.append(say("done_anyway", said=account))
    if what == "grants":
        if not outcome.grants:
            said.out.append(say("grants_empty"))
        for g in outcome.grants:
            said.out.append(
                f"{g.user_id}\t{g.role.value}\t{g.scope}\tby {g.granted_by} at {g.granted_at}"
            )
    elif what in {"grant", "revoke"}:
        assert command.role is not None
        role = command.role.value
        scope = command.image_id or say("all_images")
        if what == "grant":
            key = "granted" if outcome.changed else "grant_existed"
        else:
            key = "revoked" if outcome.changed else "revoke_missing"
        said.out.append(
            say(key, user=command.user_id, role=role, scope=scope) + _held(say, outcome)
        )
        if outcome.no_admin_left:
            said.err.append(say("no_admin_left"))
    elif what == "member list":
        if not outcome.members:
            said.out.append(say("members_empty"))
        said.out.extend(f"{m.member_id}\t{m.name}" for m in outcome.members)
    elif what == "member add":
        known = outcome.known
        if known is None:
            said.out.append(say("member_added", member=command.member_id, name=command.name))
        elif known.member_id == command.member_id:
            said.out.append(
                say("member_renamed", member=command.member_id, name=command.name, old=known.name)
            )
        else:
            said.out.append(
                say(
                    "member_alike",
                    member=command.member_id,
                    known=known.member_id,
                    name=command.name,
                    old=known.name,
                )
            )
    elif what == "member remove":
        key = "member_removed" if outcome.changed else "member_missing_known"
        said.out.append(say(key, member=command.member_id))
    elif what == "oncall add":
        assert command.starts is not None and command.ends is not None
        said.out.append(
            say(
                "oncall_added",
                id=outcome.added,
                user=command.user_id,
                starts=when(command.starts, zone),
                ends=when(command.ends, zone),
            )
        )
    elif what == "oncall remove":
        if not command.shift_id:
            said.out.append(say("oncall_removed", count=outcome.count))
        elif outcome.shift is None:
            said.failed = say("oncall_no_such_shift", id=command.shift_id)
        else:
            shift = outcome.shift
            said.out.append(
                say(
                    "oncall_removed_one",
                    id=shift.id,
                    user=shift.user_id,
                    starts=stored_when(shift.starts_at, zone),
                    ends=stored_when(shift.ends_at, zone),
                )
            )
    elif what == "oncall list":
        assert outcome.now is not None
        said.out.extend(_shifts(say, outcome, outcome.now, zone))
        said.out.extend(_rotas(say, outcome.rotas, outcome.now, zone))
        said.out.extend(
            say("oncall_image_schedule", image=image, schedule=schedule)
            for image, schedule in outcome.image_schedules.items()
        )
    elif what == "oncall schedule":
        _schedule(say, outcome, said)
    elif what == "policy list":
        if not outcome.approvals:
            said.out.append(say("policies_empty"))
        said.out.extend(f"{image}\tapprovals {n}" for image, n in outcome.approvals.items())
    else:
        assert what == "policy", what
        image = command.image_id
        if not outcome.changed:
            said.out.append(say("policy_same", image=image, count=command.approvals))
        else:
            said.out.append(
                say("policy_two" if command.approvals > 1 else "policy_one", image=image)
            )
    return said


def _held(say: _Say, outcome: Outcome) -> str:
    """After "was not ROLE for SCOPE": where the role is held and the command that takes it
    back ("" when it is held nowhere else)."""
    command = outcome.command
    if not outcome.held or command.role is None:
        return ""
    role = command.role.value
    if "" in outcome.held:
        return say("revoke_held_all", user=command.user_id, role=role)
    key = "revoke_held_one" if len(outcome.held) == 1 else "revoke_held_images"
    return say(
        key,
        user=command.user_id,
        role=role,
        images=", ".join(outcome.held),
        image=outcome.held[0],
    )


def _shifts(say: _Say, outcome: Outcome, now: datetime, zone: ZoneInfo) -> list[str]:
    """Current and coming shifts with their ids (`past`: ended ones too), one row each."""
    shifts = outcome.shifts
    if not shifts:
        return [say("oncall_empty")]
    ended = [s for s in shifts if (parse_stamp(s.ends_at) or now) <= now]
    past = outcome.command.past
    listed = shifts if past else [s for s in shifts if s not in ended]
    lines = [] if listed else [say("oncall_none_coming")]
    lines += [
        f"{s.id}\t{s.user_id}\t{stored_when(s.starts_at, zone)}\t{stored_when(s.ends_at, zone)}"
        for s in listed
    ]
    if ended and not past:
        lines.append(say("oncall_past_hidden", count=len(ended)))
    return lines


def _rotas(say: _Say, rotas: list[RotaNow], now: datetime, zone: ZoneInfo) -> list[str]:
    """Each stored rota's people now and next, with their source and its age."""
    lines: list[str] = []
    for rota in rotas:
        state = rota.state
        if state is None:
            continue  # never read: not set up
        source = say(f"rota_{rota.source}")
        if state.read_at is None:
            lines.append(say("oncall_rota_never", source=source))
        else:
            age = f"{(now - state.read_at).total_seconds():.0f}"
            read = when(state.read_at.astimezone(zone), zone)
            lines.append(say("oncall_rota_read", source=source, when=read, age=age))
        if state.error:
            lines.append(say("oncall_rota_failing", error=state.error))
        for key, entries in (("oncall_rota_now", rota.now), ("oncall_rota_next", rota.next)):
            column = say(key)
            if not entries:
                lines.append(f"  {column}\t{say('oncall_rota_nobody')}")
            always = say("oncall_rota_always")
            for e in entries:
                user = e.user_id or say("oncall_rota_unmatched")
                starts = when(e.starts.astimezone(zone), zone) if e.starts else always
                ends = when(e.ends.astimezone(zone), zone) if e.ends else always
                schedule = f"\t{e.schedule_id}" if e.schedule_id else ""
                lines.append(f"  {column}\t{user}\t{e.email}\t{starts} → {ends}{schedule}")
    return lines


def _schedule(say: _Say, outcome: Outcome, said: Said) -> None:
    """`oncall schedule`: what the image asks now, and a warning when PagerDuty is not read."""
    command = outcome.command
    image, before = command.image_id, outcome.before
    if command.schedule_id:
        if not outcome.changed:
            key = "oncall_schedule_same"
        else:
            key = "oncall_schedule_changed" if before else "oncall_schedule_set"
        said.out.append(say(key, image=image, schedule=command.schedule_id, before=before))
        if not outcome.pagerduty:
            said.err.append(say("oncall_schedule_unread"))
    elif before:
        said.out.append(say("oncall_schedule_cleared", image=image, before=before))
    else:
        said.out.append(say("oncall_schedule_none", image=image))
