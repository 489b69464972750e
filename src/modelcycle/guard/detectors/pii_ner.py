"""People's names, from a token-classification model the operator put on disk.

Names have no shape a pattern can check, so ``PERSON`` needs a named-entity
model (a transformers token-classification directory, e.g. a multilingual
BERT-NER). It is loaded on first use with ``local_files_only``: nothing is ever
fetched from a hub, and a path that is not a model directory is refused when
the policy is saved, not when the first request arrives.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.guard.types import Finding

PERSON_LABELS = frozenset({"PER", "PERSON"})
CHUNK_CHARS = 2000
"""Texts are tagged in pieces of about this size: models see at most 512 tokens."""


class PersonTagger:
    """Finds ``PERSON`` spans with a local model; thread-safe, loads once."""

    def __init__(self, model_dir: str):
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise InvalidInput(
                f"ner_model: '{model_dir}' is not a directory; give the local path of a "
                "transformers token-classification model (models are never downloaded)",
                param="ner_model",
            )
        if not (path / "config.json").is_file():
            raise InvalidInput(
                f"ner_model: '{model_dir}' has no config.json; save the model there with "
                "save_pretrained() (model and tokenizer)",
                param="ner_model",
            )
        self.path = path
        self._lock = threading.Lock()
        self._pipeline: Any = None

    def find(self, text: str, detector: str) -> list[Finding]:
        """Every person name in ``text``, scored by the model's confidence."""
        out: list[Finding] = []
        with self._lock:  # fast tokenizers may not be shared between threads
            tag = self._load()
            for offset, piece in _chunks(text):
                for entity in tag(piece):
                    if entity.get("entity_group") in PERSON_LABELS:
                        start = offset + int(entity["start"])
                        end = offset + int(entity["end"])
                        out.append(Finding(detector, "PERSON", start, end, float(entity["score"])))
        return out

    def _load(self) -> Any:
        if self._pipeline is None:
            try:
                from transformers import (  # optional, heavy: imported on first use
                    AutoModelForTokenClassification,
                    AutoTokenizer,
                    pipeline,
                )
            except ImportError as exc:
                raise MissingExtra("transformers", "hf") from exc
            tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            model = AutoModelForTokenClassification.from_pretrained(
                str(self.path), local_files_only=True
            )
            self._pipeline = pipeline(
                "token-classification",
                model=model,
                tokenizer=tokenizer,
                aggregation_strategy="simple",
            )
        return self._pipeline


def _chunks(text: str) -> list[tuple[int, str]]:
    """``text`` cut at whitespace into pieces of at most about ``CHUNK_CHARS``."""
    pieces: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + CHUNK_CHARS // 2, end)
            end = cut if cut > start else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces
