"""A real `hh-opsbot run` process, the real discord.py client, the loopback Discord emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.domain.clock import SystemClock
from bot.storage import migrations
from bot.storage.database import Database
from tests.harness.seeding import seed_grants
from tests.harness.world import CORE_USER, GUILD_ID, MINER_USER, OWNER_USER, TOKEN, World

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, config: Path) -> None:
        self.proc = proc
        self.config = tomllib.loads(config.read_text())
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config['web']['port']}"

    async def wait_for_line(self, fragment: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not any(fragment in line for line in self.lines):
                if self.proc.returncode is not None:
                    raise AssertionError(f"bot exited early:\n{self.output}")
                await asyncio.sleep(0.05)

    async def healthy(self, timeout: float) -> None:
        """discord.py is 'ready' a moment after the guild arrives; /healthz says when."""
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"{self.base_url}/healthz") as response:
                    if response.status == 200:
                        return
                await asyncio.sleep(0.1)

    async def until_up(self, waiting: Coroutine[Any, Any, object]) -> None:
        """Wait for the emulator to see the bot, failing fast (with its output) if it exits."""
        wait = asyncio.ensure_future(waiting)
        exited = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({wait, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not wait.done() or wait.exception() is not None:
            wait.cancel()
            await asyncio.sleep(0.1)  # let the reader catch the last lines
            raise AssertionError(f"the bot did not come up:\n{self.output}")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code


async def start_bot(config: Path, *, token: str = TOKEN) -> BotProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
    env["HH_DISCORD__TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=config.parent,
        env=env,
    )
    return BotProcess(proc, config)


async def migrate_and_seed(world: World, config: Path) -> None:
    """The operators' grants in the database the process will open (it reads grants, not roles)."""
    database = Database.from_url(tomllib.loads(config.read_text())["database"]["url"])
    try:
        await migrations.upgrade(database.engine)
        await seed_grants(world, database, SystemClock())
    finally:
        await database.close()


@pytest.fixture
async def bot(world: World, config_path: Path) -> AsyncIterator[BotProcess]:
    await migrate_and_seed(world, config_path)
    process = await start_bot(config_path)
    try:
        await process.until_up(world.emulator.wait_for_commands(GUILD_ID, timeout=60))
        await process.until_up(world.emulator.wait_ready(timeout=30))
        await process.until_up(process.healthy(timeout=30))
        yield process
    finally:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


def field_map(message: dict) -> dict[str, str]:
    (embed,) = message["embeds"]
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_whoami_ping_healthz_metrics_audit_and_clean_shutdown(
    world: World, bot: BotProcess, config_path: Path
) -> None:
    emu = world.emulator

    # Commands were synced to the guild, and the sync was logged.
    synced = {c["name"] for c in emu.commands[GUILD_ID]}
    assert synced == {
        "whoami",
        "ping",
        "access",
        "audit",
        "health",
        "node",
        "status",
        "incident",
        "upgrade",
    }
    await bot.wait_for_line("synced 9 slash commands to guild")

    # /whoami as a Core Ops member: ephemeral, roles and commands listed.
    core = await emu.invoke_command("whoami", CORE_USER)
    assert core.ephemeral and core.type == 4
    assert core.acknowledged_in < 3
    fields = field_map(core.sent)
    assert core.sent["embeds"][0]["description"].startswith("**Core Ops**"), "roles first"
    assert "`/ping`" in fields["Commands you may use"]
    assert core.allowed_mentions == {"parse": []}

    # /whoami as a miner: ephemeral, no ops roles, only /whoami.
    miner = await emu.invoke_command("whoami", MINER_USER)
    assert miner.ephemeral
    fields = field_map(miner.sent)
    assert miner.sent["embeds"][0]["description"].startswith("No ops role: miner access")
    assert fields["Commands you may use"] == "`/whoami` · `/status`"

    # /ping: denied for the miner, naming the roles; allowed for Core Ops and the owner.
    denied = await emu.invoke_command("ping", MINER_USER)
    assert denied.ephemeral
    assert (
        "`/ping` needs the Core Ops or Node Ops or Treasury Ops or Observer role."
        in (denied.sent["content"])
    )
    allowed = await emu.invoke_command("ping", CORE_USER)
    assert allowed.ephemeral and allowed.sent["embeds"][0]["title"] == "hh-opsbot is up"
    owner = await emu.invoke_command("ping", OWNER_USER)
    assert owner.sent["embeds"][0]["title"] == "hh-opsbot is up"

    # /healthz and /metrics from the same process.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bot.base_url}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        async with http.get(f"{bot.base_url}/metrics") as response:
            metrics = await response.text()
    assert health["status"] == "ok" and health["discord"] == "ready"
    assert 'hh_opsbot_commands_total{command="whoami",outcome="ok"} 2.0' in metrics
    assert 'hh_opsbot_commands_total{command="ping",outcome="denied"} 1.0' in metrics
    assert 'hh_opsbot_commands_total{command="ping",outcome="ok"} 2.0' in metrics
    assert "hh_opsbot_discord_gateway_latency_seconds" in metrics
    assert "hh_opsbot_database_up 1.0" in metrics

    # SIGTERM: everything stops, exit 0.
    assert await bot.stop(signal.SIGTERM) == 0
    assert "signal received: shutting down" in bot.output
    assert "stopped" in bot.lines[-1], bot.output
    assert TOKEN not in bot.output
    assert "Traceback" not in bot.output, bot.output

    # Every command outcome is in the audit table.
    db = sqlite3.connect(config_path.parent / "hh-opsbot.db")
    rows = db.execute(
        "SELECT actor_id, action, outcome FROM audit_log WHERE actor_id IS NOT NULL ORDER BY id"
    ).fetchall()
    db.close()
    # Successful read-only commands are recorded just after their reply, so compare unordered.
    assert sorted(rows) == sorted(  # noqa: PLR
        [
            (CORE_USER, "whoami", "ok"),
            (MINER_USER, "whoami", "ok"),
            (MINER_USER, "ping", "denied"),
            (CORE_USER, "ping", "ok"),
            (OWNER_USER, "ping", "ok"),
        ]
    ), bot.output


async def test_sigint_also_stops_cleanly(world: World, bot: BotProcess) -> None:
    assert await bot.stop(signal.SIGINT) == 0


async def test_refused_token_is_one_clear_line(world: World, config_path: Path) -> None:
    process = await start_bot(config_path, token="not-the-right-token")
    code = await asyncio.wait_for(process.proc.wait(), 60)
    await process._reader
    assert code == 1
    assert "Discord refused the bot token: check HH_DISCORD__TOKEN" in process.output
    assert "Traceback" not in process.output


AUDIT_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0" * 2


def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
    env["HH_DISCORD__TOKEN"] = TOKEN
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip


async def test_audit_chain_is_anchored_keyed_and_its_files_private(
    world: World, config_path: Path
) -> None:
    """The real process with `[audit] hmac_key_file`: it keys the chain at start, writes the head
    file (0600, like the database and its -wal/-shm) and logs the head after each append;
    `audit verify` agrees. Without its key the bot refuses to start; a truncation the database
    hides is named by verify."""
    emu = world.emulator
    key_file = config_path.parent / "audit.key"
    key_file.write_text(AUDIT_KEY + "\n")
    plain = config_path.read_text()
    config_path.write_text(plain + f'\n[audit]\nhmac_key_file = "{key_file}"\n')
    bot = await start_bot(config_path)
    try:
        await bot.until_up(emu.wait_for_commands(GUILD_ID, timeout=60))
        await bot.until_up(emu.wait_ready(timeout=30))
        await bot.until_up(bot.healthy(timeout=30))
        for user in (CORE_USER, MINER_USER, OWNER_USER):
            assert (await emu.invoke_command("whoami", user)).ephemeral
        assert (await emu.invoke_command("ping", MINER_USER)).ephemeral  # denied, audited
        await bot.wait_for_line("audit head: row ")
        db_files = sorted(config_path.parent.glob("hh-opsbot.db*"))
        assert {p.name for p in db_files} >= {
            "hh-opsbot.db", "hh-opsbot.db-wal", "hh-opsbot.db-shm", "hh-opsbot.db.audit-head",
        }  # fmt: skip
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in db_files} == {
            p.name: 0o600 for p in db_files
        }
    finally:
        code = await bot.stop(signal.SIGTERM)
    assert code == 0, bot.output
    assert "audit chain keyed with [audit] hmac_key_file" in bot.output
    assert AUDIT_KEY not in bot.output and "Traceback" not in bot.output

    db_path = config_path.parent / "hh-opsbot.db"
    head_file = Path(f"{db_path}.audit-head")
    db = sqlite3.connect(db_path)
    last_id, last_hash, rows = db.execute(
        "SELECT last_id, last_hash, row_count FROM audit_chain_head"
    ).fetchone()
    db.close()
    assert rows == last_id >= 5, "the keying row, four commands and what the start audited"
    assert json.loads(head_file.read_text())["hash"] == last_hash
    assert f"audit head: row {last_id} hash {last_hash} ({rows} rows)" in bot.output
    verified = audit_verify(config_path)
    assert verified.returncode == 0, verified.stderr
    assert f"audit log OK: {rows} rows" in verified.stdout
    assert "keyed (HMAC) from row 1" in verified.stdout and "matches" in verified.stdout

    # Without its key the bot does not start, and says why in one line.
    config_path.write_text(plain)
    refused = await start_bot(config_path)
    assert await asyncio.wait_for(refused.proc.wait(), 60) == 1
    await refused._reader
    assert (
        "the audit log is keyed (HMAC) from row 1: set [audit] hmac_key_file to the key it "
        "was written with" in refused.output
    )
    assert "Traceback" not in refused.output

    # The newest rows deleted and the stored head fixed up to match: verify still names it.
    config_path.write_text(plain + f'\n[audit]\nhmac_key_file = "{key_file}"\n')
    db = sqlite3.connect(db_path)
    db.execute("DELETE FROM audit_log WHERE id > 3")
    (hash3,) = db.execute("SELECT hash FROM audit_log WHERE id = 3").fetchone()
    db.execute("UPDATE audit_chain_head SET last_id = 3, row_count = 3, last_hash = ?", (hash3,))
    db.commit()
    db.close()
    tampered = audit_verify(config_path)
    assert tampered.returncode == 1
    assert tampered.stderr.splitlines() == [
        f"audit log BROKEN: the head file {head_file} names row {last_id} but the log ends at "
        "row 3: the newest rows were deleted"
    ]
