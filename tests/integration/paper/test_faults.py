"""Fault injection and the /_admin API."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx2
import pytest
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import leg


def _order(ex: PaperExchange, external_id: str | None = None) -> LimitOrder:
    bid = ex.market.quote("SPY").bid
    return LimitOrder(
        legs=[leg(InstrumentType.EQUITY, "SPY", OrderAction.BUY_TO_OPEN)],
        price=-(bid - 2),
        external_identifier=external_id,
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "rate_limit_exceeded"), (500, "internal_server_error"), (502, "bad_gateway"),
     (503, "service_unavailable"), (401, "unauthorized")],
)  # fmt: skip
async def test_scripted_failures_use_the_real_error_body(
    frozen: PaperExchange, session: Session, account: Account, status: int, code: str
) -> None:
    frozen.faults.fail("GET", "/accounts/*/balances/*", status, times=2)
    for _ in range(2):
        with pytest.raises(TastytradeError, match=code):
            await account.get_balances(session)
    assert (await account.get_balances(session)).cash_balance == Decimal(100000)


async def test_failure_with_a_raw_html_body(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.faults.fail(None, "/accounts/*/positions", 502, body="<html>Bad Gateway</html>")
    with pytest.raises(TastytradeError, match="Couldn't parse response: <html>"):
        await account.get_positions(session)


async def test_failures_match_method_and_glob_only(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.faults.fail("POST", "/accounts/*/orders", 503)
    await account.get_balances(session)  # GET: not matched
    await account.place_order(session, _order(frozen), dry_run=True)  # /dry-run: not matched
    with pytest.raises(TastytradeError, match="service_unavailable"):
        await account.place_order(session, _order(frozen), dry_run=False)
    assert frozen.orders() == []  # a scripted failure happens before any processing
    await account.place_order(session, _order(frozen), dry_run=False)
    assert len(frozen.orders()) == 1


async def test_latency(frozen: PaperExchange, session: Session, account: Account) -> None:
    frozen.faults.latency(0.3, "GET", "/accounts/*/positions")
    started = time.perf_counter()
    await account.get_positions(session)
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    await account.get_balances(session)
    assert time.perf_counter() - started < 0.3
    frozen.faults.clear()
    started = time.perf_counter()
    await account.get_positions(session)
    assert time.perf_counter() - started < 0.3


async def test_drop_after_accept_leaves_exactly_one_order(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.faults.drop_after_accept()
    with pytest.raises(httpx2.RemoteProtocolError):
        await account.place_order(session, _order(frozen, "bot-1"), dry_run=False)
    [order] = frozen.orders()
    assert order.external_identifier == "bot-1"
    live = await account.get_live_orders(session)
    assert [o.external_identifier for o in live] == ["bot-1"]
    # the next submission is answered normally
    placed = await account.place_order(session, _order(frozen, "bot-2"), dry_run=False)
    assert placed.order.external_identifier == "bot-2"
    assert len(frozen.orders()) == 2


async def test_drop_after_accept_on_cancel(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    placed = await account.place_order(session, _order(frozen), dry_run=False)
    frozen.faults.drop_after_accept("DELETE", "/accounts/*/orders/*")
    with pytest.raises(httpx2.RemoteProtocolError):
        await account.delete_order(session, placed.order.id)
    assert frozen.orders()[0].status in ("Cancel Requested", "Cancelled")


async def test_request_log_and_grant_counter(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    await account.get_balances(session)
    await account.get_positions(session, symbol="SPY")
    assert frozen.requests == [
        ("POST", "/oauth/token"),
        ("GET", f"/customers/me/accounts/{frozen.account_number}"),
        ("GET", f"/accounts/{frozen.account_number}/balances/USD"),
        ("GET", f"/accounts/{frozen.account_number}/positions?symbol=SPY"),
    ]
    assert frozen.oauth_grants == 1


async def test_admin_api(frozen: PaperExchange, session: Session, account: Account) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as admin:
        before = frozen.clock.now()
        advanced = await admin.post("/_admin/clock/advance", json={"seconds": 60})
        assert advanced.status_code == 200
        assert (frozen.clock.now() - before).total_seconds() == pytest.approx(60)
        await admin.post("/_admin/market/step", json={"seconds": 5})
        pinned = await admin.post(
            "/_admin/quote", json={"symbol": "TSLA", "bid": "400.00", "ask": "400.04"}
        )
        assert pinned.json() == {"symbol": "TSLA", "bid": "400.00", "ask": "400.04"}
        quote = (await admin.get("/_admin/quote", params={"symbol": "TSLA"})).json()
        assert quote["mid"] == "400.02" and quote["pinned"] is True
        await admin.request("DELETE", "/_admin/quote", params={"symbol": "TSLA"})
        assert not frozen.market.quote("TSLA").pinned
        await admin.post("/_admin/faults", json={"kind": "fail", "method": "GET",
                                                 "path": "/accounts/*/positions",
                                                 "status": 429})  # fmt: skip
        with pytest.raises(TastytradeError, match="rate_limit_exceeded"):
            await account.get_positions(session)
        await admin.post("/_admin/faults", json={"kind": "drop_after_accept"})
        with pytest.raises(httpx2.RemoteProtocolError):
            await account.place_order(session, _order(frozen), dry_run=False)
        orders = (await admin.get("/_admin/orders")).json()["items"]
        assert len(orders) == 1 and orders[0]["status"] in ("Routed", "Live")
        requests = (await admin.get("/_admin/requests")).json()["requests"]
        assert ["POST", f"/accounts/{frozen.account_number}/orders"] in requests
        assert not any(path.startswith("/_admin") for _, path in requests)
        stats = (await admin.get("/_admin/stats")).json()
        assert stats["oauth-grants"] == 1
        seeded = await admin.post("/_admin/seed", json={"transactions": 10, "orders": 3})
        assert seeded.json() == {"transactions": 10, "orders": 3, "positions": 0}
        await admin.post("/_admin/revoke", json={"refresh_token": "refresh"})
        with pytest.raises(TastytradeError, match="unauthorized"):
            await account.get_balances(session)
        for bad in (
            admin.post("/_admin/clock/advance", json={"seconds": "soon"}),
            admin.post("/_admin/clock/advance", json={"seconds": -5}),
            admin.post("/_admin/quote", json={"symbol": "NOPE", "bid": 1, "ask": 2}),
            admin.post("/_admin/quote", json={"symbol": "SPY", "bid": 2, "ask": 1}),
            admin.post("/_admin/faults", json={"kind": "explode"}),
            admin.post("/_admin/faults", json={"kind": "fail", "status": 200}),
            admin.post("/_admin/seed", content=b"not json"),
            admin.get("/_admin/nothing"),
        ):
            response = await bad
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid_parameter"


async def test_admin_streamer_faults(frozen: PaperExchange) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as admin:
        response = await admin.post(
            "/_admin/faults", json={"kind": "streamer_error", "message": "boom"}
        )
        assert response.status_code == 200
        closed = await admin.post("/_admin/streamers/close", json={"code": 1000})
        assert closed.status_code == 200
        await admin.post("/_admin/faults", json={"kind": "clear"})
    assert frozen.faults.take_streamer_error() is None


async def test_on_served_reports_each_api_request_with_its_handling_interval(
    frozen: PaperExchange, session: Session
) -> None:
    served: list[tuple[str, str, float, float]] = []
    frozen.on_served = lambda method, path, start, end: served.append((method, path, start, end))
    frozen.faults.latency(0.05, "GET", "/customers/me/accounts/*")
    before = time.monotonic()
    await Account.get(session, frozen.account_number)
    after = time.monotonic()

    paths = [(method, path.split("?")[0]) for method, path, _, _ in served]
    assert paths[-1] == ("GET", f"/customers/me/accounts/{frozen.account_number}")
    _, _, start, end = served[-1]
    assert before <= start <= end <= after
    assert end - start >= 0.05  # the handler's own time, injected latency included
    assert ("POST", "/oauth/token") in paths  # every API request, token grants too
