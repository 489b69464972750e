"""Screenshots of every dashboard page, at 1280 px and at a phone's width, for the README.

Against a running modelcycle with data in it (``make run``, then
``examples/send_traffic.py`` and whatever evaluations and tuning jobs you want shown):

    .venv/bin/python examples/dashboard_screenshots.py --api-key mc_... [--out docs/screenshots]

Drives Debian's chromium (``apt-get install chromium chromium-driver``) through
selenium; signs in with the key through the sign-in form like a person would, and
finds the ids of a trace, an evaluation run and a tuning job through the API.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WIDTHS = {"desktop": 1280, "phone": 390}


def first_id(api: httpx.Client, path: str, field: str) -> str | None:
    """The ``field`` of the first item listed at ``path``, if any."""
    response = api.get(path, params={"limit": 1})
    if response.status_code != 200:
        return None
    items = response.json().get("data") or []
    return str(items[0][field]) if items else None


def page_list(api: httpx.Client, deployment: str, model: str) -> list[tuple[str, str]]:
    """(name, path) of each page to capture."""
    pages = [
        ("overview", "/"),
        ("models", f"/models/{model}"),
        ("deployment", f"/deployments/{deployment}"),
        ("traces", "/traces"),
        ("monitoring", "/monitoring"),
        ("evaluations", "/evals"),
        ("tuning", "/tune"),
        ("guardrails", "/guard"),
        ("playground", "/playground"),
        ("audit", "/audit"),
        ("keys", "/keys"),
    ]
    trace = first_id(api, "/api/v1/traces", "trace_id")
    if trace:
        pages.insert(4, ("trace", f"/traces/{trace}"))
    run = first_id(api, "/api/v1/evals", "id")
    if run:
        pages.insert(-5, ("evaluation-run", f"/evals/{run}"))
    job = first_id(api, "/api/v1/tune/jobs", "id")
    if job:
        pages.insert(-5, ("tuning-job", f"/tune/{job}"))
    return pages


def emulate(driver: webdriver.Chrome, width: int, height: int) -> None:
    """A viewport of exactly ``width`` x ``height`` CSS pixels (a phone's is a mobile one)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def browser() -> webdriver.Chrome:
    """Headless Debian chromium, with no background network traffic."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main() -> int:
    """Sign in, then capture each page at each width."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default=os.environ.get("MODELCYCLE_SERVER", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("MODELCYCLE_API_KEY"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--deployment", default="default")
    parser.add_argument("--model", default="gemma-3-270m")
    args = parser.parse_args()
    if not args.api_key:
        parser.error("pass --api-key or set MODELCYCLE_API_KEY")
    args.out.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.server, headers=headers, timeout=30) as api:
        pages = page_list(api, args.deployment, args.model)
    driver = browser()
    try:
        emulate(driver, 1280, 900)
        driver.get(args.server + "/login")
        driver.find_element(By.ID, "api_key").send_keys(args.api_key)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(driver, 15).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".who")))
        for width_name, width in WIDTHS.items():
            for name, path in pages:
                emulate(driver, width, 900)
                driver.get(args.server + path)
                WebDriverWait(driver, 15).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
                height = driver.execute_script("return document.documentElement.scrollHeight")
                emulate(driver, width, min(max(int(height), 600), 4000))  # the whole page
                target = args.out / f"{name}-{width_name}.png"
                shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
                target.write_bytes(base64.b64decode(shot["data"]))
                print(target)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
