"""The model being tuned: the base loaded like serving loads it, a LoRA on it, the loss pieces.

The base (a checkpoint directory or a GGUF file, dequantised once into the
shared cache) comes from :mod:`modelcycle.backends.hf.loading`, so training
and serving read the same weights and tokenizer. Losses are computed on the
labelled positions only: the hidden states of those positions go through the
output head, never the prompt's, which saves most of the head's work when the
vocabulary is large (Gemma 3: 262k tokens).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelcycle.backends.hf.loading import ModelKey, load
from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.tune.trainer_data import IGNORE, Batch

log = logging.getLogger(__name__)

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "query_key_value")
"""Default LoRA targets: whichever of these the model has (Llama/Gemma/Qwen, GPT-2, Falcon)."""
THREADS_ENV = "MODELCYCLE_TRAIN_THREADS"


def set_threads() -> int:
    """Use one torch thread per CPU this process may run on (``MODELCYCLE_TRAIN_THREADS`` wins)."""
    import torch

    wanted = os.environ.get(THREADS_ENV, "")
    try:
        threads = int(wanted) if wanted else len(os.sched_getaffinity(0))
    except (ValueError, AttributeError):
        threads = os.cpu_count() or 1
    threads = max(1, threads)
    torch.set_num_threads(threads)
    return threads


def load_base(base_model: str, cache_dir: str | None) -> tuple[Any, Any]:
    """(model in float32, tokenizer) for ``base_model``; a GGUF file uses the dequantised cache."""
    loaded = load(ModelKey(base_model, None, "float32"), Path(cache_dir) if cache_dir else None)
    model = loaded.model
    model.config.use_cache = False  # no KV cache while training
    return model, loaded.tokenizer


def attach_lora(model: Any, r: int, alpha: int, dropout: float, targets: list[str] | None) -> Any:
    """``model`` wrapped by peft with a fresh LoRA (default targets: attention projections)."""
    try:
        import peft
    except ImportError as exc:
        raise MissingExtra("peft", "tune") from exc
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if targets:
        missing = sorted(set(targets) - present)
        if missing:
            raise InvalidInput(
                f"target_modules {missing} are not modules of this model", param="target_modules"
            )
    else:
        targets = [name for name in ATTENTION_PROJECTIONS if name in present]
        if not targets:
            raise InvalidInput(
                "found no attention projection to adapt; set target_modules", param="target_modules"
            )
    config = peft.LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    with _quiet():
        return peft.get_peft_model(model, config)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # peft reads attributes transformers 5 deprecates: noise, not the user's problem.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def target_logits(model: Any, batch: Batch) -> tuple[Any, Any, Any]:
    """(logits, target ids, row of each target) for the labelled positions of ``batch``.

    Position t predicts token t+1, so hidden states ``[:, :-1]`` meet labels ``[:, 1:]``.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state
    labels = batch.labels[:, 1:]
    keep = labels != IGNORE
    selected = hidden[:, :-1][keep]
    logits = base.get_output_embeddings()(selected).float()
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = logits.div(cap).tanh().mul(cap)
    rows = keep.nonzero()[:, 0]
    return logits, labels[keep], rows


def sequence_logps(model: Any, batch: Batch) -> Any:
    """Sum of the log-probabilities of each row's labelled tokens (shape: rows)."""
    import torch

    logits, targets, rows = target_logits(model, batch)
    token_logps = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    sums = torch.zeros(batch.input_ids.shape[0], dtype=token_logps.dtype)
    return sums.index_add(0, rows, token_logps)


def save_adapter(model: Any, tokenizer: Any, target: Path) -> None:
    """The LoRA (``adapter_config.json`` + weights) and the tokenizer, loadable by serving."""
    with _quiet():
        model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def save_merged(model: Any, tokenizer: Any, target: Path) -> None:
    """The adapter merged into the base weights, saved as a plain checkpoint.

    Merges in place (no second copy of the weights): call it last.
    """
    with _quiet():
        merged = model.merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
