"""Accessible basics on every page: one h1, a label for every field, named charts and tables.

Checked on the HTML each page serves, with data in it (a deployment, traces, an alert
rule), as the admin (who is offered every form). Keyboard use and the phone width are
checked in the browser tests.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import modelcycle.ui
from modelcycle.services import Services
from modelcycle.testing import KeyPair
from ui.conftest import page_client
from ui.test_ui_overview import seed

STATIC = Path(modelcycle.ui.__file__).parent / "static"
PAGES = [
    "/",
    "/models",
    "/models/bot",
    "/deployments",
    "/deployments/chat",
    "/traces",
    "/monitoring",
    "/evals",
    "/tune",
    "/guard",
    "/playground",
    "/audit",
    "/keys",
    "/login",
]


class Page(HTMLParser):
    """The parts of a page the checks look at."""

    def __init__(self) -> None:
        super().__init__()
        self.h1 = 0
        self.ids: set[str] = set()
        self.labelled: set[str] = set()
        self.fields: list[dict[str, str | None]] = []
        self.unnamed_svgs = 0
        self.inline_styles = 0
        self._label_depth = 0
        self.wrapped: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if "style" in values:
            self.inline_styles += 1
        if tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self._label_depth += 1
            if values.get("for"):
                self.labelled.add(str(values["for"]))
        elif tag in ("input", "select", "textarea") and values.get("type") not in (
            "hidden",
            "submit",
            "button",
        ):
            (self.wrapped if self._label_depth else self.fields).append(values)
        elif tag == "svg" and not (values.get("aria-label") or values.get("aria-hidden")):
            self.unnamed_svgs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1


@pytest.fixture
def seeded(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Services:
    seed(modelcycle_services, modelcycle_admin)
    return modelcycle_services


@pytest.mark.parametrize("path", PAGES)
def test_each_page_has_the_accessible_basics(
    seeded: Services, modelcycle_admin: KeyPair, path: str
) -> None:
    client = page_client(seeded, None if path == "/login" else modelcycle_admin.key)
    response = client.get(path)
    assert response.status_code == 200, response.text[:300]
    page = Page()
    page.feed(response.text)
    assert page.h1 == 1, f"{path}: {page.h1} <h1>"
    for field in page.fields:
        named = field.get("aria-label") or field.get("aria-labelledby")
        assert named or field.get("id") in page.labelled, f"{path}: no label for {field}"
    assert page.unnamed_svgs == 0, f"{path}: a chart without a name"
    assert page.inline_styles == 0, f"{path}: inline style (the CSP would block it)"
    assert 'lang="en"' in response.text
    assert 'href="#main"' in response.text  # the skip link


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two ``#rrggbb`` colours."""
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_meet_wcag_aa_contrast() -> None:
    css = (STATIC / "app.css").read_text()
    colours = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-f]{6})", css))
    for text in ("text", "muted", "accent", "ok", "warn", "bad"):
        for background in ("bg", "panel"):
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}"
    assert contrast(colours["accent-text"], colours["accent"]) >= 4.5  # primary buttons
    assert contrast("#ffffff", "#10243e") >= 4.5  # the navigation bar
