"""Dashboard pages over 1,000,000 synthetic traces in SQLite: the 300 ms server-time goal.

Takes the database of ``monitor_queries.py`` (1,000,000 traces over the 24 hours
before its fixed NOW, 5 deployments with a primary and a canary version; built
once and cached), copies it, adds what the pages list besides traces (the five
deployments over mock model versions, an alert rule, a dataset, an admin key),
then requests every page of the dashboard ``--runs`` times through the ASGI app
in this process with the clock set to the end of the synthetic day
(``time-machine``), signed in as an admin, and prints p50/p95 per page.

    .venv/bin/python benchmarks/ui_pages.py [--traces 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import monitor_queries as data
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from modelcycle.api import create_app
from modelcycle.deploy.schemas import DeploymentSpec, Route
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.services import build_services
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.tables import Base, SpanRow
from modelcycle.testing import register
from modelcycle.types import ROOT_PROJECT
from modelcycle.ui import install_dashboard

GOAL_MS = 300.0
ADMIN_KEY = "mc_benchui1_" + "a" * 32


def prepare(source: Path, target: Path) -> None:
    """A copy of the traces database with the rest of a project around them."""
    shutil.copyfile(source, target)
    store = Store(f"sqlite:///{target}")
    Base.metadata.create_all(store.write_engine)  # tables newer than the cached file
    with store.write() as session:
        session.execute(Base.metadata.tables["projects"].update().values(name=ROOT_PROJECT))
    store.dispose()


def seed(settings: Settings) -> None:
    services = build_services(settings)
    try:
        services.access.bootstrap(ADMIN_KEY)
        admin = services.access.authenticate(ADMIN_KEY)
        for name, model, _share, _kind in data.DEPLOYMENTS:
            for _ in range(4):  # versions 1-4: the data's primary is 3, its canary 4
                register(services, admin, model)
            spec = DeploymentSpec(
                name=name,
                routes=[
                    Route(target=f"{model}@3", weight=90),
                    Route(target=f"{model}@4", weight=10),
                ],
            )
            services.deployments.create(admin, spec)
        services.alerts.create(
            admin,
            AlertRuleCreate(
                name="chat-errors",
                metric="error_rate",
                op=">",
                threshold=0.05,
                window_s=600,
                deployment="chat",
                severity="warning",
                channels=[{"type": "log"}],
            ),
        )
    finally:
        services.close()


def pages(trace_id: str) -> list[str]:
    return [
        "/",
        "/models",
        "/models/chat-llm",
        "/deployments",
        "/deployments/chat",
        "/traces",
        "/traces?deployment=chat&status=error",
        "/traces?text=refund",
        f"/traces/{trace_id}",
        "/monitoring",
        "/monitoring?deployment=chat",
        "/evals",
        "/tune",
        "/guard",
        "/playground",
        "/audit",
        "/keys",
    ]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.gettempdir())
    source = tmp / f"modelcycle-bench-monitor-v{data.DATA_VERSION}-{args.traces}.db"
    if not source.exists():
        print(f"building {args.traces:,} traces in {source} (cached)", file=sys.stderr)
        partial = source.with_suffix(".building")
        partial.unlink(missing_ok=True)
        data.build(partial, args.traces)
        partial.rename(source)
    home = Path(tempfile.mkdtemp(prefix="modelcycle-bench-ui-"))
    target = home / "modelcycle.db"
    prepare(source, target)
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{target}",
        worker=False,
        register_default_model=False,
    )
    seed(settings)
    services = build_services(settings)
    app = create_app(services)
    install_dashboard(app, services)
    with services.store.read() as session:
        trace_id = session.execute(select(SpanRow.trace_id).limit(1).offset(500_000)).scalar_one()
    failed = 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.traces:,} traces; load average {load} on {os.cpu_count()} CPUs")
    print(f"\n{'page':<44} {'p50 ms':>7} {'p95 ms':>7}  goal p95 <= {GOAL_MS:.0f} ms")
    with time_machine.travel(data.NOW, tick=True), TestClient(app) as client:
        signed = client.post("/login", data={"api_key": ADMIN_KEY}, follow_redirects=False)
        assert signed.status_code == 303, signed.text
        for url in pages(trace_id):
            first = client.get(url)  # warm caches, check it renders
            if first.status_code != 200:
                print(f"{url:<44} HTTP {first.status_code}: {first.text[:200]}")
                failed += 1
                continue
            wall = []
            for _ in range(args.runs):
                started = time.perf_counter()
                client.get(url)
                wall.append((time.perf_counter() - started) * 1000)
            high = p95(wall)
            failed += high > GOAL_MS
            verdict = "ok" if high <= GOAL_MS else "MISSED"
            print(f"{url[:44]:<44} {statistics.median(wall):>7.1f} {high:>7.1f}  {verdict}")
    services.close()
    shutil.rmtree(home, ignore_errors=True)
    print(f"\n{'every page within the goal' if not failed else f'MISSED on {failed} pages'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
