"""The built-in detectors, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

from modelcycle.hookspecs import hookimpl


class BuiltinDetectors:
    """The built-in detectors: rule-based, offline, linear-time.

    ``pii``, ``secrets``, ``injection``, ``toxicity``, ``topics``, ``max_size``
    and ``json_schema``.
    """

    @hookimpl
    def modelcycle_guard_detectors(self) -> Mapping[str, Callable[..., Any]]:
        """Offer the built-in detectors."""
        # Imported here: a process that never guards anything never compiles the patterns.
        factories: dict[str, Callable[..., Any]] = {}
        # (each detector module adds its line below)
        factories["pii"] = import_module("modelcycle.guard.detectors.pii").make_pii
        factories["secrets"] = import_module("modelcycle.guard.detectors.secrets").make_secrets
        injection = import_module("modelcycle.guard.detectors.injection")
        factories["injection"] = injection.make_injection
        from modelcycle.guard.detectors import json_schema, max_size, topics, toxicity

        factories["toxicity"] = toxicity.build_toxicity
        factories["topics"] = topics.build_topics
        factories["max_size"] = max_size.build_max_size
        factories["json_schema"] = json_schema.build_json_schema
        return factories
