"""Access control (manual §9, §18): /whoami, /access grant|renew|revoke|list|review|unlock.

Thin: each command turns options into a service call and the result into an embed. The rules
(two-person approval, expiry, the last-Core-Ops guard, lockouts) live in bot/services.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import OPS_COMMANDS
from bot.discord.sending import NO_MENTIONS
from bot.domain.errors import InvalidInput
from bot.domain.roles import OpsRole
from bot.services.grants import MemberRef
from cogs.access import render
from cogs.access.views import BUTTONS

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

ROLE_CHOICES = [app_commands.Choice(name=role.label, value=role.value) for role in OpsRole]


def member_ref(member: discord.Member | discord.User) -> MemberRef:
    return MemberRef(id=member.id, name=str(member))


def ops_roles_of(bot: OpsBot, member: discord.Member) -> frozenset[OpsRole]:
    return bot.role_map.roles_for(r.id for r in member.roles)


class AccessCog(commands.Cog, name="access"):
    access = app_commands.Group(
        name="access", description="Ops role grants (manual §18).", default_permissions=OPS_COMMANDS
    )

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    # -- /whoami -------------------------------------------------------------------------------

    @app_commands.command(name="whoami", description="Your ops roles and the commands you may use.")
    async def whoami(self, interaction: discord.Interaction) -> None:
        actor = self.bot.actor_for(interaction)
        info = self.bot.access.whoami(actor, available=self.bot.available_actions())
        grants = await self.bot.grants.find(member_id=interaction.user.id)
        await interaction.response.send_message(
            embed=render.whoami_embed(
                info,
                display_name=interaction.user.display_name,
                grants=grants,
                discord_roles=self.bot.role_map.roles_for(
                    r.id for r in getattr(interaction.user, "roles", ())
                ),
            ),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    # -- /access ... ---------------------------------------------------------------------------

    @access.command(name="grant", description="Grant an ops role for up to 90 days.")
    @app_commands.describe(
        member="Who receives the role",
        role="Which ops role",
        days="How long (default and maximum: 90 days)",
        reason="Why: goes into the audit log",
    )
    @app_commands.choices(role=ROLE_CHOICES)
    async def grant(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        role: app_commands.Choice[str],
        reason: app_commands.Range[str, 3, 500],
        days: app_commands.Range[int, 1, 90] | None = None,
    ) -> None:
        if member.bot:
            raise InvalidInput("Bots do not hold ops roles.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.bot.grants.grant(
            self.bot.actor_for(interaction),
            member_ref(member),
            OpsRole(role.value),
            days,
            reason,
        )
        await interaction.followup.send(
            embed=render.grant_reply(result.grant, pending=result.pending_approval),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @access.command(name="renew", description="Extend an active grant (up to 90 days from now).")
    @app_commands.describe(member="Whose grant", role="Which ops role", days="Days from now")
    @app_commands.choices(role=ROLE_CHOICES)
    async def renew(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        role: app_commands.Choice[str],
        days: app_commands.Range[int, 1, 90] | None = None,
    ) -> None:
        grant = await self.bot.grants.renew(
            self.bot.actor_for(interaction), member_ref(member), OpsRole(role.value), days
        )
        await interaction.response.send_message(
            embed=render.renew_reply(grant), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @access.command(name="revoke", description="End a grant now and remove the role.")
    @app_commands.describe(member="Whose grant", role="Which ops role", reason="Why")
    @app_commands.choices(role=ROLE_CHOICES)
    async def revoke(
        self,
        interaction: discord.Interaction,
        member: discord.User,
        role: app_commands.Choice[str],
        reason: app_commands.Range[str, 3, 500],
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.bot.grants.revoke(
            self.bot.actor_for(interaction), member_ref(member), OpsRole(role.value), reason
        )
        await interaction.followup.send(
            embed=render.revoke_reply(result.grant, queued=result.queued_removal),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @access.command(name="list", description="Active and pending grants.")
    @app_commands.describe(member="Only this member", role="Only this role")
    @app_commands.choices(role=ROLE_CHOICES)
    async def list_grants(
        self,
        interaction: discord.Interaction,
        member: discord.User | None = None,
        role: app_commands.Choice[str] | None = None,
    ) -> None:
        grants = await self.bot.grants.find(
            member_id=member.id if member else None,
            role=OpsRole(role.value) if role else None,
        )
        title = "Grants" + (f" of {member}" if member else "") + (f": {role.name}" if role else "")
        await interaction.response.send_message(
            embed=render.grants_list(grants, title=title),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @access.command(name="review", description="Start the quarterly access review now.")
    async def review(self, interaction: discord.Interaction) -> None:
        review, items = await self.bot.reviews.start(self.bot.actor_for(interaction))
        await interaction.response.send_message(
            f"Access review #{review.id} is open in #operations with {len(items)} grants; "
            f"deadline <t:{int(review.deadline.timestamp())}:f>.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @access.command(name="unlock", description="Lift a 3-strike lockout.")
    @app_commands.describe(member="Who to unlock")
    async def unlock(self, interaction: discord.Interaction, member: discord.User) -> None:
        await self.bot.lockouts.unlock(self.bot.actor_for(interaction), member.id, str(member))
        await interaction.response.send_message(
            f"{member.mention} may use privileged commands again.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    # -- events --------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Look for drift between grants and Discord roles (what came due while the bot was
        down is swept at start by the app, before and whatever the gateway does)."""
        try:
            await self.check_guild_drift()
        except Exception:
            log.exception("access start-up checks failed")

    async def check_guild_drift(self) -> None:
        guild = self.bot.get_guild(self.bot.settings.discord.guild_id)
        if guild is None:
            return
        holdings = {m.id: (str(m), ops_roles_of(self.bot, m)) for m in guild.members if not m.bot}
        await self.bot.grants.check_drift(holdings, complete=True)

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        if after.guild.id != self.bot.settings.discord.guild_id or after.bot:
            return
        if ops_roles_of(self.bot, before) == ops_roles_of(self.bot, after):
            return
        await self.bot.grants.check_drift(
            {after.id: (str(after), ops_roles_of(self.bot, after))}, complete=False
        )

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        if payload.guild_id != self.bot.settings.discord.guild_id:
            return
        await self.bot.grants.member_left(member_ref(payload.user))


async def setup(bot: OpsBot) -> None:
    bot.notice_templates.update(render.TEMPLATES)
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(AccessCog(bot))
