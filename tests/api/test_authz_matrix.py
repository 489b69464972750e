"""The authorization matrix: every authenticated endpoint x every role x own/other project.

Design, as a user relies on it:

* no key, or a bad one: 401 everywhere;
* ``app`` keys: inference, ``whoami`` and feedback on traces (applications relay
  their users' ratings); 403 on every other management endpoint;
* ``viewer``: reads models, versions, aliases, lineage, history, traces and rollups;
  403 on every mutation but feedback, and on keys and audit;
* ``maintainer``: also changes the registry and deployments, and manages keys
  (of roles up to its own: tests/access/test_grants.py); 403 on audit and projects;
* ``admin``: everything in its own project; only admins of the root project
  create projects and reach other projects' keys and audit entries;
* another project's resource is 404 — indistinguishable from one that does not
  exist — never 200, and nothing of it appears in any response; on the
  OpenAI-compatible routes, another project's deployment is OpenAI's 404
  ``model_not_found`` for every key, root admins included.

Every refused request leaves the audit log untouched; every allowed mutation
adds to it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from modelcycle.access import Principal
from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec
from modelcycle.evaluate.bias import start_bias
from modelcycle.evaluate.online_schemas import OnlineEvalSet
from modelcycle.evaluate.redteam import start_redteam
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRunCreate
from modelcycle.guard.schemas import GuardPolicyCreate
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.monitor.drift_schemas import DriftCheck, DriftScheduleCreate
from modelcycle.services import Services, build_worker
from modelcycle.store.tables import AuditEntryRow
from modelcycle.testing import (
    KeyPair,
    admin_of,
    make_key,
    make_project,
    make_services,
    make_settings,
    register,
)
from modelcycle.types import ROOT_PROJECT, Role, VersionStatus

OWN, OTHER = "own", "other"
TEAM_A, TEAM_B = "team-a", "team-b"
ROLES = ["admin", "maintainer", "viewer", "app", "root"]
MARKER = "secret-of-team-b"
"""Appears in every resource of team-b, so a leak shows in any response text."""

# How a request aimed at another project's resource must end.
HIDDEN = "hidden"  # 404 for everyone allowed to make the request
ROOT_SEES = "root-sees"  # root admins reach it; everyone else gets 404
UNSCOPED = "unscoped"  # the request names nothing of the other project


@dataclass
class Env:
    services: Services
    app: FastAPI
    keys: dict[str, KeyPair]
    admins: dict[str, Principal]
    names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fresh(self, stem: str) -> str:
        return f"{stem}-{next(self.names)}"

    def shared(self, project: str) -> str:
        return f"shared-{project}"

    def source(self, project: str) -> str:
        return f"mock://{MARKER}" if project == TEAM_B else f"mock://{project}"

    def model_with_version(self, project: str, *, archived: bool = False) -> str:
        name = self.fresh("m")
        register(self.services, self.admins[project], name, source=self.source(project))
        if archived:
            self.services.registry.set_status(self.admins[project], name, 1, VersionStatus.ARCHIVED)
        return name

    def audit_seq_of(self, project: str) -> int:
        with self.services.store.read() as session:
            return int(
                session.execute(
                    select(func.min(AuditEntryRow.seq)).where(AuditEntryRow.project == project)
                ).scalar_one()
            )

    def audit_count(self) -> int:
        with self.services.store.read() as session:
            return int(session.execute(select(func.count(AuditEntryRow.seq))).scalar_one())


@dataclass(frozen=True)
class Call:
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    check: Callable[[Env, httpx.Response], None] | None = None
    files: dict[str, Any] | None = None
    """Multipart file fields (``/v1/files``); ``data`` holds the form's other fields."""
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    need: Role | str
    """The least role allowed, or ``"root"`` for root-project admins only."""
    success: int
    other: str
    build: Callable[[Env, str], Call]
    audited: bool | None = None
    """Whether success adds to the audit log; by default, whether the method mutates."""
    not_found_type: str = "not_found_error"
    """The error type of a 404 (OpenAI's routes answer ``invalid_request_error``)."""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def mutates(self) -> bool:
        return self.method != "GET" if self.audited is None else self.audited


def _new_version_is_one(env: Env, response: httpx.Response) -> None:
    # A model of the same name in another project is a different model.
    assert response.json()["version"] == 1


def _new_version_is_two(env: Env, response: httpx.Response) -> None:
    assert response.json()["version"] == 2


def _versions_call(env: Env, project: str, scope: str) -> Call:
    name = env.model_with_version(project)
    check = _new_version_is_one if scope == OTHER else _new_version_is_two
    return Call(
        f"/api/v1/models/{name}/versions",
        json={"source": "mock://new", "backend": "mock"},
        check=check,
    )


def _key_of(env: Env, project: str) -> int:
    return make_key(env.services, Role.VIEWER, project).principal.key_id


def _alias_to_delete(env: Env, project: str) -> Call:
    alias = env.fresh("tmp")
    env.services.aliases.set(env.admins[project], env.shared(project), alias, 1)
    return Call(f"/api/v1/models/{env.shared(project)}/aliases/{alias}")


def _empty_model(env: Env, project: str) -> str:
    name = env.fresh("empty")
    register(env.services, env.admins[project], name, source=env.source(project))
    env.services.registry.delete_version(env.admins[project], name, 1)
    return name


def _model_to_create(env: Env, project: str) -> str:
    # In the other project's scope: a name taken there is still free here.
    return env.model_with_version(project) if project == TEAM_B else env.fresh("new")


ROUTE_V1 = {"target": "common@1", "weight": 90}
DEPLOYMENT = "/api/v1/deployments/{name}"


def _deployment(env: Env, project: str, *, promoted: bool = False) -> str:
    # Every project has a model "common" with versions 1 and 2; 2 is the canary.
    name = env.fresh("dep")
    spec = {"name": name, "routes": [ROUTE_V1, {"target": "common@2", "weight": 10}]}
    env.services.deployments.create(env.admins[project], DeploymentSpec.model_validate(spec))
    if promoted:
        env.services.deployments.promote(env.admins[project], name)
    return name


def _deployment_to_create(env: Env, project: str) -> str:
    # In the other project's scope: a deployment name taken there is still free here.
    return _deployment(env, project) if project == TEAM_B else env.fresh("new-dep")


MODEL = "/api/v1/models/{name}"
VERSION = "/api/v1/models/{name}/versions/{version}"
SECRET = "/api/v1/secrets/{name}"


def _secret(env: Env, project: str) -> str:
    # Names are per project: this one exists only in ``project``.
    name = env.fresh("upstream-key")
    env.services.secrets.put(env.admins[project], name, "sk-matrix-0123456789abcdef")
    return name


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/v1/whoami", Role.APP, 200, UNSCOPED, lambda e, p: Call("/api/v1/whoami")),
    Endpoint(
        "POST",
        "/api/v1/projects",
        "root",
        201,
        UNSCOPED,
        lambda e, p: Call("/api/v1/projects", json={"name": e.fresh("proj")}),
    ),
    Endpoint(
        "GET", "/api/v1/projects", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/projects")
    ),
    Endpoint(
        "POST",
        "/api/v1/keys",
        Role.MAINTAINER,
        201,
        ROOT_SEES,
        lambda e, p: Call("/api/v1/keys", json={"name": "k", "role": "viewer", "project": p}),
    ),
    Endpoint(
        "GET",
        "/api/v1/keys",
        Role.MAINTAINER,
        200,
        ROOT_SEES,
        lambda e, p: Call("/api/v1/keys", params={"project": p}),
    ),
    Endpoint(
        "GET",
        "/api/v1/keys/{key_id}",
        Role.MAINTAINER,
        200,
        ROOT_SEES,
        lambda e, p: Call(f"/api/v1/keys/{_key_of(e, p)}"),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/keys/{key_id}",
        Role.MAINTAINER,
        200,
        ROOT_SEES,
        lambda e, p: Call(f"/api/v1/keys/{_key_of(e, p)}"),
    ),
    Endpoint(
        "POST",
        "/api/v1/keys/{key_id}/rotate",
        Role.MAINTAINER,
        201,
        ROOT_SEES,
        lambda e, p: Call(f"/api/v1/keys/{_key_of(e, p)}/rotate", json={"grace_s": 60}),
    ),
    Endpoint("GET", "/api/v1/audit", Role.ADMIN, 200, UNSCOPED, lambda e, p: Call("/api/v1/audit")),
    Endpoint(
        "GET",
        "/api/v1/audit/verify",
        Role.ADMIN,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/audit/verify"),
    ),
    Endpoint(
        "GET",
        "/api/v1/audit/{seq}",
        Role.ADMIN,
        200,
        ROOT_SEES,
        lambda e, p: Call(f"/api/v1/audit/{e.audit_seq_of(p)}"),
    ),
    Endpoint(
        "POST",
        "/api/v1/models",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call("/api/v1/models", json={"name": _model_to_create(e, p)}),
    ),
    Endpoint(
        "GET", "/api/v1/models", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/models")
    ),
    Endpoint(
        "GET", MODEL, Role.VIEWER, 200, HIDDEN, lambda e, p: Call(f"/api/v1/models/{e.shared(p)}")
    ),
    Endpoint(
        "PATCH",
        MODEL,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}", json={"description": "x"}),
    ),
    Endpoint(
        "DELETE",
        MODEL,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{_empty_model(e, p)}"),
    ),
    Endpoint(
        "POST",
        "/api/v1/models/{name}/versions",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: _versions_call(e, p, OTHER if p == TEAM_B else OWN),
    ),
    Endpoint(
        "GET",
        "/api/v1/models/{name}/versions",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/versions"),
    ),
    Endpoint(
        "GET",
        VERSION,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/versions/1"),
    ),
    Endpoint(
        "DELETE",
        VERSION,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.model_with_version(p)}/versions/1"),
    ),
    Endpoint(
        "POST",
        VERSION + "/archive",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.model_with_version(p)}/versions/1/archive"),
    ),
    Endpoint(
        "POST",
        VERSION + "/restore",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/models/{e.model_with_version(p, archived=True)}/versions/1/restore"
        ),
    ),
    Endpoint(
        "GET",
        VERSION + "/lineage",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/versions/2/lineage"),
    ),
    Endpoint(
        "GET",
        MODEL + "/aliases",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/aliases"),
    ),
    Endpoint(
        "GET",
        MODEL + "/alias-history",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/alias-history"),
    ),
    Endpoint(
        "GET",
        MODEL + "/aliases/{alias}",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/aliases/production"),
    ),
    Endpoint(
        "PUT",
        MODEL + "/aliases/{alias}",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/models/{e.shared(p)}/aliases/staging", json={"version": 1}),
    ),
    Endpoint("DELETE", MODEL + "/aliases/{alias}", Role.MAINTAINER, 204, HIDDEN, _alias_to_delete),
    Endpoint(
        "POST",
        "/api/v1/deployments",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call(
            "/api/v1/deployments",
            json={"name": _deployment_to_create(e, p), "routes": [{**ROUTE_V1, "weight": 100}]},
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/deployments",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/deployments"),
    ),
    Endpoint(
        "GET",
        DEPLOYMENT,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/deployments/dep-{p}"),
    ),
    Endpoint(
        "PUT",
        DEPLOYMENT,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/deployments/{_deployment(e, p)}",
            json={"routes": [{**ROUTE_V1, "weight": 100}]},
        ),
    ),
    Endpoint(
        "DELETE",
        DEPLOYMENT,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/deployments/{_deployment(e, p)}"),
    ),
    Endpoint(
        "POST",
        DEPLOYMENT + "/promote",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/deployments/{_deployment(e, p)}/promote"),
    ),
    Endpoint(
        "POST",
        DEPLOYMENT + "/rollback",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/deployments/{_deployment(e, p, promoted=True)}/rollback"),
    ),
    Endpoint(
        "GET",
        DEPLOYMENT + "/revisions",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/deployments/dep-{p}/revisions"),
    ),
    Endpoint(
        "PUT",
        SECRET,
        Role.ADMIN,
        200,
        UNSCOPED,
        lambda e, p: Call(f"/api/v1/secrets/{e.fresh('new-key')}", json={"value": "sk-new-1"}),
    ),
    Endpoint(
        "GET",
        "/api/v1/secrets",
        Role.MAINTAINER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/secrets"),
    ),
    Endpoint(
        "GET",
        SECRET,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/secrets/{_secret(e, p)}"),
    ),
    Endpoint(
        "DELETE",
        SECRET,
        Role.ADMIN,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/secrets/{_secret(e, p)}"),
    ),
]

# -- jobs and drift (issue 4, monitoring: helper D) ----------------------------------

JOB = "/api/v1/jobs/{job_id}"


def _job(env: Env, project: str) -> int:
    """A queued job of ``project`` whose payload carries the project's marker."""
    payload = {"note": MARKER if project == TEAM_B else project}
    return env.services.jobs.enqueue(
        "matrix.noop", payload, project_id=env.admins[project].project_id, actor="test"
    ).id


def _drift_report(env: Env, project: str) -> int:
    deployment = MARKER if project == TEAM_B else f"dep-{project}"
    check = DriftCheck(deployment=deployment, metrics=["input_length"])
    return env.services.drift.run(env.admins[project].project_id, check, actor="test").id


def _drift_schedule(env: Env, project: str) -> str:
    name = env.fresh("every-hour")
    body = DriftScheduleCreate(name=name, interval_s=3600)
    env.services.drift.schedule(env.admins[project], body)
    return name


ENDPOINTS += [
    Endpoint("GET", "/api/v1/jobs", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/jobs")),
    Endpoint("GET", JOB, Role.VIEWER, 200, HIDDEN, lambda e, p: Call(f"/api/v1/jobs/{_job(e, p)}")),
    Endpoint(
        "GET",
        JOB + "/events",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/jobs/{_job(e, p)}/events"),
    ),
    Endpoint(
        "POST",
        JOB + "/cancel",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/jobs/{_job(e, p)}/cancel"),
    ),
    Endpoint(
        "POST",
        "/api/v1/drift/checks",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call(
            "/api/v1/drift/checks", json={"deployment": f"dep-{p}", "metrics": ["language"]}
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/drift/reports",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/drift/reports"),
    ),
    Endpoint(
        "GET",
        "/api/v1/drift/reports/{report_id}",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/drift/reports/{_drift_report(e, p)}"),
    ),
    Endpoint(
        "POST",
        "/api/v1/drift/schedules",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call(
            "/api/v1/drift/schedules", json={"name": e.fresh("sched"), "interval_s": 600}
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/drift/schedules",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/drift/schedules"),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/drift/schedules/{name}",
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/drift/schedules/{_drift_schedule(e, p)}"),
    ),
]


# -- alerts (issue 4, monitoring: helper E) ------------------------------------------

ALERT = "/api/v1/alerts/{rule_id}"


def _alert(env: Env, project: str, name: str | None = None) -> int:
    """A rule of ``project`` that never fires (a team-b rule's name carries the marker)."""
    body = AlertRuleCreate(
        name=name or env.fresh(MARKER if project == TEAM_B else "alert"),
        metric="requests",
        op=">",
        threshold=1e12,
    )
    return env.services.alerts.create(env.admins[project], body).id


def _alert_to_create(env: Env, project: str) -> dict[str, Any]:
    # In the other project's scope: a rule name taken there is still free here.
    name = env.fresh("new-alert")
    if project == TEAM_B:
        _alert(env, project, name)
    return {"name": name, "metric": "error_rate", "op": ">", "threshold": 0.5}


ENDPOINTS += [
    Endpoint(
        "POST",
        "/api/v1/alerts",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call("/api/v1/alerts", json=_alert_to_create(e, p)),
    ),
    Endpoint(
        "GET", "/api/v1/alerts", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/alerts")
    ),
    Endpoint(
        "POST",
        "/api/v1/alerts/evaluate",
        Role.MAINTAINER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/alerts/evaluate"),
    ),
    Endpoint(
        "GET", ALERT, Role.VIEWER, 200, HIDDEN, lambda e, p: Call(f"/api/v1/alerts/{_alert(e, p)}")
    ),
    Endpoint(
        "PATCH",
        ALERT,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/alerts/{_alert(e, p)}", json={"threshold": 2e12}),
    ),
    Endpoint(
        "DELETE",
        ALERT,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/alerts/{_alert(e, p)}"),
    ),
    Endpoint(
        "GET",
        ALERT + "/events",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/alerts/{_alert(e, p)}/events"),
    ),
]


# -- traces, feedback, rollups, monitoring policy (issue 4, monitoring: helper B) -------

TRACE = "/api/v1/traces/{trace_id}"


def _trace(env: Env, project: str) -> str:
    """A gateway trace of ``project``, recorded just now (team-b's text carries the marker)."""
    principal = env.admins[project]
    trace_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    env.services.recorder.writer.write(
        [
            SpanRecord(
                project_id=principal.project_id,
                trace_id=trace_id,
                span_id=trace_id[:16],
                name="chat.completions chat",
                kind="llm",
                source="gateway",
                start_time=now - timedelta(seconds=1),
                end_time=now,
                duration_ms=1000.0,
                status="ok",
                deployment=f"dep-{project}",
                model="common",
                version=1,
                input=f"question from {MARKER if project == TEAM_B else project}",
            )
        ]
    )
    return trace_id


def _traces_found(env: Env, response: httpx.Response) -> None:
    assert response.json()["data"], "the caller's own traces are listed"


def _traces_call(env: Env, project: str) -> Call:
    # Traces in every project the callers belong to, so a list is never trivially empty.
    for owner in {project, TEAM_A, ROOT_PROJECT}:
        _trace(env, owner)
    return Call("/api/v1/traces", check=_traces_found)


ENDPOINTS += [
    Endpoint(
        "GET",
        "/api/v1/traces",
        Role.VIEWER,
        200,
        UNSCOPED,
        _traces_call,
    ),
    Endpoint(
        "GET", TRACE, Role.VIEWER, 200, HIDDEN, lambda e, p: Call(f"/api/v1/traces/{_trace(e, p)}")
    ),
    # Applications relay their users' ratings: app keys may send feedback.
    Endpoint(
        "POST",
        TRACE + "/feedback",
        Role.APP,
        201,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/traces/{_trace(e, p)}/feedback", json={"thumbs": 1}),
    ),
    Endpoint(
        "GET",
        TRACE + "/feedback",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/traces/{_trace(e, p)}/feedback"),
    ),
    Endpoint(
        "GET", "/api/v1/rollups", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/rollups")
    ),
    Endpoint(
        "GET",
        "/api/v1/monitor/policy",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/monitor/policy"),
    ),
    Endpoint(
        "PUT",
        "/api/v1/monitor/policy",
        Role.ADMIN,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/monitor/policy", json={"retention_days": 30}),
    ),
]


def _erased(env: Env, response: httpx.Response) -> None:
    # Project-scoped: an erasure in one project never counts another project's spans.
    assert response.json()["dry_run"] is False


ENDPOINTS += [
    # End users' data: admins of the caller's project only; the user id names no resource,
    # so another project's users are simply not found there.
    Endpoint(
        "POST",
        "/api/v1/privacy/erase",
        Role.ADMIN,
        200,
        UNSCOPED,
        lambda e, p: Call(
            "/api/v1/privacy/erase", json={"user": e.fresh("end-user")}, check=_erased
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/privacy/export",
        Role.ADMIN,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/privacy/export", params={"user": e.fresh("end-user")}),
    ),
]
# -- the OpenAI-compatible and tokenizer routes (issue 5, access control) -------------
# Any key calls its own project's deployments; another project's deployment is
# OpenAI's 404 ``model_not_found`` for everyone (HIDDEN), root admins included.


def _no_other_deployments(env: Env, response: httpx.Response) -> None:
    assert response.json()["data"], "the caller's own deployments are listed"
    assert f"dep-{TEAM_B}" not in response.text


def _inference(method: str, path: str, build: Callable[[Env, str], Call]) -> Endpoint:
    return Endpoint(
        method,
        path,
        Role.APP,
        200,
        HIDDEN,
        build,
        audited=False,
        not_found_type="invalid_request_error",
    )


ENDPOINTS += [
    _inference(
        "POST",
        "/v1/chat/completions",
        lambda e, p: Call(
            "/v1/chat/completions",
            json={"model": f"dep-{p}", "messages": [{"role": "user", "content": "hi"}]},
        ),
    ),
    _inference(
        "POST",
        "/v1/completions",
        lambda e, p: Call("/v1/completions", json={"model": f"dep-{p}", "prompt": "hi"}),
    ),
    _inference(
        "POST",
        "/v1/embeddings",
        lambda e, p: Call("/v1/embeddings", json={"model": f"dep-{p}", "input": "hi"}),
    ),
    _inference(
        "POST",
        "/tokenize",
        lambda e, p: Call("/tokenize", json={"model": f"dep-{p}", "prompt": "hi"}),
    ),
    _inference(
        "POST",
        "/detokenize",
        lambda e, p: Call("/detokenize", json={"model": f"dep-{p}", "tokens": [0]}),
    ),
    _inference(
        "GET",
        "/tokenizer_info",
        lambda e, p: Call("/tokenizer_info", params={"model": f"dep-{p}"}),
    ),
    Endpoint(
        "GET",
        "/v1/models",
        Role.APP,
        200,
        UNSCOPED,
        lambda e, p: Call("/v1/models", check=_no_other_deployments),
    ),
    # OTLP span ingest: spans land in the key's own project, whatever they name.
    Endpoint(
        "POST",
        "/v1/traces",
        Role.APP,
        200,
        UNSCOPED,
        lambda e, p: Call("/v1/traces", json={"resourceSpans": []}),
        audited=False,
    ),
]


# -- guard policies and checks (issue 5, guard: helper) -------------------------------

GUARD_POLICY = "/api/v1/guard/policies/{name}"
GUARD_SPEC = {"input": [{"detector": "toxicity", "action": "block"}]}


def _guard_policy(env: Env, project: str, name: str | None = None) -> str:
    """A policy of ``project`` blocking abuse (team-b's description carries the marker)."""
    name = name or env.fresh("policy")
    body = {"name": name, "description": f"of {MARKER if project == TEAM_B else project}"}
    env.services.guard.create(
        env.admins[project], GuardPolicyCreate.model_validate({**body, **GUARD_SPEC})
    )
    return name


def _guard_policy_to_create(env: Env, project: str) -> str:
    # In the other project's scope: a policy name taken there is still free here.
    name = env.fresh("new-policy")
    if project == TEAM_B:
        _guard_policy(env, project, name)
    return name


def _blocked(env: Env, response: httpx.Response) -> None:
    body = response.json()
    assert body["action"] == "block"
    assert [f["type"] for f in body["findings"]] == ["INSULT"]


ENDPOINTS += [
    # Applications pre-check their users' text: every key may ask (a read: not audited).
    Endpoint(
        "POST",
        "/api/v1/guard/check",
        Role.APP,
        200,
        HIDDEN,
        lambda e, p: Call(
            "/api/v1/guard/check",
            json={"text": "shut it, you idiot", "policy": _guard_policy(e, p)},
            check=_blocked,
        ),
        audited=False,
    ),
    Endpoint(
        "GET",
        "/api/v1/guard/detectors",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/guard/detectors"),
    ),
    Endpoint(
        "POST",
        "/api/v1/guard/policies",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call(
            "/api/v1/guard/policies", json={"name": _guard_policy_to_create(e, p), **GUARD_SPEC}
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/guard/policies",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/guard/policies"),
    ),
    Endpoint(
        "GET",
        GUARD_POLICY,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/guard/policies/{_guard_policy(e, p)}"),
    ),
    Endpoint(
        "PUT",
        GUARD_POLICY,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/guard/policies/{_guard_policy(e, p)}", json=GUARD_SPEC),
    ),
    Endpoint(
        "DELETE",
        GUARD_POLICY,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/guard/policies/{_guard_policy(e, p)}"),
    ),
]


# -- compliance records (issue 5, reports: helper) -----------------------------------

REPORT = "/api/v1/reports/models/{name}/versions/{ref}"

ENDPOINTS += [
    # Every project has the shared model: version 2 derives from 1, alias production -> 1.
    Endpoint(
        "GET",
        REPORT,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/reports/models/{e.shared(p)}/versions/2", params={"format": "json"}
        ),
    ),
]


# -- evaluation runs (issue 6, evals: helper) -----------------------------------------

EVAL_RUN = "/api/v1/evals/{run_id}"
_FINISHED_EVAL_RUNS: dict[tuple[int, str], int] = {}


def _eval_body(env: Env, project: str) -> dict[str, Any]:
    """A run of a fresh two-question dataset of ``project`` on its deployment.

    Team-b's questions and run name carry the marker; the dataset name does not,
    since a 404 names the dataset that was asked for.
    """
    owner = MARKER if project == TEAM_B else project
    principal = env.admins[project]
    name = env.fresh("evalset")
    samples = [SampleIn({"prompt": f"{owner} {i}"}, expected=f"{owner} {i}") for i in range(2)]
    with env.services.store.write() as session:
        write_version(
            session, principal.project_id, name, samples, source="test", actor=principal.key_name
        )
    return {
        "dataset": name,
        "targets": [f"dep-{project}"],
        "scorers": [{"name": "exact_match"}],
        "name": f"of {owner}",
    }


def _eval_run(env: Env, project: str) -> int:
    """A queued run of ``project``."""
    body = EvalRunCreate.model_validate(_eval_body(env, project))
    return env.services.evals.create(env.admins[project], body).id


def _finished_eval_run(env: Env, project: str) -> int:
    """A run of ``project`` the worker has executed (one per project, made on first use)."""
    key = (id(env), project)
    if key not in _FINISHED_EVAL_RUNS:
        run_id = _eval_run(env, project)
        worker = build_worker(env.services, run_schedules=False)
        while worker.run_once():
            pass
        _FINISHED_EVAL_RUNS[key] = run_id
    return _FINISHED_EVAL_RUNS[key]


def _queued(env: Env, response: httpx.Response) -> None:
    assert response.json()["status"] == "queued"


def _two_results(env: Env, response: httpx.Response) -> None:
    assert len(response.json()["data"]) == 2


def _cancelled(env: Env, response: httpx.Response) -> None:
    assert response.json()["status"] == "cancelled"


def _gate_verdict(env: Env, response: httpx.Response) -> None:
    assert response.json()["passed"] is True


ENDPOINTS += [
    Endpoint(
        "POST",
        "/api/v1/evals",
        Role.MAINTAINER,
        201,
        HIDDEN,  # another project's dataset is not found
        lambda e, p: Call("/api/v1/evals", json=_eval_body(e, p), check=_queued),
    ),
    Endpoint(
        "GET", "/api/v1/evals", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/api/v1/evals")
    ),
    Endpoint(
        "GET",
        EVAL_RUN,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/{_finished_eval_run(e, p)}"),
    ),
    Endpoint(
        "GET",
        EVAL_RUN + "/results",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/{_finished_eval_run(e, p)}/results", check=_two_results),
    ),
    Endpoint(
        "POST",
        EVAL_RUN + "/cancel",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/{_eval_run(e, p)}/cancel", check=_cancelled),
    ),
    Endpoint(
        "POST",
        EVAL_RUN + "/gates",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/evals/{_finished_eval_run(e, p)}/gates",
            json={"gates": ["exact_match>=0"]},
            check=_gate_verdict,
        ),
        audited=False,
    ),
]


# -- evaluation reports (issue 6, reports: helper) -------------------------------------


def _eval_report_page(env: Env, response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert "<h2>Samples</h2>" in response.text


ENDPOINTS += [
    Endpoint(
        "GET",
        EVAL_RUN + "/report",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/evals/{_finished_eval_run(e, p)}/report", check=_eval_report_page
        ),
    ),
]


# -- online evaluation (issue 6, online evaluation: helper) ---------------------------

ONLINE_EVAL = "/api/v1/evals/online/{deployment}"
ONLINE_BODY = {"sample_rate": "10%", "scorers": [{"name": "json_valid"}]}


def _online_deployment(env: Env, project: str, *, configured: bool = True) -> str:
    """A deployment of ``project``, configured or not (team-b's scorer carries the marker)."""
    name = env.fresh("online")
    spec = {"name": name, "routes": [{"target": "common@1", "weight": 100}]}
    env.services.deployments.create(env.admins[project], DeploymentSpec.model_validate(spec))
    if configured:
        scorer = {"name": "regex", "options": {"pattern": MARKER if project == TEAM_B else "x"}}
        body = OnlineEvalSet.model_validate({**ONLINE_BODY, "scorers": [scorer]})
        env.services.online_eval.set(env.admins[project], name, body)
    return name


def _online_listed(env: Env, response: httpx.Response) -> None:
    assert response.json(), "the project's own configurations are listed"


def _online_list_call(env: Env, project: str) -> Call:
    # One configuration in the caller's project, one in ``project`` (team-b's: the marker).
    _online_deployment(env, TEAM_A)
    _online_deployment(env, project)
    return Call("/api/v1/evals/online", check=_online_listed)


ENDPOINTS += [
    Endpoint(
        "GET",
        "/api/v1/evals/online",
        Role.VIEWER,
        200,
        UNSCOPED,
        _online_list_call,
    ),
    Endpoint(
        "GET",
        ONLINE_EVAL,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/online/{_online_deployment(e, p)}"),
    ),
    Endpoint(
        "PUT",
        ONLINE_EVAL,
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/evals/online/{_online_deployment(e, p, configured=False)}",
            json=ONLINE_BODY,
        ),
    ),
    Endpoint(
        "DELETE",
        ONLINE_EVAL,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/online/{_online_deployment(e, p)}"),
    ),
    Endpoint(
        "GET",
        ONLINE_EVAL + "/scores",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/evals/online/{_online_deployment(e, p)}/scores"),
    ),
]

# -- safety evaluations: red-team suite and bias probes (issue 6, safety-eval: helper) ---

_FINISHED_SAFETY_RUNS: dict[tuple[int, str, str], int] = {}


def _finished_safety_run(env: Env, project: str, kind: str) -> int:
    """A finished red-team or bias run of ``project`` on its deployment (made on first use)."""
    key = (id(env), project, kind)
    if key not in _FINISHED_SAFETY_RUNS:
        start = start_redteam if kind == "redteam" else start_bias
        admin = env.admins[project]
        run = start(env.services.evals, env.services.store, admin, f"dep-{project}")
        worker = build_worker(env.services, run_schedules=False)
        while worker.run_once():
            pass
        _FINISHED_SAFETY_RUNS[key] = run.id
    return _FINISHED_SAFETY_RUNS[key]


def _queued_of_kind(kind: str) -> Callable[[Env, httpx.Response], None]:
    def check(env: Env, response: httpx.Response) -> None:
        assert (response.json()["kind"], response.json()["status"]) == (kind, "queued")

    return check


def _redteam_rates(env: Env, response: httpx.Response) -> None:
    categories = {rate["category"] for rate in response.json()["categories"]}
    assert categories == {"all", "harmful", "jailbreak", "pii_exfiltration", "prompt_injection"}


def _bias_comparisons(env: Env, response: httpx.Response) -> None:
    assert {c["attribute"] for c in response.json()["comparisons"]} == {
        "age",
        "gender",
        "name",
        "nationality",
    }


ENDPOINTS += [
    Endpoint(
        "POST",
        "/api/v1/evals/redteam",
        Role.MAINTAINER,
        201,
        HIDDEN,  # another project's deployment is not found
        lambda e, p: Call(
            "/api/v1/evals/redteam", json={"target": f"dep-{p}"}, check=_queued_of_kind("redteam")
        ),
    ),
    Endpoint(
        "POST",
        "/api/v1/evals/bias",
        Role.MAINTAINER,
        201,
        HIDDEN,
        lambda e, p: Call(
            "/api/v1/evals/bias", json={"target": f"dep-{p}"}, check=_queued_of_kind("bias")
        ),
    ),
    Endpoint(
        "GET",
        EVAL_RUN + "/redteam",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/evals/{_finished_safety_run(e, p, 'redteam')}/redteam", check=_redteam_rates
        ),
    ),
    Endpoint(
        "GET",
        EVAL_RUN + "/bias",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/evals/{_finished_safety_run(e, p, 'bias')}/bias", check=_bias_comparisons
        ),
    ),
]

# -- datasets (issue 6, datasets: helper) ---------------------------------------------

DATASET = "/api/v1/datasets/{name}"


def _dataset(env: Env, project: str) -> str:
    """A dataset of ``project``: four samples, one repeated (team-b's text carries the marker).

    The name never carries the marker: a 404 names the dataset that was asked for.
    """
    owner = MARKER if project == TEAM_B else project
    principal = env.admins[project]
    name = env.fresh("ds")
    texts = [f"{owner} q1", f"{owner} q1", f"{owner} q2", f"{owner} q3"]
    with env.services.store.write() as session:
        write_version(
            session,
            principal.project_id,
            name,
            [SampleIn({"prompt": text}, expected=owner) for text in texts],
            source="test",
            actor=principal.key_name,
        )
    return name


def _dataset_samples(env: Env, response: httpx.Response) -> None:
    assert len(response.json()["data"]) == 4


def _one_duplicate_removed(env: Env, response: httpx.Response) -> None:
    assert response.json()["removed"] == 1


def _from_traces_call(env: Env, project: str) -> Call:
    # A trace in every project the callers belong to: the request names no project.
    for owner in {project, TEAM_A, ROOT_PROJECT}:
        _trace(env, owner)
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": (now + timedelta(minutes=5)).isoformat(),
    }
    return Call("/api/v1/datasets/from-traces", json={"name": env.fresh("traced"), **window})


ENDPOINTS += [
    Endpoint(
        "GET",
        "/api/v1/datasets",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/datasets"),
    ),
    Endpoint(
        "POST",
        "/api/v1/datasets/from-traces",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        _from_traces_call,
    ),
    Endpoint(
        "GET",
        DATASET,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/datasets/{_dataset(e, p)}"),
    ),
    Endpoint(
        "DELETE",
        DATASET,
        Role.MAINTAINER,
        204,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/datasets/{_dataset(e, p)}"),
    ),
    # A name is scoped to the caller's project: one taken elsewhere is still free here.
    Endpoint(
        "POST",
        DATASET + "/versions",
        Role.MAINTAINER,
        201,
        UNSCOPED,
        lambda e, p: Call(
            f"/api/v1/datasets/{_dataset(e, p)}/versions",
            json={"samples": [{"input": "hello", "expected": "hi"}]},
        ),
    ),
    Endpoint(
        "GET",
        DATASET + "/versions/{version}/samples",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/datasets/{_dataset(e, p)}/versions/1/samples", check=_dataset_samples
        ),
    ),
    Endpoint(
        "GET",
        DATASET + "/versions/{version}/export",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/datasets/{_dataset(e, p)}/versions/1/export", params={"format": "jsonl"}
        ),
    ),
    Endpoint(
        "POST",
        DATASET + "/split",
        Role.MAINTAINER,
        201,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/datasets/{_dataset(e, p)}/split",
            json={"ratios": {"train": 0.5, "test": 0.5}},
        ),
    ),
    Endpoint(
        "POST",
        DATASET + "/dedupe",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/datasets/{_dataset(e, p)}/dedupe", json={}, check=_one_duplicate_removed
        ),
    ),
]


# -- OpenAI-compatible files and fine-tuning jobs (issue 7) ---------------------------
# Maintainers upload, delete, create and cancel; viewers read; app keys get 403.
# Another project's file or job is OpenAI's 404 (type invalid_request_error).


def _ft_training(project: str) -> bytes:
    answer = MARKER if project == TEAM_B else "paris"
    line = {"messages": [{"role": "user", "content": "capital of france"},
                         {"role": "assistant", "content": answer}]}  # fmt: skip
    return (json.dumps(line) + "\n").encode()


def _ft_file(env: Env, project: str) -> str:
    name = f"{MARKER}.jsonl" if project == TEAM_B else "train.jsonl"
    admin = env.admins[project]
    return env.services.files.upload(admin, "fine-tune", name, _ft_training(project)).id


def _ft_base(env: Env, project: str) -> str:
    """A tunable base version of the project (a transformers checkpoint directory)."""
    from modelcycle.errors import NotFound
    from modelcycle.types import BackendKind

    name = f"{MARKER}-ft" if project == TEAM_B else "ft-base"
    try:
        env.services.registry.get_version(env.admins[project], name, 1)
    except NotFound:
        source = env.services.settings.home / f"ft-base-{project}"
        source.mkdir(exist_ok=True)
        register(env.services, env.admins[project], name, source=str(source),
                 backend=BackendKind.TRANSFORMERS)  # fmt: skip
    return f"{name}@1"


def _ft_job(env: Env, project: str) -> str:
    from modelcycle.tune.schemas import TuneJobCreate

    body = TuneJobCreate(base=_ft_base(env, project), training_file=_ft_file(env, project))
    return env.services.tune.create(env.admins[project], body).id


def _openai_resource(
    method: str, path: str, need: Role, build: Callable[[Env, str], Call]
) -> Endpoint:
    return Endpoint(method, path, need, 200, HIDDEN, build, not_found_type="invalid_request_error")


ENDPOINTS += [
    Endpoint(
        "POST",
        "/v1/files",
        Role.MAINTAINER,
        200,
        UNSCOPED,
        lambda e, p: Call(
            "/v1/files",
            files={"file": ("train.jsonl", _ft_training(TEAM_A))},
            data={"purpose": "fine-tune"},
        ),
    ),
    Endpoint("GET", "/v1/files", Role.VIEWER, 200, UNSCOPED, lambda e, p: Call("/v1/files")),
    _openai_resource(
        "GET", "/v1/files/{file_id}", Role.VIEWER, lambda e, p: Call(f"/v1/files/{_ft_file(e, p)}")
    ),
    _openai_resource(
        "GET",
        "/v1/files/{file_id}/content",
        Role.VIEWER,
        lambda e, p: Call(f"/v1/files/{_ft_file(e, p)}/content"),
    ),
    _openai_resource(
        "DELETE",
        "/v1/files/{file_id}",
        Role.MAINTAINER,
        lambda e, p: Call(f"/v1/files/{_ft_file(e, p)}"),
    ),
    _openai_resource(
        "POST",
        "/v1/fine_tuning/jobs",
        Role.MAINTAINER,
        lambda e, p: Call(
            "/v1/fine_tuning/jobs",
            json={"model": _ft_base(e, p), "training_file": _ft_file(e, p)},
        ),
    ),
    Endpoint(
        "GET",
        "/v1/fine_tuning/jobs",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/v1/fine_tuning/jobs"),
    ),
    _openai_resource(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}",
        Role.VIEWER,
        lambda e, p: Call(f"/v1/fine_tuning/jobs/{_ft_job(e, p)}"),
    ),
    _openai_resource(
        "POST",
        "/v1/fine_tuning/jobs/{job_id}/cancel",
        Role.MAINTAINER,
        lambda e, p: Call(f"/v1/fine_tuning/jobs/{_ft_job(e, p)}/cancel"),
    ),
    _openai_resource(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}/events",
        Role.VIEWER,
        lambda e, p: Call(f"/v1/fine_tuning/jobs/{_ft_job(e, p)}/events"),
    ),
    _openai_resource(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}/checkpoints",
        Role.VIEWER,
        lambda e, p: Call(f"/v1/fine_tuning/jobs/{_ft_job(e, p)}/checkpoints"),
    ),
]


# -- tuning jobs (issue 7, tuning job service: helper) --------------------------------
# Maintainers create and cancel, viewers read; another project's job or base is a 404.
TUNE_JOB = "/api/v1/tune/jobs/{tune_job_id}"


def _tune_base(env: Env, project: str) -> str:
    """A tunable base of the project; its name carries no marker (a 404 names what was asked)."""
    from modelcycle.types import BackendKind

    source = env.services.settings.home / f"tune-base-{project}"
    if not source.is_dir():
        source.mkdir()
        register(env.services, env.admins[project], "tune-base", source=str(source),
                 backend=BackendKind.TRANSFORMERS)  # fmt: skip
    return "tune-base@1"


def _tune_body(env: Env, project: str) -> dict[str, Any]:
    """A job on the project's tunable base and a fresh dataset (team-b's suffix: the marker)."""
    suffix = MARKER if project == TEAM_B else project
    return {"base": _tune_base(env, project), "dataset": _dataset(env, project), "suffix": suffix}


def _tune_job(env: Env, project: str, *, cancelled: bool = True) -> str:
    """A job of ``project``; cancelled at once unless asked, so no worker ever trains it."""
    from modelcycle.tune.schemas import TuneJobCreate

    admin = env.admins[project]
    body = TuneJobCreate.model_validate(_tune_body(env, project))
    created = env.services.tune.create(admin, body)
    if cancelled:
        env.services.tune.cancel(admin, created.id)
    return created.id


def _tune_queued(env: Env, response: httpx.Response) -> None:
    """A created job is queued; it is cancelled here so that no worker trains it later."""
    from modelcycle.store.tables import TuneJobRow

    job = response.json()
    assert job["status"] == "queued"
    with env.services.store.read() as session:
        row = session.execute(select(TuneJobRow).where(TuneJobRow.public_id == job["id"]))
        project_id = row.scalar_one().project_id
    admin = next(a for a in env.admins.values() if a.project_id == project_id)
    env.services.tune.cancel(admin, job["id"])


ENDPOINTS += [
    Endpoint(
        "POST",
        "/api/v1/tune/jobs",
        Role.MAINTAINER,
        201,
        HIDDEN,  # another project's base is not found
        lambda e, p: Call("/api/v1/tune/jobs", json=_tune_body(e, p), check=_tune_queued),
    ),
    Endpoint(
        "GET",
        "/api/v1/tune/jobs",
        Role.VIEWER,
        200,
        UNSCOPED,
        lambda e, p: Call("/api/v1/tune/jobs"),
    ),
    Endpoint(
        "GET",
        TUNE_JOB,
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/tune/jobs/{_tune_job(e, p)}"),
    ),
    Endpoint(
        "POST",
        TUNE_JOB + "/cancel",
        Role.MAINTAINER,
        200,
        HIDDEN,
        lambda e, p: Call(
            f"/api/v1/tune/jobs/{_tune_job(e, p, cancelled=False)}/cancel", check=_cancelled
        ),
    ),
    Endpoint(
        "GET",
        TUNE_JOB + "/events",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/tune/jobs/{_tune_job(e, p)}/events"),
    ),
    Endpoint(
        "GET",
        TUNE_JOB + "/checkpoints",
        Role.VIEWER,
        200,
        HIDDEN,
        lambda e, p: Call(f"/api/v1/tune/jobs/{_tune_job(e, p)}/checkpoints"),
    ),
]

# The oracle is written out here, independent of ``Role.allows`` under test.
RANK = {"app": 0, "viewer": 1, "maintainer": 2, "admin": 3, "root": 3}


def allowed(endpoint: Endpoint, role: str) -> bool:
    if endpoint.need == "root":
        return role == "root"
    return RANK[role] >= RANK[str(endpoint.need)]


def expected_status(endpoint: Endpoint, role: str, scope: str) -> int:
    if role == "anonymous":
        return 401
    if not allowed(endpoint, role):
        return 403
    if scope == OTHER and (
        endpoint.other == HIDDEN or (endpoint.other == ROOT_SEES and role != "root")
    ):
        return 404
    return endpoint.success


@pytest.fixture(scope="module")
def env(module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home: Path = tmp_path_factory.mktemp("authz")
    services = make_services(make_settings(home, module_database_url))
    root = admin_of(services)
    make_project(services, TEAM_A)
    make_project(services, TEAM_B)
    keys = {role: make_key(services, Role(role), TEAM_A) for role in ROLES if role != "root"}
    keys["root"] = root
    admins = {
        ROOT_PROJECT: root.principal,
        TEAM_A: keys["admin"].principal,
        TEAM_B: make_key(services, Role.ADMIN, TEAM_B).principal,
    }
    built = Env(services=services, app=create_app(services), keys=keys, admins=admins)
    for project, admin in admins.items():
        name = built.shared(project)
        register(services, admin, name, source=built.source(project), metadata={"p": project})
        register(
            services,
            admin,
            name,
            source=built.source(project),
            parent={"model": name, "version": 1},
        )
        services.aliases.set(admin, name, "production", 1)
        make_key(services, Role.VIEWER, project)
        register(services, admin, "common", source=built.source(project))
        register(services, admin, "common", source=built.source(project))
        services.deployments.create(
            admin,
            DeploymentSpec.model_validate(
                {"name": f"dep-{project}", "routes": [{"target": "common@1", "weight": 100}]}
            ),
        )
    yield built
    services.close()


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://modelcycle.test"
    ) as api:
        yield api


def own_project(role: str) -> str:
    return ROOT_PROJECT if role == "root" else TEAM_A


CASES = [
    pytest.param(endpoint, role, scope, id=f"{endpoint.id} as {role} on {scope} project")
    for endpoint in ENDPOINTS
    for role in ROLES
    for scope in (OWN, OTHER)
] + [
    pytest.param(endpoint, "anonymous", OWN, id=f"{endpoint.id} as anonymous")
    for endpoint in ENDPOINTS
]


@pytest.mark.parametrize(("endpoint", "role", "scope"), CASES)
async def test_authorization(
    env: Env, client: httpx.AsyncClient, endpoint: Endpoint, role: str, scope: str
) -> None:
    target = TEAM_B if scope == OTHER else own_project(role)
    call = endpoint.build(env, target)
    headers = {} if role == "anonymous" else {"Authorization": f"Bearer {env.keys[role].key}"}
    audit_before = env.audit_count()

    response = await client.request(
        endpoint.method,
        call.path,
        json=call.json,
        params=call.params,
        headers=headers,
        files=call.files,
        data=call.data,
    )

    want = expected_status(endpoint, role, scope)
    assert response.status_code == want, response.text
    if want >= 400:
        error = response.json()["error"]
        assert (
            error["type"]
            == {
                401: "authentication_error",
                403: "permission_error",
                404: endpoint.not_found_type,
            }[want]
        )
        assert env.audit_count() == audit_before, "a refused request changed something"
    else:
        if call.check is not None:
            call.check(env, response)
        if endpoint.mutates:
            assert env.audit_count() > audit_before, "an allowed change was not audited"
        else:
            assert env.audit_count() == audit_before
    if role != "root":
        assert MARKER not in response.text, "another project's data leaked"


GUARDED_PREFIXES = ("/api/v1/", "/v1/")
OPTIONAL_KEY = {("GET", "/metrics")}
"""Routes that take a key only when a setting asks (``metrics_require_key``: tests/monitor)."""


def guarded_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) under /api/v1 or /v1, or documented as taking a Bearer key.

    Read from the router and from the OpenAPI document, so that a route missing
    from either is still found.
    """
    # FastAPI >= 0.13x nests included routers; iter_route_contexts flattens them.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = flatten(app.routes) if flatten is not None else app.routes
    found = {
        # path_format: the path as documented ({run_id}, not {run_id:int}).
        (method, str(getattr(route, "path_format", route.path)))
        for route in routes
        if str(getattr(route, "path", "")).startswith(GUARDED_PREFIXES)
        for method in (getattr(route, "methods", None) or ())
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if path.startswith(GUARDED_PREFIXES) or operation.get("security")
    }
    return (found | documented) - OPTIONAL_KEY


def test_every_guarded_route_is_in_the_matrix(env: Env) -> None:
    routes = guarded_routes(env.app)
    assert len(routes) >= len(ENDPOINTS) - 1, "route discovery found too little"
    covered = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}
    assert not routes - covered, f"add these endpoints to ENDPOINTS: {sorted(routes - covered)}"
    assert not covered - routes, f"these endpoints no longer exist: {sorted(covered - routes)}"
    assert len(covered) == len(ENDPOINTS), "an endpoint is listed twice"


@pytest.mark.parametrize(
    ("path", "absent"),
    [
        ("/api/v1/models/{b}", "/api/v1/models/never-existed"),
        ("/api/v1/models/{b}/versions/1", "/api/v1/models/never-existed/versions/1"),
        (
            "/api/v1/models/{b}/aliases/production",
            "/api/v1/models/never-existed/aliases/production",
        ),
        (
            "/api/v1/models/{b}/versions/2/lineage",
            "/api/v1/models/never-existed/versions/2/lineage",
        ),
        (
            "/api/v1/reports/models/{b}/versions/production",
            "/api/v1/reports/models/never-existed/versions/production",
        ),
    ],
)
async def test_another_projects_resource_looks_exactly_like_a_missing_one(
    env: Env, client: httpx.AsyncClient, path: str, absent: str
) -> None:
    headers = {"Authorization": f"Bearer {env.keys['admin'].key}"}
    b_name = env.shared(TEAM_B)
    theirs = await client.get(path.format(b=b_name), headers=headers)
    missing = await client.get(absent, headers=headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"].replace(b_name, "NAME") == missing.json()["error"][
        "message"
    ].replace("never-existed", "NAME")
    key_id = make_key(env.services, Role.VIEWER, TEAM_B).principal.key_id
    their_key = await client.get(f"/api/v1/keys/{key_id}", headers=headers)
    no_key = await client.get(f"/api/v1/keys/{key_id + 100_000}", headers=headers)
    assert their_key.json()["error"]["message"].replace(str(key_id), "N") == no_key.json()["error"][
        "message"
    ].replace(str(key_id + 100_000), "N")
