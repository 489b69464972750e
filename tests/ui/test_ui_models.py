"""The models pages: the registry's models, versions with lineage, and moving aliases."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from modelcycle.registry import VersionRef, add_lineage_edge
from modelcycle.services import Services
from modelcycle.store.tables import ModelRow, ModelVersionRow
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role
from ui.conftest import PageClient, page_client


def version_id(services: Services, model: str, number: int) -> int:
    with services.store.read() as session:
        found: int = session.execute(
            select(ModelVersionRow.id)
            .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
            .where(ModelRow.name == model, ModelVersionRow.version == number)
        ).scalar_one()
    return found


@pytest.fixture
def bot(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    """``bot`` v1 (alias production) and v2 tuned from v1 on ``faq@3``, evaluated in run 7."""
    admin = modelcycle_admin.principal
    register(modelcycle_services, admin, "bot", params={"temperature": 0.2, "max_tokens": 64})
    register(
        modelcycle_services,
        admin,
        "bot",
        parent=VersionRef(model="bot", version=1),
        params={"system_prompt": "You answer support questions.", "temperature": 0.0},
    )
    register(modelcycle_services, admin, "other")
    modelcycle_services.aliases.set(admin, "bot", "production", 1)
    tuned = version_id(modelcycle_services, "bot", 2)
    with modelcycle_services.store.write() as session:
        add_lineage_edge(
            session, tuned, relation="trained_on", target_kind="dataset_version", target_ref="faq@3"
        )
        add_lineage_edge(
            session, tuned, relation="produced_by", target_kind="tune_job", target_ref="ftjob-abc"
        )
        add_lineage_edge(
            session,
            tuned,
            relation="evaluated_in",
            target_kind="eval_run",
            target_ref="7",
            metadata={"target": "bot@2", "dataset": "faq-eval@1", "gates_passed": True},
        )
    return "bot"


@pytest.fixture
def viewer_ui(modelcycle_services: Services) -> Iterator[PageClient]:
    client = page_client(modelcycle_services, make_key(modelcycle_services, Role.VIEWER).key)
    with client.http:
        yield client


def row_of(html: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert found, f"no row {row_id}"
    return found.group(1)


def production(services: Services, admin: KeyPair) -> int:
    return services.aliases.get(admin.principal, "bot", "production").version


def test_models_list_counts_versions_and_shows_aliases(ui: PageClient, bot: str) -> None:
    page = ui.get("/models")

    assert page.status_code == 200
    bot_row = re.search(r'<a href="/models/bot">bot</a></th>(.*?)</tr>', page.text, re.S)
    assert bot_row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", bot_row.group(1), re.S)
    assert cells[0] == "2"
    assert cells[1] == "v2"
    assert "<code>production</code> → v1" in cells[2]
    assert '<a href="/models/other">other</a>' in page.text


def test_model_page_shows_each_version_with_its_lineage(ui: PageClient, bot: str) -> None:
    page = ui.get("/models/bot")

    assert page.status_code == 200
    first, tuned = row_of(page.text, "v1"), row_of(page.text, "v2")
    assert "<code>production</code>" in first
    assert "max_tokens=64, temperature=0.2" in first
    assert 'Parent: <span class="muted">none</span>' in first
    assert '<a href="/models/bot#v1">bot@1</a>' in tuned
    assert "Trained on: <code>faq@3</code>" in tuned
    assert '<a href="/tune/ftjob-abc">ftjob-abc</a>' in tuned
    assert '<a href="/evals/7">run 7</a>' in tuned
    assert "<code>faq-eval@1</code>" in tuned
    assert "system_prompt=You answer support questions." in tuned
    assert "mock://echo" in tuned


def test_unknown_model_is_a_404_page(ui: PageClient) -> None:
    page = ui.get("/models/nope")

    assert page.status_code == 404
    assert "model &#39;nope&#39; not found" in page.text or "model 'nope' not found" in page.text


def test_maintainer_moves_an_alias(
    ui: PageClient, bot: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    assert 'action="/models/bot/aliases"' in ui.get("/models/bot").text

    sent = ui.post("/models/bot/aliases", {"alias": "production", "version": "2"})

    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/models/bot?notice=")
    assert production(modelcycle_services, modelcycle_admin) == 2
    shown = ui.get(sent.headers["location"])
    assert "Alias production now points at version 2." in shown.text
    assert "<code>production</code>" in row_of(shown.text, "v2")
    assert "<code>production</code>: v1 → v2" in shown.text


@pytest.mark.parametrize(
    ("alias", "version", "status"),
    [
        ("production", "two", 400),
        ("production", "0", 400),
        ("production", "", 422),
        ("production", "99", 404),
        ("Not An Alias!", "2", 400),
    ],
)
def test_bad_alias_form_is_refused_and_changes_nothing(
    ui: PageClient,
    bot: str,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    alias: str,
    version: str,
    status: int,
) -> None:
    sent = ui.post("/models/bot/aliases", {"alias": alias, "version": version})

    assert sent.status_code == status
    assert 'class="error"' in sent.text
    assert production(modelcycle_services, modelcycle_admin) == 1


def test_viewer_sees_no_alias_form_and_is_refused_when_posting(
    viewer_ui: PageClient, bot: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    page = viewer_ui.get("/models/bot")
    assert page.status_code == 200
    assert 'action="/models/bot/aliases"' not in page.text

    sent = viewer_ui.post("/models/bot/aliases", {"alias": "production", "version": "2"})

    assert sent.status_code == 403
    assert production(modelcycle_services, modelcycle_admin) == 1


def test_alias_post_without_csrf_is_refused(
    ui: PageClient, bot: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    sent = ui.http.post(
        "/models/bot/aliases",
        data={"alias": "production", "version": "2"},
        follow_redirects=False,
    )

    assert sent.status_code == 403
    assert production(modelcycle_services, modelcycle_admin) == 1
