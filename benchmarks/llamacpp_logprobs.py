"""Scoring a prompt (echo + logprobs) on the embedded GGUF: chunked on the shared context
vs a second ``Llama(logits_all=True)``.

Each way runs in a fresh process (so resident memory is its own) on the same
prompt and reports the time to score it, the growth of peak resident memory
over the loaded model, and the log-likelihood it found (they must agree):

- ``chunked``: what the ``llamacpp`` backend does (``llamacpp_logprobs.score_prompt``):
  decode the prompt 32 positions at a time on the serving context, reduce each
  row of logits to the token's log-probability and the top alternatives;
- ``logits_all``: load the model with ``logits_all=True``, ``eval`` the prompt,
  then take ``log_softmax`` of ``scores`` with numpy (the cheapest use of it);
- ``create_completion`` (``--with-create-completion``): llama-cpp-python's own
  ``echo=True, logprobs=1`` path, which sorts the whole vocabulary in Python for
  every token (slow: off by default).

    .venv/bin/python benchmarks/llamacpp_logprobs.py [--tokens 256] [--with-create-completion]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import time
from typing import Any

N_CTX = 2048
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompt(llm: Any, tokens: int) -> list[int]:
    ids: list[int] = llm.tokenize((SENTENCE * 400).encode(), add_bos=True, special=True)
    return ids[:tokens]


def run(way: str, tokens: int, out: Any) -> None:
    """Score the prompt one way; put (seconds, MiB, log-likelihood) on ``out``.

    The log-likelihood is that of tokens 2.. (after the BOS and the first token),
    which every way reports.
    """
    import numpy as np
    from llama_cpp import Llama

    from modelcycle.backends.llamacpp_logprobs import score_prompt
    from modelcycle.services import embedded_model_path

    llm = Llama(
        model_path=embedded_model_path(), n_ctx=N_CTX, logits_all=way != "chunked", verbose=False
    )
    ids = _prompt(llm, tokens)
    baseline = _peak_mib()
    started = time.perf_counter()
    if way == "chunked":
        entries = score_prompt(llm, ids, 1)
        total = math.fsum(e.logprob for e in entries[2:] if e.logprob is not None)
    elif way == "logits_all":
        llm.reset()
        llm.eval(ids)
        total = 0.0
        for i in range(2, len(ids)):  # row by row: no copy of the whole array
            row = llm.scores[i - 1]
            peak = float(row.max())
            lse = peak + math.log(float(np.exp(row - peak).sum(dtype=np.float64)))
            total += float(row[ids[i]]) - lse
    else:
        done = llm.create_completion(ids, max_tokens=1, logprobs=1, echo=True, temperature=0)
        # It drops the BOS and nulls the next token: entries 1.. are tokens 2..
        logprobs = done["choices"][0]["logprobs"]["token_logprobs"][1 : len(ids) - 1]
        total = math.fsum(lp for lp in logprobs if lp is not None)
    seconds = time.perf_counter() - started
    out.put((seconds, _peak_mib() - baseline, total))
    llm.close()


def measure(way: str, tokens: int) -> tuple[float, float, float]:
    """Run ``way`` in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run, args=(way, tokens, queue))
    process.start()
    result: tuple[float, float, float] = queue.get()
    process.join()
    return result


def main() -> None:
    """Measure each way and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="prompt length in tokens")
    parser.add_argument("--with-create-completion", action="store_true")
    args = parser.parse_args()
    ways = ["chunked", "logits_all"]
    if args.with_create_completion:
        ways.append("create_completion")
    results = {way: measure(way, args.tokens) for way in ways}
    print(f"prompt: {args.tokens} tokens, n_ctx {N_CTX}")
    print(f"{'way':<18} {'seconds':>9} {'peak RSS +MiB':>14} {'log-likelihood':>16}")
    for way, (seconds, mib, total) in results.items():
        print(f"{way:<18} {seconds:>9.2f} {mib:>14.0f} {total:>16.4f}")
    base_s, base_mib, base_total = results["chunked"]
    for way, (seconds, mib, total) in results.items():
        if way == "chunked":
            continue
        print(
            f"{way} / chunked: time {seconds / base_s:.2f}x, "
            f"memory {mib / max(base_mib, 1):.1f}x, "
            f"log-likelihood difference {abs(total - base_total):.2e}"
        )


if __name__ == "__main__":
    main()
