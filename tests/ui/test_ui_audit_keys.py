"""Audit log page (admins only) and API keys pages: create, revoke, rotate, who may do what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import update

from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow
from modelcycle.testing.factories import KeyPair, make_key
from modelcycle.types import Role
from ui.conftest import PageClient, page_client

SECRET = re.compile(r'id="new-secret" class="key-secret" value="([^"]+)"')


def _client_as(services: Services, role: Role) -> Iterator[PageClient]:
    client = page_client(services, make_key(services, role).key)
    with client.http:
        yield client


@pytest.fixture
def viewer_ui(modelcycle_services: Services) -> Iterator[PageClient]:
    yield from _client_as(modelcycle_services, Role.VIEWER)


@pytest.fixture
def maintainer_ui(modelcycle_services: Services) -> Iterator[PageClient]:
    yield from _client_as(modelcycle_services, Role.MAINTAINER)


def _whoami(ui: PageClient, key: str) -> int:
    return ui.http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code


def _create(ui: PageClient, **fields: str) -> tuple[str, str]:
    """Post the create form; the page and the secret it shows."""
    page = ui.post("/keys", fields)
    assert page.status_code == 201, page.text
    found = SECRET.search(page.text)
    assert found is not None
    return page.text, found.group(1)


def _key_id(services: Services, admin: KeyPair, name: str) -> int:
    keys = services.access.list_keys(admin.principal, project=None, cursor=None, limit=500)
    return next(key.id for key in keys.items if key.name == name)


# -- audit -------------------------------------------------------------------------------


def test_audit_lists_entries_newest_first_with_a_verified_chain(
    ui: PageClient, modelcycle_services: Services
) -> None:
    for _ in range(3):
        make_key(modelcycle_services, Role.APP)
    page = ui.get("/audit")
    assert page.status_code == 200
    assert "Chain verified:" in page.text
    seqs = [int(s) for s in re.findall(r'<th scope="row" class="num">(\d+)</th>', page.text)]
    assert len(seqs) >= 3
    assert seqs == sorted(seqs, reverse=True)
    assert "key.create" in page.text
    assert "<summary>before / after</summary>" in page.text


def test_audit_filters_and_pages(ui: PageClient, modelcycle_services: Services) -> None:
    for _ in range(55):
        make_key(modelcycle_services, Role.APP)
    first = ui.get("/audit?action=key.create")
    rows = re.findall(r'<tr id="seq-(\d+)">', first.text)
    assert len(rows) == 50
    assert first.text.count('<td><a href="/audit?action=key.create">key.create</a></td>') == 50
    link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert link is not None
    query = parse_qs(urlparse(link.group(1).replace("&amp;", "&")).query)
    assert query["action"] == ["key.create"]
    second = ui.get("/audit", params={"action": "key.create", "cursor": query["cursor"][0]})
    later = re.findall(r'<tr id="seq-(\d+)">', second.text)
    assert later  # the older ones
    assert max(int(s) for s in later) < min(int(s) for s in rows)
    assert "No entry matches" in ui.get("/audit?action=nothing.happened").text


def test_audit_shows_where_the_chain_breaks(ui: PageClient, modelcycle_services: Services) -> None:
    make_key(modelcycle_services, Role.APP)
    with modelcycle_services.store.write() as session:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 1).values(actor="forged"))
    page = ui.get("/audit")
    assert page.status_code == 200
    assert "Chain broken" in page.text
    assert "at entry 1" in page.text


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MAINTAINER])
def test_audit_is_for_admins_only(modelcycle_services: Services, role: Role) -> None:
    for client in _client_as(modelcycle_services, role):
        page = client.get("/audit")
        assert page.status_code == 403
        assert "admin" in page.text
        assert "key.create" not in page.text


# -- keys --------------------------------------------------------------------------------


def test_a_created_key_is_shown_once_and_authenticates(ui: PageClient) -> None:
    page, secret = _create(ui, name="ci runner", role="viewer", deployments="chat, support")
    assert "shown this once" in page
    assert _whoami(ui, secret) == 200
    listing = ui.get("/keys")
    assert listing.status_code == 200
    assert "ci runner" in listing.text
    assert "chat, support" in listing.text
    assert secret not in listing.text  # never again
    assert secret not in ui.get("/audit").text


def test_a_key_with_an_expiry_and_bad_expiries(ui: PageClient) -> None:
    page, secret = _create(ui, name="temp", role="app", expires="2099-01-31T18:00")
    assert "2099-01-31 18:00:00" in page
    assert _whoami(ui, secret) == 200
    assert ui.post("/keys", {"name": "x", "role": "app", "expires": "soon"}).status_code == 400
    past = ui.post("/keys", {"name": "x", "role": "app", "expires": "2001-01-01"})
    assert past.status_code == 400
    assert "in the past" in past.text
    assert ui.post("/keys", {"name": "x", "role": "boss"}).status_code == 422
    assert (
        ui.post("/keys", {"name": "x", "role": "app", "deployments": "Bad Name!"}).status_code
        == 422
    )


def test_revoke_goes_through_a_confirmation_and_the_key_stops_working(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    _, secret = _create(ui, name="doomed", role="app")
    key_id = _key_id(modelcycle_services, modelcycle_admin, "doomed")
    confirm = ui.get(f"/keys/{key_id}/confirm-revoke")
    assert confirm.status_code == 200
    assert f'action="/keys/{key_id}/revoke"' in confirm.text
    assert _whoami(ui, secret) == 200  # showing the page changed nothing

    done = ui.post(f"/keys/{key_id}/revoke")
    assert done.status_code == 303
    assert done.headers["location"].startswith("/keys?notice=")
    assert _whoami(ui, secret) == 401
    listing = ui.get(done.headers["location"])
    assert "is revoked" in listing.text
    assert '<span class="badge revoked">revoked</span>' in listing.text
    assert ui.post(f"/keys/{key_id}/revoke").status_code == 409  # twice: a clear conflict


def test_rotate_shows_the_new_secret_once_and_retires_the_old_one(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    _, old = _create(ui, name="rotating", role="viewer")
    key_id = _key_id(modelcycle_services, modelcycle_admin, "rotating")
    confirm = ui.get(f"/keys/{key_id}/confirm-rotate")
    assert 'name="grace_s"' in confirm.text
    rotated = ui.post(f"/keys/{key_id}/rotate", {"grace_s": "0"})
    assert rotated.status_code == 201
    found = SECRET.search(rotated.text)
    assert found is not None
    assert found.group(1) != old
    assert "is revoked: it no longer works" in rotated.text
    assert _whoami(ui, found.group(1)) == 200
    assert _whoami(ui, old) == 401


def test_a_viewer_can_neither_see_nor_change_keys(
    ui: PageClient,
    viewer_ui: PageClient,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
) -> None:
    _, secret = _create(ui, name="precious", role="app")
    key_id = _key_id(modelcycle_services, modelcycle_admin, "precious")
    before = modelcycle_services.access.list_keys(
        modelcycle_admin.principal, project=None, cursor=None, limit=500
    ).items
    assert viewer_ui.get("/keys").status_code == 403
    assert viewer_ui.get(f"/keys/{key_id}/confirm-revoke").status_code == 403
    created = viewer_ui.post("/keys", {"name": "sneaky", "role": "app"})
    assert created.status_code == 403
    assert SECRET.search(created.text) is None
    assert viewer_ui.post(f"/keys/{key_id}/revoke").status_code == 403
    assert viewer_ui.post(f"/keys/{key_id}/rotate", {"grace_s": "0"}).status_code == 403
    after = modelcycle_services.access.list_keys(
        modelcycle_admin.principal, project=None, cursor=None, limit=500
    ).items
    assert after == before
    assert _whoami(ui, secret) == 200


def test_a_maintainer_cannot_mint_an_admin_key(
    maintainer_ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    form = maintainer_ui.get("/keys")
    assert form.status_code == 200
    assert '<option value="admin"' not in form.text  # not offered...
    refused = maintainer_ui.post("/keys", {"name": "escalate", "role": "admin"})
    assert refused.status_code == 403  # ...and refused when posted anyway
    assert SECRET.search(refused.text) is None
    names = [
        key.name
        for key in modelcycle_services.access.list_keys(
            modelcycle_admin.principal, project=None, cursor=None, limit=500
        ).items
    ]
    assert "escalate" not in names
    admin_key = modelcycle_admin.principal.key_id
    assert maintainer_ui.post(f"/keys/{admin_key}/revoke").status_code == 403
    _, secret = _create(maintainer_ui, name="app-for-ci", role="app")  # within its powers
    assert _whoami(maintainer_ui, secret) == 200


def test_forms_without_the_csrf_token_are_refused(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    _, secret = _create(ui, name="kept", role="app")
    key_id = _key_id(modelcycle_services, modelcycle_admin, "kept")
    for url, data in (
        ("/keys", {"name": "forged", "role": "app"}),
        (f"/keys/{key_id}/revoke", {}),
        (f"/keys/{key_id}/rotate", {"grace_s": "0"}),
    ):
        response = ui.http.post(url, data=data, follow_redirects=False)
        assert response.status_code == 403, url
    foreign = ui.post(f"/keys/{key_id}/revoke", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert _whoami(ui, secret) == 200


def test_an_unknown_key_is_a_404_page(ui: PageClient) -> None:
    assert ui.get("/keys/999999/confirm-revoke").status_code == 404
    assert ui.post("/keys/999999/revoke").status_code == 404
    assert ui.get("/keys/abc/confirm-rotate").status_code == 422
