"""Background work yields to requests: GIL pauses in the server, CPU class in the child."""

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


PRIORITY = """
import os
from modelcycle.cli.trace_writer import background_priority, normal_class
idle = background_priority()
seen = [os.sched_getscheduler(0)]
with normal_class():
    seen.append(os.sched_getscheduler(0))
seen.append(os.sched_getscheduler(0))
expected = [os.SCHED_IDLE, os.SCHED_OTHER, os.SCHED_IDLE]
print(idle, seen == expected, os.getpriority(os.PRIO_PROCESS, 0))
"""


def test_the_trace_writer_leaves_the_idle_class_only_while_it_holds_the_write_lock() -> None:
    # A fresh interpreter: a raised niceness cannot be lowered again.
    found = subprocess.run(
        [sys.executable, "-c", PRIORITY], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.split() == ["True", "True", "19"]
