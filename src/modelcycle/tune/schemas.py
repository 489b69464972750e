"""Public shapes of tuning: the job request, its hyperparameters, the job as the API shows it.

The OpenAI-compatible API (``/v1/fine_tuning/jobs``) maps onto the same job:
its ``model`` is ``base``, its ``training_file`` a ``file-...`` id instead of a
dataset, ``method.type`` ``supervised`` is ``sft-lora`` and ``dpo`` is ``dpo``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from modelcycle.types import RequestBody

TuneMethod = Literal["sft-lora", "dpo", "prompt-search"]
TuneStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]

TUNE_JOB_KIND = "tune.run"
"""The queue job kind every tuning job runs as."""


class Hyperparameters(RequestBody):
    """Training settings; every field has a default that works for a small model on a CPU."""

    epochs: int = Field(default=3, ge=1, le=100)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    lora_r: int = Field(default=8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, le=1024)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = Field(
        default=None,
        max_length=32,
        description="Module names LoRA adapts; default: the attention projections "
        "(q_proj, k_proj, v_proj, o_proj).",
    )
    max_length: int = Field(default=512, ge=16, le=32_768, description="Tokens per example.")
    batch_size: int = Field(default=4, ge=1, le=512)
    gradient_accumulation: int = Field(default=1, ge=1, le=256)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    validation_split: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of the training data held out for validation loss when no "
        "validation dataset is given.",
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Stop after this many evaluations without a better validation loss.",
    )
    eval_every_steps: int = Field(default=50, ge=1)
    checkpoint_every_steps: int = Field(default=50, ge=1)
    beta: float = Field(default=0.1, gt=0, le=10, description="DPO only: the KL penalty.")
    merge: bool = Field(
        default=False, description="Also save the adapter merged into the base weights."
    )
    # prompt-search only
    budget: int = Field(
        default=200, ge=1, le=100_000, description="prompt-search: at most this many model calls."
    )
    candidates: dict[str, Any] | None = Field(
        default=None,
        description="prompt-search: {'system_prompts': [...], 'few_shot': [[...]], "
        "'temperature': [...], 'scorer': 'exact_match'}.",
    )


class TuneJobCreate(RequestBody):
    """Start a tuning job (``POST /api/v1/tune/jobs``)."""

    method: TuneMethod = "sft-lora"
    base: str = Field(
        min_length=1, max_length=200, description="The base version: NAME@VERSION or NAME@alias."
    )
    dataset: str | None = Field(
        default=None, max_length=100, description="Training data: a dataset NAME or NAME@N."
    )
    validation_dataset: str | None = Field(default=None, max_length=100)
    training_file: str | None = Field(
        default=None, max_length=40, description="Or an uploaded file-... id (OpenAI style)."
    )
    validation_file: str | None = Field(default=None, max_length=40)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    eval_datasets: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Datasets the new version is compared with its parent on after training; "
        "the training data is decontaminated against them (n-gram overlap).",
    )
    suffix: str | None = Field(
        default=None,
        max_length=40,
        pattern=r"^[A-Za-z0-9._\-]+$",
        description="Appended to the registered version's description.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TuneJobCreate:
        if (self.dataset is None) == (self.training_file is None):
            raise ValueError("give exactly one of 'dataset' and 'training_file'")
        return self


class TuneCheckpoint(BaseModel):
    """A checkpoint a job saved."""

    id: str
    step: int
    metrics: dict[str, Any]
    created_at: datetime


class TuneJob(BaseModel):
    """A tuning job as the API returns it."""

    id: str
    """``ftjob-...``."""
    job_id: int | None
    """The queue job (``/api/v1/jobs/{id}``: events, logs, progress)."""
    method: TuneMethod
    base: str
    dataset: str | None
    validation_dataset: str | None
    training_file: str | None
    validation_file: str | None
    hyperparameters: Hyperparameters
    eval_datasets: list[str]
    suffix: str | None
    status: TuneStatus
    progress: float | None = None
    result_model: str | None
    result_version: int | None
    artifacts: dict[str, Any]
    metrics: dict[str, Any]
    trained_tokens: int | None
    eval_run_id: int | None
    error: str | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None
