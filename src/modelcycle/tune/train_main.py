"""``python -m modelcycle.tune.train_main SPEC.json``: the engine as a subprocess.

Every event is one JSON line on stdout, flushed at once; the last line is
``{"event": "done", ...result}`` (exit 0) or ``{"event": "error", "message"}``
(exit 1). SIGTERM (and SIGINT) ask for a graceful stop: the engine saves a
checkpoint after the current step and the run ends with ``done`` and
``"interrupted": true``. Library logs and warnings go to stderr only, so
stdout stays machine-readable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from modelcycle.errors import ModelcycleError


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def _quiet_progress_bars() -> None:
    """No weight-loading bars on stderr: its tail is what a failed job shows."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # the engine reports the missing extra itself
        return
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> int:
    """Run the spec named by ``argv`` (default: the command line); the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        _emit(
            {"event": "error", "message": "usage: python -m modelcycle.tune.train_main SPEC.json"}
        )
        return 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a hub download from a training job
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _quiet_progress_bars()
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        from modelcycle.tune.engine import TrainSpec, train

        try:
            text = Path(args[0]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelcycleError(f"cannot read the training spec {args[0]}: {exc}") from None
        spec = TrainSpec.from_json(text)
        result = train(spec, _emit, lambda: stop_requested)
    except ModelcycleError as exc:
        _emit({"event": "error", "message": str(exc)})
        return 1
    except Exception as exc:  # an engine bug or a broken model: keep the trace for the logs
        traceback.print_exc(file=sys.stderr)
        _emit({"event": "error", "message": f"training failed: {type(exc).__name__}: {exc}"})
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _emit({"event": "done", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
