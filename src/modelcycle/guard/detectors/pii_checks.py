"""Checksums and context tests that turn a pattern candidate into PII (or not).

A regex alone finds anything shaped like a card or an identity number: order
ids, invoice numbers, version strings. These checks keep only candidates a
real issuer could have produced (Luhn and the card networks' number ranges,
the IBAN mod-97 and each country's length, the Spanish DNI/NIE control letter,
the US SSA's rules for social security numbers, NANP area codes), and look
around a candidate for the words that make a weak pattern likely.
"""

from __future__ import annotations

import re

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = {"X": "0", "Y": "1", "Z": "2"}

# ISO 13616 registry (SWIFT) plus the countries that use the format without being
# in it yet (Nordea's list): country -> total length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AO": 25, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
    "BF": 28, "BG": 22, "BH": 22, "BI": 27, "BJ": 28, "BR": 29, "BY": 28, "CF": 27,
    "CG": 27, "CH": 21, "CI": 28, "CM": 27, "CR": 22, "CV": 25, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "DZ": 26, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GA": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GQ": 27, "GR": 27, "GT": 28, "GW": 25, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IR": 26, "IS": 26, "IT": 27, "JO": 30, "KM": 27,
    "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MA": 28, "MC": 27, "MD": 24, "ME": 22, "MG": 27, "MK": 19, "ML": 28,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "MZ": 25, "NE": 28, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SN": 28, "SO": 23, "ST": 25, "SV": 28, "TD": 27, "TG": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# (first digits low, high, allowed lengths): the networks' published IIN ranges.
_CARD_RANGES: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (4, 4, (13, 16, 19)),  # Visa
    (51, 55, (16,)),  # Mastercard
    (2221, 2720, (16,)),  # Mastercard 2-series
    (34, 34, (15,)),  # American Express
    (37, 37, (15,)),
    (6011, 6011, (16, 17, 18, 19)),  # Discover
    (644, 649, (16, 17, 18, 19)),
    (65, 65, (16, 17, 18, 19)),
    (300, 305, (14, 15, 16, 17, 18, 19)),  # Diners Club
    (3095, 3095, (14, 15, 16, 17, 18, 19)),
    (36, 36, (14, 15, 16, 17, 18, 19)),
    (38, 39, (14, 15, 16, 17, 18, 19)),
    (3528, 3589, (16, 17, 18, 19)),  # JCB
    (1800, 1800, (15,)),  # JCB (legacy 15-digit)
    (2131, 2131, (15,)),
    (62, 62, (16, 17, 18, 19)),  # UnionPay
    (2200, 2204, (16, 17, 18, 19)),  # Mir
    (5018, 5018, (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (5020, 5020, (12, 13, 14, 15, 16, 17, 18, 19)),
    (5038, 5038, (12, 13, 14, 15, 16, 17, 18, 19)),
    (56, 58, (12, 13, 14, 15, 16, 17, 18, 19)),
    (6304, 6304, (12, 13, 14, 15, 16, 17, 18, 19)),
    (639, 639, (12, 13, 14, 15, 16, 17, 18, 19)),
    (6759, 6759, (12, 13, 14, 15, 16, 17, 18, 19)),
    (6761, 6763, (12, 13, 14, 15, 16, 17, 18, 19)),
)

# Numbers the SSA says were never valid or were published (ads, specimen cards).
_SSN_BLOCKED = frozenset({"078051120", "219099999", "123456789", "987654320", "457555462"})


# Words that make a digit run an identifier rather than a phone number.
ID_CONTEXT = re.compile(
    r"(?i)\b(?:order|pedido|invoice|factura|ref|referencia|sku|isbn|tracking|seguimiento|"
    r"serial|serie|model|modelo|part|pieza|ticket|expediente|lote|batch|id|account|cuenta|"
    r"cantidad|total|importe|price|precio)\b"
)


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) passes the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_network_known(digits: str) -> bool:
    """Whether a card number starts with a network's issuer range and has its length."""
    length = len(digits)
    for low, high, lengths in _CARD_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and length in lengths:
            return True
    return False


def iban_ok(compact: str) -> bool:
    """Whether an upper-case IBAN without spaces has its country's length and mod-97 = 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(char, 36)) for char in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def dni_ok(number: str, letter: str) -> bool:
    """Whether ``letter`` is the control letter of the 8-digit DNI ``number``."""
    return DNI_LETTERS[int(number) % 23] == letter.upper()


def nie_ok(prefix: str, number: str, letter: str) -> bool:
    """Whether a NIE (X/Y/Z, 7 digits, letter) has the right control letter."""
    return DNI_LETTERS[int(_NIE_PREFIX[prefix.upper()] + number) % 23] == letter.upper()


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """Whether an SSN could have been issued (area not 000/666/9xx, no zero group or serial)."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    whole = area + group + serial
    return whole not in _SSN_BLOCKED and len(set(whole)) > 1


def nanp_ok(ten_digits: str) -> bool:
    """Whether 10 digits are a plausible North American number (NXX-NXX-XXXX)."""
    return ten_digits[0] not in "01" and ten_digits[3] not in "01" and ten_digits[1:3] != "11"


def near(
    pattern: re.Pattern[str], text: str, start: int, end: int, before: int, after: int = 0
) -> bool:
    """Whether ``pattern`` occurs within ``before`` characters before the span (or ``after``)."""
    if pattern.search(text, max(0, start - before), start) is not None:
        return True
    return after > 0 and pattern.search(text, end, end + after) is not None
