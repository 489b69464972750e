"""Guardrails page: policies and who uses them, findings of guarded requests, the try-it form."""

from __future__ import annotations

import html
import re

import pytest

from modelcycle.deploy.schemas import DeploymentSpec, Route
from modelcycle.guard import GuardPolicyCreate
from modelcycle.guard.schemas import GuardRule
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair, make_key, register
from modelcycle.types import Role
from ui.conftest import PageClient, page_client

EMAIL = "ana.garcia@example.com"


@pytest.fixture
def guarded(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Services:
    """Deployment ``chat`` runs policy ``pii-redact``; ``open`` runs no guard."""
    services, admin = modelcycle_services, modelcycle_admin.principal
    services.guard.create(
        admin,
        GuardPolicyCreate(
            name="pii-redact",
            description="Redact personal data both ways.",
            input=[GuardRule(detector="pii", action="redact")],
            output=[GuardRule(detector="pii", action="redact", min_score=0.7)],
        ),
    )
    version = register(services, admin, "bot")
    route = Route(target=f"bot@{version.version}", weight=100)
    services.deployments.create(
        admin, DeploymentSpec(name="chat", routes=[route], guard="pii-redact")
    )
    services.deployments.create(admin, DeploymentSpec(name="open", routes=[route]))
    return services


def _chat(ui: PageClient, key: str, deployment: str, text: str) -> str:
    response = ui.http.post(
        "/v1/chat/completions",
        json={"model": deployment, "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.headers["x-modelcycle-trace-id"]


def test_policies_show_their_rules_and_the_deployments_using_them(
    ui: PageClient, guarded: Services
) -> None:
    page = ui.get("/guard")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Guardrails</h1>" in text
    assert "<code>pii-redact</code>" in text
    assert "Redact personal data both ways." in text
    article = re.search(
        r'<article class="guard-policy" aria-labelledby="policy-pii-redact">(.*?)</article>',
        text,
        re.S,
    )
    assert article is not None
    policy = article.group(1)
    assert '<a href="/deployments/chat">chat</a>' in policy
    # The rule table: stage, detector, action, threshold.
    rules = re.findall(r"<td>(input|output)</td>\s*<th scope=\"row\">(\w+)</th>", policy)
    assert rules == [("input", "pii"), ("output", "pii")]
    assert '<span class="badge redact">redact</span>' in policy
    assert "0.70" in policy
    assert "<code>default</code>" in text  # the project's built-in default policy, unused
    assert "Deployments without a guard" in text
    assert '<a href="/deployments/open">open</a>' in text


def test_findings_of_guarded_requests_are_listed_by_detector(
    ui: PageClient, guarded: Services
) -> None:
    app_key = make_key(guarded, Role.APP).key
    redacted = _chat(ui, app_key, "chat", f"write to {EMAIL} please")
    _chat(ui, app_key, "open", f"write to {EMAIL} again")  # no guard: no finding
    guarded.recorder.flush()

    page = ui.get("/guard?range=1h")
    assert page.status_code == 200
    text = page.text
    assert f'href="/traces/{redacted}"' in text
    assert "<code>EMAIL_ADDRESS</code>" in text
    assert EMAIL not in text  # findings say where, never what
    assert 'aria-label="Findings per detector in the latest 1 guarded request"' in text
    assert ">pii</text>" in text  # the detector's bar

    blocked_only = ui.get("/guard?outcome=block")
    assert redacted not in blocked_only.text
    assert "No request was flagged, redacted or blocked in this range." in blocked_only.text
    assert redacted in ui.get("/guard?outcome=redact&deployment=chat").text
    assert redacted not in ui.get("/guard?deployment=open").text


def test_a_bad_filter_is_a_400_page(ui: PageClient, guarded: Services) -> None:
    page = ui.get("/guard?outcome=explode")
    assert page.status_code == 400
    assert "outcome must be flag, redact or block" in page.text
    assert ui.get("/guard?deployment=NOT%20A%20NAME").status_code == 422


def test_the_check_form_redacts_an_email_address(ui: PageClient, guarded: Services) -> None:
    page = ui.post(
        "/guard/check",
        {"text": f"Contact me at {EMAIL}", "stage": "input", "using": "deployment:chat"},
    )
    assert page.status_code == 200
    redacted = re.search(r'<pre aria-labelledby="redacted-h"[^>]*>(.*?)</pre>', page.text, re.S)
    assert redacted is not None
    assert html.unescape(redacted.group(1)) == "Contact me at [EMAIL_ADDRESS]"
    assert '<span class="badge redact">redact</span>' in page.text
    assert "<code>EMAIL_ADDRESS</code>" in page.text
    assert "<code>pii-redact</code>" in page.text  # the policy that ran


def test_the_check_form_without_a_guard_allows_and_with_a_bad_target_explains(
    ui: PageClient, guarded: Services
) -> None:
    allowed = ui.post("/guard/check", {"text": f"Mail {EMAIL}", "using": "deployment:open"})
    assert allowed.status_code == 200
    assert '<span class="badge allow">allow</span>' in allowed.text
    missing = ui.post("/guard/check", {"text": "hi", "using": "deployment:nowhere"})
    assert missing.status_code == 404
    assert ui.post("/guard/check", {"text": "hi", "using": "somewhere"}).status_code == 400
    assert ui.post("/guard/check", {"text": "hi", "stage": "middle"}).status_code == 422


def test_the_check_form_needs_the_csrf_token_and_a_session(
    ui: PageClient, guarded: Services
) -> None:
    forged = ui.http.post("/guard/check", data={"text": EMAIL}, follow_redirects=False)
    assert forged.status_code == 403
    assert "[EMAIL_ADDRESS]" not in forged.text
    anonymous = page_client(guarded, None)
    assert anonymous.get("/guard", follow_redirects=False).headers["location"].startswith("/login")


def test_a_viewer_sees_the_page_and_may_check_a_text(guarded: Services) -> None:
    viewer = page_client(guarded, make_key(guarded, Role.VIEWER).key)
    with viewer.http:
        assert viewer.get("/guard").status_code == 200
        checked = viewer.post(
            "/guard/check", {"text": f"Mail {EMAIL}", "using": "policy:pii-redact"}
        )
        assert checked.status_code == 200
        assert "[EMAIL_ADDRESS]" in checked.text
