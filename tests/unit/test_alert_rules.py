"""The alert group's pure rules (`bot/domain/alert_rules.py`): operators' acts and the digest."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.alert_rules import (
    EMBEDS_PER_MESSAGE,
    acknowledged,
    actionable,
    digest_size,
    fresh_group,
    incident_draft,
    is_stale,
    mention_roles,
    silence_matchers,
    silenced,
    starts_new_episode,
    updated_group,
    with_incident,
)
from bot.domain.alerts import AlertGroup, AlertStatus, Silence, WebhookPayload
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.roles import Actor
from tests.alerting import fixture

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
OPS = Actor(id=7, name="node-bob")


def payload(name: str) -> WebhookPayload:
    return WebhookPayload.model_validate(fixture(name))


def group(name: str = "01_firing_single_nodeoffline.json") -> AlertGroup:
    body = payload(name)
    return replace(fresh_group(body, body.alerts, NOW), id=5)


def test_a_firing_group_is_actionable_a_resolved_or_missing_one_is_not() -> None:
    firing = group()
    assert actionable(firing) is firing
    with pytest.raises(NotFound):
        actionable(None)
    with pytest.raises(InvalidInput, match="resolved"):
        actionable(replace(firing, status=AlertStatus.RESOLVED))
    with pytest.raises(InvalidInput, match="resolved"):
        actionable(firing, episode=firing.episode + 1)


def test_the_first_acknowledge_stays() -> None:
    taken = acknowledged(group(), OPS, NOW)
    assert taken is not None and taken.acked_by_name == "node-bob" and taken.version == 2
    assert acknowledged(taken, Actor(id=8, name="other"), NOW) is None


def test_the_first_incident_link_stays() -> None:
    linked = with_incident(group(), "INC-2026-0001")
    assert linked is not None and linked.incident_ref == "INC-2026-0001" and linked.version == 2
    assert with_incident(linked, "INC-2026-0002") is None


def test_a_silence_matches_the_common_labels_for_the_offered_hours_only() -> None:
    firing = group()
    assert silence_matchers(firing, 4) == {k: v for k, v in firing.common_labels.items() if v}
    with pytest.raises(InvalidInput, match="1, 4, 24"):
        silence_matchers(firing, 2)
    with pytest.raises(InvalidInput, match="share no labels"):
        silence_matchers(replace(firing, common_labels={"x": ""}), 1)
    on = silenced(firing, Silence("s1", NOW + timedelta(hours=1)), OPS)
    assert (on.silence_id, on.silenced_by_name, on.version) == ("s1", "node-bob", 2)
    off = silenced(on, None, OPS)
    assert (off.silence_id, off.silence_ends_at, off.silenced_by_name) == (None, None, None)


def test_an_incident_drafted_from_a_group() -> None:
    critical = group()
    draft = incident_draft(critical)
    assert draft.severity == (2 if critical.severity == "critical" else 3)
    assert draft.title.startswith(critical.title) and len(draft.title) <= 100
    assert f"alert group #{critical.id}" in draft.summary
    assert incident_draft(replace(critical, severity="warning")).severity == 3


def test_a_late_firing_after_the_resolve_is_stale_a_new_one_a_new_episode() -> None:
    firing = group()
    resolved_body = payload("03_resolved_single_nodeoffline.json")
    resolved = updated_group(
        firing, fresh_group(resolved_body, resolved_body.alerts, NOW), NOW, new_episode=False
    )
    late = payload("01_firing_single_nodeoffline.json")
    assert is_stale(resolved, late)
    assert starts_new_episode(resolved, late)
    again = updated_group(resolved, fresh_group(late, late.alerts, NOW), NOW, new_episode=True)
    assert again.episode == 2 and again.incident_ref is None and again.acked_at is None


def test_digest_size_and_mentions() -> None:
    assert digest_size(5, 10, 40) == EMBEDS_PER_MESSAGE
    assert digest_size(1000, 10, 40) == 40
    critical = replace(group(), severity="critical")
    roles = {"critical": (1, 2), "warning": (3,)}
    assert mention_roles([critical, critical], roles) == (1, 2)
    assert mention_roles([replace(critical, status=AlertStatus.RESOLVED)], roles) == ()
