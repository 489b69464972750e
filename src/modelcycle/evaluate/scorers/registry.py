"""Scorers by name: the factories every ``modelcycle_register_scorers`` hook offers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import orjson
import pluggy

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.scorers.types import SCORER_KINDS, Scorer, ScorerFactory


class ScorerRegistry:
    """Name -> factory, and the scorers built from them (one per name and options).

    Built scorers are cached: a scorer holding a model (embeddings) loads it
    once per registry, however many runs use it.
    """

    def __init__(self, factories: Mapping[str, ScorerFactory]):
        self.factories: dict[str, ScorerFactory] = dict(factories)
        self._built: dict[tuple[str, bytes], Scorer] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_plugins(cls, manager: pluggy.PluginManager) -> ScorerRegistry:
        """The scorers of every plugin; one registered later overrides an earlier one by name.

        Register ``BuiltinScorers`` in ``manager`` for the built-ins.
        """
        merged: dict[str, ScorerFactory] = {}
        # pluggy calls the most recently registered plugin first.
        for offered in reversed(manager.hook.modelcycle_register_scorers()):
            merged.update(offered)
        return cls(merged)

    def names(self) -> list[str]:
        """Every registered scorer name, sorted."""
        return sorted(self.factories)

    def build(self, name: str, options: Mapping[str, Any] | None = None) -> Scorer:
        """The scorer ``name`` with ``options``; a 400 naming what is wrong.

        Raises ``MissingExtra`` when the scorer needs an optional dependency
        that is not installed.
        """
        factory = self.factories.get(name)
        if factory is None:
            known = ", ".join(self.names()) or "none"
            raise InvalidInput(f"unknown scorer '{name}' (known: {known})", param="scorer")
        options = dict(options or {})
        try:
            key = (name, orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
        except TypeError:
            raise InvalidInput(f"scorer {name}: options must be JSON", param="options") from None
        with self._lock:
            scorer = self._built.get(key)
            if scorer is None:
                scorer = _conforming(name, _call(name, factory, options))
                self._built[key] = scorer
        return scorer


_MEMBERS = ("name", "kind", "needs_reference", "higher_is_better", "score", "score_many")


def _call(name: str, factory: ScorerFactory, options: Mapping[str, Any]) -> Scorer:
    try:
        return factory(options)
    except InvalidInput:
        raise
    except (TypeError, ValueError) as exc:  # a plugin's own validation, pydantic included
        raise InvalidInput(f"scorer {name}: {exc}", param="options") from None


def _conforming(name: str, scorer: object) -> Scorer:
    """``scorer`` when it implements the protocol; a 400 naming what it lacks otherwise."""
    if not isinstance(scorer, Scorer):
        missing = [attribute for attribute in _MEMBERS if not hasattr(scorer, attribute)]
        raise InvalidInput(
            f"scorer {name}: its plugin built a {type(scorer).__name__}, which lacks "
            f"{', '.join(missing)} (see modelcycle.evaluate.scorers.Scorer)"
        )
    if scorer.kind not in SCORER_KINDS:
        raise InvalidInput(
            f"scorer {name}: kind {scorer.kind!r} is not one of {', '.join(SCORER_KINDS)}"
        )
    return scorer
