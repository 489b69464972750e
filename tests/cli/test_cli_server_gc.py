"""``modelcycle up`` tunes its garbage collector as the settings say (docs/performance.md).

Run in a subprocess: freezing the test process's own heap would change every
test after this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import gc, json
from modelcycle.cli.server import tune_gc
from modelcycle.settings import load_settings
before = gc.get_threshold()
tune_gc(load_settings())
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def probe(**env: str) -> dict[str, list[int] | int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: dict[str, list[int] | int] = json.loads(done.stdout)
    return found


def test_by_default_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    found = probe()
    assert found["after"] == [10_000, *found["before"][1:]]  # type: ignore[index]
    assert found["frozen"] > 10_000  # everything imported and built so far


def test_both_can_be_turned_off() -> None:
    found = probe(MODELCYCLE_GC_FREEZE="false", MODELCYCLE_GC_GEN0_THRESHOLD="0")
    assert found["after"] == found["before"]
    assert found["frozen"] == 0
