"""docs/deployments.md names only options, fields and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from modelcycle.cli.main import app
from modelcycle.deploy import BreakerPolicy, CachePolicy, DeploymentLimits
from modelcycle.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "deployments.md").read_text()


def test_every_limits_option_in_the_docs_is_a_real_cli_option() -> None:
    options = set(re.findall(r"(--[a-z][a-z-]+)", DOC.split("## Calling a deployment")[0]))
    limit_options = {o for o in options if any(w in o for w in ("rpm", "tpm", "concurr", "cache"))}
    limit_options |= {o for o in options if o.startswith(("--queue", "--breaker"))}
    assert len(limit_options) == 9
    for command in ("create", "update"):
        result = CliRunner().invoke(app, ["deploy", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for option in limit_options:
            assert option in result.stdout, (command, option)


def test_every_field_and_setting_the_docs_name_exists() -> None:
    section = DOC.split("## Limits, cache and circuit breaker")[1].split("## Events")[0]
    fields = {
        **{f"limits.{name}": DeploymentLimits for name in DeploymentLimits.model_fields},
        **{f"cache.{name}": CachePolicy for name in CachePolicy.model_fields},
        **{f"breaker.{name}": BreakerPolicy for name in BreakerPolicy.model_fields},
    }
    named = set(re.findall(r"`((?:limits|cache|breaker)\.[a-z_]+)`", section))
    assert named, "the section names no field"
    assert named <= fields.keys(), named - fields.keys()
    for setting in ("project_rpm", "key_tpm", "project_limits", "limits_on_redis_error"):
        assert setting in section
        assert setting in Settings.model_fields
    for setting in ("redis_key_prefix", "cache_max_entries", "cache_max_bytes"):
        assert setting in Settings.model_fields
