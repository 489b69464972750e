"""Encoded payloads worth a second look: base64, hex, percent-encoding, rot13, leetspeak.

Attackers wrap an instruction in an encoding the model can read but a filter
does not ("decode this base64 and do what it says"). Each candidate run is
decoded once (no nested decoding), within a fixed budget of runs and bytes, and
only readable text comes back for the phrase rules to scan.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

# One character class each, so every scan is linear; the lookbehinds start a match
# only at the beginning of a run (otherwise every position inside a word is retried).
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}")
HEX_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}")
HEX_SPACED = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{2}(?:[ :][0-9a-fA-F]{2}){9,}")
PERCENT_RUN = re.compile(
    r"(?<![A-Za-z0-9._~+!*'(),;%-])(?:%[0-9a-fA-F]{2}|[A-Za-z0-9._~+!*'(),;-]){12,}"
)
PERCENT_BYTE = re.compile(r"%[0-9a-fA-F]{2}")
HEX_ONLY = re.compile(r"[0-9a-fA-F]+")
# Hex of ASCII text is made of byte pairs like "69", "6e", "20".
HEX_PAIRS = frozenset(f"{code:02x}" for code in range(0x20, 0x80))
LONG_WORD = 16

# rot13 of words that carry injections; seeing one means the text is worth decoding.
ROT13_MARKERS = frozenset(
    codecs.encode(word, "rot13")
    for word in (
        "ignore", "disregard", "forget", "previous", "instructions", "prompt", "system",
        "jailbreak", "restrictions", "ignora", "olvida", "instrucciones", "anteriores",
    )
)  # fmt: skip

# Digits or symbols standing for letters, then a letter (a letter before them is checked
# apart: a pattern that starts with the rarer class is found faster): "g0dm0d3", "d15@bl3d".
LEET_WORD = re.compile(r"[0-9@$|]{1,8}[a-z]")
LEET_CHARS = "0134578@$|"
LEET_TABLE = str.maketrans("0134578@$|9", "oieastbasli")
LEET_MIN_WORDS = 3
LEET_MAX_TOKEN = 20
LEET_TAIL = re.compile(r"[a-z0-9@$|]{0,20}")
NUMBER_WITH_UNIT = re.compile(r"[0-9]{1,8}[a-z]{1,3}")

MAX_RUNS = 16
"""Encoded runs decoded per text; later ones are not looked at."""
MAX_RUN_CHARS = 8192
"""Characters of one run that are decoded."""
MAX_ATTEMPTS = 256
"""Candidate runs tried per text (most are ordinary long words that do not decode)."""
MAX_ROT13_CHARS = 65536


@dataclass(frozen=True, slots=True)
class Payload:
    """Readable text decoded from ``text[start:end]``."""

    start: int
    end: int
    decoded: str
    encoding: str


def payloads(text: str, words: frozenset[str] | set[str]) -> Iterator[Payload]:
    """Decoded payloads in ``text`` (``words``: its folded words, to spot rot13)."""
    budget, attempts = MAX_RUNS, MAX_ATTEMPTS
    hints = _hints(text, words)
    for pattern, decoder, name in _DECODERS:
        if name not in hints:
            continue
        for match in pattern.finditer(text):
            if budget <= 0 or attempts <= 0:
                return
            attempts -= 1
            run = match.group()[:MAX_RUN_CHARS]
            decoded = decoder(run)
            if decoded is not None:
                budget -= 1
                yield Payload(match.start(), match.end(), decoded, name)
    if not ROT13_MARKERS.isdisjoint(words) or "rot13" in words or {"rot", "13"} <= words:
        clipped = text[:MAX_ROT13_CHARS]
        yield Payload(0, len(clipped), codecs.encode(clipped, "rot13"), "rot13")


def _hints(text: str, words: frozenset[str] | set[str]) -> set[str]:
    """The encodings worth scanning for: cheap tests that rule most out on ordinary text."""
    hints = set()
    if max(map(len, words), default=0) >= LONG_WORD:
        hints.add("base64")  # base64 of a sentence has long letter-digit stretches
    if "\\x" in text:
        hints.add("hex_escapes")
    if len(HEX_PAIRS & words) >= 5:
        hints.add("hex")
    if "%" in text:
        hints.add("percent")
    return hints


def _readable(data: bytes) -> str | None:
    """The bytes as text when they are mostly printable UTF-8 with some letters."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) < 8:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in decoded)
    letters = sum(c.isalpha() for c in decoded)
    if printable < 0.9 * len(decoded) or letters < 0.5 * len(decoded.replace(" ", "")):
        return None
    return decoded


def _from_base64(run: str) -> str | None:
    core = run.rstrip("=")
    if HEX_ONLY.fullmatch(core) and len(core) % 2 == 0:
        return _readable(bytes.fromhex(core))
    core = core.replace("-", "+").replace("_", "/")
    core = core[: len(core) - len(core) % 4] if len(core) % 4 == 1 else core
    try:
        data = base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def _from_hex_escapes(run: str) -> str | None:
    return _readable(bytes.fromhex(run.replace("\\x", "")))


def _from_hex_spaced(run: str) -> str | None:
    return _readable(bytes.fromhex(run.replace(" ", "").replace(":", "")))


def _from_percent(run: str) -> str | None:
    if len(PERCENT_BYTE.findall(run)) < 4:
        return None
    try:
        decoded = unquote(run.replace("+", " "), errors="strict")
    except UnicodeDecodeError:
        return None
    return decoded if decoded != run else None


_DECODERS = (
    (BASE64_RUN, _from_base64, "base64"),
    (HEX_ESCAPES, _from_hex_escapes, "hex_escapes"),
    (HEX_SPACED, _from_hex_spaced, "hex"),
    (PERCENT_RUN, _from_percent, "percent"),
)


def leet_payload(folded: str) -> Payload | None:
    """The folded text with leetspeak read back as letters, when it has enough leet words.

    Only word-length tokens count: keys, hashes and IDs also mix digits and letters.
    """
    if not any(char in folded for char in LEET_CHARS):
        return None
    seen: set[str] = set()
    for match in LEET_WORD.finditer(folded, 1, MAX_ROT13_CHARS):
        token = _token_around(folded, match.start(), match.end())
        if token is None or NUMBER_WITH_UNIT.fullmatch(token):
            continue  # "2nd", "10am", "5kg" are not leetspeak
        seen.add(token)
        if len(seen) >= LEET_MIN_WORDS:
            clipped = folded[:MAX_ROT13_CHARS]
            return Payload(0, len(clipped), clipped.translate(LEET_TABLE), "leet")
    return None


def _token_around(text: str, start: int, end: int) -> str | None:
    """The word-like token holding ``text[start:end]``, None when it is longer than a word."""
    low = start
    while low > 0 and (text[low - 1].isalnum() or text[low - 1] in "@$|"):
        low -= 1
        if start - low > LEET_MAX_TOKEN:
            return None
    tail = LEET_TAIL.match(text, end)
    high = tail.end() if tail is not None else end
    if high - low > LEET_MAX_TOKEN or (high < len(text) and text[high].isalnum()):
        return None
    return text[low:high]
