"""The aiohttp application served in the bot's event loop."""
