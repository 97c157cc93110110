"""Settings -> each area's policy: the one place that reads configuration for the services.

Services and the domain never import `bot.config`; they are given these plain values, so a
rule is tested without a settings file and a setting is translated (units, defaults) once.
"""

from __future__ import annotations

from datetime import timedelta

from bot.config import AccessSettings, GitHubSettings, IncidentSettings, Settings
from bot.domain.access import AccessPolicy
from bot.domain.devlog import DevLogPolicy
from bot.domain.health import Target, TargetKind
from bot.domain.incidents import IncidentPolicy
from bot.domain.ports import Clock
from bot.integrations.probes import Credentials, ProbeRunner, PrometheusQueries
from bot.services.alerts import AlertPolicy
from bot.storage.audit_head import ChainOptions, chain_options


def access_policy(settings: AccessSettings) -> AccessPolicy:
    return AccessPolicy(
        max_days=settings.max_days,
        enforce=settings.enforce,
        review_days=settings.review_days,
        strikes=settings.lockout_strikes,
        strike_window=timedelta(minutes=settings.lockout_window_minutes),
        lockout=timedelta(minutes=settings.lockout_minutes),
        approval_window=timedelta(hours=settings.approval_hours),
        reminder_days=tuple(settings.reminder_days),
    )


def devlog_policy(settings: GitHubSettings) -> DevLogPolicy:
    return DevLogPolicy(merge_burst=timedelta(minutes=settings.merge_burst_minutes))


def incident_policy(settings: IncidentSettings) -> IncidentPolicy:
    return IncidentPolicy(
        nudge_sev1=timedelta(minutes=settings.nudge_sev1_minutes),
        nudge_sev2=timedelta(minutes=settings.nudge_sev2_minutes),
        report_due=timedelta(hours=settings.report_due_hours),
        # The early warning comes a day before the deadline, or at once for a shorter deadline.
        report_warning=timedelta(hours=min(24, settings.report_due_hours)),
        miners_notice=settings.miners_notice,
    )


def alert_policy(settings: Settings) -> AlertPolicy:
    alerts = settings.alerts
    return AlertPolicy(
        alerts_channel_id=settings.channels.alerts,
        operations_channel_id=settings.channels.operations,
        mention_roles={k: tuple(v) for k, v in alerts.mention_roles.items()},
        email_to=tuple(settings.smtp.to) if settings.smtp else (),
        email_fallback_after=alerts.email_fallback_after,
        watchdog_alertname=alerts.watchdog_alertname,
        watchdog_timeout=alerts.watchdog_timeout,
        batch_wait=alerts.batch_wait,
        spool_retention=settings.alertmanager.spool_retention
        if settings.alertmanager
        else AlertPolicy.spool_retention,
        # More groups than the channel can take within the storm horizon is a storm.
        storm_threshold=max(
            int(alerts.channel_rate_limit * alerts.storm_horizon / alerts.channel_rate_period), 1
        ),
        digest_max_groups=alerts.digest_max_groups,
    )


def audit_chain_options(settings: Settings) -> ChainOptions:
    key = settings.audit.hmac_key
    return chain_options(
        settings.database.url.get_secret_value(),
        settings.audit.head_file,
        key.get_secret_value() if key else None,
    )


def probe_targets(settings: Settings) -> list[Target]:
    """The targets named in the config file (registered nodes come from the database)."""
    health, prometheus = settings.health, settings.prometheus
    targets = []
    if health.core_url:
        targets.append(Target("core", TargetKind.CORE, health.core_url))
    if health.bitcoind_url:
        targets.append(Target("bitcoind", TargetKind.BITCOIND, health.bitcoind_url))
    if health.lnd_url:
        targets.append(Target("lnd", TargetKind.LND, health.lnd_url))
    if prometheus.url:
        targets.append(Target("prometheus", TargetKind.PROMETHEUS, prometheus.url))
    for node in health.nodes:
        targets.append(Target(node.name, TargetKind.NODE, node.endpoint, node.region))
    return targets


def probe_runner(clock: Clock, settings: Settings) -> ProbeRunner:
    health, prometheus = settings.health, settings.prometheus
    return ProbeRunner(
        clock,
        credentials=Credentials(
            bitcoind_user=health.bitcoind_user,
            bitcoind_password=(
                health.bitcoind_password.get_secret_value() if health.bitcoind_password else None
            ),
            bitcoind_cookie_file=health.bitcoind_cookie_file,
            lnd_macaroon_hex=(
                health.lnd_macaroon.get_secret_value() if health.lnd_macaroon else None
            ),
            lnd_macaroon_path=health.lnd_macaroon_path,
            lnd_tls_cert=health.lnd_tls_cert,
        ),
        queries=PrometheusQueries(
            prometheus.pool_hashrate,
            prometheus.pool_hashrate_24h_avg,
            prometheus.share_rate,
            prometheus.template_latency,
        ),
        probe_timeout=health.probe_timeout,
        budget=health.budget,
        max_connections=health.max_connections,
        allow_loopback=health.allow_loopback,
    )
