"""Dataset files: every accepted shape, aliases, the line of each malformed one, export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from modelcycle.errors import InvalidInput, PayloadTooLarge
from modelcycle.evaluate import dataset_files
from modelcycle.evaluate.dataset_files import detect_format, parse_file, to_csv, to_jsonl
from modelcycle.evaluate.samples import SampleIn


def lines(*records: object) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def user(text: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


def test_jsonl_input_forms_and_the_expected_answer() -> None:
    samples = parse_file(
        lines(
            {"input": "What is 2+2?", "expected": "4", "metadata": {"topic": "math"}},
            {
                "input": {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"},
                    ]
                }
            },
            {"input": {"prompt": "Once upon a time"}, "expected": "there was"},
            {"input": [{"role": "user", "content": "OpenAI evals style"}], "ideal": "ok"},
        ),
        "jsonl",
    )

    assert [s.input for s in samples] == [
        user("What is 2+2?"),
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ]
        },
        {"prompt": "Once upon a time"},
        user("OpenAI evals style"),
    ]
    assert [s.expected for s in samples] == ["4", None, "there was", "ok"]
    assert samples[0].metadata == {"topic": "math"}


@pytest.mark.parametrize(
    ("record", "want_input", "want_expected"),
    [
        ({"prompt": "complete me", "completion": "done"}, {"prompt": "complete me"}, "done"),
        (
            {"question": "Capital of France?", "answer": "Paris"},
            user("Capital of France?"),
            "Paris",
        ),
        ({"query": "refund policy", "reference": "30 days"}, user("refund policy"), "30 days"),
        ({"input": "x", "output": "y"}, user("x"), "y"),
        ({"input": "x", "target": "y"}, user("x"), "y"),
        ({"input": "x", "ideal": ["y", "Y"]}, user("x"), "y"),
    ],
)
def test_common_aliases_of_input_and_expected(
    record: dict[str, object], want_input: dict[str, object], want_expected: str
) -> None:
    (sample,) = parse_file(lines(record), "jsonl")

    assert sample.input == want_input
    assert sample.expected == want_expected


def test_other_fields_go_to_metadata_and_a_list_of_answers_is_kept() -> None:
    (sample,) = parse_file(
        lines({"id": 7, "question": "q", "ideal": ["a", "b"], "metadata": {"id": 8}}), "jsonl"
    )

    # Explicit metadata wins over a top-level field of the same name.
    assert sample.metadata == {"id": 8, "expected_alternatives": ["a", "b"]}


def test_chat_format_takes_the_last_assistant_message_as_expected() -> None:
    convo = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi.", "weight": 1},
        ]
    }
    auto = parse_file(lines(convo), "jsonl")
    forced = parse_file(lines(convo), "chat")

    for (sample,) in (auto, forced):
        assert sample.input == {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"},
            ]
        }
        assert sample.expected == "Hi."


def test_csv_with_an_input_column_expected_and_metadata_columns() -> None:
    content = b'question,answer,difficulty\n"What is\nmultiline?",yes,hard\nPlain,,easy\n\n'

    samples = parse_file(content, "csv")

    assert [s.input for s in samples] == [user("What is\nmultiline?"), user("Plain")]
    assert [s.expected for s in samples] == ["yes", None]
    assert [s.metadata for s in samples] == [{"difficulty": "hard"}, {"difficulty": "easy"}]


def test_a_csv_prompt_column_is_a_completion_prompt_and_a_bom_is_ignored() -> None:
    (sample,) = parse_file("\ufeffPrompt,Expected\nfill in,done\n".encode(), "csv")

    assert sample.input == {"prompt": "fill in"}
    assert sample.expected == "done"


@pytest.mark.parametrize(
    ("content", "kwargs", "want"),
    [
        (b'{"input": "x"}\n', {}, "jsonl"),
        (b"input,expected\nx,y\n", {}, "csv"),
        (b"input\nx\n", {"filename": "data.JSONL"}, "jsonl"),
        (b'{"input": "x"}', {"filename": "data.csv"}, "csv"),
        (b"x", {"content_type": "text/csv; charset=utf-8"}, "csv"),
        (b"x", {"content_type": "application/x-ndjson"}, "jsonl"),
    ],
)
def test_the_format_is_detected_from_the_name_the_type_or_the_content(
    content: bytes, kwargs: dict[str, str], want: str
) -> None:
    assert detect_format(content, **kwargs) == want


@pytest.mark.parametrize(
    ("content", "file_format", "line", "reason"),
    [
        (lines({"input": "ok"}) + b'{"input": "x",\n', "jsonl", 2, "not valid JSON"),
        (
            lines({"input": "ok"}, {"input": "ok"}) + b'["a list"]\n',
            "jsonl",
            3,
            "expected a JSON object",
        ),
        (b"\n\n" + lines({"expected": "no input"}), "jsonl", 3, "missing input"),
        (lines({"input": 42}), "jsonl", 1, "'input' must be a string or messages, got a number"),
        (lines({"input": "x", "expected": {"a": 1}}), "jsonl", 1, "'expected' must be a string"),
        (lines({"input": "x", "metadata": [1]}), "jsonl", 1, "'metadata' must be an object"),
        (lines({"input": "x", "prompt": "y"}), "jsonl", 1, "not both 'input' and 'prompt'"),
        (lines({"input": "a\u0000b"}), "jsonl", 1, "NUL character"),
        (
            lines({"messages": [{"role": "robot", "content": "x"}]}),
            "jsonl",
            1,
            "messages[0].role 'robot' is not one of",
        ),
        (
            lines({"messages": [{"role": "user", "content": None}]}),
            "jsonl",
            1,
            "messages[0].content must be a string",
        ),
        (lines({"messages": [{"role": "user", "content": "x"}]}), "chat", 1, "assistant's answer"),
        (b"", "jsonl", 1, "the file is empty"),
        (b"\n  \n", "jsonl", 1, "the file is empty"),
        (b'{"input": "ok"}\n{"input": "caf\xe9"}\n', "jsonl", 2, "not UTF-8"),
        (b"input,expected\nx,y\nz\n", "csv", 3, "1 cells, but the header has 2 columns"),
        (b"text,label\nx,y\n", "csv", 1, "no input column"),
        (b"input,question\nx,y\n", "csv", 1, "name the same thing"),
        (b'input,expected\nx,y\n"unterminated,z\n', "csv", 3, "not valid CSV"),
        (b"input,expected\n,y\n", "csv", 2, "'input' is empty"),
        (b"input\nok\nnul\x00here\n", "csv", 3, "NUL character"),
        (b"", "csv", 1, "the file is empty"),
    ],
)
def test_a_malformed_file_names_the_line_and_the_reason(
    content: bytes, file_format: dataset_files.FileFormat, line: int, reason: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_file(content, file_format)

    message = raised.value.message
    assert message.startswith(f"line {line}: "), message
    assert reason in message
    assert "nothing was imported" in message
    assert raised.value.code == "malformed_dataset"


def test_a_file_over_the_size_limit_is_refused_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dataset_files, "MAX_FILE_BYTES", 100)

    with pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes"):
        parse_file(lines(*({"input": "x" * 10} for _ in range(10))), "jsonl")


def test_more_samples_than_a_version_may_hold_is_refused_at_that_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dataset_files, "MAX_SAMPLES", 3)

    with pytest.raises(InvalidInput, match=r"^line 4: over the limit of 3 samples"):
        parse_file(lines(*({"input": str(i)} for i in range(5))), "jsonl")


SAMPLES = [
    SampleIn(user("What is 2+2?"), "4", {"topic": "math", "level": 1}),
    SampleIn(
        {"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}]},
        None,
        {},
        "0" * 32,
    ),
    SampleIn({"prompt": "Once"}, "upon", {"tags": ["a", "b"]}),
]


def test_jsonl_export_round_trips_every_field_and_the_content_hash() -> None:
    again = parse_file(to_jsonl(SAMPLES), "jsonl")

    assert again == SAMPLES
    assert [s.content_hash for s in again] == [s.content_hash for s in SAMPLES]


def test_csv_export_round_trips_single_message_samples() -> None:
    original = [
        SampleIn(user("Capital of France?"), "Paris", {"topic": "geo"}),
        SampleIn(user('Quote "this", please'), None, {"topic": "misc"}),
    ]

    exported = to_csv(original)
    rows = list(csv.reader(io.StringIO(exported.decode())))

    assert rows[0] == ["input", "expected", "topic"]
    assert parse_file(exported, "csv") == original


def test_csv_export_writes_non_string_metadata_as_json_and_refuses_conversations() -> None:
    exported = to_csv([SampleIn({"prompt": "p"}, "e", {"tags": ["a"], "n": 2})])

    assert exported.decode().splitlines() == ["prompt,expected,tags,n", 'p,e,"[""a""]",2']
    with pytest.raises(InvalidInput, match="sample 1 is a conversation of 2 message"):
        to_csv([SAMPLES[0], SAMPLES[1]])
    with pytest.raises(InvalidInput, match="mixes chat messages and completion prompts"):
        to_csv([SAMPLES[0], SAMPLES[2]])
