"""The Discord wing, below the cogs: what every cog shares to talk to Discord (sending within
Discord's limits and without pings). Nothing here imports a cog; the cogs import it."""
