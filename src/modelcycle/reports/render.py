"""Markdown and standalone HTML forms of a report.

Every piece of recorded text (metadata, names, messages) is escaped: in
Markdown, the characters that would start markup or HTML; in HTML, by
``html.escape``. The HTML page embeds its stylesheet and loads nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from modelcycle.reports.document import Block, Fields, Heading, Markdown, Paragraph, Table, build
from modelcycle.reports.schemas import ModelReport

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")
_BLOCK_START = re.compile(r"^([#>+=-])")
_ORDERED_START = re.compile(r"^(\d+)([.)])")
_STATUS_CLASS = {"covered": "covered", "partial": "partial", "not covered": "not-covered"}


def md_text(text: str, *, block_start: bool = False) -> str:
    """Recorded text made inert in Markdown: no markup, no raw HTML, one line.

    ``block_start``: the text opens a paragraph, where ``#``, ``>``, ``-``... would
    start a heading, quote or list.
    """
    escaped = html.escape(text, quote=False)  # & < > as entities: no raw HTML gets through
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped)
    if block_start:
        escaped = _BLOCK_START.sub(r"\\\1", escaped)
        escaped = _ORDERED_START.sub(r"\1\\\2", escaped)
    return "<br>".join(escaped.splitlines()) or escaped


def render_markdown(report: ModelReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = []
    for block in build(report):
        out.extend(_markdown_block(block))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + md_text(block.text)]
    if isinstance(block, Paragraph):
        return [md_text(block.text, block_start=True)]
    if isinstance(block, Markdown):
        return [block.text.strip()]
    if isinstance(block, Fields):
        return _markdown_table(("Field", "Value"), block.pairs)
    if not block.rows:
        return [md_text(block.empty)]
    return _markdown_table(block.headers, block.rows)


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in headers) + "|")
    lines.extend("| " + " | ".join(md_text(cell) for cell in row) + " |" for row in rows)
    return lines


STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;
max-width:1100px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:2px solid #1d232b;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #c9d1d9;padding-bottom:.2rem}
h3{font-size:1.05rem;margin-top:1.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f3f5f7}
table.fields th{width:14rem}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6rem;white-space:pre-wrap}
p.empty{color:#57606a;font-style:italic}
td.covered{background:#dafbe1}td.partial{background:#fff8c5}td.not-covered{background:#ffebe9}
@media print{body{margin:0;max-width:none}}
"""


def render_html(report: ModelReport) -> str:
    """The report as one self-contained HTML page (embedded CSS, no scripts, no links)."""
    ident = report.identity
    title = html.escape(f"Model report: {ident.model}@{ident.version}")
    body = "\n".join(_html_block(block) for block in build(report))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">\n"
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Markdown):
        return f'<pre class="md">{esc(block.text)}</pre>'
    if isinstance(block, Fields):
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in block.pairs)
        return f'<table class="fields"><tbody>{rows}</tbody></table>'
    if not block.rows:
        return f'<p class="empty">{esc(block.empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
    body = "".join(
        "<tr>" + "".join(_html_cell(block, index, cell) for index, cell in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_cell(block: Table, index: int, cell: str) -> str:
    css = _STATUS_CLASS.get(cell) if index == block.status_column else None
    if css:
        return f'<td class="{css}">{html.escape(cell)}</td>'
    return f"<td>{html.escape(cell)}</td>"
