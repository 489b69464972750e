"""Guard quality: precision and recall of the built-in detectors on the labelled sets.

(a) Span level, ``guard_data/pii_<lang>.jsonl``: the ``pii`` and ``secrets``
    detectors (default options, findings scored >= 0.5, as the default policy
    keeps them). A finding is right when it overlaps a labelled entity of the
    same type; an entity is found when such a finding overlaps it. "any-PII"
    recall counts an entity as found when any finding of any type overlaps it
    (what redaction needs). Rows without entities give the row-level
    false-positive rate.
(b) Text level, every other ``guard_data/<detector>_<lang>.jsonl`` (rows
    ``{"text", "lang", "label", "category", "source"}``): a row is flagged when
    the named detector returns any finding scored >= 0.5.

Targets (PASS/MISS printed; the exit status is always 0): structured PII recall
>= 0.95 at precision >= 0.95 per language; injection recall >= 0.80 with a
false-positive rate <= 0.05 per language. When ``presidio-analyzer`` happens to
be installed, its figures and per-text latency on the PII sets are printed too
(regex recognizers only; it is not a dependency).

    .venv/bin/python benchmarks/guard_quality.py
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.types import Detector

DATA = Path(__file__).resolve().parent / "guard_data"
MIN_SCORE = 0.5
STRUCTURED = frozenset(
    {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "ES_DNI"}
    | {"ES_NIE", "US_SSN", "PASSPORT"}
)
PII_TYPES = STRUCTURED | {"POSTAL_ADDRESS", "PERSON"}  # the rest come from ``secrets``
TEXT_TARGETS = {"injection": (0.80, 0.05)}  # detector -> (min recall, max false-positive rate)
Span = tuple[str, int, int]


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as rows:
        return [json.loads(line) for line in rows if line.strip()]


def overlaps(a: Span, b: Span) -> bool:
    return a[1] < b[2] and b[1] < a[2]


class SpanScore:
    """Per-type counts: labelled entities found, findings right, findings wrong."""

    def __init__(self) -> None:
        self.labelled: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.right: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.any_found = 0
        self.negative_rows = 0
        self.negative_rows_flagged = 0

    def add(self, gold: list[Span], predicted: list[Span]) -> None:
        for entity in gold:
            self.labelled[entity[0]] += 1
            if any(p[0] == entity[0] and overlaps(p, entity) for p in predicted):
                self.found[entity[0]] += 1
            if any(overlaps(p, entity) for p in predicted):
                self.any_found += 1
        for finding in predicted:
            self.predicted[finding[0]] += 1
            if any(g[0] == finding[0] and overlaps(g, finding) for g in gold):
                self.right[finding[0]] += 1
        if not gold:
            self.negative_rows += 1
            self.negative_rows_flagged += bool(predicted)

    def figures(self, types: Iterable[str]) -> tuple[float, float, int]:
        kinds = list(types)
        labelled = sum(self.labelled[k] for k in kinds)
        predicted = sum(self.predicted[k] for k in kinds)
        recall = sum(self.found[k] for k in kinds) / labelled if labelled else float("nan")
        precision = sum(self.right[k] for k in kinds) / predicted if predicted else float("nan")
        return precision, recall, labelled


def _fmt(value: float) -> str:
    return "   -  " if value != value else f"{value:6.3f}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def span_level(detectors: dict[str, Detector]) -> None:
    print("== (a) span level: pii + secrets on guard_data/pii_<lang>.jsonl (score >= 0.5) ==")
    for path in sorted(DATA.glob("pii_*.jsonl")):
        rows = load(path)
        lang = path.stem.split("_", 1)[1]
        score, elapsed = SpanScore(), 0.0
        for row in rows:
            gold = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
            predicted: list[Span] = []
            for name in ("pii", "secrets"):
                start = time.perf_counter()
                found = detectors[name].detect(row["text"])
                elapsed += time.perf_counter() - start
                predicted += [(f.type, f.start, f.end) for f in found if f.score >= MIN_SCORE]
            score.add(gold, predicted)
        _print_span_table(lang, score, len(rows), elapsed)
        presidio_comparison(rows, lang)


def _print_span_table(lang: str, score: SpanScore, rows: int, elapsed: float) -> None:
    print(f"\n[{lang}] {rows} rows, pii+secrets {elapsed / rows * 1e6:.0f} us per text")
    print(f"  {'detector':9s} {'type':28s} {'precision':>9s} {'recall':>7s} {'n':>5s}")
    kinds = sorted(set(score.labelled) | set(score.predicted))
    for kind in kinds:
        owner = "pii" if kind in PII_TYPES else "secrets"
        precision, recall, n = score.figures([kind])
        print(f"  {owner:9s} {kind:28s} {_fmt(precision):>9s} {_fmt(recall):>7s} {n:5d}")
    precision, recall, n = score.figures(STRUCTURED)
    print(f"  {'':9s} {'structured PII (all)':28s} {_fmt(precision):>9s} {_fmt(recall):>7s} {n:5d}")
    total = sum(score.labelled.values())
    print(f"  any-PII recall (any finding overlaps the entity): {score.any_found / total:.3f}")
    flagged = score.negative_rows_flagged / max(score.negative_rows, 1)
    print(f"  rows without PII flagged: {flagged:.3f} of {score.negative_rows}")
    ok = recall >= 0.95 and precision >= 0.95
    print(f"  {_verdict(ok)}: structured PII recall >= 0.95 at precision >= 0.95 ({lang})")


def text_level(factories: dict[str, Callable[..., Any]]) -> None:
    print("\n== (b) text level: guard_data/<detector>_<lang>.jsonl (flagged: a finding >= 0.5) ==")
    for path in sorted(DATA.glob("*_*.jsonl")):
        name, lang = path.stem.rsplit("_", 1)
        if name == "pii":
            continue
        if name not in factories:
            print(f"[{name} {lang}] no detector named {name}: skipped")
            continue
        try:
            detector = factories[name]({})
        except Exception as exc:  # a detector that needs options cannot be scored blind
            print(f"[{name} {lang}] cannot build with default options ({exc}): skipped")
            continue
        rows = load(path)
        held_out = [row for row in rows if row.get("split") == "test"]
        if held_out:  # rules were tuned on the dev split: judge the target on test alone
            _text_table(name, f"{lang}, all splits", detector, rows, judge=False)
            _text_table(name, f"{lang}, test split", detector, held_out)
        else:
            _text_table(name, lang, detector, rows)


def _text_table(
    name: str, lang: str, detector: Detector, rows: list[dict[str, Any]], *, judge: bool = True
) -> None:
    counts: Counter[tuple[bool, bool]] = Counter()
    by_category: dict[str, Counter[bool]] = defaultdict(Counter)
    for row in rows:
        flagged = any(f.score >= MIN_SCORE for f in detector.detect(row["text"]))
        counts[(bool(row["label"]), flagged)] += 1
        by_category[f"{'+' if row['label'] else '-'} {row.get('category', '?')}"][flagged] += 1
    tp, fn = counts[(True, True)], counts[(True, False)]
    fp, tn = counts[(False, True)], counts[(False, False)]
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    print(
        f"\n[{name} {lang}] n={len(rows)} (+{tp + fn} / -{fp + tn})  precision {_fmt(precision)}"
        f"  recall {_fmt(recall)}  false-positive rate {_fmt(fpr)}"
    )
    for category, flags in sorted(by_category.items()):
        share = flags[True] / (flags[True] + flags[False])
        print(f"    {category:40s} flagged {share:6.3f}  n={flags[True] + flags[False]}")
    if judge and name in TEXT_TARGETS:
        min_recall, max_fpr = TEXT_TARGETS[name]
        ok = recall >= min_recall and fpr <= max_fpr
        print(f"  {_verdict(ok)}: recall >= {min_recall} with FPR <= {max_fpr} ({lang})")


PRESIDIO_TYPES = {"ES_NIF": "ES_DNI", "US_PASSPORT": "PASSPORT", "ES_PASSPORT": "PASSPORT"}


def presidio_comparison(rows: list[dict[str, Any]], lang: str) -> None:
    """Presidio's regex recognizers on the same rows, when it is installed."""
    analyzer = _presidio(lang)
    if analyzer is None:
        return
    score, elapsed = SpanScore(), 0.0
    for row in rows:
        start = time.perf_counter()
        try:
            results = analyzer.analyze(text=row["text"], language=lang, score_threshold=MIN_SCORE)
        except Exception as exc:  # optional comparison: report, never fail the run
            print(f"  presidio-analyzer failed on a row ({exc}): comparison stopped")
            return
        elapsed += time.perf_counter() - start
        predicted = [
            (PRESIDIO_TYPES.get(r.entity_type, r.entity_type), r.start, r.end) for r in results
        ]
        gold = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
        score.add(gold, [p for p in predicted if p[0] in STRUCTURED])
    precision, recall, n = score.figures(STRUCTURED)
    print(
        f"  presidio-analyzer (regex recognizers, {lang}): structured precision {_fmt(precision)}"
        f" recall {_fmt(recall)} n={n}, {elapsed / len(rows) * 1e6:.0f} us per text"
    )


def _presidio(lang: str) -> Any:
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError:
        print("  presidio-analyzer not installed: comparison skipped")
        return None
    try:  # a blank spaCy pipeline: regex recognizers only, nothing downloaded
        engine = SpacyNlpEngine(models=[{"lang_code": lang, "model_name": "blank"}])
        engine.nlp = {lang: spacy.blank(lang)}
        registry = RecognizerRegistry()
        registry.load_predefined_recognizers(languages=[lang])
        return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=[lang])
    except Exception as exc:  # its API moves between versions; the comparison is optional
        print(f"  presidio-analyzer could not be set up offline ({exc}): comparison skipped")
        return None


def main() -> None:
    factories = dict(BuiltinDetectors().modelcycle_guard_detectors())
    detectors = {name: factories[name]({}) for name in ("pii", "secrets")}
    span_level(detectors)
    text_level(factories)


if __name__ == "__main__":
    main()
