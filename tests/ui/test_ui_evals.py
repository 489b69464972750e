"""Evaluations pages: runs listed, a run started from the form, its report, cancelling it.

The targets are mock versions: ``echo`` says the prompt back and ``paris``
always answers "Paris", over 12 samples that all expect "Paris" and of which
every third *is* "Paris" — so echo's exact-match rate is 4/12 = 33.3%, paris's
is 100%, and paris beats echo on 8 samples and ties on 4.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRun, EvalRunCreate, ScorerSpec
from modelcycle.jobs import Worker
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair, make_key, register
from modelcycle.types import Role
from ui.conftest import PageClient, page_client

PARIS = "Paris"
SAMPLE_ROW = re.compile(r'<tr class="[a-z ]*">\s*<th scope="row" class="num">')


@dataclass
class Env:
    services: Services
    admin: KeyPair


def add_dataset(
    services: Services, project_id: int, *, count: int = 12, name: str = "cities"
) -> None:
    """``count`` samples expecting "Paris"; every third prompt is "Paris" itself."""
    made = []
    for i in range(count):
        text = PARIS if i % 3 == 0 else f"city number {i}"
        made.append(SampleIn({"messages": [{"role": "user", "content": text}]}, PARIS, {}))
    with services.store.write() as session:
        write_version(session, project_id, name, made, source="import", actor="test")


@pytest.fixture
def env(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[Env]:
    services, admin = modelcycle_services, modelcycle_admin.principal
    register(services, admin, "echo", source="mock://echo")
    register(services, admin, "paris", source=f"mock://script?reply={PARIS}")
    services.deployments.create(
        admin, DeploymentSpec(name="echo-dep", routes=[Route(target="echo@1", weight=100)])
    )
    add_dataset(services, admin.project_id)
    yield Env(services, modelcycle_admin)
    asyncio.run(services.gateway.aclose())


def start(env: Env, **overrides: Any) -> EvalRun:
    values: dict[str, Any] = {
        "dataset": "cities",
        "targets": ["echo-dep", "paris@1"],
        "scorers": [ScorerSpec(name="exact_match"), ScorerSpec(name="rouge_l")],
        "gates": ["exact_match>=0.5", "delta(rouge_l)<=0"],
    }
    values.update(overrides)
    return env.services.evals.create(env.admin.principal, EvalRunCreate(**values))


def work(services: Services) -> None:
    """Run the queued evaluation jobs in process, as the background worker would."""
    worker = Worker(services.jobs, {"eval.run": services.evals.handle_job})
    while worker.run_once():
        pass


def runs(env: Env) -> list[EvalRun]:
    return list(env.services.evals.list(env.admin.principal).items)


def valid_form(**overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "dataset": "cities",
        "targets": ["echo-dep"],
        "other_targets": "paris@1",
        "scorers": ["exact_match", "rouge_l"],
        "gates": "exact_match>=0.5\n",
    }
    form.update(overrides)
    return form


# -- a finished run -------------------------------------------------------------------------


def test_list_shows_a_finished_run_with_its_gates(env: Env, ui: PageClient) -> None:
    run = start(env)
    work(env.services)

    page = ui.get("/evals")

    assert page.status_code == 200
    html = page.text
    assert f'href="/evals/{run.id}"' in html
    assert "cities@1" in html
    assert "echo-dep" in html
    assert "paris@1" in html
    assert "exact_match, rouge_l" in html
    assert '<span class="badge succeeded">succeeded</span>' in html
    assert "100%" in html  # progress
    # gates judge the candidate paris@1: exact_match>=0.5 holds, delta(rouge_l)<=0 does not
    assert '<span class="badge fail">1 failed</span>' in html
    assert '<span class="muted">1 of 2 passed</span>' in html
    assert "data-refresh" not in html.split('id="runs-live"')[1].split(">")[0]


def test_run_page_shows_aggregates_comparison_gates_and_samples(env: Env, ui: PageClient) -> None:
    run = start(env)
    work(env.services)

    page = ui.get(f"/evals/{run.id}")

    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Evaluation run" in html
    assert 'data-run-finished="succeeded"' in html
    assert "data-refresh" not in html.split('id="run-live"')[1].split(">")[0]
    # aggregates per target x scorer, with 95% intervals
    assert re.search(
        r'<th scope="row">echo-dep</th><td>exact_match</td>\s*'
        r'<td class="num agg-estimate">33.3%</td>\s*<td>\[\d',
        html,
    )
    assert re.search(
        r'<th scope="row">paris@1</th><td>exact_match</td>\s*'
        r'<td class="num agg-estimate">100.0%</td>',
        html,
    )
    # the gates judge the candidate: paris@1 reaches 0.5 but does beat echo-dep on rouge_l
    assert re.search(
        r"delta\(rouge_l\)&lt;=0</code></th><td>paris@1</td>\s*"
        r'<td><span class="badge fail">fail</span>',
        html,
    )
    assert re.search(
        r"exact_match\)?&gt;=0.5</code></th><td>paris@1</td>\s*"
        r'<td><span class="badge pass">pass</span>',
        html,
    )
    assert "gates failed" in html
    # the paired comparison: paris wins 8 samples, ties 4, loses none, +66.7 pp
    assert "Comparisons with the baseline <code>echo-dep</code>" in html
    comparisons = html.split("Comparisons with the baseline")[1].split("</table>")[0]
    row = re.search(
        r'<th scope="row">paris@1</th><td>exact_match</td>(.*?)</tr>', comparisons, re.S
    )
    assert row is not None
    assert "+66.7 pp" in row.group(1)  # 100% - 33.3%
    assert "8 / 4 / 0</td>" in row.group(1)
    assert "odds ratio" in row.group(1)
    # charts drawn by the report's SVG code
    assert '<svg class="chart"' in html
    assert "Mean exact_match per target" in html
    # samples: inputs, expected answers, both answers and their scores, flags
    assert "Improvements (8)" in html
    assert "Regressions (0)" in html
    assert "All (12)" in html
    assert len(SAMPLE_ROW.findall(html)) == 12
    assert "city number 1" in html
    assert "exact_match: 1" in html
    assert "exact_match: 0" in html
    assert '<span class="badge verdict better">better</span>' in html


def test_sample_filter_and_pages(env: Env, ui: PageClient) -> None:
    add_dataset(env.services, env.admin.principal.project_id, count=25, name="many")
    run = start(env, dataset="many", gates=[])
    work(env.services)

    first = ui.get(f"/evals/{run.id}")
    second = ui.get(f"/evals/{run.id}?page=2")
    improved = ui.get(f"/evals/{run.id}?show=improvement")
    regressed = ui.get(f"/evals/{run.id}?show=regression")

    assert len(SAMPLE_ROW.findall(first.text)) == 20
    assert "Page 1 of 2 (25 samples)" in first.text
    assert f'href="/evals/{run.id}?show=all&amp;page=2#samples"' in first.text
    assert len(SAMPLE_ROW.findall(second.text)) == 5
    assert "Page 2 of 2" in second.text
    assert "Previous page" in second.text
    # 25 samples, 9 of them "Paris" (0, 3, ... 24): paris improves on the other 16
    assert len(SAMPLE_ROW.findall(improved.text)) == 16
    assert all("improvement" in row for row in re.findall(r'<tr class="([a-z ]*)">', improved.text))
    assert "No sample is flagged regression." in regressed.text
    assert ui.get(f"/evals/{run.id}?page=3").status_code == 400
    assert ui.get(f"/evals/{run.id}?show=nonsense").status_code == 422


def test_recorded_text_is_escaped(env: Env, ui: PageClient) -> None:
    with env.services.store.write() as session:
        write_version(
            session,
            env.admin.principal.project_id,
            "xss",
            [SampleIn({"prompt": "<script>alert(1)</script>"}, "<b>bold</b>", {})],
            source="import",
            actor="test",
        )
    run = start(env, dataset="xss", targets=["echo-dep"], gates=[])
    work(env.services)

    html = ui.get(f"/evals/{run.id}").text

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


# -- starting a run -------------------------------------------------------------------------


def test_start_form_lists_datasets_targets_and_scorers(env: Env, ui: PageClient) -> None:
    html = ui.get("/evals").text

    assert "Start an evaluation" in html
    assert '<option value="cities">cities (latest v1, 12 samples)</option>' in html
    assert 'name="targets" value="echo-dep"' in html
    assert 'name="scorers" value="exact_match"' in html  # needs the expected answer
    assert 'name="scorers" value="latency"' in html  # reference-free
    assert "these need options:" in html
    assert "regex" in html
    assert '<label for="eval-dataset">' in html


def test_start_form_creates_a_run_that_the_page_then_reports(env: Env, ui: PageClient) -> None:
    response = ui.post("/evals", valid_form(name="nightly"))

    assert response.status_code == 303, response.text
    (created,) = runs(env)
    assert response.headers["location"].startswith(f"/evals/{created.id}?notice=")
    assert created.name == "nightly"
    assert created.dataset == "cities@1"
    assert created.targets == ["echo-dep", "paris@1"]
    assert [s.name for s in created.scorers] == ["exact_match", "rouge_l"]
    assert created.gates == ["exact_match>=0.5"]
    assert created.status == "queued"

    queued = ui.get(response.headers["location"])
    assert f"Run {created.id} queued on cities@1." in queued.text
    assert '<div id="run-live" data-refresh="3"' in queued.text
    assert "<progress" in queued.text

    work(env.services)
    done = ui.get(f"/evals/{created.id}")
    assert 'data-run-finished="succeeded"' in done.text
    assert "100.0%" in done.text
    assert "33.3%" in done.text


def test_start_with_version_options_and_limit(env: Env, ui: PageClient) -> None:
    form = valid_form(
        version="1",
        scorers=["exact_match"],
        scorer_options='regex {"pattern": "^Par"}',
        gates="",
        limit="5",
    )
    assert ui.post("/evals", form).status_code == 303
    (created,) = runs(env)
    assert created.dataset == "cities@1"
    assert [(s.name, s.options) for s in created.scorers] == [
        ("exact_match", {}),
        ("regex", {"pattern": "^Par"}),
    ]
    assert created.params["limit"] == 5


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"dataset": "nope"}, 404, "nope"),
        ({"scorers": []}, 400, "choose at least one scorer"),
        ({"scorers": ["no_such_scorer"]}, 400, "unknown scorer"),
        ({"targets": [], "other_targets": ""}, 400, "choose at least one target"),
        ({"other_targets": "ghost-deployment"}, 404, "ghost-deployment"),
        ({"gates": "exact_match>>1"}, 400, "gate"),
        ({"version": "x"}, 400, "version must be a whole number"),
        ({"limit": "-3"}, 400, "sample limit"),
        ({"scorer_options": "regex {not json"}, 400, "not valid JSON"),
        ({"name": "x" * 101}, 422, "at most 100 characters"),
    ],
)
def test_invalid_start_is_a_4xx_page_and_creates_nothing(
    env: Env, ui: PageClient, overrides: dict[str, object], status: int, message: str
) -> None:
    response = ui.post("/evals", valid_form(**overrides))

    assert response.status_code == status, response.text
    assert message in response.text
    assert '<p class="error" role="alert">' in response.text
    assert runs(env) == []


def test_start_without_csrf_is_refused(env: Env, ui: PageClient) -> None:
    response = ui.http.post("/evals", data=valid_form(), follow_redirects=False)

    assert response.status_code == 403
    assert runs(env) == []


# -- roles ----------------------------------------------------------------------------------


def test_viewer_sees_runs_but_cannot_start_or_cancel(env: Env) -> None:
    run = start(env)
    viewer_key = make_key(env.services, Role.VIEWER)
    viewer = page_client(env.services, viewer_key.key)
    with viewer.http:
        listing = viewer.get("/evals")
        assert listing.status_code == 200
        assert f'href="/evals/{run.id}"' in listing.text
        assert "Start an evaluation" not in listing.text
        assert "Cancel run" not in viewer.get(f"/evals/{run.id}").text
        assert "cannot cancel runs" in viewer.get(f"/evals/{run.id}/confirm-cancel").text

        started = viewer.post("/evals", valid_form())
        cancelled = viewer.post(f"/evals/{run.id}/cancel")

    assert started.status_code == 403
    assert cancelled.status_code == 403
    assert [r.id for r in runs(env)] == [run.id]
    assert env.services.evals.get(env.admin.principal, run.id).status == "queued"


# -- cancelling -----------------------------------------------------------------------------


def test_cancel_asks_for_confirmation_then_cancels(env: Env, ui: PageClient) -> None:
    run = start(env)
    page = ui.get(f"/evals/{run.id}")
    assert f'href="/evals/{run.id}/confirm-cancel"' in page.text

    confirm = ui.get(f"/evals/{run.id}/confirm-cancel")
    assert confirm.status_code == 200
    assert f'action="/evals/{run.id}/cancel"' in confirm.text
    assert "Confirm: cancel run" in confirm.text
    assert env.services.evals.get(env.admin.principal, run.id).status == "queued"

    response = ui.post(f"/evals/{run.id}/cancel")

    assert response.status_code == 303
    assert env.services.evals.get(env.admin.principal, run.id).status == "cancelled"
    after = ui.get(response.headers["location"])
    assert "cancelled; the answers it stored are kept" in after.text
    assert '<span class="badge cancelled">cancelled</span>' in after.text
    again = ui.post(f"/evals/{run.id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.text
    assert "nothing to cancel" in ui.get(f"/evals/{run.id}/confirm-cancel").text


def test_cancel_without_csrf_is_refused(env: Env, ui: PageClient) -> None:
    run = start(env)
    response = ui.http.post(f"/evals/{run.id}/cancel", follow_redirects=False)
    assert response.status_code == 403
    assert env.services.evals.get(env.admin.principal, run.id).status == "queued"


# -- bad addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/evals/999", 404),
        ("/evals/abc", 422),
        ("/evals/0", 422),
        ("/evals/999/confirm-cancel", 404),
        ("/evals?status=bogus", 422),
        ("/evals?cursor=nonsense", 400),
    ],
)
def test_bad_addresses_are_4xx_pages(env: Env, ui: PageClient, url: str, status: int) -> None:
    response = ui.get(url)
    assert response.status_code == status
    assert '<p class="error" role="alert">' in response.text


def test_a_finished_run_offers_its_standalone_report_to_save(env: Env, ui: PageClient) -> None:
    run = start(env)
    work(env.services)
    assert f'href="/evals/{run.id}/report" download' in ui.get(f"/evals/{run.id}").text
    report = ui.get(f"/evals/{run.id}/report")
    assert report.status_code == 200
    assert report.headers["content-disposition"] == f'attachment; filename="eval-{run.id}.html"'
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    assert "<!doctype html>" in report.text.lower()
    assert "paris@1" in report.text
    assert "33.3%" in report.text
    assert ui.get("/evals/999999/report").status_code == 404
