"""Dashboard fixtures: a signed-in HTTP client for page tests, a real browser for e2e.

Browser tests drive Debian's chromium through chromedriver (``selenium``); where
either binary is missing they are skipped with the command that installs them.
The dashboard's data does not depend on the database engine (the services are
tested on both), so these tests run on SQLite only.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from e2e.live import LiveServer, serve
from modelcycle.api import create_app
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair
from modelcycle.ui import install_dashboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def modelcycle_database_url(tmp_path: Path) -> str | None:
    """SQLite only (see the module docstring)."""
    return None


class PageClient:
    """A TestClient signed in to the dashboard; ``post`` adds the session's CSRF token."""

    def __init__(self, client: TestClient):
        self.http = client
        self.csrf = ""

    def sign_in(self, key: str) -> httpx.Response:
        response = self.http.post("/login", data={"api_key": key, "next": "/"})
        page = self.http.get("/")
        found = CSRF_INPUT.search(page.text)
        self.csrf = found.group(1) if found else ""
        return response

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.http.get(url, **kwargs)  # type: ignore[arg-type]

    def post(self, url: str, data: dict[str, object] | None = None, **kwargs: object):
        body = {"csrf": self.csrf, **(data or {})}
        return self.http.post(url, data=body, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def page_client(services: Services, key: str | None) -> PageClient:
    """A client of a fresh app with the dashboard, signed in with ``key`` when given."""
    app = create_app(services)
    install_dashboard(app, services)
    client = PageClient(TestClient(app, base_url="http://testserver"))
    if key is not None:
        client.sign_in(key)
    return client


@pytest.fixture
def ui(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[PageClient]:
    """The dashboard signed in as the bootstrap admin."""
    client = page_client(modelcycle_services, modelcycle_admin.key)
    with client.http:
        yield client


@pytest.fixture
def ui_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    """uvicorn serving API and dashboard on a free port."""
    with serve(modelcycle_services, modelcycle_admin.key, dashboard=True) as server:
        yield server


@pytest.fixture(scope="session")
def _driver() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "browser tests need Debian's chromium and chromedriver: "
            "apt-get install -y chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(_driver: object, ui_server: LiveServer) -> Iterator[object]:
    """One chromium for the whole run, with no cookies left from the previous test."""
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(_driver, WebDriver)
    _driver.set_window_size(1280, 900)
    _driver.get(ui_server.url + "/login")
    _driver.delete_all_cookies()
    yield _driver
    _driver.delete_all_cookies()
