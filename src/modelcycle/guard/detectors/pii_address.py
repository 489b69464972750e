"""Postal addresses where a pattern can see them: street lines and post codes.

English: a house number, a capitalised street name and a street suffix from
USPS Publication 28 (``12 Oak Street``, ``80695 Brown Hills Apt. 304``), and
``City, ST 12345``. Spanish: a street type (Calle, C/, Avda., Plaza, Paseo and
the rest of the Spanish cadastre's list), a name, and a number
(``Calle de Alcalá, nº 45``), and a 5-digit post code next to a city name or
after "C.P.". Addresses without a number, or in free form, need an NER model.
"""

from __future__ import annotations

import re

from modelcycle.guard.detectors.pii_checks import ID_CONTEXT, near
from modelcycle.guard.types import Finding

NAME = "pii"

# The suffixes people write most (scored higher), then the rest of USPS Publication 28.
_EN_COMMON = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Way|Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Plz"
)
_EN_OTHER = (
    "Alley|Aly|Branch|Bridge|Brook|Brooks|Burg|Burgs|Bypass|Camp|Canyon|Cape|Causeway|"
    "Center|Centers|Circles|Cliff|Cliffs|Club|Common|Corner|Corners|Course|Courts|Cove|"
    "Coves|Creek|Crescent|Crest|Crossing|Crossroad|Curve|Dale|Dam|Divide|Drives|Estate|"
    "Estates|Expressway|Expy|Extension|Extensions|Fall|Falls|Ferry|Field|Fields|Flat|"
    "Flats|Ford|Fords|Forest|Forge|Forges|Fork|Forks|Fort|Freeway|Fwy|Garden|Gardens|"
    "Gateway|Glen|Glens|Green|Greens|Grove|Groves|Harbor|Harbors|Haven|Heights|Hill|"
    "Hills|Hollow|Inlet|Island|Islands|Isle|Junction|Junctions|Key|Keys|Knoll|Knolls|"
    "Lake|Lakes|Land|Landing|Light|Lights|Loaf|Lock|Locks|Lodge|Loop|Mall|Manor|Manors|"
    "Meadow|Meadows|Mews|Mill|Mills|Mission|Motorway|Mount|Mountain|Mountains|Neck|"
    "Orchard|Oval|Overpass|Park|Parks|Parkways|Pass|Passage|Path|Pike|Pine|Pines|Plain|"
    "Plains|Point|Points|Port|Ports|Prairie|Radial|Ramp|Ranch|Rapid|Rapids|Rest|Ridge|"
    "Ridges|River|Roads|Route|Row|Rue|Run|Shoal|Shoals|Shore|Shores|Skyway|Spring|"
    "Springs|Spur|Spurs|Squares|Station|Stravenue|Stream|Streets|Summit|Throughway|Trace|"
    "Track|Trafficway|Tunnel|Turnpike|Underpass|Union|Unions|Valley|Valleys|Via|Viaduct|"
    "View|Views|Village|Villages|Ville|Vista|Walk|Walks|Wall|Ways|Well|Wells"
)
_EN_STREET = re.compile(
    r"(?<![\w.,-])[0-9]{1,6}[A-Z]?[ ]+(?:(?:N|S|E|W|North|South|East|West)\.?[ ]+)?"
    r"(?:[A-Z][a-z]{1,20}|[0-9]{1,3}(?:st|nd|rd|th))(?:[ ]+[A-Z][a-z]{1,20}){0,3}[ ]+"
    rf"(?:(?P<common>{_EN_COMMON})|{_EN_OTHER})\b\.?"
    r"(?P<unit>,?[ ]+(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|#)\.?[ ]*[0-9]{1,5}[A-Z]?\b)?"
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|"
    "NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|AS|MP"
)
_US_CITY_ZIP = re.compile(
    r"(?<![\w-])[A-Z][a-z]{1,20}(?:[ ][A-Z][a-z]{1,20}){0,3},[ ]+"
    rf"(?:{_US_STATES})[ ]+[0-9]{{5}}(?:-[0-9]{{4}})?(?![\w-])"
)
_ES_TYPES = (  # matched in any case: "vivo en la calle Mayor 5"
    "Calle|C/|C\\.|Cl\\.|Avenida|Avda\\.?|Av\\.|Plaza|Pza\\.?|Pl\\.|Paseo|P[º°]|Camino|"
    "Carretera|Ctra\\.?|Ronda|Traves[ií]a|Glorieta|Rambla|V[ií]a|Vial|Callej[oó]n|"
    "Urbanizaci[oó]n|Urb\\.|Pasaje|Pasadizo|Acceso|Alameda|Cañada|Cuesta|Bajada|"
    "Costanilla|R[uú]a|Senda|Pol[ií]gono|Carrer|Passeig|Plaça|Avinguda"
)
_ES_NAME_WORD = r"[A-ZÁÉÍÓÚÑÜ][\w'.·-]{0,30}"
_ES_CONNECTOR = r"(?:de|del|de la|de las|de los|la|las|los|el|y|i)"
_ES_STREET = re.compile(
    rf"(?<![\w/.])(?i:{_ES_TYPES})[ ]*(?:{_ES_CONNECTOR}[ ]+)?{_ES_NAME_WORD}"
    rf"(?:[ ]+(?:{_ES_CONNECTOR}[ ]+)?{_ES_NAME_WORD}){{0,5}}"
    r",?[ ]*(?:n[º°o]\.?|n[uú]m\.?|n[uú]mero)?[ ]*[0-9]{1,4}(?:[A-Z](?!\w))?"
    r"(?:,?[ ]*(?:Apt\.|Piso|Puerta|Pta\.|Portal|Planta|Esc\.|Escalera|Bajo)[ ]*"
    r"[0-9]{0,3}[ºª°]?[A-Za-z]?\b){0,3}"
)
_ES_POSTCODE = re.compile(r"(?<![\w.,-])(?:0[1-9]|[1-4][0-9]|5[0-2])[0-9]{3}(?![\w-]|[.,][0-9])")
_ES_POSTCODE_CONTEXT = re.compile(r"(?i)(?:\bC\.\s?P\.?|\bCP\b|c[oó]digo postal)")
_CITY_AFTER = re.compile(r"[ ]{1,3}[A-ZÁÉÍÓÚÑ][a-záéíóúñü]{2,30}")
_CITY_BEFORE = re.compile(r"[A-ZÁÉÍÓÚÑ][a-záéíóúñü]{2,30},?[ ]{1,3}$")
_NOT_CITY = frozenset(
    ("Euros", "Dólares", "Dollars", "Unidades", "Units", "Personas", "People", "Usuarios", "Users")
)
# The street types as written in running text (lower-cased words); "c/mayor" is checked apart.
ES_TYPE_WORDS = frozenset(
    (
        "calle",
        "c/",
        "c.",
        "cl.",
        "avenida",
        "avda",
        "avda.",
        "av.",
        "plaza",
        "pza",
        "pza.",
        "pl.",
        "paseo",
        "pº",
        "p°",
        "camino",
        "carretera",
        "ctra",
        "ctra.",
        "ronda",
        "travesía",
        "travesia",
        "glorieta",
        "rambla",
        "vía",
        "via",
        "vial",
        "callejón",
        "callejon",
        "urbanización",
        "urbanizacion",
        "urb.",
        "pasaje",
        "pasadizo",
        "acceso",
        "alameda",
        "cañada",
        "cuesta",
        "bajada",
        "costanilla",
        "rúa",
        "rua",
        "senda",
        "polígono",
        "poligono",
        "carrer",
        "passeig",
        "plaça",
        "avinguda",
    )
)

SCORE_STREET = 0.75
SCORE_STREET_RARE_SUFFIX = 0.55
SCORE_STREET_WITH_UNIT = 0.85
SCORE_CITY_ZIP = 0.75
SCORE_POSTCODE_CONTEXT = 0.75
SCORE_POSTCODE_CITY = 0.6


def us_street_at(text: str, start: int) -> Finding | None:
    """The English street line whose house number starts at ``start``, if there is one."""
    m = _EN_STREET.match(text, start)
    if m is None:
        return None
    if m.group("common") is None:
        score = SCORE_STREET_RARE_SUFFIX
    elif m.group("unit") is not None:
        score = SCORE_STREET_WITH_UNIT
    else:
        score = SCORE_STREET
    return Finding(NAME, "POSTAL_ADDRESS", m.start(), m.end(), score)


def postcode_at(text: str, start: int, end: int) -> Finding | None:
    """A US ``City, ST 12345`` line or a Spanish post code (C.P. or a city name next to it)."""
    m = _US_CITY_ZIP.search(text, max(0, start - 80), min(len(text), end + 6))
    if m is not None and m.start() <= start < m.end():
        return Finding(NAME, "POSTAL_ADDRESS", m.start(), m.end(), SCORE_CITY_ZIP)
    if _ES_POSTCODE.match(text, start) is None or end - start != 5:
        return None
    score = _postcode_score(text, start, end)
    return None if score is None else Finding(NAME, "POSTAL_ADDRESS", start, end, score)


def spanish_streets(text: str, lowered: str, words: set[str]) -> list[Finding]:
    """Spanish street lines; ``lowered``/``words``: the text lower-cased and split (gates)."""
    kinds = words & ES_TYPE_WORDS
    if "c/" in lowered:
        kinds.add("c/")
    if not kinds:
        return []
    if len(lowered) != len(text):  # lower() changed the length: positions differ, scan it all
        return [_street(m) for m in _ES_STREET.finditer(text)]
    out: list[Finding] = []
    for kind in kinds:
        at = lowered.find(kind)
        while at >= 0:
            m = _ES_STREET.match(text, at)
            if m is not None:
                out.append(_street(m))
            at = lowered.find(kind, at + 1)
    return out


def _street(m: re.Match[str]) -> Finding:
    return Finding(NAME, "POSTAL_ADDRESS", m.start(), m.end(), SCORE_STREET)


def _postcode_score(text: str, start: int, end: int) -> float | None:
    if near(ID_CONTEXT, text, start, end, 25):
        return None
    if near(_ES_POSTCODE_CONTEXT, text, start, end, 20):
        return SCORE_POSTCODE_CONTEXT
    after = _CITY_AFTER.match(text, end)
    if after is not None and after.group(0).strip() not in _NOT_CITY:
        return SCORE_POSTCODE_CITY
    if _CITY_BEFORE.search(text, max(0, start - 40), start) is not None:
        return SCORE_POSTCODE_CITY
    return None
