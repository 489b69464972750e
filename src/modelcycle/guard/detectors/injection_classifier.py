"""An optional local classifier (Prompt Guard or any sequence-classification model).

The operator provisions the model directory; it is read with ``local_files_only``
and never downloaded. It loads on first use (the first guarded request pays for
it), is shared by all threads, and reads at most ``max_chunks`` windows of the
model's length, so a huge text costs a bounded amount of compute.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.guard.detectors.injection_phrases import INJECTION, JAILBREAK
from modelcycle.guard.types import Finding

BENIGN_LABEL = re.compile(r"benign|safe|legit|negative|clean|normal|^label_0$|^0$", re.IGNORECASE)
CHARS_PER_TOKEN = 8
"""Upper bound used to clip the text before tokenising (no chunk is ever lost to it)."""


@dataclass(frozen=True, slots=True)
class _Loaded:
    tokenizer: Any
    model: Any
    max_tokens: int
    benign: int
    kinds: dict[int, str]


class InjectionClassifier:
    """Scores text windows with a local model; a finding per window over the threshold."""

    def __init__(self, path: str, threshold: float, max_chunks: int, detector: str):
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise InvalidInput(
                f"classifier_path: no model at {folder} (expected a local directory with "
                "config.json, tokenizer and weights, e.g. a saved Prompt Guard); models are "
                "never downloaded",
                param="classifier_path",
            )
        for module in ("transformers", "torch"):
            if importlib.util.find_spec(module) is None:
                raise MissingExtra(module, "hf")
        self.path = folder
        self.threshold = threshold
        self.max_chunks = max_chunks
        self.detector = detector
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.path, local_files_only=True
                )
                model.eval()
                labels = {int(k): str(v) for k, v in model.config.id2label.items()}
                benign = next((i for i, name in labels.items() if BENIGN_LABEL.search(name)), 0)
                kinds = {
                    i: JAILBREAK if "jailbreak" in name.lower() else INJECTION
                    for i, name in labels.items()
                    if i != benign
                }
                limits = [512, getattr(model.config, "max_position_embeddings", 512)]
                if isinstance(tokenizer.model_max_length, int):
                    limits.append(tokenizer.model_max_length)
                self._loaded = _Loaded(tokenizer, model, min(limits), benign, kinds)
            return self._loaded

    def findings(self, text: str) -> list[Finding]:
        """One finding per window the model scores as an attack (above the threshold)."""
        if not text.strip():
            return []
        loaded = self._load()
        windows = self._windows(loaded, text)
        import torch

        chunks = [text[start:end] for start, end in windows]
        batch = loaded.tokenizer(
            chunks,
            truncation=True,
            max_length=loaded.max_tokens,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            probabilities = torch.softmax(loaded.model(**batch).logits, dim=-1).tolist()
        found = []
        for (start, end), row in zip(windows, probabilities, strict=True):
            score = 1.0 - row[loaded.benign]
            if score < self.threshold or not loaded.kinds:
                continue
            label = max(loaded.kinds, key=lambda index: row[index])
            found.append(Finding(self.detector, loaded.kinds[label], start, end, score))
        return found

    def _windows(self, loaded: _Loaded, text: str) -> list[tuple[int, int]]:
        """Character spans of consecutive windows of ``max_tokens - 2`` tokens."""
        size = max(loaded.max_tokens - 2, 1)
        clipped = text[: self.max_chunks * size * CHARS_PER_TOKEN]
        if not getattr(loaded.tokenizer, "is_fast", False):
            # No offsets from a slow tokenizer: windows of characters short enough to fit.
            step = size * 2
            return [(i, min(i + step, len(clipped))) for i in range(0, len(clipped), step)][
                : self.max_chunks
            ]
        encoded = loaded.tokenizer(
            clipped, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = encoded["offset_mapping"]
        if not offsets:
            return [(0, len(clipped))]
        windows = []
        for first in range(0, len(offsets), size):
            last = min(first + size, len(offsets)) - 1
            windows.append((offsets[first][0], offsets[last][1]))
            if len(windows) >= self.max_chunks:
                break
        return windows
