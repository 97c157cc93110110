"""The audit trail: /audit recent and /audit export (JSON Lines)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import OPS_COMMANDS
from bot.discord.sending import NO_MENTIONS
from bot.domain.errors import InvalidInput
from bot.services.audit import to_json_line
from cogs.access.render import audit_embed

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

EXPORT_MAX_ROWS = 100_000


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """`2026-10-01`, `2026-10-01T12:00` (UTC), or `30d` / `12h` back from the app's `now`."""
    if not text:
        return None
    text = text.strip()
    try:
        if text[-1] in "dh" and text[:-1].isdigit():
            from datetime import timedelta

            amount = int(text[:-1])
            return now - (timedelta(days=amount) if text[-1] == "d" else timedelta(hours=amount))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "`since` must be a date like 2026-10-01 (UTC) or a span like 30d or 12h."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AuditCog(commands.Cog, name="audit"):
    audit = app_commands.Group(
        name="audit",
        description="The audit trail of every action.",
        default_permissions=OPS_COMMANDS,
    )

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @audit.command(name="recent", description="The latest audit rows.")
    @app_commands.describe(member="Only actions by this member", action="Only this action")
    async def recent(
        self,
        interaction: discord.Interaction,
        member: discord.User | None = None,
        action: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        records = await self.bot.audit.latest(
            actor_id=member.id if member else None, action=action, limit=20
        )
        title = "Recent audit rows" + (f" by {member}" if member else "")
        title += f" for {action}" if action else ""
        await interaction.response.send_message(
            embed=audit_embed(records, title=title), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @audit.command(name="export", description="Download the audit log as JSON Lines.")
    @app_commands.describe(since="From this date (UTC) or span back (30d, 12h); default: all")
    async def export(self, interaction: discord.Interaction, since: str | None = None) -> None:
        now = self.bot.clock.now()
        start = parse_since(since, now)
        await interaction.response.defer(ephemeral=True, thinking=True)
        records = await self.bot.audit.rows_since(start, EXPORT_MAX_ROWS)
        body = "".join(to_json_line(r) + "\n" for r in records).encode("utf-8")
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        await interaction.followup.send(
            f"{len(records)} audit rows" + (f" since {start:%Y-%m-%d %H:%M} UTC" if start else ""),
            file=discord.File(io.BytesIO(body), filename=f"hh-audit-{stamp}.jsonl"),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: OpsBot) -> None:
    await bot.add_cog(AuditCog(bot))
