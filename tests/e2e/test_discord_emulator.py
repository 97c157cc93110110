"""End-to-end checks of the Discord emulator against a real, in-process discord.py bot.

Why: the emulator is only useful if the genuine client library accepts its wire format and
reacts to its failure modes (429s, 400s, outages, dropped gateways) the way it does against
Discord. Each test drives a real ``commands.Bot`` with an app-command tree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.harness.emulator import (
    EPHEMERAL,
    LOADING,
    CommandNotSynced,
    DiscordEmulator,
    InteractionNotAcknowledged,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

ALICE = 100000000000000001
BOB = 100000000000000002
INTENTS = discord.Intents(guilds=True, members=True)


class ConfirmView(discord.ui.View):
    """A one-button view whose callback edits the message it lives on."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(
        label="Confirm", custom_id="probe:confirm", style=discord.ButtonStyle.primary
    )
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(
            content=f"confirmed by {interaction.user.id}", view=None
        )


class IncidentModal(discord.ui.Modal, title="Open incident"):
    """Modal whose submit posts to the channel, opens a thread on that post and writes in it."""

    summary: discord.ui.TextInput[IncidentModal] = discord.ui.TextInput(
        label="Summary", custom_id="incident:summary"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert isinstance(interaction.channel, discord.TextChannel)
        post = await interaction.channel.send(f"Incident: {self.summary.value}")
        thread = await post.create_thread(name=f"incident-{post.id}")
        await thread.send("timeline starts")
        await interaction.response.send_message(f"opened {thread.mention}", ephemeral=True)


captured_errors: list[discord.HTTPException] = []


def build_bot(guild_id: int, captured: list[discord.Interaction]) -> commands.Bot:
    """The probe bot: one command per interaction behaviour the emulator must observe."""
    bot = commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=INTENTS,
        help_command=None,
        guild_ready_timeout=0.05,
    )
    guild = discord.Object(guild_id)

    @bot.tree.command(name="secret", description="Answer ephemerally", guild=guild)
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"only for {interaction.user.id}", ephemeral=True)

    @bot.tree.command(name="slow", description="Defer, then edit the original", guild=guild)
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await asyncio.sleep(0.1)  # slow work after the defer
        await interaction.edit_original_response(content="slow result")

    @bot.tree.command(name="silent", description="Never answers", guild=guild)
    async def silent(interaction: discord.Interaction) -> None:
        captured.append(interaction)

    @bot.tree.command(name="confirm", description="Ask with a button", guild=guild)
    async def confirm(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Proceed?", view=ConfirmView())

    @bot.tree.command(name="burst", description="Post seven messages", guild=guild)
    @app_commands.describe(channel="Where to post")
    async def burst(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await interaction.response.send_message("posting", ephemeral=True)
        target = bot.get_channel(channel.id)
        assert isinstance(target, discord.TextChannel)
        for index in range(7):
            await target.send(f"burst {index}")

    @bot.tree.command(name="grant", description="Give a member a role", guild=guild)
    async def grant(
        interaction: discord.Interaction, member: discord.Member, role: discord.Role
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await member.add_roles(role, reason=f"/grant by {interaction.user.id}")
        await interaction.followup.send(f"granted {role.name} to {member.name}", ephemeral=True)

    @bot.tree.command(name="pick", description="Pick a node, with suggestions", guild=guild)
    async def pick(interaction: discord.Interaction, node: str, note: str | None = None) -> None:
        await interaction.response.send_message(f"picked {node}", ephemeral=True)

    @pick.autocomplete("node")
    async def nodes(interaction: discord.Interaction, current: str) -> list[app_commands.Choice]:
        names = [f"{current or 'node'}-{i}" for i in range(30)]
        try:  # more than Discord takes: refused, and the interaction is still unanswered
            await interaction.response.autocomplete(
                [app_commands.Choice(name=n, value=n) for n in names]
            )
        except discord.HTTPException as exc:
            captured_errors.append(exc)
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    @bot.tree.command(name="incident", description="Open an incident", guild=guild)
    async def incident(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(IncidentModal())

    return bot


@dataclass
class Harness:
    emu: DiscordEmulator
    bot: commands.Bot
    channel_id: int
    ops_role: int
    captured: list[discord.Interaction]

    @property
    def guild(self) -> discord.Guild:
        guild = self.bot.get_guild(self.emu.guild_id)
        assert guild is not None
        return guild

    @property
    def channel(self) -> discord.TextChannel:
        channel = self.bot.get_channel(self.channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll the client cache, which is updated by gateway frames processed asynchronously."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    emu = DiscordEmulator(channel_rate_limit=(5, 1.0))
    ops = emu.add_role("ops")
    channel_id = emu.add_channel("alerts")
    emu.add_member(ALICE, "alice", roles=[ops])
    emu.add_member(BOB, "bob")
    await emu.start()
    monkeypatch.setattr(discord.http.Route, "BASE", emu.api_base)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(emu.gateway_url)
    )
    captured: list[discord.Interaction] = []
    bot = build_bot(emu.guild_id, captured)
    runner: asyncio.Task[None] | None = None
    try:
        await bot.login(emu.token)
        runner = asyncio.create_task(bot.connect(reconnect=True))
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({ready, runner}, timeout=10, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            raise AssertionError(f"bot never became ready: {runner.exception()!r}")
        await emu.wait_ready()
        await bot.tree.sync(guild=discord.Object(emu.guild_id))
        yield Harness(emu, bot, channel_id, ops, captured)
    finally:
        await bot.close()
        if runner is not None:
            await asyncio.wait_for(runner, 5)
        await emu.stop()


async def test_login_ready_populates_guild_cache(harness: Harness) -> None:
    emu, bot = harness.emu, harness.bot
    assert bot.user is not None and bot.user.id == emu.bot_user_id
    assert bot.application_id == emu.application_id
    guild = harness.guild
    assert guild.name == "Hyper Hash"
    assert guild.chunked and guild.member_count == 3
    assert guild.me is not None and guild.me.id == emu.bot_user_id
    alice = guild.get_member(ALICE)
    assert alice is not None and alice.name == "alice"
    ops = guild.get_role(harness.ops_role)
    assert ops is not None and ops.name == "ops" and ops in alice.roles
    assert guild.default_role.id == emu.guild_id
    assert harness.channel.name == "alerts"
    assert emu.identify_payloads[0]["intents"] == INTENTS.value
    assert ("GET", "/users/@me", 200) in emu.requests
    assert ("GET", "/oauth2/applications/@me", 200) in emu.requests


async def test_tree_sync_is_recorded(harness: Harness) -> None:
    emu = harness.emu
    stored = await emu.wait_for_commands(emu.guild_id)
    names = {c["name"] for c in stored}
    assert names == {"secret", "slow", "silent", "confirm", "burst", "grant", "pick", "incident"}
    path = f"/applications/{emu.application_id}/guilds/{emu.guild_id}/commands"
    assert ("PUT", path, 200) in emu.requests
    fetched = await harness.bot.tree.fetch_commands(guild=discord.Object(emu.guild_id))
    assert {c.name: c.id for c in fetched} == {c["name"]: int(c["id"]) for c in stored}
    burst = next(c for c in stored if c["name"] == "burst")
    assert burst["options"][0]["type"] == 7 and burst["options"][0]["required"] is True
    with pytest.raises(CommandNotSynced):
        await emu.invoke_command("never-registered", ALICE)


async def test_ephemeral_reply_within_window(harness: Harness) -> None:
    emu = harness.emu
    result = await emu.invoke_command("secret", ALICE)
    assert result.type == 4
    assert result.ephemeral and result.message is not None
    assert result.message["flags"] & EPHEMERAL
    assert result.message["content"] == f"only for {ALICE}"
    assert 0 <= result.acknowledged_in < emu.ack_timeout
    assert harness.channel_id not in emu.messages  # ephemeral replies are not in the channel


async def test_deferred_then_edited_reply(harness: Harness) -> None:
    emu = harness.emu
    result = await emu.invoke_command("slow", BOB)
    assert result.type == 5
    assert result.acknowledged_in < 1.0
    assert result.message is not None and result.message["content"] == "slow result"
    assert not result.message["flags"] & LOADING and not result.ephemeral
    assert result.edits == 1
    stored = emu.messages[harness.channel_id]
    assert [m["content"] for m in stored] == ["slow result"]


async def test_unacknowledged_interaction_and_late_answer(harness: Harness) -> None:
    emu = harness.emu
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(InteractionNotAcknowledged):
        await emu.invoke_command("silent", ALICE)
    assert loop.time() - started >= emu.ack_timeout - 0.05
    interaction = harness.captured[-1]
    with pytest.raises(discord.NotFound) as excinfo:
        await interaction.response.send_message("too late")
    assert excinfo.value.code == 10062


async def test_autocomplete_round_trip(harness: Harness) -> None:
    emu = harness.emu
    captured_errors.clear()
    typing = [{"name": "node", "value": "ams", "focused": True}]
    result = await emu.autocomplete("pick", ALICE, options=typing)
    assert result.choices is not None and len(result.choices) == 25
    assert result.choices[0] == {"name": "ams-0", "value": "ams-0"}
    (refused,) = captured_errors
    assert refused.status == 400 and refused.code == 50035
    with pytest.raises(ValueError, match="no autocomplete"):
        await emu.autocomplete("pick", ALICE, options=[{"name": "note", "focused": True}])
    with pytest.raises(ValueError, match="exactly one"):
        await emu.autocomplete("pick", ALICE, options=[{"name": "node", "value": "a"}])


async def test_button_click_round_trip(harness: Harness) -> None:
    emu = harness.emu
    asked = await emu.invoke_command("confirm", ALICE)
    assert asked.type == 4 and asked.message is not None and not asked.ephemeral
    button = asked.message["components"][0]["components"][0]
    assert button["custom_id"] == "probe:confirm" and button["label"] == "Confirm"
    clicked = await emu.click_button("probe:confirm", BOB, message=asked.message)
    assert clicked.type == 7
    assert clicked.message is not None
    assert clicked.message["id"] == asked.message["id"]
    assert clicked.message["content"] == f"confirmed by {BOB}"
    assert clicked.message["components"] == []
    stored = emu.get_message(int(asked.message["id"]))
    assert stored is not None and stored["content"] == f"confirmed by {BOB}"
    with pytest.raises(ValueError, match="no component"):
        await emu.click_button("probe:confirm", BOB, message=asked.message)


async def test_channel_rate_limit_is_retried_transparently(harness: Harness) -> None:
    emu = harness.emu
    options = [{"name": "channel", "type": 7, "value": str(harness.channel_id)}]
    result = await emu.invoke_command("burst", ALICE, options=options)
    assert result.type == 4 and result.ephemeral
    stored = await emu.wait_for_messages(harness.channel_id, 7, timeout=10)
    assert [m["content"] for m in stored] == [f"burst {i}" for i in range(7)]
    assert all(m["author"]["id"] == str(emu.bot_user_id) for m in stored)
    assert emu.rate_limited_count >= 1
    path = f"/channels/{harness.channel_id}/messages"
    statuses = [status for method, p, status in emu.requests if method == "POST" and p == path]
    assert statuses.count(200) == 7 and 429 in statuses


async def test_oversize_embed_is_rejected_with_400(harness: Harness) -> None:
    too_long = discord.Embed(title="incident", description="x" * 4097)
    with pytest.raises(discord.HTTPException) as excinfo:
        await harness.channel.send(embed=too_long)
    assert excinfo.value.status == 400 and excinfo.value.code == 50035
    assert "embeds.0.description" in str(excinfo.value)
    too_big = [discord.Embed(description="y" * 3500), discord.Embed(description="z" * 3500)]
    with pytest.raises(discord.HTTPException, match="6000"):
        await harness.channel.send(embeds=too_big)
    assert harness.channel_id not in harness.emu.messages


async def test_grant_role_updates_member_and_client_cache(harness: Harness) -> None:
    emu, guild = harness.emu, harness.guild
    options = [
        {"name": "member", "type": 6, "value": str(BOB)},
        {"name": "role", "type": 8, "value": str(harness.ops_role)},
    ]
    result = await emu.invoke_command("grant", ALICE, options=options)
    assert result.type == 5 and result.ephemeral
    assert result.message is not None and result.message["content"] == "granted ops to bob"
    assert str(harness.ops_role) in emu.member(BOB)["roles"]
    path = f"/guilds/{emu.guild_id}/members/{BOB}/roles/{harness.ops_role}"
    assert ("PUT", path, 204) in emu.requests
    assert any(r.path == path and r.reason == f"/grant by {ALICE}" for r in emu.request_log)

    def bob_has_ops() -> bool:
        bob = guild.get_member(BOB)
        return bob is not None and harness.ops_role in [r.id for r in bob.roles]

    await eventually(bob_has_ops)
    admins = emu.add_role("admins", position=1000)  # above the bot's role
    bob = guild.get_member(BOB)
    assert bob is not None
    with pytest.raises(discord.Forbidden) as excinfo:
        await bob.add_roles(discord.Object(admins))
    assert excinfo.value.code == 50013


async def test_modal_thread_and_dm(harness: Harness) -> None:
    emu, guild = harness.emu, harness.guild
    shown = await emu.invoke_command("incident", ALICE)
    assert shown.type == 9 and shown.modal is not None
    assert shown.modal["title"] == "Open incident"
    submitted = await emu.submit_modal(
        shown.modal["custom_id"], ALICE, {"incident:summary": "db down"}
    )
    assert submitted.type == 4 and submitted.ephemeral
    post = emu.messages[harness.channel_id][0]
    assert post["content"] == "Incident: db down"
    thread_id = int(post["id"])  # a thread started from a message shares its id
    thread = emu.channels[thread_id]
    assert thread["type"] == 11 and thread["parent_id"] == str(harness.channel_id)
    assert [m["content"] for m in emu.messages[thread_id]] == ["timeline starts"]
    assert submitted.message is not None
    assert submitted.message["content"] == f"opened <#{thread_id}>"
    await eventually(lambda: guild.get_thread(thread_id) is not None)

    alice = guild.get_member(ALICE)
    assert alice is not None
    dm = await alice.send("you are on call")
    assert isinstance(dm.channel, discord.DMChannel)
    assert emu.channels[dm.channel.id]["type"] == 1
    assert emu.messages[dm.channel.id][0]["content"] == "you are on call"


async def test_rest_outage_then_recovery(harness: Harness) -> None:
    emu = harness.emu
    emu.set_rest_outage(503)
    with pytest.raises(discord.DiscordServerError) as excinfo:
        await harness.channel.send("during outage")
    assert excinfo.value.status == 503
    assert ("POST", f"/channels/{harness.channel_id}/messages", 503) in emu.requests
    emu.set_rest_outage(None)
    sent = await harness.channel.send("after outage")
    assert emu.messages[harness.channel_id][-1]["id"] == str(sent.id)
    assert emu.messages[harness.channel_id][-1]["content"] == "after outage"


async def test_a_route_answers_the_429_it_was_told_to(harness: Harness) -> None:
    """A long Retry-After on one route: discord.py sleeps through it unless its
    max_ratelimit_timeout says otherwise, then it raises RateLimited at once."""
    emu, path = harness.emu, f"/channels/{harness.channel_id}/messages"
    harness.bot.http.max_ratelimit_timeout = 30.0
    emu.rate_limit("POST", path, retry_after=120)
    with pytest.raises(discord.RateLimited) as excinfo:
        await harness.channel.send("held for two minutes")
    assert excinfo.value.retry_after == 120
    assert [s for m, p, s in emu.requests if (m, p) == ("POST", path)] == [429]
    sent = await harness.channel.send("the route answers again")
    assert emu.messages[harness.channel_id][-1]["id"] == str(sent.id)
    # A short one is waited out and retried by discord.py itself, as against Discord.
    emu.rate_limit("POST", path, retry_after=0.05)
    await harness.channel.send("after a short wait")
    assert [s for m, p, s in emu.requests if (m, p) == ("POST", path)] == [429, 200, 429, 200]
    assert emu.messages[harness.channel_id][-1]["content"] == "after a short wait"
    # Only the post it names, when told which.
    emu.rate_limit("POST", path, retry_after=120, when=lambda body: body["content"] == "this one")
    await harness.channel.send("not this one")
    with pytest.raises(discord.RateLimited):
        await harness.channel.send("this one")


async def test_a_stalled_call_hangs_then_is_handled_late(harness: Harness) -> None:
    emu, path = harness.emu, f"/channels/{harness.channel_id}/messages"
    emu.stall("POST", path)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await harness.channel.send("nobody answers", nonce="n-1")
    await emu.wait_stalled(1)
    assert harness.channel_id not in emu.messages
    retried = await harness.channel.send("nobody answers", nonce="n-1")
    emu.release_stalled()
    await eventually(lambda: [s for m, p, s in emu.requests if p == path] == [200, 200])
    # The late original and the retry carry one nonce: Discord keeps one message.
    assert [m["id"] for m in emu.messages[harness.channel_id]] == [str(retried.id)]


async def test_gateway_drop_resumes_and_replays(harness: Harness) -> None:
    emu, guild = harness.emu, harness.guild
    await emu.close_gateway(4000)
    await emu.member_leave(BOB)  # dispatched while disconnected or just after: must arrive
    await emu.wait_resumed()
    assert emu.resume_count == 1 and len(emu.identify_payloads) == 1
    assert emu.gateway_connections == 2
    await eventually(lambda: guild.get_member(BOB) is None)
    result = await emu.invoke_command("secret", ALICE)
    assert result.type == 4 and result.ephemeral


async def test_wrong_token_raises_login_failure() -> None:
    async with DiscordEmulator() as emu:
        bot = commands.Bot(command_prefix=commands.when_mentioned, intents=INTENTS)
        with emu.patch_discord_py():
            try:
                with pytest.raises(discord.LoginFailure):
                    await bot.login("not-the-token")
            finally:
                await bot.close()
        assert ("GET", "/users/@me", 401) in emu.requests
    assert discord.http.Route.BASE == "https://discord.com/api/v10"


async def test_wire_format_basics() -> None:
    """Raw HTTP/websocket checks of the facts discord.py silently depends on."""
    async with (
        DiscordEmulator(channel_rate_limit=(2, 30.0)) as emu,
        aiohttp.ClientSession() as http,
    ):
        channel = emu.add_channel("raw")
        auth = {"Authorization": f"Bot {emu.token}"}
        async with http.get(f"{emu.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            for header in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{header}" in resp.headers
        async with http.get(f"{emu.api_base}/users/@me", headers={"Authorization": "x"}) as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{emu.api_base}/no/such/route", headers=auth) as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
        assert ("GET", "/no/such/route", 404) in emu.requests

        url = f"{emu.api_base}/channels/{channel}/messages"
        statuses = []
        for index in range(3):
            async with http.post(url, headers=auth, json={"content": f"m{index}"}) as resp:
                statuses.append(resp.status)
                last = resp
                body = await resp.json()
        assert statuses == [200, 200, 429]
        assert last.headers["Via"] == "1.1 google"
        assert last.headers["X-RateLimit-Scope"] == "shared"
        assert body["global"] is False and 0 < body["retry_after"] <= 30
        assert emu.rate_limited_count == 1
        async with http.post(url, headers=auth, json={"content": ""}) as resp:
            assert resp.status == 429  # still limited; validation happens after the limit

        emu.rate_limit("GET", "/users/@me", retry_after=120, scope="global", is_global=True)
        async with http.get(f"{emu.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 429
            assert resp.headers["Via"] == "1.1 google" and resp.headers["Retry-After"] == "120"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert resp.headers["X-RateLimit-Reset-After"] == "120.000"
            assert resp.headers["X-RateLimit-Scope"] == "global"
            assert resp.headers["X-RateLimit-Global"] == "true"
            assert "X-RateLimit-Bucket" in resp.headers
            assert await resp.json() == {
                "message": "You are being rate limited.",
                "retry_after": 120,
                "global": True,
            }
        async with http.get(f"{emu.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 200, "once, as asked"

        async with http.ws_connect(f"{emu.gateway_url}?v=10&encoding=json") as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
            await ws.send_str(json.dumps({"op": 1, "d": None}))
            assert json.loads((await ws.receive()).data)["op"] == 11
            await ws.send_str(json.dumps({"op": 2, "d": {"token": "bad", "intents": 1}}))
            closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4004
