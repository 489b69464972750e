"""Tuning pages: the job list, the start form, a job's live progress and loss curve, cancel."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from modelcycle.services import Services
from modelcycle.testing.factories import make_key, register
from modelcycle.types import Role
from ui.conftest import PageClient, page_client
from ui.tune_fakes import FakeTraining, start_job, tunable_setup

FORM = {
    "method": "sft-lora",
    "base": "toy@1",
    "dataset": "capitals@1",
    "validation_dataset": "",
    "epochs": "2",
    "learning_rate": "0.01",
    "lora_r": "4",
    "suffix": "capitals-v1",
}


def _jobs(services: Services) -> int:
    admin = make_key(services, Role.VIEWER).principal
    return len(services.tune.list(admin, limit=100).items)


def test_the_list_shows_each_job_with_its_progress_and_pages(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    first = start_job(services, admin)
    training = FakeTraining(services, first)
    training.step(20, 1.5)
    later = [start_job(services, admin) for _ in range(20)]

    page = ui.get("/tune")
    assert page.status_code == 200
    assert "<h1>Tuning</h1>" in page.text
    # Newest first, 20 to a page: the oldest (the running one) is on the next page.
    assert later[-1].id in page.text
    assert first.id not in page.text
    assert 'data-refresh="5"' in page.text  # queued jobs: the table stays live
    found = re.search(r'href="\?&amp;cursor=([^"]+)"', page.text)
    assert found, "no next-page link"
    second = ui.get("/tune?cursor=" + found.group(1))
    assert first.id in second.text
    assert later[-1].id not in second.text
    row = second.text[second.text.index(first.id) :]
    row = row[: row.index("</tr>")]
    assert "sft-lora" in row
    assert "toy@1" in row
    assert "capitals@1" in row
    assert 'class="badge running"' in row
    assert '<progress max="1" value="0.5">' in row
    assert "50%" in row


def test_a_running_job_shows_live_progress_a_loss_curve_and_its_log(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin, epochs=4, lora_r=16)
    training = FakeTraining(services, job)
    for step, loss in ((4, 2.4), (8, 2.0), (12, 1.7), (16, 1.4)):
        training.step(step, loss)
    training.step(20, 1.2, val_loss=1.3)
    training.step(24, 1.0, val_loss=1.1)
    training.log("checkpoint saved at step 24")

    page = ui.get(f"/tune/{job.id}")
    assert page.status_code == 200
    text = page.text
    live = text[text.index('id="tune-live"') :]
    assert live.startswith('id="tune-live" data-refresh="3"')
    assert '<progress id="tune-progress" max="1" value="0.6"' in live
    assert "step 24 of 40" in live
    assert "epoch 2.40" in live
    assert "<svg" in live
    assert "Loss over training steps" in live
    assert live.count('<polyline class="line') == 2  # training and validation loss
    assert "training loss" in live
    assert "validation loss" in live
    # The log's tail, newest last.
    assert live.index("step 20: ") < live.index("step 24: ") < live.index("checkpoint saved")
    assert "lora r" in text
    assert "<code>16</code>" in text
    assert "budget" not in text  # prompt-search's setting: not for SFT
    assert f'href="/tune/{job.id}/confirm-cancel"' in text


def test_a_finished_job_links_its_version_and_stops_refreshing(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin)
    training = FakeTraining(services, job)
    training.step(40, 0.12, val_loss=0.2)
    version = training.succeed(admin)

    text = ui.get(f"/tune/{job.id}").text
    assert 'class="badge succeeded"' in text
    assert 'value="1.0"' in text
    assert "step 40 of 40" in text
    assert f'<a href="/models/toy">toy@{version}</a>' in text
    assert "data-refresh" not in text
    assert "confirm-cancel" not in text
    assert "trained tokens" in text.lower()
    assert "1,234" in text
    listing = ui.get("/tune").text
    assert f'<a href="/models/toy">toy@{version}</a>' in listing


def test_the_start_form_creates_the_job_and_shows_it(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    tunable_setup(services, tmp_path)
    form = ui.get("/tune").text
    assert '<form method="post" action="/tune"' in form
    assert '<option value="capitals@1">capitals@1 (4 samples)</option>' in form
    assert '<option value="toy@1"></option>' in form  # the base field's suggestions
    for field in ("method", "base", "dataset", "epochs", "learning_rate", "lora_r", "suffix"):
        assert f'<label for="{field}">' in form

    answer = ui.post("/tune", FORM)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/tune/ftjob-")
    (job,) = services.tune.list(make_key(services, Role.VIEWER).principal, limit=10).items
    assert location.split("?")[0] == f"/tune/{job.id}"
    assert (job.method, job.base, job.dataset, job.suffix) == (
        "sft-lora", "toy@1", "capitals@1", "capitals-v1"
    )  # fmt: skip
    assert (job.hyperparameters.epochs, job.hyperparameters.lora_r) == (2, 4)
    assert job.hyperparameters.learning_rate == pytest.approx(0.01)
    shown = ui.get(location)
    assert "queued" in unquote(location)
    assert f"Tuning job {job.id} queued" in shown.text
    assert "waiting for a worker" in shown.text
    assert "No loss reported yet." in shown.text


BAD_FORMS: list[tuple[dict[str, str], int, str]] = [
    ({"epochs": "0"}, 400, "epochs"),
    ({"learning_rate": "fast"}, 400, "learning_rate"),
    ({"lora_r": "1000"}, 400, "lora_r"),
    ({"base": "toy"}, 400, "NAME@VERSION or NAME@alias"),
    ({"base": ""}, 400, "give a base version"),
    ({"base": "echo@1"}, 400, "cannot be tuned"),
    ({"base": "nope@1"}, 404, "nope"),
    ({"dataset": "missing@1"}, 404, "missing"),
    ({"dataset": ""}, 400, "choose a training dataset"),
    ({"method": "ppo"}, 400, "unknown method"),
    ({"suffix": "bad suffix!"}, 400, "suffix"),
]


def test_bad_input_is_a_4xx_page_and_creates_nothing(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    register(services, admin, "echo")  # kind mock: cannot be tuned
    for change, status, says in BAD_FORMS:  # one app for all: each case is a form post
        answer = ui.post("/tune", {**FORM, **change})
        assert answer.status_code == status, change
        assert "text/html" in answer.headers["content-type"]
        assert says in answer.text, change
    assert _jobs(services) == 0


def test_a_viewer_sees_no_start_or_cancel_and_is_refused_both(
    modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin)
    viewer = page_client(services, make_key(services, Role.VIEWER).key)
    with viewer.http:
        listing = viewer.get("/tune").text
        assert job.id in listing
        assert 'action="/tune"' not in listing
        detail = viewer.get(f"/tune/{job.id}").text
        assert "confirm-cancel" not in detail
        assert viewer.get(f"/tune/{job.id}/confirm-cancel").status_code == 403
        assert viewer.post("/tune", FORM).status_code == 403
        refused = viewer.post(f"/tune/{job.id}/cancel")
        assert refused.status_code == 403
        assert "maintainer" in refused.text
    assert _jobs(services) == 1
    assert services.tune.get(admin, job.id).status == "queued"


def test_a_maintainer_may_start_and_cancel(modelcycle_services: Services, tmp_path: Path) -> None:
    services = modelcycle_services
    tunable_setup(services, tmp_path)
    maintainer = page_client(services, make_key(services, Role.MAINTAINER).key)
    with maintainer.http:
        assert 'action="/tune"' in maintainer.get("/tune").text
        created = maintainer.post("/tune", FORM)
        assert created.status_code == 303
        job_id = created.headers["location"].split("?")[0].rsplit("/", 1)[1]
        assert maintainer.post(f"/tune/{job_id}/cancel").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin)
    assert ui.post("/tune", {**FORM, "csrf": ""}).status_code == 403
    assert ui.post(f"/tune/{job.id}/cancel", {"csrf": "forged"}).status_code == 403
    assert _jobs(services) == 1
    assert services.tune.get(admin, job.id).status == "queued"


def test_cancel_asks_for_confirmation_then_cancels(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    queued = start_job(services, admin)
    confirm = ui.get(f"/tune/{queued.id}/confirm-cancel")
    assert confirm.status_code == 200
    assert f'action="/tune/{queued.id}/cancel"' in confirm.text
    assert "cancelled at once" in confirm.text
    assert services.tune.get(admin, queued.id).status == "queued"  # nothing happened yet

    done = ui.post(f"/tune/{queued.id}/cancel")
    assert done.status_code == 303
    assert services.tune.get(admin, queued.id).status == "cancelled"
    assert f"Tuning job {queued.id} cancelled." in ui.get(done.headers["location"]).text
    again = ui.post(f"/tune/{queued.id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.text
    assert ui.get(f"/tune/{queued.id}/confirm-cancel").status_code == 409


def test_cancelling_a_running_job_asks_the_trainer_to_stop(
    ui: PageClient, modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = tunable_setup(services, tmp_path)
    job = start_job(services, admin)
    FakeTraining(services, job).step(8, 2.0)
    assert "Training stops at its next step" in ui.get(f"/tune/{job.id}/confirm-cancel").text
    done = ui.post(f"/tune/{job.id}/cancel")
    assert done.status_code == 303
    page = ui.get(done.headers["location"]).text
    assert "Cancel requested" in page
    assert "cancel requested by" in page


def test_unknown_jobs_and_bad_cursors_are_4xx_pages(ui: PageClient) -> None:
    missing = ui.get("/tune/ftjob-000000000000000000000000")
    assert missing.status_code == 404
    assert "not found" in missing.text
    assert ui.get("/tune/ftjob-nope/confirm-cancel").status_code == 404
    assert ui.post("/tune/ftjob-nope/cancel").status_code == 404
    assert ui.get("/tune?cursor=not-a-cursor").status_code == 400
    assert ui.get("/tune/" + "x" * 65).status_code == 422
