from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_DATABASE_URL, ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
TOKEN = "MTIz.super-secret-token.value"

GOOD = f"""
[discord]
token = "{TOKEN}"
guild_id = 800000000000000001
owner_ids = [111111111111111111]

[channels]
operations = 1
alerts = 2
dev_log = 3
miners = 4

[roles]
core_ops = 11
node_ops = 12
treasury_ops = 13
observer = 14
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ or {})
    return info.value.problems


def test_good_file_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, GOOD), environ={})
    s = loaded.settings
    assert s.discord.token is not None and s.discord.token.get_secret_value() == TOKEN
    assert s.discord.guild_id == 800000000000000001
    assert s.discord.owner_ids == [111111111111111111]
    assert s.channels.alerts == 2 and s.roles.observer == 14
    assert s.database.url.get_secret_value() == DEFAULT_DATABASE_URL
    assert (s.web.host, s.web.port) == ("127.0.0.1", 8085)
    assert (s.logging.level, s.logging.format) == ("INFO", "text")
    assert loaded.file_found


def test_example_config_is_valid_once_a_token_is_set() -> None:
    loaded = load_settings(EXAMPLE, environ={"HH_DISCORD__TOKEN": "x.y.z"})
    assert loaded.settings.channels.operations


def test_example_documents_every_key() -> None:
    """config.example.toml names every key of every section, each with a comment above it."""
    from bot.config import Settings, _section_model

    text = EXAMPLE.read_text()
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in text
        model = _section_model(field.annotation)
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            key = info.alias or name
            assert f"\n{key} =" in text or f"# {key} =" in text, f"{section}.{key} undocumented"


def test_environment_wins_over_file(tmp_path: Path) -> None:
    env = {
        "HH_DISCORD__TOKEN": "from-env",
        "HH_CHANNELS__ALERTS": "999",
        "HH_DISCORD__OWNER_IDS": "5, 6",
        "HH_WEB__PORT": "9000",
        "HH_LOGGING__LEVEL": "debug",
        "HH_TEST_DATABASE_URL": "ignored: no double underscore",
    }
    s = load_settings(write(tmp_path, GOOD), environ=env).settings
    assert s.discord.token is not None and s.discord.token.get_secret_value() == "from-env"
    assert s.channels.alerts == 999
    assert s.discord.owner_ids == [5, 6]
    assert s.web.port == 9000
    assert s.logging.level == "DEBUG"


def test_owner_ids_accept_json_list_from_env(tmp_path: Path) -> None:
    env = {"HH_DISCORD__OWNER_IDS": "[7, 8]"}
    assert load_settings(write(tmp_path, GOOD), environ=env).settings.discord.owner_ids == [7, 8]


def test_one_line_per_problem_naming_the_key(tmp_path: Path) -> None:
    text = GOOD.replace("alerts = 2", 'alerts = "general"').replace(
        "observer = 14", "observer = -1"
    )
    text += '\n[web]\nport = 70000\ncolour = "blue"\n[logging]\nformat = "xml"\n'
    lines = problems(write(tmp_path, text))
    assert "channels.alerts: must be a Discord id (integer)" in lines
    assert "roles.observer: must be a Discord id (integer)" in lines
    assert any(line.startswith("web.port: ") for line in lines)
    assert "web.colour: unknown key" in lines
    assert any(line.startswith("logging.format: ") for line in lines)
    assert len(lines) == 5


def test_missing_keys_are_named(tmp_path: Path) -> None:
    text = GOOD.replace("miners = 4\n", "").replace("[roles]", "[rolez]")
    lines = problems(write(tmp_path, text))
    assert "channels.miners: required" in lines
    assert "roles: required" in lines
    assert "rolez: unknown key" in lines


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    """A token pasted into the wrong key must not come back in the error."""
    text = GOOD.replace("guild_id = 800000000000000001", f'guild_id = "{TOKEN}"')
    text = text.replace(f'token = "{TOKEN}"', f'token = "{TOKEN}"')
    lines = problems(write(tmp_path, text), {"HH_DATABASE__URL": "mysql://u:hunter2@db/x"})
    joined = "\n".join(lines)
    assert "discord.guild_id: must be a Discord id (integer)" in lines
    assert "database.url: must start with" in joined
    assert TOKEN not in joined and "hunter2" not in joined


def test_missing_token_names_the_variable(tmp_path: Path) -> None:
    text = GOOD.replace(f'token = "{TOKEN}"\n', "")
    assert problems(write(tmp_path, text)) == [
        "discord.token: required: set HH_DISCORD__TOKEN or discord.token_file"
    ]


def test_token_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token\n")
    text = GOOD.replace(f'token = "{TOKEN}"', f'token_file = "{secret}"')
    s = load_settings(write(tmp_path, text), environ={}).settings
    assert s.discord.token is not None and s.discord.token.get_secret_value() == "file-token"


def test_unreadable_token_file_is_named(tmp_path: Path) -> None:
    text = GOOD.replace(f'token = "{TOKEN}"', 'token_file = "/nonexistent/token"')
    lines = problems(write(tmp_path, text))
    assert lines[0].startswith("discord.token_file: cannot read /nonexistent/token")


def test_named_file_that_does_not_exist(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: config file not found"]


def test_no_file_and_no_token_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HH_CONFIG", raising=False)
    lines = problems(None)
    assert len(lines) == 1
    assert "config.example.toml" in lines[0] and "HH_DISCORD__TOKEN" in lines[0]


def test_hh_config_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("HH_CONFIG", str(path))
    assert load_settings(None, environ={}).path == path


def test_environment_only_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HH_CONFIG", raising=False)
    env = {"HH_DISCORD__TOKEN": "t", "HH_DISCORD__GUILD_ID": "1"}
    env |= {f"HH_CHANNELS__{k}": "2" for k in ("OPERATIONS", "ALERTS", "DEV_LOG", "MINERS")}
    env |= {f"HH_ROLES__{k}": "3" for k in ("CORE_OPS", "NODE_OPS", "TREASURY_OPS", "OBSERVER")}
    loaded = load_settings(None, environ=env)
    assert not loaded.file_found and loaded.settings.roles.core_ops == 3


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, "[discord\n"))
    assert len(lines) == 1 and "not valid TOML" in lines[0]


def test_malformed_env_name(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, GOOD), {"HH_DISCORD__": "x"})
    assert lines == ["HH_DISCORD__: expected HH_<SECTION>__<KEY>"]


@pytest.mark.parametrize(
    ("url", "auto", "expected"),
    [
        ("sqlite+aiosqlite:///x.db", None, True),
        ("postgresql+asyncpg://u@h/d", None, False),
        ("postgresql+asyncpg://u@h/d", True, True),
        ("sqlite+aiosqlite:///x.db", False, False),
    ],
)
def test_migrate_on_start_policy(
    tmp_path: Path, url: str, auto: bool | None, expected: bool
) -> None:
    env = {"HH_DATABASE__URL": url}
    if auto is not None:
        env["HH_DATABASE__AUTO_MIGRATE"] = str(auto).lower()
    s = load_settings(write(tmp_path, GOOD), environ=env).settings
    assert s.database.migrate_on_start is expected


def test_secret_values_lists_every_secret(tmp_path: Path) -> None:
    env = {"HH_DATABASE__URL": "postgresql+asyncpg://u:pw@h/d"}
    s = load_settings(write(tmp_path, GOOD), environ=env).settings
    assert set(s.secret_values()) == {TOKEN, "postgresql+asyncpg://u:pw@h/d", "pw"}
    assert TOKEN not in repr(s) and TOKEN not in str(s.model_dump())


def test_token_file_from_environment(tmp_path: Path) -> None:
    """systemd's LoadCredential and Docker secrets hand the token over as a file."""
    secret = tmp_path / "cred"
    secret.write_text("credential-token")
    text = GOOD.replace(f'token = "{TOKEN}"\n', "")
    env = {"HH_DISCORD__TOKEN_FILE": str(secret)}
    s = load_settings(write(tmp_path, text), environ=env).settings
    assert s.discord.token is not None
    assert s.discord.token.get_secret_value() == "credential-token"


def test_access_defaults_and_bad_cron(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={}).settings
    assert (s.access.max_days, s.access.review_days, s.access.lockout_strikes) == (90, 14, 3)
    assert s.access.reminder_days == [7, 1]
    assert s.access.enforce is True, "hand-given ops roles are removed by default (item 9)"
    lines = problems(
        write(tmp_path, GOOD + '\n[access]\nreview_cron = "every quarter"\nmax_days = 120\n')
    )
    assert (
        "access.review_cron: must be a 5-field cron expression (minute hour day month weekday)"
        in lines
    )
    assert any(line.startswith("access.max_days:") for line in lines)
    env = {"HH_ACCESS__REMINDER_DAYS": "14, 3,1", "HH_ACCESS__ENFORCE": "false"}
    s = load_settings(write(tmp_path, GOOD), environ=env).settings
    assert s.access.reminder_days == [14, 3, 1] and s.access.enforce is False


def test_health_and_prometheus_are_optional_with_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={}).settings
    assert s.health.probe_timeout == 2.0 and s.health.status_cooldown == 10.0
    assert s.health.nodes == [] and s.prometheus.url is None


def test_health_secrets_from_env_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "rpc-password"
    secret.write_text("s3cret-rpc\n")
    text = GOOD + (
        '\n[health]\nbitcoind_url = "http://127.0.0.1:8332"\nbitcoind_user = "hh"\n'
        f'bitcoind_password_file = "{secret}"\n'
        '\n[[health.nodes]]\nname = "node-1"\nendpoint = "http://127.0.0.1:8442/"\n'
    )
    env = {"HH_HEALTH__PROBE_TIMEOUT": "1.5", "HH_HEALTH__LND_MACAROON": "0201abcd"}
    s = load_settings(write(tmp_path, text), environ=env).settings
    assert s.health.bitcoind_password is not None
    assert s.health.bitcoind_password.get_secret_value() == "s3cret-rpc"
    assert "s3cret-rpc" in s.secret_values() and "0201abcd" in s.secret_values()
    assert "s3cret-rpc" not in repr(s)
    assert s.health.probe_timeout == 1.5
    assert s.health.nodes[0].endpoint == "http://127.0.0.1:8442"


def test_health_problems_name_the_key(tmp_path: Path) -> None:
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x02\xff\xfe binary")
    text = GOOD + (
        '\n[health]\ncore_url = "ftp://127.0.0.1"\n'
        'bitcoind_url = "http://user:pw@127.0.0.1:8332"\nprobe_timeout = 0\n'
        f'lnd_macaroon_file = "{macaroon}"\n'
    )
    lines = problems(write(tmp_path, text))
    assert "health.core_url: must be an http(s):// URL" in lines
    assert any(line.startswith("health.bitcoind_url: must not hold credentials") for line in lines)
    assert any(line.startswith("health.probe_timeout:") for line in lines)
    assert f"health.lnd_macaroon_file: {macaroon} is not UTF-8 text" in lines
    assert not any("pw@" in line for line in lines)


def test_lnd_needs_a_pinned_certificate_and_a_macaroon(tmp_path: Path) -> None:
    text = GOOD + '\n[health]\nlnd_url = "https://127.0.0.1:8080"\n'
    (line,) = problems(write(tmp_path, text))
    assert line.startswith("health: ") and "lnd_tls_cert" in line


def test_alert_sections_are_optional_with_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={}).settings
    assert s.alertmanager is None and s.smtp is None
    assert (s.alerts.email_fallback_after, s.alerts.watchdog_timeout) == (120.0, 600.0)
    assert s.outbox.max_backoff == 300.0


def test_alertmanager_token_from_a_file_and_durations(tmp_path: Path) -> None:
    secret = tmp_path / "am-token"
    secret.write_text("s3cret-token-0123456789\n")
    extra = """
[alerts]
email_fallback_after = "2m"
watchdog_timeout = "1h"
mention_roles = { CRITICAL = [21] }

[smtp]
host = "smtp.example.org"
from = "bot@example.org"
to = "a@example.org, b@example.org"
password = "smtp-password"
"""
    environ = {"HH_ALERTMANAGER__WEBHOOK_TOKEN_FILE": str(secret)}
    s = load_settings(write(tmp_path, GOOD + extra), environ=environ).settings
    assert s.alertmanager is not None
    assert s.alertmanager.webhook_token.get_secret_value() == "s3cret-token-0123456789"
    assert (s.alerts.email_fallback_after, s.alerts.watchdog_timeout) == (120.0, 3600.0)
    assert s.alerts.mention_roles == {"critical": [21]}
    assert s.smtp is not None and s.smtp.from_ == "bot@example.org"
    assert s.smtp.to == ["a@example.org", "b@example.org"]
    assert {"s3cret-token-0123456789", "smtp-password"} <= set(s.secret_values())


def test_alert_settings_problems_name_the_key(tmp_path: Path) -> None:
    extra = """
[alertmanager]
webhook_token = "short"

[alerts]
watchdog_timeout = "soon"
mention_roles = { loud = [1] }
"""
    found = problems(write(tmp_path, GOOD + extra))
    assert any(p.startswith("alertmanager.webhook_token: required, at least 16") for p in found)
    assert any(p.startswith("alerts.watchdog_timeout: must be a duration") for p in found)
    assert any(p.startswith("alerts.mention_roles: keys must be severities") for p in found)
    assert not any("short" in p for p in found), "values are never echoed"


KEY = "RWQ9GIRTdB00UQCXni26fLsETpGzSOdfcFmXhZKv6rVo6aVdNGTEoASW"


def test_upgrades_are_optional_and_keys_come_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    loaded = load_settings(path, environ={})
    assert loaded.settings.upgrades.trusted_keys == []
    assert loaded.settings.upgrades.github_repo is None
    assert loaded.settings.upgrades.poll_minutes == 60
    env = {
        "HH_DISCORD__TOKEN": "x.y.z",
        "HH_UPGRADES__TRUSTED_KEYS": f'["{KEY}"]',
        "HH_UPGRADES__GITHUB_REPO": "hyper-hash/releases",
    }
    loaded = load_settings(path, environ=env)
    assert loaded.settings.upgrades.trusted_keys == [KEY]
    assert loaded.settings.upgrades.github_repo == "hyper-hash/releases"


def test_a_bad_trusted_key_or_repo_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[upgrades]\ntrusted_keys = ["nope"]\ngithub_repo = "x"\n')
    found = problems(path)
    assert any("upgrades.trusted_keys" in p and "minisign public key" in p for p in found)
    assert any("upgrades.github_repo" in p and "owner/name" in p for p in found)


def test_two_trusted_keys_with_one_key_id_stop_the_start(tmp_path: Path) -> None:
    """Two different keys under one key id: which one vouches? A configuration error."""
    import base64

    raw = base64.b64decode(KEY)
    twin = base64.b64encode(raw[:10] + bytes(reversed(raw[10:]))).decode()
    other = base64.b64encode(raw[:2] + bytes(8) + raw[10:]).decode()
    text = GOOD + f'[upgrades]\ntrusted_keys = ["{KEY}", "{other}", "{twin}"]\n'
    assert problems(write(tmp_path, text)) == [
        "upgrades.trusted_keys: entries 0 and 2 have the same key id 51341D745384183D: "
        "remove one (a key id names one key)"
    ]
    same = GOOD + f'[upgrades]\ntrusted_keys = ["{KEY}", "{KEY}"]\n'
    assert problems(write(tmp_path, same)) == [
        "upgrades.trusted_keys: entries 0 and 1 have the same key id 51341D745384183D: "
        "remove one (a key id names one key)"
    ]
    env = {"HH_UPGRADES__TRUSTED_KEYS": f'["{KEY}", "{twin}"]'}
    (line,) = problems(write(tmp_path, GOOD), env)
    assert line.startswith("upgrades.trusted_keys: entries 0 and 1 have the same key id")
    assert twin not in line and KEY not in line, "the keys themselves are not echoed"
    good = GOOD + f'[upgrades]\ntrusted_keys = ["{KEY}", "{other}"]\n'
    assert load_settings(write(tmp_path, good), environ={}).settings.upgrades.trusted_keys == [
        KEY,
        other,
    ]


def test_the_retired_receiver_keys_still_load_and_are_named(tmp_path: Path) -> None:
    text = GOOD + (
        '\n[web]\nport = 8090\n[alertmanager]\nwebhook_token = "0123456789abcdef"\n'
        'receiver = "process"\nreceiver_port = 8090\n'
    )
    am = load_settings(write(tmp_path, text), environ={}).settings.alertmanager
    assert am is not None
    assert am.retired_keys() == ["alertmanager.receiver", "alertmanager.receiver_port"]
    plain = GOOD + '\n[alertmanager]\nwebhook_token = "0123456789abcdef"\n'
    am = load_settings(write(tmp_path, plain), environ={}).settings.alertmanager
    assert am is not None and am.retired_keys() == []


def test_an_unknown_receiver_mode_is_named(tmp_path: Path) -> None:
    text = GOOD + '\n[alertmanager]\nwebhook_token = "0123456789abcdef"\nreceiver = "thread"\n'
    (line,) = problems(write(tmp_path, text))
    assert line.startswith("alertmanager.receiver: ")


def test_audit_key_from_file_and_head_file(tmp_path: Path) -> None:
    """`[audit] hmac_key_file` fills the secret key (stripped); it is redacted from logs."""
    from bot.storage.audit_head import chain_options

    key = "0123456789abcdef" * 4
    (tmp_path / "audit.key").write_text(key + "\n")
    text = GOOD + f'\n[audit]\nhmac_key_file = "{tmp_path / "audit.key"}"\nhead_file = ""\n'
    s = load_settings(write(tmp_path, text), environ={}).settings
    assert s.audit.hmac_key is not None and s.audit.hmac_key.get_secret_value() == key
    assert key in s.secret_values()
    assert key not in repr(s)
    options = chain_options(s.database.url.get_secret_value(), s.audit.head_file, key)
    assert options.key == key.encode() and options.head_file is None and key not in repr(options)
    # Defaults: beside a SQLite file; none for PostgreSQL.
    default = load_settings(write(tmp_path, GOOD), environ={}).settings.audit
    assert default.head_file is None and default.hmac_key is None
    sqlite = chain_options("sqlite+aiosqlite:///./x/hh.db", None, None).head_file
    assert sqlite == Path("./x/hh.db.audit-head")
    assert chain_options("postgresql+asyncpg://u:p@h/db", None, None).head_file is None
    assert chain_options("sqlite+aiosqlite:///:memory:", None, None).head_file is None


def test_a_short_audit_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_text("too-short-key")
    text = GOOD + f'\n[audit]\nhmac_key_file = "{tmp_path / "audit.key"}"\n'
    lines = problems(write(tmp_path, text))
    assert lines == [
        "audit.hmac_key: must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)"
    ]
    missing = GOOD + '\n[audit]\nhmac_key_file = "/nonexistent/audit.key"\n'
    assert problems(write(tmp_path, missing))[0].startswith(
        "audit.hmac_key_file: cannot read /nonexistent/audit.key"
    )


def test_discord_calls_are_bounded_by_default(tmp_path: Path) -> None:
    discord = load_settings(write(tmp_path, GOOD), environ={}).settings.discord
    assert (discord.max_ratelimit_timeout, discord.send_timeout) == (30.0, 10.0)
    text = GOOD.replace("[channels]", "max_ratelimit_timeout = 5\nsend_timeout = 0\n\n[channels]")
    lines = problems(write(tmp_path, text))
    assert any(line.startswith("discord.max_ratelimit_timeout: ") for line in lines)
    assert any(line.startswith("discord.send_timeout: ") for line in lines)
