"""One run of a ``prompt-search`` tuning job: search, then register the winner on the same weights.

The search calls the base version through the gateway (``prompt_search_job``);
the winner becomes a new version of the same model with the base's source and
backend and the winning system prompt, few-shot examples and sampling
parameters in its params, with lineage (parent: the base; produced_by: the
job). An interrupted search starts again from the beginning on the next
attempt (its calls are cheap next to training); a version already registered
for the job is found again, never registered twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from modelcycle.errors import InvalidInput
from modelcycle.jobs import JobContext, JobInterrupted
from modelcycle.registry import Registry
from modelcycle.store import Store
from modelcycle.store.datasets import load_samples
from modelcycle.store.tables import ModelRow, ModelVersionRow, TuneJobRow, utcnow
from modelcycle.tune.job import TrainingJob
from modelcycle.tune.prompt_search_job import PromptSearchOutcome, prompt_search_job
from modelcycle.tune.service import job_principal

if TYPE_CHECKING:
    from modelcycle.plugins import EventBus
    from modelcycle.tune.service import TuneJobs


class PromptSearchJob(TrainingJob):
    """The handler's work for one claimed ``prompt-search`` job."""

    def __init__(
        self, tune: TuneJobs, store: Store, bus: EventBus, registry: Registry, context: JobContext
    ):
        super().__init__(tune, store, bus, registry, context)
        if tune.gateway is None or tune.score_factory is None:
            raise InvalidInput("prompt-search needs the gateway and the scorers of a server")
        self.gateway, self.score_factory = tune.gateway, tune.score_factory

    def _train_and_register(self) -> dict[str, object]:
        with self.store.read() as session:
            row = self._row(session)
            principal = job_principal(session, row.project_id, row.key_id)
            base = session.get(ModelVersionRow, row.base_version_id)
            model = session.get(ModelRow, base.model_id) if base is not None else None
            assert base is not None
            assert model is not None
            training = load_samples(session, row.dataset_version_id or 0)
            held_out = row.validation_dataset_version_id
            evaluation = load_samples(session, held_out) if held_out else training
            hyperparameters = dict(row.hyperparameters)
        outcome = prompt_search_job(
            gateway=self.gateway,
            principal=principal,
            base=f"{model.name}@{base.version}",
            eval_samples=evaluation,
            training_samples=training,
            hyperparameters=hyperparameters,
            score_factory=self.score_factory,
            report=self._report,
            should_stop=self._should_stop,
            metadata={"tune_job": self.public_id},
        )
        if outcome.result.stopped:
            if self.context.cancelled:
                with self.store.write() as session:
                    stopped = self._row(session)
                    stopped.status, stopped.finished_at = "cancelled", utcnow()
                return {"tune_job": self.public_id, "status": "cancelled"}
            raise JobInterrupted(f"{self.public_id}: stopped; the search starts again")
        return self._register_winner(model, base, outcome)

    def _report(self, fraction: float, metrics: dict[str, object], line: str) -> None:
        self.context.progress(fraction)
        self.context.log(line, data=dict(metrics))

    def _register_winner(
        self, model: ModelRow, base: ModelVersionRow, outcome: PromptSearchOutcome
    ) -> dict[str, object]:
        number, first = self._register_once(
            model, base, backend=base.backend, params=outcome.params, metrics=outcome.metrics
        )
        out = self._succeeded(
            model, base, number, first=first, metrics=outcome.metrics,
            artifacts={"search": outcome.result.as_json()},
        )  # fmt: skip
        self.context.log(f"registered {model.name}@{number} (the winning prompt)")
        return out


def is_prompt_search(store: Store, public_id: str) -> bool:
    """Whether the job ``public_id`` searches prompts (its handler is ``PromptSearchJob``)."""
    with store.read() as session:
        method = session.execute(
            select(TuneJobRow.method).where(TuneJobRow.public_id == public_id)
        ).scalar_one_or_none()
    return method == "prompt-search"
