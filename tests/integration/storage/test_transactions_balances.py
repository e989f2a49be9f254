"""Transactions (idempotent pages, recent query) and balance snapshots."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from storage import BalanceSnapshot, Database, InvalidValueError, Transaction

from .conftest import ACCOUNT

T0 = datetime(2026, 6, 5, 13, 30, 0, 707000, tzinfo=UTC)


def trade(transaction_id: int, at: datetime = T0, **changes: object) -> Transaction:
    """The recorded SMCI option fill: value -75.0, net -76.12 (debits are negative)."""
    tx = Transaction(
        environment="paper",
        transaction_id=transaction_id,
        account_number=ACCOUNT,
        transaction_type="Trade",
        transaction_sub_type="Buy to Open",
        description="Bought 1 SMCI 06/05/26 Call 45.00 @ 0.75",
        executed_at=at,
        transaction_date=date(2026, 6, 5),
        value=Decimal("-75.0"),
        net_value=Decimal("-76.12"),
        fees=Decimal("-1.12"),
        is_estimated_fee=True,
        symbol="SMCI  260605C00045000",
        instrument_type="Equity Option",
        underlying_symbol="SMCI",
        action="Buy to Open",
        quantity=Decimal("1.0"),
        price=Decimal("0.75"),
        order_id=1033431,
    )
    return replace(tx, **changes)  # type: ignore[arg-type]


async def test_page_round_trip_is_exact(account_db: Database) -> None:
    await account_db.transactions.upsert_page([trade(1735820)])
    (stored,) = await account_db.transactions.recent("paper", ACCOUNT)
    assert stored == trade(1735820)
    assert str(stored.net_value) == "-76.12" and str(stored.quantity) == "1.0"


async def test_rerun_never_duplicates_and_updates_in_place(account_db: Database) -> None:
    page = [trade(i, T0 + timedelta(seconds=i)) for i in range(1, 251)]
    for _ in range(2):
        assert await account_db.transactions.upsert_page(page) == 250
    assert await account_db.transactions.count("paper", ACCOUNT) == 250
    final_fee = replace(page[0], is_estimated_fee=False, fees=Decimal("-1.14"))
    await account_db.transactions.upsert_page([final_fee])
    assert await account_db.transactions.count("paper", ACCOUNT) == 250
    first = next(
        t
        for t in await account_db.transactions.for_order("paper", 1033431)
        if t.transaction_id == 1
    )
    assert first.is_estimated_fee is False and first.fees == Decimal("-1.14")


async def test_recent_is_newest_first_and_filterable(account_db: Database) -> None:
    await account_db.transactions.upsert_page(
        [
            trade(1, T0),
            trade(2, T0 + timedelta(minutes=1), symbol="AAPL", underlying_symbol="AAPL"),
            trade(3, T0 + timedelta(minutes=2)),
        ]
    )
    assert [t.transaction_id for t in await account_db.transactions.recent("paper", ACCOUNT)] == [
        3,
        2,
        1,
    ]
    smci = await account_db.transactions.recent("paper", ACCOUNT, symbol="SMCI")
    assert [t.transaction_id for t in smci] == [3, 1]
    assert len(await account_db.transactions.recent("paper", ACCOUNT, limit=1)) == 1


async def test_bad_row_rejects_the_page(account_db: Database) -> None:
    with pytest.raises(InvalidValueError, match="value must be a Decimal"):
        await account_db.transactions.upsert_page([trade(1), trade(2, value=-75.0)])
    assert await account_db.transactions.count("paper", ACCOUNT) == 0


async def test_balance_snapshots_latest_wins(account_db: Database) -> None:
    first = BalanceSnapshot(
        "paper",
        ACCOUNT,
        net_liquidating_value=Decimal("100000.0"),
        cash_balance=Decimal("100000.0"),
        equity_buying_power=Decimal("200000.0"),
        derivative_buying_power=Decimal("100000.0"),
        taken_at=T0,
    )
    stored = await account_db.balances.add_snapshot(first)
    assert stored == first
    second = replace(first, net_liquidating_value=Decimal("99873.86"), taken_at=None)
    latest = await account_db.balances.add_snapshot(second)
    assert latest.taken_at is not None and latest.taken_at > T0
    assert await account_db.balances.latest("paper", ACCOUNT) == latest
    assert str(latest.net_liquidating_value) == "99873.86"
    assert [
        s.net_liquidating_value for s in await account_db.balances.history("paper", ACCOUNT)
    ] == [
        Decimal("99873.86"),
        Decimal("100000.0"),
    ]
    assert await account_db.balances.latest("sandbox", ACCOUNT) is None
