"""Inference engines behind deployments: the ``Backend`` protocol and the built-in kinds.

Engines import lazily: a missing optional dependency fails on first use with
the pip command to run.
"""

from modelcycle.backends.base import (
    Backend,
    BackendFactory,
    Chunk,
    Completion,
    GenerationParams,
    Message,
    Usage,
    merge_params,
)
from modelcycle.backends.builtin import BuiltinBackends
from modelcycle.backends.mock import MockBackend, MockCall
from modelcycle.backends.pool import BackendPool

__all__ = [
    "Backend",
    "BackendFactory",
    "BackendPool",
    "BuiltinBackends",
    "Chunk",
    "Completion",
    "GenerationParams",
    "Message",
    "MockBackend",
    "MockCall",
    "Usage",
    "merge_params",
]
