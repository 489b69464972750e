"""Pausing background work between slices, so the event loop thread gets the GIL.

A thread that converts a batch of spans holds the GIL for as long as it runs
Python code; requests wait behind it. ``pause`` hands the GIL over between
slices (``time.sleep(0)``: a system call, ~1 µs on a quiet machine, far more
when the CPU is contended). A process that serves no requests (the trace
writer child) calls ``alone`` and its pauses cost nothing.
"""

from __future__ import annotations

import time

_others_wait = True


def pause() -> None:
    """Let the event loop thread take the GIL, unless this process serves no requests."""
    if _others_wait:
        time.sleep(0)


def alone() -> None:
    """This process serves no requests: background work never pauses for them."""
    global _others_wait
    _others_wait = False
