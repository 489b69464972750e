"""Supervised fine-tuning with LoRA: next-token loss on the completion tokens only.

Each record is ``{"prompt", "completion"}``; the prompt's tokens are labelled
``-100`` (no loss), the completion and a final EOS are learnt. The loss is the
mean cross-entropy over all target tokens of an optimizer step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelcycle.tune.lora_model import target_logits
from modelcycle.tune.schemas import Hyperparameters
from modelcycle.tune.trainer_data import IGNORE, SFT_FIELDS, Encoded, Encoder, collate
from modelcycle.tune.training_loop import Outcome

FIELDS = SFT_FIELDS


class SftObjective:
    """Completion-only causal LM loss."""

    def __init__(self, tokenizer: Any, hp: Hyperparameters):
        self.encoder = Encoder(tokenizer, hp.max_length)

    def encode(self, records: Sequence[dict[str, str]]) -> list[Encoded]:
        """Tokenise checked records."""
        return [self.encoder.encode(r["prompt"], r["completion"]) for r in records]

    def length(self, example: Encoded) -> int:
        """Tokens of the example."""
        return len(example.input_ids)

    def units(self, examples: Sequence[Encoded]) -> int:
        """Target tokens (completion + EOS) the loss averages over."""
        return sum(sum(1 for label in ex.labels[1:] if label != IGNORE) for ex in examples)

    def prepare(self, model: Any, examples: Sequence[Encoded]) -> None:
        """Nothing to precompute."""

    def forward(self, model: Any, examples: Sequence[Encoded]) -> Outcome:
        """Summed cross-entropy of the target tokens."""
        import torch

        batch = collate(examples, self.encoder.pad_id)
        logits, targets, _ = target_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        return Outcome(loss, batch.tokens)


def make_objective(tokenizer: Any, hp: Hyperparameters) -> SftObjective:
    """The objective of method ``sft-lora``."""
    return SftObjective(tokenizer, hp)
