"""The training engine: one entry point, :func:`train`, for every weight-tuning method.

The job service runs it in a subprocess (:mod:`modelcycle.tune.train_main`)
that turns the events into JSON lines; tests call it in process. Events:

- ``{"event": "log", "level": "info", "message"}``
- ``{"event": "metrics", "step", "epoch", "train_loss", "val_loss" (when validated),
  "learning_rate", "tokens_per_s"}`` (+ DPO: rewards_chosen, rewards_rejected,
  reward_margin, reward_accuracy)
- ``{"event": "progress", "fraction"}``
- ``{"event": "checkpoint", "step", "path", "metrics"}``

Output layout: ``output_dir/adapter`` (the LoRA, the best by validation loss when
validating), ``output_dir/checkpoints/step-N``, ``output_dir/merged`` (``merge``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from modelcycle.errors import InvalidInput
from modelcycle.tune import dpo, sft
from modelcycle.tune.checkpoints import TrainState
from modelcycle.tune.lora_model import (
    attach_lora,
    load_base,
    save_adapter,
    save_merged,
    set_threads,
)
from modelcycle.tune.schemas import Hyperparameters
from modelcycle.tune.trainer_data import TrainingDataError, read_records, split_holdout
from modelcycle.tune.training_loop import Emit, TrainingLoop

__all__ = ["TrainSpec", "TrainingDataError", "train"]

TrainMethod = Literal["sft-lora", "dpo"]
METHODS = {"sft-lora": sft, "dpo": dpo}


@dataclass(frozen=True)
class TrainSpec:
    """What to train; JSON-serialisable so it can cross to a subprocess or a Ray job."""

    method: TrainMethod
    base_model: str
    """A Hugging Face checkpoint directory or a .gguf file (dequantised once into ``cache_dir``)."""
    train_path: str
    """JSONL: sft ``{"prompt", "completion"}``; dpo ``{"prompt", "chosen", "rejected"}``."""
    output_dir: str
    hyperparameters: dict[str, Any]
    """``Hyperparameters.model_dump()``."""
    validation_path: str | None = None
    cache_dir: str | None = None
    resume_from: str | None = None
    """A checkpoint directory (``output_dir/checkpoints/step-N``) to continue exactly from."""

    def to_json(self) -> str:
        """The spec as a JSON object."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainSpec:
        """The spec :meth:`to_json` wrote; ``InvalidInput`` when it is not one."""
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise InvalidInput(f"not a training spec: {exc}") from None


def _log(emit: Emit, message: str) -> None:
    emit({"event": "log", "level": "info", "message": message})


def train(
    spec: TrainSpec, emit: Emit, should_stop: Callable[[], bool] = lambda: False
) -> dict[str, Any]:
    """Train as ``spec`` says; see the module docstring for events and outputs.

    ``should_stop()`` is asked after every optimizer step: when it turns true a
    checkpoint is saved and the result says ``interrupted``. Bad data raises
    :class:`TrainingDataError` naming the file and line, before the model loads.
    """
    if spec.method not in METHODS:
        raise InvalidInput(f"unknown training method '{spec.method}' (use sft-lora or dpo)")
    try:
        hp = Hyperparameters.model_validate(spec.hyperparameters)
    except ValidationError as exc:
        raise InvalidInput(f"bad hyperparameters: {exc.errors()[0]['msg']}") from None
    method = METHODS[spec.method]
    train_records = read_records(spec.train_path, method.FIELDS)
    if spec.validation_path:
        val_records = read_records(spec.validation_path, method.FIELDS, role="validation")
    else:
        train_records, val_records = split_holdout(train_records, hp.validation_split, hp.seed)

    import torch

    threads = set_threads()
    started = time.perf_counter()
    model, tokenizer = load_base(spec.base_model, spec.cache_dir)
    torch.manual_seed(hp.seed)  # the LoRA's initial weights, then dropout
    model = attach_lora(model, hp.lora_r, hp.lora_alpha, hp.lora_dropout, hp.target_modules)
    targets = sorted(model.peft_config["default"].target_modules)
    _log(
        emit,
        f"loaded {spec.base_model} in {time.perf_counter() - started:.1f}s; "
        f"LoRA r={hp.lora_r} on {', '.join(targets)}; {threads} threads",
    )
    objective = method.make_objective(tokenizer, hp)
    train_set = objective.encode(train_records)
    val_set = objective.encode(val_records)
    objective.prepare(model, train_set)
    objective.prepare(model, val_set)

    output = Path(spec.output_dir)
    state = TrainState(method=spec.method, hyperparameters=hp.model_dump(mode="json"))
    loop = TrainingLoop(
        model, objective, train_set, val_set, hp, state, output / "checkpoints", emit
    )
    if spec.resume_from:
        loop.resume(Path(spec.resume_from))
        _log(emit, f"resumed from {spec.resume_from} at step {loop.state.step}")
    _log(
        emit,
        f"training on {len(train_set)} examples ({len(val_set)} for validation): "
        f"{loop.total_steps} steps over {hp.epochs} epochs",
    )
    outcome = loop.run(should_stop)
    state = outcome.state

    if loop.best_adapter is not None and not outcome.interrupted:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, loop.best_adapter)  # the best, not the last
    adapter = output / "adapter"
    save_adapter(model, tokenizer, adapter)
    merged: Path | None = None
    if hp.merge and not outcome.interrupted:
        merged = output / "merged"
        save_merged(model, tokenizer, merged)
    return {
        "adapter_path": str(adapter),
        "merged_path": None if merged is None else str(merged),
        "metrics": {
            "train_loss": state.train_loss,
            "val_loss": state.val_loss,
            "best_val_loss": state.best_val_loss,
            "steps": state.step,
            "epochs": round(state.step / loop.steps_per_epoch, 4),
        },
        "trained_tokens": state.trained_tokens,
        "stopped_early": outcome.stopped_early,
        "interrupted": outcome.interrupted,
    }
