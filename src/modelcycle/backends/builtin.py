"""The built-in backend kinds, registered through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelcycle.backends import hf
from modelcycle.backends.base import ResidentModel
from modelcycle.backends.llamacpp import Engines, make_factory
from modelcycle.backends.mock import MockBackend
from modelcycle.backends.openai_compat import SecretReader
from modelcycle.backends.openai_compat import make_factory as openai_factory
from modelcycle.backends.openai_params import check_version
from modelcycle.backends.prompting import prompt_param_problems
from modelcycle.hookspecs import hookimpl


class BuiltinBackends:
    """Kinds ``mock``, ``llamacpp``, ``transformers`` and ``openai``; owns what they loaded."""

    def __init__(self, home: Path | None = None, secrets: SecretReader | None = None) -> None:
        self.engines = Engines()
        # Kind openai reads the api_key_secret of a version from here, at request time.
        self.secrets = secrets
        # Kind transformers caches dequantised GGUF files under MODELCYCLE_HOME.
        self.transformers = hf.Models(home / "cache" / "transformers" if home else None)

    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        """Offer the built-in kinds."""
        return {
            "mock": MockBackend.from_source,
            "llamacpp": make_factory(self.engines),
            "transformers": hf.make_factory(self.transformers),
            "openai": openai_factory(self.secrets),
        }

    @hookimpl
    def modelcycle_check_version(
        self, backend: str, source: str, params: Mapping[str, Any]
    ) -> list[str]:
        """No plain-text credentials; well-formed ``openai`` and ``transformers`` versions.

        Every kind: a well-formed ``system_prompt`` and ``few_shot``.
        """
        return [
            *check_version(backend, source, params),
            *hf.check_version(backend, params),
            *prompt_param_problems(params),
        ]

    def loaded_models(self) -> list[ResidentModel]:
        """The models this process holds in memory (``/metrics``: modelcycle_backend_loaded)."""
        return [*self.engines.loaded(), *self.transformers.loaded()]

    def close(self) -> None:
        """Free loaded models."""
        self.engines.close()
        self.transformers.close()
