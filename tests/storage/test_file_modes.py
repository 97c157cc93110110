"""Every file the bot creates is private (0600): the SQLite database and its -wal/-shm, the
alert spool and its -wal/-shm, the audit head file. Checked by stat, under a permissive umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.alerts import WebhookPayload
from bot.domain.audit import AuditRecord
from bot.storage import migrations
from bot.storage.audit_head import ChainOptions
from bot.storage.database import Database
from bot.storage.spool import SpoolReader, SpoolWriter, spool_row

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """022, as most shells have it: files would be world-readable by default."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_sqlite_database_and_its_wal_and_shm_are_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "bot.db"
    db = Database.from_url(
        f"sqlite+aiosqlite:///{path}", audit=ChainOptions(head_file=tmp_path / "bot.db.head")
    )
    try:
        await migrations.upgrade(db.engine)
        async with db.uow() as uow:
            await uow.audit.add(
                AuditRecord(
                    at=datetime(2026, 12, 1, tzinfo=UTC),
                    actor_id=1,
                    actor_name="a",
                    action="x",
                    outcome="ok",
                )
            )
            await uow.commit()
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["bot.db", "bot.db-shm", "bot.db-wal", "bot.db.head"]
        assert {name: mode(tmp_path / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        await db.close()


def test_the_alert_spool_and_its_wal_and_shm_are_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "spool" / "spool.db"
    writer = SpoolWriter(path)
    reader = SpoolReader(path)
    try:
        writer.write([spool_row(_payload(), "{}")], datetime(2026, 12, 1, tzinfo=UTC))
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["spool.db", "spool.db-shm", "spool.db-wal"]
        assert {name: mode(path.parent / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        reader.close()
        writer.close()


def _payload() -> WebhookPayload:
    import json

    from tests.alerting import fixture_bytes

    return WebhookPayload.model_validate(
        json.loads(fixture_bytes("01_firing_single_nodeoffline.json"))
    )


def test_the_cli_creates_private_files_whatever_the_umask(tmp_path: Path) -> None:
    """`hh-opsbot migrate` under umask 022: the database it creates is 0600 all the same."""
    from tests.unit.test_config import GOOD

    db = tmp_path / "cli.db"
    config = tmp_path / "config.toml"
    config.write_text(GOOD + f'\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        umask=0o022,
    )
    assert result.returncode == 0, result.stderr
    assert mode(db) == 0o600


def test_an_existing_database_others_can_read_is_named_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.storage.database import prepare_sqlite_file

    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    prepare_sqlite_file(f"sqlite+aiosqlite:///{path}")
    assert mode(path) == 0o644, "an operator's choice is theirs; the warning says what to do"
    assert f"{path} is accessible to other users (mode 0644): `chmod 600` it" in caplog.text
    caplog.clear()
    prepare_sqlite_file("sqlite+aiosqlite:///:memory:")
    prepare_sqlite_file("postgresql+asyncpg://u@127.0.0.1/x")
    assert not caplog.text
