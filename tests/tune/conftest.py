"""Fixtures of the training engine's tests: a tiny Llama over the toy task's words.

The model's weights use a larger initial scale (0.3) so the frozen output head
can express confident predictions; with the usual 0.02 it cannot, and no LoRA
on the attention projections can fix that.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tune_toy import WORDS, Events

from modelcycle.testing.tiny_lm import save_tiny_lm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MODELCYCLE_TRAIN_THREADS", "1")  # tests share a small machine


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="the [hf] extra is not installed")
    return save_tiny_lm(
        tmp_path_factory.mktemp("tune") / "base", WORDS, initializer_range=0.3, seed=3
    )


@pytest.fixture
def events() -> Events:
    return Events()
