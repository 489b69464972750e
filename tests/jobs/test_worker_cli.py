"""``modelcycle worker`` and the worker ``modelcycle up`` starts: real processes, real signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.live import free_port, wait_until_answers
from modelcycle.jobs import JobState
from modelcycle.services import Services
from modelcycle.testing import admin_of, make_services, make_settings

MODELCYCLE = Path(sys.executable).with_name("modelcycle")
DEADLINE_S = 60.0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    return env | {"MODELCYCLE_HOME": str(home), "MODELCYCLE_REGISTER_DEFAULT_MODEL": "false"}


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _platform_jobs_done(services: Services) -> bool:
    jobs = services.jobs.list(project_id=None).items
    return bool(jobs) and all(job.state == JobState.SUCCEEDED for job in jobs)


def test_the_worker_command_runs_jobs_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    services = make_services(make_settings(home))
    project_id = admin_of(services).principal.project_id
    check = {"reference": {"kind": "texts", "inputs": ["hello"]}, "metrics": ["language"]}
    drift_job = services.jobs.enqueue(
        "drift.check", {"check": check}, project_id=project_id, actor="test"
    ).id
    process = subprocess.Popen(
        [str(MODELCYCLE), "worker", "--threads", "2"],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(lambda: _platform_jobs_done(services), "the platform's scheduled jobs")
        _until(lambda: services.jobs.get(drift_job).state.finished, "the drift check job")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=DEADLINE_S)
    done = services.jobs.get(drift_job)
    services.close()

    assert process.returncode == 0, err
    assert "modelcycle worker" in out
    assert "drift.check" in out
    assert "worker stopped" in err
    assert "Traceback" not in err
    assert done.state == JobState.SUCCEEDED
    assert done.result is not None
    assert "report_id" in done.result


@pytest.mark.e2e
def test_up_runs_a_worker_process_and_stops_it_with_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    process = subprocess.Popen(
        [str(MODELCYCLE), "up", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/readyz", timeout_s=DEADLINE_S)
        services = make_services(make_settings(home))
        try:
            _until(lambda: _platform_jobs_done(services), "the worker started by up")
        finally:
            services.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=DEADLINE_S)

    found = re.search(r"background worker: pid (\d+)", out)
    assert found, out
    assert process.returncode == 0, err
    with pytest.raises(ProcessLookupError):
        os.kill(int(found.group(1)), 0)  # stopped (and reaped) with the server


def test_the_children_of_a_killed_server_stop_too(tmp_path: Path) -> None:
    """SIGKILL leaves ``up`` no chance to stop its children: the worker notices and exits,
    the trace writer sees its pipe close and exits."""
    home = tmp_path / "home"
    port = free_port()
    process = subprocess.Popen(
        [str(MODELCYCLE), "up", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")

    def child(command: bytes) -> int | None:
        for pid in children.read_text().split():
            if command in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                return int(pid)
        return None

    try:
        wait_until_answers(f"http://127.0.0.1:{port}/readyz", timeout_s=DEADLINE_S)
        _until(lambda: child(b"worker") is not None, "up to start its worker")
        _until(lambda: child(b"trace-writer") is not None, "up to start its trace writer")
        pids = {child(b"worker"), child(b"trace-writer")}
    finally:
        process.kill()
        process.wait(timeout=DEADLINE_S)

    def gone(pid: int | None) -> bool:  # exited: no such process, or a zombie nobody reaps
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rpartition(")")[2].split()[0] == "Z"

    _until(lambda: all(gone(pid) for pid in pids), "the orphaned worker and trace writer to exit")
