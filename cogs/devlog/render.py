"""How #dev-log shows CI/CD: a failing workflow (edited to green when it passes) and merged
pull requests (a burst in one message, edited). Text from GitHub goes through `safe_line`:
Markdown escaped, mentions broken; links are https URLs only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import discord

from bot.discord.sending import DESCRIPTION_MAX, Rendered, fit_embed, truncate
from bot.domain.devlog import safe_line
from bot.domain.outbox import NoticeTemplate
from bot.domain.units import format_duration, plural

COLOUR_FAILING = discord.Colour.red()
COLOUR_PASSED = discord.Colour.green()
COLOUR_MERGED = discord.Colour.purple()


def _ts(value: object, style: str = "f") -> str:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return "unknown time"
    return f"<t:{int(at.timestamp())}:{style}>"


def _link(text: str, url: object) -> str:
    return f"[{text}]({url})" if isinstance(url, str) and url.startswith("https://") else text


def _run(run: Mapping[str, Any]) -> str:
    sha = safe_line(str(run.get("sha", ""))[:7], 7)
    label = f"run #{run.get('run_number', '?')}"
    who = safe_line(str(run.get("actor") or "someone"), 60)
    return f"{_link(label, run.get('url'))} · commit `{sha}` · by {who}"


def workflow(data: Mapping[str, Any]) -> Rendered:
    """One workflow's failing streak on the default branch, or its end."""
    name = safe_line(str(data.get("workflow", "workflow")), 100)
    branch = safe_line(str(data.get("branch", "")), 80)
    repository = safe_line(str(data.get("repository", "")), 100)
    runs = int(data.get("failed_runs", 1))
    last = data.get("last") or {}
    if data.get("state") == "passed":
        passed = data.get("passed") or {}
        failed_for = format_duration(float(data.get("failed_for_seconds", 0)))
        embed = discord.Embed(
            title=truncate(f"✅ Passing again: {name} on {branch}", 256),
            description=truncate(
                f"Green since {_ts(data.get('passed_at'))} after failing for {failed_for} "
                f"({plural(runs, 'failed run')}).",
                DESCRIPTION_MAX,
            ),
            colour=COLOUR_PASSED,
        )
        embed.add_field(name="Passed", value=_run(passed), inline=False)
        embed.add_field(name="Last failure", value=_run(last), inline=False)
        content = f"✅ **CI green again**: {name} on `{branch}` ({repository})"
    else:
        embed = discord.Embed(
            title=truncate(f"❌ Failing: {name} on {branch}", 256),
            description=truncate(
                f"Failing since {_ts(data.get('failing_since'))} "
                f"({_ts(data.get('failing_since'), 'R')}), {plural(runs, 'failed run')} in a row.",
                DESCRIPTION_MAX,
            ),
            colour=COLOUR_FAILING,
        )
        embed.add_field(name="Latest failure", value=_run(last), inline=False)
        content = f"❌ **CI failing**: {name} on `{branch}` ({repository})"
    embed.add_field(name="Workflow", value=name or "—")
    embed.add_field(name="Branch", value=branch or "—")
    embed.set_footer(text=truncate(str(data.get("repository", "")), 200) or None)
    return Rendered(content=truncate(content, 2000), embeds=[fit_embed(embed)])


def merges(data: Mapping[str, Any]) -> Rendered:
    """Pull requests merged into the default branch: one line each, a burst in one message."""
    items = list(data.get("merges", []))
    repository = safe_line(str(data.get("repository", "")), 100)
    lines = [
        f"• {_link('#' + str(m.get('number', '?')), m.get('url'))} "
        f"{safe_line(str(m.get('title', '')), 150)} by {safe_line(str(m.get('author', '')), 60)}"
        for m in items
    ]
    count = len(items)
    embed = discord.Embed(
        title=truncate(f"🔀 Merged: {plural(count, 'pull request')} into {repository}", 256),
        description=truncate("\n".join(lines) or "—", DESCRIPTION_MAX),
        colour=COLOUR_MERGED,
    )
    if items:
        try:
            last = datetime.fromisoformat(str(items[-1].get("merged_at", "")))
        except ValueError:
            last = None
        if last is not None:  # footers show no <t:…> timestamps: a clock time, in UTC
            embed.set_footer(text=f"Last merge {last:%Y-%m-%d %H:%M} UTC")
    return Rendered(embeds=[fit_embed(embed)])


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.DEVLOG_WORKFLOW: workflow,
    NoticeTemplate.DEVLOG_MERGES: merges,
}
