"""[github] settings and how GitHub's answers map onto the outbox's retry policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from github import GithubException, RateLimitExceededException

from bot.config import ConfigError, load_settings
from bot.domain.outbox import PermanentFailure, RetryLater
from bot.integrations.github import classify
from tests.unit.test_config import GOOD

NOW = 1_800_000_000.0


def test_rate_limit_waits_until_the_reset() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 120))}
    exc = RateLimitExceededException(403, {"message": "API rate limit exceeded"}, headers)
    mapped = classify(exc, NOW)
    assert isinstance(mapped, RetryLater) and mapped.retry_after == 121.0
    secondary = GithubException(403, {"message": "slow down"}, {"Retry-After": "30"})
    mapped = classify(secondary, NOW)
    assert isinstance(mapped, RetryLater) and mapped.retry_after == 30.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(status: int) -> None:
    assert isinstance(classify(GithubException(status, {}, {}), NOW), RetryLater)


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_refusals_are_permanent(status: int) -> None:
    mapped = classify(GithubException(status, {"message": "Not Found"}, {}), NOW)
    assert isinstance(mapped, PermanentFailure) and str(status) in str(mapped)


def test_timeouts_and_network_errors_are_retried() -> None:
    assert isinstance(classify(requests.exceptions.ReadTimeout(), NOW), RetryLater)
    assert isinstance(classify(requests.exceptions.ConnectionError(), NOW), RetryLater)
    assert isinstance(classify(TimeoutError(), NOW), RetryLater)
    odd = ValueError("bug")
    assert classify(odd, NOW) is odd


def test_github_section_is_optional_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    settings = load_settings(path, environ={}).settings
    assert not settings.github.configured
    assert settings.github.api_url == "https://api.github.com"
    assert settings.incidents.report_due_hours == 48

    path.write_text(GOOD + '\n[github]\nrepo = "hyper-hash/operations"\n')
    with pytest.raises(ConfigError) as missing:
        load_settings(path, environ={})
    assert missing.value.problems == [
        "github: token is required with repo (HH_GITHUB__TOKEN or token_file)"
    ]

    secret = tmp_path / "gh-token"
    secret.write_text("ghp_from_file\n")
    path.write_text(
        GOOD + f'\n[github]\nrepo = "hyper-hash/operations"\ntoken_file = "{secret}"\n'
        'api_url = "https://github.example.com/api/v3/"\n'
    )
    settings = load_settings(path, environ={}).settings
    assert settings.github.configured
    assert settings.github.api_url == "https://github.example.com/api/v3"
    assert "ghp_from_file" in settings.secret_values()

    path.write_text(GOOD + '\n[github]\nrepo = "no-slash"\ntoken = "x"\n')
    with pytest.raises(ConfigError) as bad:
        load_settings(path, environ={})
    assert bad.value.problems == ["github.repo: must be owner/name"]
