"""Configuration: one pydantic-settings class; every knob is an environment variable.

The variable names are a contract (see docs/install.md). Secrets are `SecretStr` so they never show up
in a repr, a log line or an error message.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from .jobs.policy import Limits
from .jobs.admission import Prices
from .ports import SessionRules
from .secrets import Sealer, parse_keys

if TYPE_CHECKING:   # (imported when used: `lumabot healthcheck`, which a container runs every
    from .runner.record import RunnerConfig   # few seconds, reads the settings and no more)

SLACK_API_URL_DEFAULT = "https://slack.com/api/"
LUMA_BASE_URL_DEFAULT = "https://agents.lumalabs.ai/v1"
SLACK_AUTHORIZE_URL_DEFAULT = "https://slack.com/oauth/v2/authorize"
OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"
INSTALL_PATH = "/slack/install"


class ConfigError(Exception):
    """Raised with one human line per problem, each naming the environment variable."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _env(name: str, default: Any, **kw: Any) -> Any:
    """A field read from exactly the environment variable `name` (case-insensitive)."""
    return Field(default, validation_alias=AliasChoices(name), **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=False
    )

    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN", None)
    slack_signing_secret: SecretStr | None = _env("SLACK_SIGNING_SECRET", None)
    slack_app_token: SecretStr | None = _env("SLACK_APP_TOKEN", None)
    slack_api_url: str = _env("SLACK_API_URL", SLACK_API_URL_DEFAULT)
    # OAuth mode ("Add to Slack", any number of workspaces): the app's credentials from Basic
    # Information, and where Slack sends people back after they approve (docs/install.md).
    slack_client_id: str | None = _env("SLACK_CLIENT_ID", None)
    slack_client_secret: SecretStr | None = _env("SLACK_CLIENT_SECRET", None)
    slack_redirect_uri: str | None = _env("SLACK_REDIRECT_URI", None)
    public_url: str | None = _env("LUMABOT_PUBLIC_URL", None)
    slack_authorize_url: str = _env("SLACK_AUTHORIZE_URL", SLACK_AUTHORIZE_URL_DEFAULT)
    # Token rotation: a bot token that expires within this many minutes is refreshed first.
    token_rotation_minutes: int = _env("LUMABOT_TOKEN_ROTATION_MINUTES", 120, ge=1, le=720)
    # Fernet key(s), comma-separated (the first encrypts): bot tokens and Luma keys are
    # encrypted in the database with it.
    encryption_key: SecretStr | None = _env("LUMABOT_ENCRYPTION_KEY", None)
    # How long an "Add to Slack" link stays valid.
    install_link_seconds: int = _env("LUMABOT_INSTALL_LINK_SECONDS", 600, ge=60, le=86400)
    luma_api_key: SecretStr | None = _env("LUMA_AGENTS_API_KEY", None)
    luma_base_url: str = _env("LUMA_BASE_URL", LUMA_BASE_URL_DEFAULT)
    database_url: str = _env("LUMABOT_DATABASE_URL", "sqlite:///lumabot.db")
    poll_interval: float = _env("LUMABOT_POLL_INTERVAL", 2.0, gt=0)
    first_poll_delay: float = _env("LUMABOT_FIRST_POLL_DELAY", 20.0, ge=0)
    generation_timeout: float = _env("LUMABOT_GENERATION_TIMEOUT", 300.0, gt=0)
    port: int = _env("PORT", 3000, ge=1, le=65535)
    host: str = _env("LUMABOT_HOST", "0.0.0.0")
    luma_concurrency: int = _env("LUMABOT_LUMA_CONCURRENCY", 10, ge=1)
    luma_request_timeout: float = _env("LUMABOT_LUMA_REQUEST_TIMEOUT", 30.0, gt=0)
    # Backoff for retried Luma GETs, output downloads and Slack deliveries: starts here, doubles,
    # capped at 30 s. Tests make it small.
    retry_backoff: float = _env("LUMABOT_RETRY_BACKOFF", 1.0, gt=0)
    # How long a finished image may keep failing to reach Slack before the job is given up.
    delivery_timeout: float = _env("LUMABOT_DELIVERY_TIMEOUT", 600.0, gt=0)
    # Capacity, fairness and limits (all limits optional).
    luma_rate_window: float = _env("LUMABOT_LUMA_RATE_WINDOW", 60.0, gt=0)
    max_queued_per_user: int = _env("LUMABOT_MAX_QUEUED_PER_USER", 5, ge=1)
    # A request estimated above this many US dollars waits for its person to confirm (unset: never).
    confirm_above_usd: float | None = _env("LUMABOT_CONFIRM_ABOVE_USD", 0.50, ge=0)
    # Images one request may make (`--n`, permutations); `/luma admin batch N` overrides it.
    max_images_per_request: int = _env("LUMABOT_MAX_IMAGES_PER_REQUEST", 4, ge=1, le=10)
    user_daily_images: int | None = _env("LUMABOT_USER_DAILY_IMAGES", None, ge=1)
    daily_budget_usd: float | None = _env("LUMABOT_DAILY_BUDGET_USD", None, gt=0)
    monthly_budget_usd: float | None = _env("LUMABOT_MONTHLY_BUDGET_USD", None, gt=0)
    # Prompts, parameters, thumbnails and image lineage older than this are deleted daily (usage
    # totals stay); `/luma admin retention` overrides it.
    retention_days: int = _env("LUMABOT_RETENTION_DAYS", 90, ge=1)
    queue_update_interval: float = _env("LUMABOT_QUEUE_UPDATE_INTERVAL", 5.0, gt=0)
    # At most this many status messages get a new place in line per update (chat.update is
    # Tier 3, ~50 a minute per workspace).
    queue_updates_per_tick: int = _env("LUMABOT_QUEUE_UPDATES_PER_TICK", 4, ge=1)
    # Price table (US dollars per image), from Luma's pay-as-you-go prices.
    price_uni_1: float = _env("LUMABOT_PRICE_UNI_1", 0.0404, ge=0)
    price_uni_1_edit: float = _env("LUMABOT_PRICE_UNI_1_EDIT", 0.0434, ge=0)
    price_uni_1_max: float = _env("LUMABOT_PRICE_UNI_1_MAX", 0.1000, ge=0)
    price_uni_1_max_edit: float = _env("LUMABOT_PRICE_UNI_1_MAX_EDIT", 0.1030, ge=0)
    price_extra_reference: float = _env("LUMABOT_PRICE_EXTRA_REFERENCE", 0.0030, ge=0)
    session_idle_minutes: float = _env("LUMABOT_SESSION_IDLE_MINUTES", 60.0, gt=0)
    session_max_images: int = _env("LUMABOT_SESSION_MAX_IMAGES", 100, ge=1)
    session_vote_emoji: str = _env("LUMABOT_SESSION_VOTE_EMOJI", "star", min_length=1)
    max_polls_per_second: float = _env("LUMABOT_MAX_POLLS_PER_SECOND", 50.0, gt=0)
    metrics_port: int | None = _env("LUMABOT_METRICS_PORT", None, ge=1, le=65535)
    log_format: str = _env("LUMABOT_LOG_FORMAT", "text")
    log_level: str = _env("LUMABOT_LOG_LEVEL", "INFO")
    user_hash_salt: SecretStr = _env("LUMABOT_USER_HASH_SALT", SecretStr("lumabot-user-v1"))
    # Admins besides the workspace's admins and owners: comma-separated Slack user ids.
    admins: str | None = _env("LUMABOT_ADMINS", None)
    # Several replicas on one PostgreSQL database.
    replica_id: str | None = _env("LUMABOT_REPLICA_ID", None)
    takeover_seconds: float = _env("LUMABOT_TAKEOVER_SECONDS", 30.0, gt=0)
    # Work done before a request is acknowledged (Slack allows 3 s): a database that does not
    # answer within this many seconds gets the person a "please try again", and nothing starts.
    ack_budget: float = _env("LUMABOT_ACK_BUDGET", 2.5, gt=0, le=2.9)
    # The largest CSV `/luma admin export` sends (Slack takes files up to 1 GB).
    export_max_mb: int = _env("LUMABOT_EXPORT_MAX_MB", 1000, ge=1, le=1000)

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"

    @field_validator("slack_redirect_uri", "public_url", "slack_authorize_url")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("encryption_key")
    @classmethod
    def _fernet_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value().strip():
            parse_keys(v.get_secret_value())
        return v if v is not None and v.get_secret_value().strip() else None

    @field_validator("luma_base_url")
    @classmethod
    def _luma_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must look like sqlite:///relative/path.db, sqlite:////absolute/path.db "
                             "or postgresql://user:password@host:5432/database")
        return v

    @field_validator("session_vote_emoji")
    @classmethod
    def _emoji(cls, v: str) -> str:
        return v.strip().strip(":")

    @field_validator("log_format")
    @classmethod
    def _format(cls, v: str) -> str:
        v = v.lower()
        if v not in {"text", "json"}:
            raise ValueError("must be text or json")
        return v

    @field_validator("user_daily_images", "daily_budget_usd", "monthly_budget_usd", "confirm_above_usd",
                     "metrics_port", "replica_id", "slack_client_id", "slack_redirect_uri", "public_url",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip() in ("", "none", "off") else v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v

    @model_validator(mode="after")
    def _required(self) -> "Settings":
        problems: list[str] = []
        bot = _secret(self.slack_bot_token)
        if self.oauth_mode:
            problems += self._oauth_problems()
        elif not bot:
            problems.append("SLACK_BOT_TOKEN is missing: the bot token (xoxb-...) from OAuth & Permissions "
                            "(or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install with \"Add to Slack\")")
        elif not bot.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN does not look like a bot token: it should start with xoxb-")
        app = _secret(self.slack_app_token)
        if app and not app.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN does not look like an app-level token: it should start with xapp-")
        if not app and not _secret(self.slack_signing_secret):
            problems.append("SLACK_SIGNING_SECRET is missing: HTTP mode (no SLACK_APP_TOKEN) needs the "
                            "signing secret from Basic Information")
        if not _secret(self.luma_api_key):
            problems.append("LUMA_AGENTS_API_KEY is missing: the Luma Agents API key (luma-api-...)")
        if problems:
            raise ValueError(_PROBLEMS_MARK + "\n".join(problems))
        return self

    def _oauth_problems(self) -> list[str]:
        problems = []
        if not self.slack_client_id:
            problems.append("SLACK_CLIENT_ID is missing: OAuth mode (SLACK_CLIENT_SECRET is set) needs the "
                            "app's Client ID from Basic Information")
        if not _secret(self.slack_client_secret):
            problems.append("SLACK_CLIENT_SECRET is missing: OAuth mode (SLACK_CLIENT_ID is set) needs the "
                            "app's Client Secret from Basic Information")
        if self.socket_mode:
            problems.append("SLACK_APP_TOKEN is set: OAuth mode (SLACK_CLIENT_ID) serves Slack over HTTP; "
                            "unset SLACK_APP_TOKEN, or use SLACK_BOT_TOKEN for one workspace in Socket Mode")
        if not self.redirect_uri():
            problems.append("SLACK_REDIRECT_URI is missing: OAuth mode needs where Slack sends people back, "
                            f"https://<your host>{OAUTH_REDIRECT_PATH} (or set LUMABOT_PUBLIC_URL)")
        return problems

    # -- the sub-configurations (every default above, once) -----------------------------------
    def runner(self) -> RunnerConfig:
        from .runner.record import RunnerConfig

        return RunnerConfig(
            poll_interval=self.poll_interval, first_poll_delay=self.first_poll_delay,
            generation_timeout=self.generation_timeout, retry_backoff=self.retry_backoff,
            delivery_timeout=self.delivery_timeout,
            user_hash_salt=self.user_hash_salt.get_secret_value(),
            queue_update_interval=self.queue_update_interval,
            queue_updates_per_tick=self.queue_updates_per_tick,
            max_polls_per_second=self.max_polls_per_second,
            replica_id=self.replica_name(), takeover_seconds=self.takeover_seconds)

    def admin_ids(self) -> frozenset[str]:
        return frozenset(u.strip() for u in (self.admins or "").split(",") if u.strip())

    def replica_name(self) -> str:
        """LUMABOT_REPLICA_ID, else host name and port: the same after a restart (so a restarted
        replica resumes its own jobs at once), different for two replicas on one host."""
        if self.replica_id:
            return self.replica_id
        host = socket.gethostname()
        return host if self.socket_mode else f"{host}:{self.port}"

    def prices(self) -> Prices:
        return Prices(uni_1=self.price_uni_1, uni_1_edit=self.price_uni_1_edit,
                      uni_1_max=self.price_uni_1_max, uni_1_max_edit=self.price_uni_1_max_edit,
                      extra_reference=self.price_extra_reference)

    def limits(self) -> Limits:
        return Limits(max_queued_per_user=self.max_queued_per_user,
                      user_daily_images=self.user_daily_images, daily_budget_usd=self.daily_budget_usd,
                      monthly_budget_usd=self.monthly_budget_usd, retention_days=self.retention_days,
                      max_images_per_request=self.max_images_per_request,
                      confirm_above_usd=self.confirm_above_usd)

    def session_rules(self) -> SessionRules:
        return SessionRules(idle_minutes=self.session_idle_minutes, max_images=self.session_max_images,
                            vote_emoji=self.session_vote_emoji)

    # -- derived -------------------------------------------------------------------------------
    @property
    def socket_mode(self) -> bool:
        return bool(_secret(self.slack_app_token))

    @property
    def oauth_mode(self) -> bool:
        """Installed with "Add to Slack" in any number of workspaces (SLACK_CLIENT_ID or
        SLACK_CLIENT_SECRET set, SLACK_BOT_TOKEN not), rather than one workspace's bot token."""
        return not _secret(self.slack_bot_token) and bool(self.slack_client_id or _secret(self.slack_client_secret))

    def redirect_uri(self) -> str | None:
        """Where Slack sends people back after "Add to Slack"."""
        if self.slack_redirect_uri:
            return self.slack_redirect_uri
        return self.public_url.rstrip("/") + OAUTH_REDIRECT_PATH if self.public_url else None

    def sealer(self) -> Sealer:
        """What encrypts secrets at rest (nothing without LUMABOT_ENCRYPTION_KEY)."""
        key = _secret(self.encryption_key)
        return Sealer(parse_keys(key) if key else None)

    def client_secret(self) -> str:
        return _secret(self.slack_client_secret) or ""

    def bot_token(self) -> str:
        return _secret(self.slack_bot_token) or ""

    def signing_secret(self) -> str:
        return _secret(self.slack_signing_secret) or ""

    def app_token(self) -> str:
        return _secret(self.slack_app_token) or ""

    def luma_key(self) -> str:
        return _secret(self.luma_api_key) or ""


_PROBLEMS_MARK = "@@problems@@"


def _secret(v: SecretStr | None) -> str | None:
    return v.get_secret_value().strip() if v is not None else None


def _env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper()


_ENV_NAMES = {name: _env_name(name, field) for name, field in Settings.model_fields.items()}

_FIELDS_BY_ENV = {env: name for name, env in _ENV_NAMES.items()}


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError with one line per problem (never a value)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems, bad_fields = _problems(exc)
    if bad_fields:
        # Field errors stop pydantic before the cross-field checks: run those with the bad
        # fields at their defaults, so every problem is reported at once.
        defaults: dict[str, Any] = {_ENV_NAMES[f]: Settings.model_fields[f].default for f in bad_fields}
        try:
            Settings(**{**overrides, **defaults})
        except ValidationError as exc:
            problems += [p for p in _problems(exc)[0] if p not in problems]
    raise ConfigError(problems)


def _problems(exc: ValidationError) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    bad_fields: set[str] = set()
    for err in exc.errors(include_input=False, include_url=False):
        msg = str(err.get("msg", ""))
        if _PROBLEMS_MARK in msg:
            problems.extend(msg.split(_PROBLEMS_MARK, 1)[1].splitlines())
            continue
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else ""
        field = _FIELDS_BY_ENV.get(name.upper(), name)
        env = _ENV_NAMES.get(field, name.upper())
        if field in _ENV_NAMES:
            bad_fields.add(field)
        problems.append(f"{env} is invalid: {msg.removeprefix('Value error, ')}")
    return problems, bad_fields
