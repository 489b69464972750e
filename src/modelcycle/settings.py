"""One ``Settings`` object, built at the edge (CLI, app factory) and passed down.

Every field can be set by a ``MODELCYCLE_<FIELD>`` environment variable or in a
YAML file given by ``MODELCYCLE_CONFIG`` / ``--config``. Precedence, highest
first: explicit arguments, environment, YAML file, defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from modelcycle.errors import InvalidInput


class ProjectLimits(BaseModel):
    """Rate limits of one project (per minute; ``None``: no limit of that kind)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    rpm: int | None = Field(default=None, ge=1)
    """Requests per minute of the whole project, every deployment and key together."""
    tpm: int | None = Field(default=None, ge=1)
    """Tokens per minute of the whole project."""
    key_rpm: int | None = Field(default=None, ge=1)
    """Requests per minute of each API key, all its deployments together."""
    key_tpm: int | None = Field(default=None, ge=1)
    """Tokens per minute of each API key, all its deployments together."""


class Settings(BaseSettings):
    """Configuration of a modelcycle server process."""

    model_config = SettingsConfigDict(
        env_prefix="MODELCYCLE_",
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".modelcycle")
    """Directory for the SQLite database, artifacts and caches."""

    database_url: str | None = None
    """SQLAlchemy URL; SQLite under ``home`` when unset. PostgreSQL:
    ``postgresql+psycopg://user@host/db``."""

    redis_url: str | None = None
    """Redis URL for limits and cache shared between processes; in-process when unset."""

    redis_key_prefix: str = Field(default="modelcycle:", max_length=100)
    """Prefix of every Redis key modelcycle writes (several installations can share a Redis)."""

    limits_on_redis_error: Literal["local", "open", "closed"] = "local"
    """What rate limits do while Redis is unreachable: ``local`` enforces them in each
    process alone, ``open`` lets every request through, ``closed`` answers 503."""

    project_rpm: int | None = Field(default=None, ge=1)
    """Default requests per minute of each project, every deployment and key together."""

    project_tpm: int | None = Field(default=None, ge=1)
    """Default tokens per minute of each project."""

    key_rpm: int | None = Field(default=None, ge=1)
    """Default requests per minute of each API key, all deployments together."""

    key_tpm: int | None = Field(default=None, ge=1)
    """Default tokens per minute of each API key, all deployments together."""

    project_limits: dict[str, ProjectLimits] = Field(default_factory=dict)
    """Limits of named projects, replacing the four defaults above for that project,
    e.g. ``{"acme": {"rpm": 600, "key_rpm": 60}}`` (JSON in the environment)."""

    cache_max_entries: int = Field(default=10_000, ge=1)
    """Most answers the in-process response cache keeps (least recently used go first)."""

    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Most bytes of answers the in-process response cache keeps."""

    admin_key: SecretStr | None = None
    """Bootstrap admin API key; generated and printed once on first start when unset."""

    # Length is checked where the key is used: a validation error would echo the value.
    secret_key: SecretStr | None = None
    """Key that encrypts stored secrets (upstream credentials): a Fernet key
    (``modelcycle secrets generate-key``) or any random string of 32+ characters;
    several, comma-separated, to rotate (the first encrypts, all decrypt). When unset,
    a key file is generated once under ``home`` (mode 0600). Set it when several
    servers share one database."""

    host: str = "127.0.0.1"
    """Interface the server listens on."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port the server listens on."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest accepted request body on the management API, in bytes."""

    otlp_max_body_bytes: int = Field(default=8 * 1_048_576, ge=1024)
    """Largest accepted body on ``POST /v1/traces`` (OTLP trace ingest), in bytes; a
    gzipped body may inflate to four times this."""

    register_default_model: bool = True
    """Register the embedded default model on first start."""

    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)
    """How long a SQLite writer waits for the database lock before failing."""

    log_level: str = "info"
    """Log level of the server: debug, info, warning or error."""

    auth_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)
    """Seconds an API key authenticated on ``/v1`` is served from memory (0: never).

    Bounds how long a key revoked through *another* server process keeps
    working here; a revocation made through this process applies at once."""

    auth_failure_limit: int = Field(default=20, ge=0, le=1_000_000)
    """Failed authentications (unknown, revoked or expired key, malformed
    ``Authorization`` header) one client address may make within
    ``auth_failure_window_s``; past it the address gets 429 for the rest of the
    window, even with a valid key (0: no limit). See docs/access.md."""

    auth_failure_window_s: float = Field(default=60.0, gt=0, le=86_400)
    """Seconds of the window ``auth_failure_limit`` counts in (it opens at an
    address's first failure)."""

    gc_freeze: bool = True
    """Freeze what is alive once the server has started (``gc.freeze``) so that the
    garbage collector's full passes stop rescanning it; measured to save tens of
    microseconds per request (docs/performance.md)."""

    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    """Allocations between young-generation collections in the server (Python's
    default is 700; 0 keeps it): request objects are freed by reference
    counting, so frequent collections cost CPU and find nothing."""

    malloc_keep_mb: int = Field(default=64, ge=0, le=1024)
    """Freed heap memory (MiB) that glibc keeps in the server and the trace writer for
    reuse instead of giving it back to the system at once (``M_TRIM_THRESHOLD``; 0
    keeps glibc's default, 128 KiB). Memory given back is faulted in again page by
    page when next needed: with tracing on, that was a page fault per request."""

    tracing: bool = True
    """Record every gateway request as a trace (``False`` turns recording off)."""

    trace_content: bool = True
    """Store request inputs and outputs on traces (``False``: metadata and counts only)."""

    trace_queue_size: int = Field(default=100_000, ge=1)
    """Traces waiting to be written, at most; beyond it new ones are dropped and counted
    (``modelcycle_traces_dropped_total``) so the request path never blocks."""

    trace_batch_size: int = Field(default=2_000, ge=1, le=50_000)
    """Spans written per database transaction, at most."""

    trace_flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often the trace writer wakes up to write what is queued. Each write has a
    fixed cost (the rollup fold and the commit) that the request path's process pays,
    so fewer, larger batches leave more CPU to requests; traces appear this much later
    (feedback for a trace still queued waits for it)."""

    trace_writer: Literal["process", "thread"] = "process"
    """Where ``modelcycle up`` stores traces: a child process (``modelcycle trace-writer``),
    so that redaction and database writes never hold the gateway's GIL, or a thread
    of the server itself. Every other process writes in a thread."""

    spill_replay_interval_s: float = Field(default=5.0, gt=0)
    """How often spans spilled to disk while the database was unavailable are retried."""

    worker: bool = True
    """``modelcycle up`` also runs the background worker (jobs, drift checks, alerts,
    retention) in its process tree."""

    alert_interval_s: float = Field(default=30.0, gt=0)
    """How often alert rules are evaluated by the worker."""

    online_eval_interval_s: float = Field(default=60.0, gt=0)
    """How often the worker scores newly sampled production traces (online evaluation)."""

    ray_address: str | None = Field(default=None, max_length=500)
    """Ray cluster to run tuning jobs on as Ray jobs instead of in a local subprocess of the
    worker: its dashboard (``http://head:8265``), ``auto`` (the cluster on this machine) or
    ``ray://host:10001``. See docs/tuning-ray.md."""
    ray_num_cpus: float = Field(default=2.0, gt=0, le=1024)
    """CPUs each tuning job reserves on the Ray cluster (also its torch threads)."""
    ray_num_gpus: float = Field(default=0.0, ge=0, le=64)
    """GPUs each tuning job reserves on the Ray cluster."""

    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """How long an alert webhook delivery may take before it counts as failed."""

    webhook_allow_private: bool = True
    """Allow alert webhooks to loopback and private addresses (set ``False`` where
    users who are not operators create alert rules)."""

    metrics_require_key: bool = False
    """Ask for a ``viewer`` key (or higher) on ``GET /metrics``. Off by default, like
    ``/healthz``: scrapers rarely carry credentials and the series hold counts and
    deployment names, never inputs, outputs, users or keys."""

    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Also export traces and request metrics to this OpenTelemetry collector over
    OTLP/HTTP, e.g. ``http://collector:4318`` (``/v1/traces`` and ``/v1/metrics`` are
    appended); needs ``pip install 'modelcycle[otel]'``. Unset: no export."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be one of debug, info, warning, error")
        return level

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, else SQLite under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelcycle.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win over the environment; the YAML file is loaded separately."""
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, an optional YAML file, the environment and overrides."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        file_values = _read_yaml(config_file)
    explicit = {key: value for key, value in overrides.items() if value is not None}

    class _WithFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, file_values))

    try:
        built = _WithFile(**explicit)
    except ValueError as exc:
        raise InvalidInput(f"invalid settings: {exc}") from exc
    return Settings.model_validate(built.model_dump())


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidInput(f"config file {path} must hold a mapping of setting: value")
    return {str(key): value for key, value in loaded.items()}
