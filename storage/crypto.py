"""Encryption at rest for stored secrets (AES-256-GCM).

Keys come from configuration (`TT_BOT_ENCRYPTION_KEYS`), never from the database:
``"<key id>:<base64 32-byte key>[,<key id>:<base64 key>...]"``; the first key is the
active one (new secrets are encrypted with it), the others stay available for reading
until `CredentialsRepository.rotate` has re-encrypted everything with the active key.

Stored format: ``v1:<key id>:<urlsafe-base64(12-byte nonce || ciphertext || tag)>``. The
key id in the value tells which key to use. The associated data binds each ciphertext to
its row and field (guild, user, environment, field name), so a value copied into another
row or column fails authentication instead of decrypting as someone else's secret.
Nothing here ever puts key material or plaintext into an exception message or repr.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from collections.abc import Mapping
from typing import Final, NoReturn, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import DecryptionError, EncryptionKeyMissingError, InvalidValueError

KEYS_ENV_VAR: Final = "TT_BOT_ENCRYPTION_KEYS"
GENERATE_KEY_COMMAND: Final = (
    "python -c \"import base64, os; print('k1:' + "
    'base64.urlsafe_b64encode(os.urandom(32)).decode())"'
)
MISSING_KEY_MESSAGE: Final = (
    f"no encryption key is configured, so credentials cannot be stored or read; set "
    f"{KEYS_ENV_VAR}=<key id>:<base64 32-byte key> (generate one with: "
    f"{GENERATE_KEY_COMMAND}) and restart"
)

_FORMAT_VERSION: Final = "v1"
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class Revealable(Protocol):
    """Anything holding a secret string (`storage.Secret`, `broker.secrets.Secret`...)."""

    def reveal(self) -> str: ...


class Secret:
    """A decrypted secret: `str()`, `repr()` and formatting give ``'***'``; `reveal()` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        value: str = object.__getattribute__(self, "_value")
        return value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")


def reveal(value: str | Revealable) -> str:
    return value if isinstance(value, str) else value.reveal()


def generate_key_entry(key_id: str = "k1") -> str:
    """A fresh ``<key id>:<base64 key>`` entry for `TT_BOT_ENCRYPTION_KEYS`."""
    _check_key_id(key_id)
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode()}"


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise InvalidValueError(
            f"invalid encryption key id {key_id!r}: use 1-32 letters, digits, '_', '-' or '.'"
        )


def _decode_key(key_id: str, text: str) -> bytes:
    normalized = text.strip().replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        raw = base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValueError(
            f"encryption key {key_id!r} in {KEYS_ENV_VAR} is not valid base64"
        ) from None
    if len(raw) != _KEY_BYTES:
        raise InvalidValueError(
            f"encryption key {key_id!r} in {KEYS_ENV_VAR} must decode to {_KEY_BYTES} bytes "
            f"(got {len(raw)}); generate one with: {GENERATE_KEY_COMMAND}"
        )
    return raw


class Keyring:
    """Ordered encryption keys: the first is active, the rest are kept for decryption."""

    __slots__ = ("_ciphers", "_order")

    def __init__(self, keys: Mapping[str, bytes] | None = None) -> None:
        order: list[str] = []
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in (keys or {}).items():
            _check_key_id(key_id)
            if len(key) != _KEY_BYTES:
                raise InvalidValueError(f"encryption key {key_id!r} must be {_KEY_BYTES} bytes")
            order.append(key_id)
            ciphers[key_id] = AESGCM(key)
        self._order: tuple[str, ...] = tuple(order)
        self._ciphers = ciphers

    @classmethod
    def from_config(cls, text: str | None) -> Keyring:
        """Parse ``"id:base64key,id2:base64key"``; an empty or missing value gives no keys."""
        keys: dict[str, bytes] = {}
        for entry in (text or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not encoded.strip():
                raise InvalidValueError(
                    f"{KEYS_ENV_VAR} entries must look like <key id>:<base64 key>; "
                    f"generate one with: {GENERATE_KEY_COMMAND}"
                )
            _check_key_id(key_id)
            if key_id in keys:
                raise InvalidValueError(f"encryption key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(key_id, encoded)
        return cls(keys)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        env = os.environ if environ is None else environ
        return cls.from_config(env.get(KEYS_ENV_VAR))

    @property
    def configured(self) -> bool:
        return bool(self._order)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self._order

    @property
    def active_key_id(self) -> str:
        if not self._order:
            raise EncryptionKeyMissingError(MISSING_KEY_MESSAGE)
        return self._order[0]

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._order)!r})"

    def encrypt(self, plaintext: str, associated_data: str) -> str:
        key_id = self.active_key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext.encode(), _aad(associated_data))
        return f"{_FORMAT_VERSION}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, associated_data: str) -> str:
        key_id = self.require_key_for(stored)
        nonce, sealed = _split_payload(stored)
        try:
            plain = self._ciphers[key_id].decrypt(nonce, sealed, _aad(associated_data))
        except InvalidTag:
            raise DecryptionError(
                f"stored secret ({associated_data}) failed authentication with key "
                f"{key_id!r}: the key material differs from the one used to encrypt, the "
                "value was tampered with, or it was copied from another row"
            ) from None
        return plain.decode()

    def require_key_for(self, stored: str) -> str:
        """The key id a stored value names, if this keyring holds it (else a clear error)."""
        if not self._order:
            raise EncryptionKeyMissingError(MISSING_KEY_MESSAGE)
        key_id = key_id_of(stored)
        if key_id not in self._ciphers:
            raise DecryptionError(
                f"stored secret was encrypted with key id {key_id!r}, which is not in "
                f"{KEYS_ENV_VAR} (configured: {', '.join(self._order)}); add that key back "
                "after the active one, or relink the account"
            )
        return key_id


def key_id_of(stored: str) -> str:
    parts = stored.split(":", 2)
    if len(parts) != 3 or parts[0] != _FORMAT_VERSION or not _KEY_ID.fullmatch(parts[1]):
        raise DecryptionError(
            "stored secret is malformed (expected v1:<key id>:<data>); relink the account"
        )
    return parts[1]


def _split_payload(stored: str) -> tuple[bytes, bytes]:
    encoded = stored.split(":", 2)[2]
    try:
        raw = base64.urlsafe_b64decode(encoded.encode())
    except (binascii.Error, ValueError):
        raise DecryptionError(
            "stored secret is malformed (bad base64); relink the account"
        ) from None
    if len(raw) <= _NONCE_BYTES + 16:
        raise DecryptionError("stored secret is malformed (too short); relink the account")
    return raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]


def _aad(associated_data: str) -> bytes:
    return f"tt-bot:{_FORMAT_VERSION}:{associated_data}".encode()
