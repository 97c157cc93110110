"""What the bot sends to Discord with nobody waiting: the outbox's Discord handlers (notices and
DMs, role changes, incident cards) and the one classification of Discord's errors they share.
The alerts' delivery (its pacing) stays beside its cog (cogs/alerts/delivery.py) and uses the
same classification."""
