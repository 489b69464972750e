"""``client.online_eval``: score a sample of a deployment's traffic; read the scores back."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from modelcycle.client.calls import API, Call
from modelcycle.evaluate.online_schemas import (
    OnlineEvalConfig,
    OnlineEvalSet,
    OnlineScoreQuery,
    OnlineScores,
)

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client

_CONFIGS = TypeAdapter(list[OnlineEvalConfig])
PATH = f"{API}/evals/online"

ScorerArg = str | dict[str, Any]
"""A scorer by name (``"json_valid"``) or with options (``{"name": ..., "options": {...}}``)."""


def _scorer(spec: ScorerArg) -> dict[str, Any]:
    return {"name": spec} if isinstance(spec, str) else dict(spec)


def list_call() -> Call[list[OnlineEvalConfig]]:
    """``GET /api/v1/evals/online``."""
    return Call("GET", PATH, _CONFIGS.validate_python)


def get_call(deployment: str) -> Call[OnlineEvalConfig]:
    """``GET /api/v1/evals/online/{deployment}``."""
    return Call("GET", f"{PATH}/{deployment}", OnlineEvalConfig.model_validate)


def set_call(
    deployment: str, sample_rate: float | str, scorers: Sequence[ScorerArg], enabled: bool
) -> Call[OnlineEvalConfig]:
    """``PUT /api/v1/evals/online/{deployment}`` (validated here: a typo fails before sending)."""
    body = OnlineEvalSet.model_validate(
        {"sample_rate": sample_rate, "scorers": [_scorer(s) for s in scorers], "enabled": enabled}
    )
    return Call(
        "PUT",
        f"{PATH}/{deployment}",
        OnlineEvalConfig.model_validate,
        json=body.model_dump(mode="json"),
    )


def delete_call(deployment: str) -> Call[None]:
    """``DELETE /api/v1/evals/online/{deployment}``."""
    return Call("DELETE", f"{PATH}/{deployment}", lambda _body: None)


def scores_call(
    deployment: str,
    start: datetime | None,
    end: datetime | None,
    bucket_s: int | None,
    version: int | None,
    scorer: str | None,
) -> Call[OnlineScores]:
    """``GET /api/v1/evals/online/{deployment}/scores``."""
    fields = {
        "start": start,
        "end": end,
        "bucket_s": bucket_s,
        "version": version,
        "scorer": scorer,
    }
    query = OnlineScoreQuery.model_validate({k: v for k, v in fields.items() if v is not None})
    return Call(
        "GET",
        f"{PATH}/{deployment}/scores",
        OnlineScores.model_validate,
        params=query.model_dump(mode="json", exclude_none=True),
    )


class OnlineEval:
    """Online evaluation of deployments (maintainers configure, viewers read)."""

    def __init__(self, client: Client):
        self._c = client

    def list(self) -> builtins.list[OnlineEvalConfig]:
        """Every configuration of the project."""
        return self._c.run(list_call())

    def get(self, deployment: str) -> OnlineEvalConfig:
        """One deployment's configuration; ``NotFound`` when it has none."""
        return self._c.run(get_call(deployment))

    def set(
        self,
        deployment: str,
        *,
        sample_rate: float | str,
        scorers: Sequence[ScorerArg],
        enabled: bool = True,
    ) -> OnlineEvalConfig:
        """Score ``sample_rate`` (0.1 or ``"10%"``) of ``deployment``'s traces with ``scorers``."""
        return self._c.run(set_call(deployment, sample_rate, scorers, enabled))

    def delete(self, deployment: str) -> None:
        """Stop scoring a deployment; its scores stay."""
        self._c.run(delete_call(deployment))

    def scores(
        self,
        deployment: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket_s: int | None = None,
        version: int | None = None,
        scorer: str | None = None,
    ) -> OnlineScores:
        """Count, errors and mean of each scorer per version and bucket (default: 24 hours)."""
        return self._c.run(scores_call(deployment, start, end, bucket_s, version, scorer))


class AsyncOnlineEval:
    """Online evaluation of deployments (maintainers configure, viewers read)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def list(self) -> builtins.list[OnlineEvalConfig]:
        """Every configuration of the project."""
        return await self._c.run(list_call())

    async def get(self, deployment: str) -> OnlineEvalConfig:
        """One deployment's configuration; ``NotFound`` when it has none."""
        return await self._c.run(get_call(deployment))

    async def set(
        self,
        deployment: str,
        *,
        sample_rate: float | str,
        scorers: Sequence[ScorerArg],
        enabled: bool = True,
    ) -> OnlineEvalConfig:
        """Score ``sample_rate`` (0.1 or ``"10%"``) of ``deployment``'s traces with ``scorers``."""
        return await self._c.run(set_call(deployment, sample_rate, scorers, enabled))

    async def delete(self, deployment: str) -> None:
        """Stop scoring a deployment; its scores stay."""
        await self._c.run(delete_call(deployment))

    async def scores(
        self,
        deployment: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket_s: int | None = None,
        version: int | None = None,
        scorer: str | None = None,
    ) -> OnlineScores:
        """Count, errors and mean of each scorer per version and bucket (default: 24 hours)."""
        return await self._c.run(scores_call(deployment, start, end, bucket_s, version, scorer))
