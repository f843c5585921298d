"""The names `bot.sharing.policy` took over, kept here for their importers.

Every rule about who may do what lives in `bot.sharing.policy`; nothing is decided here.
"""

from __future__ import annotations

from bot.sharing.policy import (
    DECIDES,
    MAY_ASK,
    SHARES_DIRECTLY,
    MakeShared,
    Refusal,
    UnknownMembers,
    WhyApproval,
    may_ask,
    may_decide,
    refusal,
    why_approval,
)

__all__ = [
    "DECIDES",
    "MAY_ASK",
    "SHARES_DIRECTLY",
    "MakeShared",
    "Refusal",
    "UnknownMembers",
    "WhyApproval",
    "may_ask",
    "may_decide",
    "refusal",
    "why_approval",
]
