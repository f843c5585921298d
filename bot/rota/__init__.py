"""Reading on-call rotas from where they live: PagerDuty's REST API and iCalendar feeds.

Each reader turns its source's answer into `Shift`s (an email and a time window) and
stands alone, like the cloud client: no storage, no Slack, no domain. The domain's
`bot.sharing.oncall` matches the emails to Slack users and stores the rota.
"""

from bot.rota.errors import RotaError, RotaMalformed, RotaRateLimited, RotaRefused, RotaUnreachable
from bot.rota.ical import Calendar
from bot.rota.models import RotaRead, Shift
from bot.rota.pagerduty import PagerDuty

__all__ = [
    "Calendar",
    "PagerDuty",
    "RotaError",
    "RotaMalformed",
    "RotaRateLimited",
    "RotaRead",
    "RotaRefused",
    "RotaUnreachable",
    "Shift",
]
