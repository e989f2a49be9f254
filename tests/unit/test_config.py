"""bot.config: defaults, .env loading, and errors that name the variable but never a secret."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bot.config import ConfigError, Secret, load_config
from broker.session import Environment, Timeouts

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OLD_KEY = base64.b64encode(bytes(range(1, 33))).decode()
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123"

FULL = {
    "DISCORD_TOKEN": DISCORD_TOKEN,
    "DISCORD_OWNER_IDS": "123456789012345678, 234567890123456789",
    "DISCORD_DEV_GUILD_ID": "345678901234567890",
    "TT_SANDBOX_PROVIDER_SECRET": "sandbox-provider-secret-value",
    "TT_SANDBOX_REFRESH_TOKEN": "sandbox-refresh-token-value",
    "TT_LIVE_PROVIDER_SECRET": "live-provider-secret-value",
    "TT_LIVE_REFRESH_TOKEN": "live-refresh-token-value",
    "TT_LIVE_CONFIG_GUILD_IDS": "456789012345678901",
    "TT_BOT_ENCRYPTION_KEYS": f"k2:{KEY},k1:{OLD_KEY}",
    "TT_BOT_DB_PATH": "/tmp/tt-bot-test.db",
    "LOG_FORMAT": "console",
    "LOG_LEVEL": "debug",
    "TT_BOT_DEFAULT_ENVIRONMENT": "Paper",
    "TT_BOT_PAPER_SEED": "11",
    "TT_BOT_SYNC_INTERVAL_SECONDS": "0",
    "TT_BOT_CHASE_INTERVAL_SECONDS": "2.5",
    "TT_BOT_CHASE_TICKS": "3",
    "TT_BOT_CHASE_MAX_STEPS": "5",
    "TT_BOT_TIMEOUT_ORDERS_SECONDS": "12",
    "TT_BOT_TIMEOUT_CHAINS_SECONDS": "30",
}

SECRET_VALUES = [
    DISCORD_TOKEN,
    "sandbox-provider-secret-value",
    "sandbox-refresh-token-value",
    "live-provider-secret-value",
    "live-refresh-token-value",
    KEY,
    OLD_KEY,
]


def _error(environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(environ)
    return info.value


def _assert_no_secret(text: str, *values: str) -> None:
    for value in (*SECRET_VALUES, *values):
        assert value not in text


def test_empty_environment_gives_offline_paper_defaults() -> None:
    config = load_config({})
    assert config.offline and config.discord_token is None
    assert config.discord_owner_ids == frozenset()
    assert config.live_config_guild_ids == frozenset()  # no guild trades live on config creds
    assert config.discord_dev_guild_id is None
    assert config.sandbox_login is None and config.live_login is None
    assert config.default_environment is Environment.PAPER
    assert config.db_path == Path("tt-bot.db")
    assert (config.log_format, config.log_level) == ("json", "INFO")
    assert config.paper_seed == 7
    assert config.sync_interval_seconds == 0  # scheduled sync is off by default
    assert (config.chase_interval_seconds, config.chase_ticks, config.chase_max_steps) == (
        5,
        2,
        3,
    )
    assert config.timeouts == Timeouts()
    assert not config.keyring().configured
    assert config.secrets() == []


def test_full_configuration_is_parsed_and_secrets_are_wrapped() -> None:
    config = load_config(FULL)
    assert isinstance(config.discord_token, Secret)
    assert config.discord_token.reveal() == DISCORD_TOKEN
    assert not config.offline
    assert config.discord_owner_ids == {123456789012345678, 234567890123456789}
    assert config.discord_dev_guild_id == 345678901234567890
    assert config.sandbox_login is not None and config.live_login is not None
    assert config.sandbox_login.refresh_token.reveal() == "sandbox-refresh-token-value"
    assert config.login_for(Environment.LIVE) is config.live_login
    assert config.live_config_guild_ids == {456789012345678901}
    assert config.login_for(Environment.PAPER) is None
    creds = config.sandbox_login.credentials()
    assert creds.environment is Environment.SANDBOX and creds.label == "config:sandbox"
    assert config.keyring().key_ids == ("k2", "k1")
    assert config.db_path == Path("/tmp/tt-bot-test.db")
    assert (config.log_format, config.log_level) == ("console", "DEBUG")
    assert config.default_environment is Environment.PAPER
    assert config.paper_seed == 11
    assert config.sync_interval_seconds == 0
    assert (config.chase_interval_seconds, config.chase_ticks, config.chase_max_steps) == (
        2.5,
        3,
        5,
    )
    assert config.timeouts == Timeouts(orders=12, chains=30)
    assert len(config.secrets()) == 6
    _assert_no_secret(repr(config))


def test_sandbox_credentials_make_sandbox_the_default_environment() -> None:
    config = load_config(
        {"TT_SANDBOX_PROVIDER_SECRET": "provider-abcdef", "TT_SANDBOX_REFRESH_TOKEN": "rt-abcdef"}
    )
    assert config.default_environment is Environment.SANDBOX


def test_live_default_environment_is_refused_with_a_clear_message() -> None:
    error = _error({"TT_BOT_DEFAULT_ENVIRONMENT": "live"})
    assert "TT_BOT_DEFAULT_ENVIRONMENT" in str(error)
    assert "'paper' or 'sandbox'" in str(error)
    assert "real money" in str(error)


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ("TT_SANDBOX_PROVIDER_SECRET", "TT_SANDBOX_REFRESH_TOKEN"),
        ("TT_SANDBOX_REFRESH_TOKEN", "TT_SANDBOX_PROVIDER_SECRET"),
        ("TT_LIVE_PROVIDER_SECRET", "TT_LIVE_REFRESH_TOKEN"),
        ("TT_LIVE_REFRESH_TOKEN", "TT_LIVE_PROVIDER_SECRET"),
    ],
)
def test_half_configured_credential_pairs_are_errors(present: str, missing: str) -> None:
    error = _error({present: "half-pair-secret-value"})
    text = str(error)
    assert text.count("\n  - ") == 1
    assert f"{missing}: is missing but {present} is set" in text
    _assert_no_secret(text, "half-pair-secret-value")


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("DISCORD_OWNER_IDS", "12345678901234567,abc", "numeric Discord user ids"),
        ("DISCORD_DEV_GUILD_ID", "my-server", "numeric id of your test server"),
        ("TT_LIVE_CONFIG_GUILD_IDS", "my-server", "numeric Discord server ids"),
        ("LOG_FORMAT", "xml", "'json'"),
        ("LOG_LEVEL", "loud", "DEBUG, INFO"),
        ("TT_BOT_DEFAULT_ENVIRONMENT", "prod", "'paper' or 'sandbox'"),
        ("TT_BOT_PAPER_SEED", "seven", "whole number"),
        ("TT_BOT_SYNC_INTERVAL_SECONDS", "-1", "at least 0"),
        ("TT_BOT_CHASE_INTERVAL_SECONDS", "0", "greater than 0"),
        ("TT_BOT_CHASE_TICKS", "4", "from 1 to 3"),
        ("TT_BOT_CHASE_TICKS", "0", "from 1 to 3"),
        ("TT_BOT_CHASE_MAX_STEPS", "x", "whole number"),
        ("TT_BOT_TIMEOUT_REFRESH_SECONDS", "inf", "greater than 0"),
        ("TT_BOT_TIMEOUT_READS_SECONDS", "0", "greater than 0"),
    ],
)
def test_invalid_values_name_the_variable_and_the_fix(name: str, value: str, hint: str) -> None:
    error = _error({name: value})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{name}: ")
    assert hint in error.problems[0]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("k1", "<key id>:<base64 key>"),
        ("k1:not base64!!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"k1:{KEY},k1:{OLD_KEY}", "appears twice"),
        (f"bad id!:{KEY}", "invalid encryption key id"),
    ],
)
def test_invalid_encryption_keys_explain_how_to_generate_one(value: str, hint: str) -> None:
    error = _error({"TT_BOT_ENCRYPTION_KEYS": value})
    text = str(error)
    assert "TT_BOT_ENCRYPTION_KEYS" in text
    assert hint in text
    assert "os.urandom(32)" in text
    _assert_no_secret(text)


def test_secret_with_whitespace_is_reported_without_its_value() -> None:
    error = _error({"DISCORD_TOKEN": f"Bot {DISCORD_TOKEN}"})
    text = str(error)
    assert "DISCORD_TOKEN: contains whitespace" in text
    assert "no 'Bot ' prefix" in text
    _assert_no_secret(text)


def test_secret_pasted_into_a_plain_variable_is_not_echoed() -> None:
    environ = {**FULL, "DISCORD_OWNER_IDS": "sandbox-refresh-token-value"}
    text = str(_error(environ))
    assert "DISCORD_OWNER_IDS" in text
    _assert_no_secret(text)


def test_all_problems_are_reported_at_once() -> None:
    error = _error({"LOG_LEVEL": "loud", "TT_BOT_CHASE_TICKS": "9", "TT_LIVE_REFRESH_TOKEN": "abc"})
    names = sorted(problem.split(":")[0] for problem in error.problems)
    assert names == ["LOG_LEVEL", "TT_BOT_CHASE_TICKS", "TT_LIVE_PROVIDER_SECRET"]


def test_env_file_is_loaded_and_real_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "bot.env"
    env_file.write_text(
        "# comment\n"
        "LOG_LEVEL=WARNING\n"
        "TT_BOT_PAPER_SEED=42\n"
        "TT_SANDBOX_PROVIDER_SECRET='quoted-provider-secret'\n"
        "TT_SANDBOX_REFRESH_TOKEN=file-refresh-token\n",
        encoding="utf-8",
    )
    config = load_config({"TT_BOT_ENV_FILE": str(env_file), "TT_BOT_PAPER_SEED": "5"})
    assert config.log_level == "WARNING"
    assert config.paper_seed == 5  # the real environment overrides the file
    assert config.sandbox_login is not None
    assert config.sandbox_login.provider_secret.reveal() == "quoted-provider-secret"


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    error = _error({"TT_BOT_ENV_FILE": str(tmp_path / "nope.env")})
    assert "TT_BOT_ENV_FILE" in str(error)
    assert "does not exist" in str(error)


def test_default_env_file_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("TT_BOT_CHASE_TICKS=2\nDISCORD_OWNER_IDS=\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in [*FULL, "TT_BOT_ENV_FILE"]:
        monkeypatch.delenv(name, raising=False)
    config = load_config()
    assert config.chase_ticks == 2
    assert config.discord_owner_ids == frozenset()


def test_example_env_documents_every_setting() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.env"
    lines = example.read_text(encoding="utf-8").splitlines()
    assigned = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    expected = set(FULL) | {
        "TT_BOT_TIMEOUT_REFRESH_SECONDS",
        "TT_BOT_TIMEOUT_VALIDATE_SECONDS",
        "TT_BOT_TIMEOUT_READS_SECONDS",
    }
    assert assigned == expected
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = index - 1
            while lines[above] and not lines[above].startswith("#"):
                above -= 1  # a pair of related settings shares one comment
            assert lines[above].startswith("#"), f"{line} has no comment above it"
    # The documented example loads as-is (empty values mean "not set").
    config = load_config({"TT_BOT_ENV_FILE": str(example)})
    assert config.offline and config.default_environment is Environment.PAPER
