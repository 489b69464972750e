"""A tuning job's progress written the way the real job writes it, without training.

The real job (``modelcycle.tune.job.TrainingJob``) holds the queue job's lease,
logs the engine's ``N steps over E epochs`` line, relays each reporting step as a
``metric`` event (``step``, ``epoch``, ``train_loss``, ``val_loss`` when
validated) with the fraction done, and on success records the registered
version on its ``tune_jobs`` row. ``FakeTraining`` does the same through the
queue's own API, so the pages are tested against the records they will read.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from modelcycle.access import Principal
from modelcycle.evaluate.dataset_schemas import SamplesIn
from modelcycle.registry import VersionRef
from modelcycle.services import Services
from modelcycle.store.tables import TuneJobRow, utcnow
from modelcycle.testing.factories import admin_of, register
from modelcycle.tune.schemas import TUNE_JOB_KIND, TuneJob, TuneJobCreate
from modelcycle.types import BackendKind

OWNER = "ui-test-trainer"
LEASE_S = 600.0
CAPITALS = [("france", "paris"), ("spain", "madrid"), ("italy", "rome"), ("japan", "tokyo")]


def tunable_setup(services: Services, home: Path) -> Principal:
    """A tunable base ``toy@1`` (kind transformers, a directory) and dataset ``capitals@1``."""
    admin = admin_of(services).principal
    source = home / "toy-base"
    source.mkdir(parents=True, exist_ok=True)
    register(services, admin, "toy", source=str(source), backend=BackendKind.TRANSFORMERS,
             params={})  # fmt: skip
    samples = [
        {"messages": [{"role": "user", "content": f"capital of {country}"}], "expected": city}
        for country, city in CAPITALS
    ]
    services.datasets.import_samples(admin, "capitals", SamplesIn(samples=samples))
    return admin


def start_job(services: Services, principal: Principal, **hyperparameters: object) -> TuneJob:
    """Queue an SFT job of ``toy@1`` on ``capitals``."""
    body = TuneJobCreate.model_validate(
        {"base": "toy@1", "dataset": "capitals", "hyperparameters": hyperparameters}
    )
    return services.tune.create(principal, body)


class FakeTraining:
    """Holds the job's lease and reports steps, losses and the end like the trainer."""

    def __init__(self, services: Services, job: TuneJob, *, total_steps: int = 40, epochs: int = 4):
        self.services, self.job, self.total = services, job, total_steps
        self.per_epoch = total_steps // epochs
        claimed = services.jobs.claim(OWNER, [TUNE_JOB_KIND], LEASE_S)
        assert claimed is not None, "no job to claim"
        assert claimed.id == job.job_id, "another job was claimed"
        self.job_id = claimed.id
        self.log("training data: 4 examples (0 duplicates and 0 examples overlapping ...)")
        self.log(
            f"training on 4 examples (0 for validation): {total_steps} steps over {epochs} epochs"
        )

    def log(self, message: str, *, level: str = "info") -> None:
        """One line of the job's log."""
        self.services.jobs.log(self.job_id, message, level=level)

    def step(self, step: int, train_loss: float, val_loss: float | None = None) -> None:
        """A reporting step: its metric point, then the fraction done."""
        data: dict[str, float] = {
            "step": step,
            "epoch": round(step / self.per_epoch, 4),
            "train_loss": train_loss,
            "learning_rate": 0.02,
        }
        if val_loss is not None:
            data["val_loss"] = val_loss
        shown = ", ".join(f"{k}={v:.4g}" for k, v in data.items() if isinstance(v, float))
        self.services.jobs.log(self.job_id, f"step {step}: {shown}", level="metric", data=data)
        self.services.jobs.report_progress(self.job_id, OWNER, step / self.total, {}, LEASE_S)

    def succeed(self, principal: Principal) -> int:
        """Register the tuned version as the job does, record it, finish; its number."""
        version = register(
            self.services, principal, "toy", source=self.job.base, backend=BackendKind.TRANSFORMERS,
            params={"adapter": "/tmp/adapter"}, parent=VersionRef(model="toy", version=1),
        ).version  # fmt: skip
        with self.services.store.write() as session:
            row = session.execute(
                select(TuneJobRow).where(TuneJobRow.public_id == self.job.id)
            ).scalar_one()
            row.status, row.finished_at = "succeeded", utcnow()
            row.result_model, row.result_version = "toy", version
            row.metrics = {"train_loss": 0.12, "val_loss": 0.2, "steps": self.total, "epochs": 4.0}
            row.trained_tokens = 1234
        self.log(f"registered toy@{version} (adapter /tmp/adapter)")
        self.services.jobs.finish(self.job_id, OWNER, {"status": "succeeded", "version": version})
        return version
