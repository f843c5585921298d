"""Slack listeners. Each module parses a payload, calls the services, renders the answer."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers import acks, approvals, endings, form, home, share_command, workspace


def register(app: AsyncApp, services: Services) -> None:
    """Attach every listener to `app`, behind the ack timer and the check of the workspace."""
    acks.register(app, services)
    workspace.register(app, services)
    share_command.register(app, services)
    approvals.register(app, services)
    endings.register(app, services)
    home.register(app, services)
    form.register(app, services)
