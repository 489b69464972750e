"""Steps the browser tests share: sign in, wait for text, fill a form."""

from __future__ import annotations

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT_S = 15


def sign_in(browser: WebDriver, base_url: str, key: str) -> None:
    """Sign in through the form and land on the overview."""
    browser.get(base_url + "/login")
    field = browser.find_element(By.ID, "api_key")
    field.clear()
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for_text(browser, "Sign out")


def wait_for_text(browser: WebDriver, text: str, *, timeout_s: float = TIMEOUT_S) -> None:
    """Until ``text`` is somewhere in the page's body."""
    present = ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text)

    def settled(driver: WebDriver) -> bool:
        try:
            return present(driver)
        except WebDriverException as exc:
            # The page was replaced between finding its body and reading its text
            # (Chromium's form of a stale element): look again at the new page.
            if "does not belong to the document" in str(exc):
                return False
            raise

    WebDriverWait(browser, timeout_s).until(settled)


def wait_for(browser: WebDriver, css: str, *, timeout_s: float = TIMEOUT_S) -> None:
    """Until an element matching ``css`` is visible."""
    WebDriverWait(browser, timeout_s).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
