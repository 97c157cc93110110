"""One pydantic model per section of config.toml; config.example.toml documents every key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.config.types import (
    Duration,
    Section,
    Snowflake,
    SnowflakeList,
    _http_url,
    _str_list,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./hh-opsbot.db"


class DiscordSettings(Section):
    token: SecretStr | None = Field(default=None, validate_default=True)
    guild_id: Snowflake
    owner_ids: SnowflakeList = Field(default_factory=list)
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str | None = None
    sync_commands: bool = True
    max_ratelimit_timeout: Duration = Field(default=30.0, ge=30)
    """A 429 asking for longer is not slept by discord.py: the outbox item is retried after it
    (30 s is discord.py's smallest)."""
    send_timeout: Duration = Field(default=10.0, gt=0)
    """The longest one Discord REST call of a delivery may take; then it is retried."""

    @field_validator("token")
    @classmethod
    def _token_present(cls, value: SecretStr | None) -> SecretStr:
        if value is None or not value.get_secret_value().strip():
            raise PydanticCustomError(
                "token", "required: set HH_DISCORD__TOKEN or discord.token_file"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_base", "gateway_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise PydanticCustomError("url", "must be an http(s):// or ws(s):// URL")
        return value.rstrip("/") if value else value


class ChannelSettings(Section):
    operations: Snowflake
    alerts: Snowflake
    dev_log: Snowflake
    miners: Snowflake


class RoleSettings(Section):
    core_ops: Snowflake
    node_ops: Snowflake
    treasury_ops: Snowflake
    observer: Snowflake


class DatabaseSettings(Section):
    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    auto_migrate: bool | None = None
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise PydanticCustomError(
                "db_url", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_secret_value().startswith("sqlite")

    @property
    def migrate_on_start(self) -> bool:
        """SQLite is a single-user embedded file: migrating it on start is what a new user wants.

        A shared PostgreSQL is migrated deliberately with `hh-opsbot migrate`.
        """
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


class WebSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8085, ge=0, le=65535)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class AccessSettings(Section):
    """Expiring grants, the quarterly review and the 3-strike lockout (manual §9, §18)."""

    max_days: int = Field(default=90, ge=1, le=90)
    enforce: bool = True
    review_cron: str = "0 9 1 1,4,7,10 *"
    review_days: int = Field(default=14, ge=1, le=90)
    lockout_strikes: int = Field(default=3, ge=1, le=100)
    lockout_window_minutes: int = Field(default=15, ge=1, le=1440)
    lockout_minutes: int = Field(default=60, ge=1, le=10080)
    approval_hours: int = Field(default=24, ge=1, le=168)
    reminder_days: list[int] = Field(default_factory=lambda: [7, 1])

    @field_validator("review_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError:
            raise PydanticCustomError(
                "cron", "must be a 5-field cron expression (minute hour day month weekday)"
            ) from None
        return value

    @field_validator("reminder_days", mode="before")
    @classmethod
    def _days_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.strip("[]").split(",") if part.strip()]
        return value

    @field_validator("reminder_days")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(day < 1 for day in value):
            raise PydanticCustomError("days", "reminder days must be whole days of 1 or more")
        return sorted(set(value), reverse=True)


class NodeTargetSettings(Section):
    """A Hyper Node agent known from the config file (registered nodes live in the database)."""

    name: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
    endpoint: str
    region: str | None = None

    _endpoint = field_validator("endpoint")(lambda cls, v: _http_url(v))


class HealthSettings(Section):
    """Targets of /health and /status (manual §11); every key optional."""

    probe_timeout: float = Field(default=2.0, gt=0, le=30)
    budget: float = Field(default=5.0, gt=0, le=60)
    max_connections: int = Field(default=1000, ge=1, le=10000)
    poll_interval: float = Field(default=30.0, ge=5, le=600)
    share_stale_after: float = Field(default=300.0, gt=0)
    status_cooldown: float = Field(default=10.0, ge=0, le=3600)
    board_interval: float = Field(default=60.0, ge=5, le=3600)
    allow_loopback: bool = False
    core_url: str | None = None
    bitcoind_url: str | None = None
    bitcoind_user: str | None = None
    bitcoind_password: SecretStr | None = None
    bitcoind_cookie_file: Path | None = None
    lnd_url: str | None = None
    lnd_macaroon: SecretStr | None = None
    lnd_macaroon_path: Path | None = None
    lnd_tls_cert: Path | None = None
    nodes: list[NodeTargetSettings] = Field(default_factory=list)

    _urls = field_validator("core_url", "bitcoind_url", "lnd_url")(lambda cls, v: _http_url(v))

    @model_validator(mode="after")
    def _complete(self) -> HealthSettings:
        if self.lnd_url and self.lnd_url.startswith("https") and self.lnd_tls_cert is None:
            raise PydanticCustomError(
                "lnd_tls", "lnd_tls_cert is required with lnd_url: lnd's certificate is pinned"
            )
        if self.lnd_url and self.lnd_macaroon is None and self.lnd_macaroon_path is None:
            raise PydanticCustomError(
                "lnd_macaroon", "lnd_url needs lnd_macaroon_path (or lnd_macaroon, hex)"
            )
        names = [node.name for node in self.nodes]
        if len(names) != len(set(names)):
            raise PydanticCustomError("nodes", "node names must be unique")
        return self


class PrometheusSettings(Section):
    """Instant queries for the pool's figures; unset url: no Prometheus target."""

    url: str | None = None
    pool_hashrate: str = "sum(hh_pool_hashrate)"
    pool_hashrate_24h_avg: str = "avg_over_time(sum(hh_pool_hashrate)[24h:5m])"
    share_rate: str = "sum(rate(hh_pool_shares_accepted_total[5m]))"
    template_latency: str = "max(hh_template_latency_seconds)"

    _url = field_validator("url")(lambda cls, v: _http_url(v))


class GitHubSettings(Section):
    """Where incidents are logged on GitHub (manual §19); GitHub Enterprise through `api_url`.

    Optional: without `repo`, incidents work and the GitHub side says "not configured".
    """

    repo: str | None = None
    token: SecretStr | None = None
    api_url: str = "https://api.github.com"
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_secret: SecretStr | None = None
    """Verifies `POST /webhooks/github` (X-Hub-Signature-256); HH_GITHUB__WEBHOOK_SECRET or
    `webhook_secret_file`. Unset: the route answers 503."""
    merge_burst_minutes: int = Field(default=10, ge=0, le=1440)
    """Pull requests merged within this long of a #dev-log merges message join it (edited)."""

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        if len(text) < 16:
            raise PydanticCustomError(
                "webhook_secret",
                "must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)",
            )
        return SecretStr(text)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        owner, _, name = value.strip().partition("/")
        if not owner or not name or "/" in name or " " in value.strip():
            raise PydanticCustomError("repo", "must be owner/name")
        return value.strip()

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise PydanticCustomError("url", "must be an http(s):// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _token_with_repo(self) -> GitHubSettings:
        token = self.token.get_secret_value().strip() if self.token else ""
        if self.repo and not token:
            raise PydanticCustomError(
                "token", "token is required with repo (HH_GITHUB__TOKEN or token_file)"
            )
        return self

    @property
    def configured(self) -> bool:
        return bool(self.repo and self.token)


class IncidentSettings(Section):
    """Incident nudges, the report deadline and the #miners notice (manual §12, §20)."""

    nudge_sev1_minutes: int = Field(default=30, ge=1, le=1440)
    nudge_sev2_minutes: int = Field(default=60, ge=1, le=1440)
    report_due_hours: int = Field(default=48, ge=1, le=720)
    miners_notice: bool = True


class AlertmanagerSettings(Section):
    """Alertmanager's webhook into the bot, and its API v2 for silences."""

    webhook_token: SecretStr = Field(validate_default=True, default=SecretStr(""))
    api_url: str | None = None
    api_timeout: Duration = 10.0
    receiver: Literal["inline", "process", "external"] = "inline"
    receiver_host: str = "127.0.0.1"
    receiver_port: int = Field(default=8086, ge=0, le=65535)
    """Retired with the webhook receiver process (one process, one store): accepted so that an
    older config still starts, ignored, and named in one warning at start (`retired_keys`)."""
    spool_path: str = "./hh-opsbot-spool.db"
    """Where the retired receiver kept its spool: a file left there is read at start, so the
    bodies it had accepted are applied once."""
    spool_retention: Duration = 600.0

    def retired_keys(self) -> list[str]:
        """The retired keys this config still sets."""
        return [
            f"alertmanager.{key}"
            for key in ("receiver", "receiver_host", "receiver_port")
            if key in self.model_fields_set
        ]

    @field_validator("webhook_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if len(text) < 16:
            raise PydanticCustomError(
                "webhook_token",
                "required, at least 16 characters: set HH_ALERTMANAGER__WEBHOOK_TOKEN or "
                "alertmanager.webhook_token_file",
            )
        return SecretStr(text)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value)


SEVERITIES = ("critical", "warning", "info")


class AlertsSettings(Section):
    """How alerts are relayed into #alerts."""

    mention_roles: dict[str, SnowflakeList] = Field(default_factory=dict)
    email_fallback_after: Duration = 120.0
    watchdog_timeout: Duration = 600.0
    watchdog_alertname: str = "Watchdog"
    check_interval: Duration = Field(default=15.0, gt=0)
    batch_wait: Duration = 0.5
    channel_rate_limit: int = Field(default=5, ge=1)
    channel_rate_period: Duration = Field(default=5.0, gt=0)
    storm_horizon: Duration = Field(default=10.0, gt=0)
    digest_max_groups: int = Field(default=40, ge=1, le=100)

    @field_validator("mention_roles")
    @classmethod
    def _known_severities(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        lowered = {key.lower(): ids for key, ids in value.items()}
        unknown = sorted(set(lowered) - set(SEVERITIES))
        if unknown:
            raise PydanticCustomError(
                "severity", "keys must be severities: critical, warning or info"
            )
        return lowered


class SmtpSettings(Section):
    """Email fallback for critical alerts that could not reach Discord (manual §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    use_tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: Duration = 10.0

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class OutboxSettings(Section):
    """The delivery worker: how long it waits between retries at most, how often it polls."""

    max_backoff: Duration = Field(default=300.0, gt=0)
    idle_poll: Duration = Field(default=5.0, gt=0)


class AuditSettings(Section):
    """The audit log's anchors outside its own table (see README, Audit log)."""

    head_file: str | None = None
    """Where the chain's head (newest row id and hash) is written after every append. Unset:
    beside a SQLite database file (`<database>.audit-head`), none for PostgreSQL; "": none."""
    hmac_key: SecretStr | None = None
    """Keys the chain (HMAC-SHA256); read from `hmac_key_file`, or HH_AUDIT__HMAC_KEY."""

    @field_validator("hmac_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if len(text) < 32:
            raise PydanticCustomError(
                "hmac_key",
                "must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)",
            )
        return SecretStr(text)


class UpgradeSettings(Section):
    """Signed release manifests and their rollout (manual §8). Optional: without trusted keys,
    every announce is refused ("no trusted keys"); without `github_repo`, nothing is polled."""

    trusted_keys: Annotated[list[str], BeforeValidator(_str_list)] = Field(default_factory=list)
    github_repo: str | None = None
    poll_minutes: int = Field(default=60, ge=5, le=1440)
    fetch_timeout: float = Field(default=10.0, gt=0, le=60)

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        from bot.domain.minisign import PublicKey, SignatureError, first_shared_key_id

        keys = []
        parsed = []
        for index, line in enumerate(value):
            try:
                parsed.append(PublicKey.parse(line))
            except SignatureError:
                raise PydanticCustomError(
                    "minisign_key",
                    "entry {index} is not a minisign public key (the base64 line of a .pub file)",
                    {"index": index},
                ) from None
            keys.append(line.strip().splitlines()[-1].strip())
        shared = first_shared_key_id(parsed)
        if shared is not None:
            raise PydanticCustomError(
                "minisign_key_id",
                "entries {first} and {second} have the same key id {key_id}: remove one "
                "(a key id names one key)",
                {"first": shared[0], "second": shared[1], "key_id": shared[2]},
            )
        return keys

    _repo = field_validator("github_repo")(lambda cls, v: GitHubSettings._repo(v))
