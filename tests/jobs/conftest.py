"""Fixtures of the job queue tests: a queue with instant retries on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from modelcycle.jobs import Jobs, Scheduler
from modelcycle.services import Services
from modelcycle.store import Store
from modelcycle.store.tables import JobRow, ScheduleRow, utcnow


@pytest.fixture
def jobs(modelcycle_services: Services) -> Jobs:
    """A queue on the test database whose failed attempts are retried at once."""
    return Jobs(modelcycle_services.store, retry_base_s=0.0)


@pytest.fixture
def scheduler(modelcycle_services: Services, jobs: Jobs) -> Scheduler:
    """A scheduler on a database without the platform's own schedules (a clean slate)."""
    with modelcycle_services.store.write() as session:
        session.execute(delete(ScheduleRow))
    return Scheduler(modelcycle_services.store, jobs)


@pytest.fixture
def project_id(modelcycle_services: Services) -> int:
    from modelcycle.testing import admin_of

    return admin_of(modelcycle_services).principal.project_id


def expire_lease(store: Store, job_id: int) -> None:
    """Make a running job's lease run out, as if its worker had died a while ago."""
    with store.write() as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
