"""Send a few hundred requests to a running modelcycle, then look at what monitoring saw.

After ``make run`` (in another terminal), with the admin key it printed:

    export MODELCYCLE_API_KEY=mc_...
    .venv/bin/python examples/send_traffic.py [--requests 300] [--deployment default]

Two phases of traffic go to the deployment: short English questions, then
longer French questions and code prompts. Requests carry users, sessions and
metadata (headers ``X-Modelcycle-User``/``-Session``/``-Metadata``), one in
five is streamed, and some get feedback (thumbs, a score, a correction). At the
end the script prints the rollups, a few traces, and a drift report comparing
the two phases — which differ, so the report flags drift.

Uses only ``httpx`` (a modelcycle dependency) for the OpenAI-compatible calls
and ``modelcycle.Client`` for the management API.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

import httpx

from modelcycle import Client

ENGLISH = [
    "What is the capital of {}?",
    "How many legs does a {} have?",
    "What colour is a ripe {}?",
    "Is a {} bigger than a cat?",
]
NOUNS = ["Spain", "Italy", "Japan", "spider", "dog", "banana", "tomato", "horse", "lemon", "Peru"]
FRENCH = [
    "Quelle est la capitale de la {} et pourquoi est-elle importante pour son histoire ?",
    "Pouvez-vous expliquer en détail comment on prépare une {} traditionnelle ?",
]
FRENCH_NOUNS = ["France", "Belgique", "Suisse", "tarte", "soupe", "galette"]
CODE = [
    "Write a Python function that returns the {} of a list of integers, with type hints "
    "and a docstring, and explain its complexity.",
]
CODE_NOUNS = ["sum", "maximum", "median", "mode", "product"]


def prompts(phase: int, rng: random.Random) -> str:
    """A prompt of phase 0 (short English) or phase 1 (long French or code)."""
    if phase == 0:
        return rng.choice(ENGLISH).format(rng.choice(NOUNS))
    if rng.random() < 0.6:
        return rng.choice(FRENCH).format(rng.choice(FRENCH_NOUNS))
    return rng.choice(CODE).format(rng.choice(CODE_NOUNS))


def send(
    http: httpx.Client, deployment: str, prompt: str, user: str, session: str, stream: bool
) -> str:
    """One chat completion; returns its trace id (``X-Modelcycle-Trace-Id``)."""
    body = {
        "model": deployment,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 24,
        "stream": stream,
    }
    headers = {
        "X-Modelcycle-User": user,
        "X-Modelcycle-Session": session,
        "X-Modelcycle-Metadata": json.dumps({"example": "send_traffic", "stream": stream}),
    }
    if not stream:
        response = http.post("/v1/chat/completions", json=body, headers=headers)
        response.raise_for_status()
        return response.headers["X-Modelcycle-Trace-Id"]
    with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            pass
        return response.headers["X-Modelcycle-Trace-Id"]


def main() -> None:
    """Send the traffic, add feedback, print what monitoring recorded."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="requests in all")
    parser.add_argument("--deployment", default="default")
    parser.add_argument("--server", default=os.environ.get("MODELCYCLE_SERVER"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    server = args.server or "http://127.0.0.1:8000"
    key = os.environ.get("MODELCYCLE_API_KEY")
    if not key:
        raise SystemExit("error: set MODELCYCLE_API_KEY to a key (make run printed the admin key)")
    rng = random.Random(args.seed)  # noqa: S311 - traffic mix, not security
    users = itertools.cycle([f"user-{i}" for i in range(12)])
    http = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=120.0)
    client = Client(server, key)
    phases: list[tuple[datetime, datetime]] = []
    feedback = 0
    for phase in (0, 1):
        started = datetime.now(UTC)
        for i in range(args.requests // 2):
            user = next(users)
            trace_id = send(
                http,
                args.deployment,
                prompts(phase, rng),
                user,
                session=f"{user}-session-{i // 10}",
                stream=rng.random() < 0.2,
            )
            if rng.random() < 0.25:  # some users leave feedback
                good = rng.random() < (0.8 if phase == 0 else 0.3)
                client.traces.add_feedback(
                    trace_id,
                    thumbs=1 if good else -1,
                    comment=None if good else "not what I asked",
                    correction=None if good else "A short, correct answer.",
                    user_id=user,
                )
                feedback += 1
            print(f"\rphase {phase + 1}/2: {i + 1} requests", end="", flush=True)
        phases.append((started, datetime.now(UTC) + timedelta(seconds=1)))
        print()
    time.sleep(2.0)  # the recorder writes in batches, about a second behind

    rollups = client.traces.rollups(start=phases[0][0] - timedelta(minutes=1))
    print("\nsummary:", rollups.summary.model_dump_json(indent=2))
    page = client.traces.list(deployment=args.deployment, limit=5)
    for trace in page.data:
        print("trace", trace.model_dump_json()[:300])
    print(f"\nfeedback given on {feedback} traces")
    (ref_start, ref_end), (cur_start, cur_end) = phases
    report = client.drift.check(
        deployment=args.deployment,
        start=cur_start,
        end=cur_end,
        reference={"kind": "window", "start": ref_start.isoformat(), "end": ref_end.isoformat()},
        min_samples=20,
    )
    print(f"\ndrift report {report.id}: drifted={report.drifted} {report.drifted_metrics}")
    for metric in report.metrics:
        print("  ", metric.model_dump_json()[:200])


if __name__ == "__main__":
    main()
