"""What rate limits, the concurrency limit and the response cache cost: req/s with vs without.

Three gateways (``modelcycle up``, one uvicorn worker each, the zero-latency
``mock`` backend) run side by side in one run:

* ``off``: no limits, no cache (the circuit breaker is on everywhere: it is the default);
* ``memory``: project defaults (``MODELCYCLE_PROJECT_RPM/TPM``, ``MODELCYCLE_KEY_RPM/TPM``)
  plus the deployment's ``rpm``, ``tpm``, ``key_rpm``, ``key_tpm``, ``max_concurrency``
  and ``cache.ttl_s``: eight budgets charged per request, in process;
* ``redis``: the same, shared through Redis (``MODELCYCLE_REDIS_URL``; skipped with a
  message when no Redis answers).

The limits are set high enough never to refuse, so every request pays the full
admission cost. Two request shapes: ``repeat`` (one deterministic request
again and again: cache hits once warm) and ``unique`` (a new prompt per
request: a cache miss and a store every time, the worst case). wrk drives each
gateway in interleaved rounds at the given concurrency; the medians are
compared as ratios to ``off``.

    .venv/bin/python benchmarks/limits_overhead.py [--duration 3] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import harness
import httpx
from harness import WrkResult

from modelcycle.access.keys import generate_key
from modelcycle.client import Client
from modelcycle.deploy import CachePolicy, DeploymentLimits
from modelcycle.types import Role

REDIS_URL = os.environ.get("MODELCYCLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HIGH = 1_000_000_000  # never reached: every request pays for the check, none is refused


def start(
    stack: contextlib.ExitStack, name: str, env: dict[str, str], limited: bool
) -> tuple[str, str, int]:
    """``modelcycle up`` with deployment ``bench``; returns its URL, an app key and its pid."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-limits-{name}-"))
    stack.callback(shutil.rmtree, home, True)
    admin, _ = generate_key()
    port = harness.free_port()
    full_env = {
        **os.environ,
        "MODELCYCLE_HOME": str(home),
        "MODELCYCLE_ADMIN_KEY": admin,
        "MODELCYCLE_REGISTER_DEFAULT_MODEL": "false",
        "MODELCYCLE_LOG_LEVEL": "warning",
        **env,
    }
    log = stack.enter_context(open(Path(tempfile.gettempdir()) / f"bench-limits-{name}.log", "wb"))  # noqa: SIM115
    modelcycle = Path(sys.executable).with_name("modelcycle")
    process = subprocess.Popen(
        [str(modelcycle), "up", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

    stack.callback(stop)
    harness.wait_for_port(port, process)
    url = f"http://127.0.0.1:{port}"
    with Client(url, admin) as client:
        version = client.models.register("bench-model", source="mock://echo", backend="mock")
        limits = cache = None
        if limited:
            limits = DeploymentLimits(
                rpm=HIGH, tpm=HIGH, key_rpm=HIGH, key_tpm=HIGH, max_concurrency=1024
            )
            cache = CachePolicy(ttl_s=600)
        target = f"bench-model@{version.version}"
        client.deployments.create("bench", target, limits=limits, cache=cache)
        key = client.keys.create("bench", Role.APP).key
    return f"{url}/v1/chat/completions", key, process.pid


def script(key: str, unique: bool) -> Path:
    """A wrk script: the same deterministic request, or a new prompt every time."""
    fd, name = tempfile.mkstemp(suffix=".lua", prefix="bench-limits-")
    head = (
        '{"model": "bench", "temperature": 0, "max_tokens": 16, '
        '"messages": [{"role": "user", "content": "'
    )
    with os.fdopen(fd, "w") as out:
        out.write('wrk.method = "POST"\n')
        out.write('wrk.headers["Content-Type"] = "application/json"\n')
        out.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        if not unique:
            out.write(f"wrk.body = '{head}How long is a piece of string?\"}}]}}'\n")
        else:
            # Each wrk thread numbers its requests; the run's nonce keeps rounds apart.
            out.write("local threads = 0\n")
            out.write(
                'function setup(thread) threads = threads + 1; thread:set("tid", threads) end\n'
            )
            out.write("counter = 0\n")
            out.write("function request()\n  counter = counter + 1\n")
            nonce = uuid.uuid4().hex
            out.write(f"  local body = '{head}question {nonce} ' .. tid .. ' ' .. counter")
            out.write(" .. '\"}]}'\n")
            out.write("  return wrk.format(nil, nil, nil, body)\nend\n")
    return Path(name)


def redis_answers() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per gateway")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = parser.parse_args()

    project = {
        "MODELCYCLE_PROJECT_RPM": str(HIGH),
        "MODELCYCLE_PROJECT_TPM": str(HIGH),
        "MODELCYCLE_KEY_RPM": str(HIGH),
        "MODELCYCLE_KEY_TPM": str(HIGH),
    }
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    configs = {"off": ({}, False), "memory": (project, True)}
    if redis_answers():
        configs["redis"] = (
            {**project, "MODELCYCLE_REDIS_URL": REDIS_URL, "MODELCYCLE_REDIS_KEY_PREFIX": prefix},
            True,
        )
    else:
        print(f"no Redis at {REDIS_URL}: the redis column is skipped")

    results: dict[tuple[str, str], list[WrkResult]] = {}
    with harness.servers() as stack:
        gateways = {
            name: start(stack, name, env, limited) for name, (env, limited) in configs.items()
        }
        for shape in ("repeat", "unique"):
            scripts = {
                name: script(key, shape == "unique") for name, (_, key, _) in gateways.items()
            }
            for name, (url, key, _) in gateways.items():  # warm-up, and a sanity check
                answer = httpx.post(
                    url,
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "bench", "messages": [{"role": "user", "content": "hi"}]},
                )
                answer.raise_for_status()
                harness.wrk(url, scripts[name], args.connections, 1)
            for _ in range(args.rounds):
                for name, (url, _, pid) in gateways.items():
                    run = harness.wrk(url, scripts[name], args.connections, args.duration, pid)
                    results.setdefault((shape, name), []).append(run)
            for path in scripts.values():
                path.unlink()
    if "redis" in configs:
        _clean_redis(prefix)

    summary = {key: harness.median_of(runs) for key, runs in results.items()}
    print(f"\nconcurrency {args.connections}, {args.rounds} x {args.duration:g} s per gateway")
    print(
        f"{'shape':<7} {'gateway':<7} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU us/req':>10} {'non-2xx':>8} {'vs off':>7}"
    )
    for (shape, name), found in summary.items():
        ratio = found.rps / summary[(shape, "off")].rps
        print(
            f"{shape:<7} {name:<7} {found.rps:>9.0f} {found.p50_ms:>7.2f} {found.p99_ms:>7.2f} "
            f"{found.cpu_us:>10.0f} {found.non_2xx + found.socket_errors:>8} {ratio:>6.2f}x"
        )


def _clean_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    main()
