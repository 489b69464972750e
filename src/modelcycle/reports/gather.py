"""What the registry, deployments and guard policies say about one version.

Reads go straight to the tables through the stages' own query helpers, inside
one read transaction, so the identity, aliases and routes of a report are a
consistent snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.backends.openai_params import plaintext_credentials
from modelcycle.deploy import DeploymentConfig, resolve
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.guard import GuardPolicySpec
from modelcycle.registry import queries
from modelcycle.reports.schemas import (
    USE_KEYS,
    DeploymentUse,
    GuardPolicyView,
    GuardRuleView,
    Identity,
    LineageView,
    RouteRole,
    RouteUse,
    UseField,
)
from modelcycle.store.tables import (
    AliasRow,
    DeploymentRow,
    GuardPolicyRow,
    ModelRow,
    ModelVersionRow,
)
from modelcycle.types import MAX_INT32, NAME_RE, BackendKind, VersionStatus

REDACTED = "[redacted]"
MAX_ANCESTORS = 100
"""Parent links followed at most (a longer chain is cut, never looped)."""


def find_version(
    session: Session, project_id: int, model_name: str, ref: str
) -> tuple[ModelRow, ModelVersionRow]:
    """The version ``ref`` (a number or an alias) of a model; ``NotFound`` with the fix."""
    if not NAME_RE.match(model_name):
        raise NotFound(f"model '{model_name}' not found; list models with: modelcycle models list")
    model = queries.find_model(session, project_id, model_name)
    if ref.isdigit():
        number = int(ref)
        if not 1 <= number <= MAX_INT32:
            raise NotFound(f"model '{model_name}' has no version {ref}")
        return model, queries.find_version(session, model, number)
    row = None
    if NAME_RE.match(ref):
        row = session.execute(
            select(ModelVersionRow)
            .join(AliasRow, AliasRow.version_id == ModelVersionRow.id)
            .where(AliasRow.model_id == model.id, AliasRow.name == ref)
        ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"model '{model_name}' has no version or alias '{ref}'; "
            f"list them with: modelcycle models show {model_name}"
        )
    return model, row


def redact_params(
    params: Mapping[str, Any], path: str = "params"
) -> tuple[dict[str, Any], list[str]]:
    """``params`` with any value the registration check would call a credential withheld.

    The registry already refuses such values; this keeps a report safe for rows
    stored before that check existed, or written around it.
    """
    out: dict[str, Any] = {}
    withheld: list[str] = []
    for key, value in params.items():
        where = f"{path}.{key}"
        if isinstance(value, Mapping):
            out[key], inner = redact_params(value, where)
            withheld.extend(inner)
        elif plaintext_credentials({key: value}):
            out[key] = REDACTED
            withheld.append(where)
        else:
            out[key] = value
    return out, withheld


def redact_source(source: str) -> tuple[str, bool]:
    """A source URL without ``user:password@`` or credential-like query values."""
    parts = urlsplit(source)
    if not parts.netloc:
        return source, False
    netloc, changed = parts.netloc, False
    if parts.username or parts.password:
        netloc, changed = netloc.rpartition("@")[2], True
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    masked = [(k, REDACTED if plaintext_credentials({k: v}) else v) for k, v in pairs]
    if masked != pairs:
        changed = True
    if not changed:
        return source, False
    query = urlencode(masked, safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), True


def identity(session: Session, model: ModelRow, row: ModelVersionRow) -> Identity:
    """The version's registry record, credentials withheld."""
    params, withheld = redact_params(row.params)
    source, source_redacted = redact_source(row.source)
    if source_redacted:
        withheld.append("source")
    aliases = queries.aliases_of(session, model.id).get(row.id, [])
    return Identity(
        model=model.name,
        model_description=model.description,
        version=row.version,
        source=source,
        backend=BackendKind(row.backend),
        params=params,
        status=VersionStatus(row.status),
        aliases=aliases,
        created_by=row.created_by,
        created_at=row.created_at,
        metadata=redact_params(row.meta, "metadata")[0],
        model_metadata=redact_params(model.meta, "model.metadata")[0],
        redacted=withheld,
    )


def use_fields(model: ModelRow, row: ModelVersionRow) -> list[UseField]:
    """Intended use, limitations, licence, contact and AI disclosure, where recorded."""
    out = []
    for key in USE_KEYS:
        if _present(row.meta.get(key)):
            out.append(UseField(key=key, value=_text(row.meta[key]), recorded_on="version"))
        elif _present(model.meta.get(key)):
            out.append(UseField(key=key, value=_text(model.meta[key]), recorded_on="model"))
        else:
            hint = (
                f"not recorded — set it with: modelcycle models register {model.name} "
                f"--source ... --backend ... --meta {key}=... (a new version), or on the model: "
                f'PATCH /api/v1/models/{model.name} {{"metadata": {{"{key}": "..."}}}}'
            )
            out.append(UseField(key=key, value=None, recorded_on=None, hint=hint))
    return out


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def lineage(session: Session, row: ModelVersionRow) -> LineageView:
    """Ancestors (parent first), lineage edges and the versions derived from this one."""
    children = session.execute(
        select(ModelVersionRow.id)
        .where(ModelVersionRow.parent_id == row.id)
        .order_by(ModelVersionRow.id)
    ).scalars()
    return LineageView(
        ancestors=queries.ancestors(session, row, MAX_ANCESTORS),
        edges=queries.lineage_edges(session, row.id),
        children=[ref for child in children if (ref := queries.ref_of(session, child))],
    )


def guard_policy(session: Session, project_id: int, name: str) -> GuardPolicyView:
    """The named guard policy of the project, as stored now."""
    row = session.execute(
        select(GuardPolicyRow).where(
            GuardPolicyRow.project_id == project_id, GuardPolicyRow.name == name
        )
    ).scalar_one_or_none()
    if row is None:
        return GuardPolicyView(name=name, found=False)
    spec = GuardPolicySpec.model_validate(row.spec)
    rules = [
        GuardRuleView(
            stage=stage,
            detector=rule.detector,
            action=rule.action,
            min_score=rule.min_score,
            types=rule.types,
        )
        for stage in ("input", "output")
        for rule in spec.rules(stage)
    ]
    return GuardPolicyView(
        name=name,
        found=True,
        revision=row.revision,
        description=spec.description,
        rules=rules,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def deployments_using(
    session: Session, project_id: int, model: str, version: int
) -> list[DeploymentUse]:
    """Every deployment whose routes, shadow or fallbacks resolve to ``model@version`` now."""
    rows = session.execute(
        select(DeploymentRow)
        .where(DeploymentRow.project_id == project_id)
        .order_by(DeploymentRow.name)
    ).scalars()
    resolved: dict[str, tuple[str, int] | None] = {}

    def points_here(target: str) -> bool:
        if target not in resolved:
            try:
                found = resolve(session, project_id, target)
                resolved[target] = (found.model, found.version)
            except InvalidInput:  # a dangling alias: it routes nowhere
                resolved[target] = None
        return resolved[target] == (model, version)

    out = []
    for row in rows:
        config = DeploymentConfig.model_validate(row.spec)
        routes = [
            RouteUse(role=role, target=target, weight=weight)
            for role, target, weight in _roles(config)
            if points_here(target)
        ]
        if not routes:
            continue
        out.append(
            DeploymentUse(
                name=row.name,
                revision=row.revision,
                routes=routes,
                guard=guard_policy(session, project_id, config.guard) if config.guard else None,
                limits=config.limits,
                timeout_s=config.timeout_s,
                retries=config.retries,
                updated_by=row.updated_by,
                updated_at=row.updated_at,
            )
        )
    return out


def _roles(config: DeploymentConfig) -> list[tuple[RouteRole, str, int | None]]:
    """Each target of a configuration with its role: the first route is the primary."""
    found: list[tuple[RouteRole, str, int | None]] = [
        ("primary" if index == 0 else "canary", route.target, route.weight)
        for index, route in enumerate(config.routes)
    ]
    if config.shadow:
        found.append(("shadow", config.shadow, None))
    found.extend(("fallback", target, None) for target in config.fallbacks)
    return found
