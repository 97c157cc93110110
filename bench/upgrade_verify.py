"""Benchmark: minisign verification in Python and the /upgrade status render at fleet size.

Signs a 50-component manifest with the real `minisign` (prehashed and legacy), verifies it N
times with `bot.domain.minisign.verify`, and renders the rollout embed of 5,000 nodes; writes its
section of docs/benchmarks.md. No target in the issue: these figures show the costs are small
next to the hourly poll and Discord's 3 s window.

    .venv/bin/python -m bench.upgrade_verify [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.domain.minisign import PublicKey
from bot.domain.releases import Release, ReleaseManifest, RolloutState
from bot.integrations.minisign import verify
from bot.services.upgrades import NodeRollout, Rollout
from cogs.upgrades.render import rollout_embed
from tests.fakes.minisign_tool import generate
from tests.fakes.releases import manifest, release_comment

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## upgrade verify"


def timed(fn: object, rounds: int) -> list[float]:
    assert callable(fn)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(rounds: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        keys = generate(Path(tmp))
        body = manifest("2.0.0")
        body["components"] = body["components"] * 25
        data = json.dumps(body, indent=2).encode()
        comment = release_comment(body)  # names version:2.0.0, as the bot requires
        prehashed = keys.sign(data, comment=comment)
        legacy = keys.sign(data, comment=comment, legacy=True)
        trusted = [PublicKey.parse(keys.public_line)]
    t_pre = timed(lambda: verify(data, prehashed, trusted), rounds)
    t_leg = timed(lambda: verify(data, legacy, trusted), rounds)
    t_parse = timed(lambda: ReleaseManifest.parse(data), rounds)
    at = datetime.now(UTC)
    release = Release(1, "2.0.0", "stable", at, "{}", "0" * 16, "c", "s", 1, "a", at)
    states = list(RolloutState)
    nodes = tuple(NodeRollout(f"node-{i:05d}", "1.9.9", states[i % 4]) for i in range(5000))
    t_render = timed(lambda: rollout_embed(Rollout(release, nodes, at)), max(20, rounds // 100))

    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {statistics.median(values) * 1e3:.3f} ms | "
            f"{pct(values, 0.99) * 1e3:.3f} ms | {max(values) * 1e3:.3f} ms |"
        )

    lines = [
        SECTION,
        "",
        f"`bench/upgrade_verify.py --rounds {rounds}`, measured "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} / Python "
        f"{platform.python_version()} (2 shared cores). A {len(data):,}-byte manifest with 50 "
        "components signed by the real minisign; verification in Python (`cryptography`).",
        "",
        "| figure | p50 | p99 | max |",
        "| --- | --- | --- | --- |",
        row("verify, prehashed (ED, BLAKE2b-512)", t_pre),
        row("verify, legacy (Ed)", t_leg),
        row("manifest parse + validate (pydantic)", t_parse),
        row("`/upgrade status` embed, 5,000 nodes", t_render),
        "",
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nMeasured figures, one section per benchmark.\n\n"
    )
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    text = (
        pattern.sub(section.rstrip() + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    DOC.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    section = main(args.rounds)
    write(section)
    print(section)
