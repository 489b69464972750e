"""Numbered identifiers: cards, IBANs, Spanish DNI/NIE, US SSNs, passports, IP addresses.

Each function looks at one window of the text (``lo``/``hi``: the digits found
by ``pii``'s single scan, with a few characters either side), so ordinary text
without long numbers costs almost nothing. Checksums decide where there is one;
shapes without one (SSN, passport) need a context word or a distinctive format.
"""

from __future__ import annotations

import ipaddress
import re

from modelcycle.guard.detectors.pii_checks import (
    IBAN_LENGTHS,
    card_network_known,
    dni_ok,
    iban_ok,
    luhn_ok,
    near,
    nie_ok,
    ssn_ok,
)
from modelcycle.guard.types import Finding

NAME = "pii"

_CARD = re.compile(r"(?<![\w.,-])[0-9](?:[ -]?[0-9]){11,18}(?![\w-]|[.,][0-9])")
_CARD_GROUP_SPLIT = re.compile(r"[ -]")
_CARD_CONTEXT = re.compile(
    r"(?i)\b(?:card|credit|debit|visa|mastercard|maestro|amex|tarjeta|cr[eé]dito|d[eé]bito)"
)
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?!\w)")
_DNI = re.compile(
    r"(?<![\w.-])(?P<num>[0-9]{8}|[0-9]{2}\.[0-9]{3}\.[0-9]{3})(?P<sep>[ -]?)(?P<letter>[A-Za-z])"
    r"(?![\w-])"
)
_NIE = re.compile(
    r"(?<![\w.-])(?P<prefix>[XYZxyz])[ -]?(?P<num>[0-9]{7})(?P<sep>[ -]?)(?P<letter>[A-Za-z])"
    r"(?![\w-])"
)
_SSN = re.compile(
    r"(?<![\w.-])(?P<area>[0-9]{3})(?P<sep>[- ]?)(?P<group>[0-9]{2})(?P=sep)(?P<serial>[0-9]{4})"
    r"(?![\w-]|[.,][0-9])"
)
_SSN_CONTEXT = re.compile(
    r"(?i)\b(?:ssn|social security|soc\.? sec|seguro social|seguridad social|taxpayer)"
)
_PASSPORT_CONTEXT = re.compile(r"(?i)\b(?:passport|pasaporte)s?\b")
_PASSPORT = re.compile(r"(?<![\w-])[A-Z]{0,3}[0-9]{6,9}(?![\w-])")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![\w-]|\.[0-9])"
)
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|versi[oó]n|ver|release|build|v)\.?[ ]*$")
IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?![\w:]|\.[0-9A-Fa-f])"
)

SCORE_CHECKSUM = 0.97
SCORE_DOCUMENT = 0.95
SCORE_IP = 0.8
SCORE_SSN_CONTEXT = 0.9
SCORE_SSN_DASHED = 0.75
SCORE_SSN_SPACED = 0.6
SCORE_PASSPORT = 0.75
SCORE_CARD_CONTEXT = 0.8
SCORE_WEAK = 0.4


def cards(text: str, lo: int, hi: int) -> list[Finding]:
    """Card numbers: Luhn and a network's number range, separators used consistently."""
    out: list[Finding] = []
    for m in _CARD.finditer(text, lo, hi):
        raw = m.group(0)
        if "-" in raw and " " in raw:
            continue
        groups = _CARD_GROUP_SPLIT.split(raw)
        if len(groups) > 1 and any(len(g) < 2 for g in groups[:-1]):
            continue  # cards are written in groups of 4 (Amex 4-6-5), not digit by digit
        digits = raw.replace(" ", "").replace("-", "")
        if not luhn_ok(digits) or len(set(digits)) == 1:
            continue
        known = card_network_known(digits)
        if known and len(digits) >= 13:
            score = SCORE_CHECKSUM
        elif known and near(_CARD_CONTEXT, text, m.start(), m.end(), 40):
            score = SCORE_CARD_CONTEXT  # 12-digit Maestro: too short to trust alone
        else:
            score = SCORE_WEAK
        out.append(Finding(NAME, "CREDIT_CARD", m.start(), m.end(), score))
    return out


def iban_at(text: str, start: int) -> Finding | None:
    """The IBAN starting at ``start`` (country letters), if its length and mod-97 check out."""
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "-"):
        return None
    m = _IBAN.match(text, start)
    if m is None:
        return None
    raw = m.group(0)
    compact = raw.replace(" ", "")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None:
        return None
    end = m.end()
    if len(compact) > expected and " " in raw:
        # Followed by another number: cut where the country's length ends, at a space.
        kept, cut = 0, start
        while kept < expected:
            kept += text[cut] != " "
            cut += 1
        if cut < len(text) and text[cut] == " ":
            compact, end = compact[:expected], cut
    if not iban_ok(compact):
        return None
    return Finding(NAME, "IBAN_CODE", start, end, SCORE_CHECKSUM)


def spanish_ids(text: str, lo: int, hi: int) -> list[Finding]:
    """DNI and NIE whose control letter is right (a letter after a space must be upper case)."""
    out: list[Finding] = []
    for m in _DNI.finditer(text, lo, hi):
        letter = m["letter"]
        if (m["sep"] and letter.islower()) or not dni_ok(m["num"].replace(".", ""), letter):
            continue
        out.append(Finding(NAME, "ES_DNI", m.start(), m.end(), SCORE_DOCUMENT))
    for m in _NIE.finditer(text, lo, hi):
        if (m["sep"] and m["letter"].islower()) or not nie_ok(m["prefix"], m["num"], m["letter"]):
            continue
        out.append(Finding(NAME, "ES_NIE", m.start(), m.end(), SCORE_DOCUMENT))
    return out


def ssns(text: str, lo: int, hi: int) -> list[Finding]:
    """SSNs the SSA could have issued: dashed or spaced, or 9 bare digits after "SSN"."""
    out: list[Finding] = []
    for m in _SSN.finditer(text, lo, hi):
        if not ssn_ok(m["area"], m["group"], m["serial"]):
            continue
        if near(_SSN_CONTEXT, text, m.start(), m.end(), 40):
            out.append(Finding(NAME, "US_SSN", m.start(), m.end(), SCORE_SSN_CONTEXT))
        elif m["sep"]:
            score = SCORE_SSN_DASHED if m["sep"] == "-" else SCORE_SSN_SPACED
            out.append(Finding(NAME, "US_SSN", m.start(), m.end(), score))
    return out


def passports(text: str) -> list[Finding]:
    """Letter-and-digit document numbers within a few words of "passport"/"pasaporte"."""
    out: list[Finding] = []
    for context in _PASSPORT_CONTEXT.finditer(text):
        lo = max(0, context.start() - 40)
        hi = min(len(text), context.end() + 50)
        for m in _PASSPORT.finditer(text, lo, hi):
            if m.end() < hi or hi == len(text):  # not cut short by the window
                out.append(Finding(NAME, "PASSPORT", m.start(), m.end(), SCORE_PASSPORT))
    return out


def ipv4s(text: str, lo: int, hi: int) -> list[Finding]:
    """Dotted quads with every octet <= 255, unless "version"/"v" comes just before."""
    out: list[Finding] = []
    for m in _IPV4.finditer(text, lo, hi):
        if _VERSION_CONTEXT.search(text, max(0, m.start() - 12), m.start()) is None:
            out.append(Finding(NAME, "IP_ADDRESS", m.start(), m.end(), SCORE_IP))
    return out


def ipv6s(text: str) -> list[Finding]:
    """IPv6 addresses (full, compressed, IPv4-mapped) that ``ipaddress`` accepts."""
    out: list[Finding] = []
    searched = 0
    for hint in IPV6_HINT.finditer(text):
        if hint.end() <= searched:
            continue
        lo = max(searched, hint.start() - 48)
        searched = min(len(text), hint.end() + 48)  # longer than any address
        for m in _IPV6.finditer(text, lo, searched):
            candidate = m.group(0)
            colons = candidate.count(":")
            if colons < 2 or (colons < 3 and "::" not in candidate):
                continue
            if not any(c.isdigit() for c in candidate):
                continue  # "dead::beef", C++ "a::b"
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            out.append(Finding(NAME, "IP_ADDRESS", m.start(), m.end(), SCORE_IP))
    return out
