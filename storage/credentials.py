"""Tastytrade credentials (OAuth provider secret + refresh token), encrypted at rest.

One credential per (guild, optional user, environment). Both secrets are encrypted with
the keyring's active key (`storage.crypto`); the associated data names the guild, user,
environment and field, so a ciphertext moved to another row or column will not decrypt.
Without a configured key, storing and loading refuse with `EncryptionKeyMissingError`,
whose message explains how to set `TT_BOT_ENCRYPTION_KEYS`. Decrypted values come back
wrapped in `Secret` (repr ``'***'``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.crypto import (
    MISSING_KEY_MESSAGE,
    Keyring,
    Revealable,
    Secret,
    reveal,
)
from storage.errors import EncryptionKeyMissingError, InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from storage.database import Database

_GUILD_WIDE: Final = 0  # user_id stored for a guild-wide credential


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    guild_id: int
    user_id: int | None
    environment: str
    provider_secret: Secret
    refresh_token: Secret
    key_id: str
    needs_relink: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    """What can be said about a credential without decrypting it."""

    guild_id: int
    user_id: int | None
    environment: str
    key_id: str
    needs_relink: bool
    updated_at: datetime


def _aad(guild_id: int, user_id: int, environment: str, field: str) -> str:
    return f"credentials/guild={guild_id}/user={user_id}/env={environment}/{field}"


def _user(user_id: int | None) -> int:
    if user_id is not None and user_id <= 0:
        raise InvalidValueError(f"user id must be a positive Discord id, got {user_id}")
    return _GUILD_WIDE if user_id is None else user_id


class CredentialsRepository:
    def __init__(self, db: Database, keyring: Keyring) -> None:
        self._db = db
        self._keyring = keyring

    def _require_keys(self, keyring: Keyring) -> None:
        if not keyring.configured:
            raise EncryptionKeyMissingError(MISSING_KEY_MESSAGE)

    async def store(
        self,
        guild_id: int,
        environment: str,
        provider_secret: str | Revealable,
        refresh_token: str | Revealable,
        *,
        user_id: int | None = None,
    ) -> CredentialStatus:
        """Encrypt and save (insert or replace) a credential; clears `needs_relink`."""
        self._require_keys(self._keyring)
        env = codec.environment(environment)
        user = _user(user_id)
        secret_text, token_text = reveal(provider_secret), reveal(refresh_token)
        if not secret_text or not token_text:
            raise InvalidValueError("provider secret and refresh token must both be non-empty")
        now = codec.ts(self._db.clock(), "now")
        key_id = self._keyring.active_key_id
        await self._db.execute(
            "INSERT INTO credentials (guild_id, user_id, environment, provider_secret, "
            "refresh_token, key_id, needs_relink, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) "
            "ON CONFLICT (guild_id, user_id, environment) DO UPDATE SET "
            "provider_secret = excluded.provider_secret, refresh_token = excluded.refresh_token, "
            "key_id = excluded.key_id, needs_relink = 0, updated_at = excluded.updated_at",
            (
                guild_id,
                user,
                env,
                self._keyring.encrypt(secret_text, _aad(guild_id, user, env, "provider_secret")),
                self._keyring.encrypt(token_text, _aad(guild_id, user, env, "refresh_token")),
                key_id,
                now,
                now,
            ),
        )
        status = await self.status(guild_id, env, user_id=user_id)
        assert status is not None  # just written
        return status

    async def load(
        self, guild_id: int, environment: str, *, user_id: int | None = None
    ) -> StoredCredentials | None:
        """Decrypt the credential, or None when none is stored."""
        env = codec.environment(environment)
        user = _user(user_id)
        row = await self._db.fetch_one(
            "SELECT provider_secret, refresh_token, key_id, needs_relink, created_at, "
            "updated_at FROM credentials WHERE guild_id = ? AND user_id = ? AND environment = ?",
            (guild_id, user, env),
        )
        if row is None:
            return None
        self._require_keys(self._keyring)
        return StoredCredentials(
            guild_id=guild_id,
            user_id=user_id,
            environment=env,
            provider_secret=Secret(
                self._keyring.decrypt(
                    row["provider_secret"], _aad(guild_id, user, env, "provider_secret")
                )
            ),
            refresh_token=Secret(
                self._keyring.decrypt(
                    row["refresh_token"], _aad(guild_id, user, env, "refresh_token")
                )
            ),
            key_id=row["key_id"],
            needs_relink=bool(row["needs_relink"]),
            created_at=codec.from_ts(row["created_at"]),
            updated_at=codec.from_ts(row["updated_at"]),
        )

    async def status(
        self, guild_id: int, environment: str, *, user_id: int | None = None
    ) -> CredentialStatus | None:
        """Metadata only (no decryption, works without keys)."""
        row = await self._db.fetch_one(
            "SELECT guild_id, user_id, environment, key_id, needs_relink, updated_at "
            "FROM credentials WHERE guild_id = ? AND user_id = ? AND environment = ?",
            (guild_id, _user(user_id), codec.environment(environment)),
        )
        return None if row is None else _status(row)

    async def for_guild(self, guild_id: int) -> list[CredentialStatus]:
        rows = await self._db.fetch_all(
            "SELECT guild_id, user_id, environment, key_id, needs_relink, updated_at "
            "FROM credentials WHERE guild_id = ? ORDER BY environment, user_id",
            (guild_id,),
        )
        return [_status(row) for row in rows]

    async def delete(self, guild_id: int, environment: str, *, user_id: int | None = None) -> bool:
        """Remove a credential (unlink); True if one existed."""
        changed = await self._db.execute(
            "DELETE FROM credentials WHERE guild_id = ? AND user_id = ? AND environment = ?",
            (guild_id, _user(user_id), codec.environment(environment)),
        )
        return changed > 0

    async def mark_needs_relink(
        self, guild_id: int, environment: str, *, user_id: int | None = None
    ) -> None:
        """Flag a credential whose refresh token was revoked or expired."""
        changed = await self._db.execute(
            "UPDATE credentials SET needs_relink = 1, updated_at = ? "
            "WHERE guild_id = ? AND user_id = ? AND environment = ?",
            (
                codec.ts(self._db.clock(), "now"),
                guild_id,
                _user(user_id),
                codec.environment(environment),
            ),
        )
        if changed == 0:
            raise NotFoundError(f"guild {guild_id} has no {environment} credential to flag")

    async def rotate(self, keyring: Keyring | None = None) -> int:
        """Re-encrypt every secret not under the active key with it; return rows rewritten.

        Uses `keyring` (default: the one this database was opened with), which must hold
        the active key plus every key id still present in the table. All-or-nothing: on any
        error nothing is rewritten.
        """
        ring = self._keyring if keyring is None else keyring
        self._require_keys(ring)
        active = ring.active_key_id
        async with self._db.transaction():
            rows = await self._db.fetch_all(
                "SELECT id, guild_id, user_id, environment, provider_secret, refresh_token "
                "FROM credentials WHERE key_id != ?1 "
                "OR substr(provider_secret, 1, length(?2)) != ?2 "
                "OR substr(refresh_token, 1, length(?2)) != ?2",
                (active, f"v1:{active}:"),
            )
            now = codec.ts(self._db.clock(), "now")
            updates = [(*_reencrypt(ring, row), active, now, row["id"]) for row in rows]
            await self._db.execute_many(
                "UPDATE credentials SET provider_secret = ?, refresh_token = ?, key_id = ?, "
                "updated_at = ? WHERE id = ?",
                updates,
            )
        return len(updates)


def _reencrypt(ring: Keyring, row: sqlite3.Row) -> tuple[str, str]:
    guild, user, env = row["guild_id"], row["user_id"], row["environment"]
    secret_aad = _aad(guild, user, env, "provider_secret")
    token_aad = _aad(guild, user, env, "refresh_token")
    return (
        ring.encrypt(ring.decrypt(row["provider_secret"], secret_aad), secret_aad),
        ring.encrypt(ring.decrypt(row["refresh_token"], token_aad), token_aad),
    )


def _status(row: sqlite3.Row) -> CredentialStatus:
    return CredentialStatus(
        guild_id=row["guild_id"],
        user_id=None if row["user_id"] == _GUILD_WIDE else row["user_id"],
        environment=row["environment"],
        key_id=row["key_id"],
        needs_relink=bool(row["needs_relink"]),
        updated_at=codec.from_ts(row["updated_at"]),
    )
