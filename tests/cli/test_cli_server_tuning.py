"""``modelcycle up`` tunes its garbage collector and glibc's malloc as the settings say.

See docs/performance.md.

Run in a subprocess: freezing the test process's own heap would change every
test after this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

PROBE = """
import gc, json
from modelcycle.cli.server import tune_gc
from modelcycle.settings import load_settings
before = gc.get_threshold()
tune_gc(load_settings())
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def probe(**env: str) -> dict[str, list[int] | int]:
    return run_probe(PROBE, **env)


def run_probe(code: str, **env: str) -> Any:
    """What ``code`` prints (JSON), run in a fresh interpreter with ``env`` as settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_by_default_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    found = probe()
    assert found["after"] == [10_000, *found["before"][1:]]  # type: ignore[index]
    assert found["frozen"] > 10_000  # everything imported and built so far


def test_both_can_be_turned_off() -> None:
    found = probe(MODELCYCLE_GC_FREEZE="false", MODELCYCLE_GC_GEN0_THRESHOLD="0")
    assert found["after"] == found["before"]
    assert found["frozen"] == 0


MALLOC_PROBE = """
import json
from modelcycle.cli.server import tune_malloc
from modelcycle.settings import load_settings

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

tuned = tune_malloc(load_settings())
held = [b"x" * 8192 for _ in range(4096)]  # 32 MiB in blocks below the mmap threshold
full = rss()
del held
print(json.dumps({"tuned": tuned, "given_back_mib": (full - rss()) / 2**20}))
"""


def malloc_probe(**env: str) -> dict[str, float]:
    found: dict[str, float] = run_probe(MALLOC_PROBE, **env)
    return found


@pytest.mark.skipif(os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc's mallopt only")
def test_freed_memory_is_kept_for_reuse_instead_of_faulted_in_again() -> None:
    found = malloc_probe()
    assert found["tuned"] is True
    assert found["given_back_mib"] < 4, "the 32 MiB freed stay in the heap for the next batch"


@pytest.mark.skipif(os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc's mallopt only")
def test_with_zero_glibc_gives_freed_memory_back_as_by_default() -> None:
    found = malloc_probe(MODELCYCLE_MALLOC_KEEP_MB="0")
    assert found["tuned"] is False
    assert found["given_back_mib"] > 24
