"""Bot configuration from the environment (and a `.env` file via python-dotenv).

`load_config()` reads every setting once, validates all of them and raises one
`ConfigError` listing each problem: the variable's name and how to fix it, never
a secret's value. Every setting is documented in `config.example.env`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

from dotenv import dotenv_values

from broker.secrets import Secret, redact
from broker.session import Credentials, Environment, Timeouts
from storage.crypto import GENERATE_KEY_COMMAND, Keyring

__all__ = ["Config", "ConfigError", "Secret", "TastytradeLogin", "load_config"]

ENV_FILE_VAR: Final = "TT_BOT_ENV_FILE"
DEFAULT_ENV_FILE: Final = ".env"

#: Variables holding secrets: their values never appear in messages.
SECRET_VARS: Final = frozenset(
    {
        "DISCORD_TOKEN",
        "TT_SANDBOX_PROVIDER_SECRET",
        "TT_SANDBOX_REFRESH_TOKEN",
        "TT_LIVE_PROVIDER_SECRET",
        "TT_LIVE_REFRESH_TOKEN",
        "TT_BOT_ENCRYPTION_KEYS",
    }
)

LogFormat = Literal["json", "console"]
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")


class ConfigError(Exception):
    """One or more settings are missing or invalid. The message never contains secrets."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid configuration:\n{lines}")


@dataclass(frozen=True)
class TastytradeLogin:
    """The bot-wide OAuth credentials for one Tastytrade environment."""

    environment: Environment
    provider_secret: Secret
    refresh_token: Secret

    def credentials(self) -> Credentials:
        return Credentials(
            environment=self.environment,
            provider_secret=self.provider_secret,
            refresh_token=self.refresh_token,
            label=f"config:{self.environment.value}",
        )


@dataclass(frozen=True)
class Config:
    discord_token: Secret | None
    discord_owner_ids: frozenset[int]
    discord_dev_guild_id: int | None
    sandbox_login: TastytradeLogin | None
    live_login: TastytradeLogin | None
    encryption_keys: Secret | None  # raw TT_BOT_ENCRYPTION_KEYS, parsed by keyring()
    db_path: Path
    log_format: LogFormat
    log_level: str
    default_environment: Environment
    paper_seed: int
    sync_interval_seconds: float
    chase_interval_seconds: float
    chase_ticks: int
    chase_max_steps: int
    timeouts: Timeouts
    # Guilds allowed to trade live on the bot's configured live credentials (TT_LIVE_*);
    # every other guild must link its own live credentials first.
    live_config_guild_ids: frozenset[int] = frozenset()

    @property
    def offline(self) -> bool:
        """No Discord token: `make run` starts the offline console instead of connecting."""
        return self.discord_token is None

    def keyring(self) -> Keyring:
        """The encryption keys for stored credentials (empty when none are configured)."""
        return Keyring.from_config(self.encryption_keys.reveal() if self.encryption_keys else None)

    def secrets(self) -> list[Secret]:
        """Every secret value in the configuration, to register with log redaction."""
        values = [self.discord_token, self.encryption_keys]
        for login in (self.sandbox_login, self.live_login):
            if login is not None:
                values += [login.provider_secret, login.refresh_token]
        return [value for value in values if value is not None]

    def login_for(self, environment: Environment) -> TastytradeLogin | None:
        match environment:
            case Environment.SANDBOX:
                return self.sandbox_login
            case Environment.LIVE:
                return self.live_login
        return None


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration.

    With `environ=None` the process environment is used, on top of the `.env`
    file (``TT_BOT_ENV_FILE`` overrides its path; real environment variables win
    over the file). With an explicit mapping only that mapping is used, plus the
    file it names in ``TT_BOT_ENV_FILE``, if any.
    """
    values = _gather(environ)
    reader = _Reader(values)
    config = reader.build()
    if reader.problems:
        # Defence in depth: a secret pasted into the wrong variable must not be echoed either.
        secret_values = [values[name] for name in values if name in SECRET_VARS and values[name]]
        raise ConfigError(
            [f"{name}: {redact(text, secret_values)}" for name, text in reader.problems]
        )
    assert config is not None
    return config


def _gather(environ: Mapping[str, str] | None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    env_file = source.get(ENV_FILE_VAR, "").strip()
    path: Path | None
    if env_file:
        path = Path(env_file).expanduser()
        if not path.is_file():
            raise ConfigError(
                [f"{ENV_FILE_VAR}: the file {str(path)!r} does not exist; fix the path or unset it"]
            )
    else:
        path = Path(DEFAULT_ENV_FILE) if environ is None else None
    from_file: dict[str, str] = {}
    if path is not None and path.is_file():
        from_file = {k: v for k, v in dotenv_values(path).items() if v is not None}
    return {**from_file, **source}


class _Reader:
    """Parses settings one by one, collecting problems instead of stopping at the first."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self.problems: list[tuple[str, str]] = []  # (variable, what is wrong and how to fix it)

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def problem(self, name: str, text: str) -> None:
        self.problems.append((name, text))

    def parse(self, name: str, default: T, parser: Callable[[str], T], how: str) -> T:
        """Parse a non-secret value; `how` says what a valid value looks like."""
        text = self.raw(name)
        if text is None:
            return default
        try:
            return parser(text)
        except ValueError:
            self.problem(name, f"{text!r} is not valid; {how}")
            return default

    def secret(self, name: str, how: str) -> Secret | None:
        text = self.raw(name)
        if text is None:
            return None
        if any(ch.isspace() for ch in text):
            # Never echo the value: it is a secret.
            self.problem(name, f"contains whitespace; {how}")
            return None
        return Secret(text)

    def number(
        self, name: str, default: float, *, minimum: float = 0.0, strictly_positive: bool = False
    ) -> float:
        def parse(text: str) -> float:
            value = float(text)
            if not math.isfinite(value) or value < minimum or (strictly_positive and value <= 0):
                raise ValueError(text)
            return value

        bound = "greater than 0" if strictly_positive else f"at least {minimum:g}"
        return self.parse(name, default, parse, f"use a number of seconds {bound}")

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        def parse(text: str) -> int:
            value = int(text)
            if value < low or (high is not None and value > high):
                raise ValueError(text)
            return value

        how = f"use a whole number from {low} to {high}" if high else f"use a whole number >= {low}"
        return self.parse(name, default, parse, how)

    def login(self, environment: Environment, prefix: str) -> TastytradeLogin | None:
        secret_var, token_var = f"{prefix}_PROVIDER_SECRET", f"{prefix}_REFRESH_TOKEN"
        how = "paste the value exactly as Tastytrade shows it"
        secret = self.secret(secret_var, how)
        token = self.secret(token_var, how)
        if secret is None and token is None:
            return None
        if secret is None or token is None:
            present, missing = (secret_var, token_var) if token is None else (token_var, secret_var)
            if self.raw(missing) is None:
                self.problem(
                    missing,
                    f"is missing but {present} is set; set both (from your Tastytrade OAuth "
                    f"app at my.tastytrade.com > Manage > API) or neither",
                )
            return None
        return TastytradeLogin(environment, secret, token)

    def build(self) -> Config | None:
        discord_token = self.secret(
            "DISCORD_TOKEN",
            "paste only the bot token from the Discord Developer Portal (no 'Bot ' prefix)",
        )
        owner_ids = self.parse(
            "DISCORD_OWNER_IDS",
            frozenset[int](),
            _snowflakes,
            "use comma-separated numeric Discord user ids, e.g. 123456789012345678,234567890123",
        )
        dev_guild = self.parse(
            "DISCORD_DEV_GUILD_ID",
            None,
            _snowflake,
            "use the numeric id of your test server (Developer Mode > right-click > Copy ID)",
        )
        sandbox = self.login(Environment.SANDBOX, "TT_SANDBOX")
        live = self.login(Environment.LIVE, "TT_LIVE")
        live_guilds = self.parse(
            "TT_LIVE_CONFIG_GUILD_IDS",
            frozenset[int](),
            _snowflakes,
            "use comma-separated numeric Discord server ids, e.g. 123456789012345678",
        )
        encryption_keys = self._encryption_keys()
        db_path = Path(self.raw("TT_BOT_DB_PATH") or "./tt-bot.db").expanduser()
        log_format: LogFormat = self.parse(
            "LOG_FORMAT", "json", _log_format, "use 'json' (production) or 'console' (development)"
        )
        log_level = self.parse(
            "LOG_LEVEL", "INFO", _log_level, f"use one of {', '.join(LOG_LEVELS)}"
        )
        default_environment = self._default_environment(sandbox)
        paper_seed = self.parse("TT_BOT_PAPER_SEED", 7, int, "use a whole number, e.g. 7")
        sync_interval = self.number("TT_BOT_SYNC_INTERVAL_SECONDS", 0.0)
        chase_interval = self.number("TT_BOT_CHASE_INTERVAL_SECONDS", 5.0, strictly_positive=True)
        chase_ticks = self.integer("TT_BOT_CHASE_TICKS", 2, 1, 3)
        chase_max_steps = self.integer("TT_BOT_CHASE_MAX_STEPS", 3, 0, 20)
        timeouts = self._timeouts()
        if self.problems or timeouts is None:
            return None
        return Config(
            discord_token=discord_token,
            discord_owner_ids=owner_ids,
            discord_dev_guild_id=dev_guild,
            sandbox_login=sandbox,
            live_login=live,
            encryption_keys=encryption_keys,
            db_path=db_path,
            log_format=log_format,
            log_level=log_level,
            default_environment=default_environment,
            paper_seed=paper_seed,
            sync_interval_seconds=sync_interval,
            chase_interval_seconds=chase_interval,
            chase_ticks=chase_ticks,
            chase_max_steps=chase_max_steps,
            timeouts=timeouts,
            live_config_guild_ids=live_guilds,
        )

    def _encryption_keys(self) -> Secret | None:
        name = "TT_BOT_ENCRYPTION_KEYS"
        text = self.raw(name)
        if text is None:
            return None
        try:
            Keyring.from_config(text)
        except ValueError as exc:
            # storage.crypto's messages name key ids, never key material.
            self.problem(name, f"{exc}. Generate a key with: {GENERATE_KEY_COMMAND}")
            return None
        return Secret(text)

    def _default_environment(self, sandbox: TastytradeLogin | None) -> Environment:
        name = "TT_BOT_DEFAULT_ENVIRONMENT"
        text = self.raw(name)
        # Shared contract 3: paper without Tastytrade credentials, otherwise sandbox.
        fallback = Environment.SANDBOX if sandbox is not None else Environment.PAPER
        if text is None:
            return fallback
        lowered = text.lower()
        if lowered == Environment.LIVE.value:
            self.problem(
                name,
                "'live' cannot be the default: trading real money must be chosen per server "
                "with an explicit command; use 'paper' or 'sandbox'",
            )
            return fallback
        if lowered not in (Environment.PAPER.value, Environment.SANDBOX.value):
            self.problem(name, f"{text!r} is not valid; use 'paper' or 'sandbox'")
            return fallback
        return Environment(lowered)

    def _timeouts(self) -> Timeouts | None:
        defaults = Timeouts()
        seconds = {
            field_name: self.number(
                f"TT_BOT_TIMEOUT_{field_name.upper()}_SECONDS",
                getattr(defaults, field_name),
                strictly_positive=True,
            )
            for field_name in ("refresh", "validate", "chains", "orders", "reads")
        }
        try:
            return Timeouts(**seconds)
        except ValueError:
            return None  # already reported per variable


def _snowflake(text: str) -> int:
    if not text.isdigit() or len(text) > 20 or int(text) == 0:
        raise ValueError(text)
    return int(text)


def _snowflakes(text: str) -> frozenset[int]:
    return frozenset(_snowflake(part.strip()) for part in text.split(",") if part.strip())


def _log_format(text: str) -> LogFormat:
    lowered = text.lower()
    if lowered == "json":
        return "json"
    if lowered == "console":
        return "console"
    raise ValueError(text)


def _log_level(text: str) -> str:
    upper = text.upper()
    if upper not in LOG_LEVELS:
        raise ValueError(text)
    return upper
