"""The App Home tab: your requests and, for approvers, what waits for a decision."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.services import Services
from bot.slack.views import HOME_WAITING_SHOWN, home, permalink

# The tab shows a few of each list and says how many more there are, so it reads them
# all to count them. Waiting requests expire within SHARE_APPROVAL_TTL_HOURS, and one
# user's own requests are few: this bound is never reached in practice, only a guard.
COUNTED = 10_000


def register(app: App, services: Services) -> None:
    """Attach the Home tab listener."""

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        language = services.languages.of(user)
        images = services.grants.images_decided_by(user)
        waiting = None
        if images is None or images:  # approvers and admins (of some images) see what waits
            waiting = [
                r
                for r in services.requests.awaiting_decision(limit=COUNTED)
                if (images is None or r.image_id in images) and r.user_id != user
            ]
        # Links only for the requests the tab shows: the newest ones.
        shown = sorted(waiting or [], key=lambda r: (r.created_at, r.id), reverse=True)
        cards = {}
        for request in shown[:HOME_WAITING_SHOWN]:
            told = services.messages.get(request.id)
            cards[request.id] = permalink(told.card_channel, told.card_ts)
        client.views_publish(
            user_id=user,
            view=home(
                language,
                services.requests.for_user(user, limit=COUNTED),
                waiting,
                cards,
                approval_channel=services.settings.SHARE_APPROVAL_CHANNEL,
                now=services.database.now(),
            ),
        )
