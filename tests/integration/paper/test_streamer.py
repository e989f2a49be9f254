"""The account streamer through the SDK's AlertStreamer and over a raw websocket."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest
from httpx2.websockets import HTTPXWSException
from tastytrade import Account, AlertStreamer, Session
from tastytrade.account import AccountBalance, CurrentPosition
from tastytrade.order import InstrumentType, LimitOrder, OrderAction, OrderStatus, PlacedOrder
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import leg


def _streamer(session: Session, exchange: PaperExchange) -> AlertStreamer:
    streamer = AlertStreamer(session)
    streamer.base_url = exchange.streamer_url
    return streamer


async def test_order_fill_is_streamed_with_balance_and_position(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    async with _streamer(session, frozen) as streamer:
        await streamer.subscribe_accounts([account])
        await streamer.subscribe_public_watchlists()
        await streamer.subscribe_quote_alerts()
        frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
        order = LimitOrder(legs=[leg(InstrumentType.EQUITY, "AAPL", OrderAction.BUY_TO_OPEN, 3)],
                           price=Decimal("-300.50"))  # fmt: skip
        placed = await account.place_order(session, order, dry_run=False)
        seen: list[PlacedOrder] = []

        async def until_filled() -> None:
            async for update in streamer.listen(PlacedOrder):
                seen.append(update)
                if update.status == OrderStatus.FILLED:
                    return

        await asyncio.wait_for(until_filled(), 5)
        assert [o.status for o in seen] == [
            OrderStatus.ROUTED, OrderStatus.LIVE, OrderStatus.FILLED,
        ]  # fmt: skip
        assert all(o.id == placed.order.id for o in seen)
        filled = seen[-1]
        [fill] = filled.legs[0].fills or []
        assert (fill.quantity, fill.fill_price) == (Decimal(3), Decimal("300.20"))
        balance = await asyncio.wait_for(anext(streamer.listen(AccountBalance)), 5)
        assert balance.cash_balance == Decimal(100000) - Decimal("900.60")
        position = await asyncio.wait_for(anext(streamer.listen(CurrentPosition)), 5)
        assert (position.symbol, position.quantity) == ("AAPL", Decimal(3))


async def test_replace_and_cancel_are_streamed(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    async with _streamer(session, frozen) as streamer:
        await streamer.subscribe_accounts([account])
        bid = frozen.market.quote("SPY").bid
        order = LimitOrder(legs=[leg(InstrumentType.EQUITY, "SPY", OrderAction.BUY_TO_OPEN)],
                           price=-(bid - 5))  # fmt: skip
        placed = await account.place_order(session, order, dry_run=False)
        updates = streamer.listen(PlacedOrder)
        assert (await asyncio.wait_for(anext(updates), 5)).status == OrderStatus.ROUTED
        assert (await asyncio.wait_for(anext(updates), 5)).status == OrderStatus.LIVE
        new = await account.replace_order(
            session, placed.order.id,
            LimitOrder(legs=order.legs, price=order.price - Decimal("0.01")),
        )  # fmt: skip
        old = await asyncio.wait_for(anext(updates), 5)
        assert (old.id, old.status, old.replacing_order_id) == (
            placed.order.id, OrderStatus.CANCELLED, new.id,
        )  # fmt: skip
        routed = await asyncio.wait_for(anext(updates), 5)
        assert (routed.id, routed.status) == (new.id, OrderStatus.ROUTED)
        assert routed.replaces_order_id == placed.order.id
        assert (await asyncio.wait_for(anext(updates), 5)).status == OrderStatus.LIVE
        await account.delete_order(session, new.id)
        statuses = [(await asyncio.wait_for(anext(updates), 5)).status for _ in range(2)]
        assert statuses == [OrderStatus.CANCEL_REQUESTED, OrderStatus.CANCELLED]


async def test_raw_protocol_acks_and_errors(frozen: PaperExchange, session: Session) -> None:
    await session.refresh()
    token = session.session_token
    async with aiohttp.ClientSession() as http, http.ws_connect(frozen.streamer_url) as ws:

        async def send(message: dict[str, object]) -> dict[str, object]:
            await ws.send_str(json.dumps(message))
            reply = await asyncio.wait_for(ws.receive(), 5)
            assert reply.type == aiohttp.WSMsgType.TEXT
            payload = json.loads(reply.data)
            assert "type" not in payload
            return payload

        early = await send({"auth-token": token, "action": "quote-alerts-subscribe",
                            "request-id": 1})  # fmt: skip
        assert (early["status"], early["message"]) == ("error", "connect-not-completed")
        bad = await send({"auth-token": "Bearer nope", "action": "connect", "request-id": 2,
                          "value": [frozen.account_number]})  # fmt: skip
        assert (bad["status"], bad["request-id"]) == ("error", 2)
        wrong_account = await send({"auth-token": token, "action": "connect",
                                    "request-id": 3, "value": ["5XX99999"]})  # fmt: skip
        assert wrong_account["status"] == "error"
        connected = await send({"auth-token": token, "action": "connect", "request-id": 4,
                                "value": [frozen.account_number]})  # fmt: skip
        assert set(connected) == {"status", "action", "web-socket-session-id", "value",
                                  "request-id"}  # fmt: skip
        assert connected["status"] == "ok" and connected["value"] == [frozen.account_number]
        heartbeat = await send({"auth-token": f"Bearer {token}", "action": "heartbeat",
                                "request-id": 5})  # fmt: skip
        assert set(heartbeat) == {"status", "action", "web-socket-session-id", "request-id"}
        assert heartbeat["web-socket-session-id"] == connected["web-socket-session-id"]
        unknown = await send({"auth-token": token, "action": "dance", "request-id": 6})
        assert unknown["status"] == "error"
        await ws.send_str("{not json")
        garbage = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert garbage["status"] == "error" and "request-id" not in garbage


async def test_invalid_token_surfaces_as_sdk_error(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.revoke_refresh_token("refresh")
    session.session_expiration = float("inf")  # keep the dead token: no refresh attempt
    with pytest.raises(ExceptionGroup) as raised:
        async with _streamer(session, frozen) as streamer:
            await streamer.subscribe_accounts([account])
            await asyncio.sleep(1)
    assert raised.group_contains(TastytradeError, match="invalid-auth-token")


async def test_injected_subscription_error(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.faults.streamer_error("failed")
    with pytest.raises(ExceptionGroup) as raised:
        async with _streamer(session, frozen) as streamer:
            await streamer.subscribe_accounts([account])
            await asyncio.sleep(1)
    assert raised.group_contains(TastytradeError, match="Alert streamer error: failed")


async def test_close_streamers_disconnects_clients(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    with pytest.raises(ExceptionGroup) as raised:
        async with _streamer(session, frozen) as streamer:
            await streamer.subscribe_accounts([account])
            assert frozen.hub.connection_count == 1
            await frozen.close_streamers(1011)
            await asyncio.wait_for(anext(streamer.listen(PlacedOrder)), 5)
    assert raised.group_contains(HTTPXWSException)
    await asyncio.sleep(0.05)
    assert frozen.hub.connection_count == 0
