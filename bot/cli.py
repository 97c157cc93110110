"""`hh-opsbot run | migrate | check-config | receive | audit verify`. Nothing connects at import
time."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from bot import __version__
from bot.config import ConfigError, LoadedConfig, load_settings
from bot.logs import configure_logging

log = logging.getLogger("bot")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hh-opsbot", description="The Hyper Hash Network's chat-ops Discord bot."
    )
    parser.add_argument("--version", action="version", version=f"hh-opsbot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    help_config = "config file (default: $HH_CONFIG, then ./config.toml)"
    for name, help_text in (
        ("run", "start the bot, its web server and its scheduler"),
        ("migrate", "upgrade the database schema to the latest revision"),
        ("check-config", "validate the configuration and exit"),
        (
            "receive",
            "retired: the bot itself answers Alertmanager's webhook (says so and exits 2)",
        ),
    ):
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", metavar="PATH", help=help_config)
    audit = sub.add_parser("audit", help="audit log tools", description="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_sub.add_parser(
        "verify",
        help="check the audit log's hash chain and name the first broken row",
        description="check the audit log's hash chain and name the first broken row",
    )
    verify.add_argument("--config", metavar="PATH", help=help_config)
    return parser


PRIVATE_UMASK = 0o077
"""Whatever the bot creates (database, -wal/-shm, spool, audit head file, anything written
later) is readable by its own user only; the storage layer also creates its files 0600."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = os.umask(PRIVATE_UMASK)
    try:
        return _command(args)
    finally:
        os.umask(previous)  # for callers in the same process (tests)


def _command(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        source = loaded.path if loaded.file_found else "environment only"
        print(f"configuration OK ({source})")
        return EXIT_OK
    settings = loaded.settings
    configure_logging(settings.logging.level, settings.logging.format, settings.secret_values())
    if args.command == "migrate":
        return asyncio.run(_migrate(loaded))
    if args.command == "audit":
        return asyncio.run(_audit_verify(loaded))
    if args.command == "receive":
        return _receive(loaded)
    return _run(loaded)


def _load(path: str | None) -> LoadedConfig | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hh-opsbot: {problem}", file=sys.stderr)
        return None


async def _migrate(loaded: LoadedConfig) -> int:
    from bot.storage import migrations
    from bot.storage.database import make_engine

    engine = make_engine(loaded.settings.database.url.get_secret_value())
    try:
        before = await migrations.schema_state(engine)
        if before.up_to_date:
            log.info("database schema already at %s", before.head)
        else:
            await migrations.upgrade(engine)
            log.info("database schema upgraded %s -> %s", before.current or "empty", before.head)
    except Exception as exc:
        log.error("migration failed: %s", _safe(exc))
        return EXIT_FAILURE
    finally:
        await engine.dispose()
    return EXIT_OK


async def _audit_verify(loaded: LoadedConfig) -> int:
    from bot.services.audit import verify_chain
    from bot.storage.audit_head import chain_options, reading
    from bot.storage.database import Database

    settings = loaded.settings
    key = settings.audit.hmac_key
    url = settings.database.url.get_secret_value()
    options = chain_options(url, settings.audit.head_file, key.get_secret_value() if key else None)
    head_file = reading(options.head_file) if options.head_file else None
    database = Database.from_url(url, audit=options)
    try:
        async with database.uow() as uow:
            verdict = await verify_chain(uow, key=options.key, head_file=head_file)
    except Exception as exc:
        print(f"hh-opsbot: cannot read the audit log: {_safe(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await database.close()
    for note in verdict.notes:
        print(f"note: {note}")
    if verdict.ok:
        anchors = ["stored head matches"]
        if verdict.keyed_from is not None:
            anchors.append(f"keyed (HMAC) from row {verdict.keyed_from}")
        if head_file is not None:
            anchors.append(f"head file {head_file.path} matches")
        print(f"audit log OK: {verdict.rows} rows, hash chain intact, {', '.join(anchors)}")
        return EXIT_OK
    if verdict.first_broken_id is not None:
        print(
            f"audit log BROKEN at row {verdict.first_broken_id}: {verdict.reason} "
            f"({verdict.rows - 1} rows before it verified)",
            file=sys.stderr,
        )
    for problem in verdict.problems:
        print(f"audit log BROKEN: {problem}", file=sys.stderr)
    return EXIT_FAILURE


async def prepare_schema(loaded: LoadedConfig) -> None:
    """SQLite migrates itself on start; PostgreSQL is migrated deliberately (docs/deployment.md)."""
    from bot.app import StartupError
    from bot.storage import migrations
    from bot.storage.database import make_engine

    database = loaded.settings.database
    engine = make_engine(database.url.get_secret_value())
    try:
        try:
            state = await migrations.schema_state(engine)
        except Exception as exc:
            raise StartupError(f"cannot reach the database: {_safe(exc)}") from None
        if state.up_to_date:
            return
        if not database.migrate_on_start:
            raise StartupError(
                f"database schema is at {state.current or 'nothing'}, this version needs "
                f"{state.head}: run `hh-opsbot migrate` first (or set database.auto_migrate = true)"
            )
        await migrations.upgrade(engine)
        log.info("database schema upgraded %s -> %s", state.current or "empty", state.head)
    finally:
        await engine.dispose()


def _run(loaded: LoadedConfig) -> int:
    from bot.app import Application, StartupError

    async def go() -> None:
        await prepare_schema(loaded)
        await Application(loaded.settings).run()

    log.info("hh-opsbot %s starting", __version__)
    am = loaded.settings.alertmanager
    if am is not None and am.retired_keys():
        log.warning(
            "%s ignored: the webhook receiver process was retired; Alertmanager posts to the "
            "bot's own /webhooks/alertmanager ([web] port)",
            ", ".join(am.retired_keys()),
        )
    try:
        asyncio.run(go())
    except StartupError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _receive(loaded: LoadedConfig) -> int:
    """The webhook receiver process was retired (one process, one store): say where
    Alertmanager posts now, and fail, so a supervisor that still starts it is noticed."""
    web = loaded.settings.web
    print(
        "hh-opsbot: the webhook receiver process was retired; `hh-opsbot run` answers "
        f"Alertmanager itself at http://{web.host}:{web.port}/webhooks/alertmanager "
        "([web] port): point Alertmanager there and stop this service",
        file=sys.stderr,
    )
    return EXIT_CONFIG


def _safe(exc: BaseException) -> str:
    """Exception text can carry a connection URL with its password; the log filter redacts it."""
    return f"{type(exc).__name__}: {exc}"
