"""Embeddings from a GGUF model: llama.cpp's pooled hidden states, L2-normalised.

As ``llama-server --embeddings`` computes them: each input is decoded as one
sequence, its hidden states are pooled (the version's ``pooling`` param when
set, else the model's own pooling when its GGUF declares one, else the mean),
and the vector is scaled to unit length, so a dot product is a cosine
similarity.

Runs on the embedding engine's thread (a separate ``Llama(embedding=True)``
sharing the model file, whose weights are memory-mapped once by the OS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

from modelcycle.backends.capabilities import Embeddings
from modelcycle.backends.llamacpp_features import check_ids
from modelcycle.backends.llamacpp_logprobs import fill_batch
from modelcycle.errors import InvalidInput

POOLING = {
    "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
}


def load(source: str, n_ctx: int, n_threads: int | None, pooling: str | None) -> Any:
    """A ``Llama`` computing pooled embeddings of up to ``n_ctx`` tokens per input."""
    if pooling is not None and pooling not in POOLING:
        raise InvalidInput(
            f"pooling must be one of {', '.join(POOLING)}, got {pooling!r}", param="pooling"
        )

    def build(kind: int) -> Any:
        # One ubatch holds a whole input: pooling needs every token of it at once.
        return llama_cpp.Llama(
            model_path=source,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=n_threads,
            embedding=True,
            pooling_type=kind,
            verbose=False,
        )

    # Unspecified: the model's own pooling, or none (a generative model), then ``embed``
    # takes the mean itself; loading once more just to switch pooling would cost seconds.
    return build(POOLING[pooling] if pooling else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)


def embed(llm: Any, inputs: Sequence[str | Sequence[int]]) -> Embeddings:
    """One unit vector per input, and the number of tokens read."""
    ctx, n_ctx, n_embd = llm.ctx, llm.n_ctx(), llm.n_embd()
    memory = llama_cpp.llama_get_memory(ctx)
    vectors: list[list[float]] = []
    total = 0
    batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
    try:
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                ids = llm.tokenize(item.encode("utf-8"), add_bos=True, special=True)
            else:
                ids = list(item)
                check_ids(llm, ids, "input")
            if len(ids) > n_ctx:
                raise InvalidInput(
                    f"input {index} has {len(ids)} tokens; this model embeds at most {n_ctx}",
                    param="input",
                    code="context_length_exceeded",
                )
            llama_cpp.llama_memory_clear(memory, True)
            fill_batch(batch, ids, 0)
            code = llama_cpp.llama_decode(ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
            if llama_cpp.llama_pooling_type(ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
                states = llama_cpp.llama_get_embeddings(ctx)
                rows = np.ctypeslib.as_array(states, shape=(len(ids), n_embd))
                vector = rows.astype(np.float64).mean(axis=0)
            else:
                pooled = llama_cpp.llama_get_embeddings_seq(ctx, 0)
                vector = np.ctypeslib.as_array(pooled, shape=(n_embd,)).astype(np.float64)
            norm = float(np.linalg.norm(vector))
            vectors.append((vector / norm if norm > 0 else vector).tolist())
            total += len(ids)
    finally:
        llama_cpp.llama_batch_free(batch)
    return Embeddings(vectors, total)
