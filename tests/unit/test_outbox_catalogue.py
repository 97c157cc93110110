"""The outbox catalogue (bot/domain/outbox.py) is complete and the only source of names: every
kind has exactly one handler in a composed app, every notice template a renderer, and no
service passes a kind or template as a bare string."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import cogs
from bot.domain.outbox import NoticeTemplate, OutboxKind, ReminderKind
from tests.unit.test_config import GOOD

ROOT = Path(__file__).resolve().parents[2]

FULL = (
    GOOD
    + '[smtp]\nhost = "127.0.0.1"\nfrom = "bot@example.org"\nto = ["ops@example.org"]\n'
    + '[github]\nrepo = "hyper-hash/ops"\ntoken = "x"\napi_url = "http://127.0.0.1:9"\n'
)


@pytest.fixture
def app(tmp_path):
    from bot.app import Application
    from bot.config import load_settings

    path = tmp_path / "config.toml"
    path.write_text(FULL)
    return Application(load_settings(path, environ={}).settings)


def test_every_outbox_kind_has_a_handler_in_its_lane(app) -> None:
    assert app.outbox.kinds() == set(OutboxKind)
    for kind in OutboxKind:
        assert (app.outbox.lane_of(kind) == "discord") is kind.to_discord, kind


def test_every_reminder_kind_has_a_handler(app) -> None:
    assert app.reminders.kinds() == set(ReminderKind)


def test_without_smtp_and_github_their_kinds_have_no_handler(tmp_path) -> None:
    """Nothing enqueues them then; an item left from another configuration fails visibly."""
    from bot.app import Application
    from bot.config import load_settings

    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    kinds = Application(load_settings(path, environ={}).settings).outbox.kinds()
    assert OutboxKind.EMAIL not in kinds
    assert not {k for k in kinds if k.startswith("github.")}


def _renderers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for module in pkgutil.walk_packages(cogs.__path__, "cogs."):
        if not module.name.endswith(".render"):
            continue
        templates = getattr(importlib.import_module(module.name), "TEMPLATES", {})
        for name in templates:
            found.setdefault(name, []).append(module.name)
    return found


def test_every_notice_template_has_exactly_one_renderer() -> None:
    renderers = _renderers()
    assert set(renderers) == set(NoticeTemplate)
    assert all(len(where) == 1 for where in renderers.values()), renderers


def test_catalogue_values_are_unique() -> None:
    for catalogue in (OutboxKind, ReminderKind, NoticeTemplate):
        values = [member.value for member in catalogue]
        assert len(values) == len(set(values)), catalogue


# (method, index of the positional argument that names a kind or template, keyword name)
NAMED = {
    "enqueue": (1, "kind"),
    "register": (0, "kind"),
    "schedule": (1, "kind"),
    "cancel": (1, "kind"),
    "notice": (1, "template"),
    "direct": (1, "template"),
}


def test_no_kind_or_template_is_a_bare_string() -> None:
    """A typo in a free string would be a kind nobody handles: names come from the enums."""
    offences = []
    for path in sorted((ROOT / "bot").rglob("*.py")) + sorted((ROOT / "cogs").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            spec = NAMED.get(node.func.attr)
            if spec is None:
                continue
            index, keyword = spec
            args = [node.args[index]] if len(node.args) > index else []
            args += [kw.value for kw in node.keywords if kw.arg == keyword]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {arg.value!r}")
    assert not offences, offences
