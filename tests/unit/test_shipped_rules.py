"""The shipped Prometheus rules and Alertmanager config pass their own tools' checks.

Skipped only when the tool is missing and CI is not set; in CI (`.ci/run` installs the Debian
packages `prometheus` and `prometheus-alertmanager`) a missing tool fails the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.harness.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "hyperhash-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "hyperhash-alerts.test.yml"
BASELINE_TESTS = ROOT / "deploy" / "prometheus" / "hyperhash-baselines.test.yml"
OPSBOT_TESTS = ROOT / "deploy" / "prometheus" / "hyperhash-opsbot.test.yml"
TEST_FILES = (RULE_TESTS, BASELINE_TESTS, OPSBOT_TESTS)
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALWAYS_FIRING = {"Watchdog"}
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    package = "prometheus" if name == "promtool" else "prometheus-alertmanager"
    return require_binary(name, package=package)


def run(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_checks_the_rules() -> None:
    output = run(tool("promtool"), "check", "rules", str(RULES))
    assert "SUCCESS" in output


def test_promtool_unit_tests_the_thresholds() -> None:
    output = run(
        tool("promtool"),
        "test",
        "rules",
        *(f.name for f in TEST_FILES),
        cwd=ROOT / "deploy" / "prometheus",
    )
    assert output.count("SUCCESS") == len(TEST_FILES), output


def alert_rules() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_every_rule_has_an_owning_team_and_a_severity() -> None:
    for name, rule in alert_rules().items():
        assert rule["labels"]["team"] in {"core", "node", "treasury"}, name
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, name


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    rules = set(alert_rules())
    assert rules - firing == set()
    assert rules - ALWAYS_FIRING - quiet == set()


def test_amtool_checks_the_alertmanager_config() -> None:
    output = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in output


def test_rules_cover_the_manuals_thresholds() -> None:
    rules = alert_rules()
    assert set(rules) >= {
        "NodeOffline",
        "ChannelCapacityLow",
        "TemplateLatencyHigh",
        "CPUHigh",
        "DiskUsageHigh",
        "HashrateDrop",
        "Watchdog",
        # Manual §16 baselines, §12 Sev 1 (hyperhash-baselines).
        "NodeRTTHigh",
        "TelemetryStale",
        "PayoutSlow",
        "PayoutsHalted",
        "PoolHashrateDrop",
        "PoolUptimeBudgetBurnFast",
        "PoolUptimeBudgetBurnSlow",
        # The email fallback (issue 15 §4, hyperhash-opsbot).
        "OpsBotHealthy",
        "CriticalAlertFallback",
    }
    assert rules["NodeOffline"]["for"] == "5m"
    assert rules["CPUHigh"]["for"] == "10m" and "> 90" in rules["CPUHigh"]["expr"]
    assert "< 0.1" in rules["ChannelCapacityLow"]["expr"]
    assert "> 0.05" in rules["TemplateLatencyHigh"]["expr"]  # 50 ms, manual §16
    assert "> 0.25" in rules["NodeRTTHigh"]["expr"]
    assert "> 5" in rules["TelemetryStale"]["expr"]
    assert "> 30" in rules["PayoutSlow"]["expr"]
    fast, slow = (
        rules["PoolUptimeBudgetBurnFast"]["expr"],
        rules["PoolUptimeBudgetBurnSlow"]["expr"],
    )
    assert "[1h]" in fast and "[5m]" in fast and "14.4 * 0.001" in fast
    assert "[6h]" in slow and "[30m]" in slow and "6 * 0.001" in slow
    assert (
        "0.8 *" in rules["PoolHashrateDrop"]["expr"] and "[24h" in rules["PoolHashrateDrop"]["expr"]
    )
    assert rules["PayoutsHalted"]["labels"]["severity"] == "critical"
    assert "> 85" in rules["DiskUsageHigh"]["expr"]
    assert "0.8 *" in rules["HashrateDrop"]["expr"] and "[24h]" in rules["HashrateDrop"]["expr"]


def test_alertmanager_config_routes_to_the_bot_with_a_bearer_token() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert config["route"]["receiver"] == "hh-opsbot"
    (webhook,) = receivers["hh-opsbot"]["webhook_configs"]
    assert webhook["url"].endswith("/webhooks/alertmanager")
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"


def test_promtool_checks_the_prometheus_config_that_scrapes_the_bot() -> None:
    output = run(tool("promtool"), "check", "config", str(PROMETHEUS))
    assert "SUCCESS" in output
    (job,) = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    assert job["job_name"] == "hh-opsbot" and job["metrics_path"] == "/metrics"


def test_email_fallback_for_critical_alerts_is_inhibited_while_the_bot_is_healthy() -> None:
    """Issue 15 §4: the email twins go to core-ops-email, and OpsBotHealthy mutes them."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    (email,) = receivers["core-ops-email"]["email_configs"]
    assert email["to"]
    routes = config["route"]["routes"]
    assert routes[0]["matchers"] == ['fallback="email"']
    assert routes[0]["receiver"] == "core-ops-email"
    assert {
        "source_matchers": ['alertname="OpsBotHealthy"'],
        "target_matchers": ['fallback="email"'],
    } in config["inhibit_rules"]
    rules = alert_rules()
    assert "hh_opsbot_discord_connected" in rules["OpsBotHealthy"]["expr"]
    assert 'up{job="hh-opsbot"}' in rules["OpsBotHealthy"]["expr"]
    assert rules["CriticalAlertFallback"]["labels"]["fallback"] == "email"
    assert 'severity="critical"' in rules["CriticalAlertFallback"]["expr"]
