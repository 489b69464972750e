"""Property-based fuzz of the management API from its own OpenAPI document (schemathesis).

Every generated request, valid or not, must get an answer the OpenAPI document
promises: no 5xx, a documented status code, the documented content type and a
body matching the documented schema.

schemathesis' lazy ``from_fixture`` integration does not run on pytest 9, so
each operation's Hypothesis strategy is driven directly; a failure names the
operation, the check and the request to replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelcycle.api import create_app
from modelcycle.testing import admin_of, make_services, make_settings, register

EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    services = make_services(make_settings(tmp_path / "home"))
    admin = admin_of(services)
    for name in ("bot", "chat", "a"):
        register(services, admin.principal, name)
        register(services, admin.principal, name, parent={"model": name, "version": 1})
        services.aliases.set(admin.principal, name, "production", 1)
    app = create_app(services)
    yield (
        schemathesis.openapi.from_asgi("/openapi.json", app),
        {"Authorization": f"Bearer {admin.key}"},
    )
    services.close()


def run_operation(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    # Negative cases are checked for 5xx and schema conformance too, not for
    # rejection: ignoring an unknown query parameter is not a bug.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_answers_as_documented(
    fuzz_target: tuple[Any, dict[str, str]], mode: GenerationMode
) -> None:
    schema, headers = fuzz_target
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/v1"):
            continue
        operations += 1
        try:
            run_operation(operation, mode, headers)
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
