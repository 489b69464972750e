"""The built-in backend kinds, registered through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelcycle.backends.llamacpp import Engines, make_factory
from modelcycle.backends.mock import MockBackend
from modelcycle.hookspecs import hookimpl


class BuiltinBackends:
    """Kinds ``mock`` and ``llamacpp``; owns the llama.cpp engines loaded by this process."""

    def __init__(self) -> None:
        self.engines = Engines()

    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        """Offer the built-in kinds."""
        return {"mock": MockBackend.from_source, "llamacpp": make_factory(self.engines)}

    def close(self) -> None:
        """Free loaded models."""
        self.engines.close()
