"""Persistence port of the fill-retry engine.

The engine talks to :class:`ChaseStore`; :class:`SqliteChaseStore` implements it over the
project's SQLite repositories (``storage``). Keeping the port narrow keeps SQL out of the
engine and makes the persisted state explicit: a chase row is written *before* anything is
sent to the exchange, and every link of the replace chain is written as soon as it is known.

The two writes around a submission are single transactions (``begin_submission`` before
the POST, ``record_placement`` after the broker's answer), so a crash leaves either all of
a step or none of it: a claimed key always has its chase row, and a linked order always
has its chase pointing at it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from broker.fills.model import ChaseRecord, ChaseStatus

__all__ = ["ChaseStore", "KeyStatus"]

KeyStatus = str  # "pending" | "submitted" | "placed" | "not_placed" | "failed"


class ChaseStore(Protocol):
    async def begin_submission(
        self, record: ChaseRecord, *, command_text: str, details: dict[str, object]
    ) -> int | None:
        """One transaction: claim ``record.idempotency_key`` (left ``submitted``), insert the
        chase (``record.id`` is ignored) and audit ``chase_created`` with ``details``.

        Returns the new chase id, or None if the key was claimed before (nothing written).
        """
        ...

    async def record_placement(self, record: ChaseRecord, *, order_id: int, adopted: bool) -> None:
        """One transaction once ``order_id`` is known to be at the exchange: link it (step 0),
        save ``record`` (WORKING or LEFT_WORKING, pointing at it), mark the key ``placed``
        (unless already resolved) and audit ``order_placed``."""
        ...

    async def placed_order_for_key(self, key: str) -> int | None:
        """The order a command key placed: its chase's current order (else the chain's last),
        None when nothing was placed or the chase ended NOT_PLACED. One query."""
        ...

    async def mark_key(
        self, key: str, status: KeyStatus, *, order_id: int | None = None, detail: str = ""
    ) -> None:
        """Move an unresolved key forward; a missing, same-status or resolved key is left
        as it is (resolved keys never move again)."""
        ...

    async def save(self, record: ChaseRecord) -> None:
        """Persist the mutable fields: status, current order, steps, prices, message."""
        ...

    async def add_link(
        self,
        chase_id: int,
        *,
        order_id: int,
        replaces_order_id: int | None,
        step: int,
        price: Decimal,
    ) -> None:
        """Record one order of the replace chain (idempotent per order id)."""
        ...

    async def get(self, chase_id: int) -> ChaseRecord | None: ...

    async def by_key(self, key: str) -> ChaseRecord | None: ...

    async def by_order(self, environment: str, order_id: int) -> ChaseRecord | None:
        """The chase that owns ``order_id`` (any link of its chain)."""
        ...

    async def with_status(
        self, statuses: frozenset[ChaseStatus], *, guild_id: int | None = None
    ) -> list[ChaseRecord]: ...

    async def audit(self, record: ChaseRecord, event: str, details: dict[str, object]) -> None: ...
