"""Keyring parsing, AES-GCM round trips and the clear errors around them."""

import base64
import os

import pytest

from storage.crypto import (
    GENERATE_KEY_COMMAND,
    KEYS_ENV_VAR,
    Keyring,
    Secret,
    generate_key_entry,
)
from storage.errors import DecryptionError, EncryptionKeyMissingError, InvalidValueError

AAD = "credentials/guild=1/user=0/env=paper/refresh_token"


def test_round_trip_with_key_id_in_the_value() -> None:
    ring = Keyring.from_config(generate_key_entry("k1"))
    stored = ring.encrypt("refresh-abc", AAD)
    assert stored.startswith("v1:k1:")
    assert "refresh-abc" not in stored
    assert ring.decrypt(stored, AAD) == "refresh-abc"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    ring = Keyring.from_config(generate_key_entry("k1"))
    assert ring.encrypt("same", AAD) != ring.encrypt("same", AAD)


def test_first_key_is_active_and_older_keys_still_decrypt() -> None:
    old_entry, new_entry = generate_key_entry("old"), generate_key_entry("new")
    stored = Keyring.from_config(old_entry).encrypt("value", AAD)
    ring = Keyring.from_config(f"{new_entry}, {old_entry}")
    assert ring.active_key_id == "new"
    assert ring.key_ids == ("new", "old")
    assert ring.decrypt(stored, AAD) == "value"


def test_associated_data_mismatch_fails_authentication() -> None:
    ring = Keyring.from_config(generate_key_entry("k1"))
    stored = ring.encrypt("value", AAD)
    with pytest.raises(DecryptionError, match="copied from another row"):
        ring.decrypt(stored, AAD.replace("guild=1", "guild=2"))


def test_same_key_id_with_different_material_fails_authentication() -> None:
    stored = Keyring.from_config(generate_key_entry("k1")).encrypt("value", AAD)
    with pytest.raises(DecryptionError, match="failed authentication with key 'k1'"):
        Keyring.from_config(generate_key_entry("k1")).decrypt(stored, AAD)


def test_unknown_key_id_names_the_missing_key() -> None:
    stored = Keyring.from_config(generate_key_entry("gone")).encrypt("value", AAD)
    ring = Keyring.from_config(generate_key_entry("k1"))
    with pytest.raises(DecryptionError, match=r"key id 'gone', which is not in TT_BOT"):
        ring.decrypt(stored, AAD)


@pytest.mark.parametrize("stored", ["plain", "v2:k1:abc", "v1:k1:!!!", "v1:k1:QUJD"])
def test_malformed_values_are_reported(stored: str) -> None:
    ring = Keyring.from_config(generate_key_entry("k1"))
    with pytest.raises(DecryptionError, match="malformed"):
        ring.decrypt(stored, AAD)


def test_no_keys_refuses_with_instructions() -> None:
    ring = Keyring.from_config("")
    assert not ring.configured
    with pytest.raises(EncryptionKeyMissingError) as excinfo:
        ring.encrypt("value", AAD)
    message = str(excinfo.value)
    assert KEYS_ENV_VAR in message
    assert GENERATE_KEY_COMMAND in message


def test_generate_command_in_the_hint_produces_a_valid_entry() -> None:
    # The hint's one-liner is what an operator pastes: it must yield a usable key.
    entry = "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
    assert Keyring.from_config(entry).active_key_id == "k1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("k1", "<key id>:<base64 key>"),
        ("k1:", "<key id>:<base64 key>"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "invalid encryption key id"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "must decode to 32 bytes"),
        ("k1:%%%%", "not valid base64"),
    ],
)
def test_bad_configuration_is_explained(config: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        Keyring.from_config(config)


def test_duplicate_key_ids_are_refused() -> None:
    entry = generate_key_entry("k1")
    with pytest.raises(InvalidValueError, match="appears twice"):
        Keyring.from_config(f"{entry},{entry}")


def test_standard_and_unpadded_base64_are_accepted() -> None:
    raw = os.urandom(32)
    assert Keyring.from_config("a:" + base64.b64encode(raw).decode()).configured
    assert Keyring.from_config("a:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")).configured


def test_reprs_never_show_key_material_or_secrets() -> None:
    entry = generate_key_entry("k1")
    ring = Keyring.from_config(entry)
    assert entry.split(":", 1)[1] not in repr(ring)
    assert repr(ring) == "Keyring(key_ids=['k1'])"
    secret = Secret("refresh-abc")
    assert repr(secret) == "'***'" and str(secret) == "***" and f"{secret}" == "***"
    assert secret.reveal() == "refresh-abc"


def test_from_environ_reads_the_variable() -> None:
    entry = generate_key_entry("env1")
    assert Keyring.from_environ({KEYS_ENV_VAR: entry}).active_key_id == "env1"
    assert not Keyring.from_environ({}).configured
