"""``/api/v1/privacy``: erase and export everything held about one end user.

What a user relies on: an erasure removes exactly that user's traces and
feedback (and what stages derived from them), leaves every other user and
project alone, reports what it removed, can be rehearsed with a dry run and run
again safely, and the audit log proves it happened without naming the user; an
export returns what an erasure would remove, as stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from e2e.live import serve
from modelcycle.api import create_app
from modelcycle.client import AsyncClient, Client
from modelcycle.hookspecs import hookimpl
from modelcycle.monitor import SpanRecord
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, FeedbackRow, SpanRow
from modelcycle.testing import make_key, make_project, make_services, make_settings
from modelcycle.types import Role

ALICE, BOB = "alice@example.com", "bob-7"
NOW = datetime.now(UTC) - timedelta(minutes=5)


class DatasetStage:
    """A stage holding samples derived from traces, as a plugin would."""

    def __init__(self) -> None:
        self.samples: dict[tuple[int, str], list[str]] = {}
        self.broken = False

    @hookimpl
    def modelcycle_erase_user(self, project_id: int, user: str) -> Mapping[str, int]:
        if self.broken:
            raise RuntimeError("dataset store offline")
        return {"dataset_samples": len(self.samples.pop((project_id, user), []))}

    @hookimpl
    def modelcycle_export_user(self, project_id: int, user: str) -> Mapping[str, Any]:
        return {"dataset_samples": self.samples.get((project_id, user), [])}


class Env:
    def __init__(self, services: Services, stage: DatasetStage):
        self.services = services
        self.stage = stage
        self.project = make_project(services, f"shop-{uuid.uuid4().hex[:6]}")
        self.admin = make_key(services, Role.ADMIN, self.project)
        self.elsewhere = make_key(services, Role.ADMIN, make_project(services))

    def span(
        self,
        trace: str,
        span: str,
        user: str | None,
        parent: str | None = None,
        *,
        project_id: int | None = None,
        text: str = "",
    ) -> SpanRecord:
        return SpanRecord(
            project_id=project_id or self.admin.principal.project_id,
            trace_id=trace,
            span_id=span,
            parent_span_id=parent,
            name="chat.completions chat",
            kind="llm",
            source="gateway",
            start_time=NOW,
            end_time=NOW + timedelta(milliseconds=20),
            duration_ms=20.0,
            status="ok",
            deployment="chat",
            model="bot",
            version=1,
            user_id=user,
            input=text or f"question of {user}",
            output=f"answer to {user}",
        )

    def feedback(self, trace: str, user: str | None, comment: str) -> None:
        with self.services.store.write() as session:
            session.add(
                FeedbackRow(
                    project_id=self.admin.principal.project_id,
                    trace_id=trace,
                    user_id=user,
                    comment=comment,
                    thumbs=1,
                    actor="app",
                )
            )

    def spans(self) -> set[tuple[str, str]]:
        with self.services.store.read() as session:
            return {
                (row.trace_id, row.span_id) for row in session.execute(select(SpanRow)).scalars()
            }

    def comments(self) -> set[str]:
        with self.services.store.read() as session:
            return {row.comment or "" for row in session.execute(select(FeedbackRow)).scalars()}


def tid(name: str) -> str:
    return name.ljust(32, "0")


def sid(name: str) -> str:
    return name.ljust(16, "0")


@pytest.fixture
def env(tmp_path: Path, modelcycle_database_url: str | None) -> Iterator[Env]:
    stage = DatasetStage()
    services = make_services(
        make_settings(tmp_path / "home", modelcycle_database_url), plugins=(stage,)
    )
    built = Env(services, stage)
    alice_elsewhere = built.elsewhere.principal.project_id
    services.recorder.writer.write(
        [
            # a1: alice's conversation: her root, her child, a tool span with no user
            built.span(tid("a1"), sid("a1r"), ALICE),
            built.span(tid("a1"), sid("a1c"), ALICE, sid("a1r")),
            built.span(tid("a1"), sid("a1t"), None, sid("a1r")),
            built.span(tid("a2"), sid("a2r"), ALICE),
            # b1: bob's conversation where alice's span appears: only hers goes
            built.span(tid("b1"), sid("b1r"), BOB),
            built.span(tid("b1"), sid("b1a"), ALICE, sid("b1r")),
            built.span(tid("b2"), sid("b2r"), BOB),
            # x1: a gateway span of alice under an application span never sent
            built.span(tid("x1"), sid("x1g"), ALICE, sid("never")),
            # the same user id in another project is another person
            built.span(tid("o1"), sid("o1r"), ALICE, project_id=alice_elsewhere),
        ]
    )
    built.feedback(tid("a1"), ALICE, "alice on a1")
    built.feedback(tid("a1"), "reviewer", "reviewer on a1")
    built.feedback(tid("b1"), BOB, "bob on b1")
    built.feedback(tid("b2"), ALICE, "alice on b2")
    built.feedback(tid("x1"), None, "anonymous on x1")
    stage.samples[(built.admin.principal.project_id, ALICE)] = ["sample-1", "sample-2"]
    yield built
    services.close()


@pytest.fixture
async def api(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(env.services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {env.admin.key}"},
    ) as client:
        yield client


ALICE_SPANS = {
    (tid("a1"), sid("a1r")),
    (tid("a1"), sid("a1c")),
    (tid("a1"), sid("a1t")),
    (tid("a2"), sid("a2r")),
    (tid("b1"), sid("b1a")),
    (tid("x1"), sid("x1g")),
}
COUNTS = {"traces": 3, "spans": 6, "feedback": 4, "dataset_samples": 2}


async def erase(api: httpx.AsyncClient, user: str, **extra: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/privacy/erase", json={"user": user, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_erasure_removes_exactly_the_users_traces_and_feedback(
    env: Env, api: httpx.AsyncClient
) -> None:
    before = env.spans()

    erased = await erase(api, ALICE)

    assert erased["counts"] == COUNTS
    assert erased["dry_run"] is False
    assert erased["failed"] == []
    assert env.spans() == before - ALICE_SPANS, "bob's spans and the other project's stay"
    assert env.comments() == {"bob on b1"}
    assert env.stage.samples == {}, "the stage holding derived data was asked to erase"
    assert (await erase(api, ALICE))["counts"] == {
        "traces": 0,
        "spans": 0,
        "feedback": 0,
        "dataset_samples": 0,
    }, "running it again finds nothing more"


async def test_a_dry_run_counts_the_same_and_changes_nothing(
    env: Env, api: httpx.AsyncClient
) -> None:
    before, comments = env.spans(), env.comments()
    audited = _audit(env)

    rehearsal = await erase(api, ALICE, dry_run=True)

    assert rehearsal["dry_run"] is True
    assert rehearsal["counts"] == {k: v for k, v in COUNTS.items() if k != "dataset_samples"}
    assert (env.spans(), env.comments(), _audit(env)) == (before, comments, audited)
    assert env.stage.samples, "stages are not asked during a dry run"
    real = await erase(api, ALICE)
    assert {k: real["counts"][k] for k in rehearsal["counts"]} == rehearsal["counts"]
    assert real["user_hash"] == rehearsal["user_hash"]


def _audit(env: Env) -> list[AuditEntryRow]:
    with env.services.store.read() as session:
        return list(
            session.execute(
                select(AuditEntryRow).where(AuditEntryRow.action == "privacy.erase")
            ).scalars()
        )


async def test_the_audit_entry_has_the_counts_and_no_clear_user_id(
    env: Env, api: httpx.AsyncClient
) -> None:
    erased = await erase(api, ALICE)

    [entry] = _audit(env)
    text = orjson.dumps(
        {"target": entry.target, "before": entry.before, "after": entry.after}
    ).decode()
    assert ALICE not in text
    assert "alice" not in text
    assert entry.after is not None
    assert entry.after["user_hash"] == erased["user_hash"]
    assert entry.after["counts"] == COUNTS
    assert entry.project == env.project
    other = await erase(api, BOB, dry_run=True)
    assert other["user_hash"] != erased["user_hash"]
    assert len(erased["user_hash"]) == 64


async def test_a_failing_stage_is_reported_and_a_rerun_finishes_it(
    env: Env, api: httpx.AsyncClient
) -> None:
    env.stage.broken = True
    first = await erase(api, ALICE)
    assert first["failed"]
    assert "dataset_samples" not in first["counts"]
    assert first["counts"]["spans"] == 6, "traces and feedback are erased all the same"

    env.stage.broken = False
    second = await erase(api, ALICE)
    assert second["failed"] == []
    assert second["counts"]["dataset_samples"] == 2


async def test_spans_waiting_in_a_spill_file_are_erased_too(
    env: Env, api: httpx.AsyncClient
) -> None:
    spill = env.services.recorder.spill_dir
    spill.mkdir(parents=True, exist_ok=True)
    pending = [env.span(tid("s1"), sid("s1r"), ALICE), env.span(tid("s2"), sid("s2r"), BOB)]
    (spill / "spans-424242.jsonl").write_bytes(
        b"".join(orjson.dumps(asdict(span)) + b"\n" for span in pending)
    )

    erased = await erase(api, ALICE)

    assert erased["counts"]["spans"] == 7
    assert env.services.recorder.spill_files() == []
    assert (tid("s1"), sid("s1r")) not in env.spans(), "a later replay cannot bring it back"
    assert (tid("s2"), sid("s2r")) in env.spans()


async def test_the_export_holds_what_an_erasure_removes_as_stored(
    env: Env, api: httpx.AsyncClient
) -> None:
    response = await api.get("/api/v1/privacy/export", params={"user": ALICE})

    assert response.status_code == 200, response.text
    found = response.json()
    assert found["user"] == ALICE
    assert found["project"] == env.project
    exported = {(t["trace_id"], s["span_id"]) for t in found["traces"] for s in t["spans"]}
    assert exported == ALICE_SPANS
    a1 = next(t for t in found["traces"] if t["trace_id"] == tid("a1"))
    assert [s["span_id"] for s in a1["spans"]] == [sid("a1r"), sid("a1c"), sid("a1t")]
    assert a1["spans"][0]["input"] == f"question of {ALICE}"
    assert a1["spans"][0]["output"] == f"answer to {ALICE}"
    assert {f["comment"] for f in a1["feedback"]} == {"alice on a1", "reviewer on a1"}
    assert [f["comment"] for f in found["feedback"]] == ["alice on b2"]
    assert found["stages"] == {"dataset_samples": ["sample-1", "sample-2"]}
    assert "o1".ljust(32, "0") not in response.text, "nothing of another project"
    assert BOB not in orjson.dumps(found["traces"]).decode(), "bob's own spans are not hers"


async def test_privacy_needs_an_admin_and_refuses_bad_input(
    env: Env, api: httpx.AsyncClient
) -> None:
    maintainer = make_key(env.services, Role.MAINTAINER, env.project)
    as_maintainer = {"Authorization": f"Bearer {maintainer.key}"}
    for method, path, kwargs in [
        ("POST", "/api/v1/privacy/erase", {"json": {"user": ALICE}}),
        ("GET", "/api/v1/privacy/export", {"params": {"user": ALICE}}),
    ]:
        response = await api.request(method, path, headers=as_maintainer, **kwargs)
        assert response.status_code == 403, response.text
    assert env.spans() >= ALICE_SPANS
    for body in ({"user": ""}, {"user": "x" * 129}, {}, {"user": ALICE, "dry": True}):
        response = await api.post("/api/v1/privacy/erase", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get("/api/v1/privacy/export")).status_code == 400


async def test_an_admin_of_another_project_erases_nothing_here(
    env: Env, api: httpx.AsyncClient
) -> None:
    before = env.spans()
    response = await api.post(
        "/api/v1/privacy/erase",
        json={"user": ALICE},
        headers={"Authorization": f"Bearer {env.elsewhere.key}"},
    )
    assert response.json()["counts"]["spans"] == 1, "only their own project's alice"
    assert env.spans() == before - {(tid("o1"), sid("o1r"))}


def test_the_sdk_erases_and_exports(env: Env) -> None:
    with serve(env.services, env.admin.key) as server, Client(server.url, env.admin.key) as sdk:
        exported = sdk.privacy.export(ALICE)
        rehearsal = sdk.privacy.erase(ALICE, dry_run=True)
        erased = sdk.privacy.erase(ALICE)
        again = sdk.privacy.export(ALICE)
    assert len(exported.traces) == 4
    assert rehearsal.dry_run
    assert rehearsal.counts["spans"] == erased.counts["spans"] == 6
    assert (again.traces, again.feedback, again.stages) == ([], [], {"dataset_samples": []})


async def test_the_async_sdk_erases_and_exports(env: Env) -> None:
    transport = httpx.ASGITransport(app=create_app(env.services))
    async with AsyncClient(
        "http://modelcycle.test",
        env.admin.key,
        http_client=httpx.AsyncClient(transport=transport),
    ) as sdk:
        exported = await sdk.privacy.export(ALICE)
        erased = await sdk.privacy.erase(ALICE)
    assert {s.span_id for t in exported.traces for s in t.spans} == {s for _, s in ALICE_SPANS}
    assert erased.counts == COUNTS
