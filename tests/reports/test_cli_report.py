"""``modelcycle report model`` against a live server, and the sync SDK it calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.client import Client
from reports.conftest import MODEL, SCRIPT, tell_story


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    services = live_server.services
    tell_story(services, services.access.authenticate(live_server.admin_key))
    return Cli(live_server.url, live_server.admin_key)


def test_markdown_goes_to_stdout(cli: Cli) -> None:
    result = cli("report", "model", f"{MODEL}@production")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# Model report: {MODEL}@2\n")
    assert "| support | 1 | canary |" in result.stdout


def test_html_and_json_go_to_the_file_asked_for(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    page = out / "card.html"
    result = cli("report", "model", f"{MODEL}@2", "--format", "html", "--out", str(page))
    assert result.exit_code == 0, result.output
    assert str(page) in result.stdout
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert SCRIPT not in text
    data = out / "card.json"
    cli("report", "model", f"{MODEL}@2", "--format", "json", "--days", "5", "--out", str(data))
    report = json.loads(data.read_text(encoding="utf-8"))
    assert report["monitoring"]["days"] == 5
    assert [c["ref"] for c in report["compliance"]][-1] == "LLM10:2025"
    assert sorted(p.name for p in out.iterdir()) == ["card.html", "card.json"]  # no temp files


@pytest.mark.parametrize(
    ("args", "naming"),
    [
        ((f"{MODEL}@9",), ("no version 9", "modelcycle models show")),
        ((MODEL,), ("NAME@VERSION",)),
        ((f"{MODEL}@2", "--format", "pdf"), ("--format", "md, html, json")),
        ((f"{MODEL}@2", "--days", "0"), ("--days",)),
        ((f"{MODEL}@2", "--out", "/nonexistent-dir/card.md"), ("cannot write", "--out")),
    ],
)
def test_mistakes_are_one_line_errors(cli: Cli, args: tuple[str, ...], naming: tuple[str]) -> None:
    cli.fails("report", "model", *args, naming=naming)


def test_sync_sdk_reports(cli: Cli) -> None:
    with Client(cli.url, cli.key) as client:
        report = client.reports.model(MODEL, 2)
        markdown = client.reports.model(MODEL, "production", format="md")
    assert report.identity.model == MODEL
    assert f"{MODEL}@1" in markdown
