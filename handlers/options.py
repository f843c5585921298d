"""The settings listeners answer by, as plain values the app factory passes in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.sharing.durations import ShareDurations
from bot.slack.views import UTC_ZONE


@dataclass(frozen=True)
class Options:
    """What listeners need of the settings: nothing else of them reaches `handlers`."""

    # BOT_DEFAULT_LANGUAGE: for a user whose language the bot does not know yet.
    default_language: str = "en"
    # BOT_TIMEZONE: every time shown.
    zone: ZoneInfo = UTC_ZONE
    # SHARE_APPROVAL_CHANNEL: where approvers are asked (the Home tab links it).
    approval_channel: str = ""
    # SHARE_DURATIONS, SHARE_MAX_DURATION, SHARE_DEFAULT_DURATION: the form's choices.
    durations: ShareDurations = field(default_factory=ShareDurations)
    # IMAGE_LIST_REFRESH_SECONDS: how often the stored image list is refreshed.
    image_list_every: timedelta = timedelta(seconds=300)
