"""The managed session with the real tastytrade SDK against the paper exchange over loopback."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tastytrade import Account
from tastytrade.order import InstrumentType, Leg, LimitOrder, OrderAction

from broker.paper import PaperConfig, PaperExchange
from broker.secrets import Secret
from broker.session import (
    BrokerError,
    BrokerSession,
    Credentials,
    Environment,
    ErrorCategory,
    RefreshPolicy,
    RetryPolicy,
    SessionManager,
    Timeouts,
)

PROVIDER = "paper-provider-secret-value"
REFRESH = "paper-refresh-token-value"
TOKEN_TTL = 900
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
FAST_TIMEOUTS = Timeouts(refresh=2, validate=2, chains=2, orders=2, reads=2)


@pytest.fixture
async def exchange() -> AsyncIterator[PaperExchange]:
    async with PaperExchange(PaperConfig(seed=7, token_ttl=TOKEN_TTL)) as ex:
        yield ex


def _credentials(
    ex: PaperExchange, refresh: str = REFRESH, label: str | None = None
) -> Credentials:
    return Credentials(
        environment=Environment.PAPER,
        provider_secret=Secret(PROVIDER),
        refresh_token=Secret(refresh),
        api_url=ex.api_url,
        streamer_url=ex.streamer_url,
        label=label,
    )


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with SessionManager(
        timeouts=FAST_TIMEOUTS, retry=FAST_RETRY, rng=random.Random(1)
    ) as session_manager:
        yield session_manager


@pytest.fixture
async def broker(exchange: PaperExchange, manager: SessionManager) -> BrokerSession:
    return await manager.get(_credentials(exchange))


def _count(ex: PaperExchange, method: str, predicate: Callable[[str], bool]) -> int:
    return sum(1 for m, path in ex.requests if m == method and predicate(path))


def _account_path(ex: PaperExchange) -> Callable[[str], bool]:
    return lambda path: path.split("?")[0] == f"/customers/me/accounts/{ex.account_number}"


def _orders_post(ex: PaperExchange) -> Callable[[str], bool]:
    return lambda path: path.split("?")[0] == f"/accounts/{ex.account_number}/orders"


def _get_account(ex: PaperExchange) -> Callable[[Any], Any]:
    return lambda s: Account.get(s, ex.account_number)


def _order(price: str) -> LimitOrder:
    """One share of SPY; a negative price is a debit (a normal buy)."""
    leg = Leg(
        instrument_type=InstrumentType.EQUITY,
        symbol="SPY",
        quantity=Decimal(1),
        action=OrderAction.BUY_TO_OPEN,
    )
    return LimitOrder(legs=[leg], price=Decimal(price))


# ------------------------------------------------------------------------- token refresh


async def test_expired_token_mid_session_is_refreshed_and_the_call_retried(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    assert exchange.oauth_grants == 1
    account = await broker.read(_get_account(exchange), kind="validate")
    assert account.account_number == exchange.account_number

    exchange.clock.advance(TOKEN_TTL + 5)  # the exchange now rejects the access token
    account = await broker.read(_get_account(exchange))

    assert account.account_number == exchange.account_number
    assert exchange.oauth_grants == 2
    assert _count(exchange, "GET", _account_path(exchange)) == 3  # ok, 401, retried ok
    assert broker.health().refresh_count == 2


async def test_fifty_concurrent_calls_after_expiry_cause_exactly_one_refresh(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    await broker.read(_get_account(exchange))
    exchange.clock.advance(TOKEN_TTL + 5)
    grants_before = exchange.oauth_grants

    accounts = await asyncio.gather(*(broker.read(_get_account(exchange)) for _ in range(50)))

    assert {a.account_number for a in accounts} == {exchange.account_number}
    assert exchange.oauth_grants == grants_before + 1


async def test_fifty_concurrent_gets_share_one_session_and_one_grant(
    exchange: PaperExchange, manager: SessionManager
) -> None:
    sessions = await asyncio.gather(*(manager.get(_credentials(exchange)) for _ in range(50)))
    assert len({id(s) for s in sessions}) == 1
    assert exchange.oauth_grants == 1


async def test_background_task_refreshes_before_expiry(exchange: PaperExchange) -> None:
    eager = RefreshPolicy(
        lead_seconds=TOKEN_TTL - 0.3, min_interval_seconds=0.05, min_life_fraction=0
    )
    async with SessionManager(timeouts=FAST_TIMEOUTS, retry=FAST_RETRY, refresh=eager) as mgr:
        broker = await mgr.get(_credentials(exchange))
        for _ in range(100):  # up to 5 s
            if broker.health().refresh_count >= 2:
                break
            await asyncio.sleep(0.05)
        assert broker.health().refresh_count >= 2  # without any call being made
        assert exchange.oauth_grants == broker.health().refresh_count
        assert _count(exchange, "GET", lambda _: True) == 0


async def test_revoked_refresh_token_is_token_revoked_and_fails_fast(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    exchange.revoke_refresh_token(REFRESH)
    exchange.clock.advance(TOKEN_TTL + 5)

    with pytest.raises(BrokerError) as info:
        await broker.read(_get_account(exchange))

    error = info.value
    assert error.category is ErrorCategory.TOKEN_REVOKED
    assert REFRESH not in str(error) and PROVIDER not in str(error)
    health = broker.health()
    assert health.token_revoked and not health.ok
    assert health.last_error_category is ErrorCategory.TOKEN_REVOKED
    served = len(exchange.requests)
    with pytest.raises(BrokerError) as again:
        await broker.read(_get_account(exchange))
    assert again.value.category is ErrorCategory.TOKEN_REVOKED
    assert len(exchange.requests) == served  # no more traffic with a dead grant


async def test_revoked_token_fails_get_and_caches_nothing(
    exchange: PaperExchange, manager: SessionManager
) -> None:
    exchange.revoke_refresh_token("already-revoked-token")
    with pytest.raises(BrokerError) as info:
        await manager.get(_credentials(exchange, refresh="already-revoked-token"))
    assert info.value.category is ErrorCategory.TOKEN_REVOKED
    assert "already-revoked-token" not in repr(info.value)
    assert manager.sessions() == []


async def test_rotated_refresh_token_replaces_the_labelled_session(
    exchange: PaperExchange, manager: SessionManager
) -> None:
    old = await manager.get(_credentials(exchange, label="guild:1"))
    same = await manager.get(_credentials(exchange, label="guild:1"))
    other_guild = await manager.get(_credentials(exchange, label="guild:2"))
    assert same is old and other_guild is not old

    new = await manager.get(
        _credentials(exchange, refresh="rotated-refresh-token", label="guild:1")
    )

    assert new is not old
    await asyncio.sleep(0.05)  # the old session drains and closes in the background
    assert old.closed and not new.closed and not other_guild.closed
    assert (await new.read(_get_account(exchange))).account_number == exchange.account_number
    with pytest.raises(BrokerError):
        await old.read(_get_account(exchange))


# ------------------------------------------------------------------------------ reads


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_transient_read_failures_are_retried_with_backoff(
    exchange: PaperExchange, broker: BrokerSession, status: int
) -> None:
    exchange.faults.fail(
        "GET", f"/customers/me/accounts/{exchange.account_number}", status, times=2
    )

    account = await broker.read(_get_account(exchange))

    assert account.account_number == exchange.account_number
    assert _count(exchange, "GET", _account_path(exchange)) == 3
    assert broker.health().ok


async def test_read_gives_up_after_the_configured_attempts(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    exchange.faults.fail("GET", f"/customers/me/accounts/{exchange.account_number}", 429, times=10)

    with pytest.raises(BrokerError) as info:
        await broker.read(_get_account(exchange))

    assert info.value.category is ErrorCategory.RATE_LIMIT
    assert info.value.status == 429
    assert _count(exchange, "GET", _account_path(exchange)) == FAST_RETRY.attempts
    assert broker.health().last_error_category is ErrorCategory.RATE_LIMIT


async def test_slow_read_times_out(exchange: PaperExchange) -> None:
    async with SessionManager(
        timeouts=Timeouts(reads=0.2), retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01)
    ) as fast:
        broker = await fast.get(_credentials(exchange))
        exchange.faults.latency(10.0, method="GET", path="/customers/me/accounts/*")
        started = time.monotonic()
        with pytest.raises(BrokerError) as info:
            await broker.read(_get_account(exchange))
        elapsed = time.monotonic() - started
    assert info.value.category is ErrorCategory.TIMEOUT
    assert info.value.outcome_unknown is False
    assert elapsed < 5.0  # two 0.2 s attempts, not the server's 10 s latency
    assert _count(exchange, "GET", _account_path(exchange)) == 2


# ---------------------------------------------------------------------------- submits


async def test_dropped_order_post_is_not_retried_and_outcome_unknown(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    account = await broker.read(_get_account(exchange))
    exchange.faults.drop_after_accept(method="POST", path_glob="/accounts/*/orders", times=1)

    with pytest.raises(BrokerError) as info:
        await broker.submit(lambda s: account.place_order(s, _order("-1.00"), dry_run=False))

    error = info.value
    assert error.category is ErrorCategory.NETWORK
    assert error.outcome_unknown is True
    assert _count(exchange, "POST", _orders_post(exchange)) == 1
    assert len(exchange.orders(exchange.account_number)) == 1  # exactly one order exists


async def test_order_post_answered_201_with_a_cut_body_is_outcome_unknown(
    broker: BrokerSession,
) -> None:
    """The status line says the order was created, then the connection drops mid-body: the
    order exists, so the outcome must be unknown (reconcile), never "nothing was sent"."""
    seen: list[bytes] = []

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{"data": ')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(BrokerError) as info:
            url = f"http://127.0.0.1:{port}/accounts/X/orders"
            await broker.submit(lambda s: s._client.post(url, content=b"{}"))
    finally:
        server.close()
        await server.wait_closed()

    assert len(seen) == 1  # sent once, never again
    assert info.value.category is ErrorCategory.NETWORK
    assert info.value.outcome_unknown is True
    assert "dropped before an answer" in info.value.message


async def test_rate_limited_order_post_is_not_retried(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    account = await broker.read(_get_account(exchange))
    exchange.faults.fail("POST", "/accounts/*/orders", 429, times=1)

    with pytest.raises(BrokerError) as info:
        await broker.submit(lambda s: account.place_order(s, _order("-1.00"), dry_run=False))

    assert info.value.category is ErrorCategory.RATE_LIMIT
    assert info.value.outcome_unknown is False
    assert _count(exchange, "POST", _orders_post(exchange)) == 1
    assert exchange.orders(exchange.account_number) == []


async def test_server_error_on_order_post_is_outcome_unknown_and_not_retried(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    account = await broker.read(_get_account(exchange))
    exchange.faults.fail("POST", "/accounts/*/orders", 503, times=1)

    with pytest.raises(BrokerError) as info:
        await broker.submit(lambda s: account.place_order(s, _order("-1.00"), dry_run=False))

    assert info.value.category is ErrorCategory.SERVER
    assert info.value.outcome_unknown is True
    assert _count(exchange, "POST", _orders_post(exchange)) == 1


async def test_order_post_rejected_with_401_is_resent_once_after_refresh(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    account = await broker.read(_get_account(exchange))
    grants = exchange.oauth_grants
    exchange.faults.fail("POST", "/accounts/*/orders", 401, times=1)

    response = await broker.submit(lambda s: account.place_order(s, _order("-1.00"), dry_run=False))

    assert response.order.id is not None
    assert exchange.oauth_grants == grants + 1
    assert _count(exchange, "POST", _orders_post(exchange)) == 2
    assert len(exchange.orders(exchange.account_number)) == 1


async def test_slow_order_post_times_out_with_outcome_unknown(exchange: PaperExchange) -> None:
    async with SessionManager(timeouts=Timeouts(orders=0.3), retry=FAST_RETRY) as fast:
        broker = await fast.get(_credentials(exchange))
        account = await broker.read(_get_account(exchange))
        exchange.faults.latency(1.0, method="POST", path="/accounts/*/orders")
        with pytest.raises(BrokerError) as info:
            await broker.submit(lambda s: account.place_order(s, _order("-1.00"), dry_run=False))
    assert info.value.category is ErrorCategory.TIMEOUT
    assert info.value.outcome_unknown is True
    assert _count(exchange, "POST", _orders_post(exchange)) == 1


async def test_preflight_rejection_is_rejected_with_codes(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    account = await broker.read(_get_account(exchange))
    buy_for_credit = _order("1.00")

    with pytest.raises(BrokerError) as dry_run:
        await broker.read(lambda s: account.place_order(s, buy_for_credit, dry_run=True))
    with pytest.raises(BrokerError) as live:
        await broker.submit(lambda s: account.place_order(s, buy_for_credit, dry_run=False))

    for error in (dry_run.value, live.value):
        assert error.category is ErrorCategory.REJECTED
        assert error.status == 422
        assert "cant_buy_for_credit" in error.codes
        assert error.outcome_unknown is False
        assert error.message  # the broker's own explanation, for the user
    assert exchange.orders(exchange.account_number) == []


# ----------------------------------------------------------------------------- health


async def test_health_view_reports_token_refresh_and_errors(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    before = datetime.now(UTC)
    health = broker.health()
    assert health.environment is Environment.PAPER
    assert health.refresh_count == 1
    assert health.token_expires_at is not None and health.token_expires_at.tzinfo is not None
    expected_expiry = before + timedelta(seconds=TOKEN_TTL)
    assert abs((health.token_expires_at - expected_expiry).total_seconds()) < 5
    assert health.last_refresh_at is not None and health.last_refresh_at.tzinfo is not None
    assert health.last_error is None and health.last_error_category is None
    assert health.ok and not health.closed and not health.token_revoked

    account = await broker.read(_get_account(exchange))
    with pytest.raises(BrokerError):
        await broker.submit(lambda s: account.place_order(s, _order("1.00"), dry_run=False))

    health = broker.health()
    assert health.last_error_category is ErrorCategory.REJECTED
    assert health.last_error and PROVIDER not in health.last_error
    assert health.last_error_at is not None and not health.ok
    assert PROVIDER not in repr(health) and REFRESH not in repr(health)

    await broker.read(_get_account(exchange))
    assert broker.health().ok  # a later success clears the alarm, the error stays visible
    assert broker.health().last_error_category is ErrorCategory.REJECTED


async def test_manager_close_closes_every_session(exchange: PaperExchange) -> None:
    mgr = SessionManager(timeouts=FAST_TIMEOUTS, retry=FAST_RETRY)
    first = await mgr.get(_credentials(exchange, label="a"))
    second = await mgr.get(_credentials(exchange, label="b"))
    await mgr.close()
    assert first.closed and second.closed
    assert all(h.closed for h in (first.health(), second.health()))
    with pytest.raises(BrokerError) as info:
        await first.read(_get_account(exchange))
    assert info.value.category is ErrorCategory.AUTH


async def test_alert_streamer_points_at_the_exchange(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    streamer = broker.alert_streamer()
    assert streamer.base_url == exchange.streamer_url
    account = await broker.read(_get_account(exchange))
    async with streamer:
        await streamer.subscribe_accounts([account])
