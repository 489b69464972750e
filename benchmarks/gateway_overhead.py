"""Gateway overhead: the gateway vs the bare pass-through, side by side in one run.

Issue 3 asks, with authentication, routing and event emission on:

* requests/s at concurrency 16 >= 0.6 x the pass-through's;
* p50 latency at concurrency 1 at most 1 ms over the pass-through's.

Both proxies forward to the same zero-latency mock upstream (see ``harness``);
wrk drives each in interleaved rounds and the medians are compared, which keeps
drift on a shared machine from favouring either side.

    .venv/bin/python benchmarks/gateway_overhead.py [--duration 5] [--rounds 3] [--guard]

``--guard`` adds a second gateway whose deployment runs the default guard policy
(PII and secrets redacted both ways, injection refused) and prints its requests/s
and p50 against the unguarded gateway's, measured in the same interleaved rounds.
"""

from __future__ import annotations

import argparse

import harness
from harness import WrkResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    parser.add_argument("--backend", choices=("openai", "mock"), default=None)
    parser.add_argument(
        "--guard", action="store_true", help="also measure a gateway with the default guard"
    )
    args = parser.parse_args()

    with harness.servers() as stack:
        upstream = harness.start_upstream(stack)
        passthrough = harness.start_passthrough(stack, upstream)
        gateway = harness.start_gateway(stack, upstream, backend=args.backend)
        targets = {
            "upstream": (f"{upstream.url}/v1/chat/completions", upstream.pid),
            "passthrough": (f"{passthrough.url}/v1/chat/completions", passthrough.pid),
            "gateway": (f"{gateway.url}/v1/chat/completions", gateway.pid),
        }
        for url, _ in targets.values():
            harness.check_answers(url, gateway.key)
        script = harness.lua_script(gateway.key)
        scripts = dict.fromkeys(targets, script)
        if args.guard:  # its own server and key; the same upstream
            guarded = harness.start_gateway(stack, upstream, backend=args.backend, guard="default")
            targets["guarded"] = (f"{guarded.url}/v1/chat/completions", guarded.pid)
            harness.check_answers(targets["guarded"][0], guarded.key)
            scripts["guarded"] = harness.lua_script(guarded.key)
        print(f"gateway backend: {gateway.backend} (deployment 'bench')")
        results: dict[tuple[str, int], list[WrkResult]] = {}
        for connections in (1, 16):
            for name, (url, _) in targets.items():  # warm-up: connection pools, caches
                harness.wrk(url, scripts[name], connections, 1)
            for _ in range(args.rounds):
                for name, (url, pid) in targets.items():
                    found = harness.wrk(url, scripts[name], connections, args.duration, pid)
                    results.setdefault((name, connections), []).append(found)
        for path in set(scripts.values()):
            path.unlink()

    summary = {key: harness.median_of(runs) for key, runs in results.items()}
    print(
        f"{'target':<12} {'c':>3} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10} {'errors':>7}"
    )
    for (name, connections), found in sorted(summary.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(
            f"{name:<12} {connections:>3} {found.rps:>10.0f} {found.p50_ms:>8.3f} "
            f"{found.p99_ms:>8.3f} {found.cpu_us:>10.0f} {found.non_2xx + found.socket_errors:>7}"
        )
    gw16, pt16 = summary[("gateway", 16)], summary[("passthrough", 16)]
    gw1, pt1 = summary[("gateway", 1)], summary[("passthrough", 1)]
    ratio = gw16.rps / pt16.rps
    added = gw1.p50_ms - pt1.p50_ms
    print(f"gateway/passthrough req/s at c=16: {ratio:.2f}  (goal >= 0.60)")
    print(f"gateway/passthrough req/s at c=1:  {gw1.rps / pt1.rps:.2f}")
    print(f"added p50 at c=1: {added:+.3f} ms  (goal <= 1.000 ms)")
    print(
        f"server CPU per request at c=16: gateway {gw16.cpu_us:.0f} us, "
        f"pass-through {pt16.cpu_us:.0f} us (ratio {pt16.cpu_us / gw16.cpu_us:.2f})"
    )
    if args.guard:
        print_guarded(summary)
    errors = sum(r.non_2xx + r.socket_errors for k, r in summary.items() if k[0] != "upstream")
    verdict = ratio >= 0.6 and added <= 1.0 and errors == 0
    print("PASS" if verdict else "FAIL")
    raise SystemExit(0 if verdict else 1)


def print_guarded(summary: dict[tuple[str, int], WrkResult]) -> None:
    """The guarded gateway against the unguarded one."""
    g16, g1 = summary[("guarded", 16)], summary[("guarded", 1)]
    gw16, gw1 = summary[("gateway", 16)], summary[("gateway", 1)]
    print(f"guarded/unguarded req/s at c=16: {g16.rps / gw16.rps:.2f}")
    print(f"guarded/unguarded req/s at c=1:  {g1.rps / gw1.rps:.2f}")
    print(f"guard's added p50 at c=1: {g1.p50_ms - gw1.p50_ms:+.3f} ms  (goal <= 0.500 ms)")


if __name__ == "__main__":
    main()
