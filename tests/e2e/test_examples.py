"""The scripts in ``examples/`` run as a user runs them, against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.live import LiveServer
from modelcycle.client import Client

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.slow
def test_send_traffic_records_traces_feedback_and_a_drift_between_its_two_phases(
    live_server: LiveServer,
) -> None:
    with Client(live_server.url, live_server.admin_key) as client:
        version = client.models.register("chat", source="mock://echo", backend="mock")
        client.deployments.create("demo", f"chat@{version.version}")
    env = {**os.environ, "MODELCYCLE_API_KEY": live_server.admin_key, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "send_traffic.py"),
            "--server",
            live_server.url,
            "--deployment",
            "demo",
            "--requests",
            "80",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "drifted=True" in done.stdout
    live_server.services.recorder.flush()
    with Client(live_server.url, live_server.admin_key) as client:
        summary = client.traces.rollups(deployment="demo").summary
        traces = client.traces.list(deployment="demo", limit=200).data
        with_feedback = client.traces.list(deployment="demo", has_feedback=True, limit=200).data
    assert summary.requests == 80
    assert len(traces) == 80
    assert {t.user_id for t in traces} >= {"user-0", "user-11"}
    assert f"feedback given on {len(with_feedback)} traces" in done.stdout
