"""Pure dataset transformations: name and ratio checks, splitting, deduplication keys.

Kept apart from the service so that each rule (how a split rounds, what counts
as a near duplicate) is one small function with no database around it.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.samples import DATASET_NAME_PATTERN, EvalSample, SampleIn

MAX_SPLIT_PARTS = 10
_NAME_RE = re.compile(DATASET_NAME_PATTERN)
_PART_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def check_name(name: str) -> None:
    """A 400 unless ``name`` is a valid dataset name."""
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"dataset name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )


def check_ratios(name: str, ratios: Mapping[str, float]) -> list[str]:
    """The part names of a split of ``name``, or a 400 saying what is wrong with the ratios."""
    if not 2 <= len(ratios) <= MAX_SPLIT_PARTS:
        raise InvalidInput(
            f"give 2 to {MAX_SPLIT_PARTS} ratios, e.g. train=0.8 test=0.2", param="ratios"
        )
    for part, ratio in ratios.items():
        if not _PART_RE.match(part):
            raise InvalidInput(
                f"split part {part!r} must be 1-16 lowercase letters, digits or _", param="ratios"
            )
        if not 0 < ratio < 1:
            raise InvalidInput(f"ratio of '{part}' must be between 0 and 1", param="ratios")
        check_name(f"{name}-{part}")
    if abs(sum(ratios.values()) - 1) > 1e-6:
        raise InvalidInput(f"ratios add up to {sum(ratios.values()):g}, not 1", param="ratios")
    return list(ratios)


def split_samples(
    samples: Sequence[EvalSample],
    ratios: Mapping[str, float],
    *,
    seed: int,
    stratify_by: str | None = None,
) -> dict[str, list[EvalSample]]:
    """Samples dealt into parts: disjoint, covering, the same for a seed, in original order.

    With ``stratify_by``, each value of ``metadata[stratify_by]`` is dealt
    separately, so every part keeps that value's share.
    """
    parts = list(ratios)
    assigned: dict[str, list[EvalSample]] = {part: [] for part in parts}
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    for group in _strata(samples, stratify_by):
        shuffled = list(group)
        rng.shuffle(shuffled)
        for part, chosen in zip(parts, _cut(shuffled, ratios, parts), strict=True):
            assigned[part].extend(chosen)
    return {
        part: sorted(chosen, key=lambda sample: sample.position)
        for part, chosen in assigned.items()
    }


def _strata(samples: Sequence[EvalSample], key: str | None) -> list[list[EvalSample]]:
    """Samples grouped by ``metadata[key]`` (in first-seen order), or one group."""
    if key is None:
        return [list(samples)]
    groups: dict[str, list[EvalSample]] = {}
    for sample in samples:
        groups.setdefault(repr(sample.metadata.get(key)), []).append(sample)
    return list(groups.values())


def _cut(
    shuffled: Sequence[EvalSample], ratios: Mapping[str, float], parts: Sequence[str]
) -> list[Sequence[EvalSample]]:
    """Consecutive slices sized by ratio (largest remainders get the leftover samples)."""
    total = len(shuffled)
    exact = [ratios[part] * total for part in parts]
    sizes = [int(size) for size in exact]
    by_remainder = sorted(range(len(parts)), key=lambda i: (sizes[i] - exact[i], i))
    for index in by_remainder[: total - sum(sizes)]:
        sizes[index] += 1
    out: list[Sequence[EvalSample]] = []
    start = 0
    for size in sizes:
        out.append(shuffled[start : start + size])
        start += size
    return out


def deduplicated(samples: Sequence[EvalSample], *, near: bool = False) -> list[SampleIn]:
    """The samples without repeated inputs, the first of each kept (``near``: see ``near_key``)."""
    seen: set[str] = set()
    kept: list[SampleIn] = []
    for sample in samples:
        key = near_key(sample.input) if near else input_key(sample.input)
        if key in seen:
            continue
        seen.add(key)
        kept.append(sample.as_sample_in())
    return kept


def input_key(prompt: Mapping[str, Any]) -> str:
    """The identity of an input for exact deduplication (the hash of its canonical JSON)."""
    return SampleIn(prompt).content_hash


def near_key(prompt: Mapping[str, Any]) -> str:
    """An input's text lowercased, without punctuation, with whitespace collapsed.

    Exact duplicates have equal near keys too, so one key covers both.
    """
    if "messages" in prompt:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in prompt["messages"])
    else:
        text = str(prompt.get("prompt", ""))
    return " ".join(text.lower().translate(_PUNCTUATION).split())
