"""The composition root (`compose.py`), settings -> policies (`policies.py`), the services
(`services.py`), the scheduled jobs (`jobs.py`), the gateway (`gateway.py`) and the lifecycle
(`lifecycle.py`). See docs/architecture.md."""

from bot.app.compose import Application
from bot.app.gateway import LOGIN_BACKOFF, Gateway, point_discord_at
from bot.app.lifecycle import SHUTDOWN_TIMEOUT, StartupError
from bot.app.policies import alert_policy, audit_chain_options

__all__ = [
    "LOGIN_BACKOFF",
    "SHUTDOWN_TIMEOUT",
    "Application",
    "Gateway",
    "StartupError",
    "alert_policy",
    "audit_chain_options",
    "point_discord_at",
]
