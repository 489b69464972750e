"""Training data for the engine: JSONL records checked line by line, tokenised, batched.

SFT records are ``{"prompt", "completion"}`` and DPO records ``{"prompt",
"chosen", "rejected"}``; the prompt is already formatted text (a chat
template applied by the caller). A bad line fails with its line number and
the reason, never a traceback. Tokenisation mirrors serving: the prompt gets
the BOS token unless its text already starts with it (a rendered chat
template does), and the completion ends with EOS so the model learns to stop.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput

IGNORE = -100
"""Label of a position the loss skips (prompt tokens, padding)."""
BUCKET_BATCHES = 32
"""Batches per length bucket: sorting inside a bucket cuts padding, buckets keep it random."""

SFT_FIELDS = ("prompt", "completion")
DPO_FIELDS = ("prompt", "chosen", "rejected")


class TrainingDataError(InvalidInput):
    """A training or validation file the engine cannot use; the message names the line."""


def read_records(
    path: str | Path, fields: Sequence[str], *, role: str = "training"
) -> list[dict[str, str]]:
    """The records of a JSONL file, each with string ``fields``; blank lines are skipped."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingDataError(f"{role} file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read {role} file {source}: {exc}") from None
    records = [
        _record(line, fields, f"{role} file {source.name}, line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not records:
        raise TrainingDataError(f"{role} file {source.name} has no examples")
    return records


def _record(line: str, fields: Sequence[str], where: str) -> dict[str, str]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise TrainingDataError(f"{where}: expected a JSON object with {_names(fields)}")
    record: dict[str, str] = {}
    for field in fields:
        if field not in value:
            raise TrainingDataError(f"{where}: missing '{field}' (need {_names(fields)})")
        if not isinstance(value[field], str):
            raise TrainingDataError(f"{where}: '{field}' must be a string")
        if field != "prompt" and not value[field].strip():
            raise TrainingDataError(f"{where}: '{field}' is empty")
        record[field] = value[field]
    return record


def _names(fields: Sequence[str]) -> str:
    return ", ".join(f"'{field}'" for field in fields)


def split_holdout(
    records: list[dict[str, str]], share: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, validation): a seeded random ``share`` held out, at least one of each."""
    if share <= 0:
        return records, []
    if len(records) < 2:
        raise TrainingDataError("validation_split needs at least 2 training examples")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)  # noqa: S311 -- a reproducible split
    held = min(len(records) - 1, max(1, math.ceil(len(records) * share)))
    holdout = set(order[:held])
    train = [r for i, r in enumerate(records) if i not in holdout]
    return train, [r for i, r in enumerate(records) if i in holdout]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised sequence: the ids and, per id, the label (``IGNORE`` on the prompt)."""

    input_ids: list[int]
    labels: list[int]


class Encoder:
    """Tokenises prompt/completion pairs the way the served model will see them."""

    def __init__(self, tokenizer: Any, max_length: int):
        if tokenizer.eos_token_id is None:
            raise TrainingDataError("the base model's tokenizer has no end-of-sequence token")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eos_id = int(tokenizer.eos_token_id)
        bos = tokenizer.bos_token_id
        self.bos_id = None if bos is None else int(bos)
        pad = tokenizer.pad_token_id
        self.pad_id = self.eos_id if pad is None else int(pad)  # padded positions are masked

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _served_prompt_ids(self, prompt: str) -> list[int]:
        """The prompt's ids exactly as the transformers backend tokenizes it when serving.

        Serving adds the tokenizer's special tokens (BOS where its post-processor
        adds one) unless a chat template already wrote them into the text.
        """
        bos_text = getattr(self.tokenizer, "bos_token", None)
        special = not (isinstance(bos_text, str) and bos_text and prompt.startswith(bos_text))
        return list(self.tokenizer(prompt, add_special_tokens=special)["input_ids"])

    def encode(self, prompt: str, completion: str) -> Encoded:
        """Prompt then completion + EOS, truncated to ``max_length`` keeping the completion."""
        prompt_ids = self._ids(prompt)
        whole = self._ids(prompt + completion)
        # The joined text's tokens when the prompt's are a clean prefix (as generation sees them).
        if whole[: len(prompt_ids)] == prompt_ids and len(whole) > len(prompt_ids):
            completion_ids = whole[len(prompt_ids) :]
        else:
            completion_ids = self._ids(completion)
        prompt_ids = self._served_prompt_ids(prompt)
        completion_ids = [*completion_ids, self.eos_id][: self.max_length]
        room = self.max_length - len(completion_ids)
        # Keep the prompt's end: it is what the completion answers.
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[len(prompt_ids) - room :] if room > 0 else []
        return Encoded([*prompt_ids, *completion_ids], [IGNORE] * len(prompt_ids) + completion_ids)


@dataclass(frozen=True, slots=True)
class Batch:
    """Right-padded tensors of one micro-batch and the real (non-padding) token count."""

    input_ids: Any
    attention_mask: Any
    labels: Any
    tokens: int
    """Non-padding tokens in the batch (what tokens/s counts)."""
    targets: int
    """Labelled positions (what the loss averages over)."""


def collate(items: Sequence[Encoded], pad_id: int) -> Batch:
    """Pad ``items`` on the right to the longest one."""
    import torch

    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        size = len(item.input_ids)
        ids[row, :size] = torch.tensor(item.input_ids)
        labels[row, :size] = torch.tensor(item.labels)
        mask[row, :size] = 1
    tokens = sum(len(item.input_ids) for item in items)
    # The first label of a row predicts nothing (no position before it).
    targets = int((labels[:, 1:] != IGNORE).sum())
    return Batch(ids, mask, labels, tokens, targets)


def epoch_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of example indices) of one epoch, the same for the same seed and epoch.

    Examples are shuffled, cut into buckets of ``BUCKET_BATCHES`` batches, sorted by
    length inside each bucket (less padding), and the batches shuffled again.
    """
    rng = random.Random(seed * 1_000_003 + epoch)  # noqa: S311 -- a reproducible order
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda index: lengths[index])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Validation batches: sorted by length (least padding), fixed order."""
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
