"""`ItemMemo`: positions replies become the same records as the SDK's own parsing gives,
reusing the records of unchanged positions (real replies from the paper exchange)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from tastytrade.account import CurrentPosition

from broker.paper import PaperExchange
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.sync.mapping import position_record
from broker.sync.pages import fetch_body
from broker.sync.runner import positions_memo_for

from .conftest import ENV


async def _positions_body(exchange: PaperExchange, broker: BrokerSession) -> bytes:
    return await fetch_body(broker, f"/accounts/{exchange.account_number}/positions", {})


def _sdk_records(body: bytes) -> list[object]:
    """What `Account.get_positions` then the sync's mapping give for `body`."""
    items = json.loads(body)["data"]["items"]
    return [position_record(ENV, CurrentPosition(**item)) for item in items]


async def test_unchanged_positions_reuse_their_records(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    exchange.seed_history(transactions=20, orders=5, positions=30)
    memo = positions_memo_for(ENV)
    first_body = await _positions_body(exchange, broker)
    first = memo.records(first_body)
    assert first == _sdk_records(first_body) and len(first) == 30
    again = memo.records(first_body)
    assert all(a is b for a, b in zip(again, first, strict=True))

    # A day later: marks moved (and the realized gain of the day is a debit on one).
    exchange.clock.advance(86_400)
    items = json.loads(await _positions_body(exchange, broker))["data"]["items"]
    items[0]["realized-day-gain"], items[0]["realized-day-gain-effect"] = "12.50", "Debit"
    moved = json.dumps({"data": {"items": items}}).encode()
    records = memo.records(moved)
    assert records == _sdk_records(moved)
    assert records[0].realized_day_gain == Decimal("-12.50")
    assert memo.records(moved)[0].realized_day_gain == Decimal("-12.50")  # not flipped twice

    # One position closed, one changed, the rest as before: only the changed one is new.
    changed = [dict(item) for item in items[1:]]
    changed[3]["quantity"] = 99
    body = json.dumps({"data": {"items": changed}}).encode()
    latest = memo.records(body)
    assert latest == _sdk_records(body)
    assert latest[3].quantity == 99
    assert [a is b for a, b in zip(latest, records[1:], strict=True)] == [
        index != 3 for index in range(len(latest))
    ]


async def test_an_unreadable_reply_is_a_contract_error_and_keeps_the_memo(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    exchange.seed_history(transactions=5, orders=2, positions=3)
    memo = positions_memo_for(ENV)
    body = await _positions_body(exchange, broker)
    first = memo.records(body)
    items = json.loads(body)["data"]["items"]
    broken = [dict(items[0], quantity="lots"), *items[1:]]
    for reply in (b"not json", b'{"data": {}}', json.dumps({"data": {"items": broken}}).encode()):
        with pytest.raises(BrokerError) as error:
            memo.records(reply)
        assert error.value.category is ErrorCategory.CONTRACT
    assert all(a is b for a, b in zip(memo.records(body), first, strict=True))
