"""Tuning jobs: create (data checked before anything is queued), read, cancel, events.

A tuning job is a ``tune_jobs`` row (what to train, what it produced) and a
``tune.run`` job on the durable queue (how it runs: state, lease, progress,
events). ``create`` checks the base version and every training sample in the
request, then writes the row, its audit entry and the queue job in one
transaction; a bad sample is a 400 naming it and nothing is stored. The
worker runs the job through :meth:`TuneJobs.handle_job` (``tune.job``).
See docs/tuning.md.
"""

from __future__ import annotations

import builtins
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import InvalidInput, NotFound, PermissionDenied
from modelcycle.gateway import Gateway
from modelcycle.jobs import JobContext, JobEventView, Jobs
from modelcycle.plugins import EventBus
from modelcycle.registry import Registry
from modelcycle.registry import queries as registry_queries
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.datasets import EvalSample, load_samples, resolve_version, version_ref
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import (
    AliasRow,
    ApiKeyRow,
    DatasetVersionRow,
    FileRow,
    JobRow,
    ModelRow,
    ModelVersionRow,
    ProjectRow,
    TuneCheckpointRow,
    TuneJobRow,
    utcnow,
)
from modelcycle.tune.data import Example, check_file, check_samples
from modelcycle.tune.prompt_search import ScoreFactory
from modelcycle.tune.prompt_space import parse_space
from modelcycle.tune.runner import Launcher
from modelcycle.tune.schemas import (
    TUNE_JOB_KIND,
    Hyperparameters,
    TuneCheckpoint,
    TuneJob,
    TuneJobCreate,
)
from modelcycle.types import ROOT_PROJECT, BackendKind, Role, VersionStatus

TUNABLE_BACKENDS = (BackendKind.TRANSFORMERS.value, BackendKind.LLAMACPP.value)
MAX_ATTEMPTS = 3
"""A job whose worker dies resumes from its checkpoint at most this many times in all."""


def new_public_id() -> str:
    """``ftjob-`` and 24 hex digits, as the OpenAI-compatible API shows it."""
    return "ftjob-" + secrets.token_hex(12)


def resolve_base(
    session: Session, project_id: int, ref: str, *, weights: bool = True
) -> tuple[ModelRow, ModelVersionRow]:
    """The version ``NAME@VERSION`` or ``NAME@alias`` names, if it can be tuned.

    ``weights``: its weights are trained, so it must be a local checkpoint or GGUF
    (prompt search tunes only params: any active version will do).
    """
    name, at, which = ref.partition("@")
    if not name or not at or not which:
        raise InvalidInput(
            f"bad base {ref!r}: write NAME@VERSION or NAME@alias, for example gemma-3-270m@1",
            param="base",
        )
    model = registry_queries.find_model(session, project_id, name)
    if which.isdigit():
        version = registry_queries.find_version(session, model, int(which))
    else:
        alias = session.execute(
            select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == which)
        ).scalar_one_or_none()
        if alias is None:
            raise NotFound(f"model '{name}' has no alias '{which}'")
        found = session.get(ModelVersionRow, alias.version_id)
        assert found is not None
        version = found
    label = f"{name}@{version.version}"
    if version.status != VersionStatus.ACTIVE.value:
        raise InvalidInput(f"base {label} is archived; restore it first", param="base")
    if not weights:
        return model, version
    if version.backend not in TUNABLE_BACKENDS:
        raise InvalidInput(
            f"base {label} is served by backend '{version.backend}', which cannot be tuned; "
            "tune a version of backend 'transformers' (a Hugging Face checkpoint directory) "
            "or 'llamacpp' (a .gguf file)",
            param="base",
        )
    source = Path(version.source).expanduser()
    if not (source.is_dir() or (source.suffix.lower() == ".gguf" and source.is_file())):
        raise InvalidInput(
            f"base {label}: its source {version.source} is not a Hugging Face checkpoint "
            "directory or a .gguf file on this server",
            param="base",
        )
    return model, version


def job_principal(session: Session, project_id: int, key_id: int | None) -> Principal:
    """Who a job acts as: the key that created it (key 0: the platform), if still valid."""
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    if not key_id:
        return Principal(0, "system", "bootstrap", project.id, project.name, Role.ADMIN,
                         project.name == ROOT_PROJECT, kind="system")  # fmt: skip
    key = session.get(ApiKeyRow, key_id)
    if key is None or key.revoked_at is not None or key.project_id != project_id:
        raise PermissionDenied("the API key that created this tuning job was revoked or deleted")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise PermissionDenied("the API key that created this tuning job has expired")
    role = Role(key.role)
    return Principal(key.id, key.name, key.prefix, project.id, project.name, role,
                     project.name == ROOT_PROJECT and role is Role.ADMIN)  # fmt: skip


def training_examples(
    session: Session, home: Path, row: TuneJobRow
) -> tuple[builtins.list[Example], builtins.list[Example] | None]:
    """The checked training (and validation) examples of a stored job."""
    if row.dataset_version_id is not None:
        train = _version_examples(session, row.dataset_version_id, row.method)
    else:
        train = _file_examples(session, home, row.project_id, row.training_file_id, row.method)
    validation = None
    if row.validation_dataset_version_id is not None:
        validation = _version_examples(session, row.validation_dataset_version_id, row.method)
    elif row.validation_file_id is not None:
        validation = _file_examples(
            session, home, row.project_id, row.validation_file_id, row.method
        )
    return train, validation


def _version_examples(session: Session, version_id: int, method: str) -> builtins.list[Example]:
    version = session.get(DatasetVersionRow, version_id)
    assert version is not None
    where = f"dataset {version_ref(session, version)}"
    return check_samples(load_samples(session, version_id), method, where)


def _file_row(session: Session, project_id: int, file_id: str | None) -> FileRow:
    row = session.execute(
        select(FileRow).where(FileRow.file_id == file_id, FileRow.project_id == project_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"file {file_id} not found; upload it with POST /v1/files")
    return row


def _file_examples(
    session: Session, home: Path, project_id: int, file_id: str | None, method: str
) -> builtins.list[Example]:
    found = _file_row(session, project_id, file_id)
    return check_file(home / "files" / found.path, method, f"file {file_id}")


def tune_out(row: TuneJobRow, job: JobRow | None, extra: dict[str, str]) -> TuneJob:
    """The public shape of a job: its row, with state and progress from the queue."""
    status = job.state if job is not None else row.status
    error = row.error or (job.error if job is not None and status == "failed" else None)
    return TuneJob(
        id=row.public_id,
        job_id=row.job_id,
        method=row.method,
        base=row.base,
        dataset=extra.get("dataset"),
        validation_dataset=extra.get("validation_dataset"),
        training_file=row.training_file_id,
        validation_file=row.validation_file_id,
        hyperparameters=Hyperparameters.model_validate(row.hyperparameters),
        eval_datasets=list(row.eval_datasets or []),
        suffix=row.suffix,
        status=status,
        progress=job.progress if job is not None else None,
        result_model=row.result_model,
        result_version=row.result_version,
        artifacts=dict(row.artifacts or {}),
        metrics=dict(row.metrics or {}),
        trained_tokens=row.trained_tokens,
        eval_run_id=row.eval_run_id,
        error=error,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at or (job.finished_at if job is not None else None),
    )


class TuneJobs:
    """Tuning jobs of every project; each operation acts in the caller's project."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        jobs: Jobs,
        registry: Registry,
        home: Path,
        *,
        launcher: Launcher | None = None,
        ray_address: str | None = None,
        gateway: Gateway | None = None,
        score_factory: ScoreFactory | None = None,
    ):
        self._store, self._bus, self._jobs, self._registry = store, bus, jobs, registry
        self.home = home
        self.launcher = launcher
        """Runs training; ``None``: chosen per job from ``ray_address`` (local by default)."""
        self.ray_address = ray_address
        self.gateway = gateway
        """Where prompt-search calls the base version (``None``: prompt-search refused)."""
        self.score_factory = score_factory
        """Builds prompt-search's scorer from a name and options (evaluation's registry)."""

    # -- creating ------------------------------------------------------------------------

    def create(self, principal: Principal, body: TuneJobCreate) -> TuneJob:
        """Check the base and the data, then store the job and queue it (maintainer+)."""
        require(principal, Role.MAINTAINER)
        searching = body.method == "prompt-search"
        if searching and (self.gateway is None or self.score_factory is None):
            raise InvalidInput("prompt-search needs a server's gateway and scorers", param="method")
        if searching and body.dataset is None:
            raise InvalidInput(
                "prompt-search needs a dataset (the samples candidates are scored on; "
                "add validation_dataset to score on held-out samples)",
                param="dataset",
            )
        project = principal.project_id
        with self._store.write() as session:
            model, base = resolve_base(session, project, body.base, weights=not searching)
            refs: dict[str, str] = {}
            row = TuneJobRow(
                public_id=new_public_id(),
                project_id=project,
                method=body.method,
                base=body.base,
                base_version_id=base.id,
                training_file_id=body.training_file,
                validation_file_id=body.validation_file,
                hyperparameters=body.hyperparameters.model_dump(mode="json"),
                eval_datasets=[],
                suffix=body.suffix,
                status="queued",
                artifacts={},
                metrics={},
                key_id=principal.key_id,
                created_by=principal.actor[:100],
                created_at=utcnow(),
            )
            if body.dataset is not None:
                version = resolve_version(session, project, body.dataset)
                row.dataset_version_id, refs["dataset"] = version.id, version_ref(session, version)
            if body.validation_dataset is not None:
                version = resolve_version(session, project, body.validation_dataset)
                row.validation_dataset_version_id = version.id
                refs["validation_dataset"] = version_ref(session, version)
            # Pin each evaluation dataset to its version now: the comparison uses the same.
            row.eval_datasets = [
                version_ref(session, resolve_version(session, project, ref))
                for ref in dict.fromkeys(body.eval_datasets)
            ]
            if searching:
                counts = [len(found or []) for found in self._check_search(session, row, body)]
            else:
                counts = [len(found or []) for found in training_examples(session, self.home, row)]
            row.artifacts = {"examples_submitted": counts[0],
                             "validation_examples_submitted": counts[1]}  # fmt: skip
            session.add(row)
            session.flush()
            job = self._jobs.enqueue(
                TUNE_JOB_KIND,
                {"tune_job_id": row.public_id},
                project_id=project,
                actor=principal.actor,
                max_attempts=MAX_ATTEMPTS,
                session=session,
            )
            row.job_id = job.id
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="tune.create",
                    target=f"tune-job:{row.public_id}",
                    project=principal.project,
                    after={
                        "method": body.method,
                        "base": f"{model.name}@{base.version}",
                        **refs,
                        "training_file": body.training_file,
                        "hyperparameters": row.hyperparameters,
                        "eval_datasets": row.eval_datasets,
                    },
                ),
            )
            session.flush()
            return tune_out(row, session.get(JobRow, job.id), refs)

    # -- reading -------------------------------------------------------------------------

    def _own(self, session: Session, principal: Principal, public_id: str) -> TuneJobRow:
        row = session.execute(
            select(TuneJobRow).where(TuneJobRow.public_id == public_id)
        ).scalar_one_or_none()
        if row is None or row.project_id != principal.project_id:
            raise NotFound(
                f"tuning job {public_id} not found; list them with: modelcycle tune list"
            )
        return row

    @staticmethod
    def _out(session: Session, row: TuneJobRow) -> TuneJob:
        refs: dict[str, str] = {}
        for key, version_id in (
            ("dataset", row.dataset_version_id),
            ("validation_dataset", row.validation_dataset_version_id),
        ):
            version = session.get(DatasetVersionRow, version_id) if version_id else None
            if version is not None:
                refs[key] = version_ref(session, version)
        job = session.get(JobRow, row.job_id) if row.job_id is not None else None
        return tune_out(row, job, refs)

    def get(self, principal: Principal, public_id: str) -> TuneJob:
        """One job of the caller's project (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return self._out(session, self._own(session, principal, public_id))

    def list(
        self, principal: Principal, *, cursor: str | None = None, limit: int = 20
    ) -> Page[TuneJob]:
        """Jobs of the caller's project, newest first (viewer+)."""
        require(principal, Role.VIEWER)
        before, limit = decode_cursor(cursor), check_limit(limit)
        query = select(TuneJobRow).where(TuneJobRow.project_id == principal.project_id)
        if before:
            query = query.where(TuneJobRow.id < before)
        with self._store.read() as session:
            rows = session.execute(query.order_by(TuneJobRow.id.desc()).limit(limit + 1))
            found = rows.scalars().all()
            items = [self._out(session, row) for row in found[:limit]]
        more = len(found) > limit
        return Page(items, encode_cursor(found[limit - 1].id) if more else None)

    def events(
        self, principal: Principal, public_id: str, *, after_id: int = 0, limit: int = 100
    ) -> builtins.list[JobEventView]:
        """The job's log lines and metric points (loss curves), oldest first (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            job_id = self._own(session, principal, public_id).job_id
        return [] if job_id is None else self._jobs.events(job_id, after_id=after_id, limit=limit)

    def checkpoints(self, principal: Principal, public_id: str) -> builtins.list[TuneCheckpoint]:
        """The checkpoints the job saved, newest first (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = self._own(session, principal, public_id)
            found = session.execute(
                select(TuneCheckpointRow)
                .where(TuneCheckpointRow.tune_job_id == row.id)
                .order_by(TuneCheckpointRow.step.desc(), TuneCheckpointRow.id.desc())
            ).scalars()
            return [
                TuneCheckpoint(
                    id=f"ftckpt-{c.id}",
                    step=c.step,
                    metrics=c.metrics or {},
                    created_at=c.created_at,
                )
                for c in found
            ]

    # -- cancelling ----------------------------------------------------------------------

    def cancel(self, principal: Principal, public_id: str) -> TuneJob:
        """Cancel a job (maintainer+, audited): a waiting one at once, a running one soon."""
        require(principal, Role.MAINTAINER)
        with self._store.read() as session:
            job_id = self._own(session, principal, public_id).job_id
        if job_id is None:  # pragma: no cover - every job is queued when created
            raise NotFound(f"tuning job {public_id} has no queue job")
        job = self._jobs.cancel(job_id, actor=principal.actor)
        with self._store.write() as session:
            row = self._own(session, principal, public_id)
            before = row.status
            if job.state == "cancelled":
                row.status, row.finished_at = "cancelled", job.finished_at
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="tune.cancel",
                    target=f"tune-job:{public_id}",
                    project=principal.project,
                    before={"status": before},
                    after={"status": job.state, "cancel_requested": job.cancel_requested},
                ),
            )
            session.flush()
            return self._out(session, row)

    # -- after the job -------------------------------------------------------------------

    def acting_principal(self, public_id: str) -> Principal:
        """The caller a job's follow-up work (its comparison run) acts as."""
        with self._store.read() as session:
            row = session.execute(
                select(TuneJobRow).where(TuneJobRow.public_id == public_id)
            ).scalar_one()
            return job_principal(session, row.project_id, row.key_id)

    def record_comparison(self, public_id: str, run_ids: builtins.list[int]) -> None:
        """Remember the evaluation runs comparing the tuned version with its parent."""
        with self._store.write() as session:
            row = session.execute(
                select(TuneJobRow).where(TuneJobRow.public_id == public_id)
            ).scalar_one()
            row.eval_run_id = run_ids[0] if run_ids else None
            row.artifacts = {**(row.artifacts or {}), "eval_runs": run_ids}

    def handle_job(self, context: JobContext) -> dict[str, object]:
        """The ``tune.run`` handler: prepare the data, train (or search), register the version."""
        from modelcycle.tune.job import TrainingJob
        from modelcycle.tune.prompt_search_run import PromptSearchJob, is_prompt_search

        public_id = str(context.payload["tune_job_id"])
        kind = PromptSearchJob if is_prompt_search(self._store, public_id) else TrainingJob
        return kind(self, self._store, self._bus, self._registry, context).run()

    @staticmethod
    def _check_search(
        session: Session, row: TuneJobRow, body: TuneJobCreate
    ) -> tuple[builtins.list[EvalSample], builtins.list[EvalSample] | None]:
        """The samples a search scores on; a bad candidate space is a 400 now, not later."""
        training = load_samples(session, row.dataset_version_id or 0)
        held_out = row.validation_dataset_version_id
        validation = load_samples(session, held_out) if held_out else None
        hyperparameters = body.hyperparameters
        parse_space(hyperparameters.candidates, training=training, seed=hyperparameters.seed)
        return training, validation
