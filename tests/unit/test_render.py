"""Render functions against Discord's limits (design.md: title 256, description 4096, ...)."""

from __future__ import annotations

import discord

from bot.discord.sending import (
    CONTENT_MAX,
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    FIELD_NAME_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    NO_MENTIONS,
    TITLE_MAX,
    fit_embed,
    truncate,
)
from bot.domain.roles import Actor, OpsRole
from bot.services.access import AccessService, WhoAmI
from cogs.access.render import whoami_embed


def within_limits(embed: discord.Embed) -> bool:
    data = embed.to_dict()
    fields = data.get("fields", [])
    return (
        len(data.get("title", "")) <= TITLE_MAX
        and len(data.get("description", "")) <= DESCRIPTION_MAX
        and len(fields) <= FIELDS_MAX
        and all(len(f["name"]) <= FIELD_NAME_MAX for f in fields)
        and all(0 < len(f["value"]) <= FIELD_VALUE_MAX for f in fields)
        and len(embed) <= EMBED_TOTAL_MAX
    )


def test_truncate_marks_the_cut() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 3000, CONTENT_MAX)
    assert len(cut) == CONTENT_MAX and cut.endswith("…")


def test_fit_embed_brings_a_monster_within_every_limit() -> None:
    embed = discord.Embed(title="T" * 1000, description="D" * 9000)
    embed.set_author(name="A" * 500)
    embed.set_footer(text="F" * 3000)
    for i in range(40):
        embed.add_field(name=f"n{i}" * 200, value="v" * 2000)
    fitted = fit_embed(embed)
    assert within_limits(fitted)
    assert len(fitted) <= EMBED_TOTAL_MAX


def test_fit_embed_notes_dropped_fields() -> None:
    embed = discord.Embed(title="x")
    for i in range(30):
        embed.add_field(name=str(i), value="v")
    fitted = fit_embed(embed)
    assert len(fitted.fields) == FIELDS_MAX
    assert fitted.footer.text == "5 more not shown"


def test_fit_embed_keeps_a_small_embed_as_it_is() -> None:
    embed = discord.Embed(title="ok", description="fine").add_field(name="a", value="b")
    before = embed.to_dict()
    assert fit_embed(embed).to_dict() == before


def test_whoami_embed_for_ops_member() -> None:
    actor = Actor(id=1, name="core", roles=frozenset({OpsRole.CORE_OPS, OpsRole.OBSERVER}))
    embed = whoami_embed(AccessService().whoami(actor), display_name="Core Person")
    assert embed.description == "**Core Ops**\n**Observer**", "roles first"
    commands = str(embed.fields[0].value)
    lines = commands.splitlines()
    assert any(line.startswith("`/incident` open · update · ") for line in lines), commands
    assert "`/ping`" in lines[-1], commands
    assert len(lines) <= 10, "one line per area, not one per command"
    assert within_limits(embed)


def test_whoami_warns_of_a_discord_role_held_without_a_grant() -> None:
    actor = Actor(id=1, name="n", roles=frozenset({OpsRole.NODE_OPS}))
    embed = whoami_embed(
        AccessService().whoami(actor),
        display_name="n",
        discord_roles=[OpsRole.NODE_OPS, OpsRole.CORE_OPS],
    )
    assert embed.description is not None
    first, warning = embed.description.splitlines()
    assert first == "**Node Ops**"
    assert warning.startswith("⚠️ **Core Ops**: you hold the Discord role but no grant")


def test_whoami_embed_for_miner_and_hostile_name() -> None:
    actor = Actor(id=1, name="@everyone")
    info = AccessService().whoami(actor)
    embed = whoami_embed(info, display_name="@everyone " + "x" * 400)
    fields = {f.name: f.value for f in embed.fields}
    assert embed.description == "No ops role: miner access. `/status` shows the pool's state."
    assert fields["Commands you may use"] == "`/whoami` · `/status`"
    assert embed.title is not None and len(embed.title) <= TITLE_MAX


def test_whoami_embed_for_owner_mentions_break_glass() -> None:
    info = WhoAmI(actor=Actor(id=1, name="o", is_owner=True), roles=(), allowed=("whoami",))
    said = whoami_embed(info, display_name="o").description or ""
    assert "**Break-glass owner**" in said


def test_no_mentions_means_none() -> None:
    data: object = NO_MENTIONS.to_dict()
    assert data == {"parse": []}
