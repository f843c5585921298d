"""Slack listeners. Each module parses a payload, calls the services, renders the answer."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services
from handlers import approvals, home, share_command, workspace


def register(app: App, services: Services) -> None:
    """Attach every listener to `app`, behind the check of the workspace."""
    workspace.register(app, services)
    share_command.register(app, services)
    approvals.register(app, services)
    home.register(app, services)
