"""Memory: 50,000 requests through the gateway grow its resident memory by less than 50 MB.

The gateway runs as a user runs it (``modelcycle up``, see ``harness``) in front
of the mock upstream. wrk sends a mix: whole chat answers, streamed ones (with
``include_usage``) and, one request in ten, an unknown deployment (a 404) so
that the error path is soaked too. Resident memory (VmRSS, from /proc) is read
after a warm-up and again after the soak; its trend is printed along the way.

    .venv/bin/python benchmarks/memory_soak.py [--requests 50000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import harness

BAD_BODY = harness.CHAT_BODY.replace('"model": "bench"', '"model": "no-such-deployment"')
STREAM_BODY = harness.STREAM_BODY[:-1] + ', "stream_options": {"include_usage": true}}'


def mixed_script(key: str) -> Path:
    """A wrk script cycling through whole, streamed and failing requests."""
    fd, name = tempfile.mkstemp(suffix=".lua", prefix="bench-soak-")
    with os.fdopen(fd, "w") as out:
        out.write('wrk.method = "POST"\n')
        out.write('wrk.headers["Content-Type"] = "application/json"\n')
        out.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        out.write(f"chat = '{harness.CHAT_BODY}'\nstream = '{STREAM_BODY}'\nbad = '{BAD_BODY}'\n")
        out.write(
            "counter = 0\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            "  local body = chat\n"
            "  if counter % 10 == 0 then body = bad\n"
            "  elseif counter % 2 == 0 then body = stream end\n"
            "  return wrk.format(nil, nil, nil, body)\n"
            "end\n"
        )
    return Path(name)


def drive(url: str, script: Path, requests: int, pid: int) -> int:
    """Send at least ``requests`` requests; print RSS as it goes. Returns how many were sent."""
    sent = 0
    while sent < requests:
        found = harness.wrk(url, script, 16, 5, pid)
        sent += found.requests
        print(f"  {sent:>7} requests  RSS {harness.rss_mb(pid):7.1f} MiB  {found.rps:7.0f} req/s")
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--backend", choices=("openai", "mock"), default=None)
    args = parser.parse_args()

    with harness.servers() as stack:
        upstream = harness.start_upstream(stack)
        gateway = harness.start_gateway(stack, upstream, backend=args.backend)
        url = f"{gateway.url}/v1/chat/completions"
        harness.check_answers(url, gateway.key)
        script = mixed_script(gateway.key)
        print(f"gateway backend: {gateway.backend}; pid {gateway.pid}")
        print(f"RSS at start: {harness.rss_mb(gateway.pid):.1f} MiB; warming up")
        drive(url, script, args.warmup, gateway.pid)
        before = harness.rss_mb(gateway.pid)
        print(f"RSS after warm-up: {before:.1f} MiB; soaking")
        sent = drive(url, script, args.requests, gateway.pid)
        after = harness.rss_mb(gateway.pid)
        script.unlink()

    growth = after - before
    print(f"{sent} requests: RSS {before:.1f} -> {after:.1f} MiB, growth {growth:+.1f} MiB")
    print("goal: growth < 50 MiB over 50,000 requests")
    verdict = sent >= args.requests and growth < 50
    print("PASS" if verdict else "FAIL")
    raise SystemExit(0 if verdict else 1)


if __name__ == "__main__":
    main()
