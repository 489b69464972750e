"""Models: the registry's models, their versions, aliases and each version's lineage."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from modelcycle.access import Principal, require
from modelcycle.errors import InvalidInput
from modelcycle.registry.schemas import Lineage, LineageEdge, ModelVersion, VersionRef
from modelcycle.reports.gather import redact_params, redact_source
from modelcycle.services import Services
from modelcycle.store.tables import ModelRow, ModelVersionRow
from modelcycle.types import MAX_INT32, Role
from modelcycle.ui.auth import FormChecked, ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

MODELS_PER_PAGE = 50
VERSIONS_PER_PAGE = 20
ALIAS_MOVES_SHOWN = 10
PARAMS_SHOWN = 4
"""Parameters named in a version's one-line summary (all of them are in its details)."""
_VERSION_NUMBER = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class EvalUse:
    """An evaluation run a version took part in."""

    run_id: str
    target: str
    dataset: str
    gates_passed: bool | None


@dataclass(slots=True)
class VersionLineage:
    """A version's lineage sorted by kind, for the versions table."""

    ancestors: list[VersionRef]
    datasets: list[str] = field(default_factory=list)
    """``name@version`` of the datasets (or ids of uploaded files) it was trained on."""
    tune_jobs: list[str] = field(default_factory=list)
    evals: list[EvalUse] = field(default_factory=list)
    other: list[LineageEdge] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VersionView:
    """One row of the versions table: credentials withheld from source and parameters."""

    version: ModelVersion
    source: str
    params_summary: str
    params_json: str
    lineage: VersionLineage


def sort_lineage(lineage: Lineage) -> VersionLineage:
    """Group a version's lineage edges by what they link to."""
    out = VersionLineage(ancestors=list(lineage.ancestors))
    for edge in lineage.edges:
        if edge.relation == "parent":
            continue  # the ancestors already say it
        if edge.relation == "trained_on":
            out.datasets.append(edge.target_ref or "(unknown data)")
        elif edge.relation == "produced_by" and edge.target_kind == "tune_job":
            out.tune_jobs.append(edge.target_ref)
        elif edge.relation == "evaluated_in" and edge.target_kind == "eval_run":
            meta = edge.metadata
            passed = meta.get("gates_passed")
            out.evals.append(
                EvalUse(
                    run_id=edge.target_ref,
                    target=str(meta.get("target", "")),
                    dataset=str(meta.get("dataset", "")),
                    gates_passed=passed if isinstance(passed, bool) else None,
                )
            )
        else:
            out.other.append(edge)
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def params_summary(params: Mapping[str, Any]) -> str:
    """``key=value`` of the first few parameters, values cut short."""
    if not params:
        return "\N{EN DASH}"
    names = sorted(params)
    shown = ", ".join(f"{name}={_short(params[name])}" for name in names[:PARAMS_SHOWN])
    rest = len(names) - PARAMS_SHOWN
    return f"{shown} (+{rest} more)" if rest > 0 else shown


def version_view(services: Services, principal: Principal, version: ModelVersion) -> VersionView:
    """A version as the table shows it, with its lineage from the registry."""
    params, _ = redact_params(version.params)
    source, _ = redact_source(version.source)
    lineage = services.aliases.lineage(principal, version.model, version.version)
    return VersionView(
        version=version,
        source=source,
        params_summary=params_summary(params),
        params_json=json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False),
        lineage=sort_lineage(lineage),
    )


def version_counts(
    services: Services, principal: Principal, names: Sequence[str]
) -> dict[str, int]:
    """How many versions each named model of the caller's project has (one grouped query).

    The registry's ``Model`` carries the latest number, not a count (deleted
    versions leave gaps), so the page counts them itself.
    """
    if not names:
        return {}
    with services.store.read() as session:
        rows = session.execute(
            select(ModelRow.name, func.count(ModelVersionRow.id))
            .join(ModelVersionRow, ModelVersionRow.model_id == ModelRow.id)
            .where(ModelRow.project_id == principal.project_id, ModelRow.name.in_(names))
            .group_by(ModelRow.name)
        ).all()
    return {name: count for name, count in rows}


@router.get("/models")
def models_page(
    request: Request,
    viewer: ViewerDep,
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    """Every registered model: versions, latest, aliases."""
    services, principal = viewer.services, viewer.principal
    page = services.registry.list_models(principal, cursor=cursor, limit=MODELS_PER_PAGE)
    counts = version_counts(services, principal, [model.name for model in page.items])
    return renderer(request).page(
        request,
        "models.html",
        {
            "title": "Models",
            "models": page.items,
            "counts": counts,
            "next_cursor": page.next_cursor,
            "notice": notice,
        },
    )


@router.get("/models/{name}")
def model_page(
    request: Request,
    viewer: ViewerDep,
    name: str,
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    """One model: its versions with lineage, its aliases and their recent moves."""
    services, principal = viewer.services, viewer.principal
    model = services.registry.get_model(principal, name)
    page = services.registry.list_versions(principal, name, cursor=cursor, limit=VERSIONS_PER_PAGE)
    versions = [version_view(services, principal, version) for version in page.items]
    moves = services.aliases.history(principal, name, None)[-ALIAS_MOVES_SHOWN:]
    return renderer(request).page(
        request,
        "models_detail.html",
        {
            "title": f"Model {model.name}",
            "model": model,
            "versions": versions,
            "next_cursor": page.next_cursor,
            "moves": list(reversed(moves)),
            "notice": notice,
        },
    )


def parse_version(text: str) -> int:
    """A version number typed in a form; ``InvalidInput`` saying what is expected."""
    value = text.strip()
    if not _VERSION_NUMBER.fullmatch(value) or not 1 <= int(value) <= MAX_INT32:
        raise InvalidInput(f"version must be a whole number of 1 or more, not {text!r}")
    return int(value)


@router.post("/models/{name}/aliases", dependencies=[FormChecked])
def set_alias(
    viewer: ViewerDep,
    name: str,
    alias: Annotated[str, Form(max_length=200)],
    version: Annotated[str, Form(max_length=200)],
) -> Response:
    """Point an alias at a version (maintainers); back to the model with a notice."""
    require(viewer.principal, Role.MAINTAINER)  # before reading the form: a viewer gets 403
    number = parse_version(version)
    moved = viewer.services.aliases.set(viewer.principal, name, alias.strip(), number)
    notice = f"Alias {moved.alias} now points at version {moved.version}."
    return RedirectResponse(f"/models/{name}?{urlencode({'notice': notice})}", 303)
