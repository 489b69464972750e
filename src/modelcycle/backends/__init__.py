"""Inference engines behind deployments: the ``Backend`` protocol and the built-in kinds.

Engines import lazily: a missing optional dependency fails on first use with
the pip command to run. What an engine can do beyond text (log-probabilities,
JSON mode, its tokenizer, embeddings) it says through the optional protocols of
``modelcycle.backends.capabilities``.
"""

from modelcycle.backends.base import (
    Backend,
    BackendFactory,
    Chunk,
    Completion,
    GenerationParams,
    Message,
    ResponseFormat,
    TokenLogprob,
    TopLogprob,
    Usage,
    merge_params,
)
from modelcycle.backends.builtin import BuiltinBackends
from modelcycle.backends.capabilities import (
    Capable,
    Embedder,
    Embeddings,
    TokenizerInfo,
    Tokenizing,
)
from modelcycle.backends.mock import MockBackend, MockCall
from modelcycle.backends.pool import BackendPool

__all__ = [
    "Backend",
    "BackendFactory",
    "BackendPool",
    "BuiltinBackends",
    "Capable",
    "Chunk",
    "Completion",
    "Embedder",
    "Embeddings",
    "GenerationParams",
    "Message",
    "MockBackend",
    "MockCall",
    "ResponseFormat",
    "TokenLogprob",
    "TokenizerInfo",
    "Tokenizing",
    "TopLogprob",
    "Usage",
    "merge_params",
]
