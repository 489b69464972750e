"""Scorers: functions from (sample, output) to a score, by name, extensible through plugins.

Build one through a ``ScorerRegistry`` (``ScorerRegistry.from_plugins(manager)``
with ``BuiltinScorers`` registered, or ``ScorerRegistry(BuiltinScorers()
.modelcycle_register_scorers())`` outside a server), then score with
``score_batch(scorer, samples)``, which never lets a failure become a value.
"""

from modelcycle.evaluate.scorers.builtin import BuiltinScorers, builtin_detectors
from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.regex_safety import compile_safe
from modelcycle.evaluate.scorers.registry import ScorerRegistry
from modelcycle.evaluate.scorers.types import (
    SCORER_KINDS,
    Prompt,
    Score,
    Scorer,
    ScorerFactory,
    ScorerKind,
    ScoringInput,
    missing_reference,
    score_batch,
)

__all__ = [
    "SCORER_KINDS",
    "BuiltinScorers",
    "Prompt",
    "Score",
    "Scorer",
    "ScorerFactory",
    "ScorerKind",
    "ScorerOptions",
    "ScorerRegistry",
    "ScoringInput",
    "builtin_detectors",
    "compile_safe",
    "missing_reference",
    "parse_options",
    "score_batch",
]
