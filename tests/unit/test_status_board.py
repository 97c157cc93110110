"""The public status rules behind the #miners board and `/status` (issue 16 §2, §6)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.domain.public_status import (
    PublicStatus,
    board_fingerprint,
    node_answer,
    reason_line,
    status_from_data,
    status_to_data,
)
from cogs.status.render import board, node_line, status_embed

AT = datetime(2031, 6, 15, 3, 0, tzinfo=UTC)


def status(pool: str = "up", online: int = 120, total: int = 120, notice: str | None = None):
    return PublicStatus(pool, online, total, 2.5e15, notice, AT)


def test_reason_line_when_the_figures_and_the_notice_could_disagree() -> None:
    assert reason_line(status("degraded", 117)) == "3 nodes of 120 unreachable"
    assert reason_line(status("up", 119)) == "1 node of 120 unreachable; mining goes on"
    assert reason_line(status("up", notice="Payouts delayed")) is not None
    assert reason_line(status("up")) is None
    assert reason_line(status("down", 0)) == "120 nodes of 120 unreachable"


def test_the_board_and_status_say_the_same_words() -> None:
    s = status("degraded", 117, notice="Mining unaffected; next update 04:00 UTC")
    assert status_from_data(status_to_data(s)) == s
    rendered = board(status_to_data(s)).embeds[0].to_dict()
    assert rendered == status_embed(s).to_dict()
    assert rendered["title"] == "Hyper Hash Network status: 🟡 Pool degraded"
    assert rendered["description"] == "3 nodes of 120 unreachable", "the state is said once"


def test_the_fingerprint_ignores_what_moves_every_poll() -> None:
    a = status()
    b = PublicStatus("up", 120, 120, 9.9e15, None, AT.replace(hour=4))
    assert board_fingerprint(a) == board_fingerprint(b)
    assert board_fingerprint(a) != board_fingerprint(status(online=119))


def test_a_long_notice_fits_discord_limits() -> None:
    embed = status_embed(status(notice="x" * 5000))
    assert len(embed) <= 6000
    assert all(len(f.value or "") <= 1024 for f in embed.fields)


def test_node_answers_are_neutral_for_unknown_names() -> None:
    unknown = node_line(node_answer(None, "node-x", {"node-7"}))
    assert unknown.startswith("⚪ No public node named `node-x`")
    assert node_line(node_answer(None, "Node-7 ", {"node-7"})).startswith("⚪ Node `node-7`")
    assert len(node_line(node_answer(None, "n" * 500, set()))) < 200
