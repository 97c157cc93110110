"""Discord transport: one extension per area. Thin: they turn events into service calls."""

EXTENSIONS = (
    "cogs.access",
    "cogs.alerts",
    "cogs.audit",
    "cogs.devlog",
    "cogs.health",
    "cogs.incidents",
    "cogs.status",
    "cogs.upgrades",
)
