"""Fakes of the services the bot talks to, for tests."""

from .slack import (
    Call,
    FakeSlack,
    ResponsePost,
    SlackSender,
    SlackSignature,
    block_actions_payload,
    slash_command_payload,
)

__all__ = [
    "Call",
    "FakeSlack",
    "ResponsePost",
    "SlackSender",
    "SlackSignature",
    "block_actions_payload",
    "slash_command_payload",
]
