"""The bot's settings: one class, read from the environment (and `.env` for developers)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.sharing.rules import UnknownMembers
from bot.slack.texts import languages

SLACK_API_URL_DEFAULT = "https://slack.com/api/"


class SettingsError(Exception):
    """Settings are missing or invalid; `problems` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Secrets are `SecretStr`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
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
    PORT: int = Field(default=3000, ge=1, le=65535)

    SHARE_APPROVAL_CHANNEL: str = ""
    SHARE_NOTIFY_CHANNEL: str = ""
    SHARE_APPROVAL_TTL_HOURS: float = Field(default=24, gt=0)
    SHARE_STATUS_POLL_SECONDS: float = Field(default=300, gt=0)
    SHARE_FOLLOW_DAYS: float = Field(default=7, gt=0)
    SHARE_UNKNOWN_MEMBERS: UnknownMembers = UnknownMembers.APPROVAL
    # One of the languages there is a catalog for (bot/slack/catalogs): en, ko.
    BOT_DEFAULT_LANGUAGE: str = "en"
    # Requests the worker carries out at once; each waits on the cloud API in its own thread.
    BOT_WORKER_THREADS: int = Field(default=100, ge=1, le=500)

    @field_validator("SLACK_APP_TOKEN", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("BOT_DEFAULT_LANGUAGE")
    @classmethod
    def _spoken(cls, value: str) -> str:
        spoken = languages()
        if value not in spoken:
            raise ValueError(f"must be one of {', '.join(spoken)}")
        return value

    @field_validator("SLACK_API_URL")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins "base_url + method", so the base must end in a slash.
        return value if value.endswith("/") else value + "/"

    @property
    def scp_base_url(self) -> str:
        """The cloud API's base URL without a trailing slash."""
        return str(self.SCP_ENDPOINT).rstrip("/")

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set, HTTP otherwise."""
        return self.SLACK_APP_TOKEN is not None


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one clear `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"])
            if item["type"] == "missing":
                problems.append(f"{name} is not set")
            else:
                # The message only, never the input: the input may be a secret.
                problems.append(f"{name} is invalid: {item['msg']}")
        raise SettingsError(problems) from None
