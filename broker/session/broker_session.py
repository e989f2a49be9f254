"""`BrokerSession`: one managed `tastytrade.Session` with refresh, timeouts, retries."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TypeVar

import httpx2
import structlog
from tastytrade import AlertStreamer, DXLinkStreamer, Session

from broker.secrets import default_redactor, register_secrets
from broker.session.capture import CallRecord, HookSet, auth_digest, current_record
from broker.session.errors import BrokerError, ErrorCategory, classify, timeout_error
from broker.session.retry import sleep_before_retry
from broker.session.transport import install_lean_transport
from broker.session.types import (
    CallKind,
    Credentials,
    Environment,
    RefreshPolicy,
    RetryPolicy,
    SessionHealth,
    Timeouts,
)

T = TypeVar("T")
QuoteStreamer = TypeVar("QuoteStreamer", bound=DXLinkStreamer)
SdkCall = Callable[[Session], Awaitable[T]]

log = structlog.get_logger(__name__)

# The SDK refreshes lazily when the token is within 60 s of expiry (session.py:351);
# we refresh at the same point ourselves, first, so the refresh runs under our
# timeout, retry and single-flight rules instead of inside an arbitrary call.
SDK_REFRESH_BUFFER_SECONDS = 60.0

# httpx2's own timeout must never fire before ours: ours knows what kind of call it is.
_TRANSPORT_TIMEOUT_SLACK_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


class BrokerSession:
    """A shared, self-refreshing Tastytrade session.

    Use `read()` for idempotent calls (retried with backoff on 429/5xx/network/
    timeout) and `submit()` for anything that changes state at the broker (never
    retried). Both run the given coroutine function with the SDK session under a
    timeout, and raise only `BrokerError`.

    Create sessions through `SessionManager.get()`.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        display_label: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        refresh_policy: RefreshPolicy,
        rng: random.Random,
    ) -> None:
        self._credentials = credentials
        self._label = display_label
        self._timeouts = timeouts
        self._retry = retry
        self._refresh_policy = refresh_policy
        self._rng = rng
        self._digest_key = os.urandom(16)
        self._hooks = HookSet(self._digest_key, self._note_token_granted)
        register_secrets(credentials.provider_secret, credentials.refresh_token)
        self._sdk = Session(
            credentials.provider_secret.reveal(),
            credentials.refresh_token.reveal(),
            is_test=credentials.environment.is_test,
            timeout=httpx2.Timeout(timeouts.longest + _TRANSPORT_TIMEOUT_SLACK_SECONDS),
            **self._hooks.client_kwargs(),
        )
        # The one place the SDK is pointed at an API host (paper exchange, cert or production).
        self._sdk._client.base_url = credentials.resolved_api_url
        install_lean_transport(self._sdk._client)  # REST only; streamers keep httpx2's
        self._exit_stack = AsyncExitStack()
        self._refresh_lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None
        self._registered_access_token: str | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._revoked = False
        self._refresh_count = 0
        self._last_refresh_at: datetime | None = None
        self._last_error: BrokerError | None = None
        self._last_error_at: datetime | None = None
        self._last_success_at: datetime | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the HTTP client, get the first access token and start the refresher."""
        await self._exit_stack.enter_async_context(self._sdk)
        try:
            await self._refresh_if_current(None, reason="start")
        except BaseException:
            await self._exit_stack.aclose()
            self._closed = True
            raise
        if self._refresh_policy.enabled:
            self._refresher = asyncio.create_task(
                self._refresh_loop(), name=f"tt-refresh:{self._label}"
            )

    async def aclose(self, *, drain_timeout: float | None = None) -> None:
        """Stop refreshing, let in-flight calls finish (bounded), close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        wait = self._timeouts.longest if drain_timeout is None else drain_timeout
        try:
            async with asyncio.timeout(wait):
                await self._idle.wait()
        except TimeoutError:
            log.warning("closing tastytrade session with calls in flight", session=self._label)
        await self._exit_stack.aclose()
        default_redactor.discard(self._registered_access_token)
        log.info("tastytrade session closed", session=self._label)

    # ---------------------------------------------------------------- properties

    @property
    def sdk(self) -> Session:
        """The underlying SDK session (prefer `read`/`submit`, which add the safety rules)."""
        return self._sdk

    @property
    def api_url(self) -> str:
        return self._credentials.resolved_api_url

    @property
    def streamer_url(self) -> str:
        return self._credentials.resolved_streamer_url

    @property
    def environment(self) -> Environment:
        return self._credentials.environment

    @property
    def label(self) -> str:
        return self._label

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"BrokerSession(label={self._label!r}, environment={self.environment.value!r})"

    # --------------------------------------------------------------------- calls

    async def read(self, op: SdkCall[T], *, kind: CallKind = "read") -> T:
        """Run an idempotent SDK call, e.g. ``lambda s: Account.get(s, "5WT00001")``.

        Retries on RATE_LIMIT, SERVER, NETWORK and TIMEOUT with exponential
        backoff and full jitter; on a 401 it force-refreshes the token once and
        retries once.
        """
        return await self._run(op, limit_seconds=self._timeouts.for_kind(kind), submission=False)

    async def submit(self, op: SdkCall[T]) -> T:
        """Run a state-changing SDK call (place/replace/cancel an order). Never retried.

        If the request may have reached the exchange (timeout, dropped connection,
        5xx, unparseable success) the `BrokerError` has ``outcome_unknown=True``:
        the caller must reconcile with the broker before anything else.

        Single exception: when every request the call made was answered 401, the
        exchange processed nothing, so the token is refreshed and the call is
        sent once more.
        """
        return await self._run(op, limit_seconds=self._timeouts.orders, submission=True)

    async def ensure_fresh(self) -> None:
        """Refresh the access token now if it expires within the SDK's 60 s buffer."""
        if self._token_due():
            await self._refresh_if_current(self._current_auth_digest(), reason="expiring")

    async def refresh(self) -> None:
        """Force a token refresh now (single-flight with any concurrent refresh)."""
        await self._refresh_if_current(self._current_auth_digest(), reason="forced")

    def alert_streamer(self) -> AlertStreamer:
        """An `AlertStreamer` pointed at this environment's account streamer.

        Use it as ``async with broker.alert_streamer() as streamer:``; the SDK
        refreshes the token itself before subscribing.
        """
        streamer = AlertStreamer(self._sdk)
        streamer.base_url = self.streamer_url
        return streamer

    def quote_streamer(self, kind: type[QuoteStreamer]) -> QuoteStreamer:
        """A DXLink streamer (``DXLinkStreamer`` or a subclass) on this session.

        Use it as ``async with broker.quote_streamer(DXLinkStreamer) as streamer:``; on entry
        the SDK fetches ``/api-quote-tokens`` from this environment's API (which names the
        DXLink URL) and connects there. Call ``ensure_fresh()`` first so any token refresh
        runs under this session's rules.
        """
        return kind(self._sdk)

    def health(self) -> SessionHealth:
        expiration = self._sdk.session_expiration
        expires_at = (
            datetime.fromtimestamp(expiration, UTC)
            if expiration > 0 and math.isfinite(expiration)
            else None
        )
        error = self._last_error
        return SessionHealth(
            environment=self.environment,
            token_expires_at=expires_at,
            last_refresh_at=self._last_refresh_at,
            last_error=error.message if error else None,
            last_error_category=error.category if error else None,
            refresh_count=self._refresh_count,
            label=self._label,
            last_error_at=self._last_error_at,
            last_success_at=self._last_success_at,
            token_revoked=self._revoked,
            closed=self._closed,
        )

    # ------------------------------------------------------------------ internals

    async def _run(self, op: SdkCall[T], *, limit_seconds: float, submission: bool) -> T:
        self._check_usable()
        self._inflight += 1
        self._idle.clear()
        try:
            return await self._run_with_policy(
                op, limit_seconds=limit_seconds, submission=submission
            )
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _run_with_policy(
        self, op: SdkCall[T], *, limit_seconds: float, submission: bool
    ) -> T:
        auth_retry_used = False
        retry_index = 0
        while True:
            await self.ensure_fresh()
            record = CallRecord()
            try:
                result = await self._attempt(
                    op, record, limit_seconds=limit_seconds, submission=submission
                )
            except BrokerError as error:
                rejected_token = self._rejected_token_digest(record, error, submission)
                if rejected_token is not None and not auth_retry_used:
                    auth_retry_used = True
                    log.debug("tastytrade answered 401; refreshing token", session=self._label)
                    await self._refresh_if_current(rejected_token, reason="401")
                    continue
                if (
                    not submission
                    and error.category.transient
                    and retry_index + 1 < self._retry.attempts
                ):
                    delay = await sleep_before_retry(self._retry, retry_index, self._rng)
                    retry_index += 1
                    log.info(
                        "retrying tastytrade read",
                        session=self._label,
                        category=error.category.value,
                        status=error.status,
                        retry=retry_index,
                        delay=round(delay, 3),
                    )
                    continue
                self._note_error(error)
                raise
            self._last_success_at = _now()
            return result

    async def _attempt(
        self, op: SdkCall[T], record: CallRecord, *, limit_seconds: float, submission: bool
    ) -> T:
        context_token = current_record.set(record)
        try:
            async with asyncio.timeout(limit_seconds):
                return await op(self._sdk)
        except TimeoutError:
            raise timeout_error(record, limit_seconds, submission=submission) from None
        except Exception as exc:
            error = classify(exc, record, submission=submission)
            if error.category is ErrorCategory.CONTRACT:
                log.warning(
                    "tastytrade call failed unexpectedly", session=self._label, exc_info=exc
                )
            raise error from None
        finally:
            current_record.reset(context_token)
            self._sync_access_token_registration()

    def _rejected_token_digest(
        self, record: CallRecord, error: BrokerError, submission: bool
    ) -> str | None:
        """The token a 401 rejected, when a refresh-and-resend is allowed; else None."""
        if error.category is not ErrorCategory.AUTH or error.status != 401:
            return None
        api_trips = record.api_trips
        if not api_trips:
            return None
        if submission and any(trip.status != 401 for trip in api_trips):
            return None  # something else was sent and possibly processed: do not resend
        # "" (no Authorization header at all) still means "refresh unconditionally".
        return api_trips[-1].auth_digest or ""

    async def _refresh_if_current(self, stale_digest: str | None, *, reason: str) -> None:
        """Refresh unless another caller already replaced the token `stale_digest` names.

        Callers pass the digest of the token they saw (or None to force): when 50
        calls hit an expired token together, the first refreshes and the other
        49 find the token already replaced and just retry.
        """
        async with self._refresh_lock:
            self._check_usable()
            if stale_digest and self._current_auth_digest() != stale_digest:
                return
            await self._refresh_with_retry(reason)

    async def _refresh_with_retry(self, reason: str) -> None:
        retry_index = 0
        while True:
            record = CallRecord()
            context_token = current_record.set(record)
            try:
                async with asyncio.timeout(self._timeouts.refresh):
                    await self._sdk.refresh(force=True)
            except TimeoutError:
                error = timeout_error(record, self._timeouts.refresh, submission=False)
            except Exception as exc:
                error = classify(exc, record, submission=False)
            else:
                self._sync_access_token_registration()
                log.info(
                    "tastytrade token refreshed",
                    session=self._label,
                    reason=reason,
                    expires_in=round(self._sdk.session_expiration - time.time()),
                )
                return
            finally:
                current_record.reset(context_token)
            if error.category is ErrorCategory.TOKEN_REVOKED:
                self._revoked = True
                self._note_error(error)
                log.error("tastytrade refresh token revoked", session=self._label)
                raise error
            # Cert sometimes rejects a healthy refresh transiently (tastyware#351): retry AUTH too.
            retryable = error.category.transient or (
                error.category is ErrorCategory.AUTH and "invalid_client" not in error.codes
            )
            if not retryable or retry_index + 1 >= self._retry.attempts:
                self._note_error(error)
                raise error
            await sleep_before_retry(self._retry, retry_index, self._rng)
            retry_index += 1

    async def _refresh_loop(self) -> None:
        """Refresh shortly before expiry so calls rarely wait for a refresh."""
        failures = 0
        while not self._closed and not self._revoked:
            remaining = self._sdk.session_expiration - time.time()
            if failures:
                delay = max(
                    self._retry.backoff_ceiling(failures - 1),
                    self._refresh_policy.min_interval_seconds,
                )
            else:
                delay = self._refresh_policy.delay_until_refresh(remaining)
            await asyncio.sleep(delay)
            try:
                await self._refresh_if_current(self._current_auth_digest(), reason="proactive")
                failures = 0
            except BrokerError as error:
                if error.category is ErrorCategory.TOKEN_REVOKED:
                    return
                failures += 1
                log.warning(
                    "proactive tastytrade refresh failed",
                    session=self._label,
                    category=error.category.value,
                )

    def _token_due(self) -> bool:
        return time.time() >= self._sdk.session_expiration - SDK_REFRESH_BUFFER_SECONDS

    def _current_auth_digest(self) -> str | None:
        return auth_digest(self._sdk._client.headers.get("Authorization"), self._digest_key)

    def _check_usable(self) -> None:
        if self._closed:
            raise BrokerError(
                ErrorCategory.AUTH,
                "This Tastytrade session was closed (credentials changed or bot shutting "
                "down); run the command again.",
            )
        if self._revoked:
            raise BrokerError(
                ErrorCategory.TOKEN_REVOKED,
                "The Tastytrade refresh token is invalid or revoked; re-authorize the bot.",
            )

    def _note_token_granted(self) -> None:
        # Called from the response hook for every successful /oauth/token answer,
        # including refreshes the SDK performs on its own.
        self._refresh_count += 1
        self._last_refresh_at = _now()

    def _note_error(self, error: BrokerError) -> None:
        self._last_error = error
        self._last_error_at = _now()

    def _sync_access_token_registration(self) -> None:
        """Keep the current access token (only) in the process-wide redactor."""
        token = self._sdk.session_token
        if token != self._registered_access_token:
            default_redactor.discard(self._registered_access_token)
            default_redactor.add(token)
            self._registered_access_token = token
