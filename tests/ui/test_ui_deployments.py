"""The deployment pages: split, traffic form, promote and rollback behind confirmation, health."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor.spans import SpanRecord
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role
from monitor.trace_factory import NOW, llm_span
from ui.conftest import PageClient, page_client


def recent(span: SpanRecord) -> SpanRecord:
    """trace_factory dates spans before its fixed NOW; the page looks before real now."""
    shift = datetime.now(UTC) - NOW
    return dataclasses.replace(
        span, start_time=span.start_time + shift, end_time=span.end_time + shift
    )


@pytest.fixture
def chat(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    """``chat``: bot@1 90% (primary), bot@2 10% (canary); 20 calls to v1, 10 to v2 (half fail)."""
    admin = modelcycle_admin.principal
    for _ in range(3):
        register(modelcycle_services, admin, "bot")
    modelcycle_services.aliases.set(admin, "bot", "stable", 1)
    spec = DeploymentSpec(
        name="chat",
        routes=[Route(target="bot@stable", weight=90), Route(target="bot@2", weight=10)],
    )
    modelcycle_services.deployments.create(admin, spec)
    pid = admin.project_id
    spans = [
        llm_span(pid, model="bot", version=1, latency_ms=100.0, ago=timedelta(minutes=1 + i))
        for i in range(20)
    ]
    spans += [
        llm_span(
            pid,
            model="bot",
            version=2,
            route="canary",
            latency_ms=400.0,
            status="error" if i % 2 else "ok",
            ago=timedelta(minutes=1 + i),
        )
        for i in range(10)
    ]
    modelcycle_services.recorder.writer.write([recent(span) for span in spans])
    return "chat"


@pytest.fixture
def viewer_ui(modelcycle_services: Services) -> Iterator[PageClient]:
    client = page_client(modelcycle_services, make_key(modelcycle_services, Role.VIEWER).key)
    with client.http:
        yield client


def routes(services: Services, admin: KeyPair) -> list[tuple[str, int]]:
    spec = services.deployments.get(admin.principal, "chat").spec
    return [(route.target, route.weight) for route in spec.routes]


def revision(services: Services, admin: KeyPair) -> int:
    return services.deployments.get(admin.principal, "chat").revision


def health_row(html: str, label: str) -> list[str]:
    table = re.search(r'<table class="data" id="version-health">(.*?)</table>', html, re.S)
    assert table, "no version health table"
    row = re.search(rf">{re.escape(label)}</a></th>(.*?)</tr>", table.group(1), re.S)
    assert row, f"no row for {label}"
    return [cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def split_cell(html: str, target: str) -> str:
    found = re.search(rf'<td class="num" data-target="{re.escape(target)}">([^<]*)</td>', html)
    assert found, f"no route {target} in the split"
    return found.group(1)


def test_list_shows_routes_shadow_fallbacks_and_revision(ui: PageClient, chat: str) -> None:
    page = ui.get("/deployments")

    assert page.status_code == 200
    row = re.search(r'<a href="/deployments/chat">chat</a></th>(.*?)</tr>', page.text, re.S)
    assert row
    assert "<code>bot@stable</code> 90%" in row.group(1)
    assert '<code>bot@2</code> 10% <span class="badge canary">canary</span>' in row.group(1)


def test_detail_shows_split_and_canary_versus_baseline(ui: PageClient, chat: str) -> None:
    page = ui.get("/deployments/chat?range=1h")

    assert page.status_code == 200
    assert split_cell(page.text, "bot@stable") == "90%"
    assert split_cell(page.text, "bot@2") == "10%"
    baseline, canary = health_row(page.text, "bot@1"), health_row(page.text, "bot@2")
    assert "primary" in baseline[0]
    assert "canary" in canary[0]
    assert (baseline[1], baseline[2]) == ("20", "0.0%")
    assert (canary[1], canary[2]) == ("10", "50.0%")
    assert 'aria-label="Error rate by version"' in page.text
    assert 'aria-label="Latency p95 by version"' in page.text
    assert "<polyline" in page.text or "<circle" in page.text
    assert '<option value="1h" selected>' in page.text
    assert 'href="/deployments/chat/promote"' in page.text  # a maintainer sees the actions


def test_unknown_deployment_is_a_404_page(ui: PageClient) -> None:
    page = ui.get("/deployments/nope")

    assert page.status_code == 404
    assert "deployment &#39;nope&#39; not found" in page.text


def test_traffic_form_moves_the_canary_and_sets_shadow_and_fallbacks(
    ui: PageClient, chat: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    sent = ui.post(
        "/deployments/chat/traffic",
        {
            "revision": "1",
            "canary_target": "bot@2",
            "canary_weight": "50",
            "shadow": "bot@3",
            "fallbacks": "bot@1, bot@3",
        },
    )

    assert sent.status_code == 303
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 50), ("bot@2", 50)]
    spec = modelcycle_services.deployments.get(modelcycle_admin.principal, "chat").spec
    assert spec.shadow == "bot@3"
    assert spec.fallbacks == ["bot@1", "bot@3"]
    shown = ui.get(sent.headers["location"])
    assert "Traffic is now bot@stable 50%, bot@2 50% (revision 2)." in shown.text
    assert split_cell(shown.text, "bot@2") == "50%"

    cleared = ui.post(
        "/deployments/chat/traffic",
        {
            "revision": "2",
            "canary_target": "",
            "canary_weight": "50",
            "shadow": "",
            "fallbacks": "",
        },
    )

    assert cleared.status_code == 303  # an emptied target removes the canary
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 100)]
    spec = modelcycle_services.deployments.get(modelcycle_admin.principal, "chat").spec
    assert spec.shadow is None
    assert spec.fallbacks == []

    nameless = ui.post("/deployments/chat/traffic", {"revision": "3", "canary_weight": "20"})
    assert nameless.status_code == 400
    assert "name the canary target" in nameless.text
    started = ui.post(
        "/deployments/chat/traffic",
        {"revision": "3", "canary_target": "bot@3", "canary_weight": "5"},
    )
    assert started.status_code == 303
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 95), ("bot@3", 5)]


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"canary_weight": "150"}, 400, "whole percentage from 0 to 100"),
        ({"canary_weight": "ten"}, 400, "whole percentage from 0 to 100"),
        ({"canary_weight": "-5"}, 400, "whole percentage from 0 to 100"),
        ({"canary_weight": "100"}, 400, "promote it"),
        ({"canary_target": "bot@stable"}, 400, "only once"),
        ({"canary_target": "not a target"}, 400, "must look like MODEL@VERSION"),
        ({"canary_target": "bot@9"}, 400, "bot@9"),
        ({"shadow": "ghost@1"}, 400, "ghost"),
        ({"fallbacks": "bot@1, bot@1"}, 400, "only once"),
        ({"revision": "abc"}, 422, "revision"),
    ],
)
def test_bad_traffic_is_refused_with_a_page_and_changes_nothing(
    ui: PageClient,
    chat: str,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    form = {"revision": "1", "canary_target": "bot@2", "canary_weight": "10", **fields}

    sent = ui.post("/deployments/chat/traffic", form)

    assert sent.status_code == status
    assert 'class="error"' in sent.text
    assert message in sent.text
    assert revision(modelcycle_services, modelcycle_admin) == 1
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 90), ("bot@2", 10)]


def test_a_stale_form_does_not_overwrite_a_newer_change(
    ui: PageClient, chat: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    modelcycle_services.deployments.promote(modelcycle_admin.principal, "chat")

    sent = ui.post(
        "/deployments/chat/traffic",
        {"revision": "1", "canary_target": "bot@2", "canary_weight": "30"},
    )

    assert sent.status_code == 409
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@2", 100)]


def test_promote_shows_what_changes_then_does_it(
    ui: PageClient, chat: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    confirm = ui.get("/deployments/chat/promote")

    assert confirm.status_code == 200
    assert "<code>bot@2</code> will receive all the traffic" in confirm.text
    assert '<td class="diff-del">bot@stable 90%, bot@2 10%</td>' in confirm.text
    assert '<td class="diff-ins">bot@2 100%</td>' in confirm.text
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 90), ("bot@2", 10)]

    done = ui.post("/deployments/chat/promote", {"revision": "1"})

    assert done.status_code == 303
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@2", 100)]
    assert "Promoted: bot@2 100% (revision 2)." in ui.get(done.headers["location"]).text
    assert ui.get("/deployments/chat/promote").status_code == 409  # no canary left


def test_rollback_restores_the_previous_or_a_chosen_revision(
    ui: PageClient, chat: str, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    assert ui.get("/deployments/chat/rollback").status_code == 409  # revision 1: nothing earlier
    for number, weight in (("1", "50"), ("2", "70")):
        form = {"revision": number, "canary_target": "bot@2", "canary_weight": weight}
        assert ui.post("/deployments/chat/traffic", form).status_code == 303

    confirm = ui.get("/deployments/chat/rollback")

    assert confirm.status_code == 200
    assert "to revision 2?" in confirm.text
    assert '<td class="diff-ins">bot@stable 50%, bot@2 50%</td>' in confirm.text
    done = ui.post("/deployments/chat/rollback", {"revision": "3", "to": "2"})
    assert done.status_code == 303
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 50), ("bot@2", 50)]

    chosen = ui.get("/deployments/chat/rollback?to=1")
    assert chosen.status_code == 200
    assert "to revision 1?" in chosen.text
    assert ui.post("/deployments/chat/rollback", {"revision": "4", "to": "1"}).status_code == 303
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 90), ("bot@2", 10)]
    history = ui.get("/deployments/chat").text
    assert 'href="/deployments/chat/rollback?to=4"' in history
    assert ui.get("/deployments/chat/rollback?to=9").status_code == 409


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        (
            "/deployments/chat/traffic",
            {"revision": "1", "canary_target": "bot@2", "canary_weight": "50"},
        ),
        ("/deployments/chat/promote", {"revision": "1"}),
        ("/deployments/chat/rollback", {"revision": "1", "to": "1"}),
    ],
)
def test_a_viewer_posting_directly_is_refused_and_nothing_changes(
    viewer_ui: PageClient,
    chat: str,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    url: str,
    fields: dict[str, str],
) -> None:
    sent = viewer_ui.post(url, fields)

    assert sent.status_code == 403
    assert revision(modelcycle_services, modelcycle_admin) == 1
    assert routes(modelcycle_services, modelcycle_admin) == [("bot@stable", 90), ("bot@2", 10)]


def test_a_viewer_sees_the_split_but_no_forms(viewer_ui: PageClient, chat: str) -> None:
    page = viewer_ui.get("/deployments/chat")

    assert page.status_code == 200
    assert split_cell(page.text, "bot@2") == "10%"
    assert 'action="/deployments/chat/traffic"' not in page.text
    assert 'href="/deployments/chat/promote"' not in page.text
    confirm = viewer_ui.get("/deployments/chat/promote")
    assert confirm.status_code == 200
    assert "may not change deployments" in confirm.text
    assert 'action="/deployments/chat/promote"' not in confirm.text


@pytest.mark.parametrize("url", ["traffic", "promote", "rollback"])
def test_posts_without_the_csrf_token_are_refused(
    ui: PageClient, chat: str, modelcycle_services: Services, modelcycle_admin: KeyPair, url: str
) -> None:
    sent = ui.http.post(
        f"/deployments/chat/{url}",
        data={"revision": "1", "canary_weight": "50"},
        follow_redirects=False,
    )

    assert sent.status_code == 403
    assert revision(modelcycle_services, modelcycle_admin) == 1
