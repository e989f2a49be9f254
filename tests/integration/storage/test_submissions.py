"""A chase submission's writes: one transaction, one worker round trip each."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from storage import Database, DuplicateError, InvalidValueError, NotFoundError, StorageError
from storage.audit import AuditNote

from .hops import HopCounter
from .test_chases_audit import new_chase

CREATED = AuditNote(
    "chase_created",
    guild_id=1,
    user_id=3,
    environment="paper",
    command="chase",
    idempotency_key="msg-1",
    details={"start_price": "1.25", "token": "never stored"},
)


def placed_note(key: str = "msg-1", order_id: int = 5001) -> AuditNote:
    return AuditNote(
        "order_placed",
        guild_id=1,
        user_id=3,
        environment="paper",
        command="chase",
        idempotency_key=key,
        details={"order_id": order_id, "adopted": False},
    )


async def counts(db: Database) -> tuple[int, int, int, int]:
    row = await db.fetch_one(
        "SELECT (SELECT COUNT(*) FROM idempotency_keys), (SELECT COUNT(*) FROM chases), "
        "(SELECT COUNT(*) FROM audit_log), (SELECT COUNT(*) FROM chase_orders)"
    )
    assert row is not None
    return row[0], row[1], row[2], row[3]


async def open_submission(db: Database, key: str = "msg-1") -> int | None:
    return await db.submissions.open(
        new_chase(key, current_order_id=None),
        command_text=f"!tt buy {key}",
        created=replace(CREATED, idempotency_key=key),
    )


async def test_open_claims_the_key_as_submitted_with_its_chase_and_audit(db: Database) -> None:
    with HopCounter(db) as hops:
        chase_id = await open_submission(db)
    assert hops.count == 1
    assert chase_id is not None
    key = await db.idempotency.get("msg-1")
    assert key is not None and key.status == "submitted" and key.order_id is None
    assert (key.guild_id, key.user_id, key.environment, key.account_number) == (
        1,
        3,
        "paper",
        "5WT00001",
    )
    chase = await db.chases.require(chase_id)
    assert chase.status == "working" and chase.current_order_id is None
    assert chase.idempotency_key == "msg-1" and await db.chases.links(chase_id) == []
    [entry] = await db.audit.for_key("msg-1")
    assert entry.event == "chase_created" and entry.command == "chase"
    assert entry.details == {"chase_id": chase_id, "start_price": "1.25", "token": "***"}
    assert next(iter(entry.details)) == "chase_id"


async def test_a_lost_claim_writes_nothing(db: Database) -> None:
    first = await open_submission(db)
    before = await counts(db)
    with HopCounter(db) as hops:
        assert await open_submission(db) is None
    assert hops.count == 1
    assert await counts(db) == before == (1, 1, 1, 0)
    assert (await db.chases.by_idempotency_key("msg-1")).chase_id == first  # type: ignore[union-attr]


async def test_concurrent_opens_have_exactly_one_winner(db: Database) -> None:
    results = await asyncio.gather(*(open_submission(db) for _ in range(20)))
    assert len([r for r in results if r is not None]) == 1
    assert await counts(db) == (1, 1, 1, 0)


async def test_a_failing_insert_rolls_back_the_claim(db: Database) -> None:
    # A chase row already holds the key (written without a claim): the whole unit fails.
    await db.chases.create(new_chase("msg-1"))
    before = await counts(db)
    with pytest.raises(DuplicateError, match=r"chases\.idempotency_key"):
        await open_submission(db)
    assert await counts(db) == before
    assert await db.idempotency.get("msg-1") is None


async def test_invalid_input_is_refused_before_anything_is_queued(db: Database) -> None:
    with HopCounter(db) as hops:
        with pytest.raises(InvalidValueError, match="ticks per step"):
            await db.submissions.open(
                new_chase(ticks_per_step=9), command_text="x", created=CREATED
            )
        with pytest.raises(InvalidValueError, match="idempotency key must not be empty"):
            await db.submissions.open(new_chase(""), command_text="x", created=CREATED)
        with pytest.raises(InvalidValueError, match="audit event name"):
            await db.submissions.open(
                new_chase(), command_text="x", created=replace(CREATED, event="")
            )
    assert hops.count == 0
    assert await counts(db) == (0, 0, 0, 0)


async def record(
    db: Database, chase_id: int, *, status: str = "working", key: str = "msg-1"
) -> None:
    await db.submissions.record_placement(
        chase_id,
        idempotency_key=key,
        order_id=5001,
        price=Decimal("1.30"),
        status=status,
        steps_done=0,
        placed=placed_note(key),
    )


async def test_record_placement_links_points_marks_and_audits_at_once(db: Database) -> None:
    chase_id = await open_submission(db)
    assert chase_id is not None
    with HopCounter(db) as hops:
        await record(db, chase_id)
    assert hops.count == 1
    chase = await db.chases.require(chase_id)
    assert (chase.status, chase.current_order_id, chase.last_price) == (
        "working",
        5001,
        Decimal("1.30"),
    )
    [link] = await db.chases.links(chase_id)
    assert (link.order_id, link.replaces_order_id, link.step, link.price) == (
        5001,
        None,
        0,
        Decimal("1.30"),
    )
    key = await db.idempotency.get("msg-1")
    assert key is not None and key.status == "placed" and key.order_id == 5001
    events = [entry.event for entry in await db.audit.for_key("msg-1")]
    assert events == ["chase_created", "order_placed"]
    await record(db, chase_id)  # the same answer again changes nothing but the audit trail
    assert len(await db.chases.links(chase_id)) == 1


async def test_a_late_order_leaves_a_resolved_key_as_it_was(db: Database) -> None:
    chase_id = await open_submission(db)
    assert chase_id is not None
    await db.chases.update(chase_id, status="not_placed")
    await db.idempotency.mark("msg-1", "not_placed", detail="lost")
    await record(db, chase_id, status="left_working")
    key = await db.idempotency.get("msg-1")
    assert key is not None and key.status == "not_placed" and key.order_id is None
    chase = await db.chases.require(chase_id)
    assert chase.status == "left_working" and chase.current_order_id == 5001


async def test_a_pending_key_passes_through_submitted_to_placed(db: Database) -> None:
    await db.idempotency.claim("msg-1", guild_id=1, user_id=3, command_text="x")
    chase = await db.chases.create(new_chase("msg-1", current_order_id=None))
    await record(db, chase.chase_id)
    key = await db.idempotency.get("msg-1")
    assert key is not None and key.status == "placed" and key.order_id == 5001


async def test_a_refused_chase_move_writes_nothing(db: Database) -> None:
    chase_id = await open_submission(db)
    assert chase_id is not None
    await db.chases.update(chase_id, status="filled")
    before = await counts(db)
    with pytest.raises(StorageError, match=f"chase {chase_id} cannot go from filled to working"):
        await record(db, chase_id)
    assert await counts(db) == before
    assert (await db.idempotency.get("msg-1")).status == "submitted"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="chase 999 does not exist"):
        await record(db, 999)


async def test_advance_moves_only_unresolved_keys_forward(db: Database) -> None:
    await db.idempotency.claim("k", guild_id=1, user_id=2, command_text="x")
    with HopCounter(db) as hops:
        assert await db.idempotency.advance("k", "submitted")
        assert not await db.idempotency.advance("k", "submitted")  # already there
        assert await db.idempotency.advance("k", "placed", order_id=7)
        assert not await db.idempotency.advance("k", "failed")  # resolved keys stay
        assert not await db.idempotency.advance("missing", "failed")
    assert hops.count == 5
    key = await db.idempotency.get("k")
    assert key is not None and key.status == "placed" and key.order_id == 7
    await db.idempotency.claim("p", guild_id=1, user_id=2, command_text="x")
    with pytest.raises(StorageError, match="cannot go from pending to placed"):
        await db.idempotency.advance("p", "placed")
    with pytest.raises(InvalidValueError, match="unknown idempotency status"):
        await db.idempotency.advance("p", "done")


async def test_claim_and_mark_are_one_round_trip_each(db: Database) -> None:
    with HopCounter(db) as hops:
        claim = await db.idempotency.claim("k", guild_id=1, user_id=2, command_text="x")
        marked = await db.idempotency.mark("k", "submitted", detail="sent")
    assert hops.count == 2
    assert claim.won and claim.record.status == "pending"
    assert marked.status == "submitted" and marked.detail == "sent"
    again = await db.idempotency.mark("k", "submitted", order_id=9)  # same status: fields only
    assert again.order_id == 9 and again.detail == "sent"


async def test_placement_is_one_select(db: Database) -> None:
    chase_id = await open_submission(db)
    assert chase_id is not None
    await record(db, chase_id)
    await db.chases.record_replacement(chase_id, 5002, Decimal("1.35"))
    await db.audit.record(
        "chase_concluded", idempotency_key="msg-1", details={"status": "left_working"}
    )
    await db.audit.record("chase_concluded", idempotency_key="msg-1", details={"status": "filled"})
    with HopCounter(db) as hops:
        found = await db.chases.placement("msg-1", outcome_event="chase_concluded")
        missing = await db.chases.placement("other", outcome_event="chase_concluded")
    assert hops.count == 2 and missing is None
    assert found is not None and found.chase_id == chase_id and found.status == "working"
    assert (found.current_order_id, found.last_linked_order_id) == (5002, 5002)
    assert found.outcome_details == {"status": "filled"}
    assert json.dumps(found.outcome_details)  # plain JSON values
