"""In a real browser: start an evaluation from the form and watch its result arrive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from e2e.live import LiveServer
from modelcycle.jobs import Worker
from modelcycle.testing import KeyPair
from ui.browser_steps import sign_in, wait_for, wait_for_text
from ui.test_ui_evals import Env, add_dataset, env, runs  # noqa: F401 - env is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def start_worker(ui_server: LiveServer) -> Iterator[Callable[[], None]]:
    """Starts a background worker running evaluation jobs, as ``modelcycle up`` has one."""
    services = ui_server.services
    stop = threading.Event()
    running = Worker(services.jobs, {"eval.run": services.evals.handle_job}, poll_s=0.1)
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    yield thread.start
    stop.set()
    if thread.is_alive():
        thread.join(timeout=10)


def test_start_an_evaluation_and_see_its_score(
    browser: WebDriver,
    ui_server: LiveServer,
    modelcycle_admin: KeyPair,
    env: Env,  # noqa: F811 - the fixture imported above
    start_worker: Callable[[], None],
) -> None:
    sign_in(browser, ui_server.url, modelcycle_admin.key)
    browser.get(ui_server.url + "/evals")
    wait_for_text(browser, "Start an evaluation")

    Select(browser.find_element(By.ID, "eval-dataset")).select_by_value("cities")
    browser.find_element(By.CSS_SELECTOR, "input[name=targets][value='echo-dep']").click()
    browser.find_element(By.ID, "scorer-exact_match").click()
    browser.find_element(By.ID, "eval-gates").send_keys("exact_match>=0.25")
    browser.find_element(By.CSS_SELECTOR, "form.eval-start button[type=submit]").click()

    wait_for_text(browser, "queued on cities@1")
    (created,) = runs(env)
    assert browser.current_url.startswith(f"{ui_server.url}/evals/{created.id}")
    assert browser.find_element(By.ID, "run-live").get_attribute("data-refresh") == "3"
    assert not browser.find_elements(By.CSS_SELECTOR, "td.agg-estimate")

    start_worker()
    # The live status box notices the end of the run and the page reloads with the report.
    wait_for(browser, "td.agg-estimate", timeout_s=20)
    estimate = browser.find_element(By.CSS_SELECTOR, "td.agg-estimate")
    assert estimate.text == "33.3%"  # echo repeats the prompt: right on 4 of 12 samples
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "gates passed" in body
    assert "All (12)" in body
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart[role=img]")
