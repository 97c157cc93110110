"""The documentation keeps up with the code: every command, button action and configuration key
is documented, every local link and picture exists, and the pictures script still builds."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bot.config import Settings, _is_secret, _section_model
from bot.domain.permissions import PERMISSIONS
from tests.harness.offline import offline_bot

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OPERATORS = DOCS / "operators.md"
CONFIGURATION = DOCS / "configuration.md"
EXAMPLE = ROOT / "config.example.toml"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# -- docs/operators.md: every slash command and button action ----------------------------------


async def registered_commands(tmp_path: Path) -> set[str]:
    """The slash commands the bot registers (full names: `incident open`), as in
    test_permission_table: load every extension into a real OpsBot and walk its tree."""
    async with offline_bot(tmp_path) as bot:
        return {
            command.qualified_name
            for command in bot.tree.walk_commands()
            if not hasattr(command, "walk_commands")  # groups: only their subcommands count
        }


def undocumented_commands(commands: set[str], text: str) -> list[str]:
    """Commands not written as `/name` (followed by a space, backtick, `]` or line end)."""
    return sorted(c for c in commands if not re.search(rf"/{re.escape(c)}(?=[\s`\]|]|$)", text))


def undocumented_actions(text: str) -> list[str]:
    """Permission-table actions not named: commands as `/name`, buttons as `area:verb`."""
    missing = undocumented_commands({a for a in PERMISSIONS if ":" not in a}, text)
    return missing + sorted(a for a in PERMISSIONS if ":" in a and f"`{a}`" not in text)


async def test_operators_doc_names_every_registered_command(tmp_path: Path) -> None:
    commands = await registered_commands(tmp_path)
    assert len(commands) > 20
    assert undocumented_commands(commands, OPERATORS.read_text()) == []


def test_operators_doc_names_every_permission_table_action() -> None:
    assert undocumented_actions(OPERATORS.read_text()) == []


def test_the_operators_check_fails_when_a_command_or_button_is_dropped() -> None:
    text = OPERATORS.read_text()
    without = re.sub(r"/incident open(?=[\s`\]|])", "/incident", text)
    assert undocumented_commands({"incident open"}, without) == ["incident open"]
    assert "alerts:ack" in undocumented_actions(text.replace("`alerts:ack`", "ack"))


# -- docs/configuration.md: every key of config.example.toml -----------------------------------

_SECTION = re.compile(r"^#?\s*\[([a-z_]+)\]\s*$")
_KEY = re.compile(r"^#?\s*([a-z0-9_]+) = ")


def example_keys() -> dict[str, set[str]]:
    """Every key config.example.toml names, set or commented out (`# key = ...`), per section."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        if found := _SECTION.match(line):
            section = found[1]
            keys.setdefault(section, set())
        elif section and (found := _KEY.match(line)):
            keys[section].add(found[1])
    for names in keys.values():  # `webhook_token_file = ...`: a secret's file form, not a key
        names -= {n for n in names if n.endswith("_file") and n.removesuffix("_file") in names}
    return keys


def settings_keys() -> dict[str, set[str]]:
    """Every key the settings models accept (as test_example_documents_every_key lists them)."""
    keys: dict[str, set[str]] = {}
    for section, field in Settings.model_fields.items():
        model = _section_model(field.annotation)
        fields = model.model_fields.items()  # type: ignore[attr-defined]
        keys[section] = {info.alias or name for name, info in fields}
    return keys


def documented_sections(text: str) -> dict[str, str]:
    """The text under each `## [section]` heading of docs/configuration.md."""
    parts = re.split(r"^## `\[([a-z_]+)\]`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def undocumented_keys(keys: dict[str, set[str]], text: str) -> list[str]:
    sections = documented_sections(text)
    missing = []
    for section, names in sorted(keys.items()):
        body = sections.get(section)
        for name in sorted(names):
            if body is None or not re.search(rf"^\| `{re.escape(name)}` \|", body, flags=re.M):
                missing.append(f"{section}.{name}")
    return missing


def test_example_keys_are_the_settings_keys() -> None:
    """The example's keys (set or commented) are exactly what the settings accept."""
    assert example_keys() == settings_keys()


def test_configuration_doc_documents_every_key_of_the_example() -> None:
    keys = example_keys()
    assert sum(len(names) for names in keys.values()) > 90
    assert undocumented_keys(keys, CONFIGURATION.read_text()) == []


def test_configuration_doc_names_every_secret_file_key() -> None:
    text = CONFIGURATION.read_text()
    secrets = [
        (section, info.alias or name)
        for section, field in Settings.model_fields.items()
        for name, info in _section_model(field.annotation).model_fields.items()  # type: ignore[attr-defined]
        if _is_secret(info.annotation)
    ]
    assert len(secrets) >= 7
    for section, key in secrets:
        env = f"HH_{section.upper()}__{key.upper()}_FILE"
        assert f"`{section}.{key}`" in text and f"`{key}_file`" in text and env in text, key


def test_the_configuration_check_fails_when_a_key_is_dropped() -> None:
    text = CONFIGURATION.read_text()
    without = re.sub(r"^\| `storm_horizon` \|.*\n", "", text, flags=re.M)
    assert undocumented_keys(example_keys(), without) == ["alerts.storm_horizon"]


# -- links and pictures -------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)|<img [^>]*src=\"([^\"]+)\"")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_local_links_and_pictures_exist(page: Path) -> None:
    for match in _LINK.finditer(page.read_text()):
        target = match[1] or match[2]
        if re.match(r"^[a-z]+:", target):
            continue  # https://, mailto:
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name} links to missing {target}"


def pictures_script() -> ModuleType:
    path = ROOT / "scripts" / "pictures.py"
    spec = importlib.util.spec_from_file_location("hh_pictures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


async def test_pictures_script_builds_every_picture_from_the_real_render_functions() -> None:
    """No Chromium here: the payloads and their HTML. Every picture is committed."""
    script = pictures_script()
    shots = script.build_shots()
    assert {shot.name for shot in shots} >= {
        "alert-firing",
        "alert-resolved",
        "incident-card",
        "health-operator",
        "status-miners",
        "release-notice",
    }
    for shot in shots:
        page = script.page(shot)
        assert '<div class="embed"' in page or shot.payload["content"], shot.name
        assert (DOCS / "pictures" / f"{shot.name}.png").is_file(), shot.name
    firing = next(s for s in shots if s.name == "alert-firing")
    labels = [c["label"] for row in firing.payload["components"] for c in row["components"]]
    assert labels == ["Acknowledge", "Silence 1 h", "Silence 4 h", "Silence 24 h", "Open incident"]
