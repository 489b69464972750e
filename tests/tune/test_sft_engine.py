"""LoRA SFT through ``modelcycle.tune.engine.train`` on a tiny Llama and a toy task."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tune_toy import (
    CAPITALS,
    Events,
    after_steps,
    hyperparameters,
    prompt_of,
    sft_rows,
    write_jsonl,
)

from modelcycle.backends.hf.loading import ModelKey, load
from modelcycle.testing.tiny_lm import word_tokenizer
from modelcycle.tune.engine import TrainingDataError, TrainSpec, train
from modelcycle.tune.trainer_data import IGNORE, Encoder, collate

torch = pytest.importorskip("torch", reason="the [hf] extra is not installed")
pytest.importorskip("peft", reason="the [hf] extra is not installed")


def spec_for(tmp_path: Path, base: Path, **hp: Any) -> TrainSpec:
    tmp_path.mkdir(parents=True, exist_ok=True)
    train_path = write_jsonl(tmp_path / "train.jsonl", sft_rows())
    return TrainSpec(
        "sft-lora", str(base), train_path, str(tmp_path / "out"), hyperparameters(**hp)
    )


def next_tokens(source: Path, adapter: str | None) -> list[str]:
    """The greedy next word after each toy prompt."""
    loaded = load(ModelKey(str(source), adapter, "float32"), None)
    answers = []
    with torch.no_grad():
        for country, _ in CAPITALS:
            # Tokenized as the transformers backend serves it (this tokenizer adds no BOS).
            ids = loaded.tokenizer(prompt_of(country), return_tensors="pt")["input_ids"]
            token = int(loaded.model(input_ids=ids).logits[0, -1].argmax())
            answers.append(loaded.tokenizer.convert_ids_to_tokens(token))
    return answers


def test_sft_learns_the_task_and_the_adapter_answers_with_the_targets(
    tmp_path: Path, tiny_base: Path, events: Events
) -> None:
    spec = spec_for(tmp_path, tiny_base, epochs=10, merge=True)
    result = train(spec, events.append)

    losses = [event["train_loss"] for event in events.of("metrics")]
    assert losses[-1] < losses[0] / 10
    assert result["metrics"]["steps"] == 80 == events.of("metrics")[-1]["step"]  # 32/4 x 10
    assert result["interrupted"] is False
    assert result["stopped_early"] is False
    assert events.of("progress")[-1]["fraction"] == 1.0
    assert all(event["tokens_per_s"] > 0 for event in events.of("metrics"))
    # trained tokens: every non-padding token of 32 examples (10 tokens each) x 10 epochs
    assert result["trained_tokens"] == 32 * 10 * 10

    capitals = [capital for _, capital in CAPITALS]
    before = next_tokens(tiny_base, None)
    assert sum(a == b for a, b in zip(before, capitals, strict=True)) <= 2
    assert next_tokens(tiny_base, result["adapter_path"]) == capitals
    # the merged checkpoint answers the same without peft
    assert next_tokens(Path(result["merged_path"]), None) == capitals


def test_prompt_tokens_are_masked_and_truncation_keeps_the_completion() -> None:
    tokenizer = word_tokenizer(["question", ":", "capital", "of", "?", "answer", "paris", "a"])
    encoder = Encoder(tokenizer, max_length=16)
    item = encoder.encode("question : capital of ? answer :", " paris")
    # The prompt is tokenized as serving does: this tokenizer adds no <s>.
    assert item.input_ids == [4, 5, 6, 7, 8, 9, 5, 10, 2]  # question ... paris </s>
    assert item.labels == [IGNORE] * 7 + [10, 2]

    short = Encoder(tokenizer, max_length=6).encode("question : capital of ? answer :", " paris")
    assert short.input_ids == [7, 8, 9, 5, 10, 2]  # the prompt's end survives, then paris </s>
    assert short.labels == [IGNORE] * 4 + [10, 2]

    batch = collate([item, short], encoder.pad_id)
    assert batch.labels.tolist()[1] == short.labels + [IGNORE] * 3  # padding never learnt
    assert batch.attention_mask.sum().item() == batch.tokens == 15
    assert batch.targets == 4


def test_resume_from_a_checkpoint_continues_exactly(
    tmp_path: Path, tiny_base: Path, events: Events
) -> None:
    settings = {"epochs": 2, "lora_dropout": 0.1, "validation_split": 0.25, "eval_every_steps": 3}
    whole = train(spec_for(tmp_path / "whole", tiny_base, **settings), events.append)

    first = spec_for(tmp_path / "parts", tiny_base, **settings)
    stopped = train(first, lambda e: None, after_steps(5))
    assert stopped["interrupted"] is True
    assert stopped["metrics"]["steps"] == 5
    checkpoint = Path(first.output_dir) / "checkpoints" / "step-5"
    resumed = train(replace(first, resume_from=str(checkpoint)), lambda e: None)

    for key in ("train_loss", "val_loss", "best_val_loss", "steps"):
        assert resumed["metrics"][key] == pytest.approx(whole["metrics"][key], abs=1e-5), key
    assert resumed["trained_tokens"] == whole["trained_tokens"]
    weights = [
        load(ModelKey(str(tiny_base), r["adapter_path"], "float32"), None).model.state_dict()
        for r in (whole, resumed)
    ]
    for name, tensor in weights[0].items():
        assert torch.allclose(tensor, weights[1][name], atol=1e-5), name


def test_should_stop_saves_a_checkpoint_and_reports_interrupted(
    tmp_path: Path, tiny_base: Path, events: Events
) -> None:
    result = train(spec_for(tmp_path, tiny_base), events.append, after_steps(3))

    assert result["interrupted"] is True
    assert result["metrics"]["steps"] == 3
    [checkpoint] = events.of("checkpoint")
    assert checkpoint["step"] == 3
    assert checkpoint["metrics"]["train_loss"] > 0
    saved = Path(checkpoint["path"])
    assert json.loads((saved / "state.json").read_text())["step"] == 3
    assert (saved / "adapter_config.json").is_file()
    assert (saved / "optimizer.pt").is_file()


def test_checkpoints_keep_the_last_two(tmp_path: Path, tiny_base: Path, events: Events) -> None:
    train(spec_for(tmp_path, tiny_base, epochs=2, checkpoint_every_steps=3), events.append)
    assert [event["step"] for event in events.of("checkpoint")] == [3, 6, 9, 12, 15]
    kept = sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir())
    assert kept == ["step-12", "step-15"]


def test_early_stopping_keeps_the_best_adapter(
    tmp_path: Path, tiny_base: Path, events: Events
) -> None:
    # Validation answers contradict training: validation loss rises as training fits.
    wrong = [
        {"prompt": prompt_of(country), "completion": f" {CAPITALS[(i + 1) % 8][1]}"}
        for i, (country, _) in enumerate(CAPITALS)
    ]
    spec = replace(
        spec_for(tmp_path, tiny_base, epochs=10, eval_every_steps=2, early_stopping_patience=2),
        validation_path=write_jsonl(tmp_path / "val.jsonl", wrong),
    )
    result = train(spec, events.append)

    assert result["stopped_early"] is True
    assert result["metrics"]["steps"] < 80
    val_losses = [event["val_loss"] for event in events.of("metrics") if "val_loss" in event]
    assert result["metrics"]["best_val_loss"] == min(val_losses) < val_losses[-1]
    assert any("early stopping" in event["message"] for event in events.of("log"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "has no examples"),
        (
            '{"prompt": "a", "completion": "b"}\n\n{"prompt": "a", "completion": "b"\n',
            "line 3: not valid JSON",
        ),
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', "line 2: missing 'completion'"),
        ('{"prompt": "a", "completion": 3}\n', "line 1: 'completion' must be a string"),
        ('["prompt", "completion"]\n', "line 1: expected a JSON object"),
        ('{"prompt": "a", "completion": "  "}\n', "line 1: 'completion' is empty"),
    ],
)
def test_bad_training_files_name_the_line(
    tmp_path: Path, tiny_base: Path, content: str, expected: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    spec = TrainSpec(
        "sft-lora", str(tiny_base), str(path), str(tmp_path / "out"), hyperparameters()
    )
    with pytest.raises(TrainingDataError, match=expected):
        train(spec, lambda e: None)
    assert not (tmp_path / "out").exists()


def test_prompt_gets_the_bos_serving_gives_it_never_twice() -> None:
    from tokenizers import processors

    tokenizer = word_tokenizer(["question", "?", "answer", ":", "paris"])
    # Like Llama/Gemma tokenizers: the post-processor adds <s> to every encoded text.
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    encoder = Encoder(tokenizer, max_length=16)
    served = tokenizer("question ? answer :", add_special_tokens=True)["input_ids"]
    item = encoder.encode("question ? answer :", " paris")
    assert item.input_ids[: len(served)] == served
    assert item.input_ids.count(1) == 1
    # A chat template that wrote <s> itself: serving adds nothing more, nor does training.
    templated = encoder.encode("<s> question ? answer :", " paris")
    assert templated.input_ids.count(1) == 1
