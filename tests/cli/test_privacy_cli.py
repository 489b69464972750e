"""``modelcycle privacy``: erase (asks first), export to a private file, raw-text switch."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.runner import Cli, one_line_error
from e2e.live import LiveServer
from modelcycle.cli.main import app
from modelcycle.monitor import SpanRecord
from modelcycle.store.tables import SpanRow
from modelcycle.testing import make_key
from modelcycle.types import Role

USER = "customer-42"


def record_traces(server: LiveServer, user: str, count: int) -> None:
    admin = server.services.access.authenticate(server.admin_key)
    now = datetime.now(UTC)
    server.services.recorder.writer.write(
        [
            SpanRecord(
                project_id=admin.project_id,
                trace_id=uuid.uuid4().hex,
                span_id=uuid.uuid4().hex[:16],
                name="chat.completions chat",
                kind="llm",
                source="gateway",
                start_time=now,
                end_time=now,
                duration_ms=1.0,
                status="ok",
                user_id=user,
                input=f"question {i} of {user}",
                output="an answer",
            )
            for i in range(count)
        ]
    )


def spans_of(server: LiveServer, user: str) -> int:
    with server.services.store.read() as session:
        return int(
            session.execute(
                select(func.count()).select_from(SpanRow).where(SpanRow.user_id == user)
            ).scalar_one()
        )


def run_with_input(cli: Cli, text: str, *args: str) -> tuple[int, str, str]:
    env = {"MODELCYCLE_SERVER": cli.url, "MODELCYCLE_API_KEY": cli.key}
    result = CliRunner().invoke(app, list(args), env=env, input=text)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_erase_shows_what_it_will_remove_and_asks_first(cli: Cli, live_server: LiveServer) -> None:
    record_traces(live_server, USER, 2)
    record_traces(live_server, "someone-else", 1)

    code, stdout, stderr = run_with_input(cli, "n\n", "privacy", "erase", "--user", USER)
    assert code == 1
    assert "erased" not in stdout  # (the test runner echoes the typed answer there)
    assert "this erases 2 traces, 2 spans, 0 feedback" in stderr
    assert "nothing erased (not confirmed); pass --yes" in stderr
    assert spans_of(live_server, USER) == 2

    code, stdout, _ = run_with_input(cli, "y\n", "privacy", "erase", "--user", USER)
    assert code == 0
    assert stdout.splitlines()[-1].startswith(
        "erased 2 traces, 2 spans, 0 feedback (audited as user "
    )
    assert USER not in stdout
    assert spans_of(live_server, USER) == 0
    assert spans_of(live_server, "someone-else") == 1


def test_erase_dry_run_and_yes_print_counts_as_json(cli: Cli, live_server: LiveServer) -> None:
    record_traces(live_server, USER, 3)

    rehearsal = cli.json("privacy", "erase", "--user", USER, "--dry-run")
    assert rehearsal["dry_run"] is True
    assert rehearsal["counts"]["spans"] == 3
    assert spans_of(live_server, USER) == 3

    erased = cli.json("privacy", "erase", "--user", USER, "--yes")
    assert erased["counts"] == {"traces": 3, "spans": 3, "feedback": 0}
    assert spans_of(live_server, USER) == 0


def test_export_writes_a_private_file_or_stdout(
    cli: Cli, live_server: LiveServer, tmp_path: Path
) -> None:
    record_traces(live_server, USER, 2)
    out = tmp_path / "export.json"

    result = cli("privacy", "export", "--user", USER, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 2 traces and 0 more feedback to {out}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    found = json.loads(out.read_text(encoding="utf-8"))
    inputs = sorted(span["input"] for trace in found["traces"] for span in trace["spans"])
    assert inputs == [f"question 0 of {USER}", f"question 1 of {USER}"]
    printed = cli("privacy", "export", "--user", USER)
    assert json.loads(printed.stdout)["user"] == USER
    missing_dir = tmp_path / "no" / "such" / "dir.json"
    one_line_error(
        cli("privacy", "export", "--user", USER, "--out", str(missing_dir)), "cannot write"
    )


def test_raw_text_shows_and_switches_and_only_admins_switch(
    cli: Cli, live_server: LiveServer
) -> None:
    shown = cli("privacy", "raw-text")
    assert shown.stdout.strip() == "traces are stored with personal data and secrets redacted"

    turned = cli.json("privacy", "raw-text", "on")
    assert turned["store_raw_text"] is True
    assert cli("privacy", "raw-text").stdout.strip() == (
        "traces are stored raw (personal data and secrets included)"
    )
    assert cli.json("traces", "retention")["store_raw_text"] is True

    viewer = make_key(live_server.services, Role.VIEWER)
    cli.fails("privacy", "raw-text", "off", key=viewer.key, naming=("role 'admin'",))
    assert cli.json("privacy", "raw-text", "off")["store_raw_text"] is False
    cli.fails("privacy", "erase", "--user", USER, "--yes", key=viewer.key, naming=("admin",))
