"""The App Home tab: your requests and, for approvers, what waits for a decision."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.services import Services
from bot.slack.views import home, permalink


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
                for r in services.requests.awaiting_decision()
                if (images is None or r.image_id in images) and r.user_id != user
            ]
        cards = {}
        for request in waiting or []:
            told = services.messages.get(request.id)
            cards[request.id] = permalink(told.card_channel, told.card_ts)
        client.views_publish(
            user_id=user, view=home(language, services.requests.for_user(user), waiting, cards)
        )
