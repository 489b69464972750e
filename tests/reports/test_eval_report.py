"""The evaluation report, rendered from a run built with the real statistics.

The summary is computed the way a run computes it (mean_ci, paired_comparison,
evaluate_gate), so the numbers the page shows are checked against real ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from modelcycle.evaluate.gates import evaluate_gate, parse_gate
from modelcycle.evaluate.paired import paired_comparison
from modelcycle.evaluate.schemas import (
    Aggregate,
    Comparison,
    EvalResult,
    EvalRun,
    GateVerdict,
    RunSummary,
    ScoreOut,
    ScorerSpec,
    TargetSummary,
)
from modelcycle.evaluate.statistics import mean_ci, pass_rate_ci
from modelcycle.reports import build_eval_report, eval_report_json, render_eval_html

BASE, CAND = "support-bot@1", "support-bot@2"
SCRIPT = "<script>alert('pwned')</script>"
IMG = "<img src=x onerror=alert(1)>"
LONG = "Tell me about the order. " * 40
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    prompt: str
    expected: str
    base: tuple[str, float, float | None]
    """Output, exact_match, rouge_l (None: the scorer failed)."""
    cand: tuple[str, float, float] | str
    """Output and scores, or the error the candidate answered with."""


ROWS = [
    Row("What is 2+2?", "4", ("4", 1, 1.0), ("4", 1, 1.0)),
    Row("Capital of France?", "Paris", ("Paris", 1, 1.0), ("Lyon", 0, 0.0)),  # regression
    Row(f"Say ok {IMG}", "ok", ("no", 0, 0.2), (f"{SCRIPT} ok", 1, 0.6)),  # improvement
    Row("Colour of the sky?", "blue", ("blue", 1, 0.9), "upstream timeout"),  # error
    Row(LONG, "shipped", ("pending", 0, 0.4), ("unknown", 0, 0.5)),  # improvement (rouge)
    Row("Largest planet?", "Jupiter", ("Jupiter", 1, 0.8), ("Jupiter!", 1, 0.7)),  # regression
    Row("Smallest prime?", "2", ("2", 1, 0.7), ("2", 1, 0.9)),  # improvement
    Row("Say nothing", "", ("", 0, None), ("", 0, 0.1)),  # the baseline's scorer failed
]
LATENCY = {BASE: 100.0, CAND: 130.0}
"""Every candidate answer is slower: latency must not make every sample a regression."""


def results() -> list[EvalResult]:
    found = []
    for position, row in enumerate(ROWS):
        for target, answer in ((BASE, row.base), (CAND, row.cand)):
            common = {
                "sample_id": 100 + position,
                "position": position,
                "target": target,
                "input": {"prompt": row.prompt},
                "expected": row.expected,
                "trace_id": None,
                "model": target.split("@")[0],
                "version": int(target.split("@")[1]),
                "tokens_in": 10,
                "tokens_out": 3,
                "cost": None,
            }
            if isinstance(answer, str):
                found.append(
                    EvalResult(**common, output=None, error=answer, latency_ms=None, scores={})
                )
                continue
            output, exact, rouge = answer
            scores = {
                "exact_match": ScoreOut(value=exact),
                "rouge_l": ScoreOut(value=rouge)
                if rouge is not None
                else ScoreOut(value=None, error="rouge_l: empty output"),
                "latency": ScoreOut(value=LATENCY[target] + position),
            }
            found.append(
                EvalResult(
                    **common,
                    output=output,
                    error=None,
                    latency_ms=LATENCY[target] + position,
                    scores=scores,
                )
            )
    return found


KINDS = {
    "exact_match": ("binary", True),
    "rouge_l": ("continuous", True),
    "latency": ("measure", False),
}


def values(found: list[EvalResult], target: str, scorer: str) -> dict[int, float]:
    return {
        r.sample_id: v
        for r in found
        if r.target == target and (s := r.scores.get(scorer)) and (v := s.value) is not None
    }


def make_run(*, status: str = "succeeded", targets: tuple[str, ...] = (BASE, CAND)) -> EvalRun:
    found = [r for r in results() if r.target in targets]
    summaries = []
    for target in targets:
        aggregates = []
        for scorer, (kind, higher) in KINDS.items():
            scored = list(values(found, target, scorer).values())
            errors = sum(1 for r in found if r.target == target) - len(scored)
            aggregates.append(Aggregate.of(scorer, kind, higher, errors, mean_ci(scored)))
        summaries.append(
            TargetSummary(
                target=target,
                samples=len(ROWS),
                errors=sum(1 for r in found if r.target == target and r.error),
                aggregates=aggregates,
                latency_ms_p50=103.5,
                latency_ms_p95=107.0,
                tokens_out=24,
            )
        )
    comparisons, gates = [], []
    if len(targets) == 2:
        for scorer, (kind, higher) in KINDS.items():
            base, cand = values(found, BASE, scorer), values(found, CAND, scorer)
            both = sorted(set(base) & set(cand))
            compared = paired_comparison(
                [base[i] for i in both],
                [cand[i] for i in both],
                kind="binary" if kind == "binary" else "continuous",
                higher_is_better=higher,
            )
            comparisons.append(Comparison.of(BASE, CAND, scorer, compared))
        cand_scores = {s: list(values(found, CAND, s).values()) for s in KINDS}
        for text in ("exact_match>=0.5", "mean(rouge_l)>=0.8"):
            gates.append(GateVerdict.of(CAND, evaluate_gate(parse_gate(text), cand_scores)))
    by_category = {
        "jailbreak": {
            t: Aggregate.of("refusal", "binary", True, 0, pass_rate_ci([1, 1, 0])) for t in targets
        },
    }
    summary = RunSummary(
        dataset="qa@3",
        dataset_hash="ab12" * 16,
        samples=len(ROWS),
        baseline=BASE if len(targets) == 2 else None,
        targets=summaries,
        comparisons=comparisons,
        gates=gates,
        gates_passed=all(g.passed for g in gates) if gates else None,
        duration_s=65.0,
        by_category=by_category,
    )
    finished = status == "succeeded"
    return EvalRun(
        id=42,
        name="<b>nightly</b>",
        kind="eval",
        dataset="qa@3",
        targets=list(targets),
        baseline=BASE,
        scorers=[ScorerSpec(name=name) for name in KINDS],
        gates=[g.gate for g in gates],
        params={},
        status=status,  # type: ignore[arg-type]
        job_id=7,
        progress=1.0 if finished else 0.5,
        summary=summary if finished else None,
        gates_passed=summary.gates_passed if finished else None,
        error=None,
        created_by="ci-key",
        created_at=START,
        finished_at=START + timedelta(seconds=65) if finished else None,
    )


class Page(HTMLParser):
    """Tags, attributes and the text of every table cell and heading of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)

    def row(self, *start: str, width: int | None = None) -> list[str]:
        matching = [
            r
            for r in self.rows
            if r[: len(start)] == list(start) and (width is None or len(r) == width)
        ]
        assert len(matching) == 1, f"{len(matching)} rows start with {start}"
        return matching[0]


@pytest.fixture(scope="module")
def run() -> EvalRun:
    return make_run()


@pytest.fixture(scope="module")
def html_page(run: EvalRun) -> str:
    return render_eval_html(run, results())


@pytest.fixture(scope="module")
def page(html_page: str) -> Page:
    return Page(html_page)


def test_every_section_is_present_with_the_runs_identity(page: Page) -> None:
    assert page.headings[0] == "Evaluation report: <b>nightly</b>"
    for section in (
        "Gates",
        "Results",
        "Score distributions",
        f"Comparisons with the baseline {BASE}",
        "Per-sample differences",
        "By category",
        "Samples",
    ):
        assert section in page.headings, section
    assert page.row("Dataset") == ["Dataset", "qa@3"]
    assert page.row("Dataset hash") == ["Dataset hash", "ab12" * 16]
    assert page.row("Targets") == ["Targets", f"{BASE}, {CAND}"]
    assert page.row("Baseline") == ["Baseline", BASE]
    assert page.row("Status") == ["Status", "succeeded"]
    assert page.row("Created") == ["Created", "2025-03-01 12:00:00 UTC"]
    assert page.row("Duration") == ["Duration", "1 min 5.0 s"]
    assert page.row("Gates") == ["Gates", "FAILED"]


def test_user_content_cannot_inject_markup(html_page: str, page: Page) -> None:
    assert SCRIPT not in html_page
    assert IMG not in html_page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; ok" in html_page
    assert "<b>nightly</b>" not in html_page
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "img", "link", "iframe", "object", "embed", "b"}
    assert all(not ({"onerror", "onload"} & set(attrs)) for _, attrs in page.tags)


def test_the_page_loads_nothing(html_page: str, page: Page) -> None:
    assert "http://" not in html_page
    assert "https://" not in html_page
    assert all(not ({"src", "href"} & set(attrs)) for _, attrs in page.tags)
    policy = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert policy == ["default-src 'none'; style-src 'unsafe-inline'"]
    assert "url(" not in html_page
    assert "@import" not in html_page


def test_gates_show_pass_fail_and_reason(run: EvalRun, page: Page) -> None:
    assert run.summary is not None
    passing, failing = run.summary.gates
    assert passing.passed
    assert not failing.passed
    assert page.row(passing.gate, CAND)[2:] == ["PASS", f"{passing.value:.3g}", "-", passing.reason]
    assert page.row(failing.gate, CAND)[2] == "FAIL"
    assert "needs >= 0.8" in page.row(failing.gate, CAND)[5]


def test_aggregates_shown_are_the_summarys(run: EvalRun, page: Page) -> None:
    assert run.summary is not None
    for target in run.summary.targets:
        for agg in target.aggregates:
            assert agg.estimate is not None
            assert agg.low is not None
            assert agg.high is not None
            if agg.kind == "binary":
                shown = [f"{agg.estimate:.1%}", f"[{agg.low:.1%}, {agg.high:.1%}]"]
            else:
                shown = [f"{agg.estimate:.3g}", f"[{agg.low:.3g}, {agg.high:.3g}]"]
            row = page.row(target.target, agg.scorer, width=7)
            assert row[2:6] == [*shown, str(agg.n), str(agg.errors)]
    # The candidate passed 4 of its 7 answers (one errored): 57.1%.
    assert page.row(CAND, "exact_match", width=7)[2] == "57.1%"


def test_comparisons_show_difference_ci_p_value_and_counts(run: EvalRun, page: Page) -> None:
    assert run.summary is not None
    exact = next(c for c in run.summary.comparisons if c.scorer == "exact_match")
    assert (exact.wins, exact.ties, exact.losses) == (1, 5, 1)
    row = page.row(CAND, "exact_match", width=11)
    assert row[4] == f"{exact.difference * 100:+.1f} pp"
    assert row[6] == f"{exact.p_value:.3g}"
    assert row[7] == exact.test
    assert row[8].startswith("odds ratio ")
    assert row[10] == "1 / 5 / 1"


def test_paired_differences_come_from_the_samples(run: EvalRun) -> None:
    report = build_eval_report(run, results())
    rouge = next(d for d in report.differences if d.scorer == "rouge_l")
    # Samples 0, 1, 2, 4, 5, 6: both scored (3 errored on the candidate, 7 on the baseline).
    deltas = [0.0, -1.0, 0.4, 0.1, -0.1, 0.2]
    assert rouge.n == 6
    assert rouge.mean == pytest.approx(sum(deltas) / 6)
    assert (rouge.better, rouge.same, rouge.worse) == (3, 1, 2)
    assert rouge.histogram is not None
    assert sum(rouge.histogram.counts) == 6
    assert rouge.histogram.low == pytest.approx(-1.0)
    assert rouge.histogram.high == pytest.approx(1.0)
    exact = next(d for d in report.differences if d.scorer == "exact_match")
    assert exact.histogram is not None
    assert exact.histogram.counts == [1, 5, 1]
    latency = next(d for d in report.differences if d.scorer == "latency")
    assert (latency.n, latency.worse, latency.higher_is_better) == (7, 7, False)


def test_samples_are_flagged_against_the_baseline(html_page: str, run: EvalRun) -> None:
    report = build_eval_report(run, results())
    flags = {s.position: s.flags for s in report.samples}
    assert flags == {
        0: [],  # slower, but latency is not quality
        1: ["regression"],
        2: ["improvement"],
        3: ["error"],
        4: ["improvement"],
        5: ["regression"],
        6: ["improvement"],
        7: ["error"],
    }
    assert report.flag_counts == {"regression": 2, "improvement": 3, "error": 2}
    for label in ("All (8)", "Regressions (2)", "Improvements (3)", "Errors (2)"):
        assert label in html_page
    assert len(re.findall(r'<tr class="sample regression">', html_page)) == 2
    assert len(re.findall(r'<td class="worse">', html_page)) == 2
    assert "error: upstream timeout" in html_page
    assert "rouge_l: empty output" in html_page


def test_long_inputs_are_folded_into_details(html_page: str) -> None:
    folded = re.findall(r"<details><summary>(.*?)…</summary>", html_page)
    assert len(folded) == 1
    assert len(folded[0]) == 240
    assert html_page.count(LONG.strip()) == 1  # the whole text, once, inside <details>


def test_only_the_first_samples_are_listed(run: EvalRun) -> None:
    page = render_eval_html(run, results(), max_samples=3)
    assert page.count('<tr class="sample') == 3
    assert "Showing the first 3 of 8 samples" in page
    assert "Regressions (2)" in page  # the counts are over every sample


def test_score_distributions_are_charts_with_labels(page: Page) -> None:
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    assert f"exact_match scores of {BASE}: 5 pass, 3 fail" in labels
    assert f"Histogram of the rouge_l scores of {CAND}" in labels
    assert "Mean latency per target with 95% intervals" in labels
    assert f"{CAND} vs {BASE} on exact_match: 1 wins, 5 ties, 1 losses" in labels
    assert all(label for label in labels)


def test_json_holds_the_same_data(run: EvalRun) -> None:
    data = json.loads(json.dumps(eval_report_json(run, results())))
    assert data["run"]["summary"]["dataset"] == "qa@3"
    assert data["baseline"] == BASE
    assert data["samples_total"] == 8
    sample = data["samples"][2]
    assert sample["flags"] == ["improvement"]
    assert sample["answers"][1]["output"] == f"{SCRIPT} ok"  # JSON is data: not escaped
    assert sample["answers"][1]["verdict"] == "better"
    assert [d["target"] for d in data["distributions"][:2]] == [BASE, CAND]


def test_a_run_still_going_shows_its_results_so_far() -> None:
    run = make_run(status="running")
    page = render_eval_html(run, results()[:6])
    parsed = Page(page)
    assert "Results" not in parsed.headings
    assert "has no summary yet" in page
    assert "Not evaluated yet." in page or "No gates." in page
    assert page.count('<tr class="sample') == 3


def test_a_single_target_has_no_comparison() -> None:
    run = make_run(targets=(CAND,))
    page = render_eval_html(run, [r for r in results() if r.target == CAND])
    headings = Page(page).headings
    assert not any(h.startswith("Comparisons") for h in headings)
    assert "Samples" in headings
    assert "verdict" not in page.split("<h2>Samples</h2>")[1]


def test_the_docs_explain_every_section(html_page: str) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "eval-reports.md").read_text(encoding="utf-8")
    explained = set(re.findall(r"^\| ([A-Z][^|]*?) \|", doc, re.MULTILINE))
    sections = re.findall(r"<h2>(.*?)</h2>", html_page)
    assert len(sections) == 6  # and the header under the title
    for section in sections:
        name = "Comparisons with the baseline" if section.startswith("Comparisons") else section
        assert name in explained, f"docs/eval-reports.md does not explain {name!r}"
