"""Discord transport: one extension per area. Thin: they turn events into service calls."""

EXTENSIONS = ("cogs.access", "cogs.alerts", "cogs.health")
