"""Settings -> policies (bot/app/policies.py): units and derived values are translated once."""

from __future__ import annotations

from datetime import timedelta

from bot.app.policies import access_policy, alert_policy, incident_policy
from bot.config import AccessSettings, IncidentSettings, load_settings
from tests.unit.test_config import GOOD


def test_access_policy_turns_minutes_and_hours_into_durations() -> None:
    policy = access_policy(
        AccessSettings(
            lockout_window_minutes=15, lockout_minutes=60, approval_hours=24, reminder_days=[7, 1]
        )
    )
    assert policy.strike_window == timedelta(minutes=15)
    assert policy.lockout == timedelta(hours=1)
    assert policy.approval_window == timedelta(days=1)
    assert policy.reminder_days == (7, 1)


def test_incident_report_warning_is_a_day_ahead_or_at_once_for_a_short_deadline() -> None:
    assert incident_policy(IncidentSettings(report_due_hours=48)).report_warning == timedelta(
        hours=24
    )
    short = incident_policy(IncidentSettings(report_due_hours=6))
    assert short.report_due == short.report_warning == timedelta(hours=6)


def test_alert_storm_threshold_is_what_the_channel_takes_within_the_horizon(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        GOOD + "[alerts]\nchannel_rate_limit = 5\nchannel_rate_period = 5.0\nstorm_horizon = 10.0\n"
    )
    policy = alert_policy(load_settings(path, environ={}).settings)
    assert policy.storm_threshold == 10
    assert policy.email_to == (), "no [smtp]: nobody to email"

    path.write_text(
        GOOD
        + "[alerts]\nchannel_rate_limit = 1\nchannel_rate_period = 60.0\nstorm_horizon = 1.0\n"
        + '[smtp]\nhost = "127.0.0.1"\nfrom = "bot@example.org"\nto = ["ops@example.org"]\n'
    )
    policy = alert_policy(load_settings(path, environ={}).settings)
    assert policy.storm_threshold == 1, "never below one group"
    assert policy.email_to == ("ops@example.org",)


def test_probe_targets_and_runner_come_from_health_and_prometheus(tmp_path) -> None:
    from bot.app.policies import probe_runner, probe_targets
    from bot.domain.clock import SystemClock
    from bot.domain.health import TargetKind

    path = tmp_path / "config.toml"
    path.write_text(
        GOOD
        + '[health]\ncore_url = "http://10.0.0.1:8080"\nbitcoind_url = "http://10.0.0.2:8332"\n'
        + 'bitcoind_user = "rpc"\nbitcoind_password = "s3cret"\nprobe_timeout = 1.5\n'
        + '[[health.nodes]]\nname = "hn-eu-01"\nendpoint = "http://10.0.1.1:9100"\n'
        + 'region = "eu"\n'
        + '[prometheus]\nurl = "http://10.0.0.3:9090"\nshare_rate = "sum(rate(x[1m]))"\n'
    )
    settings = load_settings(path, environ={}).settings
    kinds = [(t.name, t.kind) for t in probe_targets(settings)]
    assert kinds == [
        ("core", TargetKind.CORE),
        ("bitcoind", TargetKind.BITCOIND),
        ("prometheus", TargetKind.PROMETHEUS),
        ("hn-eu-01", TargetKind.NODE),
    ]
    runner = probe_runner(SystemClock(), settings)
    assert runner.probe_timeout == 1.5
    assert runner._credentials.bitcoind_password == "s3cret"
    assert runner._queries.share_rate == "sum(rate(x[1m]))"
