"""Secrets: credentials of upstream APIs, encrypted at rest, one namespace per project.

A secret's value is stored only as a Fernet token (AES-128-CBC + HMAC-SHA256)
made with the key from ``MODELCYCLE_SECRET_KEY``, or, when that is unset, a key
generated once into ``MODELCYCLE_HOME/secret.key`` (mode 0600). The API returns
names and metadata, never a value; the audit log records who set or deleted
which name, never a value. Only the backends read values back (``reveal``), at
request time, for the project of the calling key.

Several comma-separated keys rotate the encryption key: the first encrypts, all
decrypt; a secret set again is re-encrypted with the first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from modelcycle.access.schemas import Principal
from modelcycle.access.service import require
from modelcycle.errors import Conflict, InvalidInput, MissingExtra, NotFound, StoreError
from modelcycle.settings import Settings
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import SecretRow, utcnow
from modelcycle.types import RequestBody, Role

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
MIN_PASSPHRASE = 32
MAX_VALUE = 8192
REVEAL_TTL_S = 5.0
"""How long a decrypted value is kept in memory: bounds how long a change made
through *another* server process takes to reach this one."""

_FERNET_KEY_BYTES = 32
_SHOWN_TAIL = 4
_MIN_FOR_TAIL = 16


class SecretSet(RequestBody):
    """Body of ``PUT /api/v1/secrets/{name}``."""

    value: SecretStr = Field(
        min_length=1, max_length=MAX_VALUE, description="The secret; never shown again."
    )

    @field_validator("value")
    @classmethod
    def _one_line(cls, value: SecretStr) -> SecretStr:
        # A credential becomes an HTTP header: line breaks would split it (and the
        # error message must not repeat the value).
        if any(char in value.get_secret_value() for char in "\r\n"):
            raise ValueError("a secret may not contain line breaks")
        return value


class SecretInfo(BaseModel):
    """What the API shows of a secret: never its value."""

    name: str
    fingerprint: str = Field(
        description="The last 4 characters of values of 16 or more characters, else only '…'."
    )
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


def generate_key() -> str:
    """A fresh Fernet key, e.g. for ``MODELCYCLE_SECRET_KEY``."""
    return str(_fernet_module().Fernet.generate_key().decode("ascii"))


def _fernet_module() -> Any:
    try:
        from cryptography import fernet
    except ImportError as exc:  # a base dependency; only a broken install lacks it
        raise MissingExtra("cryptography", "all") from exc
    return fernet


def _as_fernet_key(text: str) -> bytes:
    """A Fernet key as given, or one derived from a long random passphrase."""
    try:
        if len(base64.urlsafe_b64decode(text.encode("ascii"))) == _FERNET_KEY_BYTES:
            return text.encode("ascii")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    if len(text) < MIN_PASSPHRASE:
        raise InvalidInput(
            "MODELCYCLE_SECRET_KEY must be a Fernet key or a random string of at least "
            f"{MIN_PASSPHRASE} characters; generate one with: modelcycle secrets generate-key"
        )
    digest = hashlib.sha256(b"modelcycle-secret-key\x00" + text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)


class SecretCipher:
    """Encrypts and decrypts values; the key is read (or generated) on first use."""

    def __init__(self, secret_key: SecretStr | None, home: Path):
        self._configured = secret_key
        self._home = home
        self._lock = threading.Lock()
        self._fernet: MultiFernet | None = None
        self._key_id = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretCipher:
        """The cipher of a server process (nothing is read or written yet)."""
        return cls(settings.secret_key, settings.home)

    @property
    def key_id(self) -> str:
        """A short, public name of the key that encrypts (first 12 hex of its SHA-256)."""
        self._load()
        return self._key_id

    def encrypt(self, value: str) -> bytes:
        """The Fernet token of ``value``."""
        return self._load().encrypt(value.encode("utf-8"))

    def digest(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` (hex) under a key derived from the encrypting key.

        A pseudonym: the same value gives the same digest on every process that
        shares the key, and no one without the key can test guesses against it
        (a plain salted hash of an e-mail address falls to a dictionary in
        seconds). ``purpose`` separates the digests of different uses.
        """
        self._load()
        material = hashlib.sha256(purpose.encode("utf-8") + b"\x00" + self._keys()[0]).digest()
        return hmac.new(material, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def decrypt(self, token: bytes, name: str) -> str:
        """The value behind ``token``; ``StoreError`` naming the secret when no key fits."""
        fernet = _fernet_module()
        try:
            return str(self._load().decrypt(token).decode("utf-8"))
        except fernet.InvalidToken:
            raise StoreError(
                f"secret '{name}' cannot be decrypted with the configured key "
                "(was MODELCYCLE_SECRET_KEY or the key file changed?); set the secret again "
                "or list the old key after the new one in MODELCYCLE_SECRET_KEY",
                code="secret_unreadable",
            ) from None

    def _load(self) -> MultiFernet:
        if self._fernet is not None:
            return self._fernet
        with self._lock:
            if self._fernet is None:
                fernet = _fernet_module()
                keys = self._keys()
                self._key_id = hashlib.sha256(keys[0]).hexdigest()[:12]
                self._fernet = fernet.MultiFernet([fernet.Fernet(key) for key in keys])
            return self._fernet

    def _keys(self) -> list[bytes]:
        if self._configured is not None:
            parts = [p.strip() for p in self._configured.get_secret_value().split(",")]
            if not any(parts):
                raise InvalidInput("MODELCYCLE_SECRET_KEY is empty; unset it or give a key")
            return [_as_fernet_key(part) for part in parts if part]
        return [_as_fernet_key(_key_file(self._home / KEY_FILE))]


def _key_file(path: Path) -> str:
    """The key in ``path``, written there once (mode 0600) when the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private file, then linked into place: two processes
        # starting at once agree on one key, and no one reads a half-written file.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(generate_key() + "\n")
        try:
            os.link(temporary, path)
            log.warning("generated the key that encrypts secrets: %s (back it up)", path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s is readable by other users; run: chmod 600 %s", path, path)
    return path.read_text(encoding="ascii").strip()


def _fingerprint(value: str) -> str:
    return "…" + value[-_SHOWN_TAIL:] if len(value) >= _MIN_FOR_TAIL else "…"


def _info(row: SecretRow) -> SecretInfo:
    return SecretInfo(
        name=row.name,
        fingerprint=row.fingerprint,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


class Secrets:
    """Set, list and delete secrets (admins); ``reveal`` them to backends at request time."""

    def __init__(
        self,
        store: Store,
        cipher: SecretCipher,
        *,
        ttl_s: float = REVEAL_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._cipher = cipher
        self._ttl_s, self._clock = ttl_s, clock
        self._revealed: dict[tuple[int, str], tuple[float, str]] = {}

    def put(self, principal: Principal, name: str, value: str) -> SecretInfo:
        """Create or replace the secret ``name`` of the caller's project (admins)."""
        require(principal, Role.ADMIN)
        token = self._cipher.encrypt(value)
        key_id = self._cipher.key_id
        with self._store.write() as session:
            row = session.execute(
                select(SecretRow)
                .where(SecretRow.project_id == principal.project_id, SecretRow.name == name)
                .with_for_update()
            ).scalar_one_or_none()
            action = "secret.update" if row is not None else "secret.create"
            if row is None:
                row = SecretRow(
                    project_id=principal.project_id, name=name, created_by=principal.actor
                )
            row.ciphertext, row.key_id, row.fingerprint = token, key_id, _fingerprint(value)
            row.updated_by, row.updated_at = principal.actor, utcnow()
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError as exc:  # created concurrently (PostgreSQL)
                raise Conflict(f"secret '{name}' was created concurrently; try again") from exc
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action=action,
                    target=f"secret:{name}",
                    project=principal.project,
                    after={"name": name, "key_id": key_id},
                ),
            )
            info = _info(row)
        self._revealed.pop((principal.project_id, name), None)
        return info

    def list_secrets(self, principal: Principal) -> list[SecretInfo]:
        """The secrets of the caller's project, by name (maintainers may read names)."""
        require(principal, Role.MAINTAINER)
        with self._store.read() as session:
            rows = session.execute(
                select(SecretRow)
                .where(SecretRow.project_id == principal.project_id)
                .order_by(SecretRow.name)
            ).scalars()
            return [_info(row) for row in rows]

    def get(self, principal: Principal, name: str) -> SecretInfo:
        """One secret's metadata."""
        require(principal, Role.MAINTAINER)
        with self._store.read() as session:
            return _info(self._find(session, principal.project_id, name))

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a secret; versions that name it fail at request time until it is set again."""
        require(principal, Role.ADMIN)
        with self._store.write() as session:
            row = self._find(session, principal.project_id, name)
            session.delete(row)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="secret.delete",
                    target=f"secret:{name}",
                    project=principal.project,
                    before={"name": name},
                ),
            )
        self._revealed.pop((principal.project_id, name), None)

    async def reveal(self, project_id: int, name: str) -> str:
        """The value of a project's secret (for a backend's request); ``NotFound`` if none."""
        key = (project_id, name)
        cached = self._revealed.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        value = await asyncio.to_thread(self._read, project_id, name)
        self._revealed[key] = (self._clock() + self._ttl_s, value)
        return value

    def _read(self, project_id: int, name: str) -> str:
        with self._store.read() as session:
            row = self._find(session, project_id, name)
            token = row.ciphertext
        return self._cipher.decrypt(token, name)

    @staticmethod
    def _find(session: Any, project_id: int, name: str) -> SecretRow:
        row: SecretRow | None = session.execute(
            select(SecretRow).where(SecretRow.project_id == project_id, SecretRow.name == name)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(
                f"secret '{name}' not found; list secrets with: modelcycle secrets list",
                code="secret_not_found",
            )
        return row
