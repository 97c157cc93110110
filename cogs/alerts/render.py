"""How an alert group looks in #alerts: its own message, or a line in a storm digest.

Everything an alert carries is untrusted text: markdown is escaped, mentions are broken, bidi
overrides are dropped, and every Discord limit (title 256, description 4096, field 1024, 6000
per message, 10 embeds) holds by construction, so Discord never answers 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import discord

from bot.discord.sending import (
    CONTENT_MAX,
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    EMBEDS_PER_MESSAGE,
    FIELD_VALUE_MAX,
    TITLE_MAX,
    Rendered,
    fit_embed,
    truncate,
)
from bot.domain.alert_rules import pipeline_broken, pipeline_recovered
from bot.domain.alerts import SEVERITY_RANK, AlertGroup, AlertStatus, AlertView
from bot.domain.outbox import NoticeTemplate

GREEN = 0x2ECC71
COLOURS = {"critical": 0xE74C3C, "error": 0xE67E22, "warning": 0xF39C12, "info": 0x3498DB}
GREY = 0x95A5A6
ICONS = {"critical": "🔴", "error": "🟠", "warning": "🟡", "info": "🔵"}
RESOLVED_ICON = "✅"
KEY_LABELS = ("node", "instance")
MESSAGE_BUDGET = EMBED_TOTAL_MAX - 200
"""What one message's embeds may use in all, with room for the footers and field names."""

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str, *, one_line: bool = False) -> str:
    """Untrusted alert text made inert: no markdown, no mentions, no bidi tricks."""
    text = _CONTROL.sub("", _BIDI.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    text = text.replace("\t", " ")
    if one_line:
        text = " ".join(text.split())
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def plain(text: str) -> str:
    """One line of untrusted text for places Discord shows as typed (select menu options): no
    control or bidi characters; no markdown escapes, which would show as backslashes there."""
    return " ".join(_CONTROL.sub("", _BIDI.sub("", text)).split())


def safe_url(url: str) -> str | None:
    """An http(s) URL usable in an embed or a markdown link, or None."""
    url = url.strip()
    if (
        not url.startswith(("http://", "https://"))
        or len(url) > 1000
        or any(c in url for c in " \n")
    ):
        return None
    return url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def colour_of(group: AlertGroup) -> int:
    if not group.firing:
        return GREEN
    return COLOURS.get(group.severity, GREY)


def icon_of(alert_or_group: AlertView | AlertGroup) -> str:
    status = alert_or_group.status
    if status is AlertStatus.RESOLVED:
        return RESOLVED_ICON
    return ICONS.get(alert_or_group.severity, "⚪")


def ts(moment: datetime, style: str = "R") -> str:
    return f"<t:{int(moment.timestamp())}:{style}>"


def duration_text(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def alertmanager_url(group: AlertGroup) -> str | None:
    base = safe_url(group.external_url)
    if base is None:
        return None
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(group.group_labels.items()))
    link = f"{base}/#/alerts?receiver={quote(group.receiver)}"
    if matchers:
        link += f"&filter={quote('{' + matchers + '}')}"
    return safe_url(link)


def header(group: AlertGroup) -> str:
    if group.firing:
        return f"[FIRING:{group.firing_count}] {group.title}"
    return f"[RESOLVED] {group.title}"


def _sorted_alerts(group: AlertGroup) -> list[AlertView]:
    return sorted(
        group.alerts,
        key=lambda a: (a.status is AlertStatus.RESOLVED, SEVERITY_RANK.get(a.severity, 99)),
    )


def _key_labels(alert: AlertView, group: AlertGroup) -> str:
    parts = []
    for key in KEY_LABELS:
        value = alert.labels.get(key)
        if value and group.group_labels.get(key) != value:
            parts.append(f"{key} {clean(value, one_line=True)[:120]}")
    return " · ".join(parts)


def alert_block(alert: AlertView, group: AlertGroup, budget: int) -> str:
    """One alert: summary, description, key labels, start and source link, within `budget`."""
    summary = alert.annotations.get("summary") or alert.name
    severity = f" `{alert.severity}`" if alert.severity and alert.severity.isalnum() else ""
    first = f"{icon_of(alert)} **{clean(alert.name, one_line=True)[:100]}**{severity}"
    if summary != alert.name:
        first += f" · {clean(summary, one_line=True)[:300]}"
    meta = []
    labels = _key_labels(alert, group)
    if labels:
        meta.append(labels)
    if alert.status is AlertStatus.RESOLVED and alert.ends_at:
        meta.append(f"resolved {ts(alert.ends_at)}")
    else:
        meta.append(f"since {ts(alert.starts_at)}")
    url = safe_url(alert.generator_url)
    if url and len(url) < budget // 2:
        meta.append(f"[source]({url})")
    last = " · ".join(meta)
    description = alert.annotations.get("description", "")
    room = budget - len(first) - len(last) - 2
    lines = [truncate(first, max(budget - 2, 1))]
    if description and room > 40:
        lines.append(truncate(clean(description), min(room, 1000)))
    lines.append(last)
    return truncate("\n".join(lines), max(budget, 1))


def alert_lines(group: AlertGroup, budget: int) -> str:
    """Every alert of the group as blocks, as many as `budget` allows, then what was left out."""
    alerts = _sorted_alerts(group)
    tail = []
    if group.truncated_alerts:
        tail.append(f"+{group.truncated_alerts} more not sent by Alertmanager")
    reserve = 60 + sum(len(t) + 1 for t in tail)
    per_alert = max((budget - reserve) // max(len(alerts), 1), 160)
    blocks: list[str] = []
    used = 0
    for index, alert in enumerate(alerts):
        block = alert_block(alert, group, per_alert)
        if used + len(block) + 2 > budget - reserve:
            tail.insert(0, f"…and {len(alerts) - index} more alerts in this group")
            break
        blocks.append(block)
        used += len(block) + 2
    return truncate("\n\n".join(blocks + tail), budget)


def group_embed(group: AlertGroup, now: datetime) -> discord.Embed:
    """A group's own message."""
    embed = discord.Embed(
        title=truncate(f"{icon_of(group)} {clean(header(group), one_line=True)}", TITLE_MAX),
        colour=colour_of(group),
        url=alertmanager_url(group),
        description=alert_lines(group, DESCRIPTION_MAX - 96),
        timestamp=group.started_at,
    )
    labels = " · ".join(
        f"{clean(k, one_line=True)}={clean(v, one_line=True)}"
        for k, v in sorted(group.group_labels.items())
    )
    if labels:
        embed.add_field(name="Group", value=truncate(labels, FIELD_VALUE_MAX), inline=True)
    embed.add_field(name="Started", value=f"{ts(group.started_at, 'f')}", inline=True)
    if not group.firing:
        ended = group.ended_at or group.resolved_at or now
        took = duration_text((ended - group.started_at).total_seconds())
        embed.add_field(name="Resolved", value=f"{ts(ended, 'f')} after {took}", inline=True)
    if group.incident_ref is not None:
        embed.add_field(name="Incident", value=group.incident_ref, inline=True)
    if group.acked_at is not None:
        who = clean(group.acked_by_name or "someone", one_line=True)
        embed.add_field(
            name="Acknowledged", value=truncate(f"{who} {ts(group.acked_at)}", 200), inline=True
        )
    if group.silence_id is not None and group.silence_ends_at is not None:
        who = clean(group.silenced_by_name or "someone", one_line=True)
        state = "until" if group.silence_ends_at > now else "ended"
        embed.add_field(
            name="Silenced",
            value=truncate(f"{state} {ts(group.silence_ends_at, 'f')} by {who}", 300),
            inline=True,
        )
    links = []
    am = alertmanager_url(group)
    if am:
        links.append(f"[Alertmanager]({am})")
    runbook = safe_url(group.alerts[0].annotations.get("runbook_url", "")) if group.alerts else None
    if runbook:
        links.append(f"[Runbook]({runbook})")
    if links:
        embed.add_field(name="Links", value=" · ".join(links), inline=True)
    embed.set_footer(text=truncate(f"alert group #{group.id} · {group.receiver}", 200))
    return fit_embed(embed)


def digest_line(group: AlertGroup, budget: int) -> str:
    """One group in a crowded digest: icon, header, key labels, names, start."""
    names = sorted({a.name for a in group.alerts})
    parts = [f"{icon_of(group)} **{clean(header(group), one_line=True)[:80]}**"]
    labels = " ".join(
        clean(v, one_line=True)[:40] for k, v in sorted(group.group_labels.items())
    ).strip()
    if labels and labels not in parts[0]:
        parts.append(labels)
    if len(names) > 1:
        parts.append(clean(", ".join(names), one_line=True)[:80])
    if group.truncated_alerts:
        parts.append(f"+{group.truncated_alerts} not sent")
    parts.append(f"{'since' if group.firing else 'resolved'} {ts(group.started_at)}")
    tag = f" · #{group.id}"
    return truncate(" · ".join(parts), max(budget - len(tag), 10)) + tag


def digest_embeds(groups: Sequence[AlertGroup], now: datetime) -> list[discord.Embed]:
    """A storm digest: one compact embed per group up to 10, else several groups per embed."""
    if not groups:
        return []
    if len(groups) <= EMBEDS_PER_MESSAGE:
        allowance = MESSAGE_BUDGET // len(groups)
        embeds = []
        for group in groups:
            title = truncate(f"{icon_of(group)} {clean(header(group), one_line=True)}", 150)
            footer = f"alert group #{group.id}"
            budget = min(allowance - len(title) - len(footer), DESCRIPTION_MAX)
            embed = discord.Embed(
                title=title,
                colour=colour_of(group),
                url=alertmanager_url(group),
                description=alert_lines(group, max(budget, 100)),
            )
            embed.set_footer(text=footer)
            embeds.append(fit_embed(embed))
        return fit_message(embeds)
    per_embed = math.ceil(len(groups) / EMBEDS_PER_MESSAGE)
    chunks = [groups[i : i + per_embed] for i in range(0, len(groups), per_embed)]
    titles = [f"Alert storm digest {n}/{len(chunks)}" for n in range(1, len(chunks) + 1)]
    footers = [f"groups #{chunk[0].id}–#{chunk[-1].id}" for chunk in chunks]
    # Every line must fit: a cut line would hide a group that is marked as shown.
    room = MESSAGE_BUDGET - sum(len(t) + len(f) for t, f in zip(titles, footers, strict=True))
    line_budget = room // len(groups) - 1
    embeds = []
    for chunk, title, footer in zip(chunks, titles, footers, strict=True):
        worst = min(chunk, key=lambda g: (not g.firing, SEVERITY_RANK.get(g.severity, 99)))
        embed = discord.Embed(
            title=title,
            colour=colour_of(worst),
            description="\n".join(digest_line(g, line_budget) for g in chunk),
        )
        embed.set_footer(text=footer)
        embeds.append(embed)
    return embeds


def fit_message(embeds: list[discord.Embed]) -> list[discord.Embed]:
    """At most 10 embeds and 6000 characters in all: trim the longest descriptions."""
    embeds = embeds[:EMBEDS_PER_MESSAGE]
    while sum(len(e) for e in embeds) > EMBED_TOTAL_MAX:
        longest = max(embeds, key=lambda e: len(e.description or ""))
        over = sum(len(e) for e in embeds) - EMBED_TOTAL_MAX
        text = longest.description or ""
        if not text:
            embeds.pop()
            continue
        longest.description = truncate(text, max(len(text) - over, 1))
    return embeds


def message_content(groups: Sequence[AlertGroup], mention_role_ids: Sequence[int]) -> str | None:
    """Role mentions for critical alerts, in the content (embeds never ping)."""
    if not mention_role_ids:
        return None
    roles = " ".join(f"<@&{role_id}>" for role_id in mention_role_ids)
    firing = [g for g in groups if g.firing]
    if len(firing) == 1:
        group = firing[0]
        text = f"{roles} {group.severity or 'alert'}: {clean(header(group), one_line=True)}"
    else:
        text = f"{roles} {len(firing)} alert groups firing"
    return truncate(text, CONTENT_MAX)


def _pipeline_broken(data: Mapping[str, Any]) -> Rendered:
    title, text = pipeline_broken(datetime.fromisoformat(data["last_seen"]), float(data["timeout"]))
    embed = discord.Embed(title=title, description=text, colour=COLOURS["critical"])
    return Rendered(embeds=[fit_embed(embed)])


def _pipeline_recovered(data: Mapping[str, Any]) -> Rendered:
    title, text = pipeline_recovered(
        datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["now"])
    )
    return Rendered(embeds=[fit_embed(discord.Embed(title=title, description=text, colour=GREEN))])


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.ALERTS_PIPELINE_BROKEN: _pipeline_broken,
    NoticeTemplate.ALERTS_PIPELINE_RECOVERED: _pipeline_recovered,
}
