"""How counts and amounts read (issue 16 §3: "1 alert / 2 alerts")."""

from __future__ import annotations

from bot.domain.units import format_duration, plural


def test_plural() -> None:
    assert plural(1, "alert") == "1 alert"
    assert plural(2, "alert") == "2 alerts"
    assert plural(0, "node") == "0 nodes"
    assert plural(2, "child", "children") == "2 children"


def test_durations_read_as_people_say_them() -> None:
    assert format_duration(420) == "7 min"
