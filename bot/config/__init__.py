"""Settings: one TOML file, `HH_<SECTION>__<KEY>` environment overrides, secrets from env or files.

The loader never echoes a value back: problems are reported as `section.key: reason`, so a
misplaced token in the wrong key cannot leak through an error message.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from bot.config.sections import (
    DEFAULT_DATABASE_URL,
    SEVERITIES,
    AccessSettings,
    AlertmanagerSettings,
    AlertsSettings,
    AuditSettings,
    ChannelSettings,
    DatabaseSettings,
    DiscordSettings,
    GitHubSettings,
    HealthSettings,
    IncidentSettings,
    LoggingSettings,
    NodeTargetSettings,
    OutboxSettings,
    PrometheusSettings,
    RoleSettings,
    SmtpSettings,
    UpgradeSettings,
    WebSettings,
)

ENV_PREFIX = "HH_"


DEFAULT_CONFIG_PATH = Path("config.toml")


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATABASE_URL",
    "ENV_PREFIX",
    "SEVERITIES",
    "AccessSettings",
    "AlertmanagerSettings",
    "AlertsSettings",
    "AuditSettings",
    "ChannelSettings",
    "ConfigError",
    "DatabaseSettings",
    "DiscordSettings",
    "Duration",
    "GitHubSettings",
    "HealthSettings",
    "IncidentSettings",
    "LoadedConfig",
    "LoggingSettings",
    "NodeTargetSettings",
    "OutboxSettings",
    "PrometheusSettings",
    "RoleSettings",
    "Section",
    "Settings",
    "SmtpSettings",
    "Snowflake",
    "SnowflakeList",
    "UpgradeSettings",
    "WebSettings",
    "load_settings",
    "resolve_config_path",
]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    discord: DiscordSettings
    channels: ChannelSettings
    roles: RoleSettings
    database: DatabaseSettings = DatabaseSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
    access: AccessSettings = AccessSettings()
    health: HealthSettings = HealthSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    github: GitHubSettings = GitHubSettings()
    incidents: IncidentSettings = IncidentSettings()
    alertmanager: AlertmanagerSettings | None = None
    alerts: AlertsSettings = AlertsSettings()
    smtp: SmtpSettings | None = None
    outbox: OutboxSettings = OutboxSettings()
    upgrades: UpgradeSettings = UpgradeSettings()
    audit: AuditSettings = AuditSettings()

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redaction filter (a URL's password alone too)."""
        values = [s for s in _walk_secrets(self) if s]
        password = urlsplit(self.database.url.get_secret_value()).password
        if password:
            values.append(password)
        return values


def _walk_secrets(model: BaseModel) -> Iterator[str]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from _walk_secrets(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, SecretStr):
                    yield item.get_secret_value()


class ConfigError(Exception):
    """A configuration that cannot start the bot; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    path: Path
    file_found: bool


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """`--config`, then `$HH_CONFIG`, then `./config.toml`; the flag says whether it was named."""
    if explicit:
        return Path(explicit), True
    env = os.environ.get("HH_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    environ = os.environ if environ is None else environ
    config_path, named = resolve_config_path(path)
    problems: list[str] = []
    raw: dict[str, Any] = {}
    file_found = config_path.is_file()
    if file_found:
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{config_path}: not valid TOML ({exc})"]) from None
        except OSError as exc:
            raise ConfigError([f"{config_path}: cannot read ({exc.strerror})"]) from None
    elif named:
        raise ConfigError([f"{config_path}: config file not found"])

    problems += _apply_env(raw, environ)
    problems += _read_secret_files(raw)
    if not file_found and not _has_token(raw):
        raise ConfigError(
            [
                f"no config file at {config_path} and no token: copy config.example.toml to "
                "config.toml, fill in the ids, and set HH_DISCORD__TOKEN"
            ]
        )
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems += _describe(exc)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(settings=settings, path=config_path, file_found=file_found)


def _has_token(raw: Mapping[str, Any]) -> bool:
    discord = raw.get("discord")
    return isinstance(discord, dict) and bool(discord.get("token"))


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    problems = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if not section or not key or "__" in key:
            problems.append(f"{name}: expected HH_<SECTION>__<KEY>")
            continue
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            problems.append(f"{name}: [{section}] is not a table in the config file")
            continue
        target[key] = value
    return problems


def _read_secret_files(raw: dict[str, Any]) -> list[str]:
    """`<key>_file = "/run/secrets/x"` fills a secret from a file (Docker/systemd credentials)."""
    problems = []
    for section_name, section in raw.items():
        model = Settings.model_fields.get(section_name)
        if not isinstance(section, dict) or model is None or model.annotation is None:
            continue
        fields = getattr(_section_model(model.annotation), "model_fields", {})
        for key in [k for k in section if k.endswith("_file")]:
            base = key.removesuffix("_file")
            if base not in fields or not _is_secret(fields[base].annotation):
                continue
            file_path = Path(str(section.pop(key)))
            try:
                section[base] = file_path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"{section_name}.{key}: cannot read {file_path} ({exc.strerror})")
            except UnicodeDecodeError:
                problems.append(f"{section_name}.{key}: {file_path} is not UTF-8 text")
    return problems


def _section_model(annotation: object) -> object:
    """`AlertmanagerSettings | None` -> AlertmanagerSettings."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return annotation


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


_FRIENDLY = {
    "missing": "required",
    "extra_forbidden": "unknown key",
}


def _describe(exc: ValidationError) -> list[str]:
    """One line per problem, naming the key; pydantic's own text would echo the input value."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
        index = [part for part in error["loc"] if isinstance(part, int)]
        if index:
            loc += f"[{index[0]}]"
        message = _FRIENDLY.get(error["type"], error["msg"])
        if error["type"] == "model_type":
            message = "must be a table"
        lines.append(f"{loc}: {message}" if loc else message)
    return lines
