"""`SessionManager`: one shared `BrokerSession` per credential identity."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import structlog

from broker.session.broker_session import BrokerSession
from broker.session.errors import BrokerError, ErrorCategory
from broker.session.types import (
    Credentials,
    Environment,
    RefreshPolicy,
    RetryPolicy,
    SessionHealth,
    Timeouts,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Identity:
    """Cache key. Holds keyed digests, never raw secrets, so it is safe to log."""

    environment: Environment
    api_url: str
    owner: str  # the credential's label, or the token-pair fingerprint when unlabelled


@dataclass
class _Entry:
    fingerprint: str
    session: BrokerSession


class SessionManager:
    """Creates broker sessions on demand, shares them, and closes them.

    ``await manager.get(credentials)`` returns the cached session for the
    credentials' identity (environment + API URL + label). If the same label
    comes back with a different token pair (rotation), the old session is
    closed in the background and replaced.
    """

    def __init__(
        self,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        refresh: RefreshPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._timeouts = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
        self._refresh = refresh or RefreshPolicy()
        self._rng = rng or random.Random()
        # Per-process key: fingerprints cannot be matched against anything outside it.
        self._fingerprint_key = os.urandom(32)
        self._entries: dict[_Identity, _Entry] = {}
        self._locks: dict[_Identity, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    def fingerprint(self, credentials: Credentials) -> str:
        """Keyed digest of the secret pair: equal for equal secrets, reveals nothing."""
        message = b"\0".join(
            (
                credentials.provider_secret.reveal().encode(),
                credentials.refresh_token.reveal().encode(),
            )
        )
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()

    async def get(self, credentials: Credentials) -> BrokerSession:
        """The shared session for these credentials, created (and authenticated) on demand.

        Raises `BrokerError` when the first token refresh fails (e.g. TOKEN_REVOKED)
        or the manager is closed.
        """
        self._check_open()
        fingerprint = self.fingerprint(credentials)
        identity = _Identity(
            environment=credentials.environment,
            api_url=credentials.resolved_api_url,
            owner=f"label:{credentials.label}" if credentials.label else f"key:{fingerprint}",
        )
        lock = self._locks.setdefault(identity, asyncio.Lock())
        async with lock:
            entry = self._entries.get(identity)
            if entry is not None and entry.fingerprint == fingerprint and not entry.session.closed:
                return entry.session
            session = BrokerSession(
                credentials,
                display_label=self._display_label(credentials, fingerprint),
                timeouts=self._timeouts,
                retry=self._retry,
                refresh_policy=self._refresh,
                rng=self._rng,
            )
            await session.start()
            if self._closed:  # closed while we were authenticating
                await session.aclose()
                self._check_open()
            self._entries[identity] = _Entry(fingerprint=fingerprint, session=session)
            if entry is not None and not entry.session.closed:
                log.info("tastytrade credentials rotated; replacing session", session=session.label)
                self._retire(entry.session)
            log.info("tastytrade session opened", session=session.label)
            return session

    async def discard(self, credentials: Credentials) -> None:
        """Close and forget the session for these credentials (e.g. after unlinking)."""
        fingerprint = self.fingerprint(credentials)
        for identity, entry in list(self._entries.items()):
            if entry.fingerprint == fingerprint and identity.environment == credentials.environment:
                del self._entries[identity]
                await entry.session.aclose()

    def sessions(self) -> list[BrokerSession]:
        return [entry.session for entry in self._entries.values()]

    def health(self) -> list[SessionHealth]:
        return [entry.session.health() for entry in self._entries.values()]

    async def close(self) -> None:
        """Close every session (waiting briefly for in-flight calls)."""
        self._closed = True
        entries = list(self._entries.values())
        self._entries.clear()
        await asyncio.gather(
            *(entry.session.aclose() for entry in entries), *self._retiring, return_exceptions=True
        )

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError(
                ErrorCategory.AUTH, "The bot is shutting down; Tastytrade sessions are closed."
            )

    def _retire(self, session: BrokerSession) -> None:
        # Calls already running on the old session may finish; close it without blocking get().
        task = asyncio.create_task(session.aclose(), name=f"tt-retire:{session.label}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    def _display_label(credentials: Credentials, fingerprint: str) -> str:
        owner = credentials.label or f"key-{fingerprint[:8]}"
        return f"{credentials.environment.value}/{owner}"
