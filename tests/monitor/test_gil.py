"""Background work pauses for the request path only in a process that serves requests."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import time
from modelcycle.monitor import gil
calls = []
time.sleep = calls.append
gil.pause()
gil.alone()
gil.pause()
gil.pause()
print(calls)
"""


def test_pauses_yield_the_gil_until_the_process_is_alone() -> None:
    # A fresh interpreter: ``alone`` is a process-wide switch.
    found = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[0]"
