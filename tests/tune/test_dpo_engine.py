"""DPO through ``modelcycle.tune.engine.train``: the preferred answers win after training."""

from __future__ import annotations

from pathlib import Path

import pytest
from tune_toy import CAPITALS, Events, hyperparameters, prompt_of, write_jsonl

from modelcycle.tune.engine import TrainingDataError, TrainSpec, train

pytest.importorskip("peft", reason="the [hf] extra is not installed")


def preference_rows(repeat: int) -> list[dict[str, str]]:
    """The right capital is chosen, the next country's capital rejected."""
    return [
        {
            "prompt": prompt_of(country),
            "chosen": f" {capital}",
            "rejected": f" {CAPITALS[(i + 1) % len(CAPITALS)][1]}",
        }
        for i, (country, capital) in enumerate(CAPITALS)
    ] * repeat


def test_dpo_raises_reward_accuracy_and_margin(
    tmp_path: Path, tiny_base: Path, events: Events
) -> None:
    spec = TrainSpec(
        "dpo",
        str(tiny_base),
        write_jsonl(tmp_path / "train.jsonl", preference_rows(3)),
        str(tmp_path / "out"),
        hyperparameters(epochs=4, beta=0.1, eval_every_steps=3),
        validation_path=write_jsonl(tmp_path / "val.jsonl", preference_rows(1)),
    )
    result = train(spec, events.append)

    metrics = events.of("metrics")
    # Step 1 is computed before any update: policy == reference (adapter disabled),
    # so every reward is 0 and the loss is log 2.
    assert metrics[0]["step"] == 1
    assert metrics[0]["train_loss"] == pytest.approx(0.693147, abs=1e-5)
    assert metrics[0]["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert metrics[-1]["reward_accuracy"] == 1.0
    assert metrics[-1]["reward_margin"] > 0.5
    assert metrics[-1]["rewards_chosen"] > metrics[-1]["rewards_rejected"]
    validated = [event for event in metrics if "val_loss" in event]
    assert validated[-1]["val_reward_accuracy"] == 1.0
    assert validated[-1]["val_loss"] < 0.693147 / 2
    assert result["metrics"]["best_val_loss"] == min(event["val_loss"] for event in validated)
    assert Path(result["adapter_path"], "adapter_config.json").is_file()


def test_dpo_rejects_a_pair_without_a_rejected_answer(tmp_path: Path, tiny_base: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [preference_rows(1)[0], {"prompt": "question :", "chosen": " paris"}],
    )
    spec = TrainSpec("dpo", str(tiny_base), path, str(tmp_path / "out"), hyperparameters())
    with pytest.raises(TrainingDataError, match="line 2: missing 'rejected'"):
        train(spec, lambda e: None)
