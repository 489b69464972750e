"""What the gateway benchmarks share: servers in subprocesses, wrk, and /proc readings.

Every benchmark starts the same three servers on this machine, in one run:

* the mock upstream (``mock_upstream.py``), zero latency unless asked;
* the bare pass-through proxy (``passthrough.py``): Starlette + aiohttp, the floor;
* the gateway as a user runs it: ``modelcycle up`` (uvicorn, uvloop + httptools,
  one worker), on a fresh data directory, with a deployment ``bench``, an ``app``
  key, authentication, routing and event emission on.

The gateway's deployment uses the ``openai`` backend pointed at the mock
upstream when that backend is installed (the real comparison: both proxies
forward to the same upstream), else the zero-latency ``mock`` backend.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modelcycle.access.keys import generate_key
from modelcycle.client import Client
from modelcycle.deploy import BreakerPolicy
from modelcycle.types import Role

HERE = Path(__file__).resolve().parent
CHAT_BODY = (
    '{"model": "bench", "messages": [{"role": "user", "content": '
    '"Say hello to the benchmark please."}], "max_tokens": 16}'
)
STREAM_BODY = CHAT_BODY[:-1] + ', "stream": true}'
MOCK_REPLY = "Hello from the bench upstream."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s")


@dataclass
class Server:
    """A server process and its address."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM when the benchmark dies, even by SIGKILL.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(stack: contextlib.ExitStack, name: str, port: int, argv: list[str], **kw: Any) -> Server:
    log = stack.enter_context(open(Path(tempfile.gettempdir()) / f"bench-{name}.log", "wb"))  # noqa: SIM115
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, **kw
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

    stack.callback(stop)
    wait_for_port(port, process)
    return Server(name, f"http://127.0.0.1:{port}", process)


def start_upstream(stack: contextlib.ExitStack, *extra: str) -> Server:
    """The mock OpenAI upstream (``extra``: its command-line options)."""
    port = free_port()
    argv = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(port), *extra]
    return _spawn(stack, "upstream", port, argv)


def start_passthrough(stack: contextlib.ExitStack, upstream: Server) -> Server:
    """The bare Starlette + aiohttp pass-through, one uvicorn worker, no access log."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "passthrough:app", "--port", str(port)]
    argv += ["--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
    env = {**os.environ, "UPSTREAM_URL": upstream.url}
    return _spawn(stack, "passthrough", port, argv, cwd=HERE, env=env)


def openai_backend_installed() -> bool:
    """Whether the gateway can proxy to an OpenAI-compatible upstream (``openai`` kind)."""
    from modelcycle.backends.builtin import BuiltinBackends

    return "openai" in BuiltinBackends().modelcycle_register_backends()


@dataclass
class Gateway(Server):
    """The gateway process, its app key and what its deployment ``bench`` calls."""

    key: str = ""
    backend: str = ""


def start_gateway(
    stack: contextlib.ExitStack,
    upstream: Server,
    *,
    backend: str | None = None,
    fallback: Server | None = None,
    timeout_s: float = 60.0,
    retries: int = 0,
    breaker: BreakerPolicy | None = None,
    guard: str | None = None,
) -> Gateway:
    """``modelcycle up`` on a fresh home, with deployment ``bench`` and an ``app`` key.

    ``backend``: ``openai`` (to ``upstream``) or ``mock``; by default ``openai``
    when it is installed. ``fallback``: a second upstream as the fallback route.
    ``guard``: the guard policy of ``bench`` (``default``: the one every home has).
    """
    backend = backend or ("openai" if openai_backend_installed() else "mock")
    home = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stack.callback(shutil.rmtree, home, True)
    admin, _ = generate_key()
    port = free_port()
    env = {
        **os.environ,
        "MODELCYCLE_HOME": str(home),
        "MODELCYCLE_ADMIN_KEY": admin,
        "MODELCYCLE_REGISTER_DEFAULT_MODEL": "false",
        # A user who benchmarks turns the access log off, as for the pass-through.
        "MODELCYCLE_LOG_LEVEL": "warning",
    }
    # MODELCYCLE_BENCH_COMMAND: another way to start it, e.g. "python -X importtime -m ..."
    command = os.environ.get("MODELCYCLE_BENCH_COMMAND")
    modelcycle = Path(sys.executable).with_name("modelcycle")
    argv = [*(command.split() if command else [str(modelcycle)]), "up", "--port", str(port)]
    server = _spawn(stack, "gateway", port, argv, env=env)
    with Client(server.url, admin) as client:
        targets = [_register(client, "bench-model", backend, upstream)]
        if fallback is not None:
            targets.append(_register(client, "bench-spare", backend, fallback))
        client.deployments.create(
            "bench",
            targets[0],
            fallbacks=targets[1:],
            timeout_s=timeout_s,
            retries=retries,
            breaker=breaker,
        )
        key = client.keys.create("bench", Role.APP).key
    if guard is not None:
        _set_guard(server.url, admin, guard)
    return Gateway(server.name, server.url, server.process, key=key, backend=backend)


def _set_guard(url: str, admin: str, guard: str) -> None:
    """Give deployment ``bench`` the guard policy ``guard`` (through the REST API)."""
    headers = {"Authorization": f"Bearer {admin}"}
    found = httpx.get(f"{url}/api/v1/deployments/bench", headers=headers, timeout=30)
    found.raise_for_status()
    config = {k: v for k, v in found.json()["spec"].items() if k != "name"}
    changed = httpx.put(
        f"{url}/api/v1/deployments/bench",
        json={**config, "guard": guard},
        headers=headers,
        timeout=30,
    )
    changed.raise_for_status()


def _register(client: Client, model: str, backend: str, upstream: Server) -> str:
    if backend == "openai":
        version = client.models.register(
            model, source=f"{upstream.url}/v1", backend="openai", params={"model": "bench"}
        )
    else:
        version = client.models.register(
            model, source="mock://script", backend="mock", params={"replies": [MOCK_REPLY]}
        )
    return f"{model}@{version.version}"


# -- wrk ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """requests/s, latency percentiles (ms) and the answers that were not 2xx."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    cpu_us: float = 0.0
    """CPU time the server under test spent per request, in microseconds."""
    sys_us: float = 0.0
    """The part of ``cpu_us`` spent in the kernel."""
    faults: float = 0.0
    """Minor page faults of the server per request (memory given back, then touched again)."""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def lua_script(key: str, body: str = CHAT_BODY) -> Path:
    """A wrk script posting ``body`` with ``key`` (removed at exit)."""
    fd, name = tempfile.mkstemp(suffix=".lua", prefix="bench-")
    with os.fdopen(fd, "w") as out:
        out.write('wrk.method = "POST"\n')
        out.write('wrk.headers["Content-Type"] = "application/json"\n')
        out.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        out.write(f"wrk.body = '{body}'\n")
    return Path(name)


def wrk(
    url: str, script: Path, connections: int, duration_s: float, pid: int | None = None
) -> WrkResult:
    """Run wrk against ``url`` and read its summary (and ``pid``'s CPU time per request)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    threads = 2 if connections > 1 else 1
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
    before = process_counters(pid) if pid else (0.0, 0.0, 0)
    out = subprocess.run(
        [*argv, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    after = process_counters(pid) if pid else before
    cpu_used, sys_used, faults = (a - b for a, b in zip(after, before, strict=True))
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.MULTILINE))
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(total.group(1)) if total else 0
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        cpu_us=cpu_used / max(requests, 1) * 1e6,
        sys_us=sys_used / max(requests, 1) * 1e6,
        faults=faults / max(requests, 1),
    )


def median_of(results: list[WrkResult]) -> WrkResult:
    """The median of each figure over interleaved rounds."""
    return WrkResult(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        cpu_us=statistics.median(r.cpu_us for r in results),
        sys_us=statistics.median(r.sys_us for r in results),
        faults=statistics.median(r.faults for r in results),
    )


def check_answers(url: str, key: str) -> None:
    """Fail early unless ``url`` answers the benchmark's request with a chat completion."""
    answer = httpx.post(
        url,
        content=CHAT_BODY,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    answer.raise_for_status()
    assert answer.json()["choices"][0]["message"]["content"], answer.text


# -- /proc ---------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far, in seconds."""
    return process_counters(pid)[0]


def process_counters(pid: int) -> tuple[float, float, int]:
    """CPU seconds (all), of them in the kernel, and minor page faults, every thread so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick, int(fields[7])


def trace_writer_pid(pid: int) -> int | None:
    """The ``modelcycle trace-writer`` child of the server ``pid``, if it runs one."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"trace-writer" in cmdline:
                return int(child)
    return None


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB (VmRSS in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def servers() -> Iterator[contextlib.ExitStack]:
    """An exit stack that stops every server started on it."""
    with contextlib.ExitStack() as stack:
        yield stack
