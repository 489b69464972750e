"""``modelcycle up`` as a real process: it migrates, prints the admin key once, serves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from e2e.live import free_port, wait_until_answers

pytestmark = pytest.mark.e2e

MODELCYCLE = Path(sys.executable).with_name("modelcycle")


@dataclass(frozen=True)
class Run:
    url: str
    stdout: str
    stderr: str
    returncode: int
    admin_key: str | None
    whoami_status: int | None


def run_up(home: Path, logs: Path) -> Run:
    """Start ``modelcycle up``, wait until ready, try the printed key, then press Ctrl-C."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env |= {"MODELCYCLE_HOME": str(home), "MODELCYCLE_REGISTER_DEFAULT_MODEL": "false"}
    logs.mkdir()
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    key, status = None, None
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [str(MODELCYCLE), "up", "--port", str(port)], stdout=out, stderr=err, env=env
        )
        try:
            wait_until_answers(f"{url}/readyz", timeout_s=30)
            found = re.search(r"^admin API key: (\S+)$", out_path.read_text(), re.MULTILINE)
            if found:
                key = found.group(1)
                headers = {"Authorization": f"Bearer {key}"}
                status = httpx.get(f"{url}/api/v1/whoami", headers=headers).status_code
        finally:
            process.send_signal(signal.SIGINT)
            returncode = process.wait(timeout=15)
    return Run(url, out_path.read_text(), err_path.read_text(), returncode, key, status)


def test_up_prints_a_working_admin_key_on_first_start_only(tmp_path: Path) -> None:
    home = tmp_path / "home"

    first = run_up(home, tmp_path / "first")
    second = run_up(home, tmp_path / "second")

    assert f"modelcycle listening on {first.url}" in first.stdout
    assert f"data dir: {home}" in first.stdout
    assert f"OpenAI-compatible API: {first.url}/v1" in first.stdout
    assert "shown only now" in first.stdout
    assert first.whoami_status == 200
    assert second.admin_key is None
    assert f"modelcycle listening on {second.url}" in second.stdout
    assert first.returncode == second.returncode == 0
    assert "Traceback" not in first.stderr + second.stderr
