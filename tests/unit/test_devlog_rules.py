"""#dev-log's pure rules (bot/domain/devlog.py), the webhook's signature check, the renderers
of its messages and the incident links on the card and in the report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.domain.devlog import (
    DevLogPolicy,
    DevLogPost,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    ReleaseEvent,
    WorkflowRunEvent,
    commit_lines,
    failed_data,
    failing_seconds,
    incident_refs,
    is_older_run,
    joins_burst,
    merged_into_default,
    parse_event,
    passed_data,
    release_assets,
    safe_line,
    safe_url,
    workflow_outcome,
)
from bot.domain.errors import InvalidInput
from bot.domain.incident_texts import postmortem
from bot.domain.incidents import (
    Incident,
    IncidentLink,
    IncidentStatus,
    LinkKind,
    Severity,
    link_target,
)
from bot.web.github import signature_of, verified
from cogs.devlog import render
from cogs.incidents.render import card
from tests.github_webhooks import SECRET, fixture, merged_pr, sign, workflow_run

NOW = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)


# -- the captured bodies parse as their events ---------------------------------------------------


@pytest.mark.parametrize(
    ("event", "name", "model"),
    [
        ("workflow_run", "workflow_run_failure", WorkflowRunEvent),
        ("workflow_run", "workflow_run_success", WorkflowRunEvent),
        ("pull_request", "pull_request_merged", PullRequestEvent),
        ("release", "release_published", ReleaseEvent),
        ("push", "push", PushEvent),
        ("ping", "ping", PingEvent),
    ],
)
def test_captured_bodies_parse(event: str, name: str, model: type) -> None:
    assert isinstance(parse_event(event, fixture(name)), model)


def test_a_body_that_is_not_the_event_names_the_field() -> None:
    body = fixture("pull_request_merged")
    del body["pull_request"]["base"]
    with pytest.raises(ValidationError) as caught:
        parse_event("pull_request", body)
    assert caught.value.errors()[0]["loc"] == ("pull_request", "base")


# -- incident ids ----------------------------------------------------------------------------


def test_incident_refs_in_order_once_normalised() -> None:
    text = (
        "Fixes INC-2026-0042 and inc-2026-0007; again INC-2026-0042, "
        "not XINC-2026-0001 nor INC-26-1 nor INC-2026-7"
    )
    assert incident_refs(text, "see INC-2027-12345") == [
        "INC-2026-0042",
        "INC-2026-0007",
        "INC-2027-12345",
    ]
    assert incident_refs(None, "") == []
    assert len(incident_refs(" ".join(f"INC-2026-{n:04d}" for n in range(30)))) == 10


def test_commit_lines_keep_the_commits_naming_an_incident() -> None:
    push = parse_event("push", fixture("push"))
    assert isinstance(push, PushEvent)
    assert [c.id[:7] for c in commit_lines(push.commits)] == ["de9f2c7"]


# -- text from GitHub on Discord ---------------------------------------------------------------


def test_safe_line_breaks_mentions_markdown_and_lines() -> None:
    text = safe_line("Fix @everyone <@&123> <@42> **bold** [x](https://evil)\nnext\u202eline", 200)
    assert "@everyone" not in text and "<@&" not in text and "<@4" not in text
    assert "\n" not in text and "\u202e" not in text
    assert "\\*\\*bold\\*\\*" in text and "\\[x\\]" in text
    assert len(safe_line("a" * 500, 100)) <= 100 + 10  # escapes may only add backslashes


def test_only_https_urls_become_links() -> None:
    assert safe_url("https://github.com/o/r/pull/1") == "https://github.com/o/r/pull/1"
    for bad in (
        "javascript:alert(1)",
        "http://github.com/x",
        "https://x/a b",
        "https://x/(y)",
        None,
    ):
        assert safe_url(bad) is None


# -- workflows ---------------------------------------------------------------------------------


def _run(conclusion: str, **kw) -> WorkflowRunEvent:
    event = parse_event("workflow_run", workflow_run(conclusion, **kw))
    assert isinstance(event, WorkflowRunEvent)
    return event


def test_workflow_outcome_only_on_the_default_branch() -> None:
    assert workflow_outcome(_run("failure", run_id=1, started="2026-11-28T02:00:00Z")) == "failed"
    assert workflow_outcome(_run("timed_out", run_id=1, started="2026-11-28T02:00:00Z")) == "failed"
    assert workflow_outcome(_run("success", run_id=2, started="2026-11-28T02:00:00Z")) == "passed"
    other = _run("failure", run_id=3, started="2026-11-28T02:00:00Z", branch="feature/x")
    assert workflow_outcome(other) == "ignored"
    assert workflow_outcome(_run("cancelled", run_id=4, started="2026-11-28T02:00:00Z")) == (
        "ignored"
    )
    body = workflow_run("failure", run_id=5, started="2026-11-28T02:00:00Z")
    body["action"] = "requested"
    assert workflow_outcome(WorkflowRunEvent.model_validate(body)) == "ignored"


def test_a_failing_streak_keeps_its_start_and_counts_then_goes_green() -> None:
    first = failed_data(
        None, _run("failure", run_id=1, started="2026-11-28T02:00:00Z"), received=NOW
    )
    again = failed_data(
        first, _run("failure", run_id=2, started="2026-11-28T02:30:00Z"), received=NOW
    )
    assert again["failing_since"] == first["failing_since"] == "2026-11-28T02:00:00+00:00"
    assert again["failed_runs"] == 2 and again["last"]["run_id"] == 2
    assert failing_seconds(again, NOW) == 5400
    green = passed_data(
        again, _run("success", run_id=3, started="2026-11-28T03:00:00Z"), received=NOW
    )
    assert green["state"] == "passed" and green["passed"]["run_id"] == 3
    older = _run("success", run_id=0, started="2026-11-28T01:00:00Z")
    assert is_older_run(again, older)
    assert not is_older_run(again, _run("success", run_id=4, started="2026-11-28T03:00:00Z"))


# -- merges ------------------------------------------------------------------------------------


def test_merged_into_the_default_branch_only() -> None:
    merged = parse_event("pull_request", merged_pr(1, "x"))
    assert isinstance(merged, PullRequestEvent) and merged_into_default(merged)
    other = parse_event("pull_request", merged_pr(2, "x", base="release/1.x"))
    assert isinstance(other, PullRequestEvent) and not merged_into_default(other)
    body = merged_pr(3, "x")
    body["pull_request"]["merged"] = False
    assert not merged_into_default(PullRequestEvent.model_validate(body))


def test_a_burst_joins_within_the_window_and_size() -> None:
    policy = DevLogPolicy(merge_burst=timedelta(minutes=10), merge_burst_max=2)
    post = DevLogPost(1, "merges:x", "devlog.merges", {"merges": [{}]}, True, NOW, NOW)
    assert joins_burst(post, NOW + timedelta(minutes=9), policy)
    assert not joins_burst(post, NOW + timedelta(minutes=11), policy)
    assert not joins_burst(replace(post, data={"merges": [{}, {}]}), NOW, policy)
    assert not joins_burst(replace(post, open=False), NOW, policy)


def test_release_assets_need_the_manifest_and_its_signature() -> None:
    event = parse_event("release", fixture("release_published"))
    assert isinstance(event, ReleaseEvent)
    urls = release_assets(event)
    assert urls is not None and urls[1] == urls[0] + ".minisig"
    unsigned = fixture("release_published")
    unsigned["release"]["assets"] = unsigned["release"]["assets"][:1]
    assert release_assets(ReleaseEvent.model_validate(unsigned)) is None


# -- the signature ---------------------------------------------------------------------------


def test_signature_as_github_computes_it() -> None:
    body = b'{"zen":"Design for failure."}'
    assert signature_of(SECRET.encode(), body) == sign(body)
    assert verified(sign(body), SECRET.encode(), body)
    for wrong in (None, "", "sha256=", sign(body, "another-secret-0123456789"), "sha1=abc", "é"):
        assert not verified(wrong, SECRET.encode(), body)


# -- links ---------------------------------------------------------------------------------------


def test_link_target_accepts_pull_requests_and_commits_only() -> None:
    assert link_target("https://github.com/hyper-hash/hyper-node/pull/57") == (
        LinkKind.PR,
        "pull request #57",
    )
    assert link_target("https://github.com/o/r/commit/DE9F2C7FD25E1B3A/") == (
        LinkKind.COMMIT,
        "commit de9f2c7",
    )
    for bad in (
        "http://github.com/o/r/pull/1",
        "https://github.com/o/r/issues/1",
        "https://github.com/o/r/pull/1?x=<@&1>",
        "javascript:alert(1)",
        "https://github.com/o/r/pull/" + "1" * 400,
    ):
        with pytest.raises(InvalidInput):
            link_target(bad)


def _incident(*links: IncidentLink) -> Incident:
    return Incident(
        id=1,
        ref="INC-2026-0001",
        severity=Severity.SEV2,
        status=IncidentStatus.RESOLVED,
        title="Payouts rounding",
        summary="",
        nodes="",
        reporter_id=1,
        reporter_name="core-alice",
        opened_at=NOW,
        last_update_at=NOW,
        links=links,
    )


HOSTILE = IncidentLink(
    LinkKind.PR,
    "https://github.com/hyper-hash/hyper-node/pull/57",
    "Fix @everyone <@&123456789012345678> ](https://evil) <!-- x -->",
    "alice-dev",
    NOW,
)


def test_the_card_lists_links_made_safe() -> None:
    embed = card(_incident(HOSTILE), github_configured=False)
    field = next(f for f in embed.fields if f.name == "Linked changes")
    assert "https://github.com/hyper-hash/hyper-node/pull/57" in (field.value or "")
    assert "@everyone" not in (field.value or "") and "<@&" not in (field.value or "")
    many = [replace(HOSTILE, url=f"{HOSTILE.url}{n}", title=f"t{n}") for n in range(8)]
    value = next(f for f in card(_incident(*many), github_configured=False).fields).value
    assert value is not None
    field = next(
        f
        for f in card(_incident(*many), github_configured=False).fields
        if f.name == "Linked changes"
    )
    assert "3 more" in (field.value or "") and len(field.value or "") <= 1024


def test_the_report_lists_links_safe_for_github() -> None:
    text = postmortem(_incident(HOSTILE), [], now=NOW)
    assert "## Linked changes" in text
    line = next(line for line in text.splitlines() if HOSTILE.url in line)
    assert "@\u200beveryone" in line and "<!--" not in line and "\\]" in line
    assert "_none linked_" in postmortem(_incident(), [], now=NOW)


# -- renderers -------------------------------------------------------------------------------


def test_workflow_message_failing_then_green_within_limits() -> None:
    failing = failed_data(
        None,
        _run("failure", run_id=1, started="2026-11-28T02:00:00Z", name="CI @everyone " + "x" * 400),
        received=NOW,
    )
    red = render.workflow(failing)
    assert red.content and "CI failing" in red.content and "@everyone" not in red.content
    assert red.embeds[0].colour == render.COLOUR_FAILING and len(red.embeds[0]) <= 6000
    green_data = passed_data(
        failing, _run("success", run_id=2, started="2026-11-28T03:00:00Z"), received=NOW
    )
    green_data["failed_for_seconds"] = 3600
    green = render.workflow(green_data)
    assert green.content and "green" in green.content
    assert green.embeds[0].colour == render.COLOUR_PASSED
    assert "1 h" in (green.embeds[0].description or "") or "60" in (
        green.embeds[0].description or ""
    )


def test_merges_message_lists_each_merge_safely() -> None:
    lines = [
        {
            "number": n,
            "title": "Release @here <@1> " + "t" * 300,
            "author": "alice",
            "url": f"https://github.com/o/r/pull/{n}",
            "merged_at": NOW.isoformat(),
        }
        for n in range(1, 40)
    ]
    rendered = render.merges({"repository": "hyper-hash/hyper-node", "merges": lines})
    embed = rendered.embeds[0]
    assert "39 pull requests" in (embed.title or "")
    assert "@here" not in (embed.description or "") and "<@1>" not in (embed.description or "")
    assert len(embed) <= 6000 and len(embed.description or "") <= 4096
