"""``modelcycle guard``: checks with their exit codes, policies from YAML files, detectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.runner import Cli
from modelcycle.cli.main import app

pytestmark = pytest.mark.e2e

POLICY_YAML = """\
description: support bot
input:
  - detector: toxicity
    action: redact
    types: [INSULT, PROFANITY]
  - detector: toxicity
    action: block
    types: [THREAT]
output:
  - detector: json_schema
    action: block
    options:
      schema: {type: object, required: [answer]}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    return path


def test_set_show_list_and_delete_a_policy_from_yaml(cli: Cli, policy_file: Path) -> None:
    created = cli.json("guard", "policy", "set", "support", "--file", str(policy_file))
    replaced = cli.json("guard", "policy", "set", "support", "--file", str(policy_file))
    shown = cli("guard", "policy", "show", "support")
    listed = cli.json("guard", "policy", "list")
    deleted = cli("guard", "policy", "delete", "support")

    assert (created["revision"], replaced["revision"]) == (1, 2)
    assert created["spec"]["output"][0]["options"]["schema"]["required"] == ["answer"]
    assert shown.exit_code == 0
    assert "support bot" in shown.stdout
    assert "json_schema" in shown.stdout
    assert [p["name"] for p in listed if p["name"] == "support"] == ["support"]
    assert deleted.exit_code == 0
    assert "guard policy support deleted" in deleted.stdout
    cli.fails("guard", "policy", "show", "support", naming=("guard policy 'support' not found",))


def test_check_prints_findings_and_the_redacted_text_and_exits_0(
    cli: Cli, policy_file: Path
) -> None:
    cli.json("guard", "policy", "set", "support", "--file", str(policy_file))

    result = cli("guard", "check", "this shit again, you moron", "--policy", "support")
    as_json = cli.json("guard", "check", "hello there", "--policy", "support")

    assert result.exit_code == 0, result.output
    assert "this [PROFANITY] again, [INSULT]" in result.stdout
    assert "PROFANITY" in result.stdout
    assert "action: redact" in result.stdout
    assert as_json["action"] == "allow"
    assert as_json["findings"] == []


def test_a_blocked_text_exits_3_with_one_line_naming_what_blocked_it(
    cli: Cli, policy_file: Path, tmp_path: Path
) -> None:
    cli.json("guard", "policy", "set", "support", "--file", str(policy_file))
    answer = tmp_path / "answer.txt"
    answer.write_text("Sure! Here you go.")

    threat = cli("guard", "check", "I will kill you", "--policy", "support", "--json")
    output = cli(
        "guard", "check", "--file", str(answer), "--stage", "output", "--policy", "support"
    )

    assert threat.exit_code == 3
    assert threat.stderr.strip() == "blocked by guard policy support: THREAT"
    assert '"action": "block"' in threat.stdout
    assert output.exit_code == 3
    assert output.stderr.strip() == "blocked by guard policy support: INVALID_JSON"


def test_check_reads_standard_input(cli: Cli, policy_file: Path) -> None:
    cli.json("guard", "policy", "set", "support", "--file", str(policy_file))
    env = {"MODELCYCLE_SERVER": cli.url, "MODELCYCLE_API_KEY": cli.key}

    result = CliRunner().invoke(
        app,
        ["guard", "check", "--file", "-", "--policy", "support", "--json"],
        input="you idiot",
        env=env,
    )

    assert result.exit_code == 0, result.output
    assert '"redacted_text": "[INSULT]"' in result.stdout


@pytest.mark.parametrize(
    ("content", "naming"),
    [
        ("input: [unclosed", ("not valid YAML or JSON",)),
        ("- just a list", ("must hold a mapping",)),
        ("name: other\ninput: []", ("names policy 'other', not 'support'",)),
        ("input:\n  - detector: telepathy\n    action: block", ("input[0]: unknown detector",)),
        ('{"input": [{"detector": "toxicity", "action": "shout"}]}', ("input.0.action",)),
    ],
)
def test_a_bad_policy_file_is_one_error_line(
    cli: Cli, tmp_path: Path, content: str, naming: tuple[str, ...]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)

    cli.fails("guard", "policy", "set", "support", "--file", str(path), naming=naming)


def test_check_needs_exactly_one_source_of_text(cli: Cli) -> None:
    cli.fails("guard", "check", naming=("give the text to check",))
    cli.fails("guard", "check", "a", "--file", "-", naming=("give the text to check",))
    cli.fails("guard", "check", "--file", "/no/such/file", naming=("cannot read /no/such/file",))


def test_a_deployment_runs_a_policy_that_cannot_be_deleted_while_it_does(
    cli: Cli, policy_file: Path
) -> None:
    cli.json("guard", "policy", "set", "support", "--file", str(policy_file))
    cli.json("models", "register", "m", "--source", "mock://echo", "--backend", "mock")
    cli.fails(
        "deploy", "create", "bot", "--target", "m@1", "--guard", "ghost",
        naming=("unknown guard policy 'ghost'",),
    )  # fmt: skip
    created = cli.json("deploy", "create", "bot", "--target", "m@1", "--guard", "support")

    refused = cli.fails("guard", "policy", "delete", "support")
    unguarded = cli.json("deploy", "update", "bot", "--no-guard")
    deleted = cli("guard", "policy", "delete", "support")

    assert created["spec"]["guard"] == "support"
    assert "in use by deployment(s) bot" in refused
    assert unguarded["spec"]["guard"] is None
    assert deleted.exit_code == 0


def test_detectors_are_listed(cli: Cli) -> None:
    found = cli.json("guard", "detectors")

    assert {"toxicity", "topics", "max_size", "json_schema"} <= {d["name"] for d in found}
