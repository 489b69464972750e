"""In a real browser: a running tuning job's page follows its progress without reloading."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from e2e.live import LiveServer
from ui.browser_steps import sign_in, wait_for_text
from ui.tune_fakes import FakeTraining, start_job, tunable_setup


@pytest.mark.browser
def test_a_running_jobs_page_shows_new_steps_and_loss_points_live(
    browser: WebDriver, ui_server: LiveServer, tmp_path: Path
) -> None:
    services = ui_server.services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin)
    training = FakeTraining(services, job)
    training.step(4, 2.5)

    sign_in(browser, ui_server.url, ui_server.admin_key)
    browser.get(f"{ui_server.url}/tune/{job.id}")
    wait_for_text(browser, "step 4 of 40")
    live = browser.find_element(By.ID, "tune-live")
    assert not live.find_elements(By.CSS_SELECTOR, "svg polyline")  # one point: a dot
    # A reload would forget this; the live region must change under it.
    browser.execute_script("window.tuneTestMarker = 'same page';")

    for step, loss in ((8, 2.1), (12, 1.8), (16, 1.5), (20, 1.3)):
        training.step(step, loss, val_loss=loss + 0.1 if step % 8 == 0 else None)
    training.log("checkpoint saved at step 20")

    wait_for_text(browser, "step 20 of 40", timeout_s=12)
    assert browser.execute_script("return window.tuneTestMarker;") == "same page"
    progress = browser.find_element(By.ID, "tune-progress")
    assert progress.get_attribute("value") == "0.5"
    lines = browser.find_elements(By.CSS_SELECTOR, "#tune-live svg polyline")
    assert len(lines) == 2, "training and validation loss curves"
    log = browser.find_element(By.ID, "tune-log")
    assert log.text.strip().endswith("checkpoint saved at step 20")  # newest last
