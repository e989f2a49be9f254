"""Chase state and chain links; audit log scrubbing."""

import asyncio
import json
from decimal import Decimal

import pytest

from storage import Database, DuplicateError, InvalidValueError, NewChase, Secret, StorageError

from .conftest import ACCOUNT


def new_chase(key: str = "msg-1", **changes: object) -> NewChase:
    values: dict[str, object] = {
        "idempotency_key": key,
        "guild_id": 1,
        "channel_id": 2,
        "author_id": 3,
        "environment": "paper",
        "account_number": ACCOUNT,
        "ticket_json": json.dumps({"symbol": "SPY", "quantity": "1"}),
        "price_effect": "Debit",
        "start_price": Decimal("1.25"),
        "max_steps": 3,
        "ticks_per_step": 2,
        "interval_seconds": 0.05,
        "natural_price": Decimal("1.40"),
        "tick_schedule_json": json.dumps([["3", "0.05"], [None, "0.10"]]),
        "current_order_id": 5001,
    }
    values.update(changes)
    return NewChase(**values)  # type: ignore[arg-type]


async def test_create_step_and_finish(db: Database) -> None:
    chase = await db.chases.create(new_chase())
    assert chase.status == "working" and chase.steps_done == 0 and chase.steps_left == 3
    assert chase.last_price == Decimal("1.25") and str(chase.natural_price) == "1.40"
    assert chase.ticket == {"symbol": "SPY", "quantity": "1"}
    step1 = await db.chases.record_replacement(chase.chase_id, 5002, Decimal("1.30"))
    step2 = await db.chases.record_replacement(chase.chase_id, 5003, Decimal("1.35"))
    assert (step2.current_order_id, step2.steps_done, step2.last_price) == (
        5003,
        2,
        Decimal("1.35"),
    )
    assert step1.steps_done == 1
    links = await db.chases.links(chase.chase_id)
    assert [(link.order_id, link.replaces_order_id, link.step) for link in links] == [
        (5001, None, 0),
        (5002, 5001, 1),
        (5003, 5002, 2),
    ]
    found = await db.chases.by_order("paper", 5002)
    assert found is not None and found.chase_id == chase.chase_id
    assert [c.chase_id for c in await db.chases.open_chases()] == [chase.chase_id]
    filled = await db.chases.update(chase.chase_id, status="filled")
    assert filled.status == "filled" and await db.chases.open_chases("paper") == []
    with pytest.raises(StorageError, match="cannot go from filled to working"):
        await db.chases.update(chase.chase_id, status="working")
    with pytest.raises(StorageError, match="not working"):
        await db.chases.record_replacement(chase.chase_id, 5004, Decimal("1.40"))


async def test_steps_cannot_exceed_the_maximum(db: Database) -> None:
    chase = await db.chases.create(new_chase(max_steps=1))
    await db.chases.record_replacement(chase.chase_id, 5002, Decimal("1.30"))
    with pytest.raises(StorageError, match="already used all 1 steps"):
        await db.chases.record_replacement(chase.chase_id, 5003, Decimal("1.35"))
    assert len(await db.chases.links(chase.chase_id)) == 2
    left = await db.chases.update(chase.chase_id, status="left_working")
    assert left.status == "left_working"
    assert (await db.chases.update(chase.chase_id, status="filled")).status == "filled"


async def test_one_chase_per_command(db: Database) -> None:
    await db.chases.create(new_chase("k"))
    with pytest.raises(DuplicateError):
        await db.chases.create(new_chase("k"))
    chase = await db.chases.by_idempotency_key("k")
    assert chase is not None and chase.idempotency_key == "k"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ticket_json": "[1, 2]"}, "JSON object"),
        ({"ticket_json": "{"}, "not valid JSON"),
        ({"price_effect": "None"}, "Debit or Credit"),
        ({"ticks_per_step": 4}, "1, 2 or 3"),
        ({"max_steps": 11}, "between 0 and 10"),
        ({"interval_seconds": 0}, "positive"),
        ({"start_price": Decimal("-1.25")}, "non-negative"),
    ],
)
async def test_invalid_chases_are_refused(
    db: Database, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await db.chases.create(new_chase(**changes))


async def test_concurrent_steps_stay_consistent(db: Database) -> None:
    chase = await db.chases.create(new_chase(max_steps=10))
    await asyncio.gather(
        *(
            db.chases.record_replacement(chase.chase_id, 6000 + i, Decimal("1.30"))
            for i in range(10)
        )
    )
    final = await db.chases.require(chase.chase_id)
    links = await db.chases.links(chase.chase_id)
    assert final.steps_done == 10 and len(links) == 11
    # Each link replaces the one before it: the chain has no fork.
    assert [link.replaces_order_id for link in links[1:]] == [link.order_id for link in links[:-1]]


async def test_audit_scrubs_secrets_at_any_depth(db: Database) -> None:
    entry_id = await db.audit.record(
        "order_submitted",
        guild_id=1,
        user_id=2,
        environment="paper",
        command="!tt buy 1 SPY",
        idempotency_key="msg-1",
        details={
            "price": Decimal("1.25"),
            "refresh_token": "rt-123456",
            "Authorization": "Bearer abc",
            "session": {"provider-secret": "ps-1", "account": ACCOUNT},
            "wrapped": Secret("hidden-value"),
            "legs": [{"api_key": "k", "symbol": "SPY"}],
        },
    )
    (entry,) = await db.audit.for_key("msg-1")
    assert entry.entry_id == entry_id and entry.event == "order_submitted"
    assert entry.details == {
        "price": "1.25",
        "refresh_token": "***",
        "Authorization": "***",
        "session": {"provider-secret": "***", "account": ACCOUNT},
        "wrapped": "***",
        "legs": [{"api_key": "***", "symbol": "SPY"}],
    }
    assert [e.entry_id for e in await db.audit.recent(1)] == [entry_id]
    with pytest.raises(InvalidValueError):
        await db.audit.record("")


async def test_with_status_filters_by_status_and_guild(db: Database) -> None:
    first = await db.chases.create(new_chase("a"))
    second = await db.chases.create(new_chase("b", guild_id=9))
    await db.chases.update(second.chase_id, status="left_working")
    both = await db.chases.with_status(["working", "left_working"])
    assert [c.chase_id for c in both] == [first.chase_id, second.chase_id]
    assert [c.chase_id for c in await db.chases.with_status(["left_working"], guild_id=9)] == [
        second.chase_id
    ]
    assert await db.chases.with_status([]) == []
    with pytest.raises(InvalidValueError, match="unknown chase status"):
        await db.chases.with_status(["done"])
