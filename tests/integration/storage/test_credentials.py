"""Credentials encrypted at rest: round trip, refusals, tampering, rotation, file bytes."""

import sqlite3
from pathlib import Path

import pytest

from storage import (
    Database,
    DecryptionError,
    EncryptionKeyMissingError,
    InvalidValueError,
    Keyring,
    NotFoundError,
    Secret,
    StorageError,
    generate_key_entry,
)

PROVIDER_SECRET = "provider-secret-8d1f6a0c"
REFRESH_TOKEN = "refresh-token-5c2e9b7a41f3"


async def _raw_row(db: Database, guild_id: int, environment: str) -> sqlite3.Row:
    row = await db.fetch_one(
        "SELECT * FROM credentials WHERE guild_id = ? AND environment = ?",
        (guild_id, environment),
    )
    assert row is not None
    return row


async def test_round_trip_returns_wrapped_secrets(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    status = await db.credentials.store(1, "sandbox", PROVIDER_SECRET, Secret(REFRESH_TOKEN))
    assert status.key_id == "k1" and status.needs_relink is False
    loaded = await db.credentials.load(1, "sandbox")
    assert loaded is not None
    assert loaded.provider_secret.reveal() == PROVIDER_SECRET
    assert loaded.refresh_token.reveal() == REFRESH_TOKEN
    assert PROVIDER_SECRET not in repr(loaded) and REFRESH_TOKEN not in repr(loaded)
    assert await db.credentials.load(1, "live") is None


async def test_user_and_guild_credentials_are_separate(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", "guild-secret", "guild-token")
    await db.credentials.store(1, "sandbox", "user-secret", "user-token", user_id=55)
    guild_wide = await db.credentials.load(1, "sandbox")
    personal = await db.credentials.load(1, "sandbox", user_id=55)
    assert guild_wide is not None and personal is not None
    assert guild_wide.refresh_token.reveal() == "guild-token"
    assert personal.refresh_token.reveal() == "user-token" and personal.user_id == 55
    assert [(s.user_id, s.environment) for s in await db.credentials.for_guild(1)] == [
        (None, "sandbox"),
        (55, "sandbox"),
    ]


async def test_store_replaces_and_clears_relink(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", "a", "b")
    await db.credentials.mark_needs_relink(1, "sandbox")
    status = await db.credentials.status(1, "sandbox")
    assert status is not None and status.needs_relink
    await db.credentials.store(1, "sandbox", "a2", "b2")
    loaded = await db.credentials.load(1, "sandbox")
    assert loaded is not None and not loaded.needs_relink
    assert loaded.refresh_token.reveal() == "b2"
    assert len(await db.credentials.for_guild(1)) == 1


async def test_delete_and_mark_unknown(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", "a", "b")
    assert await db.credentials.delete(1, "sandbox") is True
    assert await db.credentials.delete(1, "sandbox") is False
    with pytest.raises(NotFoundError):
        await db.credentials.mark_needs_relink(1, "sandbox")


async def test_credentials_need_the_guild_row(db: Database) -> None:
    with pytest.raises(StorageError, match="must be stored first"):
        await db.credentials.store(404, "sandbox", "a", "b")


async def test_empty_secrets_are_refused(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    with pytest.raises(InvalidValueError, match="non-empty"):
        await db.credentials.store(1, "sandbox", "", "b")


async def test_no_key_refuses_to_store_with_instructions(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "nokey.db") as db:
        await db.guilds.get_or_create(1, "sandbox")
        with pytest.raises(EncryptionKeyMissingError) as excinfo:
            await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
        message = str(excinfo.value)
        assert "TT_BOT_ENCRYPTION_KEYS" in message and "os.urandom(32)" in message
        assert PROVIDER_SECRET not in message
        assert await db.credentials.for_guild(1) == []


async def test_no_key_refuses_to_load_stored_credentials(db_path: Path, keyring: Keyring) -> None:
    async with await Database.open(db_path, keyring=keyring) as db:
        await db.guilds.get_or_create(1, "sandbox")
        await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
    async with await Database.open(db_path) as db:
        with pytest.raises(EncryptionKeyMissingError):
            await db.credentials.load(1, "sandbox")
        status = await db.credentials.status(1, "sandbox")  # metadata needs no key
        assert status is not None and status.key_id == "k1"


async def test_wrong_key_material_is_a_clear_error(db_path: Path, keyring: Keyring) -> None:
    async with await Database.open(db_path, keyring=keyring) as db:
        await db.guilds.get_or_create(1, "sandbox")
        await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
    other = Keyring.from_config(generate_key_entry("k1"))
    async with await Database.open(db_path, keyring=other) as db:
        with pytest.raises(DecryptionError, match="failed authentication with key 'k1'") as exc:
            await db.credentials.load(1, "sandbox")
        assert REFRESH_TOKEN not in str(exc.value)


async def test_tampered_ciphertext_is_detected(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
    row = await _raw_row(db, 1, "sandbox")
    stored: str = row["refresh_token"]
    flipped = stored[:-3] + ("A" if stored[-3] != "A" else "B") + stored[-2:]
    await db.execute("UPDATE credentials SET refresh_token = ? WHERE id = ?", (flipped, row["id"]))
    with pytest.raises(DecryptionError, match="tampered"):
        await db.credentials.load(1, "sandbox")


async def test_ciphertext_swapped_between_rows_does_not_decrypt(db: Database) -> None:
    for guild in (1, 2):
        await db.guilds.get_or_create(guild, "sandbox")
        await db.credentials.store(guild, "sandbox", f"secret-{guild}", f"token-{guild}")
    row_1 = await _raw_row(db, 1, "sandbox")
    row_2 = await _raw_row(db, 2, "sandbox")
    await db.execute(
        "UPDATE credentials SET refresh_token = ? WHERE id = ?",
        (row_1["refresh_token"], row_2["id"]),
    )
    with pytest.raises(DecryptionError, match="copied from another row"):
        await db.credentials.load(2, "sandbox")


async def test_ciphertext_swapped_between_fields_does_not_decrypt(db: Database) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
    row = await _raw_row(db, 1, "sandbox")
    await db.execute(
        "UPDATE credentials SET provider_secret = refresh_token, refresh_token = provider_secret "
        "WHERE id = ?",
        (row["id"],),
    )
    with pytest.raises(DecryptionError):
        await db.credentials.load(1, "sandbox")


async def test_rotation_reencrypts_everything_with_the_active_key(
    db_path: Path, keyring: Keyring
) -> None:
    old_entry = generate_key_entry("k1")
    old = Keyring.from_config(old_entry)
    async with await Database.open(db_path, keyring=old) as db:
        for guild in (1, 2, 3):
            await db.guilds.get_or_create(guild, "sandbox")
            await db.credentials.store(guild, "sandbox", f"secret-{guild}", f"token-{guild}")
    new_entry = generate_key_entry("k2")
    rotated = Keyring.from_config(f"{new_entry},{old_entry}")
    async with await Database.open(db_path, keyring=rotated) as db:
        assert await db.credentials.rotate() == 3
        assert await db.credentials.rotate() == 0  # nothing left on the old key
        rows = await db.fetch_all("SELECT key_id, provider_secret, refresh_token FROM credentials")
        assert all(row["key_id"] == "k2" for row in rows)
        assert all(row[1].startswith("v1:k2:") and row[2].startswith("v1:k2:") for row in rows)
    # The old key can now be removed from the configuration.
    only_new = Keyring.from_config(new_entry)
    async with await Database.open(db_path, keyring=only_new) as db:
        for guild in (1, 2, 3):
            loaded = await db.credentials.load(guild, "sandbox")
            assert loaded is not None and loaded.refresh_token.reveal() == f"token-{guild}"


async def test_rotation_without_an_old_key_changes_nothing(db_path: Path) -> None:
    async with await Database.open(
        db_path, keyring=Keyring.from_config(generate_key_entry("k1"))
    ) as db:
        await db.guilds.get_or_create(1, "sandbox")
        await db.credentials.store(1, "sandbox", "s", "t")
        before = await db.fetch_all("SELECT refresh_token FROM credentials")
        with pytest.raises(DecryptionError, match="key id 'k1'"):
            await db.credentials.rotate(Keyring.from_config(generate_key_entry("k2")))
        after = await db.fetch_all("SELECT refresh_token FROM credentials")
        assert [r[0] for r in before] == [r[0] for r in after]


async def test_no_plaintext_secret_in_the_database_files(db: Database, db_path: Path) -> None:
    await db.guilds.get_or_create(1, "sandbox")
    await db.credentials.store(1, "sandbox", PROVIDER_SECRET, REFRESH_TOKEN)
    await db.credentials.store(1, "live", PROVIDER_SECRET + "-live", REFRESH_TOKEN + "-live")
    await db.audit.record(
        "linked",
        guild_id=1,
        details={"refresh_token": REFRESH_TOKEN, "nested": {"provider_secret": PROVIDER_SECRET}},
    )
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    assert any(p.name.endswith("-wal") for p in files)  # the WAL is checked before checkpoint
    _assert_absent(files)
    await db.checkpoint()
    _assert_absent([p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)])


def _assert_absent(files: list[Path]) -> None:
    for path in files:
        data = path.read_bytes()
        for secret in (PROVIDER_SECRET, REFRESH_TOKEN):
            assert secret.encode() not in data, f"plaintext secret found in {path.name}"
