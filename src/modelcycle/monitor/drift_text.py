"""Cheap text features for drift checks: the prompt of a span, its language, refusals.

The language guess is deliberately small (no model, no dependency): the writing
system decides non-Latin scripts, a few dozen stop words decide among the
common Latin-script languages, and a handful of syntax signals mark source
code. It is meant to notice a shift in the *mix* of languages, not to label
one text with certainty.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson

_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and is are was were of to in that it for on with as this be have has you "
        "what how why which who can do does not i my your we they an at by from or",
        "fr": "le la les des est et un une du en que qui dans pour pas sur au aux avec ce "
        "cette sont je vous nous il elle ne se plus comment pourquoi quel quelle",
        "de": "der die das und ist nicht ein eine zu den von mit sich des auf für im dem "
        "ich sie es wie was warum wer kann ist sind auch oder aber",
        "es": "el la los las de que y en un una es por con para no se del al lo como más "
        "pero qué cómo por qué cuál son está yo",
        "it": "il lo la gli le di che e è un una per non con del della sono come perché "
        "cosa anche io ma nel alla",
        "pt": "o a os as de que e é um uma do da em para com não por se dos das como mais "
        "mas você eu são está",
        "nl": "de het een en is van dat die in te zijn op met voor niet ik je wat hoe waarom "
        "ook maar er",
    }.items()
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CODE_SIGNALS = [
    re.compile(pattern, re.MULTILINE)
    for pattern in (
        r"[;{}]\s*$",
        r"^\s*(def|class|import|from|return|function|const|let|var|public|private|#include)\b",
        r"=>|::|->|===|!==|\+\+|&&|\|\|",
        r"\b\w+\([^()\n]*\)\s*[:{;]?\s*$",
        r"^\s*(SELECT|INSERT|UPDATE|DELETE)\s",
        r"```",
    )
]
_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana first: Japanese also uses CJK ideographs
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
]
_REFUSALS = re.compile(
    r"\b(?:"
    r"i(?:'m| am)(?: really| very)? sorry,? but"
    r"|i(?:'m| am) (?:afraid|unable|not able) (?:i |to )"
    r"|i (?:can ?not|can't|won't|will not|must decline to|am not able to|'m not able to)"
    r" (?:help|assist|provide|comply|do that|answer|fulfil|fulfill|share|support|discuss|create)"
    r"|as an ai(?: language model)?\b"
    r"|i must (?:decline|refuse)"
    r"|(?:that|this) (?:request )?(?:is|goes) against (?:my|our) (?:guidelines|policy|policies)"
    r")",
    re.IGNORECASE,
)
REFUSAL_SCAN = 400
"""Characters from the start of an answer searched for a refusal: refusals come first."""


def prompt_text(raw: str | None) -> str | None:
    """The user's text of a span's ``input`` (JSON messages or prompt): the last user turn."""
    if raw is None:
        return None
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        users = [m for m in value if m.get("role") == "user"] or value
        return _content_text(users[-1].get("content"))
    if isinstance(value, list):
        return "\n".join(v for v in value if isinstance(v, str)) or None
    return raw


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str)) or None
    return None


def output_text(raw: str | None) -> str | None:
    """A span's answer (the first, when it holds a JSON list of several)."""
    if raw is None or not raw.startswith('["'):
        return raw
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return raw


def looks_like_code(text: str) -> bool:
    """Whether ``text`` reads as source code (two or more kinds of syntax signal)."""
    return sum(1 for signal in _CODE_SIGNALS if signal.search(text)) >= 2


def language_of(text: str) -> str:
    """A guess: ``code``, an ISO 639-1 code (``en``, ``fr``, ``zh``...), or ``other``."""
    sample = text[:2000]
    if looks_like_code(sample):
        return "code"
    letters = _WORD.findall(sample)
    if not letters:
        return "other"
    for language, script in _SCRIPTS:
        if len(script.findall(sample)) >= 2:
            return language
    words = Counter(word.lower() for word in letters)
    scores = {
        language: sum(count for word, count in words.items() if word in stopwords)
        for language, stopwords in _STOPWORDS.items()
    }
    best = max(scores, key=lambda language: scores[language])
    return best if scores[best] > 0 else "other"


def is_refusal(answer: str) -> bool:
    """Whether an answer opens with a refusal ("I'm sorry, but I can't help with that")."""
    return _REFUSALS.search(answer[:REFUSAL_SCAN].replace("\u2019", "'")) is not None
