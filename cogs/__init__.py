"""Discord transport: one extension per area. Thin: they turn events into service calls."""

EXTENSIONS = (
    "cogs.access",
    "cogs.alerts",
    "cogs.audit",
    "cogs.health",
    "cogs.incidents",
    "cogs.status",
    "cogs.upgrades",
)
