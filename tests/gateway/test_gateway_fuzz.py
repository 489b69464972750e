"""Schema-driven fuzz of ``/v1`` (schemathesis): no input, valid or not, gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.testing import admin_of, make_services, make_settings, register

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 40}


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    services = make_services(make_settings(tmp_path / "home"))
    admin = admin_of(services)
    register(services, admin.principal, "bot")
    for name in ("chat", "a", "string"):  # names Hypothesis tends to try
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        services.deployments.create(admin.principal, spec)
    yield (
        schemathesis.openapi.from_asgi("/openapi.json", create_app(services)),
        {"Authorization": f"Bearer {admin.key}"},
    )
    services.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_v1_never_answers_5xx(
    fuzz_target: tuple[Any, dict[str, str]], mode: GenerationMode
) -> None:
    schema, headers = fuzz_target
    failures: list[str] = []
    operations = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/") or operation.path == "/v1/traces":
            continue  # OTLP ingest has its own fuzz test (tests/monitor/test_otlp.py)
        operations.add(operation.path.split("/")[2])

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, status_code_conformance]
            )

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    # inference, and the OpenAI-compatible files and fine-tuning jobs
    assert operations == {"chat", "completions", "embeddings", "models", "files", "fine_tuning"}
    assert not failures, "\n\n".join(failures)
