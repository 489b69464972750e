"""``modelcycle traces`` and ``modelcycle feedback`` against a live server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.monitor import SpanRecord
from modelcycle.services import Services
from modelcycle.testing import make_key
from modelcycle.types import Role
from monitor.trace_factory import app_trace, llm_span


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite: the CLI reads through the API, which the other tests run on both databases."""
    return None


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    return Cli(live_server.url, live_server.admin_key)


def recent(spans: list[SpanRecord]) -> list[SpanRecord]:
    """``spans`` moved to end just now (the factory places them before a fixed instant)."""
    shift = datetime.now(UTC) - max(s.end_time for s in spans) - timedelta(seconds=1)
    for span in spans:
        span.start_time += shift
        span.end_time += shift
    return spans


@pytest.fixture
def recorded(live_server: LiveServer) -> dict[str, list[SpanRecord]]:
    services: Services = live_server.services
    pid = services.access.authenticate(live_server.admin_key).project_id
    written = {
        "ada": [llm_span(pid, ago=timedelta(minutes=3), user_id="ada", output="Paris.")],
        "bob": [llm_span(pid, ago=timedelta(minutes=2), user_id="bob", status="error")],
        "app": app_trace(pid, ago=timedelta(minutes=1)),
    }
    services.recorder.writer.write(recent([s for spans in written.values() for s in spans]))
    return written


def test_list_filters_pages_and_prints_json(
    cli: Cli, recorded: dict[str, list[SpanRecord]]
) -> None:
    ids = {name: spans[0].trace_id for name, spans in recorded.items()}

    everything = cli.json("traces", "list")
    by_user = cli.json("traces", "list", "--user", "ada")
    errors = cli.json("traces", "list", "--status", "error", "--since", "1h")
    first = cli.json("traces", "list", "--limit", "2")
    second = cli.json("traces", "list", "--limit", "2", "--cursor", first["next_cursor"])
    table = cli("traces", "list", "--deployment", "chat", "--limit", "2")

    assert [row["trace_id"] for row in everything["data"]] == [ids["app"], ids["bob"], ids["ada"]]
    assert [row["trace_id"] for row in by_user["data"]] == [ids["app"], ids["ada"]]
    assert [row["trace_id"] for row in errors["data"]] == [ids["app"], ids["bob"]]
    assert [row["trace_id"] for row in first["data"] + second["data"]] == [
        ids["app"],
        ids["bob"],
        ids["ada"],
    ]
    assert second["next_cursor"] is None
    assert table.exit_code == 0, table.output
    assert ids["app"] in table.stdout
    assert "more: --cursor" in table.stdout


def test_show_prints_the_span_tree_and_the_feedback(
    cli: Cli, recorded: dict[str, list[SpanRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: every feedback column fits
    root = recorded["app"][0]
    added = cli(
        "feedback", "add", root.trace_id, "--down", "--label", "wrong", "--correction", "30 days"
    )

    shown = cli("traces", "show", root.trace_id)
    as_json = cli.json("traces", "show", root.trace_id)

    assert added.exit_code == 0, added.output
    assert f"added to {root.trace_id} (chat-model@2)" in added.stdout
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    tree = [line for line in lines if "answer_question" in line or "search_docs" in line]
    assert len(tree) == 2
    # Children are indented under their root.
    assert tree[1].index("search_docs") > tree[0].index("answer_question")
    assert "error in chat.completions chat: upstream timed out" in shown.stdout
    assert "How do refunds work?" in shown.stdout
    assert "wrong" in shown.stdout
    assert "30 days" in shown.stdout
    assert [f["thumbs"] for f in as_json["feedback"]] == [-1]
    assert len(as_json["spans"]) == 4


def test_feedback_add_and_list(
    cli: Cli, live_server: LiveServer, recorded: dict[str, list[SpanRecord]]
) -> None:
    trace = recorded["ada"][0].trace_id
    app_key = make_key(live_server.services, Role.APP).key

    scored = cli.json("feedback", "add", trace, "--score", "0.8", "--comment", "good", key=app_key)
    up = cli.json("feedback", "add", trace, "--up")
    listed = cli.json("feedback", "list", trace)

    assert (scored["score"], scored["comment"], scored["version"]) == (0.8, "good", 1)
    assert (up["score"], up["thumbs"]) == (1.0, 1)
    assert [f["id"] for f in listed] == [scored["id"], up["id"]]
    rated = cli.json("traces", "list", "--thumbs", "up")
    assert [row["trace_id"] for row in rated["data"]] == [trace]
    assert cli.json("traces", "list", "--thumbs", "down")["data"] == []
    cli.fails("traces", "list", "--thumbs", "sideways", naming=("--thumbs",))
    cli.fails("feedback", "add", trace, "--up", "--down", naming=("one of",))
    cli.fails("feedback", "add", trace, naming=("score, thumbs",))
    cli.fails("feedback", "add", "0123456789abcdef0123456789abcdef", "--up", naming=("not found",))
    cli.fails("traces", "show", "0123456789abcdef0123456789abcdef", naming=("not found",))
    cli.fails("traces", "list", "--since", "soon", naming=("--since",))
    cli.fails("traces", "list", "--start", "2025-01-02", "--end", "2025-01-01", naming=("end",))


def test_stats_and_retention(cli: Cli, recorded: dict[str, list[SpanRecord]]) -> None:
    stats = cli.json("traces", "stats", "--since", "1h", "--by", "version")
    table = cli("traces", "stats", "--since", "1h")

    by_version = {(s["model"], s["version"]): s["summary"] for s in stats["series"]}
    assert by_version[("chat-model", 1)]["requests"] == 3  # ada, bob and the app's first call
    assert by_version[("chat-model", 1)]["errors"] == 2
    assert by_version[("chat-model", 2)]["requests"] == 1
    assert stats["summary"]["requests"] == 4
    assert table.exit_code == 0, table.output
    assert "chat chat-model@2" in table.stdout
    assert "all" in table.stdout
    cli.fails("traces", "stats", "--by", "colour", naming=("--by",))

    assert cli("traces", "retention").stdout.strip() == "traces are kept forever"
    assert cli.json("traces", "retention", "--days", "14")["retention_days"] == 14
    assert cli("traces", "retention").stdout.strip() == "traces are kept 14 days"
    assert cli.json("traces", "retention", "--forever")["retention_days"] is None
    cli.fails("traces", "retention", "--days", "3", "--forever", naming=("not both",))
