"""In a real browser: sign in, read the overview, sign out."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from e2e.live import LiveServer
from modelcycle.testing import KeyPair
from ui.browser_steps import sign_in, wait_for_text
from ui.test_ui_overview import seed

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_sign_in_and_see_each_deployments_health(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    seed(ui_server.services, modelcycle_admin)
    browser.get(ui_server.url + "/traces")  # a deep link asks to sign in first ...
    assert "/login" in browser.current_url
    sign_in(browser, ui_server.url, modelcycle_admin.key)
    browser.get(ui_server.url + "/?range=6h")
    wait_for_text(browser, "Deployments")
    rows = {
        row.find_element(By.TAG_NAME, "th").text: row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "table.data tbody tr")
    }
    assert set(rows) == {"chat", "search", "quiet"}
    assert "ok" in rows["chat"]
    assert " 90 " in f" {rows['chat']} "
    assert "failing" in rows["search"]
    assert "50.0%" in rows["search"]
    assert "idle" in rows["quiet"]
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart[role=img]")
    assert len(charts) == 2
    # the range picker submits itself when changed
    browser.find_element(By.CSS_SELECTOR, "#range option[value='1h']").click()
    wait_for_text(browser, "last hour")
    assert "range=1h" in browser.current_url
    # the deployment link leads to its page
    browser.find_element(By.LINK_TEXT, "chat").click()
    assert browser.current_url.endswith("/deployments/chat")


def test_the_keyboard_reaches_the_content_and_the_navigation(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    sign_in(browser, ui_server.url, modelcycle_admin.key)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the first stop is the skip link ...
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)  # ... which moves focus past the navigation
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    browser.get(ui_server.url + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(4):  # skip link, brand, then the sections in order
        body = browser.switch_to.active_element
        body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Models"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for_text(browser, "Models")
    assert browser.current_url.endswith("/models")


def test_signing_out_in_the_browser_ends_the_session(
    browser: WebDriver, ui_server: LiveServer, modelcycle_admin: KeyPair
) -> None:
    sign_in(browser, ui_server.url, modelcycle_admin.key)
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait_for_text(browser, "Sign in to modelcycle")
    browser.get(ui_server.url + "/")
    assert "/login" in browser.current_url
