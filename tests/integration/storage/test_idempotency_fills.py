"""Idempotency claims and fill events: exactly one winner under concurrency."""

import asyncio
from decimal import Decimal

import pytest

from storage import Database, NotFoundError, StorageError, dedupe_key


async def test_concurrent_claims_have_exactly_one_winner(db: Database) -> None:
    claims = await asyncio.gather(
        *(
            db.idempotency.claim(
                "msg-123", guild_id=1, user_id=user, command_text="!tt buy 1 SPY 600C @ 1.25"
            )
            for user in range(50)
        )
    )
    winners = [claim for claim in claims if claim.won]
    assert len(winners) == 1
    assert all(claim.record.user_id == winners[0].record.user_id for claim in claims)
    assert all(claim.same_command for claim in claims)
    row = await db.fetch_one("SELECT COUNT(*) FROM idempotency_keys")
    assert row is not None and row[0] == 1


async def test_claim_reports_a_different_command_for_the_same_key(db: Database) -> None:
    await db.idempotency.claim("k", guild_id=1, user_id=2, command_text="buy 1")
    second = await db.idempotency.claim("k", guild_id=1, user_id=2, command_text="buy 100")
    assert not second.won and not second.same_command


async def test_status_moves_forward_only(db: Database) -> None:
    claim = await db.idempotency.claim(
        "k", guild_id=1, user_id=2, command_text="x", environment="paper", account_number="A1"
    )
    assert claim.record.status == "pending" and claim.record.environment == "paper"
    submitted = await db.idempotency.mark("k", "submitted")
    assert submitted.status == "submitted" and not submitted.resolved
    placed = await db.idempotency.mark("k", "placed", order_id=5001)
    assert placed.order_id == 5001 and placed.resolved
    with pytest.raises(StorageError, match="cannot go from placed to pending"):
        await db.idempotency.mark("k", "pending")
    with pytest.raises(StorageError, match="unknown idempotency status"):
        await db.idempotency.mark("k", "done")
    with pytest.raises(NotFoundError):
        await db.idempotency.mark("never", "failed")


async def test_unresolved_keys_for_reconciliation(db: Database) -> None:
    for key in ("a", "b", "c"):
        await db.idempotency.claim(key, guild_id=1, user_id=2, command_text=key)
    await db.idempotency.mark("b", "submitted")
    await db.idempotency.mark("c", "not_placed", detail="rejected: margin_check_failed")
    assert [r.key for r in await db.idempotency.unresolved()] == ["a", "b"]
    record = await db.idempotency.get("c")
    assert record is not None and record.detail == "rejected: margin_check_failed"


async def test_fill_event_claimed_exactly_once(db: Database) -> None:
    key = dedupe_key("paper", 5001, filled_quantity=Decimal("1"))
    results = await asyncio.gather(
        *(
            db.fill_events.claim(
                key,
                {"order_id": 5001, "price": Decimal("1.25")},
                environment="paper",
                order_id=5001,
            )
            for _ in range(20)
        )
    )
    assert results.count(True) == 1
    event = await db.fill_events.get(key)
    assert event is not None and not event.delivered and event.payload["price"] == "1.25"
    assert [e.dedupe_key for e in await db.fill_events.undelivered()] == [key]
    await db.fill_events.mark_delivered(key)
    assert await db.fill_events.undelivered() == []
    assert await db.fill_events.claim(key, {}) is False
    assert [e.dedupe_key for e in await db.fill_events.for_order("paper", 5001)] == [key]
    with pytest.raises(NotFoundError):
        await db.fill_events.mark_delivered("unknown")


def test_dedupe_keys_normalise_quantities() -> None:
    one = dedupe_key("paper", 7, filled_quantity=Decimal("1"))
    assert one == dedupe_key("paper", 7, filled_quantity=Decimal("1.0"))
    assert one != dedupe_key("paper", 7, filled_quantity=Decimal("2"))
    assert dedupe_key("paper", 7, filled_quantity=Decimal("10")).endswith("filled=10")
    assert "fill=f1" in dedupe_key("sandbox", 7, fill_id="f1")
    with pytest.raises(ValueError, match="fill id or the filled quantity"):
        dedupe_key("paper", 7)
