"""Monitoring page: time-series charts from rollups, drift reports and their evidence, alerts.

Traffic is written through the span writer (so it is rolled up) at times relative
to the real clock, because the page's ranges end now.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.monitor.drift_schemas import DriftCheck
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role
from ui.browser_steps import sign_in, wait_for, wait_for_text
from ui.conftest import PageClient, page_client

ENGLISH = [
    "What is the capital of France?",
    "How do I get started with Python?",
    "Can you tell me something about tea?",
    "Why do people like music?",
]
FRENCH = [
    "Quelle est la meilleure façon de découvrir la musique pour les débutants ?",
    "Pourquoi est-ce que tout le monde parle de Python en ce moment, et qu'en penses-tu ?",
    "Peux-tu m'expliquer en détail comment fonctionne le thé et pourquoi c'est important ?",
]
REFUSAL = "I'm sorry, but I can't help with that request."


def span(
    project_id: int,
    at: datetime,
    *,
    deployment: str = "chat",
    version: int = 1,
    status: str = "ok",
    latency_ms: float = 120.0,
    prompt: str = "What is the capital of France?",
    answer: str = "Paris.",
) -> SpanRecord:
    return SpanRecord(
        project_id=project_id,
        trace_id=uuid.uuid4().hex,
        span_id=uuid.uuid4().hex[:16],
        name=f"chat.completions {deployment}",
        kind="llm",
        source="gateway",
        start_time=at,
        end_time=at + timedelta(milliseconds=latency_ms),
        duration_ms=latency_ms,
        ttft_ms=latency_ms / 2,
        status=status,
        deployment=deployment,
        model="bot",
        version=version,
        route="primary",
        input_tokens=10,
        output_tokens=20,
        cost=0.002,
        input=json.dumps([{"role": "user", "content": prompt}]),
        output=answer,
    )


@pytest.fixture
def services(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Services:
    """Two deployments of ``bot`` v1 (and v2 registered, for per-version series)."""
    admin = modelcycle_admin.principal
    register(modelcycle_services, admin, "bot")
    register(modelcycle_services, admin, "bot")
    for name in ("chat", "search"):
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        modelcycle_services.deployments.create(admin, spec)
    return modelcycle_services


@pytest.fixture
def traffic(services: Services, modelcycle_admin: KeyPair) -> Services:
    """Requests on both deployments and both versions over the last hour."""
    project = modelcycle_admin.principal.project_id
    now = datetime.now(UTC)
    spans = [span(project, now - timedelta(minutes=m)) for m in range(5, 50, 5)]
    spans += [span(project, now - timedelta(minutes=m), version=2) for m in (12, 22, 32)]
    spans += [span(project, now - timedelta(minutes=m), status="error") for m in (7, 17)]
    spans += [span(project, now - timedelta(minutes=m), deployment="search") for m in (8, 28)]
    services.recorder.writer.write(spans)
    return services


@contextmanager
def other_client(services: Services, role: Role) -> Iterator[PageClient]:
    client = page_client(services, make_key(services, role).key)
    with client.http:
        yield client


@pytest.fixture
def viewer_ui(services: Services) -> Iterator[PageClient]:
    with other_client(services, Role.VIEWER) as client:
        yield client


def rule_form(**overrides: str) -> dict[str, object]:
    values: dict[str, object] = {
        "name": "chat-errors",
        "metric": "error_rate",
        "op": ">",
        "threshold": "0.05",
        "window": "5m",
        "deployment": "chat",
        "min_requests": "1",
        "severity": "critical",
    }
    values.update(overrides)
    return values


def make_rule(services: Services, admin: KeyPair, **fields: object) -> int:
    values: dict[str, object] = {"name": "slow", "metric": "latency_p95_ms", "op": ">"}
    values |= {"threshold": 1000.0, **fields}
    return services.alerts.create(admin.principal, AlertRuleCreate.model_validate(values)).id


def rule_names(services: Services, admin: KeyPair) -> list[str]:
    return [rule.name for rule in services.alerts.list(admin.principal).items]


# -- time series ------------------------------------------------------------------------------


def test_charts_draw_one_line_per_deployment_and_totals_count_the_requests(
    ui: PageClient, traffic: Services
) -> None:
    page = ui.get("/monitoring?range=6h")

    assert page.status_code == 200
    html = page.text
    for title in (
        "Requests per second",
        "Error rate",
        "Latency p50",
        "Latency p95",
        "Latency p99",
        "Time to first token p50",
        "Time to first token p95",
        "Tokens (input + output) per bucket",
        "Cost (US cents) per bucket",  # 0.2 cents a request: under a dollar
        "Mean feedback score",
    ):
        assert f"<h3>{title}" in html
    requests_chart = html.split('id="chart-requests"')[1].split("</svg>")[0]
    assert "<svg" in requests_chart
    assert requests_chart.count('class="line s') + requests_chart.count('class="dot s') >= 2
    assert ">chat</text>" in requests_chart
    assert ">search</text>" in requests_chart
    totals = html.split('id="totals-h"')[1].split("</table>")[0]
    chat_row = totals.split(">chat</a>")[1].split("</tr>")[0]
    assert '<td class="num">14</td>' in chat_row  # 9 + 3 on v2 + 2 errors
    assert "14.3%" in chat_row  # 2 errors of 14
    assert "$0.0280" in chat_row  # 14 requests at $0.002


def test_one_deployment_is_split_by_model_version(ui: PageClient, traffic: Services) -> None:
    page = ui.get("/monitoring?deployment=chat&range=6h")

    assert page.status_code == 200
    assert "<h1>Monitoring: chat</h1>" in page.text
    chart = page.text.split('id="chart-latency_p95"')[1].split("</svg>")[0]
    assert ">bot v1</text>" in chart
    assert ">bot v2</text>" in chart
    assert ">search</text>" not in page.text.split('id="series-h"')[1].split("</section>")[0]


def test_without_traffic_the_charts_say_so(ui: PageClient, services: Services) -> None:
    page = ui.get("/monitoring")

    assert page.status_code == 200
    assert page.text.count("No data in this range.") == 10
    assert "No traffic in this range." in page.text


def test_an_unknown_deployment_is_a_404_page(ui: PageClient, services: Services) -> None:
    page = ui.get("/monitoring?deployment=ghost")

    assert page.status_code == 404
    assert "ghost" in page.text
    assert "Not found" in page.text


def test_an_unknown_drift_metric_is_a_400_page(ui: PageClient, services: Services) -> None:
    page = ui.get("/monitoring?drift_metric=shoe_size")

    assert page.status_code == 400
    assert "drift_metric must be one of" in page.text


# -- drift ------------------------------------------------------------------------------------


def write_windows(services: Services, project: int, now: datetime, n: int = 40) -> None:
    """English, short answers an hour before; French, long answers and refusals since."""
    spans = []
    for i in range(n):
        before = now - timedelta(hours=2) + timedelta(seconds=i * 80)
        spans.append(span(project, before, prompt=ENGLISH[i % 4], answer="Paris." * (1 + i % 3)))
        after = now - timedelta(hours=1) + timedelta(seconds=i * 80)
        answer = REFUSAL if i % 3 == 0 else "Voici une réponse détaillée. " * (8 + i % 5)
        spans.append(span(project, after, prompt=FRENCH[i % 3], answer=answer))
    services.recorder.writer.write(spans)


@pytest.fixture
def drift_report(services: Services, modelcycle_admin: KeyPair) -> int:
    now = datetime.now(UTC)
    write_windows(services, modelcycle_admin.principal.project_id, now)
    check = DriftCheck(
        deployment="chat",
        end=now,
        metrics=["input_length", "output_length", "language", "refusal_rate"],
    )
    report = services.drift.check(modelcycle_admin.principal, check)
    assert report.drifted
    return report.id


def test_a_drift_check_is_listed_with_its_metrics_and_charted(
    ui: PageClient, drift_report: int
) -> None:
    page = ui.get("/monitoring?drift_metric=language")

    assert page.status_code == 200
    drift = page.text.split('id="drift-h"')[1].split("</section>")[0]
    assert f'href="/monitoring/drift/{drift_report}">Report {drift_report}</a>' in drift
    row = drift.split("#metric-language")[1].split("</tr>")[0]
    assert "<strong>yes</strong>" in row
    assert '<span class="badge drift">drift</span>' in row
    assert "<td>chat</td>" in drift
    chart = drift.split('id="chart-drift"')[1].split("</svg>")[0]
    assert "Drift statistic of language over time" in chart
    assert ">chat</text>" in chart
    assert ">threshold</text>" in chart


def test_a_drift_report_shows_its_windows_and_evidence(ui: PageClient, drift_report: int) -> None:
    page = ui.get(f"/monitoring/drift/{drift_report}")

    assert page.status_code == 200
    html = page.text
    assert f"<h1>Drift report {drift_report}</h1>" in html
    assert "production from" in html
    language = html.split('id="metric-language"')[1].split("</section>")[0]
    assert '<th scope="row">fr</th>' in language
    assert "100.0%" in language  # every current prompt is French
    lengths = html.split('id="metric-input_length"')[1].split("</section>")[0]
    assert "Histogram" in lengths
    assert "and above" in lengths
    assert "<dt>current median</dt>" in lengths
    refusals = html.split('id="metric-refusal_rate"')[1].split("</section>")[0]
    assert "current examples" in refusals
    assert "I&#39;m sorry, but I can&#39;t help" in refusals


def test_a_missing_drift_report_is_a_404_and_a_bad_id_a_422(
    ui: PageClient, services: Services
) -> None:
    assert ui.get("/monitoring/drift/999").status_code == 404
    assert ui.get("/monitoring/drift/abc").status_code == 422


# -- alerts -----------------------------------------------------------------------------------


def test_the_form_creates_a_rule_that_the_page_lists_at_its_anchor(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    response = ui.post("/monitoring/alerts", rule_form())

    assert response.status_code == 303
    (rule,) = services.alerts.list(modelcycle_admin.principal).items
    assert (rule.name, rule.metric, rule.op, rule.threshold) == (
        "chat-errors",
        "error_rate",
        ">",
        0.05,
    )
    assert (rule.window_s, rule.deployment, rule.severity) == (300, "chat", "critical")
    assert response.headers["location"].endswith(f"#alert-{rule.id}")
    page = ui.get(response.headers["location"].split("#")[0])
    assert "Alert rule chat-errors created." in page.text
    row = page.text.split(f'id="alert-{rule.id}"')[1].split("</tr>")[0]
    assert "error_rate &gt; 0.05" in row
    assert "<td>5m</td>" in row
    assert '<span class="badge critical">critical</span>' in row
    assert '<span class="badge ok">ok</span>' in row
    assert "No rule has fired yet." in page.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Not A Name", "name:"),
        ("metric", "shoe_size", "unknown metric"),
        ("op", "=~", "op:"),
        ("threshold", "lots", "threshold:"),
        ("window", "forever", "window must be one of"),
        ("window", "10", "window_s:"),
        ("severity", "apocalyptic", "severity:"),
        ("deployment", "ghost", "deployment &#39;ghost&#39; not found"),
        ("min_requests", "0", "min_requests:"),
    ],
)
def test_an_invalid_rule_is_a_400_page_and_creates_nothing(
    ui: PageClient,
    services: Services,
    modelcycle_admin: KeyPair,
    field: str,
    value: str,
    message: str,
) -> None:
    response = ui.post("/monitoring/alerts", rule_form(**{field: value}))

    assert response.status_code == 400
    assert message in response.text
    assert "Cannot do that" in response.text
    assert rule_names(services, modelcycle_admin) == []


def test_a_missing_field_is_a_422_page(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    form = rule_form()
    del form["threshold"]

    response = ui.post("/monitoring/alerts", form)

    assert response.status_code == 422
    assert "threshold" in response.text
    assert rule_names(services, modelcycle_admin) == []


def test_a_second_rule_with_the_same_name_is_a_409(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    make_rule(services, modelcycle_admin, name="chat-errors")

    response = ui.post("/monitoring/alerts", rule_form(threshold="0.5"))

    assert response.status_code == 409
    (rule,) = services.alerts.list(modelcycle_admin.principal).items
    assert rule.threshold == 1000.0


def test_evaluating_fires_the_rule_and_its_history_is_shown(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    rule_id = make_rule(
        services, modelcycle_admin, name="errors", metric="error_rate", threshold=0.1
    )
    now = datetime.now(UTC)
    project = modelcycle_admin.principal.project_id
    services.recorder.writer.write(
        [span(project, now - timedelta(seconds=20), status="error") for _ in range(3)]
    )

    response = ui.post("/monitoring/alerts/evaluate")

    assert response.status_code == 303
    page = ui.get(response.headers["location"].split("#")[0])
    assert "Evaluated 1 rules: errors firing." in page.text
    row = page.text.split(f'id="alert-{rule_id}"')[1].split("</tr>")[0]
    assert '<span class="badge firing">firing</span>' in row
    assert '<td class="num">1</td>' in row  # every request failed
    latest = page.text.split(f'id="history-{rule_id}"')[1].split("</table>")[0]
    assert '<span class="badge firing">firing</span>' in latest
    assert "log: ok" in latest
    history = ui.get(f"/monitoring/alerts/{rule_id}")
    assert history.status_code == 200
    rows = history.text.split('id="history-h"')[1].split("</table>")[0]
    assert rows.count("<tr>") == 2  # the header and one transition
    assert '<span class="badge firing">firing</span>' in rows
    assert "log: ok" in rows


def test_deleting_goes_through_a_confirmation_page(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    rule_id = make_rule(services, modelcycle_admin)

    confirm = ui.get(f"/monitoring/alerts/{rule_id}/confirm-delete")
    assert confirm.status_code == 200
    assert f'action="/monitoring/alerts/{rule_id}/delete"' in confirm.text
    assert "Confirm: delete slow" in confirm.text
    assert rule_names(services, modelcycle_admin) == ["slow"]  # looking changes nothing

    response = ui.post(f"/monitoring/alerts/{rule_id}/delete")

    assert response.status_code == 303
    assert rule_names(services, modelcycle_admin) == []
    assert "Alert rule slow deleted." in ui.get(response.headers["location"].split("#")[0]).text
    assert ui.get(f"/monitoring/alerts/{rule_id}").status_code == 404


def test_an_unknown_rule_is_a_404_everywhere(ui: PageClient, services: Services) -> None:
    assert ui.get("/monitoring/alerts/4242").status_code == 404
    assert ui.get("/monitoring/alerts/4242/confirm-delete").status_code == 404
    assert ui.post("/monitoring/alerts/4242/delete").status_code == 404
    assert ui.get("/monitoring/alerts/0").status_code == 422


# -- who may change what ----------------------------------------------------------------------


def test_a_viewer_sees_rules_but_no_form_or_delete_button(
    viewer_ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    rule_id = make_rule(services, modelcycle_admin)

    page = viewer_ui.get("/monitoring")

    assert page.status_code == 200
    assert f'id="alert-{rule_id}"' in page.text
    assert 'action="/monitoring/alerts"' not in page.text
    assert "confirm-delete" not in page.text
    assert "Evaluate rules now" not in page.text


def test_a_viewer_posting_the_forms_directly_gets_403_and_changes_nothing(
    viewer_ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    rule_id = make_rule(services, modelcycle_admin)

    created = viewer_ui.post("/monitoring/alerts", rule_form())
    deleted = viewer_ui.post(f"/monitoring/alerts/{rule_id}/delete")
    evaluated = viewer_ui.post("/monitoring/alerts/evaluate")

    assert (created.status_code, deleted.status_code, evaluated.status_code) == (403, 403, 403)
    assert "needs a key with role &#39;maintainer&#39;" in created.text
    assert rule_names(services, modelcycle_admin) == ["slow"]
    assert services.alerts.get(modelcycle_admin.principal, rule_id).last_evaluated_at is None


def test_a_maintainer_may_create_and_delete(services: Services, modelcycle_admin: KeyPair) -> None:
    with other_client(services, Role.MAINTAINER) as maintainer:
        assert maintainer.post("/monitoring/alerts", rule_form()).status_code == 303
        (rule,) = services.alerts.list(modelcycle_admin.principal).items
        assert maintainer.post(f"/monitoring/alerts/{rule.id}/delete").status_code == 303
    assert rule_names(services, modelcycle_admin) == []


def test_a_form_without_the_csrf_token_or_from_another_site_is_refused(
    ui: PageClient, services: Services, modelcycle_admin: KeyPair
) -> None:
    rule_id = make_rule(services, modelcycle_admin)

    forged = ui.post("/monitoring/alerts", {**rule_form(), "csrf": "forged"})
    no_token = ui.http.post("/monitoring/alerts", data=rule_form(), follow_redirects=False)
    no_token_delete = ui.http.post(f"/monitoring/alerts/{rule_id}/delete", follow_redirects=False)
    cross_site = ui.post(
        f"/monitoring/alerts/{rule_id}/delete", headers={"Origin": "https://evil.example"}
    )

    assert [r.status_code for r in (forged, no_token, no_token_delete, cross_site)] == [403] * 4
    assert rule_names(services, modelcycle_admin) == ["slow"]


def test_signed_out_the_page_redirects_to_sign_in(services: Services) -> None:
    client = page_client(services, None)
    with client.http:
        response = client.http.get("/monitoring?range=1h", follow_redirects=False)
    assert response.status_code == 303
    assert re.search(r"/login\?next=%2Fmonitoring%3Frange%3D1h", response.headers["location"])


# -- in a browser -----------------------------------------------------------------------------


@pytest.mark.browser
def test_in_a_browser_a_rule_is_created_from_the_form_and_the_page_fits_a_phone(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    services, admin = ui_server.services, modelcycle_admin.principal
    register(services, admin, "bot")
    services.deployments.create(
        admin, DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    )
    now = datetime.now(UTC)
    services.recorder.writer.write(
        [span(admin.project_id, now - timedelta(minutes=m)) for m in (3, 9, 15)]
    )
    sign_in(browser, ui_server.url, ui_server.admin_key)

    browser.get(ui_server.url + "/monitoring?range=1h")
    wait_for(browser, "#chart-requests svg")
    browser.find_element(By.ID, "rule-name").send_keys("slow-chat")
    browser.find_element(By.ID, "rule-metric").send_keys("latency_p95_ms")
    Select(browser.find_element(By.ID, "rule-op")).select_by_value(">=")
    browser.find_element(By.ID, "rule-threshold").send_keys("800")
    Select(browser.find_element(By.ID, "rule-window")).select_by_value("15m")
    Select(browser.find_element(By.ID, "rule-deployment")).select_by_value("chat")
    browser.find_element(By.CSS_SELECTOR, "form[action='/monitoring/alerts'] button").click()

    wait_for_text(browser, "Alert rule slow-chat created.")
    (rule,) = services.alerts.list(admin).items
    assert (rule.op, rule.threshold, rule.window_s) == (">=", 800.0, 900)
    assert browser.current_url.endswith(f"#alert-{rule.id}")
    assert "latency_p95_ms >= 800" in browser.find_element(By.ID, f"alert-{rule.id}").text

    browser.set_window_size(390, 844)
    browser.get(ui_server.url + "/monitoring?range=1h")
    wait_for(browser, "#chart-requests svg")
    overflow = browser.execute_script(
        "return document.querySelector('main').scrollWidth - window.innerWidth"
    )
    assert overflow <= 0
