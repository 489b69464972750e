"""The ``pii`` detector: what it finds in English and Spanish, exact spans, and what it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.guard import DetectorRegistry, GuardPolicySpec, GuardRule
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.detectors.pii import make_pii

PII = make_pii({})


def found(text: str, min_score: float = 0.5) -> list[tuple[str, str]]:
    """(type, exact text of the span) for every finding the default policy would keep."""
    return [(f.type, text[f.start : f.end]) for f in PII.detect(text) if f.score >= min_score]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pay with 4111 1111 1111 1111 please", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005 on file", "3782-822463-10005"),
        ("Mastercard 5555555555554444.", "5555555555554444"),
        ("mi tarjeta es 4000 0566 5566 5556, caduca el 12/27", "4000 0566 5566 5556"),
        ("Visa 4111111111111111110 (19 digits)", "4111111111111111110"),
    ],
)
def test_card_numbers_that_pass_luhn_are_found(text: str, expected: str) -> None:
    assert found(text) == [("CREDIT_CARD", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "Pay with 4111 1111 1111 1112 please",  # Luhn fails
        "tracking 1234 5678 9012 3456",  # Luhn fails
        "ref 9999 9999 9999 9995",  # Luhn passes, no network issues 9999
        "4111 1111-1111 1111",  # mixed separators
    ],
)
def test_card_like_numbers_without_valid_checksum_or_network_are_not_cards(text: str) -> None:
    assert [kind for kind, _ in found(text)] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBAN: ES91 2100 0418 4502 0005 1332.", "ES91 2100 0418 4502 0005 1332"),
        ("transfer to ES9121000418450200051332 today", "ES9121000418450200051332"),
        ("Konto DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
        ("UK account GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("cuenta ES91 2100 0418 4502 0005 1332 1500 euros", "ES91 2100 0418 4502 0005 1332"),
    ],
)
def test_ibans_with_valid_mod97_are_found_grouped_or_not(text: str, expected: str) -> None:
    assert found(text) == [("IBAN_CODE", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN: ES92 2100 0418 4502 0005 1332.",  # check digits wrong
        "GB82WEST1234569876543",  # one character short for GB
        "code QQ12 3456 7890 1234 5678",  # no such country
    ],
)
def test_iban_shapes_with_bad_checksum_length_or_country_are_not_ibans(text: str) -> None:
    assert ("IBAN_CODE" in [kind for kind, _ in found(text)]) is False


def test_spanish_dni_and_nie_need_the_right_control_letter() -> None:
    assert found("Mi DNI es 12345678Z y mi NIE X1234567L.") == [
        ("ES_DNI", "12345678Z"),
        ("ES_NIE", "X1234567L"),
    ]
    assert found("DNI 12.345.678-Z") == [("ES_DNI", "12.345.678-Z")]
    assert found("Mi DNI es 12345678A y mi NIE X1234567A.") == []
    assert found("compramos 10000000 y más") == []  # "y" after a number is a word


def test_ssn_follows_the_ssa_rules_and_bare_digits_need_context() -> None:
    assert found("SSN 177-79-1463") == [("US_SSN", "177-79-1463")]
    assert found("her number is 513-84-7182.") == [("US_SSN", "513-84-7182")]
    for invalid in ("000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"):
        assert found(f"SSN {invalid}") == []
    assert found("social security number 177791463") == [("US_SSN", "177791463")]
    assert found("batch 177791463 shipped") == []


def test_passports_are_found_only_near_the_word() -> None:
    assert found("Passport No. X16684847, expires 2031") == [("PASSPORT", "X16684847")]
    assert found("nº de pasaporte: PAA123456") == [("PASSPORT", "PAA123456")]
    assert found("serial X16684847 in stock") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call me at (591)341-7776 tomorrow", "(591)341-7776"),
        ("office: 206.269.0743x9150", "206.269.0743x9150"),
        ("reach me on +1-780-563-6083", "+1-780-563-6083"),
        ("001-415-555-2671 is the line", "001-415-555-2671"),
        ("Mi móvil es 612 345 678.", "612 345 678"),
        ("fijo 91 123 45 67", "91 123 45 67"),
        ("escríbeme al +34 612345678", "+34 612345678"),
        ("whatsapp +34842 91 41 77", "+34842 91 41 77"),
        ("London office +44 20 7946 0958", "+44 20 7946 0958"),
        ("teléfono: 612345678", "612345678"),
        ("phone 4155552671", "4155552671"),
    ],
)
def test_phone_numbers_in_english_and_spanish_formats(text: str, expected: str) -> None:
    assert found(text) == [("PHONE_NUMBER", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "The invoice total is 1.234.567,89 EUR, paid on 2024-01-15.",
        "Order #612345678 ships Friday",
        "pedido 612 345 678 enviado",
        "total 612 345 678 €",
        "Build 10.0.19041.1234 fixed it",
        "ISBN 978-3-16-148410-0",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "reference 4155552671 was closed",  # bare digits without a phone word
        "Fecha: 15/01/2024 a las 10:30:45",
    ],
)
def test_dates_prices_ids_and_versions_are_not_phone_numbers(text: str) -> None:
    assert found(text) == []


def test_ip_addresses_v4_and_v6_but_not_versions() -> None:
    assert found("server 192.168.1.10 is down") == [("IP_ADDRESS", "192.168.1.10")]
    assert found("link-local fe80::1ff:fe23:4567:890a.") == [
        ("IP_ADDRESS", "fe80::1ff:fe23:4567:890a")
    ]
    assert found("bind to 2001:db8::1 or ::ffff:192.0.2.1") == [
        ("IP_ADDRESS", "2001:db8::1"),
        ("IP_ADDRESS", "::ffff:192.0.2.1"),
    ]
    assert found("upgrade to version 1.2.3.4 or v2.0.1.9; 256.1.1.1 is not an address") == []
    assert found("std::vector and 12:30:45 and 00:1A:2B:3C:4D:5E") == []


def test_the_user_part_of_a_url_is_not_an_email() -> None:
    assert found("postgres://app:S3cret@db.example.com:5432/prod") == []
    assert found("mailto:ana@example.com") == [("EMAIL_ADDRESS", "ana@example.com")]


def test_email_addresses_even_split_by_invisible_characters() -> None:
    assert found("write to ana.garcia+news@correo.example.es.") == [
        ("EMAIL_ADDRESS", "ana.garcia+news@correo.example.es")
    ]
    hidden = "mail john\u200b@exam\u00adple.com now"
    assert found(hidden) == [("EMAIL_ADDRESS", "john\u200b@exam\u00adple.com")]
    card = "card 4111\u200b1111 1111 1111!"
    assert found(card) == [("CREDIT_CARD", "4111\u200b1111 1111 1111")]


def test_postal_addresses_in_english_and_spanish() -> None:
    assert found("I live at 12 Oak Street, Springfield, IL 62704.") == [
        ("POSTAL_ADDRESS", "12 Oak Street"),
        ("POSTAL_ADDRESS", "Springfield, IL 62704"),
    ]
    assert found("ship to 80695 Brown Avenue Apt. 304") == [
        ("POSTAL_ADDRESS", "80695 Brown Avenue Apt. 304")
    ]
    assert found("Vivo en la calle de Alcalá, nº 45, 28013 Madrid.") == [
        ("POSTAL_ADDRESS", "calle de Alcalá, nº 45"),
        ("POSTAL_ADDRESS", "28013"),
    ]
    assert found("Envíalo a C/ Mayor, 5 o a Avda. de América 10") == [
        ("POSTAL_ADDRESS", "C/ Mayor, 5"),
        ("POSTAL_ADDRESS", "Avda. de América 10"),
    ]
    assert found("código postal 08001") == [("POSTAL_ADDRESS", "08001")]


BENIGN = [
    "The meeting moved to 3 pm on March 14, 2025; bring the Q3 report (version 2.1).",
    "We sold 1,250 units at $19.99 each, a 12.5% increase over 2023.",
    "Python 3.11.4 and numpy 1.26.0 are installed; run pip install -U pip.",
    "Flight IB3456 leaves gate 23 at 10:45 and lands at 14:20.",
    "The recipe needs 250 g of flour, 3 eggs and 2 cups of milk.",
    "Order 100234 was refunded; ticket #45821 is closed.",
    "Use the password field on the login page to reset your account.",
    "Chapter 12 starts on page 345 and ends on page 401.",
    "La reunión es el 14 de marzo de 2025 a las 15:00 en la sala 3.",
    "Vendimos 1.250 unidades a 19,99 € cada una, un 12,5 % más que en 2023.",
    "El pedido 100234 se entregó el 15/01/2024; la factura 2024-0042 está pagada.",
    "La versión 4.2.1 corrige el error 502 del servidor.",
    "Necesitas 250 g de harina, 3 huevos y 2 tazas de leche.",
    "El tren sale del andén 7 a las 08:15 y llega a las 11:40.",
    "La calle estaba llena de gente y la plaza también.",
    "El capítulo 12 empieza en la página 345.",
]


@pytest.mark.parametrize("text", BENIGN)
def test_no_false_positives_on_ordinary_sentences(text: str) -> None:
    assert found(text) == []


def test_weak_shapes_are_reported_below_the_default_threshold() -> None:
    weak = [f for f in PII.detect("nos vemos, 612345678") if f.type == "PHONE_NUMBER"]
    assert weak
    assert all(f.score < 0.5 for f in weak)


def test_a_policy_redacts_pii_through_the_registered_detector() -> None:
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec(input=[GuardRule(detector="pii", action="redact")])
    decision = registry.compile(spec).check("Soy 12345678Z, escríbeme a ana@example.es", "input")
    assert decision.action == "redact"
    assert decision.redacted_text == "Soy [ES_DNI], escríbeme a [EMAIL_ADDRESS]"


def test_unknown_options_and_bad_model_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="languages"):
        make_pii({"languages": ["en"]})
    with pytest.raises(InvalidInput, match="not a directory"):
        make_pii({"ner_model": str(tmp_path / "missing")})
    with pytest.raises(InvalidInput, match=r"config\.json"):
        make_pii({"ner_model": str(tmp_path)})
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec(input=[GuardRule(detector="pii", action="redact", options={"x": 1})])
    with pytest.raises(InvalidInput, match="x"):
        registry.compile(spec)
