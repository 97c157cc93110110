"""Embeds for the access area: pure functions of service results, tested against the limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import discord

from bot.discord.sending import FIELDS_MAX, Rendered, fit_embed, truncate
from bot.discord.state import MessageState, stated
from bot.domain.access import Grant, GrantStatus, lockout_until
from bot.domain.audit import AuditRecord
from bot.domain.errors import display_action, named_action
from bot.domain.outbox import NoticeTemplate
from bot.domain.roles import OpsRole
from bot.domain.units import plural
from bot.services.access import WhoAmI
from cogs.access.texts import grant_decision as grant_decision
from cogs.access.texts import ts as ts
from cogs.access.texts import who as who
from cogs.access.views import (
    ApproveGrantButton,
    RejectGrantButton,
    ReviewKeepButton,
    ReviewRevokeButton,
)

COLOUR_OPS = discord.Colour.blue()
COLOUR_MINER = discord.Colour.light_grey()
COLOUR_WARN = discord.Colour.orange()
COLOUR_BAD = discord.Colour.red()
COLOUR_OK = discord.Colour.green()


def role_label(value: str) -> str:
    return OpsRole(value).label


# -- replies to commands ----------------------------------------------------------------------


def whoami_embed(
    info: WhoAmI,
    *,
    display_name: str,
    grants: Sequence[Grant] = (),
    discord_roles: Iterable[OpsRole] = (),
) -> discord.Embed:
    """Roles and grants first (a Discord role held without a grant is called out: it gives no
    access), then the commands, one line per area."""
    has_roles = bool(info.roles) or info.actor.is_owner
    active = {g.role: g for g in grants if g.status is GrantStatus.ACTIVE}
    lines = [_grant_line(active[r]) if r in active else f"**{r.label}**" for r in info.roles]
    lines += [_grant_line(g) for g in grants if g.status is GrantStatus.PENDING]
    for role in sorted(set(discord_roles) - set(info.roles), key=lambda r: r.rank):
        lines.append(
            f"⚠️ **{role.label}**: you hold the Discord role but no grant, so it gives no access. "
            "A Core Ops member grants it with `/access grant`."
        )
    if info.actor.is_owner:
        lines.append(
            "🔑 **Break-glass owner** (`discord.owner_ids`): every permission check passes."
        )
    if not lines:
        ended = max(grants, key=lambda g: g.ended_at or g.requested_at) if grants else None
        lines.append(
            "No ops role: miner access. `/status` shows the pool's state."
            + (f"\nLast grant: {_grant_line(ended)}" if ended else "")
        )
    embed = discord.Embed(
        title=truncate(f"Who am I: {display_name}", 256),
        description=truncate("\n".join(lines), 4096),
        colour=COLOUR_OPS if has_roles else COLOUR_MINER,
    )
    embed.add_field(name="Commands you may use", value=command_lines(info.allowed), inline=False)
    embed.set_footer(text="Ops roles are granted by Core Ops and expire after 90 days.")
    return fit_embed(embed)


def command_lines(allowed: Iterable[str]) -> str:
    """`/incident` open · update · resolve: one line per command group, single commands last."""
    groups: dict[str, list[str]] = {}
    single: list[str] = []
    for action in allowed:
        if ":" in action:
            continue  # a button, not a command
        group, _, sub = action.partition(" ")
        if sub:
            groups.setdefault(group, []).append(sub)
        else:
            single.append(display_action(action))
    lines = [f"`/{group}` {' · '.join(subs)}" for group, subs in groups.items()]
    if single:
        lines.append(" · ".join(f"`{name}`" for name in single))
    return truncate("\n".join(lines), 1024) or "none"


def _grant_line(grant: Grant) -> str:
    if grant.status is GrantStatus.PENDING:
        return f"**{grant.role.label}**: waiting for a second Core Ops approval"
    if grant.status is GrantStatus.ACTIVE:
        return (
            f"**{grant.role.label}**: expires {ts(grant.expires_at)} ({ts(grant.expires_at, 'R')})"
        )
    return f"**{grant.role.label}**: {grant.status.value} {ts(grant.ended_at)}"


def grant_reply(grant: Grant, *, pending: bool) -> discord.Embed:
    if pending:
        embed = discord.Embed(
            title="Core Ops grant requested",
            description=(
                f"{who(grant.member_id, grant.member_name)} will hold **Core Ops** for "
                f"{grant.days} days once a second Core Ops member approves the request in "
                "#operations (two-person rule). The request lapses after 24 h."
            ),
            colour=COLOUR_WARN,
        )
    else:
        embed = discord.Embed(
            title=f"{grant.role.label} granted",
            description=(
                f"{who(grant.member_id, grant.member_name)} holds **{grant.role.label}** until "
                f"{ts(grant.expires_at)} ({ts(grant.expires_at, 'R')})."
            ),
            colour=COLOUR_OK,
        )
    embed.add_field(name="Reason", value=truncate(grant.reason, 1024), inline=False)
    return fit_embed(embed)


def renew_reply(grant: Grant) -> discord.Embed:
    return fit_embed(
        discord.Embed(
            title=f"{grant.role.label} renewed",
            description=(
                f"{who(grant.member_id, grant.member_name)} holds **{grant.role.label}** until "
                f"{ts(grant.expires_at)} ({ts(grant.expires_at, 'R')})."
            ),
            colour=COLOUR_OK,
        )
    )


def revoke_reply(grant: Grant, *, queued: bool) -> discord.Embed:
    text = f"{who(grant.member_id, grant.member_name)} no longer holds **{grant.role.label}**."
    if queued:
        text += " Discord is not answering: the role will be removed as soon as it does."
    return fit_embed(
        discord.Embed(title=f"{grant.role.label} revoked", description=text, colour=COLOUR_BAD)
    )


def grants_list(grants: Sequence[Grant], *, title: str) -> discord.Embed:
    embed = discord.Embed(title=truncate(title, 256), colour=COLOUR_OPS)
    if not grants:
        embed.description = "No grants match."
        return embed
    shown = grants[: FIELDS_MAX - 1]
    for grant in shown:
        embed.add_field(
            name=truncate(f"#{grant.id} {grant.member_name}: {grant.role.label}", 256),
            value=truncate(
                f"{_grant_line(grant)}\ngranted by {grant.granted_by_name}: {grant.reason}", 1024
            ),
            inline=False,
        )
    if len(grants) > len(shown):
        embed.set_footer(
            text=f"{len(grants) - len(shown)} more not shown: narrow with member or role"
        )
    return fit_embed(embed)


def audit_embed(records: Sequence[AuditRecord], *, title: str) -> discord.Embed:
    embed = discord.Embed(title=truncate(title, 256), colour=COLOUR_OPS)
    if not records:
        embed.description = "No audit rows match."
        return embed
    lines = []
    for record in records:
        target = f" → {record.target}" if record.target else ""
        lines.append(
            f"`#{record.id}` {ts(record.at, 'd')} {ts(record.at, 't')} **{record.action}** "
            f"{record.outcome} by {truncate(record.actor_name, 40)}{truncate(target, 80)}"
        )
    embed.description = truncate("\n".join(lines), 4096)
    return fit_embed(embed)


# -- notices (outbox templates) ---------------------------------------------------------------


def _approval_request(data: Mapping[str, Any]) -> Rendered:
    member = truncate(str(data["member_name"]), 60)
    shown = stated(
        MessageState.AWAITING,
        f"Core Ops grant for {member} (two-person rule)",
        f"a second Core Ops member approves or rejects it before "
        f"{ts(data.get('approval_expires_at'), 'R')}",
    )
    embed = discord.Embed(
        title=shown.title,
        description=(
            f"{data['granted_by_name']} asks to grant **Core Ops** to "
            f"{who(data['member_id'], data['member_name'])} for {data['days']} days.\n"
            f"A second Core Ops member (not the requester, not the member) must approve before "
            f"{ts(data.get('approval_expires_at'))} ({ts(data.get('approval_expires_at'), 'R')})."
        ),
        colour=shown.colour,
    )
    embed.add_field(name="Reason", value=truncate(str(data["reason"]), 1024), inline=False)
    grant_id = int(data["grant_id"])
    return Rendered(
        content=shown.content,
        embeds=[fit_embed(embed)],
        items=[ApproveGrantButton.make(grant_id), RejectGrantButton.make(grant_id)],
    )


def _notice(title: str, description: str, colour: discord.Colour) -> Rendered:
    embed = discord.Embed(title=truncate(title, 256), description=description, colour=colour)
    return Rendered(embeds=[fit_embed(embed)])


def _expired(data: Mapping[str, Any]) -> Rendered:
    label = role_label(data["role"])
    return _notice(
        f"{label} grant expired",
        f"{who(data['member_id'], data['member_name'])} no longer holds **{label}** "
        f"(expired {ts(data.get('expires_at'))}). Grant it again with `/access grant` if it is "
        "still needed.",
        COLOUR_MINER,
    )


def _expiry_kept(data: Mapping[str, Any]) -> Rendered:
    return _notice(
        f"{role_label(data['role'])} grant expired but was kept",
        f"The grant of {who(data['member_id'], data['member_name'])} expired "
        f"{ts(data.get('expires_at'))}, but automation never removes the {data['why']}. "
        "Renew it with `/access renew` (or grant Core Ops to someone else).",
        COLOUR_WARN,
    )


def _expiry_reminder(data: Mapping[str, Any]) -> Rendered:
    days = int(data["days_left"])
    label = role_label(data["role"])
    expires = data.get("expires_at")
    return _notice(
        f"Your {label} access expires in {plural(days, 'day')}",
        f"Your **{label}** grant in the Hyper Hash server expires {ts(expires)} "
        f"({ts(expires, 'R')}). Ask a Core Ops member to `/access renew` it if you still need "
        "it (manual §18: credentials expire after 90 days).",
        COLOUR_WARN,
    )


def _member_left(data: Mapping[str, Any]) -> Rendered:
    roles = ", ".join(role_label(r) for r in data.get("roles", []))
    return _notice(
        "Member left: grants revoked",
        f"{who(data['member_id'], data['member_name'])} left the server; their grants ended "
        f"at once: {roles}.",
        COLOUR_MINER,
    )


DRIFT_LINES = 20


def _drift(data: Mapping[str, Any]) -> Rendered:
    """One message per look (start-up: every member); a notice queued by an older version
    carries a single finding at the top level."""
    findings = list(data.get("findings") or [data])
    count = len(findings)
    if count == 1:
        title = f"Access drift: {role_label(findings[0]['role'])} without a grant"
    else:
        title = f"Access drift: {count} ops roles held without a grant"
    lines = []
    for finding in findings[:DRIFT_LINES]:
        if finding.get("removed"):
            outcome = "removed"
        elif finding.get("kept_because"):
            outcome = f"left in place: the {finding['kept_because']}"
        else:
            outcome = "left in place (`[access] enforce` is off)"
        lines.append(
            f"• {who(finding['member_id'], finding['member_name'])}: "
            f"**{role_label(finding['role'])}**, {outcome}"
        )
    if count > DRIFT_LINES:
        lines.append(f"… and {count - DRIFT_LINES} more (the audit log has each one)")
    text = (
        "Roles given by hand in Discord grant nothing: permissions come from grants.\n"
        + "\n".join(lines)
        + "\nGrant what should stay with `/access grant`; `/access review` looks at every grant."
    )
    return _notice(title, text, COLOUR_WARN)


def _lockout(data: Mapping[str, Any]) -> Rendered:
    last = named_action(truncate(str(data["last_action"]), 64))
    return _notice(
        "Member locked out (3-strike rule)",
        f"{who(data['member_id'], data['member_name'])} was denied {data['strikes']} "
        f"privileged actions in a short time (last: {last}) and is locked out of them "
        f"{lockout_until(datetime.fromisoformat(str(data['until'])))}.",
        COLOUR_BAD,
    )


def _unlocked(data: Mapping[str, Any]) -> Rendered:
    member = who(data["member_id"], data["member_name"])
    return _notice("Lockout lifted", f"{data['by']} lifted the lockout of {member}.", COLOUR_OK)


def _review(data: Mapping[str, Any]) -> Rendered:
    items = data.get("items", [])
    embed = discord.Embed(
        title=truncate(
            f"Quarterly access review #{data['review_id']} ({data['page']}/{data['pages']})", 256
        ),
        description=(
            f"{data['total']} active grants to confirm before {ts(data['deadline'])} "
            f"({ts(data['deadline'], 'R')}). A Core Ops member who is not the holder decides "
            "each one; grants nobody confirms are revoked at the deadline (manual §18)."
        ),
        colour=COLOUR_OPS,
    )
    buttons: list[Any] = []
    for row, item in enumerate(items):
        embed.add_field(
            name=truncate(f"{item['member_name']}: {role_label(item['role'])}", 256),
            value=f"{who(item['member_id'], item['member_name'])}, "
            f"expires {ts(item.get('expires_at'))}",
            inline=False,
        )
        name = truncate(str(item["member_name"]), 40)
        buttons.append(ReviewKeepButton.make(int(item["item_id"]), f"Keep {name}", row=row))
        buttons.append(ReviewRevokeButton.make(int(item["item_id"]), f"Revoke {name}", row=row))
    return Rendered(
        content="Core Ops: the quarterly access review is open." if data["page"] == 1 else None,
        embeds=[fit_embed(embed)],
        items=buttons,
    )


def _review_summary(data: Mapping[str, Any]) -> Rendered:
    lines = [
        f"Kept: **{data['kept']}**",
        f"Revoked by reviewers: **{data['revoked']}**",
        f"Revoked for want of confirmation: **{data['auto_revoked']}**",
    ]
    if data.get("spared"):
        lines.append(f"Kept by the safety rules (owner, last Core Ops): **{data['spared']}**")
    return Rendered(
        embeds=[
            fit_embed(
                discord.Embed(
                    title=f"Access review #{data['review_id']} closed",
                    description="\n".join(lines),
                    colour=COLOUR_OK,
                )
            )
        ]
    )


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.ACCESS_APPROVAL_REQUEST: _approval_request,
    NoticeTemplate.ACCESS_EXPIRED: _expired,
    NoticeTemplate.ACCESS_EXPIRY_KEPT: _expiry_kept,
    NoticeTemplate.ACCESS_EXPIRY_REMINDER: _expiry_reminder,
    NoticeTemplate.ACCESS_MEMBER_LEFT: _member_left,
    NoticeTemplate.ACCESS_DRIFT: _drift,
    NoticeTemplate.ACCESS_LOCKOUT: _lockout,
    NoticeTemplate.ACCESS_UNLOCKED: _unlocked,
    NoticeTemplate.ACCESS_REVIEW: _review,
    NoticeTemplate.ACCESS_REVIEW_SUMMARY: _review_summary,
}
