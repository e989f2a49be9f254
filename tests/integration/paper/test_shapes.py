"""The exchange's payloads against recorded real Tastytrade payloads (key sets).

Documented differences:
- orders: the exchange also sends `live-at`, `in-flight-at`, `leg-count`, `source`,
  `external-identifier` and `cancelled-size` (all in the SDK model or in real stream
  messages); complex-order keys only exist on complex orders, which it does not serve;
- market data: no dividend or `volume-ext` fields (no corporate actions), plus
  `tick-size` (present in real option/future items);
- streamer error acks carry a `request-id` so the SDK can report them.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction

from broker.paper import PaperExchange

from .conftest import eventually, leg

# Copies (with their licences) of real recorded payloads, kept in the repository so this
# check runs from a clean clone anywhere.
RECORDED = Path(__file__).resolve().parents[2] / "data" / "tastytrade" / "recorded"
ORDER_EXTRAS = {"live-at", "in-flight-at", "leg-count", "source", "external-identifier",
                "cancelled-size"}  # fmt: skip


def _recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def _stream(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RECORDED / name).read_text().splitlines() if line]


async def _raw(exchange: PaperExchange, session: Session, path: str) -> Any:
    await session.refresh()
    headers = {"Authorization": f"Bearer {session.session_token}"}
    async with httpx2.AsyncClient(base_url=exchange.api_url, headers=headers) as client:
        response = await client.get(path)
    assert response.status_code == 200
    return response.json()["data"]


def _assert_same_keys(ours: dict[str, Any], real: dict[str, Any], extras: set[str]) -> None:
    assert set(real) - set(ours) == set(), "keys the real API sends that we do not"
    assert set(ours) - set(real) <= extras, "undocumented extra keys"


async def test_order_and_fill_shapes(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    resting = LimitOrder(legs=[leg(InstrumentType.EQUITY, "AAPL", OrderAction.BUY_TO_OPEN)],
                         price=Decimal("-299.00"))  # fmt: skip
    first = await account.place_order(session, resting, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Live")
    second = await account.replace_order(
        session, first.order.id, LimitOrder(legs=resting.legs, price=Decimal("-299.01"))
    )
    await eventually(lambda: frozen.orders()[-1].status == "Live")
    await account.delete_order(session, second.id)
    await eventually(lambda: frozen.orders()[-1].status == "Cancelled")
    live = await _raw(frozen, session, f"/accounts/{account.account_number}/orders/live")
    ours = {o["id"]: o for o in live["items"]}
    real = {
        o["id"]: o for o in _recorded("tastytrade-mcp/tastytrade_get_live_orders.json")["items"]
    }
    # 1075261 was replaced by 1075264, which was then cancelled: the same story as ours
    _assert_same_keys(ours[first.order.id], real[1075261], ORDER_EXTRAS)
    _assert_same_keys(ours[second.id], real[1075264], ORDER_EXTRAS)
    for order_id, real_id in ((first.order.id, 1075261), (second.id, 1075264)):
        assert set(ours[order_id]["legs"][0]) == set(real[real_id]["legs"][0])


async def test_transaction_shapes(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    option = frozen.universe.options_of("AMD")[200].symbol
    ask = frozen.market.quote(option).ask
    order = LimitOrder(legs=[leg(InstrumentType.EQUITY_OPTION, option, OrderAction.BUY_TO_OPEN)],
                       price=-ask)  # fmt: skip
    await account.place_order(session, order, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Filled")
    rows = await _raw(frozen, session, f"/accounts/{account.account_number}/transactions")
    trade = next(t for t in rows["items"] if t["transaction-type"] == "Trade")
    deposit = next(t for t in rows["items"] if t["transaction-type"] == "Money Movement")
    real = _recorded("tastytrade-mcp/tastytrade_get_transactions.json")["items"]
    _assert_same_keys(trade, real[0], set())
    _assert_same_keys(deposit, real[1], set())


async def test_quote_shapes(frozen: PaperExchange, session: Session) -> None:
    data = await _raw(frozen, session, "/market-data/by-type?equity=AAPL")
    real = next(
        i for i in _recorded("tastytrade-mcp/tastytrade_get_quote.json")["items"]
        if i["symbol"] == "AAPL"
    )  # fmt: skip
    no_dividends = set(real) - {"dividend-amount", "dividend-frequency", "volume-ext"}
    _assert_same_keys(data["items"][0], {k: real[k] for k in no_dividends}, {"tick-size"})


async def test_dry_run_shapes(frozen: PaperExchange, session: Session, account: Account) -> None:
    await session.refresh()
    order = LimitOrder(legs=[leg(InstrumentType.EQUITY, "SPY", OrderAction.SELL_TO_CLOSE)],
                       price=Decimal("900"))  # fmt: skip
    headers = {"Authorization": f"Bearer {session.session_token}"}
    async with httpx2.AsyncClient(base_url=frozen.api_url, headers=headers) as client:
        response = await client.post(
            f"/accounts/{account.account_number}/orders/dry-run",
            content=order.model_dump_json(exclude_none=True, by_alias=True),
        )
    ours = response.json()["data"]
    real = _recorded("tastytrade-mcp/tastytrade_dry_run_complex_order.json")
    assert set(ours["buying-power-effect"]) == set(real["buying-power-effect"])
    assert set(ours["fee-calculation"]) == set(real["fee-calculation"])
    [warning] = ours["warnings"]
    assert warning["code"] == real["warnings"][0]["code"] == "closing_with_no_position"
    assert set(warning) == set(real["warnings"][0])


async def test_stream_message_shapes(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    await session.refresh()
    real_messages = _stream("quantconnect-lean/qc_stream_messages.jsonl")
    real_by_status = {m["data"]["status"]: m for m in real_messages[1:4]}  # NOK limit
    real_acks = _stream("quantconnect-lean/qc_stream_acks.jsonl")
    async with aiohttp.ClientSession() as http, http.ws_connect(frozen.streamer_url) as ws:
        await ws.send_str(json.dumps({"auth-token": f"Bearer {session.session_token}",
                                      "action": "connect", "request-id": 1,
                                      "value": [account.account_number]}))  # fmt: skip
        ack = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert set(ack) == set(real_acks[1])
        await ws.send_str(json.dumps({"auth-token": session.session_token,
                                      "action": "heartbeat", "request-id": 2}))  # fmt: skip
        assert set(json.loads((await asyncio.wait_for(ws.receive(), 5)).data)) == set(real_acks[0])
        frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
        order = LimitOrder(legs=[leg(InstrumentType.EQUITY, "AAPL", OrderAction.BUY_TO_OPEN)],
                           price=Decimal("-300.20"))  # fmt: skip
        await account.place_order(session, order, dry_run=False)
        seen: dict[str, dict[str, Any]] = {}
        while "Filled" not in seen:
            message = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if message["type"] == "Order":
                seen[message["data"]["status"]] = message
    for status in ("Routed", "Live", "Filled"):
        ours, real = seen[status], real_by_status[status]
        assert set(ours) == set(real)
        _assert_same_keys(ours["data"], real["data"], ORDER_EXTRAS)
        assert set(ours["data"]["legs"][0]) == set(real["data"]["legs"][0])
    fill_keys = set(real_by_status["Filled"]["data"]["legs"][0]["fills"][0])
    assert fill_keys <= set(seen["Filled"]["data"]["legs"][0]["fills"][0])
