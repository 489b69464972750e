"""Running ``modelcycle`` in process, with the checks every CLI test wants.

Imported as ``cli.runner`` (``tests/`` is on ``sys.path`` under pytest's default
import mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner, Result

from modelcycle.cli.main import app


@dataclass(frozen=True)
class Cli:
    """Runs ``modelcycle`` against ``url`` (server and key passed by environment)."""

    url: str
    key: str

    def __call__(self, *args: str, key: str | None = None) -> Result:
        env = {
            "MODELCYCLE_SERVER": self.url,
            "MODELCYCLE_API_KEY": key if key is not None else self.key,
        }
        result = CliRunner().invoke(app, list(args), env=env)
        # The key in use is a secret: no command may echo it, whatever happens.
        assert env["MODELCYCLE_API_KEY"] not in result.output
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, key: str | None = None) -> Any:
        """Run with ``--json``, require success and parse stdout."""
        result = self(*args, "--json", key=key)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def fails(self, *args: str, key: str | None = None, naming: tuple[str, ...] = ()) -> str:
        """Run, require exit code 1 and exactly one ``error:`` line naming each fragment."""
        return one_line_error(self(*args, key=key), *naming)


def one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 1, nothing on stdout, one ``error:`` line on stderr naming each fragment."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]
