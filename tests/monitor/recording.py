"""What the recorder, metrics and OTLP export tests share: a gateway over chosen settings.

Imported as ``monitor.recording`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.openai_env import gateway_env
from modelcycle.settings import Settings
from modelcycle.testing import make_settings

gateway = gateway_env
"""Services over some settings with an app key, torn down like the gateway tests do."""


def settings_for(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Test settings under ``tmp_path``; spans are written within 20 ms of a request."""
    # A short flush interval keeps the tests quick; the defaults are measured elsewhere.
    values: dict[str, Any] = {"trace_flush_interval_s": 0.02, **overrides}
    return make_settings(tmp_path / "home", database_url, **values)
