"""Evaluation overhead: a run of 1,000 samples vs the same 1,000 requests sent straight.

Issue 6 asks that an evaluation run add little to the requests it sends: here
``EvalRuns.execute`` (paging samples, answering through ``TargetCaller``,
scoring with ``exact_match``, storing results in batches, summarising with
intervals) is timed against the same 1,000 requests sent through
``Gateway.generate`` at the same concurrency, in the same process, on the same
mock deployment (the ``mock`` backend with a fixed delay, so it resembles a
model). Both sides record traces as production does. Each round runs both,
side by side; the median ratio of the rounds is compared with the goal.

    .venv/bin/python benchmarks/eval_overhead.py [--samples 1000] [--concurrency 16]
        [--delay-ms 5] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from modelcycle.access import Principal
from modelcycle.backends import GenerationParams, Message
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRunCreate, ScorerSpec
from modelcycle.gateway.schemas import CallContext, InferenceRequest
from modelcycle.services import Services
from modelcycle.testing import make_key, make_services, make_settings, register
from modelcycle.types import Role

GOAL = 1.1
"""An evaluation may take at most this many times as long as its requests sent straight."""


def setup(home: Path, samples: int, delay_ms: float) -> tuple[Services, Principal]:
    services = make_services(make_settings(home))
    admin = make_key(services, Role.ADMIN).principal
    register(services, admin, "bench", source="mock://echo", params={"latency_ms": delay_ms})
    services.deployments.create(
        admin, DeploymentSpec(name="bench", routes=[Route(target="bench@1", weight=100)])
    )
    with services.store.write() as session:
        write_version(
            session,
            admin.project_id,
            "bench",
            [
                SampleIn({"messages": [{"role": "user", "content": f"question {i}"}]}, "x")
                for i in range(samples)
            ],
            source="import",
            actor="benchmark",
        )
    return services, make_key(services, Role.MAINTAINER).principal


async def direct(services: Services, principal: Principal, samples: int, concurrency: int) -> float:
    """The same requests through ``Gateway.generate``, ``concurrency`` at a time."""
    requests = iter(range(samples))

    async def worker() -> None:
        for i in requests:
            await services.gateway.generate(
                principal,
                InferenceRequest(
                    endpoint="chat.completions",
                    deployment="bench",
                    messages=(Message("user", f"question {i}"),),
                    prompt=None,
                    params=GenerationParams(),
                    user=None,
                    stream=False,
                    context=CallContext(metadata={"benchmark": 1}),
                ),
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def evaluation(services: Services, principal: Principal, concurrency: int) -> float:
    created = services.evals.create(
        principal,
        EvalRunCreate(
            dataset="bench",
            targets=["bench"],
            scorers=[ScorerSpec(name="exact_match")],
            concurrency=concurrency,
        ),
    )
    started = time.perf_counter()
    summary = asyncio.run(services.evals.execute(created.id))
    elapsed = time.perf_counter() - started
    assert summary.targets[0].samples == summary.samples, "every sample answered"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the mock model's latency")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        services, principal = setup(Path(home), args.samples, args.delay_ms)
        try:
            asyncio.run(direct(services, principal, 50, args.concurrency))  # warm-up
            ratios = []
            print(f"{args.samples} samples, concurrency {args.concurrency}, "
                  f"mock delay {args.delay_ms:g} ms, SQLite")  # fmt: skip
            for round_ in range(1, args.rounds + 1):
                # Each side starts with the traces of the other written (the recorder's
                # backlog would otherwise slow whichever runs second).
                services.recorder.flush()
                sent = asyncio.run(direct(services, principal, args.samples, args.concurrency))
                services.recorder.flush()
                evaluated = evaluation(services, principal, args.concurrency)
                ratios.append(evaluated / sent)
                print(
                    f"round {round_}: direct {sent:.3f} s, evaluation {evaluated:.3f} s, "
                    f"ratio {evaluated / sent:.3f}"
                )
            median = statistics.median(ratios)
            verdict = "meets" if median <= GOAL else "misses"
            print(f"median ratio {median:.3f}: {verdict} the goal of <= {GOAL}x")
        finally:
            asyncio.run(services.gateway.aclose())
            services.close()


if __name__ == "__main__":
    main()
