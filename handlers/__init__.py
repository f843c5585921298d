"""Slack listeners. Each module parses a payload, calls the domain, renders the answer.

A module's `register` takes the domain services it calls (`ShareService`, `Records`,
`Administration`), the Slack side it answers through (`Languages`, `Announcer`) and the
settings it needs as plain values (`Options`): never storage, the cloud client, the
settings or the metrics themselves (the import contracts in pyproject.toml hold it so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp

from bot.sharing.admin import Administration
from bot.sharing.records import Records
from bot.sharing.service import ShareService
from bot.slack.announcer import Announcer
from bot.slack.languages import Languages
from handlers import acks, approvals, endings, form, home, share_command, workspace
from handlers.options import Options


def register(
    app: AsyncApp,
    share: ShareService,
    records: Records,
    admin: Administration,
    *,
    languages: Languages,
    announcer: Announcer,
    options: Options,
    ours: Callable[[], str],
    wake: Callable[[], None],
    after_ack: Callable[[Callable[[], Awaitable[None]]], None],
    count_command: Callable[[str, str], None],
    count_slack_call: Callable[[str, str], None],
) -> None:
    """Attach every listener to `app`, behind the ack timer and the check of the workspace.

    `ours` names the bot's workspace, `wake` wakes the worker once a request was recorded
    or decided, `after_ack` runs a slow follow-up after the ack; `count_command(word,
    outcome)` counts a `/share-image` command and `count_slack_call(method, outcome)` a
    call to Slack's Web API (the metrics are the wiring's).
    """
    acks.register(app, count=count_slack_call)
    workspace.register(app, ours=ours, default_language=options.default_language)
    share_command.register(
        app,
        share,
        records,
        admin,
        languages=languages,
        announcer=announcer,
        options=options,
        wake=wake,
        after_ack=after_ack,
        counted=count_command,
    )
    approvals.register(app, share, records, languages=languages, options=options, wake=wake)
    endings.register(app, share, records, languages=languages, announcer=announcer, wake=wake)
    home.register(app, share, records, languages=languages, options=options)
    form.register(app, share, records, languages=languages, options=options, wake=wake)
