"""No guard pattern may backtrack catastrophically: time must grow linearly with the input.

Every module under ``modelcycle.guard.detectors`` is imported and every compiled
pattern it holds at module level (also inside tuples, lists, dicts and dataclass
instances there) is run on adversarial texts built from its own characters:
long runs of each literal and class character, its literal words repeated, and
near-misses (a literal followed by a run of what could follow it). The input
grows from 16 characters to 16 KiB; time may grow about as fast as the input,
never with its square. A pattern that explodes trips the watchdog instead of
hanging the suite.

Then the detectors themselves get hostile texts: 1 MiB of mixed content,
invisible characters inside an e-mail and a card, mixed scripts, deeply nested
JSON.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import importlib
import pkgutil
import re
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest

import modelcycle.guard.detectors as detectors_package
from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.types import Detector

# The regex parser CPython's re uses (private, but stable since 3.11 and the only way
# to list a pattern's characters without writing a parser).
sre_constants: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

PROBE_SIZES = (8, 12, 16, 20, 24)
MAX_PROBE_RATIO = 8.0  # +4 characters: linear ~1.3x, exponential ~16x
PROBE_FLOOR_S = 0.00005
SIZES = (64, 1024, 16384)
MAX_RATIO = 64.0  # x16 the input: linear ~16x, quadratic ~256x
NOISE_FLOOR_S = 0.001  # below this, timings are too small to judge
WATCHDOG_S = 120


def _detector_modules() -> list[Any]:
    modules = []
    prefix = detectors_package.__name__ + "."
    for info in pkgutil.walk_packages(detectors_package.__path__, prefix):
        modules.append(importlib.import_module(info.name))
    return modules


def _patterns_in(value: Any, where: str, seen: set[int]) -> Iterator[tuple[str, re.Pattern[str]]]:
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _patterns_in(key, f"{where}[key]", seen)
            yield from _patterns_in(item, f"{where}[{key!r}]", seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _patterns_in(item, f"{where}[{index}]", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _patterns_in(getattr(value, field.name), f"{where}.{field.name}", seen)


def _all_patterns() -> list[tuple[str, re.Pattern[str]]]:
    found: dict[tuple[str, int], tuple[str, re.Pattern[str]]] = {}
    for module in _detector_modules():
        seen: set[int] = set()
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            for where, pattern in _patterns_in(value, f"{module.__name__}.{name}", seen):
                found.setdefault((pattern.pattern, pattern.flags), (where, pattern))
    return sorted(found.values(), key=lambda item: item[0])


PATTERNS = _all_patterns()


def test_every_detector_module_is_scanned() -> None:
    names = {where.rsplit(".", 1)[0] for where, _ in PATTERNS}
    assert "modelcycle.guard.detectors.pii" in names
    assert "modelcycle.guard.detectors.secrets" in names
    assert len(PATTERNS) >= 30


_CATEGORY_SAMPLES = {
    sre_constants.CATEGORY_DIGIT: "07",
    sre_constants.CATEGORY_NOT_DIGIT: "a-",
    sre_constants.CATEGORY_SPACE: " \n",
    sre_constants.CATEGORY_NOT_SPACE: "aZ",
    sre_constants.CATEGORY_WORD: "aZ5_é",
    sre_constants.CATEGORY_NOT_WORD: " .",
}


class _Alphabet:
    """Characters a pattern names (literals, class members) and its literal words."""

    def __init__(self, pattern: re.Pattern[str]):
        self.chars: dict[str, None] = {}
        self.words: list[str] = []
        self._walk(sre_parse.parse(pattern.pattern, pattern.flags))

    def _walk(self, items: Any) -> None:
        run: list[str] = []
        for op, arg in items:
            if op is sre_constants.LITERAL:
                run.append(chr(arg))
                self.chars[chr(arg)] = None
                continue
            self._word(run)
            run = []
            self._node(op, arg)
        self._word(run)

    def _word(self, run: list[str]) -> None:
        if len(run) >= 2:
            self.words.append("".join(run))

    def _node(self, op: Any, arg: Any) -> None:
        if op is sre_constants.IN:
            for kind, value in arg:
                self._class_member(kind, value)
        elif op is sre_constants.NOT_LITERAL or op is sre_constants.ANY:
            self.chars["a"] = None
        elif op is sre_constants.BRANCH:
            for branch in arg[1]:
                self._walk(branch)
        elif op is sre_constants.SUBPATTERN:
            self._walk(arg[-1])
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            self._walk(arg[2])
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            self._walk(arg[1])

    def _class_member(self, kind: Any, value: Any) -> None:
        if kind is sre_constants.LITERAL:
            self.chars[chr(value)] = None
        elif kind is sre_constants.RANGE:
            low, high = value
            for code in (low, (low + high) // 2, high):
                self.chars[chr(code)] = None
        elif kind is sre_constants.CATEGORY:
            for char in _CATEGORY_SAMPLES.get(value, ""):
                self.chars[char] = None


def _alphabet(pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    found = _Alphabet(pattern)
    return list(found.chars)[:24], list(dict.fromkeys(found.words))[:12]


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * n)[:n]


def _then_run(head: str, filler: str) -> Callable[[int], str]:
    return lambda n: (head + filler * n)[:n]


def _adversarial(pattern: re.Pattern[str]) -> dict[str, Callable[[int], str]]:
    """Input families, each a function of the length wanted."""
    letters, words = _alphabet(pattern)
    families = {"cycle": _repeat("".join(letters) or "a")}
    for char in letters[:5]:
        families[f"run {char!r}"] = _repeat(char)
    for first, second in pairwise(letters[:3]):
        families[f"pair {first + second!r}"] = _repeat(first + second)
    filler = letters[-1] if letters else "a"
    for word in words[:2]:
        families[f"word {word[:20]!r}"] = _repeat(word)
        families[f"near-miss {word[:20]!r}"] = _repeat(word + filler * 40 + " ")
        families[f"word then run {word[:20]!r}"] = _then_run(word, filler)
    return families


def _seconds(pattern: re.Pattern[str], text: str, tries: int = 3) -> float:
    """Best of ``tries`` full scans; the NUL at the end defeats patterns anchored with ``$``."""
    text += "\x00"
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        pattern.findall(text)
        best = min(best, time.perf_counter() - start)
    return best


def _ratio(pattern: re.Pattern[str], small: str, big: str, limit: float) -> float:
    """Time on ``big`` over time on ``small``, measured again when it looks too high (noise)."""
    ratio = _seconds(pattern, big) / max(_seconds(pattern, small), 1e-7)
    if ratio >= limit:
        ratio = _seconds(pattern, big, 7) / max(_seconds(pattern, small, 7), 1e-7)
    return ratio


@pytest.mark.parametrize(("where", "pattern"), PATTERNS, ids=[where for where, _ in PATTERNS])
def test_pattern_runs_in_linear_time(where: str, pattern: re.Pattern[str]) -> None:
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)  # an exploding pattern ends the run
    try:
        for family, make in _adversarial(pattern).items():
            # Exponential backtracking shows on tiny inputs, before it can hang the suite.
            for small, big in pairwise(PROBE_SIZES):
                if _seconds(pattern, make(big)) > PROBE_FLOOR_S:
                    ratio = _ratio(pattern, make(small), make(big), MAX_PROBE_RATIO)
                    assert ratio < MAX_PROBE_RATIO, (
                        f"{where} on {family}: {small}->{big} chars took {ratio:.0f}x longer"
                    )
            for small, big in pairwise(SIZES):
                # x16 the input: linear ~16x the time, quadratic ~256x.
                if _seconds(pattern, make(big)) > NOISE_FLOOR_S:
                    ratio = _ratio(pattern, make(small), make(big), MAX_RATIO)
                    assert ratio < MAX_RATIO, (
                        f"{where} on {family}: {small}->{big} chars took {ratio:.0f}x longer"
                    )
    finally:
        faulthandler.cancel_dump_traceback_later()


def _builtin_detectors() -> list[Detector]:
    built = []
    for name, factory in sorted(BuiltinDetectors().modelcycle_guard_detectors().items()):
        try:
            built.append(factory({}))
        except (InvalidInput, MissingExtra):  # needs options: its own tests cover it
            continue
        assert built[-1].name == name
    return built


DETECTORS = _builtin_detectors()
_MIXED_KB = (
    "Write to ana.garcia@example.es or call +34 612 345 678. Card 4111 1111 1111 1111, "
    "IBAN ES91 2100 0418 4502 0005 1332, DNI 12345678Z, server 10.0.0.1, key sk-proj-"
    "abcDEF1234567890abcdefGHIJ, password=hunter2. \u041f\u0440\u0438\u0432\u0435\u0442, "
    "\u03b3\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5, \u0645\u0631\u062d\u0628\u0627 "
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669, \u4f60\u597d "
    "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19. Calle Mayor 5, "
    "28013 Madrid. 8396 Jeremiah Locks. "
)


@pytest.mark.parametrize("detector", DETECTORS, ids=[d.name for d in DETECTORS])
def test_detector_survives_a_megabyte_in_linear_time(detector: Detector) -> None:
    small = (_MIXED_KB * (64 * 1024 // len(_MIXED_KB) + 1))[: 64 * 1024]
    big = small * 16
    found = detector.detect(big)
    assert all(0 <= f.start <= f.end <= len(big) for f in found)

    def seconds(text: str, tries: int) -> float:
        best = float("inf")
        for _ in range(tries):
            start = time.perf_counter()
            detector.detect(text)
            best = min(best, time.perf_counter() - start)
        return best

    ratio = seconds(big, 1) / seconds(small, 3)
    if ratio >= MAX_RATIO:  # a busy machine: measure again before blaming the detector
        ratio = seconds(big, 2) / seconds(small, 5)
    assert ratio < MAX_RATIO, f"{detector.name}: 16x the text, {ratio:.0f}x the time"


HOSTILE = {
    "nested json": '{"a":' * 20_000 + "1" + "}" * 20_000,
    "nested brackets": "[" * 50_000 + "]" * 50_000,
    "zero-width everywhere": "\u200b".join("john@example.com 4111 1111 1111 1111 ") * 50,
    # Greek/Cyrillic look-alikes, Arabic-Indic and mathematical digits, a ligature.
    "mixed scripts": (
        "\u03a1aypal \u0440\u0430\u0443\u0440\u04301 "
        + "\u0664"
        + "\u0661" * 15
        + " \U0001d7d2\U0001d7cf\U0001d7cf\U0001d7cf \ufdfd "
    )
    * 2000,
    "only separators": " -.()/:+" * 20_000,
    "only digits": "7" * 200_000,
    "long word": "a" * 200_000,
    "control chars": "".join(chr(c) for c in range(32)) * 3000,
    "surrogate-free astral": "😀🙂" * 50_000,
}


@pytest.mark.parametrize("detector", DETECTORS, ids=[d.name for d in DETECTORS])
@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_detector_survives_hostile_text(detector: Detector, text: str) -> None:
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        found = detector.detect(text)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert all(0 <= f.start <= f.end <= len(text) for f in found)
