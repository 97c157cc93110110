"""What an incident reads like outside Discord: its GitHub issue (title, labels, body, the bot's
marker) and its postmortem, as pure Markdown; text from people and alerts made safe for GitHub."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    TimelineEntry,
)

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def github_text(text: str) -> str:
    """Text from people or alerts, made safe for GitHub: HTML comments go (one could carry a
    marker of the bot's, or hide the rest of the page; an unclosed one loses its opener, and the
    loop catches comments that removing others would assemble), and every `@` gets a zero-width
    space after it, so no user or team is mentioned. Apply once, to text as sent."""
    while True:
        cleaned = _HTML_COMMENT.sub("", text).replace("<!--", "")
        if cleaned == text:
            break
        text = cleaned
    return text.replace("@", "@\u200b")


def issue_marker(incident: Incident) -> str:
    """The issue's first line (and only there, see `IssueTracker.find_issue`)."""
    return f"<!-- hh-opsbot:{incident.ref} -->"


def issue_title(incident: Incident) -> str:
    return f"[{incident.ref}] {incident.severity.label}: {github_text(incident.title)}"


def issue_labels(incident: Incident) -> list[str]:
    labels = ["incident", f"sev-{int(incident.severity)}"]
    if not incident.is_open:
        labels.append("resolved")
    return labels


def checklist_lines(incident: Incident) -> list[str]:
    lines = []
    for item in ChecklistItem:
        tick = incident.checklist.get(item)
        if tick is None:
            lines.append(f"- [ ] {item.label}")
        else:
            lines.append(f"- [x] {item.label} (by {tick.by_name}, {utc(tick.at)})")
    return lines


def discord_link(incident: Incident, guild_id: int | None) -> str | None:
    if guild_id is None or incident.card_channel_id is None or incident.card_message_id is None:
        return None
    return (
        f"https://discord.com/channels/{guild_id}/{incident.card_channel_id}/"
        f"{incident.card_message_id}"
    )


def issue_body(incident: Incident, guild_id: int | None = None) -> str:
    """The issue: timestamp, severity, reporter, summary, checklist (manual §19). The marker
    is the first line; everything after it passes `github_text`."""
    parts = [
        f"**Incident:** {incident.ref}",
        f"**Opened:** {utc(incident.opened_at)}",
        f"**Severity:** {incident.severity.label} ({incident.severity.meaning})",
        f"**Status:** {incident.status.value}",
        f"**Reporter:** {incident.reporter_name}",
        f"**Commander:** {incident.commander_name or 'not assigned'}",
    ]
    if incident.nodes:
        parts.append(f"**Nodes:** {incident.nodes}")
    link = discord_link(incident, guild_id)
    if link:
        parts.append(f"**Discord:** [incident card]({link})")
    parts += ["", "## Summary", "", incident.summary or "_none given_", "", "## Checklist", ""]
    parts += checklist_lines(incident)
    if incident.resolved_at is not None:
        parts += [
            "",
            "## Resolution",
            "",
            f"**Resolved:** {utc(incident.resolved_at)}",
            f"**Cause:** {incident.cause}",
            f"**Resolution:** {incident.resolution}",
        ]
        if incident.report_due_at is not None:
            parts.append(f"**Report due:** {utc(incident.report_due_at)}")
    if incident.report_url:
        parts.append(f"**Report:** {incident.report_url}")
    return issue_marker(incident) + "\n" + github_text("\n".join(parts)) + "\n"


def postmortem(incident: Incident, timeline: Sequence[TimelineEntry], *, now: datetime) -> str:
    """The report (manual §20): summary, impact, UTC timeline, cause, resolution, checklist,
    time to acknowledge and to resolve."""
    ack = incident.acknowledged_at - incident.opened_at if incident.acknowledged_at else None
    fix = incident.resolved_at - incident.opened_at if incident.resolved_at else None
    lines = [
        f"# {incident.ref}: {incident.title}",
        "",
        f"- **Severity:** {incident.severity.label} ({incident.severity.meaning})",
        f"- **Status:** {incident.status.value}",
        f"- **Opened:** {utc(incident.opened_at)} by {incident.reporter_name}",
        f"- **Commander:** {incident.commander_name or 'not assigned'}",
        f"- **Resolved:** {utc(incident.resolved_at) if incident.resolved_at else 'not yet'}",
        f"- **Time to acknowledge:** {duration(ack)}",
        f"- **Time to resolve:** {duration(fix)}",
        f"- **Report written:** {utc(now)}",
        "",
        "## Summary",
        "",
        incident.summary or incident.title,
        "",
        "## Impact",
        "",
        f"{incident.severity.label}: {incident.severity.meaning}."
        + (f" Nodes: {incident.nodes}." if incident.nodes else ""),
        "",
        "## Timeline (UTC)",
        "",
    ]
    for entry in timeline:
        text = entry.text.replace("\n", " ")
        lines.append(
            f"- {entry.at.strftime('%Y-%m-%d %H:%M')}: {entry.kind.value}: {text} "
            f"({entry.actor_name})"
        )
    lines += [
        "",
        "## Cause",
        "",
        incident.cause or "_not established yet_",
        "",
        "## Resolution",
        "",
        incident.resolution or "_not resolved yet_",
        "",
        "## Linked changes",
        "",
        *link_lines(incident),
        "",
        "## Checklist",
        "",
        *checklist_lines(incident),
        "",
    ]
    return "\n".join(lines)


def link_lines(incident: Incident) -> list[str]:
    """The pull requests and commits linked to it (manual §19), oldest first; titles and
    authors from GitHub pass `github_text` (no mention, no hidden comment)."""
    if not incident.links:
        return ["_none linked_"]
    return [
        f"- {utc(link.at)}: {'pull request' if link.kind.value == 'pr' else 'commit'} "
        f"[{_label(link.title)}]({link.url}) "
        f"by {github_text(link.author)[:100]}"
        for link in incident.links
    ]


def utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def _mean(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return sum(values, timedelta()) / len(values)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _label(title: str) -> str:
    """A link's label: one line, safe for GitHub, brackets escaped (the link stays one link)."""
    text = github_text(" ".join(title.split()))[:200]
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
