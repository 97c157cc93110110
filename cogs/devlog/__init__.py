"""#dev-log's CI/CD messages (GitHub's webhook, bot/services/devlog.py): no commands, only the
renderers of the messages the outbox posts and edits there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.devlog import render

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


async def setup(bot: OpsBot) -> None:
    bot.notice_templates.update(render.TEMPLATES)
