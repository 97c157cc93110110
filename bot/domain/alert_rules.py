"""The alert group's rules, pure: what a notification makes of a group, what an operator's act
makes of it, how large a storm digest is, who is mentioned, and what the fallback email and the
pipeline notices say. No I/O: the services in `bot/services/alerts/` load, decide here, store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

from bot.domain.alerts import (
    AlertGroup,
    AlertStatus,
    AlertView,
    Silence,
    WebhookAlert,
    WebhookPayload,
    worst_severity,
)
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.roles import Actor

EMBEDS_PER_MESSAGE = 10
"""Discord's limit; a digest shows at least this many groups (one embed each)."""
SILENCE_HOURS = (1, 4, 24)
"""The silences a button offers, in hours."""

# -- a notification and its group ----------------------------------------------------------------


def fresh_group(
    payload: WebhookPayload, alerts: Sequence[WebhookAlert], now: datetime
) -> AlertGroup:
    """A group as this notification alone describes it (id 0 until stored)."""
    views = tuple(AlertView.from_payload(a) for a in alerts)
    firing = [a.severity for a in views if a.status is AlertStatus.FIRING]
    return AlertGroup(
        id=0,
        group_key=payload.group_key,
        episode=1,
        status=payload.status,
        severity=worst_severity(firing or [a.severity for a in views]),
        version=1,
        rendered_version=0,
        receiver=payload.receiver,
        group_labels=dict(payload.group_labels),
        common_labels=dict(payload.common_labels),
        external_url=payload.external_url,
        truncated_alerts=payload.truncated_alerts,
        alerts=views,
        first_seen_at=now,
        last_notified_at=now,
        resolved_at=now if payload.status is AlertStatus.RESOLVED else None,
    )


def is_stale(group: AlertGroup, payload: WebhookPayload) -> bool:
    """A late firing notification (a retry, the HA twin) after the same alerts were resolved."""
    if not (group.status is AlertStatus.RESOLVED and payload.status is AlertStatus.FIRING):
        return False
    known = {(a.fingerprint, a.starts_at) for a in group.alerts}
    return all((a.fingerprint, a.starts_at) in known for a in payload.alerts)


def starts_new_episode(group: AlertGroup, payload: WebhookPayload) -> bool:
    """A firing after a resolve: a new episode (new message, no ack, no silence, no incident)."""
    return group.status is AlertStatus.RESOLVED and payload.status is AlertStatus.FIRING


def updated_group(
    group: AlertGroup, fresh: AlertGroup, now: datetime, *, new_episode: bool
) -> AlertGroup:
    """The group after a new notification; a firing after a resolve starts a new episode."""
    changes: dict[str, Any] = {
        "status": fresh.status,
        "severity": fresh.severity,
        "version": group.version + 1,
        "receiver": fresh.receiver,
        "group_labels": fresh.group_labels,
        "common_labels": fresh.common_labels,
        "external_url": fresh.external_url,
        "truncated_alerts": fresh.truncated_alerts,
        "alerts": fresh.alerts,
        "last_notified_at": now,
    }
    if fresh.status is AlertStatus.RESOLVED and group.resolved_at is None:
        changes["resolved_at"] = now
    if new_episode:
        changes.update(
            episode=group.episode + 1,
            first_seen_at=now,
            resolved_at=None,
            message_ref=None,
            posted_at=None,
            acked_by_id=None,
            acked_by_name=None,
            acked_at=None,
            silence_id=None,
            silence_ends_at=None,
            silenced_by_name=None,
            emailed_at=None,
            incident_ref=None,  # a new episode may deserve a new incident
        )
    return replace(group, **changes)


def wants_email_fallback(group: AlertGroup) -> bool:
    """A firing critical group not yet on Discord: emailed if it is not posted in time."""
    return group.firing and group.severity == "critical" and group.posted_at is None


# -- what #alerts shows ----------------------------------------------------------------------------


def digest_size(pending: int, capacity: int, maximum: int) -> int:
    """Groups per digest: at least 10 (one embed each), more when the backlog is larger.

    `capacity` is how many messages the channel takes in about 10 s; spreading the backlog
    over that many messages keeps every group visible within seconds.
    """
    wanted = math.ceil(pending / max(capacity, 1))
    return max(EMBEDS_PER_MESSAGE, min(wanted, maximum))


def mention_roles(
    groups: Sequence[AlertGroup], by_severity: Mapping[str, Sequence[int]]
) -> tuple[int, ...]:
    """The roles `[alerts] mention_roles` names for the firing groups' severities, once each."""
    roles: dict[int, None] = {}
    for group in groups:
        if group.firing:
            for role_id in by_severity.get(group.severity, ()):
                roles[role_id] = None
    return tuple(roles)


# -- operators' acts -------------------------------------------------------------------------------


def actionable(group: AlertGroup | None, episode: int | None = None) -> AlertGroup:
    """The group an operator acts on: it must exist and fire (in the episode they saw)."""
    if group is None:
        raise NotFound("That alert group no longer exists.")
    if not group.firing or (episode is not None and group.episode != episode):
        raise InvalidInput("This alert group is resolved: nothing to act on.")
    return group


def acknowledged(group: AlertGroup, actor: Actor, now: datetime) -> AlertGroup | None:
    """The group taken by `actor`; None when someone already took it (the first ack stays)."""
    if group.acked_at is not None:
        return None
    return replace(
        group,
        acked_by_id=actor.id,
        acked_by_name=actor.name,
        acked_at=now,
        version=group.version + 1,
    )


def silence_matchers(group: AlertGroup, hours: int) -> dict[str, str]:
    """What a silence of `hours` for this group matches: its alerts' common labels."""
    if hours not in SILENCE_HOURS:
        raise InvalidInput(f"Silences last {', '.join(map(str, SILENCE_HOURS))} hours.")
    if not group.firing:
        raise InvalidInput("This alert group is resolved: nothing to silence.")
    matchers = {k: v for k, v in group.common_labels.items() if v}
    if not matchers:
        raise InvalidInput("This group's alerts share no labels: silence them in Alertmanager.")
    return matchers


def silence_comment(actor: Actor, hours: int, link: str) -> str:
    return f"Silenced from Discord #alerts by {actor.name} for {hours} h: {link}"


def silenced(group: AlertGroup, silence: Silence | None, actor: Actor) -> AlertGroup:
    """The group with its silence (or, with None, without it)."""
    return replace(
        group,
        silence_id=silence.id if silence else None,
        silence_ends_at=silence.ends_at if silence else None,
        silenced_by_name=actor.name if silence else None,
        version=group.version + 1,
    )


def with_incident(group: AlertGroup, ref: str) -> AlertGroup | None:
    """The group linked to incident `ref`; None when it already has one (the first link wins)."""
    if group.incident_ref is not None:
        return None
    return replace(group, incident_ref=ref, version=group.version + 1)


class IncidentDraft(NamedTuple):
    severity: int
    title: str
    summary: str
    nodes: str | None


def incident_draft(group: AlertGroup) -> IncidentDraft:
    """Severity, title, summary and nodes for an incident opened from a firing group.

    Critical alerts open Sev 2 (several nodes / major), anything else Sev 3; Sev 1 (mining or
    payout halted) is a human call: `/incident severity` raises it."""
    severity = 2 if group.severity.lower() == "critical" else 3
    first = group.alerts[0] if group.alerts else None
    summary_line = (first.annotations.get("summary") if first else None) or group.title
    title = f"{group.title}: {summary_line}" if summary_line != group.title else group.title
    nodes = sorted({a.labels["node"] for a in group.alerts if a.labels.get("node")})
    summary = (
        f"Opened from alert group #{group.id} ({len(group.alerts)} alert(s), "
        f"{group.severity}). " + ((first.annotations.get("description") or "") if first else "")
    )
    return IncidentDraft(severity, title[:100], summary[:1000], ", ".join(nodes)[:300] or None)


# -- the email fallback and the dead man's switch --------------------------------------------------


def fallback_email(group: AlertGroup, after: float) -> tuple[str, str]:
    """The subject and body of the email sent when a critical group is not on Discord in time."""
    subject = f"[hh-opsbot] CRITICAL {group.title}: not on Discord after {after:.0f} s"
    lines = [
        f"A critical alert group could not be posted to Discord #alerts within {after:.0f} s.",
        "The bot keeps trying; this email is the fallback of the ops manual, section 5.",
        "",
        f"Group: {group.group_key}",
        f"Status: {group.status.value}, severity {group.severity or 'none'}",
        f"First seen: {group.first_seen_at.isoformat()}",
        "",
    ]
    for alert in group.alerts:
        summary = alert.annotations.get("summary") or alert.name
        where = alert.labels.get("node") or alert.labels.get("instance") or ""
        lines.append(f"- [{alert.status.value}] {alert.name} {where}: {summary}")
        description = alert.annotations.get("description")
        if description:
            lines.append(f"  {description[:500]}")
        if alert.generator_url:
            lines.append(f"  {alert.generator_url}")
    if group.truncated_alerts:
        lines.append(f"+{group.truncated_alerts} more not sent by Alertmanager")
    if group.external_url:
        lines += ["", f"Alertmanager: {group.external_url}"]
    return subject[:200], "\n".join(lines)


def pipeline_broken(last_seen: datetime, timeout: float) -> tuple[str, str]:
    epoch = int(last_seen.timestamp())
    text = (
        f"Alertmanager's Watchdog alert has not arrived for more than {timeout / 60:.0f} min "
        f"(last seen <t:{epoch}:R>). Alerts may not be reaching #alerts: check Prometheus, "
        "Alertmanager and the bot's webhook."
    )
    return "Alert pipeline broken", text


def pipeline_recovered(since: datetime, now: datetime) -> tuple[str, str]:
    minutes = max((now - since).total_seconds() / 60, 0)
    text = (
        f"The Watchdog alert arrives again; the pipeline was reported broken for {minutes:.0f} min."
    )
    return "Alert pipeline recovered", text
