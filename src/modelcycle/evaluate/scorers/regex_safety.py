r"""Refuse regular expressions that can take exponential time (catastrophic backtracking).

Python's ``re`` backtracks, cannot be interrupted, and holds the GIL: one bad
pattern on one long answer would stall a whole evaluation worker. Patterns are
therefore checked when a scorer is built, on the parse tree ``re`` itself
produces, and refused when they hold one of the shapes behind exponential
matching:

* a variable quantifier inside another quantifier: ``(a+)+``, ``(\w+\s?)*``;
* an alternation under a quantifier whose branches may start alike:
  ``(a|ab)*``, ``(\d\d|\w\w)+`` (branches starting with distinct literals,
  such as ``(cat|dog)+``, are fine, and so are one-character choices such as
  ``(\w|\d)+``, which ``re`` turns into a character set);
* a backreference (``\1``, ``(?P=name)``).

Possessive quantifiers and atomic groups never backtrack, so nothing inside
them is refused. Polynomial shapes (``.*x.*y``) stay allowed: answers are
bounded in size.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from modelcycle.errors import InvalidInput

MAX_PATTERN_CHARS = 1000

# ``re``'s own parser (private but stable since 3.11; the public alias ``sre_parse`` warns).
_parser: Any = importlib.import_module("re._parser")

_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT"})
_NO_BACKTRACK = frozenset({"POSSESSIVE_REPEAT", "ATOMIC_GROUP"})


def compile_safe(pattern: str, flags: int = 0, *, where: str = "regex") -> re.Pattern[str]:
    """``pattern`` compiled; ``InvalidInput`` when it is malformed or risks exponential time."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidInput(f"{where}: pattern longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidInput(f"{where}: invalid regular expression {pattern!r}: {exc}") from None
    problem = _risk(_parser.parse(pattern, flags), repeated=False)
    if problem is not None:
        raise InvalidInput(
            f"{where}: pattern {pattern!r} risks catastrophic backtracking: {problem}; "
            "rewrite it (a character class, a possessive quantifier ++/*+ or an atomic "
            "group (?>...) avoids it)"
        )
    return compiled


def _risk(items: Any, *, repeated: bool) -> str | None:
    """Why the parsed ``items`` may match in exponential time; ``None``: they cannot.

    ``repeated``: the items sit inside a quantifier that may repeat them.
    """
    for op, arg in items:
        problem = _node_risk(str(op), arg, repeated=repeated)
        if problem is not None:
            return problem
    return None


def _node_risk(name: str, arg: Any, *, repeated: bool) -> str | None:
    if name in _NO_BACKTRACK:
        return None
    if name.startswith("GROUPREF") and name != "GROUPREF_EXISTS":
        return "a backreference"
    if name in _REPEATS:
        low, high, body = arg
        if repeated and high != low:
            return "a quantifier nested inside another quantifier"
        return _risk(body, repeated=repeated or high > 1)
    if name == "BRANCH" and repeated and not _distinct_starts(arg[1]):
        return "an alternation under a quantifier whose branches may start alike"
    return _first(_risk(child, repeated=repeated) for child in _children(name, arg))


def _children(name: str, arg: Any) -> list[Any]:
    """The sub-patterns of a group, an alternation, a lookaround or a conditional."""
    if name == "SUBPATTERN":
        return [arg[3]]
    if name == "BRANCH":
        return list(arg[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [arg[1]]
    if name == "GROUPREF_EXISTS":
        return [part for part in arg[1:] if part]
    return []


def _distinct_starts(branches: Any) -> bool:
    """Whether every branch starts with a literal character and no two share it."""
    seen: set[str] = set()
    for branch in branches:
        if len(branch) == 0:
            return False
        op, arg = branch[0]
        if str(op) != "LITERAL":
            return False
        first = chr(arg).casefold()
        if first in seen:
            return False
        seen.add(first)
    return True


def _first(problems: Any) -> str | None:
    return next((problem for problem in problems if problem is not None), None)
