"""Pins the public surface: a change here is a change users' code notices."""

import inspect

import modelcycle
from modelcycle import hookspecs
from modelcycle.client import asyncio as async_client
from modelcycle.client import guard as guard_client
from modelcycle.client import privacy as privacy_client
from modelcycle.client import reports as client_reports
from modelcycle.client import sync as sync_client
from modelcycle.settings import Settings


def test_top_level_api_is_pinned() -> None:
    assert modelcycle.__all__ == [
        "AsyncClient",
        "AuthenticationError",
        "Client",
        "Conflict",
        "InvalidInput",
        "MissingExtra",
        "ModelcycleError",
        "NotFound",
        "PayloadTooLarge",
        "PermissionDenied",
        "ServerError",
        "StoreError",
        "Tracer",
        "__version__",
        "trace",
    ]
    assert modelcycle.__all__ == sorted(modelcycle.__all__)


def test_every_error_derives_from_the_base() -> None:
    for name in modelcycle.__all__:
        obj = getattr(modelcycle, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, modelcycle.ModelcycleError), name


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_async_client_mirrors_sync_client_method_for_method() -> None:
    pairs = [
        (sync_client.Client, async_client.AsyncClient),
        (sync_client.Projects, async_client.Projects),
        (sync_client.Keys, async_client.Keys),
        (sync_client.Models, async_client.Models),
        (sync_client.Aliases, async_client.Aliases),
        (sync_client.Audit, async_client.Audit),
        (sync_client.Deployments, async_client.Deployments),
        (sync_client.Alerts, async_client.Alerts),
        (sync_client.Traces, async_client.Traces),
        (sync_client.Jobs, async_client.Jobs),
        (sync_client.Drift, async_client.Drift),
        (privacy_client.Privacy, privacy_client.AsyncPrivacy),
        (client_reports.Reports, client_reports.AsyncReports),
        (guard_client.Guard, guard_client.AsyncGuard),
        (guard_client.GuardPolicies, guard_client.AsyncGuardPolicies),
    ]
    for sync_cls, async_cls in pairs:
        sync_methods = _public_methods(sync_cls)
        async_methods = _public_methods(async_cls)
        assert sync_methods.keys() == async_methods.keys(), sync_cls.__name__
        for name, signature in sync_methods.items():
            assert list(signature.parameters) == list(async_methods[name].parameters), name
            assert inspect.iscoroutinefunction(getattr(async_cls, name)), name


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no docstring"


def test_every_hook_is_documented() -> None:
    hooks = [
        obj
        for name, obj in vars(hookspecs).items()
        if name.startswith("modelcycle_") and inspect.isfunction(obj)
    ]
    assert len(hooks) >= 6
    for hook in hooks:
        assert hook.__doc__, hook.__name__
