"""The CLI contract: run / migrate / check-config, --config, exit codes, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.app import StartupError
from bot.config import load_settings
from bot.storage import migrations
from bot.storage.database import Database
from tests.unit.test_config import GOOD, TOKEN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HH_") and name != "HH_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    path = tmp_path / "config.toml"
    db = tmp_path / "bot.db"
    path.write_text(GOOD + f'\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    return path


def test_check_config_ok(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "--config", str(config_file)]) == 0
    assert "configuration OK" in capsys.readouterr().out


def test_check_config_defaults_to_config_toml_in_cwd(config_file: Path, capsys) -> None:
    assert cli.main(["check-config"]) == 0


def test_check_config_bad_file(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file.write_text(GOOD.replace("alerts = 2", 'alerts = "x"'))
    assert cli.main(["check-config", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert err == "hh-opsbot: channels.alerts: must be a Discord id (integer)\n"
    assert TOKEN not in err


def test_run_without_config_or_token_says_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HH_CONFIG", raising=False)
    monkeypatch.delenv("HH_DISCORD__TOKEN", raising=False)
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "config.example.toml" in err[0] and "HH_DISCORD__TOKEN" in err[0]


def test_usage_errors() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_migrate_then_schema_is_current(config_file: Path) -> None:
    assert cli.main(["migrate", "--config", str(config_file)]) == 0
    assert cli.main(["migrate", "--config", str(config_file)]) == 0  # idempotent


async def test_run_migrates_sqlite_on_start(config_file: Path) -> None:
    loaded = load_settings(config_file, environ={})
    await cli.prepare_schema(loaded)
    db = Database.from_url(loaded.settings.database.url.get_secret_value())
    assert (await migrations.schema_state(db.engine)).up_to_date
    await db.close()


async def test_run_refuses_an_old_schema_when_auto_migrate_is_off(config_file: Path) -> None:
    loaded = load_settings(config_file, environ={"HH_DATABASE__AUTO_MIGRATE": "false"})
    with pytest.raises(StartupError, match="run `hh-opsbot migrate` first"):
        await cli.prepare_schema(loaded)
    db = Database.from_url(loaded.settings.database.url.get_secret_value())
    assert (await migrations.schema_state(db.engine)).current is None, "nothing was changed"
    await db.close()


async def test_run_names_an_unreachable_database_without_its_password(config_file: Path) -> None:
    url = "postgresql+asyncpg://hh:hunter2@127.0.0.1:1/none"
    loaded = load_settings(config_file, environ={"HH_DATABASE__URL": url})
    with pytest.raises(StartupError, match="cannot reach the database") as info:
        await cli.prepare_schema(loaded)
    assert "hunter2" not in str(info.value)


def test_python_dash_m_bot_is_the_same_cli(config_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_console_script_help_lists_the_commands() -> None:
    script = Path(sys.executable).with_name("hh-opsbot")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("run", "migrate", "check-config", "receive"):
        assert command in result.stdout


def test_audit_verify_passes_then_names_an_edited_row(config_file: Path, capsys) -> None:
    """`hh-opsbot audit verify` on a real log, then on the same log with one row edited."""
    import asyncio
    import sqlite3

    from bot.domain.clock import SystemClock
    from bot.domain.roles import Actor
    from bot.services.audit import AuditService
    from bot.storage.audit_head import chain_options

    assert cli.main(["migrate", "--config", str(config_file)]) == 0
    url = load_settings(config_file, environ={}).settings.database.url.get_secret_value()

    async def write_rows() -> None:
        db = Database.from_url(url, audit=chain_options(url, None, None))
        service = AuditService(SystemClock())
        for i in range(5):
            async with db.uow() as uow:
                await service.record(uow, Actor(id=i, name=f"m{i}"), "whoami")
                await uow.commit()
        await db.close()

    asyncio.run(write_rows())
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "audit log OK: 5 rows" in out and "bot.db.audit-head matches" in out

    conn = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))
    conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE id = 3")
    conn.commit()
    conn.close()
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 1
    err = capsys.readouterr().err
    assert "audit log BROKEN at row 3" in err and "edited" in err


def test_receive_says_the_receiver_was_retired(config_file: Path, capsys) -> None:
    """`hh-opsbot receive` (the retired receiver process): one line saying where Alertmanager
    posts now, and exit 2, so a supervisor still starting it is noticed."""
    assert cli.main(["receive", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "the webhook receiver process was retired" in err
    assert "/webhooks/alertmanager" in err


AUDIT_KEY = "f0e1d2c3b4a5968778695a4b3c2d1e0f" * 2


def _audit_rows(config_file: Path, count: int) -> str:
    """`count` audit rows written the way the bot writes them (its head file, its key)."""
    import asyncio

    from bot.app import audit_chain_options
    from bot.domain.clock import SystemClock
    from bot.domain.roles import Actor
    from bot.services.audit import AuditService

    settings = load_settings(config_file, environ={}).settings
    url = settings.database.url.get_secret_value()

    async def write_rows() -> None:
        db = Database.from_url(url, audit=audit_chain_options(settings))
        service = AuditService(SystemClock())
        async with db.uow() as uow:
            await service.key_chain(uow)
        for i in range(count):
            async with db.uow() as uow:
                await service.record(uow, Actor(id=i, name=f"m{i}"), "whoami")
                await uow.commit()
        await db.close()

    assert cli.main(["migrate", "--config", str(config_file)]) == 0
    asyncio.run(write_rows())
    return url.removeprefix("sqlite+aiosqlite:///")


def test_audit_verify_catches_a_truncation_the_database_hides(config_file: Path, capsys) -> None:
    """The newest rows deleted and the stored head fixed up: only the head file still knows."""
    import sqlite3

    path = _audit_rows(config_file, 5)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM audit_log WHERE id > 3")
    conn.commit()
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "audit log BROKEN: the log has 3 rows but its stored head counts 5: rows were deleted",
        f"audit log BROKEN: the stored head names row 5 (hash {_hash(path, None)[:12]}) but the "
        f"log ends at row 3 (hash {_hash(path, 3)[:12]}): the newest rows were deleted or "
        "rewritten",
        f"audit log BROKEN: the head file {path}.audit-head names row 5 but the log ends at "
        "row 3: the newest rows were deleted",
    ]
    head = conn.execute("SELECT hash FROM audit_log WHERE id = 3").fetchone()[0]
    conn.execute("UPDATE audit_chain_head SET last_id = 3, row_count = 3, last_hash = ?", (head,))
    conn.commit()
    conn.close()
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 1
    assert capsys.readouterr().err.splitlines() == [err[-1]]


def _hash(path: str, row_id: int | None) -> str:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        if row_id is None:
            return str(conn.execute("SELECT last_hash FROM audit_chain_head").fetchone()[0])
        return str(conn.execute("SELECT hash FROM audit_log WHERE id = ?", (row_id,)).fetchone()[0])
    finally:
        conn.close()


def test_audit_verify_with_the_key_without_it_and_with_another(config_file: Path, capsys) -> None:
    key_file = config_file.parent / "audit.key"
    key_file.write_text(AUDIT_KEY + "\n")
    plain = config_file.read_text()
    config_file.write_text(plain + f'\n[audit]\nhmac_key_file = "{key_file}"\n')
    _audit_rows(config_file, 3)
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "audit log OK: 4 rows, hash chain intact, stored head matches, keyed (HMAC) " in out
    assert "from row 1" in out

    config_file.write_text(plain)
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "audit log BROKEN: rows from 1 on are keyed (HMAC-SHA256) and no key is configured: "
        "set [audit] hmac_key_file to the key they were written with to check their content"
    ]
    key_file.write_text("another key, long enough to be accepted as one")
    config_file.write_text(plain + f'\n[audit]\nhmac_key_file = "{key_file}"\n')
    assert cli.main(["audit", "verify", "--config", str(config_file)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "audit log BROKEN: [audit] hmac_key_file is not the key the chain was written with: "
        "rows from 1 on cannot be checked with it"
    ]
    assert AUDIT_KEY not in captured.out + captured.err


async def test_start_keys_the_chain_and_refuses_a_keyed_chain_without_its_key(
    config_file: Path, caplog
) -> None:
    """At start: a key keys the chain (an audit row says so); a keyed chain without its key,
    or with another, stops the start with one line and appends nothing."""
    import logging
    import sqlite3

    from bot.app import Application

    caplog.set_level(logging.INFO)
    key_file = config_file.parent / "audit.key"
    key_file.write_text(AUDIT_KEY)
    plain = config_file.read_text()
    config_file.write_text(plain + f'\n[audit]\nhmac_key_file = "{key_file}"\n')
    loaded = load_settings(config_file, environ={})
    await cli.prepare_schema(loaded)
    app = Application(loaded.settings)
    await app._prepare_audit_chain()
    await app.database.close()
    path = str(config_file.parent / "bot.db")
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT actor_name, action FROM audit_log").fetchall()
    conn.close()
    assert rows == [("startup", "audit:chain_keyed")]
    assert "audit chain keyed with [audit] hmac_key_file" in caplog.text
    assert Path(path + ".audit-head").exists()

    for config, message in (
        (plain, "the audit log is keyed (HMAC) from row 1: set [audit] hmac_key_file"),
        (
            plain + '\n[audit]\nhmac_key = "another key, long enough to be accepted"\n',
            "[audit] hmac_key_file is not the key the audit log was written with",
        ),
    ):
        config_file.write_text(config)
        app = Application(load_settings(config_file, environ={}).settings)
        with pytest.raises(StartupError) as info:
            await app._prepare_audit_chain()
        assert str(info.value).startswith(message)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1
    conn.close()
    assert AUDIT_KEY not in caplog.text
