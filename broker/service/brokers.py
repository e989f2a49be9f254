"""Which broker session and account a guild trades through, in which environment.

- `paper`: the in-process paper exchange, with built-in credentials;
- `sandbox`: credentials linked for the guild (stored encrypted), else the bot's configured ones;
- `live`: credentials linked for the guild; the bot's configured live credentials only for guilds
  in the explicit allow-list (`TT_LIVE_CONFIG_GUILD_IDS`). Linked credentials that can't be read
  (no encryption key, refused by Tastytrade) are an error, never a fall-back to other ones.
Sandbox and live never share sessions, caches or database rows.

Sessions come from the shared `SessionManager`; SDK `Account` objects are cached so an
order costs no extra round trip to look its account up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog
from tastytrade import Account

from broker.secrets import Secret
from broker.service.errors import CredentialsMissing, ServiceError
from broker.service.guilds import GuildSettingsStore
from broker.session import BrokerError, BrokerSession, Credentials, Environment, SessionManager
from storage.database import Database
from storage.errors import EncryptionKeyMissingError, StorageError

__all__ = ["BrokerContext", "BrokerDirectory", "CredentialSource", "PaperEndpoints"]

log = structlog.get_logger(__name__)

ACCOUNTS_TTL_SECONDS = 300.0
ACCOUNTS_MAX_AGE_SECONDS = 3600.0


class CredentialSource(StrEnum):
    PAPER = "built-in paper exchange"
    GUILD = "linked for this server"
    CONFIG = "bot configuration"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class PaperEndpoints:
    api_url: str
    streamer_url: str


@dataclass(frozen=True, slots=True)
class BrokerContext:
    """Everything needed to act on a guild's account in one environment."""

    guild_id: int
    environment: Environment
    session: BrokerSession
    account: Account
    source: CredentialSource

    @property
    def account_number(self) -> str:
        return self.account.account_number


class BrokerDirectory:
    def __init__(
        self,
        db: Database,
        sessions: SessionManager,
        guilds: GuildSettingsStore,
        *,
        paper: Callable[[], Awaitable[PaperEndpoints]],
        logins: Mapping[Environment, tuple[Secret, Secret]],
        endpoints: Mapping[Environment, PaperEndpoints] | None = None,
        live_config_guild_ids: frozenset[int] = frozenset(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._sessions = sessions
        self._guilds = guilds
        self._paper = paper
        self._logins = dict(logins)
        self._live_config_guilds = live_config_guild_ids
        # Tests point sandbox/live at local exchanges; production leaves this empty.
        self._endpoints = dict(endpoints or {})
        self._monotonic = monotonic
        self._accounts: dict[str, tuple[float, list[Account]]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Accounts in use since start (for scheduled syncs): (environment, account) -> context
        self.active: dict[tuple[str, str], BrokerContext] = {}

    @property
    def sessions(self) -> SessionManager:
        return self._sessions

    def configured(self, environment: Environment) -> bool:
        return environment in self._logins

    async def credentials(
        self, guild_id: int, environment: Environment
    ) -> tuple[Credentials, CredentialSource]:
        if environment is Environment.PAPER:
            endpoints = self._endpoints.get(Environment.PAPER) or await self._paper()
            return (
                Credentials(
                    environment=Environment.PAPER,
                    provider_secret=Secret("paper-exchange"),
                    refresh_token=Secret("paper-exchange"),
                    api_url=endpoints.api_url,
                    streamer_url=endpoints.streamer_url,
                    label="paper",
                ),
                CredentialSource.PAPER,
            )
        stored = None
        try:
            stored = await self._db.credentials.load(guild_id, environment.value)
        except EncryptionKeyMissingError:
            # Credentials are linked but unreadable: using others instead would silently
            # trade another account.
            raise ServiceError(
                f"The {environment.value} credentials linked for this server can't be read: the "
                "bot has no encryption key. The bot owner must set TT_BOT_ENCRYPTION_KEYS, or an "
                f"admin can remove them with `!tt unlink {environment.value}`."
            ) from None
        except StorageError as exc:
            raise ServiceError(
                f"The {environment.value} credentials can't be read: {exc}"
            ) from None
        if stored is not None:
            if stored.needs_relink:
                raise CredentialsMissing(
                    f"The {environment.value} credentials linked for this server were refused by "
                    f"Tastytrade. An admin must run `!tt link {environment.value}` again."
                )
            return (
                Credentials(
                    environment=environment,
                    provider_secret=Secret(stored.provider_secret.reveal()),
                    refresh_token=Secret(stored.refresh_token.reveal()),
                    label=f"guild:{guild_id}:{environment.value}",
                    **self._urls(environment),
                ),
                CredentialSource.GUILD,
            )
        login = self._logins.get(environment)
        if (
            login is not None
            and environment is Environment.LIVE
            and guild_id not in self._live_config_guilds
        ):
            raise CredentialsMissing(
                "No live credentials linked for this server: an admin must link them with "
                "`!tt link live` (the bot's own live account is only for servers the owner "
                "allowed in TT_LIVE_CONFIG_GUILD_IDS)."
            )
        if login is None:
            raise CredentialsMissing(
                f"No {environment.value} Tastytrade credentials: an admin can link them with "
                f"`!tt link {environment.value}`, or the bot owner can configure them."
            )
        return (
            Credentials(
                environment=environment,
                provider_secret=login[0],
                refresh_token=login[1],
                label=f"config:{environment.value}",
                **self._urls(environment),
            ),
            CredentialSource.CONFIG,
        )

    def _urls(self, environment: Environment) -> dict[str, str]:
        endpoints = self._endpoints.get(environment)
        if endpoints is None:
            return {}
        return {"api_url": endpoints.api_url, "streamer_url": endpoints.streamer_url}

    async def has_credentials(self, guild_id: int, environment: Environment) -> bool:
        try:
            await self.credentials(guild_id, environment)
        except ServiceError:
            return False
        return True

    async def session(
        self, guild_id: int, environment: Environment
    ) -> tuple[BrokerSession, CredentialSource]:
        credentials, source = await self.credentials(guild_id, environment)
        return await self._sessions.get(credentials), source

    async def context(self, guild_id: int, environment: Environment | None = None) -> BrokerContext:
        """The guild's session and default account (the only one, if none was chosen)."""
        settings = await self._guilds.get(guild_id)
        env = environment or Environment(settings.environment)
        session, source = await self.session(guild_id, env)
        accounts = await self.accounts(session)
        if not accounts:
            raise ServiceError(f"These {env.value} credentials have no open accounts.")
        chosen = settings.default_account(env.value)
        account = _choose(accounts, chosen, env)
        context = BrokerContext(guild_id, env, session, account, source)
        self.active[(env.value, account.account_number)] = context
        return context

    async def accounts(self, session: BrokerSession) -> list[Account]:
        """The session's open accounts; refreshed in the background once they are a while old."""
        key = session.label
        cached = self._accounts.get(key)
        if cached is not None:
            age = self._monotonic() - cached[0]
            if age < ACCOUNTS_MAX_AGE_SECONDS:
                if age >= ACCOUNTS_TTL_SECONDS and key not in self._refreshing:
                    self._refreshing.add(key)
                    task = asyncio.get_running_loop().create_task(self._refresh(session))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                return cached[1]
        return await self._load_accounts(session)

    async def _refresh(self, session: BrokerSession) -> None:
        try:
            await self._load_accounts(session)
        except ServiceError as exc:
            log.warning("accounts_refresh_failed", session=session.label, error=exc.message)
        finally:
            self._refreshing.discard(session.label)

    async def _load_accounts(self, session: BrokerSession) -> list[Account]:
        try:
            found: list[Account] = await session.read(lambda s: Account.get(s), kind="validate")
        except BrokerError as exc:
            raise ServiceError(f"Couldn't load the accounts: {exc.message}") from None
        accounts = [a for a in found if not a.is_closed]
        self._accounts[session.label] = (self._monotonic(), accounts)
        return accounts

    def forget_accounts(self) -> None:
        self._accounts.clear()

    async def link(
        self, guild_id: int, environment: Environment, secret: str, refresh: str, *, user_id: int
    ) -> int:
        """Validate credentials against Tastytrade, then store them encrypted; returns #accounts."""
        if environment is Environment.PAPER:
            raise ServiceError("The paper exchange needs no credentials.")
        credentials = Credentials(
            environment=environment,
            provider_secret=Secret(secret),
            refresh_token=Secret(refresh),
            label=f"guild:{guild_id}:{environment.value}",
            **self._urls(environment),
        )
        try:
            session = await self._sessions.get(credentials)
            accounts: list[Account] = await session.read(lambda s: Account.get(s), kind="validate")
        except BrokerError as exc:
            await self._sessions.discard(credentials)
            raise ServiceError(
                f"Tastytrade refused these credentials ({exc.category.value}): {exc.message}"
            ) from None
        try:
            await self._db.credentials.store(
                guild_id,
                environment.value,
                provider_secret=Secret(secret),
                refresh_token=Secret(refresh),
            )
        except StorageError as exc:
            raise ServiceError(str(exc)) from None
        self._accounts.pop(session.label, None)
        return len([a for a in accounts if not a.is_closed])

    async def unlink(self, guild_id: int, environment: Environment) -> bool:
        try:
            credentials, source = await self.credentials(guild_id, environment)
        except ServiceError:
            credentials, source = None, CredentialSource.MISSING
        removed = await self._db.credentials.delete(guild_id, environment.value)
        if credentials is not None and source is CredentialSource.GUILD:
            await self._sessions.discard(credentials)
        return bool(removed)


def _choose(accounts: list[Account], chosen: str | None, env: Environment) -> Account:
    """The guild's chosen account; never silently another one (that would trade elsewhere)."""
    if chosen is not None:
        for account in accounts:
            if account.account_number == chosen:
                return account
        raise ServiceError(
            f"The {env.value} account chosen for this server (…{chosen[-4:]}) is no longer "
            "open with these credentials: an admin must choose one with `!tt accounts`."
        )
    if len(accounts) == 1:
        return accounts[0]
    raise ServiceError(
        f"These {env.value} credentials have {len(accounts)} accounts: an admin must choose "
        "this server's with `!tt accounts <number>` first."
    )
