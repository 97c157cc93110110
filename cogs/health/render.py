"""Embeds for /health and /node: pure functions of service results, tested against the limits."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.discord.sending import DESCRIPTION_MAX, fit_embed, truncate
from bot.discord.state import MessageState, stated
from bot.domain.health import NodeStatus, RegisteredNode, State, Target, TargetKind, Verdict
from bot.domain.public_status import Overview
from bot.domain.units import format_btc, format_duration, format_hashrate, plural
from bot.domain.uptime import UPTIME_TARGET, Uptime

COLOURS = {
    State.OK: discord.Colour.green(),
    State.WARN: discord.Colour.gold(),
    State.DOWN: discord.Colour.red(),
}
PAGE_CHARS = 3500  # description budget per page, below Discord's 4096
PAGE_LINES = 25
LINE_MAX = 300


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def figures_text(verdict: Verdict) -> str:
    """The figures that matter against the baselines, short."""
    f = verdict.result.figures
    parts: list[str] = []
    kind = verdict.result.kind
    height = f.get("block_height")
    if height is not None and kind is not TargetKind.LND:
        parts.append(f"block {height}")
    if (v := _num(f.get("template_latency_ms"))) is not None:
        parts.append(f"template {v:.0f} ms")
    if (v := _num(f.get("rtt_ms"))) is not None:
        parts.append(f"RTT {v:.0f} ms")
    if (v := _num(f.get("disk_used_percent"))) is not None:
        parts.append(f"disk {v:.0f} %")
    if (v := _num(f.get("seconds_since_share"))) is not None:
        parts.append(f"last share {format_duration(v)} ago")
    if kind is TargetKind.LND:
        channels, active = f.get("channels"), f.get("active_channels")
        if channels is not None:
            parts.append(f"{active if active is not None else '?'}/{channels} channels active")
        if (v := _num(f.get("capacity_sat"))) is not None:
            parts.append(f"capacity {format_btc(v)}")
    if (v := _num(f.get("pool_hashrate"))) is not None:
        parts.append(f"hashrate {format_hashrate(v)}")
    if (v := _num(f.get("share_rate"))) is not None:
        parts.append(f"{v:.2f} shares/s")
    return " · ".join(parts)


SHOWN_FIGURES = frozenset(
    {
        "block_height",
        "template_latency_ms",
        "rtt_ms",
        "disk_used_percent",
        "seconds_since_share",
        "channels",
        "active_channels",
        "capacity_sat",
        "pool_hashrate",
        "share_rate",
    }
)
"""Figures `figures_text` says in words; any other a target reports is listed as it came."""

VERDICT_WORDS = {State.OK: "Healthy", State.WARN: "Warning", State.DOWN: "Down"}


def target_line(verdict: Verdict) -> str:
    """The target, then why it is not fine (the reason before the figures), then its figures."""
    latency = verdict.result.latency_ms
    pieces = [f"{verdict.state.icon} **{verdict.target}**"]
    if verdict.notes:
        pieces.append("; ".join(verdict.notes))
    if verdict.result.ok and latency is not None:
        pieces.append(f"{latency:.0f} ms")
    figures = figures_text(verdict) if verdict.result.ok else ""
    if figures:
        pieces.append(figures)
    return truncate(" · ".join(pieces), LINE_MAX)


def _fine_nodes(count: int) -> str:
    return f"{State.OK.icon} {plural(count, 'node')} fine"


def overview_pages(view: Overview) -> list[discord.Embed]:
    """The summary line first, then the problems (worst first, each with its reason), the
    other targets, and the healthy nodes as one line; paged within Discord's limits."""
    summary = truncate(view.summary_line(), 500)
    fine = [v for v in view.verdicts if v.state is State.OK and v.result.kind is TargetKind.NODE]
    lines = [target_line(v) for v in view.verdicts if v not in fine]
    if fine:
        lines.append(_fine_nodes(len(fine)))
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and (size + len(line) + 1 > PAGE_CHARS or len(chunks[-1]) >= PAGE_LINES):
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        body = "\n".join(chunk) if chunk else "No targets to probe."
        embed = discord.Embed(
            title="Network health",
            description=truncate(f"{summary}\n\n{body}", DESCRIPTION_MAX),
            colour=COLOURS[view.worst],
        )
        footer = f"probed {view.at:%H:%M:%S} UTC"
        if len(chunks) > 1:
            footer = f"page {number}/{len(chunks)} · {footer}"
        embed.set_footer(text=footer)
        pages.append(fit_embed(embed))
    return pages


def target_embed(verdict: Verdict, target: Target | None) -> discord.Embed:
    """One target in detail (ops only: the endpoint is shown), the verdict first."""
    result = verdict.result
    verdict_line = f"{verdict.state.icon} **{VERDICT_WORDS[verdict.state]}**"
    if verdict.notes:
        verdict_line += ": " + "; ".join(verdict.notes)
    figures = figures_text(verdict) if result.ok else ""
    embed = discord.Embed(
        title=truncate(f"{verdict.state.icon} {verdict.target} ({result.kind.value})", 256),
        description=truncate("\n".join(filter(None, [verdict_line, figures])), 4096),
        colour=COLOURS[verdict.state],
    )
    if target is not None:
        embed.add_field(name="Endpoint", value=truncate(f"`{target.endpoint}`", 1024))
        if target.region:
            embed.add_field(name="Region", value=truncate(target.region, 1024))
    embed.add_field(
        name="Latency",
        value=f"{result.latency_ms:.1f} ms" if result.latency_ms is not None else "—",
    )
    others = [
        f"{name.replace('_', ' ')}: {truncate(str(value), 100)}"
        for name, value in sorted(result.figures.items())
        if name not in SHOWN_FIGURES
    ]
    if others:
        embed.add_field(name="Other figures", value=truncate("\n".join(others), 1024), inline=False)
    embed.set_footer(text=f"probed {result.at:%Y-%m-%d %H:%M:%S} UTC")
    return fit_embed(embed)


def _percent(value: float | None) -> str:
    if value is None:
        return "— no data"
    icon = "✅" if value >= UPTIME_TARGET else "❌"
    return f"{value:.3f} % {icon}"


def uptime_embed(rows: Sequence[Uptime]) -> discord.Embed:
    lines = [
        f"**{row.target}** · " + " · ".join(f"{label} {_percent(p)}" for label, p in row.windows)
        for row in rows
    ]
    description = "\n".join(truncate(line, LINE_MAX) for line in lines) or "No targets."
    embed = discord.Embed(
        title=f"Uptime against {UPTIME_TARGET} %",
        description=truncate(description, DESCRIPTION_MAX),
        colour=discord.Colour.blue(),
    )
    embed.set_footer(text="quarter = last 90 days (aggregates are kept 90 days); ⚠️ counts as up")
    return fit_embed(embed)


def nodes_embed(nodes: Sequence[RegisteredNode], configured: Sequence[Target]) -> discord.Embed:
    lines = []
    for target in configured:
        if target.kind is TargetKind.NODE:
            region = f" · {target.region}" if target.region else ""
            lines.append(f"⚙️ **{target.name}** · `{target.endpoint}`{region} · from config")
    for node in nodes:
        icon = "✅" if node.status is NodeStatus.APPROVED else "⏳"
        region = f" · {node.region}" if node.region else ""
        lines.append(f"{icon} **{node.name}** · `{node.endpoint}`{region} · {node.status.value}")
    embed = discord.Embed(
        title="Hyper Nodes",
        description=truncate(
            "\n".join(truncate(line, LINE_MAX) for line in lines) or "No nodes yet.",
            DESCRIPTION_MAX,
        ),
        colour=discord.Colour.blue(),
    )
    embed.set_footer(text="⏳ pending Core Ops approval · ✅ approved · ⚙️ config file")
    return fit_embed(embed)


def approval_content(node: RegisteredNode, requested_by: int) -> str:
    region = f" in {node.region}" if node.region else ""
    return stated(
        MessageState.AWAITING,
        f"Node registration **{truncate(node.name, 64)}**",
        f"`{node.endpoint}`{region}, requested by <@{requested_by}>. "
        "A Core Ops member approves or rejects it (manual §3).",
    ).content


def decision_content(node: RegisteredNode, decided_by: int) -> str:
    approved = node.status is NodeStatus.APPROVED
    return stated(
        MessageState.APPROVED if approved else MessageState.REJECTED,
        f"Node registration **{truncate(node.name, 64)}**",
        f"`{node.endpoint}` {'approved' if approved else 'rejected'} by <@{decided_by}>"
        + ("; it is probed from now on." if approved else "; it is not probed."),
    ).content


STALE_MARK = "⛔"


def replaced_content(old: RegisteredNode, new: RegisteredNode) -> str:
    """The old request's message once a newer request replaced it: its buttons no longer act."""
    return truncate(
        f"{STALE_MARK} Node registration **{old.name}** request #{old.id} (`{old.endpoint}`) "
        f"was replaced by request #{new.id}: these buttons no longer act. "
        "Check the newer request's endpoint and decide there.",
        2000,
    )


def removed_content(node: RegisteredNode) -> str:
    return truncate(
        f"{STALE_MARK} Node registration **{node.name}** request #{node.id} "
        f"(`{node.endpoint}`) was removed: these buttons no longer act.",
        2000,
    )


def stale_content(node_id: int, original: str) -> str:
    """A pressed message whose request is gone (the bot could not mark it when it went)."""
    if original.startswith(STALE_MARK):
        return truncate(original, 2000)
    return truncate(
        f"{STALE_MARK} Request #{node_id} was replaced by a newer registration or removed: "
        f"these buttons no longer act.\n{original}",
        2000,
    )
