"""Signing in to the dashboard: sessions, cookies, CSRF, redirects, throttling."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, UiSessionRow
from modelcycle.testing import KeyPair, make_key
from modelcycle.types import Role
from ui.conftest import page_client


def test_a_page_without_a_session_redirects_to_sign_in_and_back(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, None)
    response = client.get("/traces?status=error", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Ftraces%3Fstatus%3Derror"
    form = client.get(response.headers["location"])
    assert 'name="next" value="/traces?status=error"' in form.text
    signed = client.http.post(
        "/login",
        data={"api_key": modelcycle_admin.key, "next": "/traces?status=error"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/traces?status=error"


def test_the_session_cookie_is_httponly_strict_and_only_its_hash_is_stored(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, None)
    response = client.http.post(
        "/login", data={"api_key": modelcycle_admin.key}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie
    token = client.http.cookies["mc_session"]
    with modelcycle_services.store.read() as session:
        stored = session.execute(select(UiSessionRow.token_hash)).scalars().all()
        actions = session.execute(select(AuditEntryRow.action)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert modelcycle_admin.key not in cookie
    assert "ui.sign_in" in actions


def test_a_wrong_key_and_an_app_key_are_refused_with_the_reason(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, None)
    wrong = client.http.post("/login", data={"api_key": "mc_nothere1_" + "x" * 32})
    assert wrong.status_code == 401
    assert "invalid API key" in wrong.text
    app_key = make_key(modelcycle_services, Role.APP)
    refused = client.http.post("/login", data={"api_key": app_key.key})
    assert refused.status_code == 403
    assert "sign in with a &#39;viewer&#39; key or higher" in refused.text
    assert "mc_session" not in client.http.cookies


def test_revoking_the_key_ends_its_sessions(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    viewer = make_key(modelcycle_services, Role.VIEWER)
    client = page_client(modelcycle_services, viewer.key)
    assert client.get("/").status_code == 200
    modelcycle_services.access.revoke_key(modelcycle_admin.principal, viewer.principal.key_id)
    gone = client.get("/", follow_redirects=False)
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/login")


def test_signing_out_needs_the_csrf_token_and_ends_the_session(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, modelcycle_admin.key)
    forged = client.http.post("/logout", data={"csrf": "not-the-token"}, follow_redirects=False)
    assert forged.status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    token = client.http.cookies["mc_session"]
    out = client.post("/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    client.http.cookies.set("mc_session", token)  # a stolen copy of the cookie is dead too
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_form_posted_from_another_site_is_refused(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, modelcycle_admin.key)
    response = client.post("/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    signin = client.http.post(
        "/login",
        data={"api_key": modelcycle_admin.key},
        headers={"Origin": "https://evil.example"},
    )
    assert signin.status_code == 403


def test_sign_in_never_redirects_off_site(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, None)
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        response = client.http.post(
            "/login",
            data={"api_key": modelcycle_admin.key, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


def test_repeated_wrong_keys_are_throttled_like_the_api(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, None)
    statuses = [
        client.http.post("/login", data={"api_key": f"mc_nothere1_{i:032d}"}).status_code
        for i in range(modelcycle_services.settings.auth_failure_limit + 1)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    blocked = client.http.post("/login", data={"api_key": modelcycle_admin.key})
    assert blocked.status_code == 429


def test_pages_carry_a_strict_content_security_policy_and_own_assets(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    client = page_client(modelcycle_services, modelcycle_admin.key)
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "http://" not in page.text.replace("http://testserver", "")
    assert "https://" not in page.text
    for asset in ("/ui/static/app.css", "/ui/static/app.js"):
        assert client.get(asset).status_code == 200
