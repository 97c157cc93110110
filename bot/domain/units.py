"""How numbers read in messages: durations, bitcoin amounts, hash rates."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def format_btc(sat: float) -> str:
    return f"{sat / 100_000_000:.3f} BTC"


def format_hashrate(hashes_per_second: float) -> str:
    value = float(hashes_per_second)
    for unit in ("H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"):
        if abs(value) < 1000 or unit == "EH/s":
            return f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 alert`, `2 alerts`, `0 alerts`; `many` for irregular words (`1 child`, `2 children`)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
