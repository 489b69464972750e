"""Training data: checking samples and files, formatting like serving, dedupe, decontamination."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelcycle.backends.base import GenerationParams, Message
from modelcycle.backends.prompting import render_chat
from modelcycle.errors import InvalidInput
from modelcycle.store.datasets import EvalSample
from modelcycle.testing.tiny_lm import word_tokenizer
from modelcycle.tune.data import (
    Example,
    PromptFormatter,
    check_file,
    check_samples,
    eval_texts_of,
    prepare,
)
from modelcycle.tune.decontaminate import EvalText, TrainText, decontaminate, normalise

FRAME = {"prompt_format": "completion", "prompt_template": "Q: {prompt}\nA:"}
CHAT = "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} {% endfor %}assistant :"


def sample(
    position: int, input: dict[str, Any], expected: str | None = None, **meta: Any
) -> EvalSample:
    return EvalSample(position + 1, position, input, expected, meta, None, f"h{position}")


def chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_samples_become_sft_examples_and_dpo_triples() -> None:
    sft = check_samples(
        [sample(0, chat("hi"), "hello"), sample(1, {"prompt": "x"}, "y")], "sft-lora", "dataset d@1"
    )
    assert [(e.ref, e.target) for e in sft] == [("sample 0", "hello"), ("sample 1", "y")]
    dpo = check_samples(
        [
            sample(0, chat("hi"), None, chosen="hello", rejected="go away"),
            sample(1, chat("hey"), "hi there", rejected="what"),
        ],
        "dpo",
        "dataset d@1",
    )
    assert [(e.target, e.rejected) for e in dpo] == [("hello", "go away"), ("hi there", "what")]


@pytest.mark.parametrize(
    ("bad", "method", "reason"),
    [
        (sample(2, chat("hi")), "sft-lora", "sample 2 .*needs 'expected'"),
        (sample(2, {"messages": []}, "x"), "sft-lora", "sample 2 .*non-empty list"),
        (
            sample(2, {"messages": [{"role": "bot", "content": "x"}]}, "x"),
            "sft-lora",
            "sample 2 .*message 0 needs a role",
        ),
        (
            sample(2, {"messages": [{"role": "system", "content": "x"}]}, "x"),
            "sft-lora",
            "sample 2 .*no user",
        ),
        (sample(2, chat("hi"), "x"), "dpo", "sample 2 .*metadata 'rejected'"),
    ],
)
def test_a_bad_sample_is_named_with_the_reason(bad: EvalSample, method: str, reason: str) -> None:
    good = sample(0, chat("fine"), "ok", rejected="no")
    with pytest.raises(InvalidInput, match=f"dataset d@3, {reason}"):
        check_samples([good, bad], method, "dataset d@3")


def test_files_in_our_shapes_and_openais_are_read_and_bad_lines_named(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        },
        {"prompt": "2+2=", "completion": "4"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    examples = check_file(path, "sft-lora", "file f")
    assert [(e.ref, e.input, e.target) for e in examples] == [
        ("line 1", chat("hi"), "hello"),
        ("line 2", {"prompt": "2+2="}, "4"),
    ]
    preference = {
        "input": chat("hi"),
        "preferred_output": [{"role": "assistant", "content": "hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    path.write_text(
        json.dumps(preference) + "\n" + json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"})
    )
    assert [(e.target, e.rejected) for e in check_file(path, "dpo", "file f")] == [
        ("hello", "go away"),
        ("b", "c"),
    ]
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(InvalidInput, match=r"file f, line 2: not valid JSON"):
        check_file(path, "sft-lora", "file f")
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}] * 2}))
    with pytest.raises(InvalidInput, match=r"line 1: the last message must be the assistant's"):
        check_file(path, "sft-lora", "file f")


def test_prompts_are_rendered_exactly_as_serving_renders_them() -> None:
    example = Example(
        "sample 0",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "capital of France?"},
            ]
        },
        "Paris",
    )
    prompt, prefix = PromptFormatter("unused", FRAME).render(example)
    served, _ = render_chat(
        [Message("system", "be brief"), Message("user", "capital of France?")],
        FRAME,
        GenerationParams(),
    )
    assert (prompt, prefix) == (served, " ") == ("Q: capital of France?\nA:", " ")

    tokenizer = word_tokenizer(["hi"], chat_template=CHAT)
    with_template = PromptFormatter("unused", {}, tokenizer=tokenizer)
    assert with_template.render(Example("s", chat("hi"), "x")) == ("<s> user : hi assistant :", "")
    assert with_template.render(Example("s", {"prompt": "raw text"}, "x")) == ("raw text", "")


def test_decontamination_drops_examples_sharing_ngrams_with_eval_samples() -> None:
    long_eval = "the quick brown fox jumps over the lazy dog near the river bank"
    evals = [
        EvalText("qa@1", 0, long_eval),
        EvalText("qa@1", 1, "Capital of Peru? Lima"),  # short: compared whole
        EvalText("qa@1", 2, "hi there"),  # too short to call a leak
    ]
    train = [
        TrainText("sample 0", "Story: The QUICK brown fox jumps over the lazy dog, again."),
        TrainText("sample 1", "capital of peru lima"),
        TrainText("sample 2", "the quick brown fox sleeps"),
        TrainText("sample 3", "hi there friend"),
    ]
    keep, report = decontaminate(train, evals, ["qa@1"], n=8)
    assert keep == [2, 3]
    data = report.as_json()
    assert data["dropped"] == ["sample 0", "sample 1"]
    assert data["dropped_count"] == 2
    assert data["overlaps"][0] == {
        "example": "sample 0",
        "eval_dataset": "qa@1",
        "eval_sample": 0,
        "ngram": "the quick brown fox jumps over the lazy",
    }
    assert (data["n"], data["checked"], data["eval_samples"], data["short_eval_texts_skipped"]) == (
        8,
        4,
        3,
        1,
    )
    assert normalise("Héllo,  WORLD!") == ["héllo", "world"]


def test_prepare_dedupes_decontaminates_writes_jsonl_once(tmp_path: Path) -> None:
    examples = [
        Example("sample 0", chat("capital of france"), "Paris"),
        Example("sample 1", chat("capital of france"), "Paris"),
        Example("sample 2", chat("capital of peru"), "Lima"),
        Example("sample 3", chat("capital of spain"), "Madrid"),
    ]
    held_out = [sample(0, chat("Capital of Peru"), "lima")]
    calls = []

    def eval_texts() -> list[EvalText]:
        calls.append(1)
        return eval_texts_of("qa@1", held_out)

    formatter = PromptFormatter("unused", FRAME)
    prepared = prepare(
        tmp_path / "data", "sft-lora", examples, None, formatter, eval_texts, ["qa@1"]
    )
    lines = [json.loads(line) for line in prepared.train_path.read_text().splitlines()]
    assert lines == [
        {"prompt": "Q: capital of france\nA:", "completion": " Paris"},
        {"prompt": "Q: capital of spain\nA:", "completion": " Madrid"},
    ]
    assert (prepared.examples, prepared.duplicates_dropped) == (2, 1)
    assert prepared.decontamination is not None
    assert prepared.decontamination["dropped"] == ["sample 2"]
    again = prepare(tmp_path / "data", "sft-lora", [], None, formatter, eval_texts, ["qa@1"])
    assert again == prepared
    assert calls == [1]

    with pytest.raises(InvalidInput, match="no training example is left"):
        prepare(
            tmp_path / "other", "sft-lora", examples[2:3], None, formatter, eval_texts, ["qa@1"]
        )
