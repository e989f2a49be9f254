"""Position snapshots and the grouped query (with its timing)."""

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from storage import Database, InvalidValueError, Position

from .conftest import ACCOUNT


def position(symbol: str, underlying: str, **changes: object) -> Position:
    values: dict[str, object] = {
        "environment": "paper",
        "account_number": ACCOUNT,
        "symbol": symbol,
        "instrument_type": "Equity Option",
        "underlying_symbol": underlying,
        "quantity": Decimal("1"),
        "quantity_direction": "Long",
        "average_open_price": Decimal("5.00"),
        "multiplier": Decimal("100"),
        "close_price": Decimal("5.1"),
        "expires_at": datetime(2026, 1, 16, 21, 15, tzinfo=UTC),
    }
    values.update(changes)
    return Position(**values)  # type: ignore[arg-type]


async def test_snapshot_replacement_drops_closed_positions(account_db: Database) -> None:
    await account_db.positions.replace_for_account(
        "paper", ACCOUNT, [position("SPY C600", "SPY"), position("AAPL", "AAPL")]
    )
    await account_db.positions.replace_for_account("paper", ACCOUNT, [position("AAPL", "AAPL")])
    assert [p.symbol for p in await account_db.positions.for_account("paper", ACCOUNT)] == ["AAPL"]
    await account_db.positions.replace_for_account("paper", ACCOUNT, [])
    assert await account_db.positions.for_account("paper", ACCOUNT) == []


async def test_failed_snapshot_keeps_the_previous_one(account_db: Database) -> None:
    await account_db.positions.replace_for_account("paper", ACCOUNT, [position("AAPL", "AAPL")])
    with pytest.raises(InvalidValueError):
        await account_db.positions.replace_for_account(
            "paper", ACCOUNT, [position("MSFT", "MSFT"), position("X", "X", quantity=1.5)]
        )
    # A duplicate symbol fails inside the transaction, after the delete ran.
    with pytest.raises(Exception, match="UNIQUE"):
        await account_db.positions.replace_for_account(
            "paper", ACCOUNT, [position("MSFT", "MSFT"), position("MSFT", "MSFT")]
        )
    assert [p.symbol for p in await account_db.positions.for_account("paper", ACCOUNT)] == ["AAPL"]


async def test_position_must_match_the_account(account_db: Database) -> None:
    with pytest.raises(InvalidValueError, match="belongs to"):
        await account_db.positions.replace_for_account(
            "paper", ACCOUNT, [position("AAPL", "AAPL", account_number="OTHER")]
        )


async def test_grouping_and_pnl(account_db: Database) -> None:
    await account_db.positions.replace_for_account(
        "paper",
        ACCOUNT,
        [
            position("SPY C600", "SPY", mark_price=Decimal("5.50")),
            position(
                "SPY C610",
                "SPY",
                quantity_direction="Short",
                average_open_price=Decimal("3.85"),
                mark_price=Decimal("4.00"),
            ),
            position(
                "AAPL",
                "AAPL",
                instrument_type="Equity",
                multiplier=Decimal("1"),
                quantity=Decimal("10"),
                average_open_price=Decimal("190.10"),
            ),
        ],
    )
    groups = await account_db.positions.by_underlying("paper", ACCOUNT)
    assert [g.underlying_symbol for g in groups] == ["AAPL", "SPY"]
    aapl, spy = groups
    assert aapl.unrealized_pnl is None  # no mark stored
    long_call, short_call = spy.positions
    assert long_call.unrealized_pnl == Decimal("50.00")  # (5.50 - 5.00) * 1 * 100
    assert short_call.signed_quantity == Decimal("-1")
    assert short_call.unrealized_pnl == Decimal("-15.00")  # short loses as the mark rises
    assert spy.unrealized_pnl == Decimal("35.00")
    assert spy.market_value == Decimal("150.00")
    assert str(aapl.positions[0].average_open_price) == "190.10"


async def test_thousand_positions_query_is_fast(account_db: Database) -> None:
    rows = [
        position(f"U{i % 50:02d} OPT{i:04d}", f"U{i % 50:02d}", mark_price=Decimal("5.25"))
        for i in range(1000)
    ]
    await account_db.positions.replace_for_account("paper", ACCOUNT, rows)
    await account_db.positions.by_underlying("paper", ACCOUNT)  # warm the page cache
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        groups = await account_db.positions.by_underlying("paper", ACCOUNT)
        timings.append(time.perf_counter() - start)
    assert len(groups) == 50 and sum(len(g.positions) for g in groups) == 1000
    assert all(g.unrealized_pnl == Decimal("25.00") * len(g.positions) for g in groups)
    best = min(timings)
    print(f"\n1,000-position grouped query: best {best * 1000:.1f} ms of 5")
    assert best < 0.2
