"""``python -m modelcycle.tune.train_main SPEC.json``: JSON lines out, SIGTERM checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tune_toy import hyperparameters, sft_rows, write_jsonl

from modelcycle.tune import train_main
from modelcycle.tune.engine import TrainSpec

pytest.importorskip("peft", reason="the [hf] extra is not installed")


def write_spec(tmp_path: Path, base: Path, train_path: str, **hp: Any) -> Path:
    spec = TrainSpec(
        "sft-lora", str(base), train_path, str(tmp_path / "out"), hyperparameters(**hp)
    )
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    return path


def start(spec: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MODELCYCLE_TRAIN_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "modelcycle.tune.train_main", str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_main_prints_one_json_event_per_line_and_done(tmp_path: Path, tiny_base: Path) -> None:
    spec = write_spec(tmp_path, tiny_base, write_jsonl(tmp_path / "t.jsonl", sft_rows(1)), epochs=2)
    process = start(spec)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]  # every line parses
    kinds = {event["event"] for event in events}
    assert {"log", "metrics", "progress", "done"} <= kinds
    done = events[-1]
    assert done["event"] == "done"
    assert done["interrupted"] is False
    assert done["metrics"]["steps"] == 4
    assert Path(done["adapter_path"], "adapter_model.safetensors").is_file()


@pytest.mark.slow  # a second trainer process: ~10 s of imports on 2 cores
def test_sigterm_saves_a_checkpoint_and_ends_interrupted(tmp_path: Path, tiny_base: Path) -> None:
    rows = sft_rows(2)
    spec = write_spec(tmp_path, tiny_base, write_jsonl(tmp_path / "t.jsonl", rows), epochs=100)
    process = start(spec)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if json.loads(line)["event"] == "metrics":
            process.send_signal(signal.SIGTERM)
            break
    rest, stderr = process.communicate(timeout=60)
    events = [json.loads(line) for line in lines + rest.splitlines()]

    assert process.returncode == 0, stderr
    done = events[-1]
    assert done["event"] == "done"
    assert done["interrupted"] is True
    assert done["metrics"]["steps"] < 400
    [checkpoint] = [event for event in events if event["event"] == "checkpoint"]
    assert checkpoint["step"] == done["metrics"]["steps"]
    assert Path(checkpoint["path"], "state.json").is_file()


def test_a_bad_file_is_an_error_event_naming_the_line(
    tmp_path: Path, tiny_base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n')
    code = train_main.main([str(write_spec(tmp_path, tiny_base, str(bad)))])

    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    assert code == 1
    assert json.loads(line) == {
        "event": "error",
        "message": "training file t.jsonl, line 2: not valid JSON (Expecting value)",
    }
    assert "Traceback" not in captured.err


def test_a_missing_spec_is_an_error_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main.main([str(tmp_path / "nope.json")]) == 1
    event = json.loads(capsys.readouterr().out)
    assert event["event"] == "error"
    assert "nope.json" in event["message"]
