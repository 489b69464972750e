"""The committed PII sets are well formed and the detectors keep their measured quality on them.

``benchmarks/guard_quality.py`` prints the full table; this only guards against a
regression in structured PII (the figures it reported when the sets were built:
recall ~0.97, precision ~0.98 in both languages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelcycle.guard.detectors.pii import make_pii

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "guard_data"
STRUCTURED = {
    *("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"),
    *("ES_DNI", "ES_NIE", "US_SSN", "PASSPORT"),
}


def _rows(lang: str) -> list[dict[str, Any]]:
    path = DATA / f"pii_{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_rows_are_well_formed(lang: str) -> None:
    rows = _rows(lang)
    assert 500 <= len(rows) <= 800
    for row in rows:
        text = row["text"]
        assert isinstance(text, str)
        assert row["lang"] == lang
        for entity in row["entities"]:
            assert 0 <= entity["start"] < entity["end"] <= len(text)
            assert text[entity["start"] : entity["end"]].strip()
    negatives = sum(1 for row in rows if not row["entities"])
    assert 0.25 <= negatives / len(rows) <= 0.35


@pytest.mark.parametrize("lang", ["en", "es"])
def test_structured_pii_quality_holds(lang: str) -> None:
    detector = make_pii({})
    labelled = found = predicted = right = 0
    for row in _rows(lang):
        text = str(row["text"])
        gold = [
            (e["type"], e["start"], e["end"]) for e in row["entities"] if e["type"] in STRUCTURED
        ]
        spans = [
            (f.type, f.start, f.end)
            for f in detector.detect(text)
            if f.score >= 0.5 and f.type in STRUCTURED
        ]
        labelled += len(gold)
        found += sum(any(p[0] == g[0] and p[1] < g[2] and g[1] < p[2] for p in spans) for g in gold)
        predicted += len(spans)
        right += sum(any(g[0] == p[0] and p[1] < g[2] and g[1] < p[2] for g in gold) for p in spans)
    assert found / labelled >= 0.95
    assert right / predicted >= 0.95
