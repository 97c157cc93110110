from __future__ import annotations

import discord
import yarl

from bot.app import point_discord_at
from bot.domain.outbox import OutboxKind


def test_point_discord_at_redirects_rest_and_gateway() -> None:
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    try:
        point_discord_at("http://127.0.0.1:1/api/v10", "ws://127.0.0.1:1/gateway")
        assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:1/api/v10/users/@me"
        assert (
            yarl.URL("ws://127.0.0.1:1/gateway") == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        )
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


def test_scheduler_runs_the_quarterly_review_and_the_sweeps(tmp_path) -> None:
    from apscheduler.triggers.cron import CronTrigger

    from bot.app import Application
    from bot.config import load_settings
    from tests.unit.test_config import GOOD

    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    app = Application(load_settings(path, environ={}).settings)
    jobs = {job.id: job for job in app.scheduler.get_jobs()}
    assert {"access-sweep", "reminders", "access-review", "database-health"} <= set(jobs)
    trigger = jobs["access-review"].trigger
    assert isinstance(trigger, CronTrigger)
    fields = {f.name: str(f) for f in trigger.fields}
    assert (fields["day"], fields["month"], fields["hour"]) == ("1", "1,4,7,10", "9")


async def test_release_poll_is_hourly_and_a_no_op_without_a_repo(tmp_path) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    from bot.app import Application
    from bot.config import load_settings
    from bot.integrations.github import GitHubReleases
    from tests.unit.test_config import GOOD

    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    app = Application(load_settings(path, environ={}).settings)
    trigger = {job.id: job for job in app.scheduler.get_jobs()}["release-poll"].trigger
    assert isinstance(trigger, IntervalTrigger) and trigger.interval.total_seconds() == 3600
    assert await app.services.upgrades.poll_releases() == 0, "no github_repo: nothing polled"

    path.write_text(
        GOOD
        + '[github]\napi_url = "http://127.0.0.1:9"\n'
        + '[upgrades]\ngithub_repo = "hyper-hash/releases"\npoll_minutes = 30\n'
    )
    app = Application(load_settings(path, environ={}).settings)
    trigger = {job.id: job for job in app.scheduler.get_jobs()}["release-poll"].trigger
    assert trigger.interval.total_seconds() == 1800
    assert isinstance(app.services.upgrades._source, GitHubReleases)


def test_discord_calls_cannot_hold_the_rest(tmp_path) -> None:
    """A long Retry-After raises instead of sleeping, and Discord's kinds have a lane of
    their own: an email or a GitHub write never waits for a Discord slot."""
    from bot.app import Application
    from bot.config import load_settings
    from tests.unit.test_config import GOOD

    path = tmp_path / "config.toml"
    path.write_text(
        GOOD.replace("[channels]", "max_ratelimit_timeout = 45\n\n[channels]")
        + '[smtp]\nhost = "127.0.0.1"\nfrom = "bot@example.org"\nto = ["ops@example.org"]\n'
        + '[github]\nrepo = "hyper-hash/ops"\ntoken = "x"\napi_url = "http://127.0.0.1:9"\n'
    )
    app = Application(load_settings(path, environ={}).settings)
    assert app.bot.http.max_ratelimit_timeout == 45.0
    discord_kinds = {
        OutboxKind.DISCORD_MESSAGE,
        OutboxKind.NOTICE,
        OutboxKind.DIRECT,
        OutboxKind.ROLE_REMOVE,
        OutboxKind.INCIDENT_CARD,
        OutboxKind.ALERTS_DELIVER,
    }
    assert {app.outbox.lane_of(kind) for kind in discord_kinds} == {"discord"}
    assert app.outbox.lane_of(OutboxKind.EMAIL) != "discord"
    assert app.outbox.lane_of(OutboxKind.GITHUB_ISSUE_CREATE) != "discord"
