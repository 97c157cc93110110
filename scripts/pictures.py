"""Pictures of the bot's real messages, for the README and docs/: `docs/pictures/<name>.png`.

Each picture is built the way the bot builds the message: sample domain objects (made here, at a
fixed fake time) go through the cogs' real render functions and views, and the resulting payload
(content, embeds, components: exactly what discord.py sends) is drawn as an HTML page in the
style of Discord's dark theme, then screenshot by headless Chromium and cropped.

    .venv/bin/python scripts/pictures.py             # every picture
    .venv/bin/python scripts/pictures.py --html-only # the HTML pages only (no Chromium)
    .venv/bin/python scripts/pictures.py alert-firing status-miners

Needs Debian's `chromium` and the fonts `fonts-noto-core`, `fonts-noto-mono` and
`fonts-noto-color-emoji` (emoji are part of the bot's text). Deterministic: the same code on the
same machine gives byte-identical PNGs. Nothing here reads the wall clock or the network.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import io
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
from PIL import Image, ImageChops

from bot.discord.state import MessageState
from bot.domain.access import Grant, GrantStatus, LockedOut
from bot.domain.alerts import AlertGroup, AlertStatus, AlertView, WebhookPayload, worst_severity
from bot.domain.devlog import (
    PullRequestEvent,
    WorkflowRunEvent,
    failed_data,
    failing_seconds,
    merge_line,
    parse_event,
    passed_data,
)
from bot.domain.errors import NoOpsRole, PermissionDenied
from bot.domain.health import ProbeResult, TargetKind
from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentStatus,
    Severity,
    Tick,
    miners_notice_text,
)
from bot.domain.outbox import NoticeTemplate
from bot.domain.public_status import overview, public_status
from bot.domain.releases import Release, ReleaseManifest
from bot.domain.roles import OpsRole
from bot.services.upgrades import notice_data
from cogs.access.render import TEMPLATES as access_templates
from cogs.access.render import grant_decision
from cogs.alerts.render import group_embed, message_content
from cogs.alerts.views import group_view
from cogs.devlog.render import merges, workflow
from cogs.health.render import overview_pages
from cogs.incidents.render import card, card_content, checklist_intro, thread_name
from cogs.incidents.views import checklist_view
from cogs.status.render import status_embed
from cogs.upgrades.render import release_notice
from cogs.upgrades.texts import release_text
from cogs.upgrades.views import ApproveRolloutButton

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "pictures"

NOW = datetime(2026, 11, 28, 3, 17, tzinfo=UTC)
"""The fake 'now' of every picture: a Saturday, 03:17 UTC."""

# -- the sample guild: ids as the config file would hold them ---------------------------------

CORE_OPS, NODE_OPS = 100000000000000021, 100000000000000022
ROLES = {CORE_OPS: ("Core Ops", "#e67e22"), NODE_OPS: ("Node Ops", "#3498db")}
ALICE, DANA, SAM = 200000000000000001, 200000000000000002, 200000000000000003
USERS = {ALICE: "alice", DANA: "dana", SAM: "sam_miner"}
CHANNELS = {
    100000000000000011: "operations",
    100000000000000012: "alerts",
    100000000000000013: "dev-log",
    100000000000000014: "miners",
}
BOT_NAME = "hh-opsbot"


@dataclass(frozen=True)
class Invocation:
    """The 'alice used /health' line Discord shows above a slash command's answer."""

    user: str
    command: str


@dataclass(frozen=True)
class Shot:
    """One picture: where the message is, who asked for it, and the payload Discord receives."""

    name: str
    channel: str
    payload: Mapping[str, Any]
    at: datetime
    """When the message is looked at: relative times (`<t:…:R>`) are read from here."""
    posted: datetime | None = None
    """When it was posted (default: `at`); a message posted earlier and edited since says so."""
    invocation: Invocation | None = None
    ephemeral: bool = False
    caption: str = ""

    @property
    def edited(self) -> bool:
        return self.posted is not None and self.posted != self.at


@dataclass
class Sample:
    """The story the pictures tell: node-07 drops out at 03:04, an incident follows."""

    alert_firing: AlertGroup
    alert_resolved: AlertGroup
    incident: Incident
    probes: list[ProbeResult] = field(default_factory=list)


def payload(
    *,
    content: str | None = None,
    embeds: Sequence[discord.Embed] = (),
    view: discord.ui.View | None = None,
) -> dict[str, Any]:
    """What discord.py sends for a message: content, embeds and components as JSON."""
    return {
        "content": content,
        "embeds": [embed.to_dict() for embed in embeds],
        "components": view.to_components() if view is not None else [],
    }


# -- sample domain objects ----------------------------------------------------------------------


def _alert_group(status: AlertStatus, **changes: Any) -> AlertGroup:
    started = datetime(2026, 11, 28, 3, 4, 12, tzinfo=UTC)
    ended = datetime(2026, 11, 28, 3, 31, 40, tzinfo=UTC)
    resolved = status is AlertStatus.RESOLVED
    body = {
        "version": "4",
        "groupKey": '{}/{}:{alertname="NodeOffline", node="node-07"}',
        "truncatedAlerts": 0,
        "status": status.value,
        "receiver": "hh-opsbot",
        "groupLabels": {"alertname": "NodeOffline", "node": "node-07"},
        "commonLabels": {"alertname": "NodeOffline", "node": "node-07", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "https://alertmanager.hyperhash.invalid",
        "alerts": [
            {
                "status": status.value,
                "labels": {
                    "alertname": "NodeOffline",
                    "node": "node-07",
                    "instance": "node-07.eu-west.hyperhash.invalid:9100",
                    "job": "hh-node-agent",
                    "severity": "critical",
                },
                "annotations": {
                    "summary": "Node node-07 is offline",
                    "description": "node-07 (node-07.eu-west.hyperhash.invalid:9100) has not "
                    "answered health checks for more than 5 minutes.",
                    "runbook_url": "https://runbooks.hyperhash.invalid/NodeOffline",
                },
                "startsAt": started.isoformat(),
                "endsAt": ended.isoformat() if resolved else "0001-01-01T00:00:00Z",
                "generatorURL": "https://prometheus.hyperhash.invalid/graph?g0.expr=up%7Bjob%3D"
                "%22hh-node-agent%22%7D+%3D%3D+0",
                "fingerprint": "5f2c6b0e4a1d9c37",
            }
        ],
    }
    parsed = WebhookPayload.model_validate(body)
    views = tuple(AlertView.from_payload(a) for a in parsed.alerts)
    values: dict[str, Any] = {
        "id": 1187,
        "group_key": parsed.group_key,
        "episode": 1,
        "status": parsed.status,
        "severity": worst_severity([a.severity for a in views]),
        "version": 2 if resolved else 1,
        "rendered_version": 1 if resolved else 0,
        "receiver": parsed.receiver,
        "group_labels": parsed.group_labels,
        "common_labels": parsed.common_labels,
        "external_url": parsed.external_url,
        "truncated_alerts": parsed.truncated_alerts,
        "alerts": views,
        "first_seen_at": started + timedelta(minutes=5),
        "last_notified_at": (ended if resolved else started) + timedelta(minutes=5),
        "resolved_at": ended + timedelta(seconds=30) if resolved else None,
    }
    values.update(changes)
    return AlertGroup(**values)


def _incident() -> Incident:
    opened = datetime(2026, 11, 28, 3, 9, 30, tzinfo=UTC)
    return Incident(
        id=42,
        ref="INC-2026-0042",
        severity=Severity.SEV1,
        status=IncidentStatus.IDENTIFIED,
        title="Template delivery stalled: mining halted on node-07 and node-11",
        summary="Block templates stopped reaching the eu-west nodes at 03:04; shares are "
        "rejected as stale. The Core is up; suspect the template relay after the 2.4.0 rollout.",
        nodes="node-07, node-11",
        reporter_id=ALICE,
        reporter_name="alice",
        opened_at=opened,
        last_update_at=datetime(2026, 11, 28, 3, 16, tzinfo=UTC),
        commander_id=ALICE,
        commander_name="alice",
        acknowledged_at=datetime(2026, 11, 28, 3, 11, tzinfo=UTC),
        checklist={
            ChecklistItem.ISOLATE: Tick(DANA, "dana", datetime(2026, 11, 28, 3, 12, tzinfo=UTC)),
            ChecklistItem.SNAPSHOT: Tick(DANA, "dana", datetime(2026, 11, 28, 3, 15, tzinfo=UTC)),
        },
        updates=2,
        github_number=318,
        github_url="https://github.com/hyper-hash/operations/issues/318",
        card_channel_id=100000000000000011,
        card_message_id=400000000000000001,
        thread_id=300000000000000042,
    )


def _probe(
    name: str, kind: TargetKind, latency: float | None, reason: str | None = None, **figures: Any
) -> ProbeResult:
    at = NOW - timedelta(seconds=2)
    return ProbeResult(name, kind, reason is None, latency, at, reason, figures)


def _probes() -> list[ProbeResult]:
    height = 871234
    results = [
        _probe(
            "core",
            TargetKind.CORE,
            38.0,
            block_height=height,
            template_latency_ms=182.0,
            rtt_ms=38.0,
            agent_status="ok",
        ),
        _probe(
            "bitcoind",
            TargetKind.BITCOIND,
            12.0,
            block_height=height,
            headers=height,
            chain="main",
            initial_block_download=False,
        ),
        _probe(
            "lnd",
            TargetKind.LND,
            64.0,
            block_height=height,
            synced_to_chain=True,
            channels=12,
            active_channels=11,
            capacity_sat=184_500_000,
        ),
        _probe(
            "prometheus",
            TargetKind.PROMETHEUS,
            21.0,
            pool_hashrate=1.21e15,
            pool_hashrate_24h_avg=1.52e15,
            share_rate=0.0,
            template_latency_ms=182.0,
        ),
        _probe("node-07", TargetKind.NODE, None, "no answer within 2 s"),
        _probe(
            "node-11",
            TargetKind.NODE,
            212.0,
            block_height=height - 3,
            template_latency_ms=240.0,
            rtt_ms=212.0,
            disk_used_percent=64.0,
            seconds_since_share=780.0,
            agent_status="degraded",
        ),
        _probe(
            "node-03",
            TargetKind.NODE,
            41.0,
            block_height=height,
            template_latency_ms=21.0,
            rtt_ms=41.0,
            disk_used_percent=91.0,
            seconds_since_share=4.0,
            agent_status="ok",
        ),
    ]
    for number, rtt in zip(
        (1, 2, 4, 5, 6, 8, 9, 10), (22, 35, 28, 47, 19, 52, 31, 26), strict=True
    ):
        results.append(
            _probe(
                f"node-{number:02d}",
                TargetKind.NODE,
                float(rtt),
                block_height=height,
                template_latency_ms=float(12 + number),
                rtt_ms=float(rtt),
                disk_used_percent=float(40 + 3 * number),
                seconds_since_share=float(number % 5 + 1),
                agent_status="ok",
            )
        )
    return results


def sample() -> Sample:
    acked = {
        "acked_by_id": DANA,
        "acked_by_name": "dana",
        "acked_at": datetime(2026, 11, 28, 3, 10, 5, tzinfo=UTC),
    }
    return Sample(
        alert_firing=_alert_group(AlertStatus.FIRING),
        alert_resolved=_alert_group(AlertStatus.RESOLVED, **acked, incident_ref="INC-2026-0042"),
        incident=_incident(),
        probes=_probes(),
    )


def _release() -> tuple[Release, ReleaseManifest]:
    manifest = ReleaseManifest.model_validate(
        {
            "version": "2.4.1",
            "released_at": "2026-11-27T15:40:00+00:00",
            "channel": "stable",
            "components": [
                {
                    "name": "hh-core",
                    "version": "2.4.1",
                    "url": "https://releases.hyperhash.invalid/2.4.1/hh-core.tar.gz",
                    "sha256": "9f2d6c1e0b7a4f3d8e5c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e",
                },
                {
                    "name": "hh-node-agent",
                    "version": "2.4.1",
                    "url": "https://releases.hyperhash.invalid/2.4.1/hh-node-agent.tar.gz",
                    "sha256": "1c3e5a7b9d0f2e4a6c8b0d2f4e6a8c0b2d4f6e8a0c2b4d6f8e0a2c4b6d8f0e2a",
                },
            ],
            "notes": "**Template relay**: reconnects within 2 s when the Core restarts "
            "(was: 30 s).\n**Node agent**: reports `disk_used_percent` for every mount.\n"
            "Upgrade order: Core first, then the nodes.",
        }
    )
    release = Release(
        id=17,
        version=manifest.version,
        channel=manifest.channel,
        released_at=manifest.released_at,
        manifest=manifest.model_dump_json(),
        key_id="5A3C9E1F0B2D4E68",
        trusted_comment="timestamp:1795794000\tfile:manifest.json\thashed",
        source="https://releases.hyperhash.invalid/2.4.1/manifest.json",
        announced_by=ALICE,
        announced_by_name="alice",
        announced_at=datetime(2026, 11, 27, 16, 2, tzinfo=UTC),
    )
    return release, manifest


# -- the pictures -------------------------------------------------------------------------------


def shot_alert_firing(s: Sample) -> Shot:
    group = s.alert_firing
    posted = group.first_seen_at
    return Shot(
        name="alert-firing",
        channel="alerts",
        at=posted,
        payload=payload(
            content=message_content([group], [CORE_OPS, NODE_OPS]),
            embeds=[group_embed(group, posted)],
            view=group_view(group, posted),
        ),
        caption="An alert group firing in #alerts, with its buttons",
    )


def shot_alert_resolved(s: Sample) -> Shot:
    """The message posted for the firing group, edited: the delivery edits embeds and view
    only, so the content (and its mentions) stays as it was posted."""
    group = s.alert_resolved
    at = group.resolved_at or NOW
    posted = s.alert_firing.first_seen_at
    return Shot(
        name="alert-resolved",
        channel="alerts",
        at=at,
        posted=posted,
        payload=payload(
            content=message_content([s.alert_firing], [CORE_OPS, NODE_OPS]),
            embeds=[group_embed(group, at)],
            view=group_view(group, at),
        ),
        caption="The same message, edited when the group resolves",
    )


def shot_incident_card(s: Sample) -> Shot:
    incident = s.incident
    return Shot(
        name="incident-card",
        channel="operations",
        at=incident.last_update_at,
        payload=payload(
            content=card_content(incident, [CORE_OPS]),
            embeds=[card(incident, github_configured=True)],
        ),
        caption="A Sev 1 incident card in #operations",
    )


def shot_incident_thread(s: Sample) -> Shot:
    incident = s.incident
    return Shot(
        name="incident-checklist",
        channel=thread_name(incident),
        at=incident.last_update_at,
        posted=incident.opened_at,
        payload=payload(content=checklist_intro(incident), view=checklist_view(incident)),
        caption="The incident thread's checklist buttons",
    )


def shot_health(s: Sample) -> Shot:
    pages = overview_pages(overview(s.probes, NOW))
    return Shot(
        name="health-operator",
        channel="operations",
        at=NOW,
        invocation=Invocation("alice", "/health"),
        payload=payload(embeds=pages[:1]),
        caption="/health for an operator in #operations",
    )


def shot_status(s: Sample) -> Shot:
    notice = miners_notice_text(s.incident, resolved=False)
    status = public_status(overview(s.probes, NOW - timedelta(seconds=9)), notice=notice)
    return Shot(
        name="status-miners",
        channel="miners",
        at=NOW,
        invocation=Invocation("sam_miner", "/status"),
        payload=payload(embeds=[status_embed(status)]),
        caption="/status for a miner in #miners",
    )


def shot_release(_: Sample) -> Shot:
    release, manifest = _release()
    rendered = release_notice(notice_data(release, manifest))
    return Shot(
        name="release-notice",
        channel="dev-log",
        at=release.announced_at,
        # The notice asks Core Ops (the outbox puts the notice's role mentions first).
        payload=payload(
            content=f"<@&{CORE_OPS}> {rendered.content}",
            embeds=rendered.embeds,
            view=rendered.view(),
        ),
        caption="A verified release notice in #dev-log",
    )


def shot_release_approved(_: Sample) -> Shot:
    """The same notice once Approve rollout was pressed: the button edits content and embed."""
    release, manifest = _release()
    approved_at = datetime(2026, 11, 27, 16, 31, tzinfo=UTC)
    rendered = release_text(
        notice_data(release, manifest), state=MessageState.APPROVED, decided_by="dana"
    )
    view = discord.ui.View(timeout=None)
    view.add_item(
        ApproveRolloutButton.build(
            release.id,
            label="Rollout approved by dana",
            style=discord.ButtonStyle.secondary,
            disabled=True,
        )
    )
    return Shot(
        name="release-approved",
        channel="dev-log",
        at=approved_at,
        posted=release.announced_at,
        payload=payload(content=rendered.content, embeds=rendered.embeds, view=view),
        caption="The release notice, edited once a second Core Ops member approved",
    )


def shot_incident_resolved(s: Sample) -> Shot:
    """The card, edited by the outbox once the incident is resolved."""
    resolved_at = datetime(2026, 11, 28, 4, 2, tzinfo=UTC)
    incident = replace(
        s.incident,
        status=IncidentStatus.RESOLVED,
        resolved_at=resolved_at,
        last_update_at=resolved_at,
        cause="The template relay kept a stale Core connection after the 2.4.0 restart.",
        resolution="Relay restarted on both nodes; 2.4.1 reconnects within 2 s.",
        report_due_at=resolved_at + timedelta(hours=48),
        checklist={
            **s.incident.checklist,
            ChecklistItem.NOTIFY: Tick(ALICE, "alice", datetime(2026, 11, 28, 3, 20, tzinfo=UTC)),
        },
    )
    return Shot(
        name="incident-card-resolved",
        channel="operations",
        at=resolved_at + timedelta(minutes=1),
        posted=incident.opened_at,
        payload=payload(
            content=card_content(incident, [CORE_OPS]),
            embeds=[card(incident, github_configured=True)],
        ),
        caption="The same card once the incident is resolved",
    )


def _grant() -> Grant:
    return Grant(
        id=9,
        member_id=SAM,
        member_name="sam_miner",
        role=OpsRole.CORE_OPS,
        status=GrantStatus.PENDING,
        reason="Joins the night rota from December",
        granted_by_id=ALICE,
        granted_by_name="alice",
        requested_at=datetime(2026, 11, 28, 2, 40, tzinfo=UTC),
        days=90,
    )


def shot_grant_request(_: Sample) -> Shot:
    grant = _grant()
    rendered = access_templates[NoticeTemplate.ACCESS_APPROVAL_REQUEST](
        {
            "grant_id": grant.id,
            "member_id": grant.member_id,
            "member_name": grant.member_name,
            "role": grant.role.value,
            "reason": grant.reason,
            "granted_by_name": grant.granted_by_name,
            "days": grant.days,
            "approval_expires_at": (grant.requested_at + timedelta(hours=24)).isoformat(),
        }
    )
    return Shot(
        name="grant-request",
        channel="operations",
        at=grant.requested_at,
        payload=payload(
            content=f"<@&{CORE_OPS}> {rendered.content}",
            embeds=rendered.embeds,
            view=rendered.view(),
        ),
        caption="A Core Ops grant awaiting the second Core Ops member",
    )


def shot_grant_approved(_: Sample) -> Shot:
    grant = _grant()
    approved_at = datetime(2026, 11, 28, 3, 1, tzinfo=UTC)
    active = replace(
        grant,
        status=GrantStatus.ACTIVE,
        granted_at=approved_at,
        expires_at=approved_at + timedelta(days=90),
    )
    rendered = grant_decision(active, approved=True, by_name="dana")
    return Shot(
        name="grant-approved",
        channel="operations",
        at=approved_at,
        posted=grant.requested_at,
        payload=payload(content=rendered.content, embeds=rendered.embeds),
        caption="The same request once approved",
    )


def shot_refusal_miner(_: Sample) -> Shot:
    denial = PermissionDenied(
        "alerts:expire", [OpsRole.CORE_OPS, OpsRole.NODE_OPS], label="Expire silence"
    )
    return Shot(
        name="refusal-miner",
        channel="alerts",
        at=NOW,
        ephemeral=True,
        payload=payload(content=NoOpsRole(denial).user_message),
        caption="A miner presses Expire silence: named by its label, pointed to /status",
    )


def shot_refusal_locked_out(_: Sample) -> Shot:
    until = NOW + timedelta(minutes=43)
    return Shot(
        name="refusal-locked-out",
        channel="operations",
        at=NOW,
        invocation=Invocation("dana", "/incident open"),
        ephemeral=True,
        payload=payload(content=LockedOut(until).user_message),
        caption="A refusal during a lockout says until when and who can lift it",
    )


# -- #dev-log: CI/CD from GitHub's webhook (bodies in the shape GitHub sends, tests/fixtures/github)

GITHUB_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "github"


def _github(name: str, event: str) -> Any:
    return parse_event(event, (GITHUB_FIXTURES / name).read_bytes())


def _failing() -> dict[str, Any]:
    failed = _github("workflow_run_failure.json", "workflow_run")
    assert isinstance(failed, WorkflowRunEvent)
    data = failed_data(None, failed, received=NOW - timedelta(minutes=42))
    return failed_data(data, failed, received=NOW - timedelta(minutes=12))


def shot_devlog_failing(_: Sample) -> Shot:
    rendered = workflow(_failing())
    return Shot(
        name="devlog-failing",
        channel="dev-log",
        at=NOW,
        payload=payload(content=rendered.content, embeds=rendered.embeds),
        caption="A workflow failing on the default branch: one message, kept up to date",
    )


def shot_devlog_green(_: Sample) -> Shot:
    passed = _github("workflow_run_success.json", "workflow_run")
    assert isinstance(passed, WorkflowRunEvent)
    data = passed_data(_failing(), passed, received=NOW)
    data["failed_for_seconds"] = failing_seconds(data, NOW)
    rendered = workflow(data)
    return Shot(
        name="devlog-green",
        channel="dev-log",
        at=NOW,
        posted=NOW - timedelta(minutes=42),
        payload=payload(content=rendered.content, embeds=rendered.embeds),
        caption="The same message, edited to green when a later run passes",
    )


def shot_devlog_merges(_: Sample) -> Shot:
    merged = _github("pull_request_merged.json", "pull_request")
    assert isinstance(merged, PullRequestEvent)
    first = merge_line(merged, received=NOW - timedelta(minutes=6))
    second = {**first, "number": first["number"] + 1, "title": "Pool: retry template fetch once"}
    rendered = merges({"repository": merged.repository.full_name, "merges": [first, second]})
    return Shot(
        name="devlog-merges",
        channel="dev-log",
        at=NOW,
        payload=payload(content=rendered.content, embeds=rendered.embeds),
        caption="Pull requests merged into the default branch: a burst is one message, edited",
    )


SHOTS: tuple[Callable[[Sample], Shot], ...] = (
    shot_alert_firing,
    shot_alert_resolved,
    shot_incident_card,
    shot_incident_thread,
    shot_health,
    shot_status,
    shot_release,
    shot_release_approved,
    shot_incident_resolved,
    shot_grant_request,
    shot_grant_approved,
    shot_refusal_miner,
    shot_refusal_locked_out,
    shot_devlog_failing,
    shot_devlog_green,
    shot_devlog_merges,
)


def build_shots() -> list[Shot]:
    """Every picture's payload (discord.py's views want a running event loop: see main)."""
    s = sample()
    return [make(s) for make in SHOTS]


# -- Discord markdown, as far as the bot's messages use it ------------------------------------

_PLACEHOLDER = "\ue000{}\ue001"
_ESCAPABLE = r"\\*_`~|>#\-\[\]()<:@!.+="
_TS_FORMATS = {
    "t": "%H:%M",
    "T": "%H:%M:%S",
    "d": "%d/%m/%Y",
    "D": "%-d %B %Y",
    "f": "%-d %B %Y %H:%M",
    "F": "%A, %-d %B %Y %H:%M",
}


def relative(moment: datetime, now: datetime) -> str:
    """Discord's <t:…:R>, as a viewer at `now` reads it."""
    seconds = (moment - now).total_seconds()
    amount = abs(seconds)
    sizes = ((86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))
    size, unit = next((s, u) for s, u in sizes if amount >= s or s == 1)
    count = int(amount // size)
    text = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def timestamp_text(unix: int, style: str, now: datetime) -> str:
    moment = datetime.fromtimestamp(unix, tz=UTC)
    if style == "R":
        return relative(moment, now)
    return moment.strftime(_TS_FORMATS.get(style, _TS_FORMATS["f"]))


class Markdown:
    """Discord's markdown to HTML: code, escapes, links, bold/italic/underline/strike, mentions,
    timestamps. Enough for what the bot sends; not a full implementation."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.kept: list[str] = []

    def _keep(self, rendered: str) -> str:
        self.kept.append(rendered)
        return _PLACEHOLDER.format(len(self.kept) - 1)

    def _restore(self, text: str) -> str:
        pattern = re.compile("\ue000(\\d+)\ue001")
        while pattern.search(text):
            text = pattern.sub(lambda m: self.kept[int(m.group(1))], text)
        return text

    def render(self, text: str) -> str:
        text = re.sub(
            r"```(?:[a-z]*\n)?(.*?)```",
            lambda m: self._keep(f"<pre>{html.escape(m.group(1).strip(chr(10)))}</pre>"),
            text,
            flags=re.S,
        )
        text = re.sub(
            r"`([^`\n]+)`", lambda m: self._keep(f"<code>{html.escape(m.group(1))}</code>"), text
        )
        text = re.sub(rf"\\([{_ESCAPABLE}])", lambda m: self._keep(html.escape(m.group(1))), text)
        text = re.sub(r"<t:(-?\d+)(?::([tTdDfFR]))?>", self._timestamp, text)
        text = re.sub(r"<@&(\d+)>", self._role, text)
        text = re.sub(r"<@!?(\d+)>", self._user, text)
        text = re.sub(r"<#(\d+)>", self._channel, text)
        text = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", self._link, text)
        text = html.escape(text, quote=False)
        for pattern, tag in (
            (r"\*\*(.+?)\*\*", "strong"),
            (r"__(.+?)__", "u"),
            (r"~~(.+?)~~", "s"),
            (r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", "em"),
            (r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])", "em"),
        ):
            text = re.sub(pattern, rf"<{tag}>\1</{tag}>", text, flags=re.S)
        text = text.replace("\n", "<br>")
        return self._restore(text)

    def _timestamp(self, m: re.Match[str]) -> str:
        shown = timestamp_text(int(m.group(1)), m.group(2) or "f", self.now)
        return self._keep(f'<span class="ts">{html.escape(shown)}</span>')

    def _role(self, m: re.Match[str]) -> str:
        name, colour = ROLES.get(int(m.group(1)), ("unknown-role", "#949ba4"))
        return self._keep(
            f'<span class="mention" style="color:{colour};background:{colour}26">'
            f"@{html.escape(name)}</span>"
        )

    def _user(self, m: re.Match[str]) -> str:
        name = USERS.get(int(m.group(1)), "unknown-user")
        return self._keep(f'<span class="mention">@{html.escape(name)}</span>')

    def _channel(self, m: re.Match[str]) -> str:
        name = CHANNELS.get(int(m.group(1)), "unknown")
        return self._keep(f'<span class="mention"># {html.escape(name)}</span>')

    def _link(self, m: re.Match[str]) -> str:
        inner = Markdown(self.now).render(m.group(1))
        return self._keep(f'<a href="{html.escape(m.group(2))}">{inner}</a>')


# -- the page -----------------------------------------------------------------------------------

BUTTON_STYLES = {1: "primary", 2: "secondary", 3: "success", 4: "danger", 5: "link"}

CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #313338; color: #dbdee1; width: 760px;
  font: 15px/1.375 "Noto Sans", "DejaVu Sans", "Noto Color Emoji", sans-serif; }
.bar { height: 48px; display: flex; align-items: center; padding: 0 16px; color: #f2f3f5;
  font-weight: 600; border-bottom: 1px solid #1f2023; background: #313338; }
.bar .hash { color: #80848e; font-size: 22px; margin-right: 8px; font-weight: 400; }
.msg { display: flex; padding: 16px 16px 20px 16px; }
.avatar { width: 40px; height: 40px; border-radius: 50%; flex: none; margin-right: 16px;
  background: #f7931a; color: #fff; font-weight: 700; font-size: 14px; display: flex;
  align-items: center; justify-content: center; margin-top: 2px; }
.body { min-width: 0; flex: 1; }
.invocation { display: flex; align-items: center; font-size: 14px; color: #b5bac1;
  margin: 0 0 4px -30px; }
.invocation .curve { width: 24px; height: 10px; border-left: 2px solid #4e5058;
  border-top: 2px solid #4e5058; border-top-left-radius: 6px; margin: 8px 6px 0 0; }
.invocation .mini { width: 16px; height: 16px; border-radius: 50%; background: #5865f2;
  color: #fff; font-size: 10px; display: inline-flex; align-items: center;
  justify-content: center; margin-right: 4px; }
.invocation .who { color: #f2f3f5; font-weight: 500; margin-right: 4px; }
.invocation .cmd { color: #00a8fc; margin-left: 4px; }
.head { display: flex; align-items: baseline; }
.name { color: #f2f3f5; font-weight: 600; }
.tag { background: #5865f2; color: #fff; font-size: 10px; font-weight: 600; border-radius: 3px;
  padding: 1px 4px; margin-left: 6px; position: relative; top: -1px; }
.time { color: #949ba4; font-size: 12px; margin-left: 8px; }
.content { color: #dbdee1; word-wrap: break-word; }
.embed { display: flex; max-width: 520px; margin-top: 6px; background: #2b2d31;
  border-radius: 4px; overflow: hidden; }
.embed .stripe { width: 4px; flex: none; }
.embed .inner { padding: 8px 16px 16px 12px; min-width: 0; flex: 1; }
.embed .title { color: #f2f3f5; font-weight: 600; font-size: 16px; margin-top: 8px; }
.embed .title a { color: #00a8fc; }
.embed .desc { font-size: 14px; margin-top: 8px; line-height: 1.375; }
.fields { display: grid; grid-template-columns: repeat(12, 1fr); gap: 8px 12px;
  margin-top: 8px; }
.field { font-size: 14px; min-width: 0; }
.field .fname { color: #f2f3f5; font-weight: 600; margin-bottom: 2px; }
.footer { font-size: 12px; color: #b5bac1; margin-top: 8px; }
a { color: #00a8fc; text-decoration: none; }
code { font-family: "Noto Mono", "DejaVu Sans Mono", monospace; font-size: 85%;
  background: #1e1f22; border-radius: 3px; padding: 1px 3px; }
pre { font-family: "Noto Mono", "DejaVu Sans Mono", monospace; font-size: 12px;
  background: #1e1f22; border: 1px solid #1e1f22; border-radius: 4px; padding: 7px;
  margin: 6px 0 0 0; white-space: pre-wrap; }
.ts { background: rgba(255,255,255,0.06); border-radius: 3px; padding: 0 2px; }
.mention { color: #c9cdfb; background: rgba(88,101,242,0.3); border-radius: 3px;
  padding: 0 2px; font-weight: 500; }
.row { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.button { height: 32px; padding: 2px 16px; border-radius: 3px; font-size: 14px;
  font-weight: 500; color: #fff; display: flex; align-items: center; white-space: nowrap; }
.button.primary { background: #5865f2; }
.button.secondary { background: #4e5058; }
.button.success { background: #248046; }
.button.danger { background: #da373c; }
.button.link { background: #4e5058; }
.button.disabled { opacity: 0.5; }
.select { width: 400px; height: 40px; background: #1e1f22; border-radius: 4px;
  color: #949ba4; display: flex; align-items: center; padding: 0 12px; font-size: 14px; }
.edited { font-size: 10px; color: #949ba4; margin-left: 4px; }
.ephemeral { font-size: 12px; color: #949ba4; margin-top: 6px; }
.ephemeral a { color: #00a8fc; }
"""


def _clock(moment: datetime, now: datetime) -> str:
    day = (now.date() - moment.date()).days
    if day == 0:
        return f"Today at {moment:%H:%M}"
    if day == 1:
        return f"Yesterday at {moment:%H:%M}"
    return f"{moment:%d/%m/%Y %H:%M}"


def _embed_html(embed: Mapping[str, Any], md: Markdown, now: datetime) -> str:
    colour = embed.get("color")
    stripe = f"#{colour:06x}" if isinstance(colour, int) else "#1e1f22"
    parts: list[str] = []
    title = embed.get("title")
    if title:
        text = md.render(title)
        if embed.get("url"):
            text = f'<a href="{html.escape(embed["url"])}">{text}</a>'
        parts.append(f'<div class="title">{text}</div>')
    if embed.get("description"):
        parts.append(f'<div class="desc">{md.render(embed["description"])}</div>')
    fields = embed.get("fields") or []
    if fields:
        cells: list[str] = []
        for group in _field_rows(fields):
            span = 12 // len(group)
            for f in group:
                cells.append(
                    f'<div class="field" style="grid-column: span {span}">'
                    f'<div class="fname">{md.render(f["name"])}</div>'
                    f'<div class="fvalue">{md.render(f["value"])}</div></div>'
                )
        parts.append(f'<div class="fields">{"".join(cells)}</div>')
    footer_bits: list[str] = []
    if embed.get("footer", {}).get("text"):
        footer_bits.append(html.escape(embed["footer"]["text"]))
    if embed.get("timestamp"):
        footer_bits.append(_clock(datetime.fromisoformat(embed["timestamp"]), now))
    if footer_bits:
        parts.append(f'<div class="footer">{" • ".join(footer_bits)}</div>')
    return (
        f'<div class="embed"><div class="stripe" style="background:{stripe}"></div>'
        f'<div class="inner">{"".join(parts)}</div></div>'
    )


def _field_rows(fields: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Discord's layout: up to three inline fields side by side, others on a row of their own."""
    rows: list[list[Mapping[str, Any]]] = []
    for f in fields:
        if f.get("inline") and rows and rows[-1][0].get("inline") and len(rows[-1]) < 3:
            rows[-1].append(f)
        else:
            rows.append([f])
    return rows


def _components_html(rows: Sequence[Mapping[str, Any]]) -> str:
    out: list[str] = []
    for row in rows:
        items: list[str] = []
        for item in row.get("components", []):
            if item.get("type") == 2:
                style = BUTTON_STYLES.get(int(item.get("style", 2)), "secondary")
                disabled = " disabled" if item.get("disabled") else ""
                emoji = item.get("emoji") or {}
                label = html.escape(str(emoji.get("name", "")) + " " if emoji else "")
                label += html.escape(str(item.get("label", "")))
                items.append(f'<div class="button {style}{disabled}">{label.strip()}</div>')
            elif item.get("type") == 3:
                placeholder = html.escape(str(item.get("placeholder") or "Make a selection"))
                items.append(f'<div class="select">{placeholder} ▾</div>')
        out.append(f'<div class="row">{"".join(items)}</div>')
    return "".join(out)


def page(shot: Shot) -> str:
    """The HTML of one picture: channel bar, the bot's message with its embeds and components."""
    md = Markdown(shot.at)
    data = shot.payload
    body: list[str] = []
    if shot.invocation is not None:
        user = html.escape(shot.invocation.user)
        body.append(
            '<div class="invocation"><span class="curve"></span>'
            f'<span class="mini">{user[:1].upper()}</span><span class="who">{user}</span>'
            f'used<span class="cmd">{html.escape(shot.invocation.command)}</span></div>'
        )
    body.append(
        f'<div class="head"><span class="name">{BOT_NAME}</span><span class="tag">APP</span>'
        f'<span class="time">{_clock(shot.posted or shot.at, shot.at)}</span></div>'
    )
    edited = '<span class="edited">(edited)</span>' if shot.edited else ""
    if data.get("content"):
        body.append(f'<div class="content">{md.render(data["content"])}{edited}</div>')
    for embed in data.get("embeds", []):
        body.append(_embed_html(embed, md, shot.at))
    body.append(_components_html(data.get("components", [])))
    if shot.ephemeral:
        body.append('<div class="ephemeral">👁 Only you can see this • <a>Dismiss message</a></div>')
    hash_sign = "#" if not shot.channel.startswith("INC-") else "🧵"
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(shot.name)}</title><style>{CSS}</style></head><body>"
        f'<div class="bar"><span class="hash">{hash_sign}</span>{html.escape(shot.channel)}</div>'
        f'<div class="msg"><div class="avatar">HH</div><div class="body">{"".join(body)}'
        "</div></div></body></html>"
    )


# -- screenshots ----------------------------------------------------------------------------------

WIDTH = 760
HEIGHT = 1600
BACKGROUND = (0x31, 0x33, 0x38)
BOTTOM_MARGIN = 16
SIZE_LIMIT = 140_000


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("pictures: chromium is not installed (Debian: apt-get install chromium)")


def screenshot(html_path: Path, png_path: Path, browser: str, profile: Path) -> None:
    raw = png_path.with_suffix(".raw.png")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--force-device-scale-factor=1",
            "--force-color-profile=srgb",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={raw}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(raw) as image:
        picture = image.convert("RGB")
    raw.unlink()
    png_path.write_bytes(png_bytes(crop(picture)))


def crop(picture: Image.Image) -> Image.Image:
    """Cut the empty background below the message (the window is taller than any message)."""
    background = Image.new("RGB", picture.size, BACKGROUND)
    box = ImageChops.difference(picture, background).getbbox()
    bottom = picture.height if box is None else min(box[3] + BOTTOM_MARGIN, picture.height)
    return picture.crop((0, 0, picture.width, bottom))


def png_bytes(picture: Image.Image) -> bytes:
    """The PNG file, under ~150 KB: a tall picture is saved with a 256-colour palette."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    if buffer.tell() > SIZE_LIMIT:
        buffer = io.BytesIO()
        palette = picture.quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help="only these pictures (default: all)")
    parser.add_argument("--html-only", action="store_true", help="write the HTML, no PNG")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)

    async def build() -> list[Shot]:
        return build_shots()

    shots = asyncio.run(build())
    unknown = set(args.names) - {s.name for s in shots}
    if unknown:
        parser.error(f"unknown picture(s): {', '.join(sorted(unknown))}")
    chosen = [s for s in shots if not args.names or s.name in args.names]
    args.out.mkdir(parents=True, exist_ok=True)
    browser = None if args.html_only else chromium()
    with tempfile.TemporaryDirectory(prefix="hh-pictures-") as tmp:
        for shot in chosen:
            html_path = (args.out if args.html_only else Path(tmp)) / f"{shot.name}.html"
            html_path.write_text(page(shot), encoding="utf-8")
            if browser is None:
                print(html_path)
                continue
            png = args.out / f"{shot.name}.png"
            screenshot(html_path, png, browser, Path(tmp) / "profile")
            print(
                f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: "
                f"{png.stat().st_size // 1024} KB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
