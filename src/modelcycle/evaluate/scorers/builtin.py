"""The built-in scorers, registered through the same hook as any plugin's."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import import_module
from typing import Any

from modelcycle.evaluate.scorers import (
    bleu,
    judge,
    measures,
    overlap,
    redteam_safe,
    refusal,
    safety,
    sentiment,
    structured,
    text,
)
from modelcycle.evaluate.scorers.types import Scorer, ScorerFactory
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.engine import DetectorRegistry
from modelcycle.hookspecs import hookimpl


def builtin_detectors() -> DetectorRegistry:
    """The guard's built-in detectors alone (no plugin's): for use outside a server."""
    return DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())


def _embedding_similarity(options: Mapping[str, Any]) -> Scorer:
    # Imported on use: numpy and the embedder stay out of processes that never need them.
    semantic = import_module("modelcycle.evaluate.scorers.semantic")
    scorer: Scorer = semantic.build_embedding_similarity(options)
    return scorer


class BuiltinScorers:
    """The built-in scorers, each documented on its class.

    ``exact_match``, ``contains``, ``regex``, ``json_valid``, ``json_schema``,
    ``rouge_l``, ``bleu``, ``embedding_similarity``, ``pii_leak``, ``toxicity``,
    ``refusal``, ``latency``, ``cost``, ``llm_judge`` and ``llm_judge_pairwise``.

    ``detectors`` gives the guard detectors the safety scorers run (in a server:
    the plugin manager's, so a plugin's detector or override counts); it is
    called once, when the first safety scorer is built.
    """

    def __init__(self, detectors: safety.DetectorSource | None = None):
        self._source = detectors or builtin_detectors
        self._detectors: DetectorRegistry | None = None

    def _guard_detectors(self) -> DetectorRegistry:
        if self._detectors is None:
            self._detectors = self._source()
        return self._detectors

    @hookimpl
    def modelcycle_register_scorers(self) -> Mapping[str, ScorerFactory]:
        """Offer the built-in scorers."""
        guard = self._guard_detectors
        return {
            "exact_match": text.build_exact_match,
            "contains": text.build_contains,
            "regex": text.build_regex,
            "json_valid": structured.build_json_valid,
            "json_schema": structured.build_json_schema,
            "rouge_l": overlap.build_rouge_l,
            "bleu": bleu.build_bleu,
            "embedding_similarity": _embedding_similarity,
            "pii_leak": functools.partial(safety.build_pii_leak, detectors=guard),
            "toxicity": functools.partial(safety.build_toxicity, detectors=guard),
            "refusal": refusal.build_refusal,
            "redteam_safe": functools.partial(redteam_safe.build_redteam_safe, detectors=guard),
            "sentiment": sentiment.build_sentiment,
            "length": sentiment.build_length,
            "latency": measures.build_latency,
            "cost": measures.build_cost,
            "llm_judge": judge.build_llm_judge,
            "llm_judge_pairwise": judge.build_llm_judge_pairwise,
        }
