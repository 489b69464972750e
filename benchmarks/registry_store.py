"""Registry write path and audit verification on SQLite vs PostgreSQL, in one run.

Prints, for each database: versions registered per second by one writer and by
four concurrent writers (each registration is one transaction with its audit
entry), and audit entries verified per second. Ratios are PostgreSQL / SQLite.

    .venv/bin/python benchmarks/registry_store.py [--versions 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text

from modelcycle.testing import admin_of, make_services, make_settings, register

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _measure(database_url: str | None, versions: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp())
    services = make_services(make_settings(home, database_url))
    admin = admin_of(services).principal
    try:
        started = time.perf_counter()
        for _ in range(versions):
            register(services, admin, "serial")
        serial = versions / (time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: register(services, admin, f"m{i % 4}"), range(versions)))
        concurrent = versions / (time.perf_counter() - started)

        entries = services.audit.verify(admin).entries
        started = time.perf_counter()
        assert services.audit.verify(admin).ok
        verify = entries / (time.perf_counter() - started)
        return {"serial": serial, "concurrent": concurrent, "verify": verify}
    finally:
        services.close()


def _postgres_schema() -> tuple[str, str] | None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(POSTGRES)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # report and run SQLite only
        print(f"PostgreSQL unavailable ({type(exc).__name__}); SQLite only")
        return None
    return schema, f"{POSTGRES}?options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=300)
    args = parser.parse_args()
    results = {"sqlite": _measure(None, args.versions)}
    found = _postgres_schema()
    if found:
        schema, url = found
        try:
            results["postgresql"] = _measure(url, args.versions)
        finally:
            with create_engine(POSTGRES).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(f"{'database':<12}{'register/s (1)':>16}{'register/s (4)':>16}{'verify entries/s':>18}")
    for name, row in results.items():
        print(f"{name:<12}{row['serial']:>16.0f}{row['concurrent']:>16.0f}{row['verify']:>18.0f}")
    if "postgresql" in results:
        pg, lite = results["postgresql"], results["sqlite"]
        print(
            "ratio pg/sqlite: "
            + ", ".join(
                f"{key} {pg[key] / lite[key]:.2f}x" for key in ("serial", "concurrent", "verify")
            )
        )


if __name__ == "__main__":
    main()
