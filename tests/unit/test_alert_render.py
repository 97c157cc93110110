"""Rendering of alert groups and storm digests: Discord's limits hold, nothing can ping."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.alerts import AlertGroup, AlertStatus, AlertView, WebhookPayload, worst_severity
from bot.services.alerts import digest_size
from cogs.alerts.render import (
    clean,
    digest_embeds,
    group_embed,
    message_content,
    safe_url,
)
from tests.alerting import FIXTURES, fixture, storm
from tests.harness.emulator import DiscordEmulator

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
ALL = sorted(p.name for p in FIXTURES.glob("[01]*.json"))


def group_of(payload: dict, group_id: int = 1, **changes) -> AlertGroup:
    parsed = WebhookPayload.model_validate(payload)
    views = tuple(AlertView.from_payload(a) for a in parsed.alerts)
    firing = [a.severity for a in views if a.status is AlertStatus.FIRING]
    values: dict[str, Any] = dict(
        id=group_id,
        group_key=parsed.group_key,
        episode=1,
        status=parsed.status,
        severity=worst_severity(firing or [a.severity for a in views]),
        version=1,
        rendered_version=0,
        receiver=parsed.receiver,
        group_labels=parsed.group_labels,
        common_labels=parsed.common_labels,
        external_url=parsed.external_url,
        truncated_alerts=parsed.truncated_alerts,
        alerts=views,
        first_seen_at=NOW,
        last_notified_at=NOW,
        resolved_at=NOW if parsed.status is AlertStatus.RESOLVED else None,
    )
    values.update(changes)
    return AlertGroup(**values)


def accepted_by_discord(embeds, content=None) -> None:
    """The emulator's copy of Discord's documented message validation (raises on 400)."""
    DiscordEmulator()._validate_message(
        {"content": content, "embeds": [e.to_dict() for e in embeds]}, require_content=True
    )


def texts(embed) -> list[str]:
    data = embed.to_dict()
    out = [data.get("title", ""), data.get("description", "")]
    out += [f["name"] + f["value"] for f in data.get("fields", [])]
    return out


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_renders_within_discords_limits(name: str) -> None:
    embed = group_embed(group_of(fixture(name)), NOW)
    accepted_by_discord([embed])
    assert len(embed) <= 6000 and len(embed.description or "") <= 4096


def test_colour_and_title_by_status_and_severity() -> None:
    firing = group_embed(group_of(fixture("01_firing_single_nodeoffline.json")), NOW)
    assert firing.colour is not None and firing.colour.value == 0xE74C3C
    assert "[FIRING:1] NodeOffline" in (firing.title or "")
    resolved = group_embed(group_of(fixture("03_resolved_single_nodeoffline.json")), NOW)
    assert resolved.colour is not None and resolved.colour.value == 0x2ECC71
    assert "[RESOLVED] NodeOffline" in (resolved.title or "")
    field = next(f for f in resolved.fields if f.name == "Resolved")
    assert "after" in (field.value or "")


def test_content_of_an_alert_shows_summary_labels_start_and_links() -> None:
    group = group_of(fixture("04_firing_group_4_alerts.json"))
    embed = group_embed(group, NOW)
    description = embed.description or ""
    assert "CPU usage high on hn\\-eu\\-2" in description or "CPU usage high" in description
    assert "since <t:" in description
    assert "[source](http://127.0.0.1:9090/graph" in description
    assert embed.url and embed.url.startswith("http://127.0.0.1:19093/#/alerts")
    assert any(f.name == "Started" and "<t:" in (f.value or "") for f in embed.fields)


def test_truncated_alerts_are_shown() -> None:
    embed = group_embed(group_of(fixture("07_firing_max_alerts_truncated.json")), NOW)
    assert "+7 more not sent by Alertmanager" in (embed.description or "")


def test_long_annotation_is_cut_not_refused() -> None:
    embed = group_embed(group_of(fixture("11_firing_long_annotation_5000_chars.json")), NOW)
    accepted_by_discord([embed])
    assert "…" in (embed.description or "")


def test_nothing_in_an_alert_can_ping_or_format() -> None:
    embed = group_embed(group_of(fixture("10_firing_mentions_everyone_here_html.json")), NOW)
    joined = "\n".join(texts(embed))
    assert not re.search(r"@(everyone|here)\b", joined), joined
    assert not re.search(r"<@[!&]?\d+>", joined)
    markdown = group_embed(
        group_of(fixture("09_firing_markdown_in_labels_and_annotations.json")), NOW
    )
    assert "```" not in (markdown.description or "")


def test_clean_drops_bidi_overrides_and_control_characters() -> None:
    assert clean("a\u202eb\x07c") == "abc"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("http://x/a(b)") == "http://x/a%28b%29"


def test_acknowledged_and_silenced_are_shown() -> None:
    group = group_of(
        fixture("01_firing_single_nodeoffline.json"),
        acked_by_name="node-bob",
        acked_at=NOW,
        silence_id="abc",
        silence_ends_at=NOW.replace(hour=9),
        silenced_by_name="core-alice",
    )
    fields = {f.name: f.value or "" for f in group_embed(group, NOW).fields}
    assert "node\\-bob" in fields["Acknowledged"] or "node-bob" in fields["Acknowledged"]
    assert "until" in fields["Silenced"]


@pytest.mark.parametrize("count", [1, 10, 11, 25, 40, 50, 100])
def test_digest_fits_one_message_and_names_every_group(count: int) -> None:
    payloads = [json.loads(line) for line in storm("firing")]
    groups = [group_of(payloads[i % 50], group_id=i + 1) for i in range(count)]
    embeds = digest_embeds(groups, NOW)
    assert len(embeds) <= 10
    accepted_by_discord(embeds)
    assert sum(len(e) for e in embeds) <= 6000
    for group in groups:
        if count <= 10:
            assert any(e.footer.text == f"alert group #{group.id}" for e in embeds)
        else:  # every line whole: its group tag at the end, nothing cut
            assert any(
                line.endswith(f"· #{group.id}")
                for e in embeds
                for line in (e.description or "").splitlines()
            ), group.id


def test_digest_of_ten_is_ten_embeds_one_per_group() -> None:
    payloads = [json.loads(line) for line in storm("firing")[:10]]
    embeds = digest_embeds([group_of(p, group_id=i) for i, p in enumerate(payloads)], NOW)
    assert len(embeds) == 10


def test_digest_size_grows_with_the_backlog() -> None:
    assert digest_size(11, 10, 40) == 10
    assert digest_size(50, 10, 40) == 10
    assert digest_size(200, 10, 40) == 20
    assert digest_size(1000, 10, 40) == 40


def test_mention_roles_go_in_content_only() -> None:
    group = group_of(fixture("01_firing_single_nodeoffline.json"))
    content = message_content([group], [123456789012345678])
    assert content is not None and content.startswith("<@&123456789012345678> critical")
    assert message_content([group], []) is None


async def test_a_digests_menus_name_its_firing_groups_within_discords_limits() -> None:
    """25 options a menu, at most 5 menus; resolved groups left out; option text plain (no
    markdown escapes, no control or bidi characters) and within 100 characters."""
    from cogs.alerts.views import digest_view

    firing = [json.loads(line) for line in storm("firing")]
    resolved = [json.loads(line) for line in storm("resolved")]
    hostile = dict(firing[0])
    hostile["commonLabels"] = {**hostile["commonLabels"], "alertname": "x_*y*\u202e" + "z" * 300}
    groups = [group_of(p, i + 1) for i, p in enumerate(firing[:30])]
    groups += [group_of(p, 100 + i) for i, p in enumerate(resolved[:5])]
    groups.append(group_of(hostile, 99, acked_by_name="n\nm" * 60))
    view = digest_view(groups)
    assert view is not None
    selects = [item.to_component_dict() for item in view.children]
    assert [s["custom_id"] for s in selects] == ["hh:alerts:pick:0", "hh:alerts:pick:1"]
    options = [o for s in selects for o in s["options"]]
    assert len(selects[0]["options"]) == 25 and len(options) == 31
    assert {int(o["value"]) for o in options} == {*range(1, 31), 99}, "firing groups only"
    for option in options:
        assert len(option["label"]) <= 100 and len(option.get("description", "")) <= 100
        for text in (option["label"], option.get("description", "")):
            assert "\\" not in text and "\n" not in text and "\u202e" not in text
    for select in selects:
        assert len(select.get("placeholder", "")) <= 150
    assert digest_view([group_of(p, 100 + i) for i, p in enumerate(resolved[:3])]) is None
