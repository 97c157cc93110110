"""What a database URL names: the file behind a SQLite URL (for its mode, its audit head file)."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def sqlite_file_path(url: str | URL) -> str | None:
    """The file behind a SQLite URL; None for anything else (in memory, a URI, PostgreSQL)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None
    return database
