"""Embeds and notices of the incident area: pure functions, tested against Discord's limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import discord

from bot.discord.sending import FIELDS_MAX, Rendered, fit_embed, truncate
from bot.discord.state import MessageState, Stated, stated
from bot.domain.devlog import safe_line, safe_url
from bot.domain.incident_texts import discord_link
from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentStatus,
    LinkKind,
    Severity,
    SeverityStats,
    TimelineEntry,
)
from bot.domain.outbox import NoticeTemplate
from bot.domain.units import plural
from bot.services.incidents import (
    duration,
)

COLOURS = {
    Severity.SEV1: discord.Colour.red(),
    Severity.SEV2: discord.Colour.orange(),
    Severity.SEV3: discord.Colour.gold(),
}
RESOLVED_COLOUR = discord.Colour.green()
THREAD_NAME_MAX = 100


def ts(at: datetime | str | None, style: str = "f") -> str:
    if at is None:
        return "—"
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return f"<t:{int(moment.timestamp())}:{style}>"


def thread_name(incident: Incident) -> str:
    return truncate(f"{incident.ref} {incident.title}", THREAD_NAME_MAX)


def checklist_text(incident: Incident) -> str:
    lines = []
    for item in ChecklistItem:
        tick = incident.checklist.get(item)
        if tick is None:
            lines.append(f"⬜ {item.label}")
        else:
            lines.append(f"✅ {item.label}: {truncate(tick.by_name, 40)}, {ts(tick.at, 't')}")
    return "\n".join(lines)


def github_text(incident: Incident, *, configured: bool) -> str:
    if incident.github_url:
        text = f"[Issue #{incident.github_number}]({incident.github_url})"
        report = safe_url(incident.report_url)
        if report:
            text += f" · [report]({report})"
        return text
    if incident.github_error:
        return truncate(f"⚠️ not created: {incident.github_error}", 1024)
    if not configured:
        return "not configured"
    return "being created…"


LINKS_SHOWN = 5


def links_text(incident: Incident) -> str:
    """The pull requests and commits linked to it, newest first (titles from GitHub made safe)."""
    lines = []
    for link in reversed(incident.links[-LINKS_SHOWN:]):
        label = "PR" if link.kind is LinkKind.PR else "commit"
        title = safe_line(link.title, 80)
        url = safe_url(link.url)
        text = f"[{label}: {title}]({url})" if url else f"{label}: {title}"
        lines.append(f"• {text} by {safe_line(link.author, 40)}")
    more = len(incident.links) - LINKS_SHOWN
    if more > 0:
        lines.append(f"… and {more} more (see the report)")
    return truncate("\n".join(lines), 1024)


CARD_STATES = {
    IncidentStatus.INVESTIGATING: MessageState.INVESTIGATING,
    IncidentStatus.IDENTIFIED: MessageState.IDENTIFIED,
    IncidentStatus.MONITORING: MessageState.MONITORING,
    IncidentStatus.RESOLVED: MessageState.RESOLVED,
}


def card_state(incident: Incident, role_ids: Sequence[int] = ()) -> Stated:
    """The card's state, said alike by its title, its text line and its colour: the status
    (RESOLVED once resolved), coloured by severity while open; the page's role mentions lead the
    text line of an open incident only (a resolved card's preview starts with RESOLVED)."""
    resolved = incident.status is IncidentStatus.RESOLVED
    if resolved:
        line = f"resolved {ts(incident.resolved_at, 'R')}" if incident.resolved_at else "resolved"
    else:
        line = f"opened {ts(incident.opened_at, 'R')} by {truncate(incident.reporter_name, 60)}"
    return stated(
        CARD_STATES[incident.status],
        f"{incident.ref} · {incident.severity.label} · {truncate(incident.title, 200)}",
        line,
        colour=RESOLVED_COLOUR if resolved else COLOURS[incident.severity],
        prefix="" if resolved else " ".join(f"<@&{role_id}>" for role_id in role_ids),
    )


def latest_update_text(incident: Incident) -> str:
    """The newest update: its text, who posted it and when."""
    entry = incident.latest_update
    if entry is None:
        return "none yet: press **Update** below (or `/incident update`)"
    return truncate(
        f"{truncate(entry.text, 900)}\n— {truncate(entry.actor_name, 60)}, {ts(entry.at, 'R')}",
        1024,
    )


def next_update_text(due: datetime) -> str:
    return f"{ts(due, 't')} ({ts(due, 'R')})"


def card(
    incident: Incident, *, github_configured: bool, next_update_due: datetime | None = None
) -> discord.Embed:
    """The incident card in #operations, kept up to date from the database: state in the
    title, the commander, the latest update (text, who, when) and, for an open Sev 1 or 2,
    when the next update is due (`IncidentPolicy.next_update_due`: the nudge fires then)."""
    resolved = incident.status is IncidentStatus.RESOLVED
    shown = card_state(incident)
    embed = discord.Embed(
        title=shown.title,
        description=truncate(incident.summary, 4096) if incident.summary else None,
        colour=shown.colour,
    )
    embed.add_field(name="Status", value=incident.status.value.capitalize())
    embed.add_field(
        name="Severity", value=f"{incident.severity.label}: {incident.severity.meaning}"
    )
    embed.add_field(
        name="Commander",
        value=f"<@{incident.commander_id}>" if incident.commander_id else "not assigned",
    )
    embed.add_field(
        name="Opened",
        value=truncate(f"{ts(incident.opened_at)} by {incident.reporter_name}", 1024),
    )
    if incident.nodes:
        embed.add_field(name="Nodes", value=truncate(incident.nodes, 1024))
    if not resolved or incident.latest_update is not None:
        embed.add_field(name="Latest update", value=latest_update_text(incident), inline=False)
    if next_update_due is not None and not resolved:
        embed.add_field(name="Next update due", value=next_update_text(next_update_due))
    embed.add_field(name="Checklist", value=checklist_text(incident), inline=False)
    if resolved:
        embed.add_field(name="Cause", value=truncate(incident.cause or "—", 1024), inline=False)
        embed.add_field(
            name="Resolution", value=truncate(incident.resolution or "—", 1024), inline=False
        )
        report = (
            f"written {ts(incident.report_at)}"
            if incident.report_at
            else f"due {ts(incident.report_due_at)} ({ts(incident.report_due_at, 'R')})"
        )
        embed.add_field(name="Report", value=report)
    if incident.links:
        embed.add_field(name="Linked changes", value=links_text(incident), inline=False)
    embed.add_field(
        name="GitHub", value=github_text(incident, configured=github_configured), inline=False
    )
    embed.set_footer(text=f"Last update {incident.last_update_at:%Y-%m-%d %H:%M} UTC")
    return fit_embed(embed)


def card_content(incident: Incident, role_ids: Sequence[int]) -> str:
    """The card's text line: its state, led by the page while open
    (`IncidentPolicy.page_roles`: a Sev 1 pages Core Ops)."""
    return card_state(incident, role_ids).content


def checklist_intro(incident: Incident) -> str:
    return truncate(
        f"**{incident.ref}** ({incident.severity.label}): work this incident here. "
        "The manual's response steps (§9) are below: press each one when it is done; the card "
        "in #operations and the GitHub issue follow. On the card: **Update** for progress, "
        "**Take command**, **Resolve** when it is over, then **Report** (due within 48 h).",
        2000,
    )


def where(incident: Incident, guild_id: int | None) -> str:
    """Where the incident is worked: a link to its card, else its thread, else nothing."""
    link = discord_link(incident, guild_id)
    if link:
        return f"[card]({link})"
    if incident.thread_id:
        return f"<#{incident.thread_id}>"
    return ""


def confirmation(text: str, incident: Incident, guild_id: int | None) -> str:
    """A private confirmation: one line, with a link to the card (or thread), never a second
    copy of the card (issue 16 §2)."""
    line = " ".join(text.split())
    there = where(incident, guild_id)
    return truncate(f"{line} → {there}" if there else line, 2000)


def opened_reply(incident: Incident, *, card_posted: bool, github_configured: bool) -> str:
    where = f"thread <#{incident.thread_id}>" if incident.thread_id else "#operations"
    text = f"**{incident.ref}** is open ({incident.severity.label}). Work it in {where}."
    if not card_posted:
        text += " Discord did not take the card right now: see `/incident show`."
    text += (
        " The GitHub issue is being created."
        if github_configured
        else " GitHub is not configured: the incident is logged here only."
    )
    return text


def detail(
    incident: Incident,
    timeline: Sequence[TimelineEntry],
    *,
    github_configured: bool,
    next_update_due: datetime | None = None,
) -> discord.Embed:
    embed = card(incident, github_configured=github_configured, next_update_due=next_update_due)
    if timeline:
        lines = [
            f"{ts(e.at, 't')} **{e.kind.value}** {truncate(e.text, 150)} "
            f"({truncate(e.actor_name, 30)})"
            for e in timeline[-12:]
        ]
        embed.add_field(
            name="Timeline (latest)", value=truncate("\n".join(lines), 1024), inline=False
        )
    return fit_embed(embed)


def listing(incidents: Sequence[Incident], *, title: str) -> discord.Embed:
    embed = discord.Embed(title=truncate(title, 256), colour=discord.Colour.blue())
    if not incidents:
        embed.description = "No incidents."
        return embed
    for incident in incidents[:FIELDS_MAX]:
        embed.add_field(
            name=truncate(f"{incident.ref} · {incident.severity.label} · {incident.title}", 256),
            value=truncate(
                f"{incident.status.value}, opened {ts(incident.opened_at)}"
                + (f", commander <@{incident.commander_id}>" if incident.commander_id else ""),
                1024,
            ),
            inline=False,
        )
    return fit_embed(embed)


def stats(rows: Sequence[SeverityStats]) -> discord.Embed:
    embed = discord.Embed(title="Incident response times", colour=discord.Colour.blue())
    for row in rows:
        embed.add_field(
            name=f"{row.severity.label}: {row.severity.meaning}"[:256],
            value=(
                f"{plural(row.count, 'incident')}, {row.resolved} resolved\n"
                f"Time to acknowledge: {duration(row.mean_acknowledge)} (mean)\n"
                f"Time to resolve: {duration(row.mean_resolve)} (mean)"
            ),
            inline=False,
        )
    embed.set_footer(text="Acknowledged: first update or assignment after opening.")
    return fit_embed(embed)


# -- notices (outbox templates) ---------------------------------------------------------------


def _thread(data: Mapping[str, Any]) -> Rendered:
    kind = str(data.get("kind", "update"))
    head = {
        "update": "Update",
        "severity": "Severity changed",
        "assigned": "Commander",
        "resolved": "Resolved",
        "checklist": "Checklist",
        "linked": "Linked",
    }.get(kind, kind.capitalize())
    return Rendered(
        content=truncate(
            f"**{head}** ({truncate(str(data.get('actor', '')), 60)}, {ts(data.get('at'), 't')}): "
            f"{data.get('text', '')}",
            2000,
        )
    )


def _nudge(data: Mapping[str, Any]) -> Rendered:
    return Rendered(
        content=truncate(
            f"⏰ **{data.get('ref')}** (Sev {data.get('severity')}) has had no update for "
            f"{data.get('minutes')} minutes (last {ts(data.get('last_update_at'), 'R')}). "
            "Press **Update** on its card (or `/incident update`), even if it is "
            "“still investigating”.",
            2000,
        )
    )


def _report_due(data: Mapping[str, Any]) -> Rendered:
    return Rendered(
        content=truncate(
            f"📝 The report of **{data.get('ref')}** ({data.get('title')}) is due "
            f"{ts(data.get('due_at'))} ({ts(data.get('due_at'), 'R')}): `/incident report "
            f"{data.get('ref')}` writes it from the timeline (manual §20: within 48 h).",
            2000,
        )
    )


def _report_overdue(data: Mapping[str, Any]) -> Rendered:
    return Rendered(
        content=truncate(
            f"⚠️ The report of **{data.get('ref')}** ({data.get('title')}) is overdue since "
            f"{ts(data.get('due_at'))}. Please run `/incident report {data.get('ref')}` now.",
            2000,
        )
    )


def _miners(data: Mapping[str, Any]) -> Rendered:
    """Plain text: the service already built it from severity, status and a sanitised title."""
    icon = "✅" if data.get("resolved") else "⚠️"
    return Rendered(content=truncate(f"{icon} {data.get('text', '')}", 2000))


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.INCIDENT_THREAD: _thread,
    NoticeTemplate.INCIDENT_NUDGE: _nudge,
    NoticeTemplate.INCIDENT_REPORT_DUE: _report_due,
    NoticeTemplate.INCIDENT_REPORT_OVERDUE: _report_overdue,
    NoticeTemplate.INCIDENT_MINERS: _miners,
}
