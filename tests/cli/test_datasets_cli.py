"""``modelcycle datasets``: import, list, show, export, split, dedupe, from-traces, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.runner import Cli
from modelcycle.monitor.trace_schemas import FeedbackCreate, MonitorPolicyUpdate
from modelcycle.services import Services
from modelcycle.testing import KeyPair
from monitor.trace_factory import llm_span

pytestmark = pytest.mark.e2e

QA = "".join(
    json.dumps(line) + "\n"
    for line in [
        {"question": "What is 2+2?", "answer": "4", "topic": "math"},
        {"question": "Capital of France?", "answer": "Paris", "topic": "geo"},
        {"question": "capital of  FRANCE", "answer": "Paris", "topic": "geo"},
        {"question": "Largest planet?", "answer": "Jupiter", "topic": "space"},
    ]
)


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text(QA)
    return path


def test_import_list_show_and_export_round_trip(cli: Cli, qa_file: Path, tmp_path: Path) -> None:
    imported = cli.json("datasets", "import", "qa", str(qa_file), "--description", "smoke")
    listed = cli("datasets", "list")
    shown = cli("datasets", "show", "qa")
    version = cli("datasets", "show", "qa@1")
    out = tmp_path / "out.jsonl"
    exported = cli("datasets", "export", "qa@1", "--out", str(out))
    to_stdout = cli("datasets", "export", "qa", "--format", "csv")
    again = cli.json("datasets", "import", "qa", str(out))

    assert (imported["ref"], imported["sample_count"]) == ("qa@1", 4)
    assert imported["meta"]["file"] == "qa.jsonl"
    assert listed.exit_code == 0
    assert "qa" in listed.stdout
    assert "smoke" in listed.stdout
    assert shown.exit_code == 0
    assert imported["content_hash"][:12] in shown.stdout
    assert version.exit_code == 0
    assert "Capital of France?" in version.stdout
    assert exported.exit_code == 0
    assert exported.stdout.startswith(f"wrote {out.stat().st_size} bytes")
    assert len(out.read_text().splitlines()) == 4
    assert to_stdout.stdout.splitlines()[0] == "input,expected,topic"
    assert len(to_stdout.stdout.splitlines()) == 5
    # The export is lossless: importing it again gives the same content.
    assert again["content_hash"] == imported["content_hash"]
    assert again["ref"] == "qa@2"


def test_a_malformed_file_is_one_error_line_naming_the_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(QA + '{"question": "no closing brace"\n')
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("input,expected\nok,1\nnot,ok,at all\n")

    cli.fails("datasets", "import", "qa", str(bad), naming=("line 5: not valid JSON",))
    cli.fails("datasets", "import", "qa", str(bad_csv), naming=("line 3: 3 cells",))
    cli.fails("datasets", "import", "qa", str(tmp_path / "missing.jsonl"), naming=("cannot read",))
    cli.fails("datasets", "show", "qa", naming=("dataset 'qa' not found",))


def test_split_and_dedupe(cli: Cli, qa_file: Path) -> None:
    cli.json("datasets", "import", "qa", str(qa_file))

    exact = cli.json("datasets", "dedupe", "qa")
    near = cli("datasets", "dedupe", "qa", "--near")
    parts = cli.json(
        "datasets", "split", "qa", "--ratio", "train=0.5", "--ratio", "test=0.5", "--seed", "1"
    )

    assert (exact["removed"], exact["created"]) == (0, False)
    assert near.exit_code == 0, near.output
    assert "removed 1 duplicate(s): qa@2 has 3 samples" in near.stdout
    assert [(p["ref"], p["parent"]) for p in parts] == [
        ("qa-train@1", "qa@2"),
        ("qa-test@1", "qa@2"),
    ]
    assert sum(p["sample_count"] for p in parts) == 3
    cli.fails("datasets", "split", "qa", "--ratio", "train", naming=("is not PART=FRACTION",))
    cli.fails(
        "datasets", "split", "qa", "--ratio", "a=0.5", "--ratio", "b=0.6", naming=("add up to",)
    )


def test_from_traces_builds_a_scrubbed_version_from_corrected_answers(
    cli: Cli, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    admin = modelcycle_admin.principal
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=True))
    now = datetime.now(UTC)
    span = replace(
        llm_span(admin.project_id, input='[{"role":"user","content":"I am eve@example.net"}]'),
        start_time=now - timedelta(hours=1),
        end_time=now - timedelta(hours=1) + timedelta(milliseconds=100),
    )
    modelcycle_services.recorder.writer.write([span])
    modelcycle_services.feedback.add(
        admin, span.trace_id, FeedbackCreate(thumbs=-1, correction="Hello Eve.")
    )

    made = cli.json(
        "datasets",
        "from-traces",
        "fixes",
        "--deployment",
        "chat",
        "--feedback",
        "negative",
        "--with-correction",
        "--since",
        "7d",
    )
    shown = cli.json("datasets", "show", "fixes@1")
    table = cli("datasets", "show", "fixes@1")

    assert (made["source"], made["sample_count"]) == ("traces", 1)
    assert made["meta"]["scrubbed"] is True
    (sample,) = shown["samples"]
    assert sample["input"]["messages"][0]["content"] == "I am [EMAIL_ADDRESS]"
    assert (sample["expected"], sample["trace_id"]) == ("Hello Eve.", span.trace_id)
    assert table.exit_code == 0
    assert "eve@example.net" not in table.stdout
    assert "Hello Eve." in table.stdout
    cli.fails(
        "datasets",
        "from-traces",
        "none",
        "--deployment",
        "nowhere",
        "--since",
        "1d",
        naming=("no trace matches the filter",),
    )
