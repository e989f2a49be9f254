"""`python -m storage`: key generation and key rotation (run in-process)."""

import asyncio
from pathlib import Path

import pytest

from storage import KEYS_ENV_VAR, Database, Keyring, generate_key_entry
from storage.__main__ import main


def test_generate_key_prints_a_usable_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-key", "--key-id", "k9"]) == 0
    entry = capsys.readouterr().out.strip()
    assert Keyring.from_config(entry).active_key_id == "k9"


def test_rotate_keys_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bot.sqlite3"
    old_entry, new_entry = generate_key_entry("old"), generate_key_entry("new")

    async def seed() -> None:
        async with await Database.open(path, keyring=Keyring.from_config(old_entry)) as db:
            await db.guilds.get_or_create(1, "sandbox")
            await db.credentials.store(1, "sandbox", "secret-value", "token-value")

    async def load_with_new_key_only() -> str:
        async with await Database.open(path, keyring=Keyring.from_config(new_entry)) as db:
            stored = await db.credentials.load(1, "sandbox")
            assert stored is not None
            return stored.refresh_token.reveal()

    asyncio.run(seed())
    monkeypatch.setenv(KEYS_ENV_VAR, f"{new_entry},{old_entry}")
    assert main(["rotate-keys", "--db", str(path)]) == 0
    assert "re-encrypted 1 credential(s)" in capsys.readouterr().out
    assert asyncio.run(load_with_new_key_only()) == "token-value"


def test_rotate_keys_without_keys_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bot.sqlite3"
    path.touch()
    monkeypatch.delenv(KEYS_ENV_VAR, raising=False)
    assert main(["rotate-keys", "--db", str(path)]) == 1
    assert KEYS_ENV_VAR in capsys.readouterr().err
    assert main(["rotate-keys", "--db", str(tmp_path / "missing.db")]) == 2
