"""In chromium: move a canary from 10% to 50% with the form, then roll it back."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.testing import register
from ui.browser_steps import sign_in, wait_for, wait_for_text

pytestmark = pytest.mark.browser


def weights(server: LiveServer) -> list[tuple[str, int]]:
    admin = server.services.access.authenticate(server.admin_key)
    spec = server.services.deployments.get(admin, "chat").spec
    return [(route.target, route.weight) for route in spec.routes]


def split(browser: WebDriver, target: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f'#traffic-split td[data-target="{target}"]').text


def test_a_maintainer_moves_the_canary_then_rolls_it_back(
    browser: WebDriver, ui_server: LiveServer
) -> None:
    services = ui_server.services
    admin = services.access.authenticate(ui_server.admin_key)
    register(services, admin, "bot")
    register(services, admin, "bot")
    services.deployments.create(
        admin,
        DeploymentSpec(
            name="chat", routes=[Route(target="bot@1", weight=90), Route(target="bot@2", weight=10)]
        ),
    )
    sign_in(browser, ui_server.url, ui_server.admin_key)

    browser.get(ui_server.url + "/deployments/chat")
    wait_for(browser, "#canary-weight")
    assert split(browser, "bot@2") == "10%"
    field = browser.find_element(By.ID, "canary-weight")
    field.clear()
    field.send_keys("50")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/traffic'] button[type=submit]").click()

    wait_for_text(browser, "Traffic is now bot@1 50%, bot@2 50% (revision 2).")
    assert (split(browser, "bot@1"), split(browser, "bot@2")) == ("50%", "50%")
    assert weights(ui_server) == [("bot@1", 50), ("bot@2", 50)]

    browser.find_element(By.LINK_TEXT, "Roll back…").click()
    wait_for_text(browser, "Roll back chat to revision 1?")
    assert weights(ui_server) == [("bot@1", 50), ("bot@2", 50)]  # nothing until confirmed
    browser.find_element(By.XPATH, "//button[normalize-space()='Confirm rollback']").click()

    wait_for_text(browser, "Rolled back: bot@1 90%, bot@2 10% (revision 3).")
    assert split(browser, "bot@2") == "10%"
    assert weights(ui_server) == [("bot@1", 90), ("bot@2", 10)]
