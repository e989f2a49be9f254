"""Orders: idempotent upserts, newest version wins, legs/fills, replace chains."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from storage import (
    Account,
    Database,
    InvalidValueError,
    Order,
    OrderFill,
    OrderLeg,
    StorageError,
    split_signed_price,
)

from .conftest import ACCOUNT

T0 = datetime(2026, 1, 2, 15, 4, 5, 123000, tzinfo=UTC)


def spread(order_id: int, status: str = "Live", at: datetime = T0, **changes: object) -> Order:
    """A 1.25 debit call spread, like the recorded /orders payload."""
    filled = status == "Filled"
    legs = (
        OrderLeg(
            "SPY   260116C00600000",
            "Equity Option",
            "Buy to Open",
            Decimal("1"),
            Decimal("0") if filled else Decimal("1"),
            (OrderFill(f"f{order_id}a", Decimal("1"), Decimal("5.10"), at, "TEST_A"),)
            if filled
            else (),
        ),
        OrderLeg(
            "SPY   260116C00610000",
            "Equity Option",
            "Sell to Open",
            Decimal("1"),
            Decimal("0") if filled else Decimal("1"),
            (OrderFill(f"f{order_id}b", Decimal("1"), Decimal("3.85"), at),) if filled else (),
        ),
    )
    order = Order(
        environment="paper",
        order_id=order_id,
        account_number=ACCOUNT,
        status=status,
        order_type="Limit",
        time_in_force="Day",
        updated_at=at,
        underlying_symbol="SPY",
        underlying_instrument_type="Equity",
        size=Decimal("1"),
        price=Decimal("1.25"),
        price_effect="Debit",
        filled_quantity=Decimal("1") if filled else Decimal("0"),
        received_at=T0,
        legs=legs,
    )
    return replace(order, **changes)  # type: ignore[arg-type]


async def count(db: Database, table: str) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


async def test_round_trip_with_legs_and_fills(account_db: Database) -> None:
    await account_db.orders.upsert_many([spread(5001, "Filled")])
    order = await account_db.orders.get("paper", 5001)
    assert order is not None
    assert order.status == "Filled" and order.price == Decimal("1.25")
    assert order.signed_price == Decimal("-1.25")
    assert [leg.action for leg in order.legs] == ["Buy to Open", "Sell to Open"]
    assert order.legs[0].fills[0].fill_price == Decimal("5.10")
    assert str(order.legs[0].fills[0].fill_price) == "5.10"
    assert order.legs[0].fills[0].destination_venue == "TEST_A"
    assert order.updated_at == T0 and order.updated_at.tzinfo is not None


async def test_rerunning_a_page_never_duplicates(account_db: Database) -> None:
    page = [spread(i, "Filled") for i in range(1, 51)]
    for _ in range(3):
        assert await account_db.orders.upsert_many(page) == 50
    assert await count(account_db, "orders") == 50
    assert await count(account_db, "order_legs") == 100
    assert await count(account_db, "order_fills") == 100


async def test_newer_updated_at_wins_in_either_arrival_order(account_db: Database) -> None:
    live = spread(5001, "Live", T0)
    filled = spread(5001, "Filled", T0 + timedelta(seconds=1))
    await account_db.orders.upsert_many([filled])
    await account_db.orders.upsert_many([live])  # a stale REST page arriving late
    stored = await account_db.orders.get("paper", 5001)
    assert stored is not None and stored.status == "Filled"
    assert stored.legs[0].remaining_quantity == Decimal("0")
    assert stored.filled_quantity == Decimal("1")

    other = spread(5002, "Live", T0)
    await account_db.orders.upsert_many([other])
    await account_db.orders.upsert_many(
        [replace(other, status="Cancelled", updated_at=T0 + timedelta(1))]
    )
    stored = await account_db.orders.get("paper", 5002)
    assert stored is not None and stored.status == "Cancelled"


async def test_same_timestamp_prefers_the_terminal_status(account_db: Database) -> None:
    await account_db.orders.upsert_many([spread(5001, "Filled", T0)])
    await account_db.orders.upsert_many([spread(5001, "Live", T0)])
    stored = await account_db.orders.get("paper", 5001)
    assert stored is not None and stored.status == "Filled"
    assert stored.legs[0].remaining_quantity == Decimal("0")


async def test_open_orders_for_account(account_db: Database) -> None:
    await account_db.orders.upsert_many(
        [spread(1, "Live"), spread(2, "Filled"), spread(3, "Received"), spread(4, "Cancelled")]
    )
    assert [o.order_id for o in await account_db.orders.open_for_account("paper", ACCOUNT)] == [
        1,
        3,
    ]
    assert await account_db.orders.open_for_account("sandbox", ACCOUNT) == []


async def test_replace_chain_is_linked_both_ways(account_db: Database) -> None:
    # 5001 replaced by 5002 (the exchange reports the link on the new order only).
    await account_db.orders.upsert_many([spread(5001, "Live")])
    await account_db.orders.upsert_many(
        [spread(5002, "Contingent", T0 + timedelta(seconds=1), replaces_order_id=5001)]
    )
    old = await account_db.orders.get("paper", 5001)
    assert old is not None and old.replaced_by_order_id == 5002
    # The old order's next version (Cancelled, no link in this payload) keeps the link.
    await account_db.orders.upsert_many([spread(5001, "Cancelled", T0 + timedelta(seconds=2))])
    old = await account_db.orders.get("paper", 5001)
    assert old is not None and old.status == "Cancelled" and old.replaced_by_order_id == 5002
    # Third link reported only on the old side, before the new order is stored.
    await account_db.orders.upsert_many(
        [spread(5002, "Cancelled", T0 + timedelta(seconds=3), replaced_by_order_id=5003)]
    )
    await account_db.orders.upsert_many([spread(5003, "Filled", T0 + timedelta(seconds=4))])
    newest = await account_db.orders.get("paper", 5003)
    assert newest is not None and newest.replaces_order_id == 5002

    for start in (5001, 5002, 5003):
        chain = await account_db.orders.chain("paper", start)
        assert [o.order_id for o in chain] == [5001, 5002, 5003]
    assert await account_db.orders.chain("paper", 9999) == []


async def test_chain_links_from_an_older_version_are_kept(account_db: Database) -> None:
    await account_db.orders.upsert_many([spread(5001, "Cancelled", T0 + timedelta(seconds=5))])
    # An older payload carrying the link must not overwrite data, but its link is kept.
    await account_db.orders.upsert_many([spread(5001, "Live", T0, replaced_by_order_id=5002)])
    stored = await account_db.orders.get("paper", 5001)
    assert stored is not None and stored.status == "Cancelled"
    assert stored.replaced_by_order_id == 5002


async def test_chain_survives_a_cycle_in_bad_data(account_db: Database) -> None:
    await account_db.orders.upsert_many(
        [spread(1, replaces_order_id=2), spread(2, replaces_order_id=1)]
    )
    assert sorted(o.order_id for o in await account_db.orders.chain("paper", 1)) == [1, 2]


async def test_external_identifier_lookup(account_db: Database) -> None:
    await account_db.orders.upsert_many([spread(7, external_identifier="tt-abc")])
    await account_db.orders.upsert_many([spread(7, "Filled", T0 + timedelta(seconds=1))])
    found = await account_db.orders.by_external_identifier("paper", "tt-abc")
    assert [o.order_id for o in found] == [7] and found[0].status == "Filled"


async def test_price_sign_rules(account_db: Database) -> None:
    assert split_signed_price(Decimal("-1.25")) == (Decimal("1.25"), "Debit")
    assert split_signed_price(Decimal("0.50")) == (Decimal("0.50"), "Credit")
    assert split_signed_price(Decimal("0")) == (Decimal("0"), None)
    assert split_signed_price(None) == (None, None)
    with pytest.raises(InvalidValueError, match="non-negative magnitude"):
        await account_db.orders.upsert_many([spread(1, price=Decimal("-1.25"))])
    with pytest.raises(InvalidValueError, match="needs price_effect"):
        await account_db.orders.upsert_many([spread(1, price_effect=None)])
    with pytest.raises(InvalidValueError, match="naive"):
        await account_db.orders.upsert_many([spread(1, updated_at=datetime(2026, 1, 2))])
    assert await count(account_db, "orders") == 0


async def test_a_bad_row_fails_the_whole_page(account_db: Database) -> None:
    await account_db.accounts.upsert(Account("paper", "OTHER"))
    page = [spread(1), spread(2, account_number="NOT-STORED")]
    with pytest.raises(StorageError, match="must be stored first"):
        await account_db.orders.upsert_many(page)
    assert await count(account_db, "orders") == 0


async def test_recent_orders_newest_first(account_db: Database) -> None:
    await account_db.orders.upsert_many(
        [spread(i, "Filled", T0 + timedelta(minutes=i)) for i in range(1, 6)]
    )
    assert [o.order_id for o in await account_db.orders.recent("paper", ACCOUNT, limit=3)] == [
        5,
        4,
        3,
    ]
