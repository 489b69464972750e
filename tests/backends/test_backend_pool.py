"""Backend kinds come from the ``modelcycle_register_backends`` hook; instances are shared."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from modelcycle.backends import BackendPool, BuiltinBackends, GenerationParams, MockBackend
from modelcycle.backends.llamacpp import Engines, LlamaCppBackend
from modelcycle.errors import InvalidInput, MissingExtra, UpstreamError
from modelcycle.hookspecs import hookimpl
from modelcycle.plugins import build_plugin_manager


class EchoKind:
    """A third-party plugin: a new kind, and an override of the built-in ``mock``."""

    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        def shouting(source: str, params: Mapping[str, Any]) -> MockBackend:
            return MockBackend(replies=[source.upper()])

        return {"shout": shouting, "mock": shouting}


def pool(*plugins: object) -> BackendPool:
    return BackendPool(build_plugin_manager([BuiltinBackends(), *plugins], load_entry_points=False))


def test_built_in_kinds_register_through_the_hook() -> None:
    assert {"mock", "llamacpp"} <= set(pool().factories())


async def test_a_plugin_adds_a_kind_and_overrides_a_built_in() -> None:
    backends = pool(EchoKind())
    shout = backends.get("shout", "mock://hey", {})
    assert (await shout.complete("x", GenerationParams())).text == "MOCK://HEY"
    assert isinstance(backends.get("mock", "mock://a", {}), MockBackend)
    assert (await backends.get("mock", "mock://a", {}).complete("x", GenerationParams())).text == (
        "MOCK://A"
    )


def test_one_instance_per_kind_source_and_params() -> None:
    backends = pool()
    first = backends.get("mock", "mock://echo", {"a": 1, "b": 2})
    assert backends.get("mock", "mock://echo", {"b": 2, "a": 1}) is first
    assert backends.get("mock", "mock://echo", {"a": 2}) is not first


def test_an_unknown_kind_names_the_installed_ones() -> None:
    with pytest.raises(InvalidInput, match=r"no backend of kind 'vllm'.*llamacpp, mock"):
        pool().get("vllm", "x", {})


async def test_llamacpp_without_its_extra_fails_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    engines = Engines()
    backend = LlamaCppBackend(engines, "/nowhere/model.gguf", {})  # building loads nothing
    try:
        with pytest.raises(MissingExtra) as caught:
            await backend.complete("hi", GenerationParams())
        assert caught.value.message == (
            "llama-cpp-python is not installed; run: pip install 'modelcycle[local]'"
        )
    finally:
        engines.close()


async def test_a_missing_gguf_file_is_an_upstream_error() -> None:
    pytest.importorskip("llama_cpp")
    engines = Engines()
    try:
        with pytest.raises(UpstreamError, match=r"cannot load GGUF model /nowhere/model\.gguf"):
            await LlamaCppBackend(engines, "/nowhere/model.gguf", {}).complete(
                "hi", GenerationParams()
            )
    finally:
        engines.close()
