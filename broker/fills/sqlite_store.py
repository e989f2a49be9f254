"""``ChaseStore`` over the project's SQLite repositories (``storage.Database``).

Mapping of engine statuses onto the ``chases.status`` column (the detailed status and the
human-readable outcome are also written to the audit log under the chase's idempotency key,
and read back from there for display):

=================  =============================================================
engine             row
=================  =============================================================
submitting         ``working`` with no current order (resume reconciles it)
working            ``working``
placed             ``left_working`` (no chase; the order works on its own)
left_working       ``left_working``
unknown            ``working`` without an order (reconciled again on restart), or
                   ``left_working`` when the chain exists (the order may still work)
filled             ``filled``
partially_filled,  ``cancelled``
cancelled,
expired
halted             ``halted`` (``cancelled`` once the row has left ``working``)
rejected,          ``not_placed``
not_placed
=================  =============================================================
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tastytrade.utils import PriceEffect

from broker.events import NotificationContext
from broker.fills.model import ChaseOrder, ChaseRecord, ChaseStatus
from broker.fills.policy import ChaseParams
from broker.fills.store import KeyStatus
from broker.orders.pricing import signed_price

if TYPE_CHECKING:
    from storage.audit import AuditNote
    from storage.chases import Chase, NewChase
    from storage.database import Database

__all__ = ["SqliteChaseStore"]

_CONCLUDED_EVENT = "chase_concluded"


def _row_status(status: ChaseStatus, *, has_chain: bool, current_row_status: str) -> str:
    match status:
        case ChaseStatus.SUBMITTING | ChaseStatus.WORKING:
            return "working"
        case ChaseStatus.PLACED | ChaseStatus.LEFT_WORKING:
            return "left_working"
        case ChaseStatus.UNKNOWN:
            return "left_working" if has_chain else "working"
        case ChaseStatus.FILLED:
            return "filled"
        case ChaseStatus.HALTED:
            return "halted" if current_row_status == "working" else "cancelled"
        case ChaseStatus.REJECTED | ChaseStatus.NOT_PLACED:
            # An order that once worked and was then rejected ended like a cancelled one.
            return "cancelled" if has_chain else "not_placed"
        case _:
            return "cancelled"


def _engine_status(row_status: str, current_order_id: int | None) -> ChaseStatus:
    match row_status:
        case "working":
            return ChaseStatus.WORKING if current_order_id is not None else ChaseStatus.SUBMITTING
        case "left_working":
            return ChaseStatus.LEFT_WORKING
        case "filled":
            return ChaseStatus.FILLED
        case "halted":
            return ChaseStatus.HALTED
        case "not_placed":
            return ChaseStatus.NOT_PLACED
        case "failed":
            return ChaseStatus.UNKNOWN
        case _:
            return ChaseStatus.CANCELLED


_PLACEMENT_STATUSES = frozenset({ChaseStatus.WORKING, ChaseStatus.LEFT_WORKING})

_ROW_STATUSES: dict[ChaseStatus, frozenset[str]] = {
    ChaseStatus.SUBMITTING: frozenset({"working"}),
    ChaseStatus.WORKING: frozenset({"working"}),
    ChaseStatus.PLACED: frozenset({"left_working"}),
    ChaseStatus.LEFT_WORKING: frozenset({"left_working"}),
    ChaseStatus.UNKNOWN: frozenset({"working", "left_working", "failed"}),
    ChaseStatus.FILLED: frozenset({"filled"}),
    ChaseStatus.HALTED: frozenset({"halted"}),
    ChaseStatus.NOT_PLACED: frozenset({"not_placed"}),
    ChaseStatus.REJECTED: frozenset({"not_placed"}),
    ChaseStatus.CANCELLED: frozenset({"cancelled"}),
    ChaseStatus.PARTIALLY_FILLED: frozenset({"cancelled"}),
    ChaseStatus.EXPIRED: frozenset({"cancelled"}),
}


class SqliteChaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- submission ------------------------------------------------------------------------

    async def begin_submission(
        self, record: ChaseRecord, *, command_text: str, details: dict[str, object]
    ) -> int | None:
        return await self._db.submissions.open(
            _new_chase(record),
            command_text=command_text,
            created=self._note(record, "chase_created", details),
        )

    async def record_placement(self, record: ChaseRecord, *, order_id: int, adopted: bool) -> None:
        if record.status not in _PLACEMENT_STATUSES:
            raise ValueError(
                f"a placement leaves a chase working or left working, not {record.status}"
            )
        await self._db.submissions.record_placement(
            record.id,
            idempotency_key=record.idempotency_key,
            order_id=order_id,
            price=abs(record.last_price),
            status=_row_status(record.status, has_chain=True, current_row_status="working"),
            steps_done=min(record.steps_done, record.params.max_steps),
            placed=self._note(
                record,
                "order_placed",
                {"chase_id": record.id, "order_id": order_id, "adopted": adopted},
            ),
        )

    async def placed_order_for_key(self, key: str) -> int | None:
        found = await self._db.chases.placement(key, outcome_event=_CONCLUDED_EVENT)
        if found is None:
            return None
        has_chain = found.last_linked_order_id is not None
        status = _engine_status(found.status, found.current_order_id)
        outcome = _outcome_status(found.outcome_details)
        if outcome is not None and _outcome_applies(outcome, found.status, has_chain=has_chain):
            status = outcome
        # Same rule as a ChaseRecord's: the current order, else the chain's last one.
        order_id = found.current_order_id or found.last_linked_order_id
        if order_id is None or status is ChaseStatus.NOT_PLACED:
            return None
        return order_id

    # -- idempotency ----------------------------------------------------------------------

    async def mark_key(
        self, key: str, status: KeyStatus, *, order_id: int | None = None, detail: str = ""
    ) -> None:
        await self._db.idempotency.advance(key, status, order_id=order_id, detail=detail or None)

    # -- chases -----------------------------------------------------------------------------

    async def save(self, record: ChaseRecord) -> None:
        current = await self._db.chases.require(record.id)
        status = _row_status(
            record.status, has_chain=bool(record.chain), current_row_status=current.status
        )
        await self._db.chases.update(
            record.id,
            status=status,
            current_order_id=record.current_order_id,
            steps_done=min(record.steps_done, current.max_steps),
            last_price=abs(record.last_price),
        )

    async def add_link(
        self,
        chase_id: int,
        *,
        order_id: int,
        replaces_order_id: int | None,
        step: int,
        price: Decimal,
    ) -> None:
        await self._db.chases.add_link(
            chase_id, order_id, replaces_order_id=replaces_order_id, price=abs(price), step=step
        )

    async def get(self, chase_id: int) -> ChaseRecord | None:
        chase = await self._db.chases.get(chase_id)
        return None if chase is None else await self._record(chase, with_outcome=True)

    async def by_key(self, key: str) -> ChaseRecord | None:
        chase = await self._db.chases.by_idempotency_key(key)
        return None if chase is None else await self._record(chase, with_outcome=True)

    async def by_order(self, environment: str, order_id: int) -> ChaseRecord | None:
        chase = await self._db.chases.by_order(environment, order_id)
        return None if chase is None else await self._record(chase, with_outcome=False)

    async def with_status(
        self, statuses: frozenset[ChaseStatus], *, guild_id: int | None = None
    ) -> list[ChaseRecord]:
        row_statuses = sorted(set().union(*(_ROW_STATUSES[s] for s in statuses)))
        chases = await self._db.chases.with_status(row_statuses, guild_id=guild_id)
        records = [await self._record(chase, with_outcome=False) for chase in chases]
        return [r for r in records if r.status in statuses]

    async def audit(self, record: ChaseRecord, event: str, details: dict[str, object]) -> None:
        note = self._note(record, event, {"chase_id": record.id, **details})
        await self._db.audit.record(
            note.event,
            guild_id=note.guild_id,
            user_id=note.user_id,
            environment=note.environment,
            command=note.command,
            idempotency_key=note.idempotency_key,
            details=note.details,
        )

    @staticmethod
    def _note(record: ChaseRecord, event: str, details: dict[str, object]) -> AuditNote:
        from storage.audit import AuditNote

        return AuditNote(
            event,
            guild_id=record.guild_id,
            user_id=record.context.author_id,
            environment=record.environment,
            command="chase",
            idempotency_key=record.idempotency_key,
            details=details,
        )

    # -- mapping ---------------------------------------------------------------------------

    async def _record(self, chase: Chase, *, with_outcome: bool) -> ChaseRecord:
        ticket = chase.ticket
        order = ChaseOrder.from_json(ticket["order"])
        effect = PriceEffect(chase.price_effect)
        context = NotificationContext(
            guild_id=chase.guild_id,
            environment=chase.environment,
            channel_id=chase.channel_id or None,
            author_id=chase.author_id or None,
            author_name=ticket.get("author_name"),
            notify_channel_id=ticket.get("notify_channel_id"),
        )
        links = await self._db.chases.links(chase.chase_id)
        status = _engine_status(chase.status, chase.current_order_id)
        message = ""
        if with_outcome:
            # The audit log keeps the detailed outcome; use it while it agrees with the row
            # (a left-working chase may have filled or been cancelled since).
            outcome = await self._outcome(chase.idempotency_key)
            if outcome is not None and _outcome_applies(
                outcome[0], chase.status, has_chain=bool(links)
            ):
                status, message = outcome
        return ChaseRecord(
            id=chase.chase_id,
            idempotency_key=chase.idempotency_key,
            context=context,
            account_number=chase.account_number,
            order=order,
            params=ChaseParams(
                interval_s=chase.interval_seconds,
                ticks=chase.ticks_per_step,
                max_steps=chase.max_steps,
            ),
            status=status,
            start_price=_signed(chase.start_price, effect),
            last_price=_signed(chase.last_price, effect),
            natural_at_submission=Decimal(ticket["natural_at_submission"]),
            created_at=datetime.fromisoformat(ticket["created_at"]),
            current_order_id=chase.current_order_id,
            steps_done=chase.steps_done,
            chain=[link.order_id for link in links],
            message=message,
        )

    async def _outcome(self, key: str) -> tuple[ChaseStatus, str] | None:
        for entry in reversed(await self._db.audit.for_key(key)):
            if entry.event == _CONCLUDED_EVENT:
                status = _outcome_status(entry.details)
                if status is None:
                    return None
                return status, str(entry.details.get("message", ""))
        return None


def _outcome_status(details: dict[str, Any] | None) -> ChaseStatus | None:
    """The status recorded in a ``chase_concluded`` entry (None if absent or unreadable)."""
    if details is None:
        return None
    try:
        return ChaseStatus(details["status"])
    except (KeyError, ValueError):
        return None


def _outcome_applies(outcome: ChaseStatus, row_status: str, *, has_chain: bool) -> bool:
    """Whether the recorded outcome still describes the row (else the row's status wins)."""
    mapped = _row_status(outcome, has_chain=has_chain, current_row_status="working")
    return mapped == row_status or (outcome is ChaseStatus.HALTED and row_status == "cancelled")


def _new_chase(record: ChaseRecord) -> NewChase:
    from storage.chases import NewChase

    context = record.context
    ticket = _ticket(record)
    return NewChase(
        idempotency_key=record.idempotency_key,
        guild_id=context.guild_id,
        channel_id=context.channel_id or 0,
        author_id=context.author_id or 0,
        environment=context.environment,
        account_number=record.account_number,
        ticket_json=json.dumps(ticket),
        price_effect=record.order.effect.value,
        start_price=abs(record.start_price),
        max_steps=record.params.max_steps,
        ticks_per_step=record.params.ticks,
        interval_seconds=record.params.interval_s,
        natural_price=abs(record.natural_at_submission),
        tick_schedule_json=json.dumps(ticket["order"]["schedule"]),
    )


def _signed(magnitude: Decimal, effect: PriceEffect) -> Decimal:
    """Stored magnitudes back to SDK-signed prices (the one sign rule; 0 stays 0)."""
    return signed_price(magnitude, effect) if magnitude else Decimal(0)


def _ticket(record: ChaseRecord) -> dict[str, Any]:
    return {
        "order": record.order.to_json(),
        "natural_at_submission": str(record.natural_at_submission),
        "created_at": record.created_at.isoformat(),
        "author_name": record.context.author_name,
        "notify_channel_id": record.context.notify_channel_id,
    }
