"""Detector ``secrets``: credentials pasted into prompts or leaked in answers.

Only shapes a provider defines are reported: fixed prefixes and lengths
(``sk-proj-``, ``AKIA``, ``ghp_``, ``xoxb-``, ``AIza``, ``hf_``, modelcycle's own
``mc_<prefix>_<secret>``), JWTs whose header decodes, PEM private-key blocks,
the password inside a connection URL, and values assigned to a password-like
key (``password=...``, ``"password": "..."``, ``contraseña: ...``). There is no
"high-entropy string" rule: hashes, ids and base64 in ordinary text would
trip it constantly.

Each pattern only runs when one of its literal hints occurs in the text (plain
substring tests), so ordinary text costs a few microseconds per kilobyte.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.types import Detector, Finding

NAME = "secrets"


@dataclass(frozen=True, slots=True)
class TokenShape:
    """A credential with a fixed shape: its pattern, the substrings that must occur first."""

    type: str
    pattern: re.Pattern[str]
    hints: tuple[str, ...]
    score: float
    mixed_case: bool = False
    """Also require both cases in the match (random keys have them; hyphenated words do not)."""


_END = r"(?![\w-])"
TOKEN_SHAPES: tuple[TokenShape, ...] = (
    TokenShape(
        "ANTHROPIC_API_KEY",
        re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,300}" + _END),
        ("sk-ant-",),
        0.95,
    ),
    TokenShape(
        "OPENAI_API_KEY",
        re.compile(r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,300}" + _END),
        ("sk-",),
        0.9,
        mixed_case=True,
    ),
    TokenShape(
        "AWS_ACCESS_KEY",
        re.compile(
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)"
            r"[A-Z2-7]{16}(?![A-Za-z0-9])"
        ),
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA"),
        0.9,
    ),
    TokenShape(
        "GITHUB_TOKEN",
        re.compile(r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_\w{22,255})" + _END),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        0.95,
    ),
    TokenShape(
        "GITLAB_TOKEN",
        re.compile(
            r"(?<![\w-])(?:(?:glpat|gldt|glrt|glptt|glsoat|glcbt|glffct|glimt|glagent)-"
            r"[A-Za-z0-9_-]{20,100}|GR1348941[A-Za-z0-9_-]{20,60})" + _END
        ),
        (
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glsoat-",
            "glcbt-",
            "glffct-",
            "glimt-",
            "glagent-",
            "GR1348941",
        ),
        0.9,
    ),
    TokenShape(
        "SLACK_TOKEN",
        re.compile(
            r"(?<![\w-])(?:xox[abposre]-[A-Za-z0-9-]{10,250}|xapp-[0-9]-[A-Za-z0-9-]{10,250})"
        ),
        ("xox", "xapp-"),
        0.9,
    ),
    TokenShape(
        "SLACK_WEBHOOK",
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,200}"
        ),
        ("hooks.slack.com",),
        0.9,
    ),
    TokenShape(
        "STRIPE_KEY",
        re.compile(
            r"(?<![\w-])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,250}|whsec_[A-Za-z0-9]{24,64})"
            + _END
        ),
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"),
        0.95,
    ),
    TokenShape(
        "GOOGLE_API_KEY",
        re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}" + _END),
        ("AIza",),
        0.9,
    ),
    TokenShape(
        "HUGGINGFACE_TOKEN",
        re.compile(r"(?<![\w-])(?:hf_|api_org_)[A-Za-z0-9]{30,40}" + _END),
        ("hf_", "api_org_"),
        0.9,
        mixed_case=True,
    ),
    TokenShape(
        "MODELCYCLE_API_KEY",
        re.compile(r"(?<![\w-])mc_[a-z0-9]{8}_[A-Za-z0-9]{32}" + _END),
        ("mc_",),
        0.95,
    ),
)

_SHAPES_BY_HINT: dict[str, tuple[TokenShape, ...]] = {
    hint: tuple(shape for shape in TOKEN_SHAPES if hint in shape.hints)
    for shape in TOKEN_SHAPES
    for hint in shape.hints
}
# Every hint in one scan of a word; longer hints first so "sk-ant-" is not read as "sk-".
_ANY_HINT = re.compile(
    "|".join(re.escape(h) for h in sorted(_SHAPES_BY_HINT, key=len, reverse=True))
)
_ANY_DIGIT = re.compile(r"[0-9]")
_JWT = re.compile(
    r"(?<![\w-])(?P<header>eyJ[A-Za-z0-9_-]{8,2000})\.eyJ[A-Za-z0-9_-]{8,8000}\.[A-Za-z0-9_-]{0,2000}"
    + _END
)
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"(?:\s{1,4}[A-Za-z0-9+/=]{16,100}(?![A-Za-z0-9+/=]))*")
_AWS_SECRET_CONTEXT = re.compile(r"(?i)aws.{0,20}secret|secret.?access.?key")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_URL_PASSWORD = re.compile(
    r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@?#]{0,128}:(?P<password>[^\s@/?#]{1,128})"
    r"@(?:[\w.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])"
)
_ASSIGNMENT = re.compile(  # matched where a key hint was found, never scanned
    r"(?i)(?P<key>pass(?:word|wd|phrase|code)?|pwd|contrase[ñn]a|clave|secret|token|key)"
    r"(?P<suffix>[\w-]{0,20})[\"']?[ \t]{0,5}(?P<op>:=|=>|[:=])[ \t]{0,5}"
    r"(?:\"(?P<dq>[^\"\r\n]{1,200})\"|'(?P<sq>[^'\r\n]{1,200})'|(?P<bare>[^\s\"',;]{1,200}))"
)
_SENTENCE = re.compile(
    r"(?i)\b(?P<key>password|passcode|contraseña|contrasena|clave)[ ](?:is|was|es|era|ser[aá])"
    r"[ ]?:?[ ]{1,3}[\"'«“]?(?P<value>[^\s\"'»”]{4,64})"
)
_KEY_HINTS = ("pass", "pwd", "contrase", "clave", "secret", "token", "key")
_KEY_HINT_ANY_CASE = re.compile(r"(?i)pass|pwd|contrase|clave|secret|token|key")
_SHORTEST_TOKEN = 15
_NOT_A_VALUE_SUFFIX = re.compile(
    r"(?i)hash|hint|len|policy|reset|file|path|type|expir|url|name|count|field|label|min|max|"
    r"required|_id|prompt|format|regex|strength|changed|rule|manager"
)
# Values that stand for a secret in docs and templates rather than being one.
_PLACEHOLDER_WORDS = frozenset(
    (
        "null", "none", "nil", "true", "false", "undefined", "yes", "no", "required",
        "optional", "redacted", "hidden", "secret", "password", "contraseña", "changeme",
        "example",
    )
)  # fmt: skip
_PLACEHOLDER_MARKS = frozenset("*x•.")
# A reference to a value kept elsewhere: $VAR, ${VAR}, %(var)s, %VAR%, {{ var }}, <...>, [...].
_REFERENCE = re.compile(
    r"\$\{[^}]{1,100}\}|\$[A-Z_][A-Z0-9_]{0,100}|%\([\w.]{1,100}\)s|%[A-Z_][A-Z0-9_]{0,100}%"
    r"|\{\{[^}]{1,100}\}\}|\{[\w.]{1,100}\}|<[^>]{1,100}>|\[[^\]]{1,100}\]"
)
_QUERY_NEXT = re.compile(r"&[A-Za-z_][\w.-]{0,40}=")
_SECRET_KEYS = frozenset({"secret", "token", "key"})

SCORE_PRIVATE_KEY = 0.99
SCORE_JWT = 0.9
SCORE_AWS_SECRET = 0.85
SCORE_URL_PASSWORD = 0.9
SCORE_ASSIGNED_STRONG = 0.85
SCORE_ASSIGNED_WEAK = 0.7
SCORE_SENTENCE = 0.7


class SecretsDetector:
    """Finds credentials; see the module docstring for what counts as one."""

    name = NAME

    def detect(self, text: str) -> list[Finding]:
        """Every credential in ``text``; spans cover the secret value only."""
        out: list[Finding] = []
        cursor = 0
        for word in text.split():
            if len(word) < _SHORTEST_TOKEN:
                continue
            start = text.find(word, cursor)
            cursor = end = start + len(word)
            out += _tokens(text, word, start, end)
        if "PRIVATE KEY" in text:
            out += _private_keys(text)
        lowered = text.lower()
        if "secret" in lowered:
            out += _aws_secrets(text)
        if any(hint in lowered for hint in _KEY_HINTS):
            out += _assignments(text, lowered)
        return _without_duplicates(out)


class SecretsOptions(DetectorOptions):
    """The ``secrets`` detector has no options (narrow it with the rule's ``types``)."""


def make_secrets(options: Mapping[str, Any]) -> Detector:
    """The ``secrets`` detector; it takes no options."""
    parse_options(SecretsOptions, options, NAME)
    return SecretsDetector()


def _both_cases(token: str) -> bool:
    return token.lower() != token and token.upper() != token


def _mixed(token: str) -> bool:
    return _both_cases(token) and _ANY_DIGIT.search(token) is not None


def _tokens(text: str, word: str, start: int, end: int) -> list[Finding]:
    """The fixed-shape credentials in one long whitespace-free word at ``start:end``."""
    out: list[Finding] = []
    hints = _ANY_HINT.findall(word)
    shapes = dict.fromkeys(shape for hint in hints for shape in _SHAPES_BY_HINT[hint])
    for shape in shapes:
        for m in shape.pattern.finditer(text, start, end):
            if not shape.mixed_case or _both_cases(m.group(0)):
                out.append(Finding(NAME, shape.type, m.start(), m.end(), shape.score))
    if "eyJ" in word:
        out += _jwts(text, start, end)
    if "://" in word:
        out += _url_passwords(text, start, end)
    return out


def _jwts(text: str, start: int, end: int) -> list[Finding]:
    out = []
    for m in _JWT.finditer(text, start, end):
        header = m.group("header")
        try:
            decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        except (binascii.Error, ValueError):
            continue
        if b'"alg"' in decoded or b'"typ"' in decoded:
            out.append(Finding(NAME, "JWT", m.start(), m.end(), SCORE_JWT))
    return out


def _private_keys(text: str) -> list[Finding]:
    """Whole PEM blocks; a block cut short (no END line) runs to the end of its base64."""
    out = []
    pos = 0
    next_end = -1  # where the next "-----END" is, remembered so each search is done once
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        if next_end < begin.end():
            next_end = text.find("-----END", begin.end())
            if next_end < 0:
                next_end = len(text) + 1
        end_line = _PEM_END.match(text, next_end) if next_end <= len(text) else None
        if end_line is not None:
            end = end_line.end()
        else:
            body = _PEM_BODY.match(text, begin.end())
            end = body.end() if body is not None else begin.end()
        out.append(Finding(NAME, "PRIVATE_KEY", begin.start(), end, SCORE_PRIVATE_KEY))
        pos = max(end, begin.end())
    return out


def _url_passwords(text: str, start: int, end: int) -> list[Finding]:
    out = []
    for m in _URL_PASSWORD.finditer(text, start, end):
        password = m.group("password")
        if not _placeholder(password):
            out.append(
                Finding(
                    NAME,
                    "CONNECTION_STRING_PASSWORD",
                    m.start("password"),
                    m.end("password"),
                    SCORE_URL_PASSWORD,
                )
            )
    return out


def _aws_secrets(text: str) -> list[Finding]:
    out = []
    for context in _AWS_SECRET_CONTEXT.finditer(text):
        m = _AWS_SECRET.search(text, context.end(), context.end() + 120)
        if m is None or (m.end() < len(text) and text[m.end()] in _BASE64_CHARS):
            continue  # cut by the window: part of a longer string
        if _mixed(m.group(0)):
            out.append(Finding(NAME, "AWS_SECRET_KEY", m.start(), m.end(), SCORE_AWS_SECRET))
    return out


def _assignments(text: str, lowered: str) -> list[Finding]:
    """``key = value`` for password-like keys, and "my password is ..." sentences."""
    if len(lowered) == len(text):
        places = sorted({at for hint in _KEY_HINTS for at in _occurrences(lowered, hint)})
    else:  # lower() changed the length (a few scripts): find the hints the slow way
        places = [m.start() for m in _KEY_HINT_ANY_CASE.finditer(text)]
    out = []
    for at in places:
        m = _ASSIGNMENT.match(text, at)
        if m is not None and _key_starts_word(text, at):
            out += _assigned(m)
        sentence = _SENTENCE.match(text, at)
        if sentence is not None:
            out += _said(sentence)
    return out


def _occurrences(haystack: str, needle: str) -> list[int]:
    found = []
    at = haystack.find(needle)
    while at >= 0:
        found.append(at)
        at = haystack.find(needle, at + 1)
    return found


def _assigned(m: re.Match[str]) -> list[Finding]:
    if _NOT_A_VALUE_SUFFIX.search(m["suffix"]):
        return []
    group = next(g for g in ("dq", "sq", "bare") if m.group(g) is not None)
    value = m.group(group)
    if group == "bare":
        query = _QUERY_NEXT.search(value)  # "?password=x&user=y": the next parameter
        value = value[: query.start()] if query is not None else value
        value = value.rstrip(".,:)")  # the sentence's punctuation, not the password's
    if not value or _placeholder(value) or len(set(value)) < 2:
        return []
    key = m.group("key").lower()
    is_secret = key in _SECRET_KEYS
    classes = _char_classes(value)
    if classes < 2 and (is_secret or key == "clave" or (m["op"] == ":" and group == "bare")):
        return []  # "token: none", "palabra clave: ejemplo", "Password: required"
    if len(value) < (8 if is_secret else 4):
        return []
    kind = "SECRET_ASSIGNMENT" if is_secret else "PASSWORD_ASSIGNMENT"
    score = SCORE_ASSIGNED_STRONG if classes >= 2 else SCORE_ASSIGNED_WEAK
    return [Finding(NAME, kind, m.start(group), m.start(group) + len(value), score)]


def _said(m: re.Match[str]) -> list[Finding]:
    value = m.group("value").rstrip(".,;:)")
    if len(value) < 4 or _char_classes(value) < 2 or _placeholder(value):
        return []
    start = m.start("value")
    return [Finding(NAME, "PASSWORD_ASSIGNMENT", start, start + len(value), SCORE_SENTENCE)]


def _placeholder(value: str) -> bool:
    """``${DB_PASSWORD}``, ``<your-token>``, ``****``, ``changeme``, ``your_password_here``."""
    lowered = value.lower()
    return (
        _REFERENCE.fullmatch(value) is not None
        or set(lowered) <= _PLACEHOLDER_MARKS
        or lowered in _PLACEHOLDER_WORDS
        or lowered.startswith(("your", "tu_", "tu-"))
    )


def _key_starts_word(text: str, start: int) -> bool:
    """``password`` in ``db_password`` or ``userPassword`` but not ``pass`` in ``compass``."""
    if start == 0 or not text[start - 1].isalpha():
        return True
    return text[start].isupper() and text[start - 1].islower()


def _char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and symbols ``value`` mixes."""
    return (
        (value.upper() != value)
        + (value.lower() != value)
        + (_ANY_DIGIT.search(value) is not None)
        + (not value.isalnum())
    )


def _without_duplicates(found: list[Finding]) -> list[Finding]:
    """One finding per span: a specific shape beats a generic ``key = value`` on the same text."""
    if len(found) < 2:
        return found
    best: dict[tuple[int, int], Finding] = {}
    for finding in found:
        key = (finding.start, finding.end)
        if key not in best or finding.score > best[key].score:
            best[key] = finding
    return sorted(best.values(), key=lambda f: (f.start, f.end))
