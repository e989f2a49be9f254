from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot import formatting as fmt
from broker.session import Environment


def test_badges() -> None:
    assert fmt.badge(Environment.PAPER) == "🧪 PAPER"
    assert fmt.badge(Environment.SANDBOX) == "🏖️ SANDBOX"
    assert fmt.badge(Environment.LIVE) == "🔴 LIVE"


def test_money() -> None:
    assert fmt.money(Decimal("1234.5")) == "$1,234.50"
    assert fmt.money(Decimal("-12.3"), signed=True) == "-$12.30"
    assert fmt.money(Decimal("12.3"), signed=True) == "+$12.30"
    assert fmt.money(None) == "—"
    assert fmt.money(Decimal("-0.004"), signed=True) == "$0.00"  # no "-$0.00"


def test_prices_keep_real_precision() -> None:
    assert fmt.price(Decimal("1.2"), "Debit") == "1.20 debit"
    assert fmt.price(Decimal("6000.25")) == "6,000.25"
    assert fmt.price(Decimal("0.0025")) == "0.0025"
    assert fmt.price(None) == "market"


def test_signed_price_follows_sdk_convention() -> None:
    assert fmt.signed_price(Decimal("-1.20")) == "1.20 debit"
    assert fmt.signed_price(Decimal("2.10")) == "2.10 credit"


def test_sanitize_defuses_mentions_and_fences() -> None:
    text = fmt.sanitize("hi @everyone <@&123> ```x```")
    assert "@everyone" not in text
    assert "<@&" not in text
    assert "```" not in text


def test_table_aligns_columns() -> None:
    out = fmt.table(["Sym", "Qty"], [["SPY", "1"], ["AAPL", "100"]], right={1})
    lines = out.splitlines()
    assert lines[0] == "```" and lines[-1] == "```"
    assert lines[1] == "Sym   Qty"
    assert lines[3] == "SPY     1"
    assert lines[4] == "AAPL  100"


def test_chunk_and_mask() -> None:
    assert fmt.chunk([], 10) == [[]]
    assert len(fmt.chunk([[str(i)] for i in range(25)], 10)) == 3
    assert fmt.mask_account("5WT00001") == "…0001"


def test_ago() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    assert fmt.ago(None, now) == "never"
    assert fmt.ago(now - timedelta(seconds=5), now) == "5 s ago"
    assert fmt.ago(now - timedelta(minutes=5), now) == "5 min ago"
