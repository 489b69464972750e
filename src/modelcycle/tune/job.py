"""One run of a ``tune.run`` job: prepare the data, train, register the tuned version.

Every step can be repeated: the data is prepared once (``tune.data.prepare``
keeps a manifest), training resumes from the checkpoint the queue kept for the
job (a worker that died mid-way loses nothing but the steps since), and a
version already registered for the job is found again instead of registered
twice. A failed job keeps its events and leaves the registry untouched.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.errors import ModelcycleError, NotFound
from modelcycle.jobs import JobContext, JobInterrupted
from modelcycle.jobs.leases import LeaseLost
from modelcycle.jobs.worker import PERMANENT_ERRORS
from modelcycle.plugins import EventBus
from modelcycle.registry import Registry, VersionCreate, VersionRef, add_lineage_edge
from modelcycle.store import Store
from modelcycle.store.datasets import load_samples, resolve_version, version_ref
from modelcycle.store.tables import (
    DatasetVersionRow,
    ModelRow,
    ModelVersionRow,
    ProjectRow,
    TuneCheckpointRow,
    TuneJobRow,
    utcnow,
)
from modelcycle.tune.data import Prepared, PromptFormatter, eval_texts_of, prepare
from modelcycle.tune.engine import TrainSpec
from modelcycle.tune.runner import launcher_for
from modelcycle.tune.service import job_principal, training_examples
from modelcycle.types import BackendKind

if TYPE_CHECKING:
    from modelcycle.tune.service import TuneJobs

PROGRESS_EVERY_S = 1.0
"""Progress is written at most this often (each write is a transaction)."""
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


class TrainingJob:
    """The handler's work for one claimed job."""

    def __init__(
        self, tune: TuneJobs, store: Store, bus: EventBus, registry: Registry, context: JobContext
    ):
        self.tune, self.store, self.bus, self.registry = tune, store, bus, registry
        self.context = context
        self.public_id = str(context.payload["tune_job_id"])
        self.workdir = tune.home / "tune" / self.public_id
        self._progress_at = 0.0

    # -- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        """Run the job to its end; see the module docstring."""
        with self.store.write() as session:
            row = self._row(session)
            if row.result_version is not None:  # registered by an attempt that then died
                return self._result(row)
            row.status, row.error = "running", None
        try:
            return self._train_and_register()
        except (JobInterrupted, LeaseLost):
            raise
        except Exception as exc:
            self._failed(exc)
            raise

    def _train_and_register(self) -> dict[str, object]:
        prepared, spec = self._prepare()
        launcher = self.tune.launcher or launcher_for(self.tune.ray_address)
        final = launcher.run(spec, self.workdir, self._relay, self._should_stop)
        if final.get("interrupted"):
            if self.context.cancelled:
                with self.store.write() as session:
                    row = self._row(session)
                    row.status, row.finished_at = "cancelled", utcnow()
                self.context.log("training stopped: the job was cancelled", level="warning")
                return {"tune_job": self.public_id, "status": "cancelled"}
            raise JobInterrupted(f"{self.public_id}: stopped at a checkpoint; it resumes there")
        return self._register(prepared, final)

    def _should_stop(self) -> bool:
        return self.context.cancelled or self.context.stopping

    # -- preparing -------------------------------------------------------------------

    def _prepare(self) -> tuple[Prepared, TrainSpec]:
        with self.store.read() as session:
            row = self._row(session)
            base = session.get(ModelVersionRow, row.base_version_id)
            assert base is not None
            train, validation = training_examples(session, self.tune.home, row)
            method, hyperparameters = row.method, dict(row.hyperparameters)
            eval_refs = list(row.eval_datasets or [])
            project_id = row.project_id
            source, params = base.source, dict(base.params)

        def eval_texts() -> list[Any]:
            texts = []
            with self.store.read() as session:
                for ref in eval_refs:
                    version = resolve_version(session, project_id, ref)
                    texts.extend(eval_texts_of(ref, load_samples(session, version.id)))
            return texts

        formatter = PromptFormatter(source, params)
        prepared = prepare(
            self.workdir / "data", method, train, validation, formatter, eval_texts, eval_refs
        )
        with self.store.write() as session:
            row = self._row(session)
            row.artifacts = {
                **(row.artifacts or {}),
                "data": {k: v for k, v in prepared.as_json().items() if k != "decontamination"},
                **({"decontamination": prepared.decontamination}
                   if prepared.decontamination is not None else {}),
            }  # fmt: skip
        dropped = (prepared.decontamination or {}).get("dropped_count", 0)
        self.context.log(
            f"training data: {prepared.examples} examples "
            f"({prepared.duplicates_dropped} duplicates and {dropped} examples overlapping "
            f"the evaluation datasets dropped), {prepared.validation_examples} for validation"
        )
        resume = self._resume_point()
        spec = TrainSpec(
            method=method,  # type: ignore[arg-type]
            base_model=source,
            train_path=str(prepared.train_path),
            output_dir=str(self.workdir / "output"),
            hyperparameters=hyperparameters,
            validation_path=str(prepared.validation_path) if prepared.validation_path else None,
            cache_dir=str(self.tune.home / "cache" / "transformers"),
            resume_from=resume,
        )
        return prepared, spec

    def _resume_point(self) -> str | None:
        saved = self.context.resume_from
        if not saved or "path" not in saved:
            return None
        path = Path(str(saved["path"]))
        if not path.is_dir():
            self.context.log(f"checkpoint {path} is gone; training starts over", level="warning")
            return None
        self.context.log(f"resumed from step {saved.get('step')} ({path})")
        return str(path)

    # -- relaying the trainer's events -----------------------------------------------

    def _relay(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "log":
            level = str(event.get("level", "info"))
            self.context.log(
                str(event.get("message", "")), level=level if level in LOG_LEVELS else "info"
            )
        elif kind == "metrics":
            data = {k: v for k, v in event.items() if k != "event" and v is not None}
            shown = ", ".join(f"{k}={v:.4g}" for k, v in data.items() if isinstance(v, float))
            self.context.log(f"step {event.get('step')}: {shown}", level="metric", data=data)
        elif kind == "progress":
            fraction = float(event.get("fraction", 0.0))
            now = time.monotonic()
            if fraction >= 1.0 or now - self._progress_at >= PROGRESS_EVERY_S:
                self._progress_at = now
                self.context.progress(fraction)
        elif kind == "checkpoint":
            self._checkpoint(event)

    def _checkpoint(self, event: Mapping[str, Any]) -> None:
        step, path = int(event.get("step", 0)), str(event.get("path", ""))
        metrics = event.get("metrics")
        with self.store.write() as session:
            row = self._row(session)
            session.add(
                TuneCheckpointRow(
                    tune_job_id=row.id,
                    step=step,
                    path=path,
                    metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
                    created_at=utcnow(),
                )
            )
        self.context.checkpoint({"path": path, "step": step})

    # -- registering -----------------------------------------------------------------

    def _register(self, prepared: Prepared, final: Mapping[str, Any]) -> dict[str, object]:
        with self.store.read() as session:
            row = self._row(session)
            base = session.get(ModelVersionRow, row.base_version_id)
            assert base is not None
            model = session.get(ModelRow, base.model_id)
            assert model is not None
        adapter = str(final["adapter_path"])
        metrics = dict(final.get("metrics") or {})
        number, first = self._register_once(
            model, base, backend=BackendKind.TRANSFORMERS,
            params={**base.params, "adapter": adapter}, metrics=metrics,
            extra={"trained_tokens": final.get("trained_tokens")},
        )  # fmt: skip
        trained = final.get("trained_tokens")
        artifacts = {
            "adapter": adapter,
            "merged": final.get("merged_path"),
            "stopped_early": bool(final.get("stopped_early")),
        }
        out = self._succeeded(
            model, base, number, first=first, metrics=metrics, artifacts=artifacts,
            trained_tokens=int(trained) if isinstance(trained, int | float) else None,
        )  # fmt: skip
        self.context.log(f"registered {model.name}@{number} (adapter {adapter})")
        return out

    def _register_once(
        self,
        model: ModelRow,
        base: ModelVersionRow,
        *,
        backend: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """The job's new version of ``model`` (parent: ``base``), and whether this call made it.

        A version an earlier attempt registered for the job is returned, not made twice.
        """
        with self.store.read() as session:
            row = self._row(session)
            principal = job_principal(session, row.project_id, row.key_id)
            existing = self._registered_before(session, model, row)
            dataset = self._dataset_ref(session, row)
            method, hyperparameters, suffix = row.method, row.hyperparameters, row.suffix
        if existing is not None:
            return existing, False
        description = f"{method} of {model.name}@{base.version} ({self.public_id})"
        version = self.registry.register_version(
            principal,
            model.name,
            VersionCreate(
                source=base.source,
                backend=backend,
                params=dict(params),
                parent=VersionRef(model=model.name, version=base.version),
                description=f"{description} {suffix}" if suffix else description,
                metadata={
                    "tune_job": self.public_id,
                    "method": method,
                    "hyperparameters": hyperparameters,
                    "metrics": dict(metrics),
                    "dataset": dataset,
                    **(extra or {}),
                },
            ),
        )
        return version.version, True

    def _succeeded(
        self,
        model: ModelRow,
        base: ModelVersionRow,
        number: int,
        *,
        first: bool,
        metrics: Mapping[str, Any],
        artifacts: Mapping[str, Any],
        trained_tokens: int | None = None,
    ) -> dict[str, object]:
        """Record version ``number`` as the job's result, with lineage; emit ``TuneFinished``.

        ``first``: this attempt registered it (an earlier attempt's already has its edges).
        """
        with self.store.write() as session:
            row = self._row(session)
            version_row = session.execute(
                select(ModelVersionRow).where(
                    ModelVersionRow.model_id == model.id, ModelVersionRow.version == number
                )
            ).scalar_one()
            if first:
                kind = "dataset_version" if row.dataset_version_id else "file"
                trained_on = self._dataset_ref(session, row) or ""
                add_lineage_edge(session, version_row.id, relation="trained_on",
                                 target_kind=kind, target_ref=trained_on)  # fmt: skip
                add_lineage_edge(
                    session, version_row.id, relation="produced_by", target_kind="tune_job",
                    target_ref=self.public_id, metadata={"method": row.method},
                )  # fmt: skip
            row.status, row.finished_at, row.error = "succeeded", utcnow(), None
            row.result_model, row.result_version = model.name, number
            row.metrics = dict(metrics)
            row.trained_tokens = trained_tokens
            row.artifacts = {**(row.artifacts or {}), **artifacts}
            project = session.get(ProjectRow, row.project_id)
            assert project is not None
            out = self._result(row)
            event = events.TuneFinished(
                project=project.name, project_id=row.project_id, tune_job=self.public_id,
                status="succeeded", model=model.name, version=number,
                parent_version=base.version, eval_datasets=tuple(row.eval_datasets or ()),
                at=utcnow(),
            )  # fmt: skip
        self.bus.emit(event)
        return out

    @staticmethod
    def _dataset_ref(session: Session, row: TuneJobRow) -> str | None:
        if row.dataset_version_id is None:
            return row.training_file_id
        version = session.get(DatasetVersionRow, row.dataset_version_id)
        return version_ref(session, version) if version is not None else None

    def _registered_before(self, session: Session, model: ModelRow, row: TuneJobRow) -> int | None:
        """The version an earlier attempt registered for this job, if one did."""
        found = session.execute(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.created_at >= row.created_at
            )
        ).scalars()
        for version in found:
            if (version.meta or {}).get("tune_job") == self.public_id:
                return version.version
        return None

    # -- failing ---------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        """Record the error; a failure no later attempt will retry ends the job here."""
        message = (
            exc.message if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
        )
        # TrainingFailed is an InvalidInput: the worker will not retry it either.
        final = isinstance(exc, PERMANENT_ERRORS) or (
            self.context.job.attempts >= self.context.job.max_attempts
        )
        event = None
        with self.store.write() as session:
            row = self._row(session)
            row.error = message[:10_000]
            if final:
                row.status, row.finished_at = "failed", utcnow()
                project = session.get(ProjectRow, row.project_id)
                event = events.TuneFinished(
                    project=project.name if project else "", project_id=row.project_id,
                    tune_job=self.public_id, status="failed", model=None, version=None,
                    parent_version=None, eval_datasets=tuple(row.eval_datasets or ()), at=utcnow(),
                )  # fmt: skip
        if event is not None:
            self.bus.emit(event)

    # -- helpers ---------------------------------------------------------------------

    def _row(self, session: Session) -> TuneJobRow:
        row = session.execute(
            select(TuneJobRow).where(TuneJobRow.public_id == self.public_id)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"tuning job {self.public_id} no longer exists")
        return row

    @staticmethod
    def _result(row: TuneJobRow) -> dict[str, object]:
        return {
            "tune_job": row.public_id,
            "status": "succeeded",
            "model": row.result_model,
            "version": row.result_version,
            "metrics": dict(row.metrics or {}),
        }
