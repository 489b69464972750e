"""Deployments as a maintainer uses them: CRUD, promote, rollback, audit, rights.

Runs on SQLite and PostgreSQL (the suite-wide ``modelcycle_database_url``).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelcycle import events
from modelcycle.deploy import DeploymentConfig, DeploymentSpec, Route
from modelcycle.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelcycle.hookspecs import hookimpl
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.testing import (
    KeyPair,
    admin_of,
    make_key,
    make_project,
    make_services,
    register,
)
from modelcycle.types import Role, VersionStatus


def spec(name: str, *routes: tuple[str, int], **extra: object) -> DeploymentSpec:
    return DeploymentSpec(
        name=name,
        routes=[Route(target=target, weight=weight) for target, weight in routes],
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def bot(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    """Model ``bot`` with versions 1 and 2; alias ``production`` -> 1."""
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    modelcycle_services.aliases.set(modelcycle_admin.principal, "bot", "production", 1)
    return "bot"


def audit_actions(services: Services, admin: KeyPair) -> list[tuple[str, str]]:
    page = services.audit.list(admin.principal, target="deployment:")
    return [(entry.action, entry.target) for entry in page.items]


def test_create_get_list_and_audit(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    created = modelcycle_services.deployments.create(
        admin,
        spec("chat", ("bot@production", 100), fallbacks=["bot@2"], timeout_s=5, retries=1),
    )

    assert created.revision == 1
    assert created.spec.routes == [Route(target="bot@production", weight=100)]
    assert created.spec.fallbacks == ["bot@2"]
    assert modelcycle_services.deployments.get(admin, "chat") == created
    assert list(modelcycle_services.deployments.list(admin).items) == [created]
    entries = modelcycle_services.audit.list(admin, action="deployment.create").items
    assert [(e.target, e.after) for e in entries] == [
        ("deployment:chat", {"revision": 1, "spec": created.spec.model_dump(mode="json")})
    ]
    with pytest.raises(Conflict, match="exists"):
        modelcycle_services.deployments.create(admin, spec("chat", ("bot@1", 100)))


def test_update_makes_a_new_revision_and_refuses_a_stale_one(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    deployments = modelcycle_services.deployments
    deployments.create(admin, spec("chat", ("bot@1", 100)))
    canary = DeploymentConfig(
        routes=[Route(target="bot@1", weight=90), Route(target="bot@2", weight=10)]
    )

    updated = deployments.update(admin, "chat", canary, expected_revision=1)

    assert updated.revision == 2
    assert updated.spec == canary
    with pytest.raises(Conflict, match="revision 2, not 1"):
        deployments.update(admin, "chat", canary, expected_revision=1)
    history = deployments.revisions(admin, "chat")
    assert [(r.revision, r.action) for r in history] == [(1, "create"), (2, "update")]
    assert history[1].spec == canary


def test_promote_makes_the_canary_the_only_route(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    deployments = modelcycle_services.deployments
    deployments.create(admin, spec("chat", ("bot@1", 80), ("bot@2", 20), shadow="bot@1"))

    promoted = deployments.promote(admin, "chat")

    assert promoted.revision == 2
    assert promoted.spec.routes == [Route(target="bot@2", weight=100)]
    assert promoted.spec.shadow == "bot@1"  # only the routes change
    with pytest.raises(Conflict, match="no canary"):
        deployments.promote(admin, "chat")
    assert [a for a, _ in audit_actions(modelcycle_services, modelcycle_admin)] == [
        "deployment.create",
        "deployment.promote",
    ]


def test_a_canary_at_zero_percent_is_staged_not_promotable(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    modelcycle_services.deployments.create(admin, spec("chat", ("bot@1", 100), ("bot@2", 0)))
    with pytest.raises(Conflict, match="no canary"):
        modelcycle_services.deployments.promote(admin, "chat")


def test_rollback_restores_the_previous_revision_as_a_new_one(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    deployments = modelcycle_services.deployments
    first = deployments.create(admin, spec("chat", ("bot@1", 90), ("bot@2", 10)))
    deployments.promote(admin, "chat")

    restored = deployments.rollback(admin, "chat")

    assert restored.revision == 3
    assert restored.spec == first.spec
    again = deployments.rollback(admin, "chat", to_revision=2)
    assert again.spec.routes == [Route(target="bot@2", weight=100)]
    assert [r.action for r in deployments.revisions(admin, "chat")] == [
        "create",
        "promote",
        "rollback",
        "rollback",
    ]
    with pytest.raises(Conflict, match=r"roll back to one of 1\.\.3"):
        deployments.rollback(admin, "chat", to_revision=4)


def test_rollback_of_a_first_revision_is_refused(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec("chat", ("bot@1", 100)))
    with pytest.raises(Conflict, match="no earlier revision"):
        modelcycle_services.deployments.rollback(modelcycle_admin.principal, "chat")


def test_delete_removes_it_and_its_history_and_is_audited(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    deployments = modelcycle_services.deployments
    deployments.create(admin, spec("chat", ("bot@1", 100)))
    deployments.update(admin, "chat", DeploymentConfig(routes=[Route(target="bot@2", weight=100)]))

    deployments.delete(admin, "chat")

    with pytest.raises(NotFound, match="modelcycle deploy list"):
        deployments.get(admin, "chat")
    with pytest.raises(NotFound):
        deployments.revisions(admin, "chat")
    assert audit_actions(modelcycle_services, modelcycle_admin)[-1] == (
        "deployment.delete",
        "deployment:chat",
    )
    deployments.create(admin, spec("chat", ("bot@1", 100)))  # the name is free again
    assert modelcycle_services.audit.verify(admin).ok


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ghost@1", "target 'ghost@1': model 'ghost' not found"),
        ("bot@7", "target 'bot@7': model 'bot' has no version 7"),
        ("bot@canary", "target 'bot@canary': model 'bot' has no alias 'canary'"),
    ],
)
def test_unknown_targets_are_refused_naming_the_target(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str, target: str, message: str
) -> None:
    admin = modelcycle_admin.principal
    for bad in (
        spec("chat", (target, 100)),
        spec("chat", ("bot@1", 100), fallbacks=[target]),
        spec("chat", ("bot@1", 100), shadow=target),
    ):
        with pytest.raises(InvalidInput, match=message):
            modelcycle_services.deployments.create(admin, bad)
    assert list(modelcycle_services.deployments.list(admin).items) == []


def test_archived_versions_are_refused(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    modelcycle_services.registry.set_status(admin, "bot", 2, VersionStatus.ARCHIVED)
    with pytest.raises(InvalidInput, match="bot@2 is archived") as caught:
        modelcycle_services.deployments.create(admin, spec("chat", ("bot@1", 90), ("bot@2", 10)))
    assert caught.value.param == "routes[1].target"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([("bot@1", 90)], "sum to 100"),
        ([("bot@1", 60), ("bot@2", 60)], "sum to 100"),
        ([("bot@1", 50), ("bot@1", 50)], "only once"),
        ([("bot@1", 0), ("bot@2", 100)], "primary"),
        ([("bot", 100)], "pattern"),
        ([("Bot@1", 100)], "pattern"),
        ([("bot@1", 101)], "less than or equal to 100"),
    ],
)
def test_malformed_specs_are_refused(routes: list[tuple[str, int]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec("chat", *routes)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        DeploymentSpec.model_validate(
            {"name": "chat", "routes": [{"target": "bot@1", "weight": 100}], "wieght": 1}
        )


def test_viewers_read_but_cannot_change_and_apps_cannot_read(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    deployments = modelcycle_services.deployments
    deployments.create(modelcycle_admin.principal, spec("chat", ("bot@1", 90), ("bot@2", 10)))
    viewer = make_key(modelcycle_services, Role.VIEWER).principal
    app = make_key(modelcycle_services, Role.APP).principal

    assert deployments.get(viewer, "chat").name == "chat"
    for change in (
        lambda: deployments.create(viewer, spec("other", ("bot@1", 100))),
        lambda: deployments.update(
            viewer, "chat", DeploymentConfig(routes=[Route(target="bot@1", weight=100)])
        ),
        lambda: deployments.promote(viewer, "chat"),
        lambda: deployments.rollback(viewer, "chat"),
        lambda: deployments.delete(viewer, "chat"),
        lambda: deployments.get(app, "chat"),
        lambda: deployments.list(app),
    ):
        with pytest.raises(PermissionDenied):
            change()
    assert deployments.get(modelcycle_admin.principal, "chat").revision == 1


def test_other_projects_deployments_are_invisible(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec("chat", ("bot@1", 100)))
    team = make_project(modelcycle_services, "team-b")
    other = make_key(modelcycle_services, Role.ADMIN, team).principal

    with pytest.raises(NotFound):
        modelcycle_services.deployments.get(other, "chat")
    with pytest.raises(NotFound):
        modelcycle_services.deployments.promote(other, "chat")
    assert list(modelcycle_services.deployments.list(other).items) == []
    # Targets resolve in the caller's project: team-b has no model 'bot'.
    with pytest.raises(InvalidInput, match="model 'bot' not found"):
        modelcycle_services.deployments.create(other, spec("chat", ("bot@1", 100)))
    register(modelcycle_services, other, "bot")
    assert modelcycle_services.deployments.create(other, spec("chat", ("bot@1", 100))).revision == 1


def test_a_version_routed_to_by_number_cannot_be_deleted(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    admin = modelcycle_admin.principal
    register(modelcycle_services, admin, "bot")  # version 3
    modelcycle_services.deployments.create(
        admin, spec("chat", ("bot@production", 90), ("bot@2", 10))
    )
    modelcycle_services.deployments.create(
        admin, spec("backup", ("bot@1", 100), fallbacks=["bot@3"])
    )

    with pytest.raises(Conflict, match="deployment 'chat' routes to it"):
        modelcycle_services.registry.delete_version(admin, "bot", 2)
    with pytest.raises(Conflict, match="deployment 'backup' routes to it"):
        modelcycle_services.registry.delete_version(admin, "bot", 3)

    modelcycle_services.deployments.delete(admin, "backup")
    modelcycle_services.registry.delete_version(admin, "bot", 3)  # nothing routes to it now


def test_references_are_per_project(
    modelcycle_services: Services, modelcycle_admin: KeyPair, bot: str
) -> None:
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec("chat", ("bot@2", 100)))
    team = make_project(modelcycle_services, "team-b")
    other = make_key(modelcycle_services, Role.ADMIN, team).principal
    register(modelcycle_services, other, "bot")
    register(modelcycle_services, other, "bot")
    modelcycle_services.registry.delete_version(other, "bot", 2)  # team-b's bot@2 is free


class Recorder:
    def __init__(self) -> None:
        self.seen: list[events.DeploymentChanged] = []

    @hookimpl
    def modelcycle_deployment_changed(self, event: events.DeploymentChanged) -> None:
        self.seen.append(event)


def test_every_change_emits_deployment_changed(modelcycle_settings: Settings) -> None:
    recorder = Recorder()
    services = make_services(modelcycle_settings, plugins=(recorder,))
    try:
        principal = admin_of(services).principal
        register(services, principal, "bot")
        register(services, principal, "bot")
        services.deployments.create(principal, spec("chat", ("bot@1", 50), ("bot@2", 50)))
        services.deployments.promote(principal, "chat")
        services.deployments.rollback(principal, "chat")
        services.deployments.delete(principal, "chat")
    finally:
        services.close()
    assert [(e.action, e.revision) for e in recorder.seen] == [
        ("create", 1),
        ("promote", 2),
        ("rollback", 3),
        ("delete", 3),
    ]
    assert recorder.seen[1].spec["routes"] == [{"target": "bot@2", "weight": 100}]
    assert recorder.seen[-1].spec == {}
    assert {e.project for e in recorder.seen} == {"default"}
