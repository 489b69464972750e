"""Scorer throughput: every non-LLM scorer over 10,000 samples must finish in under 5 s.

Issue 6 asks that the non-LLM scorers over 10,000 samples finish in under 5 s,
and that the embedding scorer report its samples/s and batch its work. This
script builds each built-in scorer through the registry (as a run does), scores
the same 10,000 synthetic samples with ``score_batch`` (English and Spanish
answers of 8-60 words against references sharing part of their words; a tenth
are JSON, a twentieth carry an e-mail address, a twentieth are refusals), and
prints the time and samples/s of each, and their total against the goal. The
embedding scorer, when its model is installed, scores 1,000 of the samples
(model loading timed apart).

    .venv/bin/python benchmarks/scorers_throughput.py [--samples 10000] [--embedding 1000]
"""

from __future__ import annotations

import argparse
import random
import time

from modelcycle.errors import MissingExtra
from modelcycle.evaluate.scorers import BuiltinScorers, ScorerRegistry, ScoringInput, score_batch

GOAL_S = 5.0

SENTENCES = (
    "the order was shipped on tuesday and should arrive before friday at your office",
    "please check the tracking page or contact support if the parcel does not arrive",
    "el pedido salió el martes y llegará antes del viernes a su oficina en madrid",
    "revise la página de seguimiento o contacte con soporte si el paquete no llega",
)
WORDS = [word for sentence in SENTENCES for word in sentence.split()]

SCHEMA = {
    "type": "object",
    "properties": {"status": {"enum": ["shipped", "pending"]}, "days": {"type": "integer"}},
    "required": ["status", "days"],
}

SCORERS: list[tuple[str, dict[str, object]]] = [
    ("exact_match", {"ignore_case": True, "normalize_whitespace": True}),
    ("contains", {}),
    ("contains", {"any": ["friday", "viernes"], "all": ["order"]}),
    ("regex", {"pattern": r"\b(?:tuesday|martes)\b", "flags": ["ignorecase"]}),
    ("json_valid", {}),
    ("json_schema", {"schema": SCHEMA}),
    ("rouge_l", {}),
    ("bleu", {}),
    ("pii_leak", {}),
    ("toxicity", {}),
    ("refusal", {}),
    ("latency", {}),
    ("cost", {}),
]


def make_samples(count: int, seed: int = 7) -> list[ScoringInput]:
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        reference = rng.choices(WORDS, k=rng.randint(8, 40))
        output = [word for word in reference if rng.random() < 0.7]
        output += rng.choices(WORDS, k=rng.randint(0, 20))
        text = " ".join(output)
        if index % 10 == 0:
            text = f'{{"status": "shipped", "days": {rng.randint(1, 9)}}}'
        elif index % 20 == 1:
            text += " write to maria.lopez@example.com"
        elif index % 20 == 3:
            text = "I'm sorry, but I can't help with that. " + text
        samples.append(
            ScoringInput(
                output=text,
                expected=" ".join(reference),
                input="Where is my order?",
                latency_ms=rng.uniform(50, 900),
                cost=rng.uniform(0, 0.01),
            )
        )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--embedding", type=int, default=1_000)
    args = parser.parse_args()

    registry = ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())
    samples = make_samples(args.samples)
    print(f"{len(samples):,} samples; goal: all non-LLM scorers in < {GOAL_S:.0f} s\n")
    print(f"{'scorer':<34} {'wall s':>7} {'CPU s':>7} {'samples/s':>10} {'mean':>7} {'errors':>6}")
    total = total_cpu = 0.0
    for name, options in SCORERS:
        label = name if not options else f"{name} {sorted(options)}"
        try:
            scorer = registry.build(name, options)
        except MissingExtra as exc:
            print(f"{label[:34]:<34} skipped: {exc.message}")
            continue
        started, started_cpu = time.perf_counter(), time.process_time()
        scores = score_batch(scorer, samples)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        total += elapsed
        total_cpu += cpu
        values = [s.value for s in scores if s.value is not None]
        mean = sum(values) / len(values) if values else float("nan")
        errors = len(scores) - len(values)
        print(
            f"{label[:34]:<34} {elapsed:>7.3f} {cpu:>7.3f} {len(samples) / elapsed:>10,.0f} "
            f"{mean:>7.3f} {errors:>6}"
        )
    verdict = "PASS" if total < GOAL_S else "FAIL"
    print(
        f"\ntotal {total:.2f} s wall, {total_cpu:.2f} s CPU, for {len(SCORERS)} scorers x "
        f"{len(samples):,} samples (CPU time is the fairer figure on a shared machine)"
    )
    print(f"total / goal = {total / GOAL_S:.2f} ({verdict})")
    bleu_versus_sacrebleu(registry, samples)
    if args.embedding > 0:
        embedding(registry, samples[: args.embedding])


def bleu_versus_sacrebleu(registry: ScorerRegistry, samples: list[ScoringInput]) -> None:
    """Our ``bleu`` and ``sacrebleu.sentence_bleu`` on the same samples: same values, times."""
    try:
        import sacrebleu
    except ImportError:
        return
    scorer = registry.build("bleu")
    started = time.process_time()
    ours = [s.value for s in score_batch(scorer, samples)]
    ours_s = time.process_time() - started
    started = time.process_time()
    theirs = [sacrebleu.sentence_bleu(s.output, [s.expected or ""]).score / 100 for s in samples]
    theirs_s = time.process_time() - started
    gap = max(abs((a or 0.0) - b) for a, b in zip(ours, theirs, strict=True))
    print(
        f"\nbleu: {ours_s:.2f} s CPU vs sacrebleu.sentence_bleu {theirs_s:.2f} s on the same "
        f"samples = {theirs_s / ours_s:.1f}x faster; largest difference {gap:.1e}"
    )


def embedding(registry: ScorerRegistry, samples: list[ScoringInput]) -> None:
    try:
        scorer = registry.build("embedding_similarity")
    except MissingExtra as exc:
        print(f"\nembedding_similarity skipped: {exc.message}")
        return
    started = time.perf_counter()
    score_batch(scorer, samples[:2])  # loads the model
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    scores = score_batch(scorer, samples)
    elapsed = time.perf_counter() - started
    errors = sum(1 for s in scores if not s.ok)
    batch = getattr(scorer, "batch_size", "?")
    print(
        f"\nembedding_similarity: {len(samples):,} samples in {elapsed:.2f} s = "
        f"{len(samples) / elapsed:,.0f} samples/s (batch size {batch}, CPU; model load "
        f"{loaded:.1f} s apart; {errors} errors)"
    )


if __name__ == "__main__":
    main()
