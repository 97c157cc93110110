"""SQLite transactions run to completion on the event loop's own thread, for the hot paths.

On a SQLite file, a statement through aiosqlite is a round trip to the driver's thread, and a
round trip costs a few tenths of a millisecond even in an idle process and much more in a busy
one (measured here: BEGIN, one INSERT and COMMIT take 1 ms through aiosqlite, 0.05 ms through
sqlite3 directly). A transaction that holds SQLite's one write lock across a dozen round trips
makes every other writer wait that long. The webhook's write and the alert processor are short
transactions of local file I/O, so they run synchronously instead: `BridgedSession` gives the
repositories the `AsyncSession` methods they use, over a plain `Session` on the sqlite3 driver;
its awaits never suspend, so the transaction holds the write lock only while it computes.

They still take the process's transaction lock first, so no other transaction of this process
holds SQLite's write lock meanwhile. SQLite's busy timeout is 0 on these connections: waiting
there would block the event loop, so a lock held by another process (a CLI command) raises at
once, and `BridgedRunner` does the same work through aiosqlite, which may wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Engine, Table, bindparam, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.sqlite_file import create_private


class BridgedSession:
    """The subset of `AsyncSession` the repositories use, over a synchronous `Session`."""

    def __init__(self, session: Session) -> None:
        self.sync_session = session

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.execute(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.scalars(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.get(*args, **kwargs)

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Any) -> None:
        self.sync_session.add_all(instances)

    async def flush(self) -> None:
        self.sync_session.flush()

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self.sync_session.begin_nested():
            yield

    async def connection(self) -> Any:
        """Begin now (BEGIN IMMEDIATE), so a lock held elsewhere shows before any work."""
        return self.sync_session.connection()

    def get_bind(self) -> Engine:
        return cast(Engine, self.sync_session.get_bind())

    def in_transaction(self) -> bool:
        return self.sync_session.in_transaction()

    async def commit(self) -> None:
        self.sync_session.commit()

    async def rollback(self) -> None:
        self.sync_session.rollback()

    async def close(self) -> None:
        self.sync_session.close()


class EncodedJson(str):
    """JSON text for a JSON column, bound as it is (a webhook body, stored as it arrived)."""


class SqliteInsert:
    """A hot-path INSERT of many rows straight through sqlite3, in a bridged session's
    transaction: one prepared statement, one `execute` per row.

    SQLAlchemy's insert costs its cache key, compilation lookup and parameter processing on
    every call, about a millisecond of the loop's time for a batch of ten alert groups; this is
    a tenth of that. Values are bound by the columns' own SQLAlchemy types, as the ORM would
    bind them, so rows read back the same whichever way they were written. Column defaults are
    not applied: give every column the row needs.
    """

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        ignore_conflicts: bool = False,
        returning: Sequence[str] = (),
    ) -> None:
        self._columns = [table.c[name] for name in columns]
        statement: Any = sqlite.insert(table).values({name: bindparam(name) for name in columns})
        if ignore_conflicts:
            statement = statement.on_conflict_do_nothing()
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
        compiled = statement.compile(dialect=sqlite.dialect(paramstyle="qmark"))
        if list(compiled.positiontup or ()) != list(columns):
            raise ValueError(f"unexpected parameter order {compiled.positiontup}")
        self.sql = str(compiled)
        self._returning = bool(returning)
        self._processors: list[tuple[Callable[[Any], Any] | None, bool]] | None = None

    def run(self, session: BridgedSession, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Insert `rows` (values in `columns` order); the RETURNING row of each one inserted."""
        connection = session.sync_session.connection()
        if self._processors is None:
            dialect = connection.dialect
            # dialect_impl: what the compiler binds with (a TypeDecorator's own conversion,
            # then its SQLite type's), not the generic type's processor.
            self._processors = [
                (
                    column.type.dialect_impl(dialect).bind_processor(dialect),
                    isinstance(column.type, JSON),
                )
                for column in self._columns
            ]
        processors = self._processors
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        returned: list[tuple[Any, ...]] = []
        try:
            for row in rows:
                values = [
                    value
                    if process is None or (is_json and isinstance(value, EncodedJson))
                    else process(value)
                    for value, (process, is_json) in zip(row, processors, strict=True)
                ]
                cursor.execute(self.sql, values)
                if self._returning:
                    found = cursor.fetchone()
                    if found is not None:
                        returned.append(tuple(found))
        finally:
            cursor.close()
        return returned


READ_ONLY = "hh_read_only"
"""Execution option: a connection that only reads (the health ping) begins without the lock."""


def sqlite_pragmas(*, busy_timeout_ms: int, autocheckpoint: bool) -> Callable[[Any, Any], None]:
    """The `connect` listener for every SQLite connection of the bot: WAL (readers never block
    the writer), foreign keys on, and BEGIN issued by `begin_immediate`, not the driver."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        dbapi_connection.isolation_level = None

    return on_connect


def begin_immediate(connection: Any) -> None:
    """Take SQLite's write lock at BEGIN: a transaction that read and then writes cannot fail
    with a stale snapshot (SQLITE_BUSY_SNAPSHOT); it waits its turn, as on PostgreSQL.
    A connection marked `READ_ONLY` begins a plain read transaction."""
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class SyncSqlite:
    """Synchronous sessions on a SQLite file, handed out as `BridgedSession`s."""

    def __init__(self, url: URL, *, echo: bool = False) -> None:
        # Transactions take turns (the transaction lock): one connection is nearly always
        # enough; a few more cover a unit of work opened inside another.
        self.engine = create_engine(
            url.set(drivername="sqlite"), pool_size=1, max_overflow=4, echo=echo
        )
        # Busy timeout 0: waiting would block the loop. No checkpoints (an fsync) on the
        # loop's thread either: Database.checkpoint() does them in a thread.
        event.listen(
            self.engine, "connect", sqlite_pragmas(busy_timeout_ms=0, autocheckpoint=False)
        )
        event.listen(self.engine, "begin", begin_immediate)
        event.listen(self.engine, "do_connect", lambda *_: create_private(str(url.database)))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session_factory(self) -> Callable[[], AsyncSession]:
        def make() -> AsyncSession:
            return cast(AsyncSession, BridgedSession(self._sessions()))

        return make

    def close(self) -> None:
        self.engine.dispose()


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig or exc).lower()
