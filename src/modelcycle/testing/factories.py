"""Factories for tests: services on a throwaway database, keys, projects, versions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from modelcycle.access import KeyCreate, Principal, ProjectCreate
from modelcycle.access.keys import generate_key
from modelcycle.registry import ModelVersion, VersionCreate
from modelcycle.services import Services, bootstrap, build_services
from modelcycle.settings import Settings
from modelcycle.types import BackendKind, Role

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A raw API key and the caller it authenticates as."""

    key: str
    principal: Principal


def make_settings(home: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings for a test: data under ``home``, no embedded model, a fixed admin key."""
    admin_key, _ = generate_key()
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "admin_key": SecretStr(admin_key),
        "register_default_model": False,
    }
    values.update(overrides)
    return Settings(**values)


def make_services(settings: Settings, *, plugins: tuple[object, ...] = ()) -> Services:
    """Services on a migrated database with the root project and the admin key."""
    services = build_services(settings, plugins=plugins)
    bootstrap(services)
    return services


def admin_of(services: Services) -> KeyPair:
    """The bootstrap admin key of ``services`` (root project)."""
    assert services.settings.admin_key is not None
    raw = services.settings.admin_key.get_secret_value()
    return KeyPair(raw, services.access.authenticate(raw))


def make_project(services: Services, name: str | None = None) -> str:
    """Create a project as the root admin and return its name."""
    name = name or f"project-{next(_counter)}"
    services.access.create_project(admin_of(services).principal, ProjectCreate(name=name))
    return name


def make_key(services: Services, role: Role, project: str | None = None) -> KeyPair:
    """Create a key with ``role`` in ``project`` (the root project when omitted)."""
    created = services.access.create_key(
        admin_of(services).principal,
        KeyCreate(name=f"test-{role}-{next(_counter)}", role=role, project=project),
    )
    return KeyPair(created.key, services.access.authenticate(created.key))


def version_body(**overrides: Any) -> VersionCreate:
    """A valid version registration body for the mock backend."""
    values: dict[str, Any] = {
        "source": "mock://echo",
        "backend": BackendKind.MOCK,
        "params": {"temperature": 0.0},
    }
    values.update(overrides)
    return VersionCreate(**values)


def register(
    services: Services, principal: Principal, model: str, **overrides: Any
) -> ModelVersion:
    """Register the next version of ``model``."""
    return services.registry.register_version(principal, model, version_body(**overrides))
