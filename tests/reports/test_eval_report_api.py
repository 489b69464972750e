"""The evaluation report end to end: a real run on two versions, then the API, SDK and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.access import Principal
from modelcycle.api import create_app
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRunCreate
from modelcycle.services import Services, build_worker
from modelcycle.testing import KeyPair, make_key, make_project, register
from modelcycle.types import Role

SCRIPT = "<script>alert('pwned')</script>"
QUESTIONS = [
    ("What is 2+2?", "4"),
    ("Capital of France?", "Paris"),
    ("Say ok.", "ok"),
]
V1 = ["4", "Paris", "no"]
V2 = ["4", "Lyon", f"{SCRIPT} ok"]
"""Version 2 regresses on the second question and improves on the third (rouge_l)."""


def finished_run(services: Services, admin: Principal) -> int:
    """Run qa-bot@1 (baseline) and @2 on three questions; return the finished run's id."""
    for replies in (V1, V2):
        register(services, admin, "qa-bot", source="mock://script", params={"replies": replies})
    samples = [SampleIn({"prompt": q}, expected=a) for q, a in QUESTIONS]
    with services.store.write() as session:
        write_version(session, admin.project_id, "qa", samples, source="test", actor=admin.key_name)
    body = EvalRunCreate.model_validate(
        {
            "dataset": "qa",
            "targets": ["qa-bot@1", "qa-bot@2"],
            "scorers": [{"name": "exact_match"}, {"name": "rouge_l"}],
            "gates": ["exact_match>=0.9"],
            "name": "nightly",
            "concurrency": 1,  # the mock's scripted replies come in sample order
        }
    )
    run_id = services.evals.create(admin, body).id
    worker = build_worker(services, run_schedules=False)
    while worker.run_once():
        pass
    assert services.evals.get(admin, run_id).status == "succeeded"
    return run_id


@pytest.fixture
def run_id(modelcycle_services: Services, modelcycle_admin: KeyPair) -> int:
    return finished_run(modelcycle_services, modelcycle_admin.principal)


@pytest.fixture
async def api(modelcycle_services: Services) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(modelcycle_services)),
        base_url="http://modelcycle.test",
    )


async def test_the_html_report_of_a_real_run(
    api: httpx.AsyncClient, run_id: int, modelcycle_services: Services
) -> None:
    viewer = make_key(modelcycle_services, Role.VIEWER)
    async with api:
        response = await api.get(
            f"/api/v1/evals/{run_id}/report", headers={"Authorization": f"Bearer {viewer.key}"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'"
    )
    assert "content-disposition" not in response.headers
    page = response.text
    assert "<h1>Evaluation report: nightly</h1>" in page
    assert "<td>qa@1</td>" in page
    assert SCRIPT not in page
    assert "&lt;script&gt;" in page
    # The candidate passes 1 of 3 on exact_match (the baseline 2 of 3): the gate fails.
    assert '<td class="fail">FAIL</td>' in page
    assert "<td>qa-bot@2</td><td>exact_match</td><td>33.3%</td>" in page
    assert "<td>qa-bot@1</td><td>exact_match</td><td>66.7%</td>" in page
    assert page.count('<tr class="sample regression">') == 1
    assert page.count('<tr class="sample improvement">') == 1
    assert "Regressions (1)" in page


async def test_json_and_download(
    api: httpx.AsyncClient, run_id: int, modelcycle_admin: KeyPair
) -> None:
    headers = {"Authorization": f"Bearer {modelcycle_admin.key}"}
    async with api:
        data = await api.get(
            f"/api/v1/evals/{run_id}/report", params={"format": "json"}, headers=headers
        )
        saved = await api.get(
            f"/api/v1/evals/{run_id}/report", params={"download": "1"}, headers=headers
        )
        bad = await api.get(
            f"/api/v1/evals/{run_id}/report", params={"format": "pdf"}, headers=headers
        )
    assert data.status_code == 200
    report = data.json()
    assert report["run"]["summary"]["dataset"] == "qa@1"
    assert report["baseline"] == "qa-bot@1"
    assert [s["flags"] for s in report["samples"]] == [[], ["regression"], ["improvement"]]
    assert report["samples"][2]["answers"][1]["output"] == f"{SCRIPT} ok"
    exact = next(d for d in report["differences"] if d["scorer"] == "exact_match")
    assert (exact["better"], exact["same"], exact["worse"]) == (0, 2, 1)
    assert saved.headers["content-disposition"] == f'attachment; filename="eval-{run_id}.html"'
    assert saved.text.startswith("<!DOCTYPE html>")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "format"


async def test_another_projects_run_is_not_found(
    api: httpx.AsyncClient, run_id: int, modelcycle_services: Services
) -> None:
    other = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services, "other"))
    headers = {"Authorization": f"Bearer {other.key}"}
    async with api:
        theirs = await api.get(f"/api/v1/evals/{run_id}/report", headers=headers)
        missing = await api.get(f"/api/v1/evals/{run_id + 1000}/report", headers=headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"].replace(str(run_id), "N") == missing.json()["error"][
        "message"
    ].replace(str(run_id + 1000), "N")


@pytest.fixture
def cli(live_server: LiveServer) -> tuple[Cli, int]:
    services = live_server.services
    admin = services.access.authenticate(live_server.admin_key)
    return Cli(live_server.url, live_server.admin_key), finished_run(services, admin)


def test_the_cli_writes_the_report(cli: tuple[Cli, int], tmp_path: Path) -> None:
    runner, run_id = cli
    out = tmp_path / "out"
    out.mkdir()
    page = out / "report.html"
    result = runner("report", "eval", str(run_id), "--out", str(page))
    assert result.exit_code == 0, result.output
    assert str(page) in result.stdout
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<h1>Evaluation report: nightly</h1>" in text
    assert SCRIPT not in text
    shown = runner("report", "eval", str(run_id), "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["samples_total"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no temp files


@pytest.mark.parametrize(
    ("args", "naming"),
    [
        (("999999",), ("evaluation run 999999 not found",)),
        (("--format", "pdf"), ("--format", "html, json")),
        (("--out", "/nonexistent-dir/r.html"), ("cannot write", "--out")),
    ],
)
def test_cli_mistakes_are_one_line_errors(
    cli: tuple[Cli, int], args: tuple[str, ...], naming: tuple[str, ...]
) -> None:
    runner, run_id = cli
    full = args if args[0] == "999999" else (str(run_id), *args)
    runner.fails("report", "eval", *full, naming=naming)


def test_the_sdk_reads_and_renders_the_report(cli: tuple[Cli, int]) -> None:
    from modelcycle.client import Client

    runner, run_id = cli
    with Client(runner.url, runner.key) as client:
        report = client.reports.eval(run_id)
        page = client.reports.eval(run_id, format="html")
    assert report.samples_total == 3
    assert report.flag_counts == {"regression": 1, "improvement": 1, "error": 0}
    assert page.startswith("<!DOCTYPE html>")
    assert "Regressions (1)" in page
