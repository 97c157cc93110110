"""The audit chain's anchors: the stored head (row count, last row), the head file outside the
database and the optional HMAC key. Truncation and a recomputed rewrite must not verify."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.domain.audit import GENESIS_HASH, AuditRecord, ChainVerdict, HeadMark, chain_hash
from bot.services.audit import AuditKeyError, AuditService, verify_chain
from bot.storage import migrations
from bot.storage.audit_head import (
    ChainOptions,
    HeadRecorder,
    read_head_file,
    reading,
    write_head_file,
)
from bot.storage.database import Database

KEY = b"k" * 40
OTHER_KEY = b"o" * 40


def record(i: int) -> AuditRecord:
    return AuditRecord(
        at=datetime(2026, 11, 28, 3, 0, tzinfo=UTC) + timedelta(minutes=i),
        actor_id=100 + i,
        actor_name=f"m{i}",
        action="whoami",
        outcome="ok",
        details={"i": i},
    )


async def append(db: Database, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        async with db.uow() as uow:
            await uow.audit.add(record(i))
            await uow.commit()


async def execute(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def verify(db: Database, **kwargs: Any) -> ChainVerdict:
    async with db.uow() as uow:
        return await verify_chain(uow, **kwargs)


async def recompute(db: Database, key: bytes | None = None) -> None:
    """What someone with write access to the database does to cover an edit: every hash
    recomputed in id order, the stored head updated to match."""
    async with db.uow() as uow:
        rows = await uow.audit.chain(0, 100_000)
    prev = GENESIS_HASH
    for rec, _, _ in rows:
        digest = chain_hash(prev, rec, key)
        await execute(
            db, "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :id",
            p=prev, h=digest, id=rec.id,
        )  # fmt: skip
        prev = digest
    last = rows[-1][0].id if rows else 0
    await execute(
        db,
        "UPDATE audit_chain_head SET last_hash = :h, last_id = :i, row_count = :n, "
        "keyed_from = NULL, key_check = NULL",
        h=prev, i=last, n=len(rows),
    )  # fmt: skip


@pytest.fixture
def head_path(tmp_path: Path) -> Path:
    return tmp_path / "anchor" / "audit.head"


@pytest.fixture
async def anchored(database_url: str, head_path: Path) -> AsyncIterator[Database]:
    """A migrated database whose appends write the head file."""
    db = Database.from_url(database_url, audit=ChainOptions(head_file=head_path))
    await migrations.upgrade(db.engine)
    yield db
    await db.close()


# -- truncation ---------------------------------------------------------------------------------


async def test_deleting_the_newest_rows_does_not_verify(database: Database) -> None:
    await append(database, 5)
    await execute(database, "DELETE FROM audit_log WHERE id > 3")
    verdict = await verify(database)
    assert not verdict.ok
    assert "the log has 3 rows but its stored head counts 5: rows were deleted" in (
        verdict.problems
    )
    assert any("the newest rows were deleted" in p for p in verdict.problems)


async def test_deleting_every_row_does_not_verify(database: Database) -> None:
    await append(database, 3)
    await execute(database, "DELETE FROM audit_log")
    verdict = await verify(database)
    assert not verdict.ok and verdict.rows == 0
    assert any("rows were deleted" in p for p in verdict.problems)


async def test_a_truncation_with_the_stored_head_fixed_up_is_caught_by_the_head_file(
    anchored: Database, head_path: Path
) -> None:
    await append(anchored, 5)
    assert read_head_file(head_path) == (await _stored(anchored))
    await execute(anchored, "DELETE FROM audit_log WHERE id > 3")
    await recompute(anchored)  # the stored head now agrees with the 3 rows left
    assert (await verify(anchored)).ok, "without an anchor outside the database it cannot tell"
    verdict = await verify(anchored, head_file=reading(head_path))
    assert not verdict.ok
    (problem,) = verdict.problems
    assert problem == (
        f"the head file {head_path} names row 5 but the log ends at row 3: the newest rows "
        "were deleted"
    )


async def test_truncated_then_appended_again_is_caught_by_the_head_file(
    anchored: Database, head_path: Path
) -> None:
    """SQLite reuses the ids of deleted rows: the head file's row exists again, not its hash."""
    await append(anchored, 4)
    await execute(anchored, "DELETE FROM audit_log WHERE id > 2")
    await recompute(anchored)
    plain = Database.from_url(str(anchored.engine.url.render_as_string(hide_password=False)))
    try:
        await append(plain, 3, start=10)
    finally:
        await plain.close()
    verdict = await verify(anchored, head_file=reading(head_path))
    assert not verdict.ok
    assert any("rewritten" in p or "deleted" in p for p in verdict.problems), verdict.problems


# -- a rewrite with the chain recomputed -------------------------------------------------------


async def test_a_recomputed_rewrite_is_caught_by_the_head_file(
    anchored: Database, head_path: Path
) -> None:
    await append(anchored, 4)
    await execute(anchored, "UPDATE audit_log SET actor_name = 'mallory' WHERE id = 2")
    await recompute(anchored)
    assert (await verify(anchored)).ok
    verdict = await verify(anchored, head_file=reading(head_path))
    assert not verdict.ok
    (problem,) = verdict.problems
    assert problem.startswith(f"the head file {head_path} names row 4 with hash ")
    assert problem.endswith("the log was rewritten")


async def test_a_recomputed_rewrite_of_a_keyed_chain_does_not_verify(database_url: str) -> None:
    db = Database.from_url(database_url, audit=ChainOptions(key=KEY))
    await migrations.upgrade(db.engine)
    try:
        await append(db, 3)
        assert (await verify(db, key=KEY)).ok
        await execute(db, "UPDATE audit_log SET outcome = 'denied' WHERE id = 2")
        await recompute(db)  # without the key: plain SHA-256, head marked unkeyed
        verdict = await verify(db, key=KEY)
        assert not verdict.ok
        assert verdict.problems == (
            "[audit] hmac_key_file is set but no row is keyed: the bot keys the chain when it "
            "starts with the key, so it has not started since, or the keyed rows were removed",
        )
        # Recomputed with a guessed key and the head's key columns put back: still caught.
        await recompute(db, OTHER_KEY)
        await execute(db, "UPDATE audit_chain_head SET keyed_from = 1, key_check = :c",
                      c=_fingerprint(KEY))  # fmt: skip
        verdict = await verify(db, key=KEY)
        assert not verdict.ok and verdict.first_broken_id == 1
        assert "written with another key" in (verdict.reason or "")
    finally:
        await db.close()


def _fingerprint(key: bytes) -> str:
    from bot.domain.audit import key_fingerprint

    return key_fingerprint(key)


# -- the key --------------------------------------------------------------------------------------


async def test_a_keyed_chain_verifies_with_its_key_and_says_why_not_without(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plain = Database.from_url(database_url)
    await migrations.upgrade(plain.engine)
    await append(plain, 2)  # written before the key was configured
    await plain.close()
    db = Database.from_url(database_url, audit=ChainOptions(key=KEY))
    try:
        async with db.uow() as uow:
            assert await AuditService(_Clock()).key_chain(uow) is True
        await append(db, 2, start=2)
        async with db.uow() as uow:
            assert await AuditService(_Clock()).key_chain(uow) is False, "keyed once"
        good = await verify(db, key=KEY)
        assert good.ok and good.rows == 5 and good.keyed_from == 3
        missing = await verify(db)
        assert not missing.ok and missing.first_broken_id is None
        assert missing.problems == (
            "rows from 3 on are keyed (HMAC-SHA256) and no key is configured: set [audit] "
            "hmac_key_file to the key they were written with to check their content",
        )
        wrong = await verify(db, key=OTHER_KEY)
        assert not wrong.ok and wrong.first_broken_id is None
        assert wrong.problems == (
            "[audit] hmac_key_file is not the key the chain was written with: rows from 3 on "
            "cannot be checked with it",
        )
        # An edit of a keyed row is still named without the key when it breaks a link...
        await execute(db, "DELETE FROM audit_log WHERE id = 4")
        assert (await verify(db)).first_broken_id == 5
    finally:
        await db.close()
    assert KEY.decode() not in caplog.text
    assert KEY.decode() not in repr(ChainOptions(key=KEY))


async def test_the_bot_refuses_a_keyed_chain_without_its_key(database_url: str) -> None:
    db = Database.from_url(database_url, audit=ChainOptions(key=KEY))
    await migrations.upgrade(db.engine)
    await append(db, 1)
    await db.close()
    for options, message in (
        (ChainOptions(), "the audit log is keyed (HMAC) from row 1: set [audit] hmac_key_file"),
        (ChainOptions(key=OTHER_KEY), "[audit] hmac_key_file is not the key the audit log"),
    ):
        other = Database.from_url(database_url, audit=options)
        try:
            async with other.uow() as uow:
                with pytest.raises(AuditKeyError) as info:
                    await AuditService(_Clock()).key_chain(uow)
            assert info.value.user_message.startswith(message)
            assert KEY.decode() not in info.value.user_message
            async with other.uow() as uow:
                from bot.storage.repositories import AuditChainError

                with pytest.raises(AuditChainError):
                    await uow.audit.add(record(9))
        finally:
            await other.close()


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC)


# -- existing databases, concurrent appends -----------------------------------------------------


async def test_a_chain_written_before_the_stored_count_still_verifies(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        await migrations.upgrade(db.engine, "4e1f0c2b7a93")  # the revision before the count
        prev = GENESIS_HASH
        for i in range(4):
            rec = record(i)
            digest = chain_hash(prev, rec)
            await execute(
                db,
                "INSERT INTO audit_log (at, actor_id, actor_name, action, target, outcome, "
                "details, prev_hash, hash) VALUES (:at, :a, :n, 'whoami', NULL, 'ok', :d, :p, :h)",
                at=rec.at, a=rec.actor_id, n=rec.actor_name, d=f'{{"i": {i}}}', p=prev, h=digest,
            )  # fmt: skip
            prev = digest
        await execute(db, "UPDATE audit_chain_head SET last_hash = :h", h=prev)
        await migrations.upgrade(db.engine)
        verdict = await verify(db)
        assert verdict.ok and verdict.rows == 4 and verdict.head.row_id == 4
        await append(db, 1, start=4)
        assert (await verify(db)).ok
    finally:
        await db.close()


async def test_concurrent_appends_from_two_processes_keep_the_chain_linear(
    database: Database, database_url: str
) -> None:
    """Two engines (as two processes would have) appending at once; the head row is locked."""
    other = Database.from_url(database_url)

    async def burst(db: Database, base: int) -> None:
        for i in range(15):
            async with db.uow() as uow:
                await uow.audit.add(record(base + i))
                await asyncio.sleep(0)  # let the other writer in between statements
                await uow.audit.add(record(base + 100 + i))
                await uow.commit()

    try:
        await asyncio.gather(burst(database, 0), burst(other, 1000), burst(database, 2000))
    finally:
        await other.close()
    verdict = await verify(database)
    assert verdict.ok, verdict
    assert verdict.rows == 90


# -- the head file and the log line ---------------------------------------------------------------


async def _stored(db: Database) -> HeadMark:
    async with db.uow() as uow:
        head = await uow.audit.head()
    assert head is not None
    return head.mark


async def test_each_commit_writes_the_head_file_0600_and_logs_the_head(
    anchored: Database, head_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.audit")
    async with anchored.uow() as uow:
        await uow.audit.add(record(0))
        await uow.audit.add(record(1))
        await uow.commit()
    head = await _stored(anchored)
    assert head.row_id == 2 and head.rows == 2
    assert read_head_file(head_path) == head
    assert stat.S_IMODE(head_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in head_path.parent.iterdir()) == ["audit.head"], "no temp left"
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.audit"]
    assert lines == [f"audit head: row 2 hash {head.hash} (2 rows)"]
    # A rolled-back append changes neither the file nor the log.
    async with anchored.uow() as uow:
        await uow.audit.add(record(2))
        await uow.rollback()
    assert read_head_file(head_path) == head
    assert len([r for r in caplog.records if r.name == "bot.audit"]) == 1


async def test_the_recorder_never_overwrites_a_head_it_did_not_write(
    anchored: Database, head_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await append(anchored, 2)
    forged = HeadMark(7, "a" * 64, 7)
    write_head_file(head_path, forged)
    await append(anchored, 1, start=2)
    assert read_head_file(head_path) == forged, "left as evidence"
    assert "names row 7, which this process neither wrote nor checked at start" in caplog.text
    head_path.unlink()
    await append(anchored, 1, start=3)
    assert not head_path.exists()


async def test_at_start_a_lagging_file_moves_forward_and_a_foreign_one_stays(
    database_url: str, head_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Database.from_url(database_url)
    await migrations.upgrade(plain.engine)
    await append(plain, 3)
    await plain.close()

    async def start() -> Database:
        db = Database.from_url(database_url, audit=ChainOptions(head_file=head_path))
        await db.reconcile_audit_head()
        return db

    db = await start()  # no file yet: created at the stored head, with a warning
    assert read_head_file(head_path) == await _stored(db)
    assert "did not exist: created at row 3" in caplog.text
    await db.close()
    write_head_file(head_path, HeadMark(2, (await _mark_at(database_url, 2)).hash, 2))
    db = await start()  # behind (a crash between commit and write): moved forward
    assert read_head_file(head_path) == await _stored(db)
    await db.close()
    caplog.clear()
    foreign = HeadMark(3, "b" * 64, 3)
    write_head_file(head_path, foreign)
    db = await start()
    assert read_head_file(head_path) == foreign
    assert "the audit log was truncated or rewritten" in caplog.text
    await append(db, 1, start=5)
    assert read_head_file(head_path) == foreign, "never moved once it did not match"
    await db.close()


async def _mark_at(url: str, row_id: int) -> HeadMark:
    db = Database.from_url(url)
    try:
        async with db.uow() as uow:
            mark = await uow.audit.mark_at(row_id)
    finally:
        await db.close()
    assert mark is not None
    return mark


async def test_a_lagging_head_file_verifies_with_a_note(
    anchored: Database, head_path: Path
) -> None:
    await append(anchored, 2)
    saved = read_head_file(head_path)
    await append(anchored, 2, start=2)
    assert saved is not None
    write_head_file(head_path, saved)
    verdict = await verify(anchored, head_file=reading(head_path))
    assert verdict.ok
    assert verdict.notes == (
        f"the head file {head_path} is 2 rows behind the log (a crash between a commit and its "
        "write, or another instance appending); the bot moves it forward at start",
    )


async def test_a_missing_or_unreadable_head_file_does_not_verify(
    anchored: Database, head_path: Path
) -> None:
    await append(anchored, 1)
    head_path.write_text("not json")
    verdict = await verify(anchored, head_file=reading(head_path))
    assert verdict.problems == (
        f"the head file {head_path} is not an audit head file (unexpected content)",
    )
    head_path.unlink()
    verdict = await verify(anchored, head_file=reading(head_path))
    assert not verdict.ok and "does not exist" in verdict.problems[0]


async def test_two_transactions_committing_out_of_order_leave_the_newest_head(
    tmp_path: Path,
) -> None:
    recorder = HeadRecorder(tmp_path / "h")
    a = HeadMark(1, "1" * 64, 1)
    b = HeadMark(2, "2" * 64, 2)
    from bot.domain.audit import EMPTY_HEAD

    await recorder.committed(EMPTY_HEAD, a)
    await recorder.committed(a, b)
    await recorder.committed(EMPTY_HEAD, a)  # a late report of an older head changes nothing
    assert read_head_file(tmp_path / "h") == b
