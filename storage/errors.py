"""Exceptions raised by `storage`.

Every failure leaves `storage` as a `StorageError` (or a subclass) whose message says what
went wrong and, where it can, how to fix it. Messages never contain secret values: sqlite
errors name tables and columns only, and the crypto layer reports key ids, never key bytes
or plaintext.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class for every error raised by the storage layer."""


class InvalidValueError(StorageError, ValueError):
    """A value handed to the storage layer is malformed (naive datetime, float money...)."""


class NotFoundError(StorageError, LookupError):
    """The record an update refers to does not exist."""


class DuplicateError(StorageError):
    """A record with the same unique key already exists."""


class DatabaseInUseError(StorageError):
    """Another `Database` in this process already owns the file."""


class EncryptionKeyMissingError(StorageError):
    """Secrets cannot be stored or read because no encryption key is configured."""


class DecryptionError(StorageError):
    """A stored secret cannot be decrypted (unknown key id, wrong key, tampered or moved)."""
