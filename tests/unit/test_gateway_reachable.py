"""`hh_opsbot_discord_connected` says whether Discord is reachable now, not only whether the
session was ever ready: discord.py keeps `is_ready()` true while it reconnects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from bot.app.gateway import websocket_open


def client(ws: object) -> Any:
    return cast(Any, SimpleNamespace(ws=ws))


def test_no_connection_yet_is_unreachable() -> None:
    assert websocket_open(client(None)) is False


def test_an_open_connection_is_reachable() -> None:
    assert websocket_open(client(SimpleNamespace(open=True))) is True


def test_a_closed_connection_while_reconnecting_is_unreachable() -> None:
    assert websocket_open(client(SimpleNamespace(open=False))) is False
