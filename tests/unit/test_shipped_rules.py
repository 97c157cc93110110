"""The shipped Prometheus rules and Alertmanager config pass their own tools' checks.

Skipped only when the tool is missing and CI is not set; in CI (`.ci/run` installs the Debian
packages `prometheus` and `prometheus-alertmanager`) a missing tool fails the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.harness.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "hyperhash-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "hyperhash-alerts.test.yml"
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
    run(tool("promtool"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_amtool_checks_the_alertmanager_config() -> None:
    output = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in output


def test_rules_cover_the_manuals_thresholds() -> None:
    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == {
        "NodeOffline",
        "ChannelCapacityLow",
        "TemplateLatencyHigh",
        "CPUHigh",
        "DiskUsageHigh",
        "HashrateDrop",
        "Watchdog",
    }
    assert rules["NodeOffline"]["for"] == "5m"
    assert rules["CPUHigh"]["for"] == "10m" and "> 90" in rules["CPUHigh"]["expr"]
    assert "< 0.1" in rules["ChannelCapacityLow"]["expr"]
    assert "> 0.5" in rules["TemplateLatencyHigh"]["expr"]
    assert "> 85" in rules["DiskUsageHigh"]["expr"]
    assert "0.8 *" in rules["HashrateDrop"]["expr"] and "[24h]" in rules["HashrateDrop"]["expr"]


def test_alertmanager_config_routes_to_the_bot_with_a_bearer_token() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    (receiver,) = config["receivers"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith("/webhooks/alertmanager")
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
