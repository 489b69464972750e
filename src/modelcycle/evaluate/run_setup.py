"""Checking a run before it is stored, and rebuilding what it runs with when it starts.

Everything a run needs is validated when it is created, so a mistake is a 400
(or 404) at once rather than a failed job minutes later: the dataset
reference, each scorer (built with its options), each gate (parsed, its
scorer in the run, its baseline a target), and each target (a deployment of
the project, or a version that resolves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.access import Principal
from modelcycle.deploy import resolve_active
from modelcycle.errors import InvalidInput, NotFound, PermissionDenied
from modelcycle.evaluate.caller import is_version_target
from modelcycle.evaluate.gates import Gate, parse_gate
from modelcycle.evaluate.runner import needs_baseline
from modelcycle.evaluate.samples import resolve_version
from modelcycle.evaluate.schemas import MAX_TARGETS, EvalRunCreate, ScorerSpec
from modelcycle.evaluate.scorers import Scorer, ScorerRegistry
from modelcycle.store.tables import (
    ApiKeyRow,
    DatasetRow,
    DatasetVersionRow,
    DeploymentRow,
    ProjectRow,
    utcnow,
)
from modelcycle.types import ROOT_PROJECT, Role

MAX_TARGET_LENGTH = 200


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A validated request: the targets (gate baselines added), the baseline, the gates."""

    targets: list[str]
    baseline: str
    scorers: list[Scorer]
    gates: list[Gate]


def build_scorers(registry: ScorerRegistry, specs: Sequence[ScorerSpec]) -> list[Scorer]:
    """Each scorer built with its options; a 400 naming an unknown one, a bad option, a repeat."""
    seen: set[str] = set()
    built = []
    for spec in specs:
        if spec.name in seen:
            raise InvalidInput(
                f"scorer '{spec.name}' is listed twice: a run keeps one score per scorer name",
                param="scorers",
            )
        seen.add(spec.name)
        built.append(registry.build(spec.name, spec.options))
    return built


def check_gates(texts: Sequence[str], scorers: Sequence[Scorer]) -> list[Gate]:
    """Each gate parsed, reading a scorer of the run in a way its kind allows."""
    by_name = {scorer.name: scorer for scorer in scorers}
    gates = []
    for text in texts:
        gate = parse_gate(text)
        scorer = by_name.get(gate.metric)
        if scorer is None:
            raise InvalidInput(
                f"gate '{text}': the run has no scorer '{gate.metric}' "
                f"(its scorers: {', '.join(by_name)})",
                param="gates",
            )
        if gate.aggregate == "pass_rate" and scorer.kind != "binary":
            raise InvalidInput(
                f"gate '{text}': pass_rate needs a pass/fail scorer and {scorer.name} is "
                f"{scorer.kind}; write mean({scorer.name}) instead",
                param="gates",
            )
        if gate.aggregate == "delta" and needs_baseline(scorer):
            raise InvalidInput(
                f"gate '{text}': {scorer.name} already compares with the baseline; "
                f"gate its mean instead, e.g. mean({scorer.name})>=0.5",
                param="gates",
            )
        gates.append(gate)
    return gates


def plan_run(body: EvalRunCreate, registry: ScorerRegistry) -> RunPlan:
    """Scorers, gates and the final target list of a request (no database needed)."""
    scorers = build_scorers(registry, body.scorers)
    gates = check_gates(body.gates, scorers)
    baseline = body.baseline or body.targets[0]
    targets = _targets(body.targets, [baseline, *(g.baseline for g in gates if g.baseline)])
    if len(targets) < 2:
        _refuse_comparisons(gates, scorers)
    return RunPlan(targets, baseline, scorers, gates)


def _targets(asked: Sequence[str], baselines: Sequence[str]) -> list[str]:
    """The targets asked for, then any baseline not among them; 400 on repeats or too many."""
    targets: list[str] = []
    for target in asked:
        if target in targets:
            raise InvalidInput(f"target '{target}' is listed twice", param="targets")
        targets.append(target)
    targets += [extra for extra in dict.fromkeys(baselines) if extra not in targets]
    for target in targets:
        if not target or len(target) > MAX_TARGET_LENGTH:
            raise InvalidInput(
                f"target names are 1 to {MAX_TARGET_LENGTH} characters", param="targets"
            )
    if len(targets) > MAX_TARGETS:
        raise InvalidInput(
            f"{len(targets)} targets with the baselines added; a run takes at most {MAX_TARGETS}",
            param="targets",
        )
    return targets


def _refuse_comparisons(gates: Sequence[Gate], scorers: Sequence[Scorer]) -> None:
    """A run of one target has nothing to compare: refuse delta gates and pairwise scorers."""
    for gate in gates:
        if gate.aggregate == "delta":
            raise InvalidInput(
                f"gate '{gate}' compares with a baseline: add baseline=TARGET to it "
                "or a second target to the run",
                param="gates",
            )
    for scorer in scorers:
        if needs_baseline(scorer):
            raise InvalidInput(
                f"scorer {scorer.name} compares each answer with the baseline's: "
                "the run needs a second target",
                param="scorers",
            )


def check_targets(session: Session, principal: Principal, targets: Sequence[str]) -> None:
    """Deployments must exist in the caller's project (404), versions must resolve (400)."""
    for target in targets:
        if is_version_target(target):
            resolve_active(session, principal.project_id, target, param="targets")
            continue
        found = session.execute(
            select(DeploymentRow.id).where(
                DeploymentRow.project_id == principal.project_id, DeploymentRow.name == target
            )
        ).first()
        if found is None:
            raise NotFound(
                f"deployment '{target}' not found; list them with: modelcycle deploy list "
                "(or name a version as NAME@VERSION)"
            )
        if not principal.may_call(target):
            raise PermissionDenied(f"this API key may not call deployment '{target}'")


def dataset_version(
    session: Session, project_id: int, ref: str, version_id: int | None
) -> DatasetVersionRow:
    """The version ``ref`` names, or ``version_id``, in the project; 404 from anywhere else."""
    if version_id is None:
        return resolve_version(session, project_id, ref)
    row = session.get(DatasetVersionRow, version_id)
    dataset = session.get(DatasetRow, row.dataset_id) if row is not None else None
    if row is None or dataset is None or dataset.project_id != project_id:
        raise NotFound(f"dataset version {version_id} not found")
    return row


def run_principal(session: Session, project_id: int, key_id: int | None) -> Principal:
    """The caller a run sends its requests as: the key that started it, in the run's project.

    Key 0 is the platform itself (runs the automation stage starts). A key
    revoked or expired since refuses the run.
    """
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    if not key_id:
        return Principal(
            key_id=0,
            key_name="system",
            prefix="bootstrap",
            project_id=project.id,
            project=project.name,
            role=Role.ADMIN,
            is_root=project.name == ROOT_PROJECT,
            kind="system",
        )
    row = session.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.project_id != project_id:
        raise PermissionDenied(
            "the API key that started this run was revoked or deleted; start the run again "
            "with a current key"
        )
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise PermissionDenied(
            "the API key that started this run has expired; start the run again with a current key"
        )
    role = Role(row.role)
    return Principal(
        key_id=row.id,
        key_name=row.name,
        prefix=row.prefix,
        project_id=project.id,
        project=project.name,
        role=role,
        is_root=project.name == ROOT_PROJECT and role is Role.ADMIN,
        deployments=None if row.deployments is None else frozenset(row.deployments),
    )
