"""Embeds of the upgrades area: the release notice, the approval, the rollout, the history.

Each render function is tested on its own against Discord's limits; notes and versions come
from outside (a manifest, node agents), so they are truncated and kept out of code fences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import discord

from bot.discord.sending import DESCRIPTION_MAX, FIELD_VALUE_MAX, Rendered, fit_embed, truncate
from bot.domain.health import State
from bot.domain.outbox import NoticeTemplate
from bot.domain.releases import RolloutState
from bot.services.upgrades import ReleaseHistory, Rollout
from cogs.upgrades.texts import NOTES_MAX as NOTES_MAX
from cogs.upgrades.texts import ROLLBACK_ICON as ROLLBACK_ICON
from cogs.upgrades.texts import component_fields as component_fields
from cogs.upgrades.texts import plain as plain
from cogs.upgrades.texts import release_text
from cogs.upgrades.texts import ts as ts
from cogs.upgrades.views import ApproveRolloutButton, RejectRolloutButton

COLOUR_RELEASE = discord.Colour.blurple()
COLOUR_OK = discord.Colour.green()
COLOUR_WARN = discord.Colour.orange()
COLOUR_BAD = discord.Colour.red()
COLOUR_ROLLBACK = discord.Colour.orange()
"""A rollback (an older version Core Ops announced with rollback:true) is never blurple."""
BAR_WIDTH = 20
TABLE_BUDGET = 3500
STATE_ICONS = {
    # One icon set for state in every area (issue 16 §3): /health's ✅ ⚠️ ❌.
    RolloutState.UPGRADED: State.OK.icon,
    RolloutState.PENDING: "⏳",
    RolloutState.UNHEALTHY: State.WARN.icon,
    RolloutState.UNREACHABLE: State.DOWN.icon,
}
STATE_LABELS = {
    RolloutState.UPGRADED: "upgraded",
    RolloutState.PENDING: "pending",
    RolloutState.UNHEALTHY: "unhealthy after upgrade",
    RolloutState.UNREACHABLE: "unreachable",
}


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    if total <= 0:
        return "░" * width + " 0 %"
    filled = round(width * done / total)
    return "█" * filled + "░" * (width - filled) + f" {100 * done / total:.0f} %"


def release_notice(data: Mapping[str, Any]) -> Rendered:
    """The release notice in #dev-log, awaiting the second Core Ops member: Approve rollout and
    Reject (the buttons edit it to say their decision: `cogs/upgrades/views.py`)."""
    shown = release_text(data)
    release_id = int(data["release_id"])
    shown.items = [ApproveRolloutButton.make(release_id), RejectRolloutButton.make(release_id)]
    return shown


def approved_notice(data: Mapping[str, Any]) -> Rendered:
    version = plain(data["version"], 64)
    who = (
        f"Announced by {plain(data.get('announced_by_name', '?'), 100)}, approved by "
        f"{plain(data.get('approved_by_name', '?'), 100)}.\n"
    )
    if data.get("rollback_from"):
        embed = discord.Embed(
            title=truncate(f"Rollback approved: {version}", 256),
            description=(
                f"{who}**The fleet may roll back** from {plain(data['rollback_from'], 64)} to "
                f"{version}: node agents apply it at their next hourly poll; manual rollbacks run "
                "`hh-node-agent upgrade --verify-signature` (manual §8)."
            ),
            colour=COLOUR_ROLLBACK,
        )
        return Rendered(embeds=[fit_embed(embed)])
    embed = discord.Embed(
        title=truncate(f"Rollout approved: {version}", 256),
        description=(
            f"{who}**The fleet may upgrade** to {version}: node agents apply it at their next "
            "hourly poll; manual upgrades run `hh-node-agent upgrade --verify-signature` "
            "(manual §8)."
        ),
        colour=COLOUR_OK,
    )
    return Rendered(embeds=[fit_embed(embed)])


def unhealthy_notice(data: Mapping[str, Any]) -> Rendered:
    node = plain(data["node"], 64)
    version = plain(data["version"], 64)
    reason = plain(data.get("reason") or "its health check failed", 300)
    embed = discord.Embed(
        title=truncate(f"Node {node} unhealthy after upgrading to {version}", 256),
        description=(
            f"{reason}.\nRollback expected: the node agent rolls back a failed upgrade "
            "(manual §8). Check `/upgrade status` and `/health`."
        ),
        colour=COLOUR_BAD,
    )
    return Rendered(embeds=[fit_embed(embed)])


def rollout_embed(rollout: Rollout) -> discord.Embed:
    snapshot = rollout.snapshot
    release = rollout.release
    counts = " · ".join(
        f"{STATE_ICONS[s]} {STATE_LABELS[s]} {rollout.count(s)}"
        for s in (
            RolloutState.UPGRADED,
            RolloutState.PENDING,
            RolloutState.UNHEALTHY,
            RolloutState.UNREACHABLE,
        )
    )
    header = f"`{progress_bar(snapshot.upgraded, snapshot.total)}`\n{counts}\n"
    if not rollout.nodes:
        body = "No registered nodes: `/node register` one, or add [health] nodes."
    else:
        rows: list[str] = []
        width = min(max(len(n.name) for n in rollout.nodes), 32)
        budget = min(TABLE_BUDGET, DESCRIPTION_MAX - len(header) - 200)
        used = 0
        shown = 0
        for node in rollout.nodes:
            row = (
                f"{STATE_ICONS[node.state]} {plain(node.name, 32):<{width}} "
                f"{plain(node.version or '—', 20):<12} {STATE_LABELS[node.state]}"
            )
            if used + len(row) + 1 > budget:
                break
            rows.append(row)
            used += len(row) + 1
            shown += 1
        body = "```\n" + "\n".join(rows) + "\n```"
        if shown < len(rollout.nodes):
            body += f"\n…and {len(rollout.nodes) - shown} more nodes not shown (worst first)."
    state_colour = (
        COLOUR_BAD
        if snapshot.unhealthy
        else COLOUR_OK
        if snapshot.total and snapshot.upgraded == snapshot.total
        else COLOUR_WARN
    )
    rolled_back = (
        f" · {ROLLBACK_ICON} Rollback from {plain(release.rolled_back_from, 64)}"
        if release.rolled_back_from
        else ""
    )
    embed = discord.Embed(
        title=truncate(
            f"Rollout of {plain(release.version, 64)} ({release.channel}){rolled_back}", 256
        ),
        description=truncate(header + body, DESCRIPTION_MAX),
        colour=state_colour,
    )
    approval = (
        f"approved by {plain(release.approved_by_name, 100)}"
        if release.approved_at
        else f"rejected by {plain(release.rejected_by_name, 100)}: it does not roll out"
        if release.rejected_at
        else "not approved yet (two-person rule)"
    )
    embed.set_footer(text=truncate(f"key {release.key_id} · {approval}", 300))
    return fit_embed(embed)


def history_embed(history: Sequence[ReleaseHistory]) -> discord.Embed:
    embed = discord.Embed(title="Releases", colour=COLOUR_RELEASE)
    if not history:
        embed.description = "No release was announced yet."
        return embed
    for item in history[:20]:
        r = item.release
        approval = (
            f"approved by {plain(r.approved_by_name, 100)} {ts(r.approved_at)}"
            if r.approved_at
            else f"rejected by {plain(r.rejected_by_name, 100)} {ts(r.rejected_at)}"
            if r.rejected_at
            else "not approved"
        )
        lines = [
            f"announced by {plain(r.announced_by_name, 100)} {ts(r.announced_at)}, {approval}",
            f"key `{plain(r.key_id, 16)}`",
        ]
        if item.snapshots:
            points = " → ".join(f"{s.percent:.0f} %" for s in item.snapshots[-8:])
            last = item.snapshots[-1]
            lines.append(f"rollout: {points} (last {ts(last.at)}, {last.upgraded}/{last.total})")
        else:
            lines.append("rollout: not checked yet (`/upgrade status`)")
        rolled_back = (
            f" · {ROLLBACK_ICON} rollback from {plain(r.rolled_back_from, 64)}"
            if r.rolled_back_from
            else ""
        )
        embed.add_field(
            name=truncate(f"{plain(r.version, 64)} ({r.channel}){rolled_back}", 256),
            value=truncate("\n".join(lines), FIELD_VALUE_MAX),
            inline=False,
        )
    return fit_embed(embed)


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.UPGRADE_RELEASE: release_notice,
    NoticeTemplate.UPGRADE_APPROVED: approved_notice,
    NoticeTemplate.UPGRADE_UNHEALTHY: unhealthy_notice,
}
