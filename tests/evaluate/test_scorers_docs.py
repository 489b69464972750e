"""docs/scorers.md cannot drift: every scorer and option documented, examples run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelcycle.evaluate.scorers import BuiltinScorers, ScorerOptions, ScorerRegistry, ScoringInput
from modelcycle.plugins import build_plugin_manager

DOC = (Path(__file__).parents[2] / "docs" / "scorers.md").read_text(encoding="utf-8")
BUILTIN = sorted(BuiltinScorers().modelcycle_register_scorers())


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_scorer_is_in_the_table_and_has_a_section(name: str) -> None:
    assert f"| `{name}` |" in DOC
    assert re.search(rf"^### .*`{name}`", DOC, re.MULTILINE), name


def _options_classes() -> list[type[ScorerOptions]]:
    found: list[type[ScorerOptions]] = []
    pending: list[type[ScorerOptions]] = [ScorerOptions]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass.__module__.startswith("modelcycle.evaluate.scorers"):
                found.append(subclass)
            pending.append(subclass)
    return found


@pytest.mark.parametrize("options", _options_classes(), ids=lambda cls: cls.__name__)
def test_every_option_is_described_and_named_in_the_docs(options: type[ScorerOptions]) -> None:
    for name, field in options.model_fields.items():
        assert field.description, f"{options.__name__}.{name}"
        assert f"`{field.alias or name}`" in DOC, f"{options.__name__}.{name} not in the docs"


def test_the_python_examples_run() -> None:
    usage, plugin = python_blocks()
    exec(usage, {})  # its assert checks the documented value
    namespace: dict[str, Any] = {}
    exec(plugin, namespace)
    manager = build_plugin_manager(
        [BuiltinScorers(), namespace["WordBudgetPlugin"]()], load_entry_points=False
    )
    registry = ScorerRegistry.from_plugins(manager)
    budget = registry.build("word_budget", {"max_words": 3})
    assert budget.score(ScoringInput("one two three")).value == 1.0
    assert budget.score(ScoringInput("one two three four")).value == 0.0
