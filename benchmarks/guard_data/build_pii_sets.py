"""Build the labelled PII sets ``pii_en.jsonl`` and ``pii_es.jsonl`` (Faker, fixed seed).

Rows: ``{"text", "lang", "entities": [{"type", "start", "end"}]}``, spans in Python
string indices. About 70% of the rows carry personal data or a credential, drawn
from Faker ``en_US``/``es_ES`` (cards of every Faker network in three layouts,
IBANs of six countries grouped or not, ``nif()``/``nie()``, SSNs, passports,
addresses, phones in Faker's and in common national formats); the rest hold
numbers that only look like it (prices, dates, order ids, product codes,
versions, and cards, IBANs, DNIs, NIEs and SSNs that fail their checksum or rules).
The templates (``pii_templates.py``) were written apart from the detectors.

Limits: Faker's data is cleaner than real text (no typos, one format per value),
person names are labelled ``PERSON`` although only an NER model finds them, and
English street suffixes come from the USPS list, as the detector's do, so
English address recall here is optimistic.

    pip install Faker   # a dev dependency, not a runtime one
    python benchmarks/guard_data/build_pii_sets.py
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
import sys
from collections.abc import Callable
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_templates import EN_NEGATIVE, EN_POSITIVE, ES_NEGATIVE, ES_POSITIVE, LABELLED

SEED = 20260503
ROWS = 650
NEGATIVE_SHARE = 0.3
HERE = Path(__file__).resolve().parent
Span = tuple[int, int, str]  # start, end within the slot's value, entity type
Slot = Callable[["Maker"], tuple[str, list[Span]]]
B62 = string.ascii_letters + string.digits
LOWER36 = string.ascii_lowercase + string.digits


class Maker:
    """Slot values for one language, from a seeded Faker and a seeded RNG."""

    def __init__(self, lang: str):
        self.lang = lang
        self.fake = Faker("en_US" if lang == "en" else "es_ES")
        self.fake.seed_instance(SEED if lang == "en" else SEED + 1)
        self.rng = random.Random(SEED * 7 + (0 if lang == "en" else 1))
        self.banks = {loc: Faker(loc) for loc in ("en_GB", "de_DE", "fr_FR", "it_IT", "nl_NL")}
        for index, bank in enumerate(self.banks.values()):
            bank.seed_instance(SEED + 10 + index)

    def pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    def token(self, alphabet: str, length: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))


def _whole(kind: str, value: str) -> tuple[str, list[Span]]:
    return value, [(0, len(value), kind)]


def _group(digits: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        out.append(digits[at : at + size])
        at += size
    if at < len(digits):
        out.append(digits[at:])
    return sep.join(part for part in out if part)


def card_digits(m: Maker) -> str:
    kinds = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners", "jcb15"]
    return str(m.fake.credit_card_number(card_type=m.pick([*kinds, "jcb16", "maestro"])))


def format_card(m: Maker, digits: str) -> str:
    style = m.pick(["plain", "spaces", "dashes"])
    if style == "plain":
        return digits
    sizes = [4, 6, 5] if len(digits) == 15 else [4] * 5
    return _group(digits, sizes, " " if style == "spaces" else "-")


def iban(m: Maker) -> str:
    home = m.fake if m.lang == "es" else m.banks["en_GB"]
    source = home if m.rng.random() < 0.6 else m.banks[m.pick(list(m.banks))]
    value = str(source.iban())
    return _group(value, [4] * 9, " ") if m.rng.random() < 0.5 else value


def phone(m: Maker) -> str:
    if m.lang == "en":
        if m.rng.random() < 0.2:  # area code and exchange start with 2-9, as real ones do
            area, exchange = m.rng.randint(200, 999), m.rng.randint(200, 999)
            line = m.fake.numerify("####")
            layout = m.pick(["({a}) {e}-{n}", "+1 {a}-{e}-{n}", "1-{a}-{e}-{n}"])
            return layout.format(a=area, e=exchange, n=line)
        return str(m.fake.phone_number())
    if m.rng.random() < 0.4:
        return str(m.fake.phone_number())
    return m.fake.numerify(
        m.pick(["6## ### ###", "6########", "7## ## ## ##", "9## ## ## ##", "9# ### ## ##"])
    )


def address(m: Maker) -> str:
    street = str(m.fake.street_address()).strip()
    if m.rng.random() < 0.5:
        return street
    if m.lang == "en":
        return f"{street}, {m.fake.city()}, {m.fake.state_abbr()} {m.fake.zipcode()}"
    return f"{street}, {m.fake.postcode()} {m.fake.city()}"


def passport(m: Maker) -> str:
    if m.lang == "en":
        return str(m.fake.passport_number())
    return m.fake.bothify(m.pick(["???######", "??######"])).upper()


def api_key(m: Maker) -> tuple[str, list[Span]]:
    shapes = [
        ("OPENAI_API_KEY", lambda: "sk-proj-" + m.token(B62 + "_-", 100)),
        ("OPENAI_API_KEY", lambda: "sk-" + m.token(B62, 48)),
        ("ANTHROPIC_API_KEY", lambda: "sk-ant-api03-" + m.token(B62 + "_-", 93) + "AA"),
        ("GITHUB_TOKEN", lambda: m.pick(["ghp_", "gho_", "ghs_"]) + m.token(B62, 36)),
        ("GITLAB_TOKEN", lambda: "glpat-" + m.token(B62 + "_-", 20)),
        ("SLACK_TOKEN", lambda: f"xoxb-{m.token(string.digits, 12)}-{m.token(B62, 24)}"),
        ("STRIPE_KEY", lambda: m.pick(["sk_live_", "rk_live_"]) + m.token(B62, 24)),
        ("GOOGLE_API_KEY", lambda: "AIza" + m.token(B62 + "_-", 35)),
        ("HUGGINGFACE_TOKEN", lambda: "hf_" + m.token(string.ascii_letters, 34)),
        ("MODELCYCLE_API_KEY", lambda: f"mc_{m.token(LOWER36, 8)}_{m.token(B62, 32)}"),
    ]
    kind, make = m.rng.choice(shapes)
    return _whole(kind, make())


def password_assignment(m: Maker) -> tuple[str, list[Span]]:
    secret = str(m.fake.password(length=m.rng.randint(10, 16)))
    key = m.pick(
        ["DB_PASSWORD=", "password: ", "PASSWORD=", "admin_password = ", '"password": "']
        + (["contraseña: ", "CONTRASENA="] if m.lang == "es" else [])
    )
    closing = '"' if key.endswith('"') else ""
    return key + secret + closing, [(len(key), len(key) + len(secret), "PASSWORD_ASSIGNMENT")]


def connection_string(m: Maker) -> tuple[str, list[Span]]:
    secret = str(m.fake.password(length=14, special_chars=False))
    scheme = m.pick(["postgresql", "mysql", "mongodb+srv", "redis", "amqp"])
    head = f"{scheme}://{m.fake.user_name()}:"
    tail = f"@{m.fake.domain_name()}:{m.rng.randint(1000, 9999)}/{m.fake.word()}"
    return head + secret + tail, [
        (len(head), len(head) + len(secret), "CONNECTION_STRING_PASSWORD")
    ]


def jwt(m: Maker) -> tuple[str, list[Span]]:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": str(m.rng.randint(10**6, 10**9)), "name": m.fake.name(), "iat": 1700000000}
    value = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{m.token(B62 + '_-', 43)}"
    return _whole("JWT", value)


def private_key(m: Maker) -> tuple[str, list[Span]]:
    kind = m.pick(["RSA ", "EC ", "OPENSSH ", ""])
    body = "\n".join(m.token(B62 + "+/", 64) for _ in range(m.rng.randint(3, 6)))
    return _whole(
        "PRIVATE_KEY", f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
    )


def bad_card(m: Maker) -> str:
    digits = card_digits(m)
    return format_card(m, digits[:-1] + str((int(digits[-1]) + 1) % 10))


def bad_iban(m: Maker) -> str:
    """A real IBAN with other check digits (never ones that happen to validate)."""
    value = iban(m)
    compact = value.replace(" ", "")
    for _ in range(100):
        check = f"{m.rng.randint(2, 98):02d}"
        moved = compact[4:] + compact[:2] + check
        if int("".join(str(int(c, 36)) for c in moved)) % 97 != 1:
            return value[:2] + check + value[4:]
    raise RuntimeError("no invalid check digits found")


def bad_id(m: Maker, value: str) -> str:
    wrong = m.pick([c for c in "TRWAGMYFPDXBNJZSQVHLCKE" if c != value[-1]])
    return value[:-1] + wrong


def ean13(m: Maker) -> str:
    digits = m.fake.numerify("8#" + "#" * 10)
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def isbn(m: Maker) -> str:
    core = "978" + m.fake.numerify("#########")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(core))
    check = str((10 - total % 10) % 10)
    return f"{core[:3]}-{core[3]}-{core[4:6]}-{core[6:]}-{check}"


def date(m: Maker) -> str:
    day = m.fake.date_between(start_date="-5y", end_date="+2y")
    if m.lang == "en":
        return day.strftime(m.pick(["%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d"]))
    return day.strftime(m.pick(["%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d"]))


def price(m: Maker) -> str:
    amount = m.rng.randint(100, 999999) / 100
    if m.lang == "en":
        return f"${amount:,.2f}"
    return f"{amount:,.2f} €".replace(",", "_").replace(".", ",").replace("_", ".")


def ipv6(m: Maker) -> str:
    value = str(m.fake.ipv6())
    return value if m.rng.random() < 0.5 else ipaddress.IPv6Address(value).compressed


def email(m: Maker) -> str:
    return str(getattr(m.fake, m.pick(["email", "free_email", "company_email"]))())


def ipv4(m: Maker) -> str:
    return str(getattr(m.fake, m.pick(["ipv4", "ipv4_private", "ipv4_public"]))())


def ssn(m: Maker) -> str:
    return str(m.fake.ssn()).replace("-", " " if m.rng.random() < 0.2 else "-")


def dni(m: Maker) -> str:
    value = str(m.fake.nif())
    return value if m.rng.random() < 0.85 else f"{value[:8]}-{value[8]}"


def aws_key(m: Maker) -> tuple[str, list[Span]]:
    value = m.pick(["AKIA", "ASIA"]) + m.token(string.ascii_uppercase + "234567", 16)
    return _whole("AWS_ACCESS_KEY", value)


def spoken_password(m: Maker) -> tuple[str, list[Span]]:
    return _whole("PASSWORD_ASSIGNMENT", str(m.fake.password(length=12, special_chars=False)))


def bad_ssn(m: Maker) -> str:
    return m.pick(["000", "666", "9" + m.fake.numerify("##")]) + m.fake.numerify("-##-####")


def quantity(m: Maker) -> str:
    value = f"{m.rng.randint(1000, 99999):,}"
    return value if m.lang == "en" else value.replace(",", ".")


def order_id(m: Maker) -> str:
    return m.fake.bothify(m.pick(["#########", "#######", "?-#####-##", "ORD-########"])).upper()


def part_code(m: Maker) -> str:
    layouts = ["###-####-##", "##-###-####", "####-###", "###-###-####", "### ### ###"]
    return m.fake.numerify(m.pick(layouts))


def tracking(m: Maker) -> str:
    ups = "1Z" + m.token(string.ascii_uppercase + string.digits, 16)
    return m.pick([ups, m.fake.numerify("############")])


def _plain(make: Callable[[Maker], str], kind: str | None = None) -> Slot:
    def slot(m: Maker) -> tuple[str, list[Span]]:
        value = make(m)
        return (value, [(0, len(value), kind)]) if kind else (value, [])

    return slot


def _labelled(name: str, make: Callable[[Maker], str]) -> tuple[str, Slot]:
    return name, _plain(make, LABELLED[name])


SLOTS: dict[str, Slot] = dict(
    [
        _labelled("NAME", lambda m: str(m.fake.name())),
        _labelled("EMAIL", email),
        _labelled("PHONE", phone),
        _labelled("CARD", lambda m: format_card(m, card_digits(m))),
        _labelled("IBAN", iban),
        _labelled("IPV4", ipv4),
        _labelled("IPV6", ipv6),
        _labelled("SSN", ssn),
        _labelled("DNI", dni),
        _labelled("NIE", lambda m: str(m.fake.nie())),
        _labelled("PASSPORT", passport),
        _labelled("ADDRESS", address),
    ]
)
SLOTS |= {
    "AWS_KEY": aws_key,
    "API_KEY": api_key,
    "PASSWORD_ASSIGNMENT": password_assignment,
    "CONNECTION_STRING": connection_string,
    "PASSWORD": spoken_password,
    "JWT": jwt,
    "PRIVATE_KEY": private_key,
    "EXPIRY": _plain(lambda m: str(m.fake.credit_card_expire())),
    "DATE": _plain(date),
    "TIME": _plain(lambda m: f"{m.rng.randint(0, 23):02d}:{m.rng.choice([0, 15, 30, 45]):02d}"),
    "PRICE": _plain(price),
    "PERCENT": _plain(lambda m: f"{m.rng.randint(2, 60)}" + ("%" if m.lang == "en" else " %")),
    "ROOM": _plain(lambda m: m.pick([str(m.rng.randint(100, 999)), f"{m.rng.randint(1, 9)}B"])),
    "ORDER_ID": _plain(order_id),
    "VERSION": _plain(
        lambda m: f"{m.rng.randint(1, 12)}.{m.rng.randint(0, 30)}.{m.rng.randint(0, 99)}"
    ),
    "PART_CODE": _plain(part_code),
    "INVOICE_ID": _plain(
        lambda m: f"INV-{m.rng.randint(2019, 2026)}-{m.rng.randint(1, 999999):06d}"
    ),
    "TRACKING": _plain(tracking),
    "EAN13": _plain(ean13),
    "BAD_CARD": _plain(bad_card),
    "BAD_IBAN": _plain(bad_iban),
    "BAD_DNI": _plain(lambda m: bad_id(m, str(m.fake.nif()))),
    "BAD_NIE": _plain(lambda m: bad_id(m, str(m.fake.nie()))),
    "BAD_SSN": _plain(bad_ssn),
    "BUILD": _plain(lambda m: f"10.0.{m.rng.randint(10000, 26000)}.{m.rng.randint(1, 5000)}"),
    "QTY": _plain(quantity),
    "YEAR": _plain(lambda m: str(m.rng.randint(2015, 2026))),
    "TICKET": _plain(
        lambda m: m.pick([f"#{m.rng.randint(1000, 99999)}", f"OPS-{m.rng.randint(100, 9999)}"])
    ),
    "ISBN": _plain(isbn),
    "MODEL_CODE": _plain(lambda m: m.fake.bothify("??-####").upper()),
    "MS": _plain(lambda m: str(m.rng.randint(20, 900))),
    "FLIGHT": _plain(lambda m: m.fake.bothify(m.pick(["IB####", "UX###", "BA###", "DL####"]))),
    "FLOOR": _plain(lambda m: f"{m.rng.randint(1, 9)}º {m.pick(['A', 'B', 'C', 'D'])}"),
    "CASE_ID": _plain(lambda m: f"{m.rng.randint(2019, 2026)}/{m.rng.randint(1, 999999):06d}"),
    "FIRMWARE": _plain(lambda m: ".".join(str(m.rng.randint(0, 12)) for _ in range(4))),
    "COORDINATES": _plain(
        lambda m: f"{m.rng.uniform(-80, 80):.4f}, {m.rng.uniform(-170, 170):.4f}"
    ),
    "SERIAL": _plain(lambda m: m.fake.numerify("#" * m.rng.randint(9, 12))),
    "PLATE": _plain(lambda m: m.fake.numerify("####") + " " + m.token("BCDFGHJKLMNPRSTVWXYZ", 3)),
}


def render(m: Maker, template: str) -> dict[str, object]:
    text, entities, at = "", [], 0
    while (open_at := template.find("{", at)) >= 0:
        close_at = template.index("}", open_at)
        text += template[at:open_at]
        value, spans = SLOTS[template[open_at + 1 : close_at]](m)
        entities += [
            {"type": kind, "start": len(text) + s, "end": len(text) + e} for s, e, kind in spans
        ]
        text += value
        at = close_at + 1
    text += template[at:]
    return {"text": text, "lang": m.lang, "entities": entities}


def build(lang: str) -> list[dict[str, object]]:
    maker = Maker(lang)
    positive, negative = (EN_POSITIVE, EN_NEGATIVE) if lang == "en" else (ES_POSITIVE, ES_NEGATIVE)
    n_negative = round(ROWS * NEGATIVE_SHARE)
    rows = [render(maker, positive[i % len(positive)]) for i in range(ROWS - n_negative)]
    rows += [render(maker, negative[i % len(negative)]) for i in range(n_negative)]
    maker.rng.shuffle(rows)
    return rows


def main() -> None:
    for lang in ("en", "es"):
        rows = build(lang)
        path = HERE / f"pii_{lang}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        labelled = sum(1 for row in rows if row["entities"])
        print(f"{path.name}: {len(rows)} rows, {labelled} with entities")


if __name__ == "__main__":
    main()
