"""Build ``train.jsonl`` and ``test.jsonl`` of the Zorvex Hub support example from ``FACTS``.

Each fact of the fictional product has one short answer and four phrasings
of its question. One phrasing per fact, picked by a seeded draw, goes to the
held-out test split; the other three are training examples. So every fact the
test asks about was taught, but never in the test's words: a tuned model
passes the test by knowing the product, not by recalling a training line.

The split is also clean by the platform's own definition of contamination
(``modelcycle.tune.decontaminate``: no training example shares a word 8-gram
with a test sample), so a tuning job that names the test set as an evaluation
dataset keeps every training example. This script refuses to write a split
that is not.

    .venv/bin/python examples/support_facts/build.py     # rewrites the two files
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from facts import FACTS

HERE = Path(__file__).resolve().parent
SEED = 7
"""Seeds the draw of the held-out phrasing of each fact."""


def split() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(train, test) samples in the modelcycle dataset JSONL shape."""
    rng = random.Random(SEED)  # noqa: S311 -- a reproducible split, not a secret
    train: list[dict[str, object]] = []
    test: list[dict[str, object]] = []
    for fact_id, answer, questions in FACTS:
        held = rng.randrange(len(questions))
        for index, question in enumerate(questions):
            sample = {"input": question, "expected": answer, "metadata": {"fact_id": fact_id}}
            (test if index == held else train).append(sample)
    return train, test


def overlaps(train: list[dict[str, object]], test: list[dict[str, object]]) -> list[str]:
    """Training samples the tuning job's decontamination would drop (8-gram overlap)."""
    from modelcycle.tune.decontaminate import EvalText, TrainText, decontaminate

    eval_texts = [EvalText("test", i, f"{s['input']}\n{s['expected']}") for i, s in enumerate(test)]
    texts = [TrainText(str(s["input"]), f"{s['input']}\n{s['expected']}") for s in train]
    _, report = decontaminate(texts, eval_texts, ["test"])
    return [f"{o['example']!r} ~ test {o['eval_sample']}: {o['ngram']!r}" for o in report.overlaps]


def write(path: Path, samples: list[dict[str, object]]) -> None:
    """One JSON object a line."""
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))


def main() -> None:
    """Check the split, then write it."""
    train, test = split()
    found = overlaps(train, test)
    if found:
        sys.exit("training questions overlapping the test split:\n" + "\n".join(found))
    write(HERE / "train.jsonl", train)
    write(HERE / "test.jsonl", test)
    print(f"{len(FACTS)} facts: {len(train)} training and {len(test)} test questions")


if __name__ == "__main__":
    main()
