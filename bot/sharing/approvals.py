"""Approvals that never stall: when a waiting request reminds whom, and the asker's Remind.

A request waiting for approval reminds three times, each once:

    stage 1  APPROVAL_REMIND_MINUTES after it was asked   whoever is on call now
    stage 2  half SHARE_APPROVAL_TTL_HOURS after          every approver of the image
    stage 3  one hour before it expires                   the admins

A stage that would come no later than the one before it (a short TTL) is left out, and
when several are due at once (the worker was stopped) only the last is posted. Storage
claims each stage with a compare-and-set that only a request still waiting wins, so a
reminder is posted at most once and never after a decision. Its asker may press Remind,
not within `NUDGE_EVERY` of the ask or of their last Remind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.sharing.request import RequestState, ShareRequest

# How often the asker may press Remind (and not sooner after the ask).
NUDGE_EVERY = timedelta(minutes=30)
# The last reminder goes this long before the request expires.
LAST_CALL = timedelta(hours=1)
# A reminder mentions at most this many people (Slack's limits, and noise).
MOST_MENTIONED = 20


class Audience(StrEnum):
    """Whom a reminder mentions."""

    ON_CALL = "on_call"  # whoever is on call for the image now (as the card asks)
    APPROVERS = "approvers"  # every approver of the image
    ADMINS = "admins"


@dataclass(frozen=True)
class Stage:
    """One reminder: its number, when it is due, and whom it mentions."""

    number: int
    at: datetime
    audience: Audience


@dataclass(frozen=True)
class ApprovalReminders:
    """When a request waiting for approval reminds, from the settings."""

    first_after: timedelta = timedelta(minutes=30)
    ttl: timedelta = timedelta(hours=24)

    def stages(self, request: ShareRequest) -> list[Stage]:
        """The request's reminders in order, those that fit between its ask and expiry."""
        asked = request.created_at
        expires = request.expires_at or asked + self.ttl
        planned = [
            Stage(1, asked + self.first_after, Audience.ON_CALL),
            Stage(2, asked + (expires - asked) / 2, Audience.APPROVERS),
            Stage(3, expires - LAST_CALL, Audience.ADMINS),
        ]
        kept: list[Stage] = []
        for stage in planned:
            after = kept[-1].at if kept else asked
            if after < stage.at < expires:
                kept.append(stage)
        return kept

    def due(self, request: ShareRequest, now: datetime) -> Stage | None:
        """The reminder to post now, if any: the last one due and not posted yet."""
        if not waiting(request, now):
            return None
        due = [
            s for s in self.stages(request) if s.at <= now and s.number > request.approval_reminders
        ]
        return due[-1] if due else None

    def next_at(self, request: ShareRequest) -> datetime | None:
        """When the next reminder is due (None: no more)."""
        later = [s.at for s in self.stages(request) if s.number > request.approval_reminders]
        return min(later) if later else None


def waiting(request: ShareRequest, now: datetime) -> bool:
    """Whether the request still waits for a decision now."""
    expires = request.expires_at
    return request.state == RequestState.AWAITING_APPROVAL and (expires is None or now < expires)


def next_nudge(request: ShareRequest) -> datetime:
    """The first moment its asker may press Remind (again)."""
    last = request.nudge_asked_at or request.created_at
    return max(last, request.created_at) + NUDGE_EVERY


def nudge_due(request: ShareRequest) -> bool:
    """Whether a Remind was pressed and not posted yet."""
    asked = request.nudge_asked_at
    return asked is not None and request.nudge_sent_at != asked
