"""In chromium: find a trace by deployment and text, open it, rate it, see the feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor import SpanRecord
from modelcycle.testing import KeyPair, register
from ui.browser_steps import TIMEOUT_S, sign_in, wait_for, wait_for_text

pytestmark = pytest.mark.browser


def span(project_id: int, number: int, deployment: str, question: str) -> SpanRecord:
    start = datetime.now(UTC) - timedelta(minutes=number)
    return SpanRecord(
        project_id=project_id,
        trace_id=f"{number:032x}",
        span_id=f"{number:016x}",
        name=f"chat.completions {deployment}",
        kind="llm",
        source="gateway",
        start_time=start,
        end_time=start + timedelta(milliseconds=150),
        duration_ms=150.0,
        status="ok",
        deployment=deployment,
        model=f"{deployment}-model",
        version=1,
        route="primary",
        input_tokens=9,
        output_tokens=4,
        input=f'[{{"role":"user","content":"{question}"}}]',
        output="An answer.",
    )


def test_filter_open_a_trace_and_give_feedback(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    wanted = span(pid, 0xA1, "support", "Where is my parcel?")
    ui_server.services.recorder.writer.write(
        [
            wanted,
            span(pid, 0xA2, "support", "Can I change my address?"),
            span(pid, 0xA3, "sales", "Where is my parcel? (sales)"),
        ]
    )
    services, admin = ui_server.services, modelcycle_admin.principal
    for name in ("support", "sales"):
        register(services, admin, f"{name}-model")
        services.deployments.create(
            admin, DeploymentSpec(name=name, routes=[Route(target=f"{name}-model@1", weight=100)])
        )
    sign_in(browser, ui_server.url, ui_server.admin_key)

    browser.get(ui_server.url + "/traces")
    wait_for_text(browser, "Can I change my address?")
    browser.find_element(By.ID, "f-text").send_keys("parcel")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for_text(browser, "Clear filters")
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.data tbody tr")) == 2

    # The form keeps the text filter; adding a deployment narrows to one trace.
    assert browser.find_element(By.ID, "f-text").get_attribute("value") == "parcel"
    Select(browser.find_element(By.ID, "f-deployment")).select_by_value("support")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(browser, TIMEOUT_S).until(lambda b: "deployment=support" in b.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.data tbody tr")
    assert len(rows) == 1
    assert "Where is my parcel?" in rows[0].text
    assert "support" in rows[0].text

    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    wait_for(browser, "h1 code")
    assert browser.find_element(By.CSS_SELECTOR, "h1 code").text == wanted.trace_id
    assert "user: Where is my parcel?" in browser.find_element(By.CSS_SELECTOR, ".span-tree").text
    assert "No feedback yet." in browser.page_source

    browser.find_element(By.CSS_SELECTOR, "label[for=thumbs-up]").click()
    browser.find_element(By.ID, "fb-label").send_keys("helpful")
    browser.find_element(By.ID, "fb-comment").send_keys("Found it, thanks to the tracking link.")
    browser.find_element(By.CSS_SELECTOR, "#feedback button[type=submit]").click()

    wait_for_text(browser, "Feedback saved.")
    listed = browser.find_element(By.CSS_SELECTOR, "#feedback table.data").text
    assert "Found it, thanks to the tracking link." in listed
    assert "helpful" in listed
    assert "up" in listed
    stored = ui_server.services.feedback.list(modelcycle_admin.principal, wanted.trace_id)
    assert [(f.thumbs, f.comment) for f in stored] == [
        (1, "Found it, thanks to the tracking link.")
    ]
