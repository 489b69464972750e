"""Tracing on vs off: the same gateway, side by side in one run.

Issue 4: recording every request (the ``RequestFinished`` event, the recorder's queue,
the Prometheus observer, and storing spans and rollups in SQLite with their text
redacted) costs at most 5% of the gateway's requests/s at concurrency 16.

``modelcycle up`` stores traces in a child process (``modelcycle trace-writer``); its
CPU time is not the server's, so it is printed too: per span, over the measured runs.

Two ``modelcycle up`` servers (``MODELCYCLE_TRACING=true`` and ``false``) forward to the
same zero-latency mock upstream (see ``harness``); wrk drives each in interleaved rounds,
each server first in every other round (ABBA), and the medians are compared. At the end
the traced server's ``/metrics`` must show every request written and none dropped, or
the comparison would flatter tracing.

    .venv/bin/python benchmarks/tracing_overhead.py [--duration 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import httpx
from harness import WrkResult
from prometheus_client.parser import text_string_to_metric_families

GOAL = 0.95


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` while a server is started (it copies the environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def recorder_counters(url: str, timeout_s: float = 30.0) -> dict[str, float]:
    """The recorder's counters once its queue is empty (the writer wakes every 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = httpx.get(f"{url}/metrics", timeout=10).text
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name.startswith("modelcycle_trace")
        }
        if found["modelcycle_trace_queue_depth"] == 0 or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def measure(
    gateways: dict[str, harness.Gateway],
    scripts: dict[str, Path],
    connections: int,
    rounds: int,
    duration_s: float,
) -> dict[str, list[WrkResult]]:
    """Each gateway's wrk runs, after a warm-up, in ``rounds`` interleaved rounds."""
    for name, gateway in gateways.items():
        harness.wrk(f"{gateway.url}/v1/chat/completions", scripts[name], connections, 1)
    results: dict[str, list[WrkResult]] = {name: [] for name in gateways}
    for round_number in range(rounds):
        # ABBA: each server runs first in half of the rounds, so that whatever the
        # first or the second run of a pair gains cancels out.
        order = list(gateways.items())
        if round_number % 2:
            order.reverse()
        for name, gateway in order:
            url = f"{gateway.url}/v1/chat/completions"
            found = harness.wrk(url, scripts[name], connections, duration_s, gateway.pid)
            results[name].append(found)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Many short rounds: the two runs of a pair are seconds apart, so the machine's
    # drifts (per-round ratios of 0.5-1.4 on the shared 2-core VM) mostly cancel.
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds per target")
    parser.add_argument("--backend", choices=("openai", "mock"), default=None)
    args = parser.parse_args()

    with harness.servers() as stack:
        upstream = harness.start_upstream(stack)
        gateways = {}
        for name, flag in (("tracing on", "true"), ("tracing off", "false")):
            with environment(MODELCYCLE_TRACING=flag):
                gateways[name] = harness.start_gateway(stack, upstream, backend=args.backend)
        for gateway in gateways.values():
            harness.check_answers(f"{gateway.url}/v1/chat/completions", gateway.key)
        scripts = {name: harness.lua_script(gateway.key) for name, gateway in gateways.items()}
        print(f"gateway backend: {gateways['tracing on'].backend} (deployment 'bench')")
        writer = harness.trace_writer_pid(gateways["tracing on"].pid)
        writer_cpu = harness.cpu_s(writer) if writer else 0.0
        written_before = recorder_counters(gateways["tracing on"].url)[
            "modelcycle_traces_written_total"
        ]
        results: dict[tuple[str, int], list[WrkResult]] = {}
        for connections in (1, 16):
            rounds = measure(gateways, scripts, connections, args.rounds, args.duration)
            for name, runs in rounds.items():
                results[(name, connections)] = runs
        counters = recorder_counters(gateways["tracing on"].url)
        writer_cpu = harness.cpu_s(writer) - writer_cpu if writer else 0.0
        untraced = recorder_counters(gateways["tracing off"].url)
        for script in scripts.values():
            script.unlink()

    summary = {key: harness.median_of(runs) for key, runs in results.items()}
    print(f"{'target':<12} {'c':>3} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10}")
    for (name, connections), found in sorted(summary.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(
            f"{name:<12} {connections:>3} {found.rps:>10.0f} {found.p50_ms:>8.3f} "
            f"{found.p99_ms:>8.3f} {found.cpu_us:>10.0f}"
        )
    on16, off16 = summary[("tracing on", 16)], summary[("tracing off", 16)]
    on1, off1 = summary[("tracing on", 1)], summary[("tracing off", 1)]
    # Each round measures both servers back to back: the median of the rounds' ratios
    # cancels the machine's slow drifts better than the ratio of the medians.
    paired = [
        on.rps / off.rps
        for on, off in zip(results[("tracing on", 16)], results[("tracing off", 16)], strict=True)
    ]
    ratio = statistics.median(paired)
    print(f"tracing on/off req/s at c=16: {ratio:.3f}  (goal >= {GOAL:.2f}; median of the rounds)")
    rounds = ", ".join(f"{r:.3f}" for r in paired)
    print(f"  rounds: {rounds}; ratio of medians {on16.rps / off16.rps:.3f}")
    first, second = statistics.median(paired[::2]), statistics.median(paired[1::2])
    print(f"  median of the rounds with tracing on run first {first:.3f}, second {second:.3f}")
    print(f"tracing on/off req/s at c=1:  {on1.rps / off1.rps:.3f}")
    print(f"added p50 at c=1: {on1.p50_ms - off1.p50_ms:+.3f} ms")
    print(f"server CPU per request at c=16: on {on16.cpu_us:.0f} us, off {off16.cpu_us:.0f} us")
    print(
        f"  of it in the kernel: on {on16.sys_us:.0f} us, off {off16.sys_us:.0f} us; "
        f"minor page faults per request: on {on16.faults:.3f}, off {off16.faults:.3f}"
    )
    sent = sum(r.requests for key, r in summary.items() if key[0] == "tracing on")
    written = counters.get("modelcycle_traces_written_total", 0)
    dropped = counters.get("modelcycle_traces_dropped_total", 0)
    print(
        f"traced server: {written:.0f} spans written, {dropped:.0f} dropped "
        f"(>= {sent} requests in the measured runs, warm-ups and checks on top)"
    )
    if writer:
        stored = max(written - written_before, 1)
        print(f"trace writer child: {writer_cpu / stored * 1e6:.0f} us CPU per span stored")
    else:
        print("trace writer: a thread of the server (MODELCYCLE_TRACE_WRITER=thread)")
    print(f"untraced server wrote {untraced.get('modelcycle_traces_written_total', 0):.0f} spans")
    errors = sum(r.non_2xx + r.socket_errors for r in summary.values())
    verdict = ratio >= GOAL and dropped == 0 and written >= sent and errors == 0
    print("PASS" if verdict else "FAIL")
    raise SystemExit(0 if verdict else 1)


if __name__ == "__main__":
    main()
