"""Dataset files: JSONL, chat JSONL and CSV in; JSONL (canonical) and CSV out.

Parsing is all-or-nothing: the first bad line raises ``InvalidInput`` whose
message starts with ``line N:`` and says what is wrong, and nothing is kept.
Every record becomes a :class:`SampleIn` whose ``input`` is either
``{"messages": [...]}`` (chat) or ``{"prompt": str}`` (completion): a plain
string input is one user message, a ``prompt`` key stays a completion prompt.
See docs/datasets.md for the accepted shapes and aliases.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import orjson

from modelcycle.errors import InvalidInput, PayloadTooLarge
from modelcycle.evaluate.samples import MAX_SAMPLES_PER_VERSION, SampleIn

FileFormat = Literal["jsonl", "chat", "csv"]
"""``jsonl``: one sample object a line; ``chat``: OpenAI fine-tuning lines; ``csv``: a table."""
ExportFormat = Literal["jsonl", "csv"]
FORMATS: tuple[FileFormat, ...] = ("jsonl", "chat", "csv")

MAX_FILE_BYTES = 50 * 1024 * 1024
"""The largest dataset file accepted (50 MiB)."""
MAX_SAMPLES = MAX_SAMPLES_PER_VERSION

INPUT_KEYS = ("input", "prompt", "question", "query")
EXPECTED_KEYS = ("expected", "ideal", "answer", "output", "target", "reference", "completion")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_KEYS = frozenset({"role", "content", "name"})
_IGNORED_MESSAGE_KEYS = frozenset({"weight"})  # fine-tuning loss weights: no meaning here
_EXTENSIONS: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
_CONTENT_TYPES: dict[str, FileFormat] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}


# A prompt may be longer than csv's default cell limit of 128 KiB; the file limit bounds it.
csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES))


class BadRecord(ValueError):
    """What is wrong with one record; the parser adds the line number."""


def bad_line(line: int, reason: str) -> InvalidInput:
    """The error of a malformed file: ``line N: reason``, nothing imported."""
    return InvalidInput(
        f"line {line}: {reason}; nothing was imported", param="file", code="malformed_dataset"
    )


# -- format detection -----------------------------------------------------------------------


def detect_format(
    content: bytes, *, filename: str | None = None, content_type: str | None = None
) -> FileFormat:
    """The format of a file: from its extension, else its content type, else its first line."""
    if filename:
        for extension, found in _EXTENSIONS.items():
            if filename.lower().endswith(extension):
                return found
    if content_type:
        found_type = _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if found_type is not None:
            return found_type
    first = next((line.strip() for line in content.splitlines() if line.strip()), b"")
    return "jsonl" if first.lstrip(b"\xef\xbb\xbf").startswith(b"{") else "csv"


def check_format(value: str) -> FileFormat:
    """``value`` as a format name; a 400 listing the choices otherwise."""
    for known in FORMATS:
        if value == known:
            return known
    raise InvalidInput(
        f"unknown dataset format {value!r}; use one of: {', '.join(FORMATS)}", param="format"
    )


# -- parsing --------------------------------------------------------------------------------


def parse_file(content: bytes, file_format: FileFormat) -> list[SampleIn]:
    """Every sample of a file, or ``InvalidInput`` naming the first bad line."""
    if len(content) > MAX_FILE_BYTES:
        raise PayloadTooLarge(
            f"the file is {len(content)} bytes, over the limit of {MAX_FILE_BYTES} bytes; "
            "split it and import the parts as separate datasets",
            param="file",
        )
    text = _decode(content)
    rows = list(_csv_records(text) if file_format == "csv" else _json_records(text, file_format))
    if not rows:
        raise bad_line(1, "the file is empty (no samples)")
    return rows


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise bad_line(line, f"not UTF-8 text (byte 0x{content[exc.start]:02x})") from None
    return text.removeprefix("\ufeff")


def _json_records(text: str, file_format: FileFormat) -> Iterator[SampleIn]:
    count = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise bad_line(number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        try:
            yield sample_from_json(value, chat=file_format == "chat")
        except BadRecord as exc:
            raise bad_line(number, str(exc)) from None
        count += 1
        _check_count(count, number)


def _check_count(count: int, line: int) -> None:
    if count > MAX_SAMPLES:
        raise bad_line(line, f"over the limit of {MAX_SAMPLES} samples per version; split the file")


def sample_from_json(value: Any, *, chat: bool = False) -> SampleIn:
    """One JSON record as a sample (``BadRecord`` says why it cannot be one)."""
    if not isinstance(value, dict):
        raise BadRecord(f"expected a JSON object, got {_kind(value)}")
    _check_text(value)
    if chat or ("messages" in value and not _present(value, INPUT_KEYS)):
        return _chat_record(value, required_answer=chat)
    input_key = _one_of(value, INPUT_KEYS, "input")
    if input_key is None:
        raise BadRecord(
            "missing input: give an 'input' (or 'prompt', 'question', 'query') or a 'messages' list"
        )
    if "messages" in value:
        raise BadRecord(f"give '{input_key}' or 'messages', not both")
    expected, alternatives = _expected(value)
    metadata = _metadata(value, skip={input_key, *EXPECTED_KEYS})
    if alternatives:
        metadata["expected_alternatives"] = alternatives
    return SampleIn(
        _input(value[input_key], input_key), expected, metadata, _trace_id(value.get("trace_id"))
    )


def _chat_record(value: dict[str, Any], *, required_answer: bool) -> SampleIn:
    raw = value.get("messages")
    if raw is None:
        raise BadRecord("missing 'messages' (chat format: a list of {role, content})")
    messages = parse_messages(raw, "messages")
    expected, alternatives = _expected(value)
    if expected is None and messages[-1]["role"] == "assistant":
        expected = messages.pop()["content"]
    elif required_answer and expected is None:
        raise BadRecord("the last message must be the assistant's answer (role 'assistant')")
    if not messages:
        raise BadRecord("'messages' has nothing before the assistant's answer")
    metadata = _metadata(value, skip={"messages", *EXPECTED_KEYS})
    if alternatives:
        metadata["expected_alternatives"] = alternatives
    return SampleIn({"messages": messages}, expected, metadata, _trace_id(value.get("trace_id")))


def _input(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        if not value.strip():
            raise BadRecord(f"'{key}' is empty")
        if key == "prompt":
            return {"prompt": value}
        return {"messages": [{"role": "user", "content": value}]}
    if isinstance(value, list):
        return {"messages": parse_messages(value, key)}
    if isinstance(value, dict):
        if set(value) == {"messages"}:
            return {"messages": parse_messages(value["messages"], f"{key}.messages")}
        if set(value) == {"prompt"} and isinstance(value["prompt"], str):
            if not value["prompt"].strip():
                raise BadRecord(f"'{key}.prompt' is empty")
            return {"prompt": value["prompt"]}
        raise BadRecord(
            f"'{key}' must be a string, a list of messages, {{\"messages\": [...]}} "
            f'or {{"prompt": str}}; got an object with keys {sorted(value)}'
        )
    raise BadRecord(f"'{key}' must be a string or messages, got {_kind(value)}")


def parse_messages(value: Any, where: str) -> list[dict[str, Any]]:
    """Validated chat messages (``role``, string ``content``, optional ``name``)."""
    if not isinstance(value, list) or not value:
        raise BadRecord(f"'{where}' must be a non-empty list of {{role, content}} objects")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(message, dict):
            raise BadRecord(f"{at} must be an object with role and content, got {_kind(message)}")
        unknown = set(message) - _MESSAGE_KEYS - _IGNORED_MESSAGE_KEYS
        if unknown:
            raise BadRecord(f"{at} has unsupported key(s) {sorted(unknown)}")
        role = message.get("role")
        if role not in ROLES:
            raise BadRecord(f"{at}.role {role!r} is not one of {', '.join(sorted(ROLES))}")
        content = message.get("content")
        if not isinstance(content, str):
            raise BadRecord(f"{at}.content must be a string, got {_kind(content)}")
        kept: dict[str, Any] = {"role": role, "content": content}
        if "name" in message:
            if not isinstance(message["name"], str):
                raise BadRecord(f"{at}.name must be a string")
            kept["name"] = message["name"]
        out.append(kept)
    return out


def _expected(value: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The expected answer and, for a list of acceptable answers, all of them."""
    key = _one_of(value, EXPECTED_KEYS, "expected answer")
    if key is None or value[key] is None:
        return None, []
    found = value[key]
    if isinstance(found, str):
        return found, []
    if isinstance(found, list) and found and all(isinstance(item, str) for item in found):
        return found[0], list(found)
    raise BadRecord(f"'{key}' must be a string (or a list of strings), got {_kind(found)}")


def _metadata(value: dict[str, Any], *, skip: set[str]) -> dict[str, Any]:
    """``metadata`` and any other top-level fields (``id``, ``category``, ...), which it wins."""
    given = value.get("metadata")
    if given is not None and not isinstance(given, dict):
        raise BadRecord(f"'metadata' must be an object, got {_kind(given)}")
    extra = {
        key: item
        for key, item in value.items()
        if key not in skip and key not in {"metadata", "trace_id", *INPUT_KEYS}
    }
    return {**extra, **(given or {})}


def _trace_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise BadRecord("'trace_id' must be a string of at most 32 characters")
    return value


def _one_of(value: Mapping[str, Any], keys: Sequence[str], what: str) -> str | None:
    found = [key for key in keys if key in value]
    if len(found) > 1:
        raise BadRecord(f"give one {what}, not both {found[0]!r} and {found[1]!r}")
    return found[0] if found else None


def _present(value: Mapping[str, Any], keys: Sequence[str]) -> bool:
    return any(key in value for key in keys)


def _check_text(value: Any) -> None:
    """No NUL character anywhere: PostgreSQL text cannot hold one."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRecord("contains a NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _csv_records(text: str) -> Iterator[SampleIn]:
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise bad_line(line, "contains a NUL character")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise bad_line(1, f"not valid CSV ({exc})") from None
    if header is None or not any(cell.strip() for cell in header):
        return
    columns = [cell.strip() for cell in header]
    input_column, expected_column = _csv_columns(columns)
    count, line = 0, reader.line_num
    while True:
        start = line + 1  # a quoted cell may span lines: report where the row starts
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise bad_line(start, f"not valid CSV ({exc})") from None
        line = reader.line_num
        if row is None:
            return
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise bad_line(start, f"{len(row)} cells, but the header has {len(columns)} columns")
        cells = dict(zip(columns, row, strict=True))
        try:
            prompt = _input(cells[input_column], input_column.lower())
        except BadRecord as exc:
            raise bad_line(start, str(exc)) from None
        expected = cells[expected_column] if expected_column is not None else None
        skip = {input_column, expected_column}
        metadata = {key: item for key, item in cells.items() if key not in skip}
        count += 1
        _check_count(count, start)
        yield SampleIn(prompt, expected or None, metadata)


def _csv_columns(columns: list[str]) -> tuple[str, str | None]:
    if len(set(columns)) != len(columns):
        twice = sorted({name for name in columns if columns.count(name) > 1})
        raise bad_line(1, f"column(s) {twice} appear more than once in the header")
    inputs = [name for name in columns if name.lower() in INPUT_KEYS]
    expected = [name for name in columns if name.lower() in EXPECTED_KEYS]
    if not inputs:
        raise bad_line(
            1, f"no input column: name one of {', '.join(INPUT_KEYS)} (header: {columns})"
        )
    if len(inputs) > 1 or len(expected) > 1:
        both = inputs if len(inputs) > 1 else expected
        raise bad_line(1, f"columns {both} name the same thing; keep one")
    return inputs[0], expected[0] if expected else None


# -- export ---------------------------------------------------------------------------------


def sample_json(sample: SampleIn) -> dict[str, Any]:
    """The canonical JSONL record of a sample (re-importing it gives the same content hash)."""
    record: dict[str, Any] = {"input": dict(sample.input)}
    if sample.expected is not None:
        record["expected"] = sample.expected
    if sample.metadata:
        record["metadata"] = dict(sample.metadata)
    if sample.trace_id is not None:
        record["trace_id"] = sample.trace_id
    return record


def to_jsonl(samples: Sequence[SampleIn]) -> bytes:
    """Samples as JSON lines, the lossless form."""
    return b"".join(orjson.dumps(sample_json(sample)) + b"\n" for sample in samples)


def to_csv(samples: Sequence[SampleIn]) -> bytes:
    """Samples as CSV: ``input`` (or ``prompt``), ``expected`` and one column per metadata key.

    A cell holds a single text, so a multi-message conversation cannot be written
    (export it as JSONL); metadata values that are not strings are written as JSON.
    """
    prompts = any("prompt" in sample.input for sample in samples)
    chats = any("messages" in sample.input for sample in samples)
    if prompts and chats:
        raise InvalidInput(
            "the version mixes chat messages and completion prompts, which one CSV "
            "cannot hold; export as JSONL",
            param="format",
        )
    keys = list(dict.fromkeys(key for sample in samples for key in sample.metadata))
    columns = [*(["input"] if chats else []), *(["prompt"] if prompts else []), "expected", *keys]
    if set(keys) & {"input", "prompt", "expected"}:
        raise InvalidInput("a metadata key collides with a CSV column; export as JSONL")
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for position, sample in enumerate(samples):
        cells: dict[str, str] = {"expected": sample.expected or ""}
        messages = sample.input.get("messages")
        if messages is not None:
            if len(messages) != 1 or messages[0].get("role") != "user" or len(messages[0]) != 2:
                raise InvalidInput(
                    f"sample {position} is a conversation of {len(messages)} message(s); "
                    "CSV holds one user message per row: export as JSONL",
                    param="format",
                )
            cells["input"] = messages[0]["content"]
        else:
            cells["prompt"] = sample.input["prompt"]
        for key, value in sample.metadata.items():
            cells[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
        writer.writerow([cells.get(column, "") for column in columns])
    return out.getvalue().encode("utf-8")
