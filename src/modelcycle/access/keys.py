"""API key format, generation and hashing.

A key looks like ``mc_<prefix>_<secret>``: the prefix (8 characters) is stored
in clear to find the row and to show people which key is which; the whole key
is stored only as a SHA-256 digest. Keys carry 190+ bits of randomness, so a
fast digest is safe (as GitHub and Stripe do) and keeps per-request
authentication cheap; a slow password hash would add milliseconds to every
call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

KEY_PATTERN = re.compile(r"^mc_([a-z0-9]{8})_([A-Za-z0-9]{32})$")
_ALPHABET_PREFIX = string.ascii_lowercase + string.digits
_ALPHABET_SECRET = string.ascii_letters + string.digits


def generate_key() -> tuple[str, str]:
    """A new random key and its prefix."""
    prefix = "".join(secrets.choice(_ALPHABET_PREFIX) for _ in range(8))
    secret = "".join(secrets.choice(_ALPHABET_SECRET) for _ in range(32))
    return f"mc_{prefix}_{secret}", prefix


def parse_prefix(raw_key: str) -> str | None:
    """The prefix of a well-formed key, ``None`` when the key is malformed."""
    match = KEY_PATTERN.match(raw_key)
    return match.group(1) if match else None


def hash_key(raw_key: str) -> str:
    """The digest stored for a key."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def matches(raw_key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored digest."""
    return hmac.compare_digest(hash_key(raw_key), stored_hash)
