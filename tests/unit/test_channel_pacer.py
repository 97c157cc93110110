"""The #alerts pacer: Discord's window, and the spacing that keeps a burst from stalling the bot."""

from __future__ import annotations

import time

import pytest

from cogs.alerts.delivery import ChannelPacer

CHANNEL = 42


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_sends_are_spaced_and_the_window_is_kept(clock: list[float]) -> None:
    pacer = ChannelPacer(limit=5, period=5.0, margin=0.05, min_gap=0.15)
    assert pacer.wait(CHANNEL) == 0.0, "nothing sent yet"
    for _ in range(5):
        assert pacer.wait(CHANNEL) == 0.0
        pacer.record(CHANNEL)
        clock[0] += 0.15
    # Five sends in 0.75 s: the window is full until the first leaves it.
    assert pacer.wait(CHANNEL) == pytest.approx(5.0 + 0.05 - 0.75)
    clock[0] += 5.0
    assert pacer.wait(CHANNEL) == 0.0


def test_a_send_right_after_another_waits_the_gap(clock: list[float]) -> None:
    pacer = ChannelPacer(min_gap=0.15)
    pacer.record(CHANNEL)
    assert pacer.wait(CHANNEL) == pytest.approx(0.15)
    clock[0] += 0.1
    assert pacer.wait(CHANNEL) == pytest.approx(0.05)
    assert pacer.wait(CHANNEL + 1) == 0.0, "per channel"


def test_capacity_counts_the_window(clock: list[float]) -> None:
    pacer = ChannelPacer(limit=5, period=5.0)
    assert pacer.capacity(CHANNEL, 10.0) == 10
    pacer.record(CHANNEL)
    pacer.record(CHANNEL)
    assert pacer.capacity(CHANNEL, 10.0) == 8
