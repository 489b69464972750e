"""The audit log's hash chain catches edited, deleted and forged entries, on both databases."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from modelcycle.access import AuditVerification
from modelcycle.errors import Conflict
from modelcycle.registry import ModelCreate
from modelcycle.services import Services
from modelcycle.store.audit import AuditRecord, entry_hash
from modelcycle.store.tables import AuditEntryRow, AuditHeadRow
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role

TABLE = AuditEntryRow.__table__


def act(services: Services, admin: KeyPair) -> int:
    """Several audited actions; returns how many entries the log holds."""
    register(services, admin.principal, "bot", params={"temperature": 0.1})
    register(services, admin.principal, "bot", metadata={"note": "second"})
    services.aliases.set(admin.principal, "bot", "production", 1)
    services.aliases.set(admin.principal, "bot", "production", 2)
    make_key(services, Role.VIEWER)
    with services.store.read() as session:
        return len(session.execute(select(AuditEntryRow.seq)).all())


def verify(services: Services, admin: KeyPair) -> AuditVerification:
    return services.audit.verify(admin.principal)


def row(services: Services, seq: int) -> dict[str, Any]:
    with services.store.write_engine.connect() as conn:
        found = conn.execute(select(TABLE).where(TABLE.c.seq == seq)).mappings().one()
        conn.rollback()
    return dict(found)


def set_fields(services: Services, at_seq: int, **values: Any) -> None:
    with services.store.write_engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.seq == at_seq).values(**values))


def tampered_values(original: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": original["at"] + timedelta(microseconds=1),
        "project": "someone-else",
        "actor": "key:attacker",
        "action": "model.update",
        "target": original["target"] + "x",
        "before": {"version": 99},
        "after": {**(original["after"] or {}), "injected": True},
        "prev_hash": "f" * 64,
        "hash": "0" * 64,
    }


async def api_verify(app: FastAPI, admin: KeyPair) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {admin.key}"},
    ) as client:
        response = await client.get("/api/v1/audit/verify")
    assert response.status_code == 200
    return dict(response.json())


async def test_an_untouched_chain_verifies(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_app: FastAPI
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    assert count >= 8
    status = verify(modelcycle_services, modelcycle_admin)
    assert (status.ok, status.entries, status.first_bad_seq, status.reason) == (
        True,
        count,
        None,
        None,
    )
    assert await api_verify(modelcycle_app, modelcycle_admin) == status.model_dump()


async def test_editing_any_field_of_any_row_is_reported_at_that_seq(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_app: FastAPI
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    for seq in (1, count // 2, count):
        original = row(modelcycle_services, seq)
        for field, value in tampered_values(original).items():
            set_fields(modelcycle_services, seq, **{field: value})
            status = verify(modelcycle_services, modelcycle_admin)
            assert not status.ok, f"edit of {field} at {seq} went unnoticed"
            assert status.first_bad_seq == seq, (field, seq, status)
            assert status.entries == seq - 1
            assert str(seq) in (status.reason or "")
            if (field, seq) == ("actor", count // 2):
                assert await api_verify(modelcycle_app, modelcycle_admin) == status.model_dump()
            set_fields(modelcycle_services, seq, **{field: original[field]})
            assert verify(modelcycle_services, modelcycle_admin).ok, (field, seq)


async def test_a_deleted_middle_row_is_reported_missing(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_app: FastAPI
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    middle = count // 2
    with modelcycle_services.store.write_engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.seq == middle))

    status = verify(modelcycle_services, modelcycle_admin)

    assert not status.ok
    assert status.first_bad_seq == middle
    assert "missing" in (status.reason or "")
    assert await api_verify(modelcycle_app, modelcycle_admin) == status.model_dump()


async def test_a_renumbered_row_is_reported(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    set_fields(modelcycle_services, 3, seq=count + 100)
    status = verify(modelcycle_services, modelcycle_admin)
    assert (status.ok, status.first_bad_seq) == (False, 3)


async def test_deleting_the_last_rows_is_caught_through_the_head(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_app: FastAPI
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    with modelcycle_services.store.write_engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.seq >= count - 1))

    status = verify(modelcycle_services, modelcycle_admin)

    assert not status.ok
    assert status.first_bad_seq == count - 1
    assert status.entries == count - 2
    assert "missing" in (status.reason or "")
    assert await api_verify(modelcycle_app, modelcycle_admin) == status.model_dump()


async def test_a_forged_entry_appended_without_the_head_is_caught(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    last = row(modelcycle_services, count)
    record = AuditRecord(actor="key:attacker", action="key.create", target="key:evil")
    at = last["at"] + timedelta(seconds=1)
    forged = entry_hash(seq=count + 1, at=at, record=record, prev_hash=last["hash"])
    with modelcycle_services.store.write_engine.begin() as conn:
        conn.execute(
            TABLE.insert().values(
                seq=count + 1,
                at=at,
                project=None,
                actor=record.actor,
                action=record.action,
                target=record.target,
                before=None,
                after=None,
                prev_hash=last["hash"],
                hash=forged,
            )
        )

    status = verify(modelcycle_services, modelcycle_admin)

    assert not status.ok
    assert status.first_bad_seq == count + 1
    assert status.entries == count
    assert "outside modelcycle" in (status.reason or "")


async def test_a_consistently_rewritten_chain_is_caught_through_the_head(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    count = act(modelcycle_services, modelcycle_admin)
    middle = count // 2
    prev_hash = row(modelcycle_services, middle - 1)["hash"]
    # An attacker edits one entry and re-computes every later hash, but not the head.
    for seq in range(middle, count + 1):
        original = row(modelcycle_services, seq)
        record = AuditRecord(
            actor="key:attacker" if seq == middle else original["actor"],
            action=original["action"],
            target=original["target"],
            project=original["project"],
            before=original["before"],
            after=original["after"],
        )
        digest = entry_hash(seq=seq, at=original["at"], record=record, prev_hash=prev_hash)
        set_fields(modelcycle_services, seq, actor=record.actor, prev_hash=prev_hash, hash=digest)
        prev_hash = digest

    status = verify(modelcycle_services, modelcycle_admin)

    assert not status.ok
    assert status.first_bad_seq == count
    assert "rewritten" in (status.reason or "")


async def test_a_deleted_head_row_is_reported(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    act(modelcycle_services, modelcycle_admin)
    with modelcycle_services.store.write_engine.begin() as conn:
        conn.execute(delete(AuditHeadRow.__table__))

    status = verify(modelcycle_services, modelcycle_admin)

    assert not status.ok
    assert "head" in (status.reason or "")


def test_eight_concurrent_registrations_get_versions_one_to_eight(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        barrier.wait()
        try:
            version = register(
                modelcycle_services, modelcycle_admin.principal, "race", source=f"mock://{index}"
            ).version
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(version)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(results) == list(range(1, writers + 1))
    page = modelcycle_services.registry.list_versions(
        modelcycle_admin.principal, "race", cursor=None, limit=100
    )
    assert sorted(v.source for v in page.items) == sorted(f"mock://{i}" for i in range(writers))
    status = verify(modelcycle_services, modelcycle_admin)
    assert status.ok, status
    registered = modelcycle_services.audit.list(
        modelcycle_admin.principal, action="version.register"
    ).items
    assert sorted(entry.target for entry in registered) == [
        f"model:race@{n}" for n in range(1, writers + 1)
    ]


def test_concurrent_creates_of_one_model_give_one_success_and_conflicts(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        try:
            modelcycle_services.registry.create_model(
                modelcycle_admin.principal, ModelCreate(name="contested")
            )
            outcome = "created"
        except Conflict:
            outcome = "conflict"
        except BaseException as exc:
            outcome = f"error: {exc!r}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=work) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["created"]
    assert verify(modelcycle_services, modelcycle_admin).ok
