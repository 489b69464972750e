"""The shipped support example (examples/support_facts): a valid dataset, a fair held-out split."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from modelcycle.services import Services
from modelcycle.testing import admin_of
from modelcycle.tune.decontaminate import EvalText, TrainText, decontaminate
from modelcycle.tune.schemas import TuneJobCreate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_facts"


def _rows(split: str) -> list[dict[str, object]]:
    lines = (EXAMPLE / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_both_splits_import_as_datasets_and_a_tuning_job_accepts_the_training_split(
    modelcycle_services: Services, tiny_base: Path
) -> None:
    from tune_jobs_env import register_base

    services = modelcycle_services
    admin = admin_of(services).principal
    for split, size in (("train", 168), ("test", 56)):
        path = EXAMPLE / f"{split}.jsonl"
        version = services.datasets.import_file(
            admin, f"zorvex-{split}", path.read_bytes(), filename=path.name
        )
        assert version.sample_count == size
    sample = services.datasets.samples(admin, "zorvex-test@1").items[0]
    assert sample.input["messages"][0]["role"] == "user"  # served through the Question: frame
    assert sample.metadata["fact_id"]

    job = services.tune.create(
        admin,
        TuneJobCreate.model_validate(
            {
                "base": register_base(services, admin, tiny_base),
                "dataset": "zorvex-train",
                "eval_datasets": ["zorvex-test"],
            }
        ),
    )
    assert job.status == "queued"


def test_every_held_out_question_asks_a_taught_fact_in_new_words() -> None:
    train, test = _rows("train"), _rows("test")
    facts = Counter(str(row["metadata"]["fact_id"]) for row in train)  # type: ignore[index]
    held_out = Counter(str(row["metadata"]["fact_id"]) for row in test)  # type: ignore[index]
    assert set(held_out) == set(facts)  # every fact is both taught and tested
    assert set(facts.values()) == {3}
    assert set(held_out.values()) == {1}
    answers = {row["metadata"]["fact_id"]: row["expected"] for row in train}  # type: ignore[index]
    assert all(row["expected"] == answers[row["metadata"]["fact_id"]] for row in test)  # type: ignore[index]
    assert not {row["input"] for row in test} & {row["input"] for row in train}

    # What the tuning job's decontamination would drop, were the test split named: nothing.
    texts = [TrainText(str(i), f"{r['input']}\n{r['expected']}") for i, r in enumerate(train)]
    evals = [EvalText("test", i, f"{r['input']}\n{r['expected']}") for i, r in enumerate(test)]
    keep, report = decontaminate(texts, evals, ["test"])
    assert len(keep) == len(train), report.overlaps[:3]


def test_answers_are_short_facts_the_question_does_not_give_away() -> None:
    for row in _rows("train") + _rows("test"):
        answer, question = str(row["expected"]), str(row["input"])
        assert 1 <= len(answer.split()) <= 8, answer
        # The contains score would pass an answer that echoes the question.
        assert answer.casefold() not in question.casefold(), (question, answer)


def test_the_files_are_what_the_build_script_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))  # build.py imports facts.py beside it
    spec = importlib.util.spec_from_file_location("support_facts_build", EXAMPLE / "build.py")
    assert spec is not None
    assert spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    train, test = build.split()
    assert train == _rows("train")
    assert test == _rows("test")
