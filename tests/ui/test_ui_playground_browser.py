"""In a real browser: two deployments stream side by side; one answer goes to a dataset."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.testing import KeyPair, register
from ui.browser_steps import TIMEOUT_S, sign_in, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ALPHA = "Alpha streams its answer one word after another"
BETA = "Beta answers <b>from</b> the other pane"  # shown as text, never as HTML


def seed(server: LiveServer, admin: KeyPair) -> None:
    """Two scripted mock deployments; alpha waits between words so its stream is visible."""
    services, principal = server.services, admin.principal
    register(
        services,
        principal,
        "alpha",
        source="mock://script",
        params={"replies": [ALPHA], "chunk_delay_ms": 250},
    )
    register(services, principal, "beta", source="mock://script", params={"replies": [BETA]})
    for name, target in (("alpha-chat", "alpha@1"), ("beta-chat", "beta@1")):
        services.deployments.create(
            principal, DeploymentSpec(name=name, routes=[Route(target=target, weight=100)])
        )


def _answer(browser: WebDriver, slot: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f"#pane-{slot} .pg-answer").text)


def test_two_streamed_answers_side_by_side_then_one_saved_to_a_dataset(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    seed(ui_server, modelcycle_admin)
    sign_in(browser, ui_server.url, modelcycle_admin.key)
    browser.get(ui_server.url + "/playground")
    browser.find_element(By.ID, "target_a").send_keys("alpha-chat")
    browser.find_element(By.ID, "target_b").send_keys("beta-chat")
    browser.find_element(By.ID, "message").send_keys("Who are you?")
    browser.find_element(By.ID, "pg-send").click()

    # Alpha's words arrive one by one: a part of the answer shows before the whole.
    waiting = WebDriverWait(browser, TIMEOUT_S)
    waiting.until(lambda b: 0 < len(_answer(b, "a")) < len(ALPHA))
    assert browser.find_element(By.ID, "pg-send").get_attribute("disabled") is not None
    waiting.until(lambda b: _answer(b, "a") == ALPHA and _answer(b, "b") == BETA)
    assert browser.current_url.endswith("/playground")  # streamed in place, no page load
    waiting.until(lambda b: b.find_element(By.ID, "pg-send").get_attribute("disabled") is None)
    trace = browser.find_element(By.CSS_SELECTOR, "#pane-a .pg-trace")
    assert "/traces/" in str(trace.get_attribute("href"))
    assert "served by alpha@1" in browser.find_element(By.CSS_SELECTOR, "#pane-a .pg-meta").text

    browser.find_element(By.ID, "dataset-b").send_keys("from-playground")
    browser.find_element(By.ID, "expected-b").send_keys("A better answer")
    browser.find_element(By.CSS_SELECTOR, "#pane-b .pg-dataset button[type=submit]").click()
    wait_for_text(browser, "Added the exchange with beta-chat to dataset from-playground")
    saved = ui_server.services.datasets.samples(modelcycle_admin.principal, "from-playground")
    (sample,) = saved.items
    assert sample.expected == "A better answer"
    assert sample.metadata["model_answer"] == BETA
    assert sample.input == {"messages": [{"role": "user", "content": "Who are you?"}]}

    # A refusal shows in its pane as an error, not as an empty answer.
    browser.find_element(By.ID, "target_b").send_keys("nowhere")
    browser.find_element(By.ID, "message").send_keys("Still there?")
    browser.find_element(By.ID, "pg-send").click()
    waiting.until(lambda b: "does not exist" in b.find_element(By.CSS_SELECTOR, "#pane-b").text)
    waiting.until(lambda b: _answer(b, "a") == BETA)  # target A is now beta-chat
