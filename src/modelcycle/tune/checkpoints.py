"""Training checkpoints: everything a resumed run needs to continue exactly where it stopped.

A checkpoint is a directory ``checkpoints/step-N`` holding the LoRA adapter
(``adapter_config.json`` + weights, so it can be served as is), the optimizer
and scheduler states, the torch RNG state (dropout), the best adapter so far
(when validating) and ``state.json`` with the step, epoch and position in the
epoch's batch order. It is written under a temporary name and renamed into
place, so a crash never leaves half a checkpoint; only the newest ``KEEP``
are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput

KEEP = 2
PREFIX = "step-"
STATE_FILE = "state.json"
BEST_FILE = "best_adapter.safetensors"


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    method: str
    hyperparameters: dict[str, Any]
    step: int = 0
    """Optimizer steps done."""
    epoch: int = 0
    """The epoch in progress (0-based)."""
    batch: int = 0
    """Micro-batches of this epoch already trained on."""
    trained_tokens: int = 0
    train_loss: float | None = None
    """Loss of the last optimizer step."""
    val_loss: float | None = None
    best_val_loss: float | None = None
    evals_since_best: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """Validation results so far: ``{"step", "val_loss"}``."""


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save(
    root: Path,
    state: TrainState,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    best_adapter: dict[str, Any] | None,
) -> Path:
    """Write the checkpoint of ``state.step`` atomically and prune old ones; return its path."""
    import torch
    from safetensors.torch import save_file

    target = root / f"{PREFIX}{state.step}"
    staging = root / f".{target.name}.{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        torch.save(torch.get_rng_state(), staging / "rng.pt")
        if best_adapter is not None:
            save_file({k: v.contiguous() for k, v in best_adapter.items()}, staging / BEST_FILE)
        (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in checkpoint_dirs(root)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load(
    path: Path, state: TrainState, model: Any, optimizer: Any, scheduler: Any
) -> tuple[TrainState, dict[str, Any] | None]:
    """Restore ``model``/``optimizer``/``scheduler``/RNG from ``path``; (state, best adapter).

    ``state`` is the fresh run's: the checkpoint must come from the same method
    and hyperparameters, or the continued run would not be the same run.
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if not (path / STATE_FILE).is_file():
        raise InvalidInput(f"{path} is not a training checkpoint (no {STATE_FILE})")
    saved = TrainState(**json.loads((path / STATE_FILE).read_text()))
    if saved.method != state.method:
        raise InvalidInput(f"checkpoint {path} is from a {saved.method} run, not {state.method}")
    changed = sorted(
        key
        for key in set(saved.hyperparameters) | set(state.hyperparameters)
        if saved.hyperparameters.get(key) != state.hyperparameters.get(key)
    )
    if changed:
        raise InvalidInput(
            f"checkpoint {path} was trained with different hyperparameters: {', '.join(changed)}"
        )
    weights = path / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(weights))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    best = load_file(path / BEST_FILE) if (path / BEST_FILE).is_file() else None
    return saved, best
