"""The bot's settings: one class, read from the environment (and `.env` for developers).

Every setting is checked before anything is asked of Slack or the cloud: a value copied
unchanged from `.env.example` (`xoxb-...`, `...`), a token of the wrong kind, a URL that
is not HTTP(S), a channel given by its name rather than its id. The messages name the
setting and what is wrong with it; they never repeat a secret's value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.replica import ReplicaConfig, ReplicaError, url_problem
from bot.sharing.durations import Duration, ShareDurations, parse_duration, parse_list
from bot.sharing.errors import CommandError
from bot.sharing.policy import MakeShared, UnknownMembers
from bot.slack.texts import languages

SLACK_API_URL_DEFAULT = "https://slack.com/api/"
ENV_FILE = ".env"
# Slack's ids of public (C), private (G) and direct (D) conversations: upper-case letters
# and digits. What people type instead is the name: `#general`, `general`.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
SECRET_SETTINGS = frozenset(
    {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SCP_ACCESS_KEY",
        "SCP_SECRET_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "ONCALL_PAGERDUTY_TOKEN",
        # A feed's address usually carries its private key (Google's "secret address").
        "ONCALL_ICAL_URL",
    }
)
PAGERDUTY_URL_DEFAULT = "https://api.pagerduty.com"
# PagerDuty's object ids: letters and digits (`P1ABCDE`).
SCHEDULE_ID = re.compile(r"^[A-Za-z0-9]{1,32}$", re.ASCII)


def zone_named(value: str) -> ZoneInfo:
    """The IANA time zone `value` names, or `Refusal` saying what it should be."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refusal(
            "is not an IANA time zone name: give one like UTC, Asia/Seoul or Europe/Berlin"
        ) from None


class SettingsError(Exception):
    """Settings are missing or invalid; `problems` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Refusal(ValueError):
    """A validator's refusal, worded to follow the setting's name: "SLACK_BOT_TOKEN must …"."""


def is_placeholder(value: str) -> bool:
    """A value left as `.env.example` shows it: `...`, `xoxb-...`, `<your key>`."""
    text = value.strip()
    return (
        "..." in text
        or "…" in text
        or (text.startswith("<") and text.endswith(">"))
        or ("{" in text and "}" in text)
    )


PLACEHOLDER = "is still the placeholder from .env.example: put in"
_CLOUD_KEY = "the key from the SCP console (or the sandbox's: `python -m bot sandbox` prints them)"
# What to put in instead of a placeholder, for the settings that are checked for no more.
PUT_IN = {
    "SCP_ACCESS_KEY": _CLOUD_KEY,
    "SCP_SECRET_KEY": _CLOUD_KEY,
    "SCP_ACCOUNT_ID": "the account id, or leave it empty",
    "ONCALL_PAGERDUTY_TOKEN": (
        "a PagerDuty REST API key (Integrations → API Access Keys; a read-only key is"
        " enough), or leave it empty"
    ),
}
T = TypeVar("T")


def _token_kind(value: str) -> str:
    """What kind of Slack token a value looks like, from its public prefix only."""
    for prefix, kind in (
        ("xoxb-", "a bot token (xoxb-…), which belongs in SLACK_BOT_TOKEN"),
        ("xapp-", "an app-level token (xapp-…), which belongs in SLACK_APP_TOKEN"),
        ("xoxp-", "a user token (xoxp-…)"),
        ("xoxe", "a refresh or configuration token (xoxe…)"),
    ):
        if value.startswith(prefix):
            return kind
    return "not a Slack token of any kind"


def _http_url(value: str) -> str | None:
    """Why `value` is no usable HTTP(S) base URL, or None."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def _cut(value: str, most: int = 40) -> str:
    """A refused value as a message shows it: its first `most` characters."""
    return value if len(value) <= most else value[:most] + "…"


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Secrets are `SecretStr`."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    SLACK_BOT_TOKEN: SecretStr
    SLACK_SIGNING_SECRET: SecretStr
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_API_URL: str = SLACK_API_URL_DEFAULT

    SCP_ENDPOINT: AnyHttpUrl
    SCP_ACCESS_KEY: SecretStr
    SCP_SECRET_KEY: SecretStr
    SCP_ACCOUNT_ID: str = ""
    SCP_API_VERSION: str = Field(default="1.1", pattern=r"^\d+\.\d+$")
    SCP_LANGUAGE: str = Field(default="en-US", pattern=r"^(ko-KR|en-US)$")

    DATABASE_PATH: Path = Path("share-image-bot.db")
    # The database's replica (Litestream): s3://BUCKET/PATH or file:///PATH; empty: none.
    DATABASE_REPLICA_URL: str = ""
    # An S3-compatible store's endpoint (path-style addressing unless it is AWS).
    DATABASE_REPLICA_ENDPOINT: str = ""
    AWS_ACCESS_KEY_ID: SecretStr | None = None
    AWS_SECRET_ACCESS_KEY: SecretStr | None = None
    # SQLite connections kept open, shared by the event loop and the threads it hands slow
    # database work to (each read or write borrows one for its milliseconds); each holds a
    # page cache and three open files.
    DATABASE_CONNECTIONS: int = Field(default=4, ge=1, le=64)
    PORT: int = Field(default=3000, ge=1, le=65535)
    # Socket Mode's `GET /metrics` (HTTP mode serves it on PORT); empty: off, 0: any free port.
    METRICS_PORT: int | None = Field(default=None, ge=0, le=65535)
    # HTTP mode's bounds on a client (bot/server.py): seconds to send a whole request head
    # (after connecting, or after the previous answer), seconds to send a body (else 408),
    # and open connections at once (beyond it a new one is closed at once).
    HTTP_HEADER_TIMEOUT_SECONDS: float = Field(default=10, gt=0, le=300)
    HTTP_BODY_TIMEOUT_SECONDS: float = Field(default=10, gt=0, le=300)
    HTTP_MAX_CONNECTIONS: int = Field(default=1000, ge=1, le=100_000)

    SHARE_APPROVAL_CHANNEL: str = ""
    SHARE_NOTIFY_CHANNEL: str = ""
    SHARE_APPROVAL_TTL_HOURS: float = Field(default=24, gt=0)
    # A request waiting for approval reminds whoever is on call after this many minutes
    # (then every approver at half the TTL, the admins an hour before it expires).
    APPROVAL_REMIND_MINUTES: float = Field(default=30, ge=1)
    SHARE_STATUS_POLL_SECONDS: float = Field(default=300, gt=0)
    SHARE_FOLLOW_DAYS: float = Field(default=7, gt=0)
    # How often the worker lists the members of the images it shared, removed (within
    # SHARE_FOLLOW_DAYS) or shares now, and reports what changed outside the bot.
    SHARE_RECONCILE_SECONDS: float = Field(default=3600, ge=5)
    SHARE_UNKNOWN_MEMBERS: UnknownMembers = UnknownMembers.APPROVAL
    # Only Shared images have members: `auto` sets a private image Shared before adding a
    # member (and private again after the last goes); `never` refuses to share it.
    SHARE_MAKE_SHARED: MakeShared = MakeShared.AUTO
    # Durations like 30m, 12h, 7d, 2w. The form offers SHARE_DURATIONS; empty maximum:
    # no limit; empty default: a share asked without a duration lasts until removed.
    SHARE_DURATIONS: str = "1d,7d,30d"
    SHARE_MAX_DURATION: str = ""
    SHARE_DEFAULT_DURATION: str = ""
    # How often the worker re-reads the account's image list (and once on start).
    IMAGE_LIST_REFRESH_SECONDS: float = Field(default=300, gt=0)
    # One of the languages there is a catalog for (bot/slack/catalogs): en, ko.
    BOT_DEFAULT_LANGUAGE: str = "en"
    # The time zone on-call times without an offset are read in, and every time is shown
    # in: an IANA name (UTC, Asia/Seoul).
    BOT_TIMEZONE: str = "UTC"
    # Requests (and so cloud calls) the worker has under way at once, in the one event
    # loop: a bound, not threads (the name is kept so no operator's .env breaks).
    BOT_WORKER_THREADS: int = Field(default=100, ge=1, le=500)
    # No longer does anything (the worker is no separate process to replace): accepted so
    # that an existing .env still starts, with one warning line at start when set.
    BOT_WORKER_RECYCLE_MB: int | None = Field(default=None, ge=0, le=4096)

    # On-call rotas, read where they live (README, "Who is on call"). PagerDuty: a REST
    # API key (read-only is enough) and the schedules, comma-separated; the base URL is a
    # setting for proxies and tests. An iCalendar feed's address. Read every
    # ONCALL_REFRESH_SECONDS by the worker; 5 and up accepted, for trying it out.
    ONCALL_PAGERDUTY_TOKEN: SecretStr | None = None
    ONCALL_PAGERDUTY_SCHEDULES: str = ""
    ONCALL_PAGERDUTY_URL: str = PAGERDUTY_URL_DEFAULT
    ONCALL_ICAL_URL: SecretStr | None = None
    ONCALL_REFRESH_SECONDS: float = Field(default=300, ge=5)

    @field_validator(
        "SLACK_APP_TOKEN",
        "METRICS_PORT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "ONCALL_PAGERDUTY_TOKEN",
        "ONCALL_ICAL_URL",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    # -- secrets: checked by their shape, never repeated -----------------------------

    @field_validator("SLACK_BOT_TOKEN")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if is_placeholder(token):
            raise Refusal(
                f"{PLACEHOLDER} the Bot User OAuth Token (xoxb-…) from api.slack.com/apps"
                " → your app → OAuth & Permissions"
            )
        if not token.startswith("xoxb-"):
            raise Refusal(
                f"must start with xoxb-, but this is {_token_kind(token)}: use the Bot User"
                " OAuth Token from OAuth & Permissions"
            )
        return value

    @field_validator("SLACK_APP_TOKEN")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if is_placeholder(token):
            raise Refusal(
                f"{PLACEHOLDER} an app-level token (xapp-…) with connections:write, from Basic"
                " Information → App-Level Tokens, or leave it empty for HTTP mode"
            )
        if not token.startswith("xapp-"):
            raise Refusal(
                f"must start with xapp-, but this is {_token_kind(token)}: Socket Mode needs"
                " an app-level token with connections:write, from Basic Information → App-Level"
                " Tokens (or leave SLACK_APP_TOKEN empty for HTTP mode)"
            )
        return value

    @field_validator("SLACK_SIGNING_SECRET")
    @classmethod
    def _signing_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if is_placeholder(secret):
            raise Refusal(
                f"{PLACEHOLDER} the Signing Secret from api.slack.com/apps → your app → Basic"
                " Information"
            )
        if secret.startswith(("xoxb-", "xapp-", "xoxp-")):
            raise Refusal(
                f"is a Slack token ({secret[:5]}…), not a signing secret: use the Signing Secret"
                " from Basic Information → App Credentials"
            )
        return value

    @field_validator(*PUT_IN)
    @classmethod
    def _not_placeholder(cls, value: T, info: ValidationInfo) -> T:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and is_placeholder(text):
            raise Refusal(f"{PLACEHOLDER} {PUT_IN[str(info.field_name)]}")
        return value

    # -- plain values --------------------------------------------------------------------

    @field_validator("SLACK_API_URL")
    @classmethod
    def _slack_api_url(cls, value: str) -> str:
        problem = _http_url(value)
        if problem:
            raise Refusal(f"{problem}, like {SLACK_API_URL_DEFAULT}")
        # slack_sdk joins "base_url + method", so the base must end in a slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("SCP_ENDPOINT", mode="before")
    @classmethod
    def _scp_endpoint(cls, value: object) -> object:
        if isinstance(value, str):
            example = "https://virtualserver.kr-west1.e.samsungsdscloud.com"
            if is_placeholder(value):
                raise Refusal(
                    f"has a placeholder left in it: put in the region and environment, like"
                    f" {example}"
                )
            problem = _http_url(value)
            if problem:
                raise Refusal(f"{problem}, like {example}")
        return value

    @field_validator("ONCALL_PAGERDUTY_SCHEDULES")
    @classmethod
    def _schedules(cls, value: str) -> str:
        for schedule in (part.strip() for part in value.split(",")):
            if schedule and not SCHEDULE_ID.match(schedule):
                raise Refusal(
                    f"has {_cut(schedule)!r}, which is not a PagerDuty schedule id: give ids like"
                    " P1ABCDE, comma-separated (a schedule's id ends its address in PagerDuty)"
                )
        return value

    @field_validator("ONCALL_PAGERDUTY_URL")
    @classmethod
    def _pagerduty_url(cls, value: str) -> str:
        problem = _http_url(value)
        if problem:
            raise Refusal(f"{problem}, like {PAGERDUTY_URL_DEFAULT}")
        return value.rstrip("/")

    @field_validator("ONCALL_ICAL_URL")
    @classmethod
    def _ical_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        if is_placeholder(url):
            raise Refusal(f"{PLACEHOLDER} the rota's iCalendar feed address, or leave it empty")
        if url.lower().startswith("webcal://"):  # the same feed, as calendar apps link it
            url = "https://" + url[len("webcal://") :]
        if _http_url(url):
            # The address itself is never repeated: it often holds the feed's private key.
            raise Refusal("must be the feed's http:// or https:// (or webcal://) address")
        return SecretStr(url)

    @model_validator(mode="after")
    def _schedules_need_token(self) -> Settings:
        if self.pagerduty_schedules and self.ONCALL_PAGERDUTY_TOKEN is None:
            raise Refusal(
                "ONCALL_PAGERDUTY_SCHEDULES is set but ONCALL_PAGERDUTY_TOKEN is not: PagerDuty"
                " answers nothing without a REST API key"
            )
        return self

    @field_validator("SHARE_APPROVAL_CHANNEL", "SHARE_NOTIFY_CHANNEL")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        if value and not CHANNEL_ID.match(value):
            raise Refusal(
                f"must be a channel id like C0123ABCD, not {_cut(value)!r}: in Slack, open the"
                " channel's details; its id is at the bottom"
            )
        return value

    @field_validator("SHARE_DURATIONS")
    @classmethod
    def _durations(cls, value: str) -> str:
        try:
            parse_list(value)
        except CommandError as error:
            raise Refusal(
                _duration_refusal(error, "a comma-separated list like 1d,7d,30d")
            ) from None
        return value

    @field_validator("SHARE_MAX_DURATION", "SHARE_DEFAULT_DURATION")
    @classmethod
    def _duration(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                parse_duration(value)
            except CommandError as error:
                raise Refusal(_duration_refusal(error, "a duration like 7d, or empty")) from None
        return value

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Settings:
        limits = self.share_durations
        if (
            limits.default is not None
            and limits.maximum is not None
            and limits.default.length > limits.maximum.length
        ):
            raise Refusal(
                f"SHARE_DEFAULT_DURATION ({limits.default}) is longer than SHARE_MAX_DURATION"
                f" ({limits.maximum}): shorten the default or raise the maximum"
            )
        return self

    @field_validator("BOT_DEFAULT_LANGUAGE")
    @classmethod
    def _spoken(cls, value: str) -> str:
        spoken = languages()
        if value not in spoken:
            raise Refusal(f"must be one of {', '.join(spoken)}")
        return value

    @model_validator(mode="after")
    def _replica(self) -> Settings:
        url, endpoint = self.DATABASE_REPLICA_URL, self.DATABASE_REPLICA_ENDPOINT
        if url or endpoint:
            problem = url_problem(url, endpoint)
            if problem:
                raise Refusal(problem)
        return self

    @field_validator("BOT_TIMEZONE")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_named(value).key

    @property
    def timezone(self) -> ZoneInfo:
        """BOT_TIMEZONE as a time zone."""
        return ZoneInfo(self.BOT_TIMEZONE)

    @property
    def scp_base_url(self) -> str:
        """The cloud API's base URL without a trailing slash."""
        return str(self.SCP_ENDPOINT).rstrip("/")

    @property
    def share_durations(self) -> ShareDurations:
        """The duration settings, read: the form's choices, the maximum, the default."""
        return ShareDurations(
            offered=parse_list(self.SHARE_DURATIONS),
            maximum=_optional_duration(self.SHARE_MAX_DURATION),
            default=_optional_duration(self.SHARE_DEFAULT_DURATION),
        )

    @property
    def pagerduty_schedules(self) -> list[str]:
        """ONCALL_PAGERDUTY_SCHEDULES as a list, in order, without repeats."""
        parts = (part.strip() for part in self.ONCALL_PAGERDUTY_SCHEDULES.split(","))
        return list(dict.fromkeys(part for part in parts if part))

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set, HTTP otherwise."""
        return self.SLACK_APP_TOKEN is not None


def _optional_duration(value: str) -> Duration | None:
    return parse_duration(value.strip()) if value.strip() else None


def _duration_refusal(error: CommandError, wanted: str) -> str:
    token = error.values.get("token", "")
    if error.problem == "duration_zero":
        return f"has {token}, which is zero: a duration is at least 1, like 30m, 12h, 7d or 2w"
    if error.problem == "duration_beyond":
        return f"has {token}, longer than any share can be (at most {error.values['limit']})"
    return f"has {token!r}, which is not a duration: use {wanted} (m, h, d or w)"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one clear `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"])
            refusal = item.get("ctx", {}).get("error")
            if item["type"] == "missing":
                problems.append(f"{name} is not set")
            elif isinstance(refusal, Refusal):
                # A refusal across settings (no field of its own) names them itself.
                problems.append(f"{name} {refusal}" if name else str(refusal))
            else:
                # The message only, never the input: the input may be a secret.
                problems.append(f"{name} is invalid: {item['msg']}")
        raise SettingsError(problems) from None


# -- raw values, for the commands that need only a few settings ---------------------------


@dataclass(frozen=True)
class RawSetting:
    """One setting as the bot would read it: the environment wins over `.env`."""

    name: str
    environment: str | None
    dotenv: str | None

    @property
    def value(self) -> str | None:
        """What the bot reads, placeholders and all; None when unset."""
        return self.environment if self.environment is not None else self.dotenv

    @property
    def source(self) -> str | None:
        """Where the value comes from: "the environment", ".env", or None."""
        if self.environment is not None:
            return "the environment"
        return ENV_FILE if self.dotenv is not None else None

    @property
    def usable(self) -> str | None:
        """The value unless it is unset, empty or a placeholder."""
        value = self.value
        return value if value and not is_placeholder(value) else None


def raw_settings(*names: str, env_file: str | Path = ENV_FILE) -> dict[str, RawSetting]:
    """These settings from the environment and `.env`, read as the bot reads them."""
    path = Path(env_file)
    from_file = dotenv_values(path) if path.is_file() else {}
    return {name: RawSetting(name, os.environ.get(name), from_file.get(name)) for name in names}


# -- the replica's settings (bot/replica.py runs it) ------------------------------------------


def replica_config(settings: Settings) -> ReplicaConfig | None:
    """The replica the settings name, or None when `DATABASE_REPLICA_URL` is empty."""
    if not settings.DATABASE_REPLICA_URL:
        return None
    key, secret = settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY
    return ReplicaConfig(
        url=settings.DATABASE_REPLICA_URL,
        endpoint=settings.DATABASE_REPLICA_ENDPOINT,
        database=settings.DATABASE_PATH,
        access_key=key.get_secret_value() if key is not None else None,
        secret_key=secret.get_secret_value() if secret is not None else None,
    )


def raw_replica_config(database: Path) -> ReplicaConfig | None:
    """The replica for the admin commands, which read only a few settings."""
    raw = raw_settings(
        "DATABASE_REPLICA_URL",
        "DATABASE_REPLICA_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    url = raw["DATABASE_REPLICA_URL"].value or ""
    endpoint = raw["DATABASE_REPLICA_ENDPOINT"].value or ""
    if not url and not endpoint:
        return None
    problem = url_problem(url, endpoint)
    if problem:
        raise ReplicaError(problem)
    return ReplicaConfig(
        url=url,
        endpoint=endpoint,
        database=database,
        access_key=raw["AWS_ACCESS_KEY_ID"].value or None,
        secret_key=raw["AWS_SECRET_ACCESS_KEY"].value or None,
    )
