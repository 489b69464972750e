"""What a model report gathers: each section shows what the platform recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from modelcycle.errors import NotFound, PermissionDenied
from modelcycle.hookspecs import hookimpl
from modelcycle.monitor.trace_schemas import MonitorPolicyUpdate
from modelcycle.reports import ModelReport, render_html, render_markdown
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.store import audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import ModelVersionRow
from modelcycle.testing import KeyPair, make_key, make_project, make_services, register
from modelcycle.types import Role
from reports.conftest import MODEL, SCRIPT, Story, injection_rule, put_policy, tell_story


def gather(story: Story, ref: str = "2", **kwargs: Any) -> ModelReport:
    return story.services.reports.gather(story.admin, MODEL, ref, now=story.now, **kwargs)


def item(report: ModelReport, ref: str) -> Any:
    return next(c for c in report.compliance if c.ref == ref)


def test_identity_use_and_lineage_come_from_the_registry(story: Story) -> None:
    report = gather(story, "production")  # an alias finds the same version as its number

    ident = report.identity
    assert (ident.model, ident.version, ident.source) == (MODEL, 2, "mock://tuned")
    assert ident.aliases == ["production"]
    assert ident.params == {"temperature": 0.1, "max_tokens": 256}
    assert ident.metadata["description"] == "Tuned on support tickets."
    assert ident.created_by == story.admin.actor
    use = {field.key: field for field in report.use}
    assert use["intended_use"].value == "Answer customer questions about orders."
    assert use["license"].recorded_on is None  # on version 1 only, not on the model
    assert use["contact"].value is None
    assert "--meta contact=" in (use["contact"].hint or "")
    assert [f"{a.model}@{a.version}" for a in report.lineage.ancestors] == [f"{MODEL}@1"]
    assert [(e.relation, e.target_ref) for e in report.lineage.edges] == [("parent", f"{MODEL}@1")]
    assert gather(story, "1").lineage.children[0].version == 2


def test_deployments_show_the_routes_and_the_guard_rules(story: Story) -> None:
    [canary] = gather(story).deployments
    assert canary.name == "support"
    assert [(r.role, r.target, r.weight) for r in canary.routes] == [
        ("canary", f"{MODEL}@production", 10)
    ]
    assert canary.guard is not None
    assert canary.guard.found
    rules = {(r.stage, r.detector, r.action) for r in canary.guard.rules}
    assert ("input", "injection", "block") in rules
    assert ("output", "pii", "redact") in rules
    [primary] = gather(story, "1").deployments
    assert [(r.role, r.weight) for r in primary.routes] == [("primary", 90)]
    markdown = render_markdown(gather(story))
    assert "| support | 1 | canary | support-bot@production | 10% | strict | rpm=600 |" in markdown
    assert "| input | injection | block | 0.5 | all |" in markdown


def test_monitoring_counts_only_this_versions_traffic(story: Story) -> None:
    monitoring = gather(story).monitoring
    assert monitoring.requests == 3
    assert monitoring.errors == 1
    assert monitoring.input_tokens == 33
    assert monitoring.latency_p95_ms is not None
    assert monitoring.latency_p95_ms > 120
    assert [(s.deployment, s.route, s.requests) for s in monitoring.by_route] == [
        ("support", "canary", 3)
    ]
    assert monitoring.guard_decisions == {"allow": 2, "redact": 1}
    assert monitoring.guard_before_routing == {"block": 1}
    assert gather(story, "1").monitoring.requests == 1


def test_incidents_and_changes_of_its_deployments(story: Story) -> None:
    with story.services.store.write() as session:  # as the guard stage audits a change
        audit.append(
            session,
            AuditRecord(
                actor="key:security",
                action="guard_policy.update",
                target="guard_policy:strict",
                project=story.admin.project,
            ),
        )
    report = gather(story)
    assert [r.name for r in report.incidents.rules] == ["support-errors"]
    [alert] = report.incidents.alerts
    assert (alert.rule, alert.state, alert.value) == ("support-errors", "firing", 0.33)
    assert [d.deployment for d in report.incidents.drift] == ["support"]
    changes = [(c.action, c.target) for c in report.changes.entries]
    assert ("version.register", f"model:{MODEL}@2") in changes
    assert ("alias.set", f"model:{MODEL}/alias:production") in changes
    assert ("deployment.create", "deployment:support") in changes
    assert ("guard_policy.update", "guard_policy:strict") in changes
    assert ("alert.create", "alert:support-errors") in changes
    assert ("version.register", f"model:{MODEL}@1") not in changes  # another version's
    assert all(c.actor for c in report.changes.entries)


def test_the_window_leaves_older_activity_out(story: Story) -> None:
    later = story.services.reports.gather(
        story.admin, MODEL, "2", days=1, now=story.now + timedelta(days=2)
    )
    assert later.monitoring.requests == 0
    assert later.incidents.alerts == []
    assert later.changes.entries  # the audit trail is not windowed


def test_llm01_is_covered_only_by_an_injection_rule_on_input(story: Story) -> None:
    assert item(gather(story), "LLM01:2025").status == "covered"
    services, admin = story.services, story.admin

    def deploy_with(policy: str) -> str:
        services.deployments.update(admin, "support", _config(services, admin, guard=policy))
        return item(gather(story), "LLM01:2025").status

    put_policy(services, admin, "output-only", injection_rule("output", "block"))
    assert deploy_with("output-only") == "not covered"
    put_policy(services, admin, "flag-only", injection_rule("input", "flag"))
    assert deploy_with("flag-only") == "partial"
    put_policy(services, admin, "input-block", injection_rule("input", "block"))
    assert deploy_with("input-block") == "covered"
    evidence = item(gather(story), "LLM01:2025").evidence
    assert "support" in evidence


def _config(services: Services, admin: Any, **changes: Any) -> Any:
    current = services.deployments.get(admin, "support").spec
    return current.model_copy(update=changes)


def test_compliance_map_states_facts_from_the_data(story: Story) -> None:
    report = gather(story)
    assert len([c for c in report.compliance if c.framework.startswith("OWASP")]) == 10
    assert item(report, "LLM10:2025").status == "covered"  # rpm=600 on the one deployment
    assert "max_tokens=256" in item(report, "LLM10:2025").evidence
    assert item(report, "LLM02:2025").status == "covered"  # pii/secrets redacted on output
    assert item(report, "LLM07:2025").status == "partial"  # no leakage test contributed
    assert item(report, "Art. 13").status == "partial"  # contact missing
    assert "contact" in item(report, "Art. 13").evidence
    assert item(report, "Art. 14").status == "covered"  # an alert rule watches 'support'
    assert item(report, "Art. 19 / Art. 26(6)").status == "covered"  # traces kept forever
    assert item(report, "Art. 50").status == "not covered"
    assert item(report, "LLM06:2025").evidence == "no evidence in this report"

    story.services.monitor_policies.set(story.admin, MonitorPolicyUpdate(retention_days=30))
    shorter = gather(story)
    assert shorter.retention.retention_days == 30
    assert item(shorter, "Art. 19 / Art. 26(6)").status == "not covered"
    assert "30 days" in item(shorter, "Art. 19 / Art. 26(6)").evidence


class SafetyEvals:
    @hookimpl
    def modelcycle_model_report_sections(
        self, project_id: int, model: str, version: int
    ) -> list[dict[str, Any]]:
        return [
            {
                "title": "Red-team run 7",
                "markdown": f"{model}@{version}: 0 of 120 injections succeeded.",
                "covers": ["LLM01:2025", "Art. 15"],
            }
        ]


class BrokenEvals:
    @hookimpl
    def modelcycle_model_report_sections(
        self, project_id: int, model: str, version: int
    ) -> list[dict[str, Any]]:
        raise RuntimeError("database of evals is down")


def test_evaluations_come_from_stages_that_contribute_sections(
    modelcycle_settings: Settings, modelcycle_admin: KeyPair
) -> None:
    services = make_services(modelcycle_settings, plugins=(SafetyEvals(), BrokenEvals()))
    try:
        story = tell_story(services, modelcycle_admin.principal)
        report = gather(story)
    finally:
        services.close()
    titles = [section.title for section in report.evaluations]
    assert titles[0] == "Red-team run 7"
    assert titles[1] == "Results of BrokenEvals missing"  # named; the report still stands
    assert "Red-team run 7" in item(report, "Art. 15").evidence
    assert item(report, "Art. 15").status == "covered"  # evaluated, and injection blocked
    assert "0 of 120 injections succeeded" in render_markdown(report)


def test_without_evaluations_the_section_says_so(story: Story) -> None:
    report = gather(story)
    assert report.evaluations == []
    assert "No evaluation results are recorded for this version" in render_markdown(report)


def test_recorded_text_is_escaped_in_html_and_markdown(story: Story) -> None:
    report = gather(story)
    page = render_html(report)
    assert SCRIPT not in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "http://" not in page
    assert "https://" not in page
    markdown = render_markdown(report)
    assert SCRIPT not in markdown
    assert "&lt;script&gt;" in markdown


def test_credentials_stored_around_the_check_are_withheld(story: Story) -> None:
    with story.services.store.write() as session:
        session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.version == 2)
            .values(
                params={"temperature": 0.1, "upstream": {"api_key": "sk-live-0123456789"}},
                source="https://bob:hunter2@llm.example/v1?token=abc123",
            )
        )
    report = gather(story)
    assert report.identity.params["upstream"] == {"api_key": "[redacted]"}
    assert report.identity.source.startswith("https://llm.example/v1?token=")
    for text in (render_markdown(report), render_html(report), report.model_dump_json()):
        for secret in ("sk-live-0123456789", "hunter2", "abc123"):
            assert secret not in text
    assert "params.upstream.api_key" in report.identity.redacted


def test_unknown_versions_aliases_and_other_projects_are_not_found(story: Story) -> None:
    reports, admin = story.services.reports, story.admin
    with pytest.raises(NotFound, match="no version 9"):
        reports.gather(admin, MODEL, "9")
    with pytest.raises(NotFound, match="no version or alias 'staging'"):
        reports.gather(admin, MODEL, "staging")
    with pytest.raises(NotFound, match="not found"):
        reports.gather(admin, "never-registered", "1")
    other = make_project(story.services, "team-x")
    stranger = make_key(story.services, Role.ADMIN, other).principal
    with pytest.raises(NotFound):
        reports.gather(stranger, MODEL, "2")
    register(story.services, stranger, MODEL, source="mock://theirs")
    assert reports.gather(stranger, MODEL, "1").identity.source == "mock://theirs"


def test_viewers_may_read_reports_and_app_keys_may_not(story: Story) -> None:
    viewer = make_key(story.services, Role.VIEWER).principal
    seen = story.services.reports.gather(viewer, MODEL, "2")
    assert seen.identity.version == 2
    # The audit log is admin-only: a viewer's report leaves the change history out.
    assert seen.changes.withheld
    assert seen.changes.entries == []
    assert "admin keys only" in story.services.reports.render(seen, "md")
    admin = story.services.reports.gather(story.admin, MODEL, "2")
    assert not admin.changes.withheld
    assert admin.changes.entries
    app_key = make_key(story.services, Role.APP).principal
    with pytest.raises(PermissionDenied):
        story.services.reports.gather(app_key, MODEL, "2")
