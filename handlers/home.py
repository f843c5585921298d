"""The App Home tab: your requests and, for approvers, what waits for a decision."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.sharing.records import Records
from bot.sharing.service import ShareService
from bot.slack.languages import Languages
from bot.slack.views import HOME_MINE_SHOWN, HOME_WAITING_SHOWN, home, permalink
from handlers.options import Options


def register(
    app: AsyncApp, share: ShareService, records: Records, *, languages: Languages, options: Options
) -> None:
    """Attach the Home tab listener."""

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        language = await languages.of(user)
        facts = share.home(user, mine=HOME_MINE_SHOWN, waiting=HOME_WAITING_SHOWN)
        cards = {}
        for request in facts.waiting or []:  # links only for the requests the tab shows
            told = records.told(request.id)
            cards[request.id] = permalink(told.card_channel, told.card_ts)
        named = records.images(r.image_id for r in [*facts.mine, *(facts.waiting or [])])
        await client.views_publish(
            user_id=user,
            view=home(
                language,
                facts.mine,
                facts.waiting,
                cards,
                approval_channel=options.approval_channel,
                mine_total=facts.mine_total,
                waiting_total=facts.waiting_total,
                now=records.now(),
                images=named,
                zone=options.zone,
            ),
        )
