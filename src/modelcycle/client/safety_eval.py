"""``client.safety_eval``: start the built-in red-team and bias runs; read their reports.

Follow a started run with ``client.evals.wait(run.id)`` like any other run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelcycle.client.calls import API, Call
from modelcycle.evaluate.bias import BiasReport
from modelcycle.evaluate.redteam import RedteamReport
from modelcycle.evaluate.schemas import EvalRun

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client


def start_call(kind: str, target: str, concurrency: int) -> Call[EvalRun]:
    """``POST /api/v1/evals/redteam`` or ``/bias``."""
    body = {"target": target, "concurrency": concurrency}
    return Call("POST", f"{API}/evals/{kind}", EvalRun.model_validate, json=body)


def _target(target: str | None) -> dict[str, Any]:
    return {"target": target} if target is not None else {}


def bias_report_call(run_id: int, target: str | None) -> Call[BiasReport]:
    """``GET /api/v1/evals/{run_id}/bias``."""
    path = f"{API}/evals/{run_id}/bias"
    return Call("GET", path, BiasReport.model_validate, params=_target(target))


def redteam_report_call(run_id: int, target: str | None) -> Call[RedteamReport]:
    """``GET /api/v1/evals/{run_id}/redteam``."""
    path = f"{API}/evals/{run_id}/redteam"
    return Call("GET", path, RedteamReport.model_validate, params=_target(target))


class SafetyEval:
    """Built-in safety evaluations (maintainers start them, viewers read the reports)."""

    def __init__(self, client: Client):
        self._c = client

    def redteam(self, target: str, *, concurrency: int = 4) -> EvalRun:
        """Start the red-team suite against a deployment or ``NAME@VERSION``."""
        return self._c.run(start_call("redteam", target, concurrency))

    def bias(self, target: str, *, concurrency: int = 4) -> EvalRun:
        """Start the counterfactual bias probes against a deployment or ``NAME@VERSION``."""
        return self._c.run(start_call("bias", target, concurrency))

    def redteam_report(self, run_id: int, *, target: str | None = None) -> RedteamReport:
        """Pass rate per category of a finished red-team run."""
        return self._c.run(redteam_report_call(run_id, target))

    def bias_report(self, run_id: int, *, target: str | None = None) -> BiasReport:
        """Group comparisons of a finished bias run (Holm-corrected)."""
        return self._c.run(bias_report_call(run_id, target))


class AsyncSafetyEval:
    """Built-in safety evaluations (maintainers start them, viewers read the reports)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def redteam(self, target: str, *, concurrency: int = 4) -> EvalRun:
        """Start the red-team suite against a deployment or ``NAME@VERSION``."""
        return await self._c.run(start_call("redteam", target, concurrency))

    async def bias(self, target: str, *, concurrency: int = 4) -> EvalRun:
        """Start the counterfactual bias probes against a deployment or ``NAME@VERSION``."""
        return await self._c.run(start_call("bias", target, concurrency))

    async def redteam_report(self, run_id: int, *, target: str | None = None) -> RedteamReport:
        """Pass rate per category of a finished red-team run."""
        return await self._c.run(redteam_report_call(run_id, target))

    async def bias_report(self, run_id: int, *, target: str | None = None) -> BiasReport:
        """Group comparisons of a finished bias run (Holm-corrected)."""
        return await self._c.run(bias_report_call(run_id, target))
