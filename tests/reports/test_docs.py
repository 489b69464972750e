"""docs/compliance.md cannot drift: its example rows come out of a real report."""

from __future__ import annotations

import re
from pathlib import Path

from modelcycle.reports import render_markdown
from reports.conftest import MODEL, Story

DOC = Path(__file__).parents[2] / "docs" / "compliance.md"


def excerpt() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- report-excerpt:start -->(.*)<!-- report-excerpt:end -->", text, re.S)
    assert found, "the example excerpt markers are missing"
    return [line for line in found.group(1).splitlines() if line.startswith("|")]


def test_the_example_rows_are_what_a_report_shows(story: Story) -> None:
    report = story.services.reports.gather(story.admin, MODEL, "production", now=story.now)
    markdown = render_markdown(report).splitlines()
    rows = excerpt()
    assert len(rows) > 20
    missing = [row for row in rows if row not in markdown]
    assert not missing, f"rows of docs/compliance.md no report shows: {missing}"


def test_every_item_of_the_map_is_explained(story: Story) -> None:
    report = story.services.reports.gather(story.admin, MODEL, "2", now=story.now)
    text = DOC.read_text(encoding="utf-8")
    for item in report.compliance:
        assert f"| {item.ref}" in text, f"docs/compliance.md does not explain {item.ref}"
