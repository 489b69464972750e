"""Backends of one process: the kinds registered by plugins, and one instance per version."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import orjson
import pluggy

from modelcycle.backends.base import Backend, BackendFactory
from modelcycle.errors import InvalidInput


class BackendPool:
    """Builds each (kind, source, params) backend once and hands out the same instance."""

    def __init__(self, manager: pluggy.PluginManager):
        self._manager = manager
        self._lock = threading.Lock()
        self._factories: dict[str, BackendFactory] | None = None
        self._backends: dict[tuple[str, str, bytes], Backend] = {}

    def factories(self) -> dict[str, BackendFactory]:
        """Kind -> factory, from every ``modelcycle_register_backends`` implementation.

        Plugins registered later override earlier ones (built-ins come first).
        """
        if self._factories is None:
            merged: dict[str, BackendFactory] = {}
            # pluggy calls the most recently registered plugin first.
            for offered in reversed(self._manager.hook.modelcycle_register_backends()):
                merged.update(offered)
            self._factories = merged
        return self._factories

    def get(self, kind: str, source: str, params: Mapping[str, Any]) -> Backend:
        """The backend serving a version with this kind, source and params."""
        key = (kind, source, orjson.dumps(params, option=orjson.OPT_SORT_KEYS))
        backend = self._backends.get(key)
        if backend is not None:
            return backend
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                factory = self.factories().get(kind)
                if factory is None:
                    known = ", ".join(sorted(self.factories())) or "none"
                    raise InvalidInput(
                        f"no backend of kind '{kind}' is installed (installed: {known})"
                    )
                backend = self._backends[key] = factory(source, params)
            return backend

    async def aclose(self) -> None:
        """Close every backend built so far."""
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.close()
