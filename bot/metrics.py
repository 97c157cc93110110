"""Prometheus metrics, in a registry of the process's own (tests build as many as they like)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from bot import __version__

INCIDENT_BUCKETS = (60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 172800)
"""1 min … 2 days: incident response times."""


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build = Info("hh_opsbot_build", "Version of the running bot.", registry=r)
        self.build.info({"version": __version__})
        self.gateway_latency = Gauge(
            "hh_opsbot_discord_gateway_latency_seconds",
            "Heartbeat round trip to the Discord gateway (NaN before the first heartbeat).",
            registry=r,
        )
        self.discord_connected = Gauge(
            "hh_opsbot_discord_connected",
            "1 while the gateway session is ready and its connection open (Discord reachable); "
            "OpsBotHealthy in deploy/prometheus reads it.",
            registry=r,
        )
        self.commands = Counter(
            "hh_opsbot_commands_total",
            "Slash commands and button actions handled, by name and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.web_requests = Counter(
            "hh_opsbot_web_requests_total",
            "HTTP requests served, by route and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.web_latency = Histogram(
            "hh_opsbot_web_request_duration_seconds",
            "HTTP request handling time, by route.",
            ["route"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.database_up = Gauge(
            "hh_opsbot_database_up", "1 when the last database check answered.", registry=r
        )
        self.database_latency = Gauge(
            "hh_opsbot_database_ping_seconds", "Round trip of the last database check.", registry=r
        )

        self.health_targets = Gauge(
            "hh_opsbot_health_targets",
            "Probed targets by state (ok, warn, down) at the last scheduled health poll.",
            ["state"],
            registry=r,
        )
        self.health_poll_seconds = Gauge(
            "hh_opsbot_health_poll_seconds",
            "How long the last scheduled health poll took (probes, judgement, storage).",
            registry=r,
        )

        self.incident_acknowledge = Histogram(
            "hh_opsbot_incident_time_to_acknowledge_seconds",
            "From opening an incident to its first update or assignment, by severity.",
            ["severity"],
            registry=r,
            buckets=INCIDENT_BUCKETS,
        )
        self.incident_resolve = Histogram(
            "hh_opsbot_incident_time_to_resolve_seconds",
            "From opening an incident to resolving it, by severity.",
            ["severity"],
            registry=r,
            buckets=INCIDENT_BUCKETS,
        )
        self.alert_notifications = Counter(
            "hh_opsbot_alert_notifications_total",
            "Alertmanager webhook calls, by result (accepted, duplicate, invalid, "
            "unauthorized, too_large, error).",
            ["result"],
            registry=r,
        )
        self.github_deliveries = Counter(
            "hh_opsbot_github_deliveries_total",
            "GitHub webhook calls, by result (accepted, duplicate, ignored, invalid, "
            "unauthorized, too_large, error).",
            ["result"],
            registry=r,
        )
        self.alert_backlog = Gauge(
            "hh_opsbot_alert_backlog",
            "Webhook bodies stored but not yet applied to their groups (should stay near 0).",
            registry=r,
        )
        self.alert_quarantined = Counter(
            "hh_opsbot_alert_bodies_quarantined_total",
            "Stored webhook bodies set aside by the processor instead of applied, by reason "
            "(invalid: the webhook's model refuses it now; failed: applying it keeps failing). "
            "Each one is in the log with its id.",
            ["reason"],
            registry=r,
        )
        self.alert_messages = Counter(
            "hh_opsbot_alert_messages_total",
            "Messages posted or edited in #alerts, by kind (post, digest, edit).",
            ["kind"],
            registry=r,
        )

    def record_health_poll(self, states: Mapping[str, int], seconds: float) -> None:
        for state in ("ok", "warn", "down"):
            self.health_targets.labels(state).set(states.get(state, 0))
        self.health_poll_seconds.set(seconds)

    # The incident service's observer (bot.services.incidents.IncidentObserver).
    def acknowledged(self, severity: int, seconds: float) -> None:
        self.incident_acknowledge.labels(str(int(severity))).observe(seconds)

    def resolved(self, severity: int, seconds: float) -> None:
        self.incident_resolve.labels(str(int(severity))).observe(seconds)

    # The alert processor's observer (bot.services.alerts.AlertObserver).
    def alert_body_quarantined(self, reason: str) -> None:
        self.alert_quarantined.labels(reason).inc()

    def track_gateway(self, latency: Callable[[], float], connected: Callable[[], bool]) -> None:
        """Read live from the client at scrape time, so the figure is never stale."""
        self.gateway_latency.set_function(latency)
        self.discord_connected.set_function(lambda: 1.0 if connected() else 0.0)
