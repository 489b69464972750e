"""Training data: dataset samples or uploaded files checked, formatted and written as JSONL.

Two steps, at two moments:

1. **Checking** (when the job is created, before anything is queued): every
   sample or line must convert to an SFT example (chat messages or a prompt,
   and the expected answer) or a DPO triple (a prompt, the chosen and the
   rejected answer); the first that does not fails the request with its
   position and the reason.
2. **Preparing** (when the job runs; idempotent, so a resumed job reuses it):
   each example's prompt is rendered the way serving renders it for the base
   version (``backends.prompting`` for ``prompt_format: completion``
   versions, else the tokenizer's chat template), exact duplicates are
   dropped, examples overlapping the evaluation datasets are dropped
   (``tune.decontaminate``), and the engine's JSONL files are written under
   ``home/tune/<job>/data``.

Data from datasets built from traces was PII-scrubbed when the dataset was
made (``modelcycle datasets from-traces``); this stage does not scrub again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.backends.base import GenerationParams, Message
from modelcycle.backends.prompting import render_chat, uses_template
from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.store.datasets import EvalSample
from modelcycle.tune.decontaminate import (
    DEFAULT_N,
    DecontaminationReport,
    EvalText,
    TrainText,
    decontaminate,
)

ROLES = frozenset({"system", "developer", "user", "assistant"})
MANIFEST = "prepared.json"


@dataclass(frozen=True, slots=True)
class Example:
    """One training example before formatting: the conversation or prompt, and the answers."""

    ref: str
    """How errors and reports name it: ``sample 3`` (a dataset position) or ``line 4``."""
    input: Mapping[str, Any]
    """``{"messages": [...]}`` or ``{"prompt": str}``."""
    target: str
    """The completion (SFT) or the chosen answer (DPO)."""
    rejected: str | None = None

    @property
    def user_text(self) -> str:
        """The words the example's author wrote (messages or prompt), for decontamination."""
        messages = self.input.get("messages")
        if isinstance(messages, list):
            return "\n".join(str(m.get("content", "")) for m in messages)
        return str(self.input.get("prompt", ""))


# -- checking --------------------------------------------------------------------------


def _input_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "input must be an object with 'messages' or 'prompt'"
    messages = value.get("messages")
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in ROLES:
                return f"message {index} needs a role (one of {', '.join(sorted(ROLES))})"
            if not isinstance(message.get("content"), str):
                return f"message {index}: 'content' must be a string"
        if not any(m["role"] == "user" for m in messages):
            return "'messages' has no user message"
        return None
    if isinstance(value.get("prompt"), str) and value["prompt"].strip():
        return None
    return "input needs 'messages' (a chat) or 'prompt' (a non-empty string)"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def example_of_sample(sample: EvalSample, method: str) -> Example | str:
    """The example a dataset sample makes, or the reason it makes none."""
    problem = _input_problem(sample.input)
    if problem is not None:
        return problem
    ref = f"sample {sample.position}"
    if method == "dpo":
        chosen = _text(sample.metadata.get("chosen")) or _text(sample.expected)
        rejected = _text(sample.metadata.get("rejected"))
        if chosen is None or rejected is None:
            return (
                "a DPO sample needs metadata 'chosen' and 'rejected' (or 'expected' as the "
                "chosen answer and metadata 'rejected')"
            )
        return Example(ref, sample.input, chosen, rejected)
    expected = _text(sample.expected)
    if expected is None:
        return "an SFT sample needs 'expected' (the answer to learn)"
    return Example(ref, sample.input, expected)


def _assistant_text(value: Any) -> str | None:
    """The text of an OpenAI ``preferred_output`` list (one assistant message)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        return _text(value[0].get("content")) if value[0].get("role") == "assistant" else None
    return None


def example_of_line(record: Any, ref: str, method: str) -> Example | str:
    """The example a JSONL line makes (our shapes or OpenAI's), or the reason it makes none."""
    if not isinstance(record, Mapping):
        return "expected a JSON object"
    if method == "dpo":
        if "preferred_output" in record:  # OpenAI's preference format
            chosen = _assistant_text(record.get("preferred_output"))
            rejected = _assistant_text(record.get("non_preferred_output"))
            source = record.get("input")
        else:
            chosen, rejected = _text(record.get("chosen")), _text(record.get("rejected"))
            source = {"prompt": record.get("prompt")}
        if chosen is None or rejected is None:
            return (
                "a DPO line needs 'prompt', 'chosen' and 'rejected', or OpenAI's 'input', "
                "'preferred_output' and 'non_preferred_output' (one assistant message each)"
            )
        problem = _input_problem(source)
        if problem is not None or not isinstance(source, Mapping):
            return problem or "input must be an object"
        return Example(ref, source, chosen, rejected)
    messages = record.get("messages")
    if messages is not None:  # OpenAI's chat format: the last message is the answer
        if not isinstance(messages, list) or len(messages) < 2:
            return "'messages' needs the conversation and a final assistant message"
        last = messages[-1]
        answer = _text(last.get("content")) if isinstance(last, Mapping) else None
        if not isinstance(last, Mapping) or last.get("role") != "assistant" or answer is None:
            return "the last message must be the assistant's answer (non-empty content)"
        source = {"messages": messages[:-1]}
        problem = _input_problem(source)
        return problem or Example(ref, source, answer)
    completion = _text(record.get("completion"))
    if completion is None or not isinstance(record.get("prompt"), str):
        return "an SFT line needs 'messages' (ending with the answer) or 'prompt' and 'completion'"
    source = {"prompt": record["prompt"]}
    problem = _input_problem(source)
    return problem or Example(ref, source, completion)


def check_samples(samples: Sequence[EvalSample], method: str, where: str) -> list[Example]:
    """Every sample as an example; the first bad one is an ``InvalidInput`` naming it."""
    examples: list[Example] = []
    for sample in samples:
        found = example_of_sample(sample, method)
        if isinstance(found, str):
            raise InvalidInput(
                f"{where}, sample {sample.position} (position from 0): {found}", param="dataset"
            )
        examples.append(found)
    if not examples:
        raise InvalidInput(f"{where} has no samples", param="dataset")
    return examples


def check_file(path: Path, method: str, where: str) -> list[Example]:
    """Every line of a JSONL file as an example; the first bad one fails with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {where}: {exc}", param="training_file") from None
    examples: list[Example] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{where}, line {number}: not valid JSON ({exc.msg})", param="training_file"
            ) from None
        found = example_of_line(record, f"line {number}", method)
        if isinstance(found, str):
            raise InvalidInput(f"{where}, line {number}: {found}", param="training_file")
        examples.append(found)
    if not examples:
        raise InvalidInput(f"{where} has no examples", param="training_file")
    return examples


# -- formatting ------------------------------------------------------------------------


def load_tokenizer(source: str) -> Any:
    """The base's tokenizer (for its chat template): a checkpoint directory or a GGUF file."""
    try:
        import transformers
    except ImportError as exc:
        raise MissingExtra("transformers", "hf") from exc
    path = Path(source).expanduser()
    try:
        if path.suffix.lower() == ".gguf":
            return transformers.AutoTokenizer.from_pretrained(
                path.parent, gguf_file=path.name, local_files_only=True
            )
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot load the tokenizer of the base model {source}: {exc}") from exc


class PromptFormatter:
    """Renders an example's input into the prompt text the served version would see.

    The same rules as ``backends/hf/rows.py``: a ``prompt`` is used as is; chat
    messages go through ``prompt_template`` for ``prompt_format: completion``
    versions (or when the tokenizer has no chat template), else through the
    tokenizer's chat template with the generation prompt.
    """

    def __init__(self, source: str, params: Mapping[str, Any], *, tokenizer: Any = None):
        self._source, self._params = source, params
        self._tokenizer = tokenizer
        self._loaded = tokenizer is not None

    def _chat_tokenizer(self) -> Any:
        if not self._loaded:
            self._tokenizer, self._loaded = load_tokenizer(self._source), True
        return self._tokenizer if getattr(self._tokenizer, "chat_template", None) else None

    def render(self, example: Example) -> tuple[str, str]:
        """(prompt, prefix for the answers): a frame like ``Answer:`` gets a space before them."""
        messages = example.input.get("messages")
        if not isinstance(messages, list):
            return str(example.input["prompt"]), ""
        chat = [Message(str(m["role"]), str(m["content"])) for m in messages]
        tokenizer = None if uses_template(self._params) else self._chat_tokenizer()
        if tokenizer is None:
            prompt, _ = render_chat(chat, self._params, GenerationParams())
            # Serving strips the space the model writes after the frame; training supplies it.
            return prompt, "" if not prompt or prompt[-1].isspace() else " "
        turns = [{"role": m.role, "content": m.content} for m in chat]
        try:
            text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja2 errors: the template refused these messages
            raise InvalidInput(
                f"{example.ref}: the base model's chat template refused it: {exc}"
            ) from exc
        return str(text), ""


# -- preparing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """The files the engine trains on and what preparing them found."""

    train_path: Path
    validation_path: Path | None
    examples: int
    validation_examples: int
    duplicates_dropped: int
    decontamination: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        """The summary stored in the job's artifacts."""
        return {
            "train_path": str(self.train_path),
            "validation_path": str(self.validation_path) if self.validation_path else None,
            "examples": self.examples,
            "validation_examples": self.validation_examples,
            "duplicates_dropped": self.duplicates_dropped,
            "decontamination": self.decontamination,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prepared:
        """A summary read back from ``prepared.json``."""
        validation = data.get("validation_path")
        return cls(
            Path(data["train_path"]),
            Path(validation) if validation else None,
            int(data["examples"]),
            int(data["validation_examples"]),
            int(data["duplicates_dropped"]),
            data.get("decontamination"),
        )


def _records(
    examples: Sequence[Example], method: str, formatter: PromptFormatter
) -> Iterator[tuple[Example, dict[str, str]]]:
    for example in examples:
        prompt, prefix = formatter.render(example)
        if method == "dpo":
            yield (
                example,
                {
                    "prompt": prompt,
                    "chosen": prefix + example.target,
                    "rejected": prefix + (example.rejected or ""),
                },
            )
        else:
            yield example, {"prompt": prompt, "completion": prefix + example.target}


def _write_jsonl(path: Path, records: Sequence[Mapping[str, str]]) -> None:
    staging = path.with_name(path.name + ".tmp")
    with staging.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(staging, path)


def prepare(
    directory: Path,
    method: str,
    train: Sequence[Example],
    validation: Sequence[Example] | None,
    formatter: PromptFormatter,
    eval_texts: Callable[[], Sequence[EvalText]] | None,
    eval_datasets: Sequence[str],
    *,
    n: int = DEFAULT_N,
) -> Prepared:
    """Write ``train.jsonl`` (and ``validation.jsonl``) under ``directory``, once.

    A second call (a resumed job) returns what the first wrote. Raises
    ``InvalidInput`` when no training example is left after deduplication and
    decontamination.
    """
    manifest = directory / MANIFEST
    if manifest.is_file():
        return Prepared.from_json(json.loads(manifest.read_text(encoding="utf-8")))
    directory.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, ...]] = set()
    unique: list[tuple[Example, dict[str, str]]] = []
    for example, record in _records(train, method, formatter):
        key = tuple(record.values())
        if key not in seen:
            seen.add(key)
            unique.append((example, record))
    duplicates = len(train) - len(unique)
    report: DecontaminationReport | None = None
    if eval_texts is not None and eval_datasets:
        texts = [TrainText(ex.ref, f"{ex.user_text}\n{ex.target}") for ex, _ in unique]
        keep, report = decontaminate(texts, eval_texts(), eval_datasets, n=n)
        unique = [unique[i] for i in keep]
    if not unique:
        why = (
            "after removing duplicates"
            if report is None
            else ("after removing duplicates and examples overlapping the evaluation datasets")
        )
        raise InvalidInput(f"no training example is left {why}")
    train_path = directory / "train.jsonl"
    _write_jsonl(train_path, [record for _, record in unique])
    validation_path: Path | None = None
    validation_count = 0
    if validation:
        validation_path = directory / "validation.jsonl"
        records = [record for _, record in _records(validation, method, formatter)]
        _write_jsonl(validation_path, records)
        validation_count = len(records)
    prepared = Prepared(
        train_path,
        validation_path,
        len(unique),
        validation_count,
        duplicates,
        report.as_json() if report is not None else None,
    )
    staging = manifest.with_name(MANIFEST + ".tmp")
    staging.write_text(json.dumps(prepared.as_json()), encoding="utf-8")
    os.replace(staging, manifest)
    return prepared


def eval_texts_of(dataset: str, samples: Sequence[EvalSample]) -> list[EvalText]:
    """The texts of an evaluation dataset's samples: input and expected answer."""
    out: list[EvalText] = []
    for sample in samples:
        messages = sample.messages
        if messages is not None:
            text = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            text = sample.prompt or ""
        if sample.expected:
            text += "\n" + sample.expected
        out.append(EvalText(dataset, sample.position, text))
    return out
