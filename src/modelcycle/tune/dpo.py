"""Direct preference optimisation (sigmoid loss) on a LoRA, with the adapter-less base as reference.

For a prompt x with a chosen answer y_w and a rejected one y_l, the loss is
``-log sigmoid(beta [(log p(y_w|x) - log p_ref(y_w|x)) - (log p(y_l|x) - log p_ref(y_l|x))])``.
The reference p_ref is the same model with the LoRA disabled (peft's
``disable_adapter``), so no second copy of the weights is loaded; as it never
changes, its log-probabilities are computed once before training. Logged:
the chosen and rejected rewards (beta times the log-ratio), their margin, and the share of
pairs whose chosen reward is higher (reward accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelcycle.tune.lora_model import sequence_logps
from modelcycle.tune.schemas import Hyperparameters
from modelcycle.tune.trainer_data import DPO_FIELDS, Encoded, Encoder, collate, eval_batches
from modelcycle.tune.training_loop import Outcome

FIELDS = DPO_FIELDS


@dataclass(slots=True)
class Pair:
    """A tokenised preference pair and its reference log-probabilities once computed."""

    chosen: Encoded
    rejected: Encoded
    reference: tuple[float, float] | None = None


class DpoObjective:
    """The sigmoid DPO loss with strength ``beta``."""

    def __init__(self, tokenizer: Any, hp: Hyperparameters):
        self.encoder = Encoder(tokenizer, hp.max_length)
        self.beta = hp.beta
        self.batch_size = hp.batch_size

    def encode(self, records: Sequence[dict[str, str]]) -> list[Pair]:
        """Tokenise checked records: prompt + chosen, prompt + rejected."""
        encode = self.encoder.encode
        return [
            Pair(encode(r["prompt"], r["chosen"]), encode(r["prompt"], r["rejected"]))
            for r in records
        ]

    def length(self, example: Pair) -> int:
        """Tokens of the longer answer."""
        return max(len(example.chosen.input_ids), len(example.rejected.input_ids))

    def units(self, examples: Sequence[Pair]) -> int:
        """Pairs: the loss is a mean over pairs."""
        return len(examples)

    def _logps(self, model: Any, pairs: Sequence[Pair]) -> tuple[Any, Any]:
        batch = collate(
            [p.chosen for p in pairs] + [p.rejected for p in pairs], self.encoder.pad_id
        )
        logps = sequence_logps(model, batch)
        return logps[: len(pairs)], logps[len(pairs) :]

    def prepare(self, model: Any, examples: Sequence[Pair]) -> None:
        """Reference log-probabilities of every pair, adapter off, in a fixed batch order."""
        import torch

        todo = [pair for pair in examples if pair.reference is None]
        lengths = [self.length(pair) for pair in todo]
        training = model.training
        model.eval()
        with torch.no_grad(), model.disable_adapter():
            for indices in eval_batches(lengths, self.batch_size):
                pairs = [todo[i] for i in indices]
                chosen, rejected = self._logps(model, pairs)
                for pair, c, r in zip(pairs, chosen.tolist(), rejected.tolist(), strict=True):
                    pair.reference = (c, r)
        model.train(training)

    def forward(self, model: Any, examples: Sequence[Pair]) -> Outcome:
        """Summed DPO loss of the pairs, with summed rewards and accuracy."""
        import torch

        if any(pair.reference is None for pair in examples):
            self.prepare(model, examples)
        chosen, rejected = self._logps(model, examples)
        reference = torch.tensor([pair.reference for pair in examples], dtype=chosen.dtype)
        chosen_rewards = self.beta * (chosen - reference[:, 0])
        rejected_rewards = self.beta * (rejected - reference[:, 1])
        margin = chosen_rewards - rejected_rewards
        losses = -torch.nn.functional.logsigmoid(margin)
        tokens = sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in examples)
        stats = {
            "rewards_chosen": float(chosen_rewards.detach().sum()),
            "rewards_rejected": float(rejected_rewards.detach().sum()),
            "reward_margin": float(margin.detach().sum()),
            "reward_accuracy": float((margin.detach() > 0).float().sum()),
        }
        return Outcome(losses.sum(), tokens, stats)


def make_objective(tokenizer: Any, hp: Hyperparameters) -> DpoObjective:
    """The objective of method ``dpo``."""
    return DpoObjective(tokenizer, hp)
