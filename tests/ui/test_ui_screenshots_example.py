"""``examples/dashboard_screenshots.py`` captures every page at both widths, as documented."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.live import LiveServer
from ui.conftest import CHROMEDRIVER, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SCRIPT = Path(__file__).parents[2] / "examples" / "dashboard_screenshots.py"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_screenshot_script_captures_each_page_at_both_widths(
    ui_server: LiveServer, tmp_path: Path
) -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromedriver")
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--server",
            ui_server.url,
            "--api-key",
            ui_server.admin_key,
            "--out",
            str(tmp_path),
            "--model",
            "none-yet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shots = sorted(tmp_path.glob("*.png"))
    names = {path.stem.rsplit("-", 1)[0] for path in shots}
    assert {"overview", "deployment", "traces", "monitoring", "playground", "keys"} <= names
    for path in shots:
        width, height = png_size(path)
        assert width == (1280 if path.stem.endswith("-desktop") else 390), path.name
        assert height >= 600, path.name
    assert len(shots) == 2 * len(names)
