"""The optimisation loop shared by SFT and DPO: steps, validation, early stopping, checkpoints.

An :class:`Objective` (SFT's token loss, DPO's preference loss) turns a list
of examples into a summed loss; the loop owns everything else. A step is one
optimizer update over ``gradient_accumulation`` micro-batches, whose loss is
normalised by the whole group's units (target tokens, pairs) so accumulation
gives the same gradient as one large batch. The epoch's batch order depends
only on the seed and the epoch, so a checkpoint's (epoch, batch) position is
enough to continue exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from modelcycle.tune import checkpoints
from modelcycle.tune.checkpoints import TrainState
from modelcycle.tune.schemas import Hyperparameters
from modelcycle.tune.trainer_data import epoch_order, eval_batches

Emit = Callable[[dict[str, Any]], None]
WARMUP_SHARE = 0.05
MAX_GRAD_NORM = 1.0
METRIC_EVENTS = 100
"""About this many metrics events per run, whatever its length."""

ExampleT = TypeVar("ExampleT")
ExampleIn = TypeVar("ExampleIn", contravariant=True)


@dataclass
class Outcome:
    """A forward pass over some examples: summed loss, tokens seen, summed extra statistics."""

    loss: Any
    tokens: int
    stats: dict[str, float] = field(default_factory=dict)


class Objective(Protocol[ExampleIn]):
    """What is being learnt; the loop calls it with lists of examples."""

    def length(self, example: ExampleIn) -> int:
        """Tokens of one example (for bucketing by length)."""

    def units(self, examples: Sequence[ExampleIn]) -> int:
        """What the loss averages over: target tokens (SFT) or pairs (DPO)."""

    def forward(self, model: Any, examples: Sequence[ExampleIn]) -> Outcome:
        """Summed loss (with grad when enabled) and statistics of ``examples``."""

    def prepare(self, model: Any, examples: Sequence[ExampleIn]) -> None:
        """Precompute what never changes during training (DPO: reference log-probabilities)."""


@dataclass
class RunResult:
    """How :meth:`TrainingLoop.run` ended."""

    state: TrainState
    stopped_early: bool
    interrupted: bool


class TrainingLoop(Generic[ExampleT]):
    """Trains ``model`` (a peft model) on ``train``, validating on ``validation`` if any."""

    def __init__(
        self,
        model: Any,
        objective: Objective[ExampleT],
        train: list[ExampleT],
        validation: list[ExampleT],
        hp: Hyperparameters,
        state: TrainState,
        checkpoint_root: Path,
        emit: Emit,
    ):
        import torch

        self.model = model
        self.objective = objective
        self.train = train
        self.validation = validation
        self.hp = hp
        self.state = state
        self.checkpoint_root = checkpoint_root
        self.emit = emit
        self.lengths = [objective.length(example) for example in train]
        batches = len(epoch_order(self.lengths, hp.batch_size, hp.seed, 0))
        self.steps_per_epoch = math.ceil(batches / hp.gradient_accumulation)
        self.total_steps = self.steps_per_epoch * hp.epochs
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=hp.learning_rate, weight_decay=0.0)
        warmup = max(1, round(self.total_steps * WARMUP_SHARE))
        total = self.total_steps

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.best_adapter: dict[str, Any] | None = None
        self._val_stats: dict[str, float] = {}
        self.log_every = max(1, self.total_steps // METRIC_EVENTS)
        self._window: list[tuple[float, dict[str, float]]] = []
        self._window_tokens = 0
        self._window_start = time.perf_counter()

    def resume(self, path: Path) -> None:
        """Continue from the checkpoint at ``path``."""
        self.state, self.best_adapter = checkpoints.load(
            path, self.state, self.model, self.optimizer, self.scheduler
        )

    def run(self, should_stop: Callable[[], bool]) -> RunResult:
        """Train to the end, to an early stop, or until ``should_stop()`` (then checkpoint)."""
        state, hp = self.state, self.hp
        while state.epoch < hp.epochs:
            order = epoch_order(self.lengths, hp.batch_size, hp.seed, state.epoch)
            accumulate = hp.gradient_accumulation
            while state.batch < len(order):
                group = order[state.batch : state.batch + accumulate]
                self._step([[self.train[i] for i in batch] for batch in group])
                state.batch += len(group)
                evaluated = self.validation and state.step % hp.eval_every_steps == 0
                stop = self._validate() if evaluated else False
                self._report(with_validation=bool(evaluated))
                if state.step % hp.checkpoint_every_steps == 0:
                    self._checkpoint()
                if stop:
                    return RunResult(state, stopped_early=True, interrupted=False)
                if should_stop():
                    if state.step % hp.checkpoint_every_steps != 0:
                        self._checkpoint()
                    return RunResult(state, stopped_early=False, interrupted=True)
            if self.validation and (not state.history or state.history[-1]["step"] != state.step):
                stop = self._validate()
                self._report(with_validation=True, force=True)
                if stop:
                    return RunResult(state, stopped_early=True, interrupted=False)
            state.epoch += 1
            state.batch = 0
        return RunResult(state, stopped_early=False, interrupted=False)

    def _step(self, group: list[list[ExampleT]]) -> None:
        import torch

        self.model.train()
        units = max(1, sum(self.objective.units(batch) for batch in group))
        loss_total = 0.0
        tokens = 0
        stats: dict[str, float] = {}
        for batch in group:
            outcome = self.objective.forward(self.model, batch)
            (outcome.loss / units).backward()
            loss_total += float(outcome.loss.detach())
            tokens += outcome.tokens
            for key, value in outcome.stats.items():
                stats[key] = stats.get(key, 0.0) + value
        torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.state.trained_tokens += tokens
        self.state.train_loss = loss_total / units
        self._window.append((self.state.train_loss, {k: v / units for k, v in stats.items()}))
        self._window_tokens += tokens

    def evaluate(self) -> tuple[float, dict[str, float]]:
        """(mean loss, mean statistics) over the validation examples, without dropout."""
        import torch

        self.model.eval()
        loss = 0.0
        units = 0
        stats: dict[str, float] = {}
        lengths = [self.objective.length(example) for example in self.validation]
        with torch.no_grad():
            for indices in eval_batches(lengths, self.hp.batch_size):
                batch = [self.validation[i] for i in indices]
                outcome = self.objective.forward(self.model, batch)
                loss += float(outcome.loss)
                units += self.objective.units(batch)
                for key, value in outcome.stats.items():
                    stats[key] = stats.get(key, 0.0) + value
        units = max(1, units)
        return loss / units, {key: value / units for key, value in stats.items()}

    def _validate(self) -> bool:
        """Evaluate, remember the best adapter; True when early stopping should stop now."""
        from peft import get_peft_model_state_dict

        state = self.state
        state.val_loss, self._val_stats = self.evaluate()
        state.history.append({"step": state.step, "val_loss": state.val_loss})
        if state.best_val_loss is None or state.val_loss < state.best_val_loss:
            state.best_val_loss = state.val_loss
            state.evals_since_best = 0
            adapter = get_peft_model_state_dict(self.model)
            self.best_adapter = {key: value.detach().clone() for key, value in adapter.items()}
        else:
            state.evals_since_best += 1
        patience = self.hp.early_stopping_patience
        if patience is not None and state.evals_since_best >= patience:
            self.emit(
                {
                    "event": "log",
                    "level": "info",
                    "message": f"early stopping at step {state.step}: no better validation "
                    f"loss in {patience} evaluations (best {state.best_val_loss:.4f})",
                }
            )
            return True
        return False

    def _report(self, *, with_validation: bool, force: bool = False) -> None:
        state = self.state
        last = state.step == self.total_steps
        if not (force or with_validation or last or state.step % self.log_every == 0):
            return
        if not self._window and not with_validation:
            return
        elapsed = max(1e-9, time.perf_counter() - self._window_start)
        losses = [loss for loss, _ in self._window] or [state.train_loss or 0.0]
        event: dict[str, Any] = {
            "event": "metrics",
            "step": state.step,
            "epoch": round(state.step / self.steps_per_epoch, 4),
            "train_loss": sum(losses) / len(losses),
            "learning_rate": self.scheduler.get_last_lr()[0],
            "tokens_per_s": self._window_tokens / elapsed,
        }
        for key in self._window[-1][1] if self._window else ():
            event[key] = sum(stats.get(key, 0.0) for _, stats in self._window) / len(self._window)
        if with_validation:
            event["val_loss"] = state.val_loss
            event.update({f"val_{key}": value for key, value in self._val_stats.items()})
        self.emit(event)
        self.emit({"event": "progress", "fraction": min(1.0, state.step / self.total_steps)})
        self._window = []
        self._window_tokens = 0
        self._window_start = time.perf_counter()

    def _checkpoint(self) -> None:
        path = checkpoints.save(
            self.checkpoint_root,
            self.state,
            self.model,
            self.optimizer,
            self.scheduler,
            self.best_adapter,
        )
        metrics = {"train_loss": self.state.train_loss}
        if self.state.val_loss is not None:
            metrics["val_loss"] = self.state.val_loss
        self.emit(
            {"event": "checkpoint", "step": self.state.step, "path": str(path), "metrics": metrics}
        )
