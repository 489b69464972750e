"""The ``secrets`` detector: provider key shapes, PEM blocks, passwords; exact value spans."""

from __future__ import annotations

import base64
import json

import pytest

from modelcycle.access.keys import generate_key
from modelcycle.errors import InvalidInput
from modelcycle.guard import DetectorRegistry, GuardPolicySpec, GuardRule
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.detectors.secrets import make_secrets

SECRETS = make_secrets({})
# Made-up keys of the right shape (never real ones).
OPENAI = "sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kL9nP2rS5uX8" * 2
ANTHROPIC = "sk-ant-api03-" + "xY9_" * 20 + "AA"
GITHUB = "ghp_" + ("a1B2c3D4e5F6g7H8i9J0" * 2)[:36]
JWT_HEADER = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())


def found(text: str, min_score: float = 0.5) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in SECRETS.detect(text) if f.score >= min_score]


@pytest.mark.parametrize(
    ("kind", "token"),
    [
        ("OPENAI_API_KEY", OPENAI),
        ("OPENAI_API_KEY", "sk-" + "T3BlbkFJ" * 6),
        ("ANTHROPIC_API_KEY", ANTHROPIC),
        ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_ACCESS_KEY", "ASIAY34FZKBOKMUTVV7A"),
        ("GITHUB_TOKEN", GITHUB),
        ("GITHUB_TOKEN", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF"),
        ("GITLAB_TOKEN", "glpat-xYz12AbC34dEf56GhI78"),
        ("SLACK_TOKEN", "xoxb-2048-1234567890-AbCdEfGhIjKlMnOp"),
        ("STRIPE_KEY", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
        ("GOOGLE_API_KEY", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
        ("HUGGINGFACE_TOKEN", "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"),
        ("MODELCYCLE_API_KEY", generate_key()[0]),
    ],
)
def test_provider_keys_are_found_with_exact_spans(kind: str, token: str) -> None:
    assert found(f"here it is: {token}, keep it safe") == [(kind, token)]
    assert found(f'{{"key":"{token}"}}')[0] == (kind, token)


def test_jwt_needs_a_header_that_decodes() -> None:
    header = JWT_HEADER.decode().rstrip("=")
    token = f"{header}.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert found(f"Authorization: Bearer {token}") == [("JWT", token)]
    fake = "eyJub3RoaW5nIGhlcmUi.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"
    assert found(f"token {fake}") == []


def test_private_key_blocks_are_found_whole() -> None:
    block = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
        "aFDrBz9vFqU4yHCmU4bDq5TqsM3n5Fhux0hUx9e2NRnVNtTVB5QeE6kR0fVGpHY\n"
        "-----END RSA PRIVATE KEY-----"
    )
    text = f"my key:\n{block}\nthanks"
    assert found(text) == [("PRIVATE_KEY", block)]
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    assert found(cut + "(the rest got cut off)") == [("PRIVATE_KEY", cut.rstrip())]
    assert found("-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DATABASE_URL=postgres://app:S3cr3t!pw@db.internal:5432/prod", "S3cr3t!pw"),
        ("redis://:hunter2x@cache:6379/0", "hunter2x"),
        ("mongodb+srv://admin:p%40ss%21word@cluster0.example.net/test", "p%40ss%21word"),
    ],
)
def test_connection_string_password_covers_the_password_only(text: str, expected: str) -> None:
    assert found(text) == [("CONNECTION_STRING_PASSWORD", expected)]


def test_connection_strings_with_placeholders_or_no_password_are_ignored() -> None:
    assert found("postgres://app:${DB_PASSWORD}@db/prod and https://user@example.com") == []
    assert found("see https://docs.example.com:443/a:b@c") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2", ("PASSWORD_ASSIGNMENT", "hunter2")),
        ('{"password": "Tr0ub4dor&3"}', ("PASSWORD_ASSIGNMENT", "Tr0ub4dor&3")),
        ("DB_PASSWORD='c0rrect horse'", ("PASSWORD_ASSIGNMENT", "c0rrect horse")),
        ("userPassword: S3cure!2024", ("PASSWORD_ASSIGNMENT", "S3cure!2024")),
        ("contraseña: Hola1234", ("PASSWORD_ASSIGNMENT", "Hola1234")),
        ("mi contraseña es Verano2024!", ("PASSWORD_ASSIGNMENT", "Verano2024!")),
        ("my password is Summer2024!.", ("PASSWORD_ASSIGNMENT", "Summer2024!")),
        ("client_secret = 9f8e7d6c5b4a3F2E1D", ("SECRET_ASSIGNMENT", "9f8e7d6c5b4a3F2E1D")),
        ("api_key: Zx81LmQ0Pq93Rs", ("SECRET_ASSIGNMENT", "Zx81LmQ0Pq93Rs")),
        ('"password": "$7EHA39w!tN"', ("PASSWORD_ASSIGNMENT", "$7EHA39w!tN")),
        ("CONTRASENA=L%&Q(55cB639w", ("PASSWORD_ASSIGNMENT", "L%&Q(55cB639w")),
        ("/login?password=Sup3rS3cret&user=ana", ("PASSWORD_ASSIGNMENT", "Sup3rS3cret")),
    ],
)
def test_assigned_passwords_cover_the_value_only(text: str, expected: tuple[str, str]) -> None:
    assert found(text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "password=${DB_PASSWORD}",
        "PASSWORD: $DB_PASSWORD",
        "password = %(db_password)s",
        'password: "{{ vault_password }}"',
        "password=<your-password>",
        "contraseña: [oculta]",
        "password=changeme",
    ],
)
def test_references_and_placeholders_are_not_passwords(text: str) -> None:
    assert found(text) == []


def test_aws_secret_key_needs_its_context() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(f"aws_secret_access_key = {secret}") == [("AWS_SECRET_KEY", secret)]
    assert found(f"checksum {secret}") == []


BENIGN = [
    "Reset your password from the login page; the password must have 12 characters.",
    "The password is required and the token expires in 3600 seconds.",
    "Set password_hash = bcrypt(password) before saving; token_type: bearer.",
    "The key: to success is practice. Our compass=north strategy works.",
    "git commit sha 3f786850e387550fdab836ed7e6dc881de23001b was reverted",
    "Visit https://example.com/path?query=1 or ftp://files.example.org/pub.",
    "task-force planning and ask-me-anything sessions are on Friday",
    "La contraseña es obligatoria y debe tener al menos 12 caracteres.",
    "La palabra clave: aprendizaje. El token caduca en una hora.",
    "Tu contraseña: ******** (oculta). Escribe password=<tu-contraseña> en el fichero.",
    "El hash sha256 es 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.",
    "Usa la clave pública para verificar la firma del mensaje.",
]


@pytest.mark.parametrize("text", BENIGN)
def test_no_false_positives_on_ordinary_sentences(text: str) -> None:
    assert found(text) == []


def test_a_policy_redacts_a_pasted_key_and_the_registry_refuses_options() -> None:
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec(input=[GuardRule(detector="secrets", action="redact")])
    decision = registry.compile(spec).check(f"use {GITHUB} to clone", "input")
    assert decision.redacted_text == "use [GITHUB_TOKEN] to clone"
    with pytest.raises(InvalidInput, match="entropy"):
        make_secrets({"entropy": 4.5})
