"""Engine and session factory. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from bot.storage.audit_head import ChainOptions, HeadRecorder
from bot.storage.sqlite_file import checkpoint_file, create_private
from bot.storage.syncbridge import READ_ONLY, SyncSqlite, begin_immediate, sqlite_pragmas
from bot.storage.uow import BusyMemo, SqlUnitOfWork, TaskLock
from bot.storage.urls import sqlite_file_path


def prepare_sqlite_file(url: str | URL) -> None:
    """A SQLite database file is created 0600 (its -wal and -shm follow its mode)."""
    path = sqlite_file_path(url)
    if path is not None:
        create_private(path)


def create_privately(engine: Engine) -> None:
    """Create the engine's SQLite file 0600 when it first connects (not before: nothing
    touches the disk at construction)."""
    url = engine.url
    event.listen(engine, "do_connect", lambda *_: prepare_sqlite_file(url))


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        # No pre-ping: a file cannot drop the connection, and every checkout would pay a
        # round trip through aiosqlite's thread for nothing.
        if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
            # One shared connection, or every session would see its own empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            kwargs.update(connect_args={"timeout": 30})
        engine = create_async_engine(url, **kwargs)
        create_privately(engine.sync_engine)
        # aiosqlite waits in its own thread, so it may wait for the lock (the fallback path).
        event.listen(
            engine.sync_engine,
            "connect",
            sqlite_pragmas(busy_timeout_ms=5000, autocheckpoint=True),
        )
        event.listen(engine.sync_engine, "begin", begin_immediate)
        return engine
    kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=10)
    return create_async_engine(url, **kwargs)


class Database:
    """The process's one engine; hands out units of work."""

    def __init__(self, engine: AsyncEngine, *, audit: ChainOptions | None = None) -> None:
        self.engine = engine
        self.audit = audit or ChainOptions()
        self.audit_head = HeadRecorder(self.audit.head_file)
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)
        # SQLite has one writer: transactions that overlap make it sleep in its busy handler
        # (1 ms, 2 ms, ... 100 ms), which is what a burst of webhooks would see as latency.
        # Taking turns in the process instead keeps each transaction a few milliseconds.
        self.transaction_lock = TaskLock() if engine.dialect.name == "sqlite" else None
        # On a SQLite file, units of work run synchronously on the loop's thread (syncbridge).
        url = engine.url
        self._bridge = (
            SyncSqlite(url, echo=bool(engine.echo))
            if engine.dialect.name == "sqlite"
            and not isinstance(engine.pool, StaticPool)
            and url.database not in (None, "", ":memory:")
            else None
        )
        self._bridged = self._bridge.session_factory() if self._bridge is not None else None
        self._busy = BusyMemo()

    @classmethod
    def from_url(
        cls, url: str, *, echo: bool = False, audit: ChainOptions | None = None
    ) -> Database:
        return cls(make_engine(url, echo=echo), audit=audit)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self.sessions,
            self.transaction_lock,
            bridge=self._bridged,
            busy=self._busy,
            audit_key=self.audit.key,
            audit_head=self.audit_head,
        )

    def priority_uow(self) -> SqlUnitOfWork:
        """A unit of work that goes first when transactions queue (webhook ingest)."""
        return SqlUnitOfWork(
            self.sessions,
            self.transaction_lock,
            priority=True,
            bridge=self._bridged,
            busy=self._busy,
            audit_key=self.audit.key,
            audit_head=self.audit_head,
        )

    async def reconcile_audit_head(self) -> None:
        """At start, before anything appends: check the head file against the log, then move
        it to the stored head (bot.storage.audit_head)."""
        await self.audit_head.reconcile(self.uow)

    async def ping(self, limit: float = 2.0) -> float:
        """Round-trip time of `SELECT 1` in seconds; raises when the database does not answer."""
        start = time.perf_counter()
        async with asyncio.timeout(limit), self.engine.connect() as conn:
            # A read: on SQLite it must not take the write lock from the bot's transactions.
            conn = await conn.execution_options(**{READ_ONLY: True})
            await conn.execute(text("SELECT 1"))
        return time.perf_counter() - start

    async def checkpoint(self) -> int | None:
        """Copy SQLite's write-ahead log into the database file, off the loop's thread.

        The loop's own connections never checkpoint (an fsync on the loop would stall every
        webhook behind it), so this runs every few seconds. PASSIVE: it waits for nobody and
        blocks no writer. Returns the WAL pages left over (None when not a SQLite file)."""
        if self._bridge is None:
            return None
        path = self.engine.url.database
        assert path is not None
        return await asyncio.to_thread(checkpoint_file, path)

    async def close(self) -> None:
        if self._bridge is not None:
            self._bridge.close()
        await self.engine.dispose()
