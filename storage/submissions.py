"""A chase submission's writes, each step one transaction in one worker round trip.

Between a trader's Confirm and the order's POST the bot writes exactly once: `open` claims
the command's idempotency key (left ``submitted``), inserts the working chase row and its
audit entry. After the broker accepts the order, `record_placement` links the order,
points the chase at it, marks the key ``placed`` and audits it, again in one transaction.

All-or-nothing is the point: after a crash at any moment the database holds either none of
a step's rows or all of them, so a restart finds a ``submitted`` key *with* its chase row
and reconciles with the broker before anything else (never a claimed key without a chase,
which would answer a re-delivered command with "already processed" and nothing to show).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from storage import codec
from storage.audit import AuditNote, audit_row, insert_entry
from storage.chases import NewChase, advance_placed, insert_chase, insert_link, prepare_chase
from storage.idempotency import advance_key, claim_row, insert_claim

if TYPE_CHECKING:
    from storage.database import Database

__all__ = ["SubmissionsRepository"]


class SubmissionsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self, new: NewChase, *, command_text: str, created: AuditNote) -> int | None:
        """Claim ``new.idempotency_key`` as ``submitted``, insert the working chase and the
        audit entry `created` (its details gain ``chase_id``) in one transaction.

        Returns the new chase id, or None when the key was claimed before: then nothing
        is written. The key's user is ``new.author_id``.
        """
        now = self._db.clock()
        stamp = codec.ts(now, "now")
        claim = claim_row(
            new.idempotency_key,
            status="submitted",
            guild_id=new.guild_id,
            user_id=new.author_id,
            command_text=command_text,
            environment=new.environment,
            account_number=new.account_number,
            now=now,
        )
        chase = prepare_chase(new, stamp)
        audit_row(created, stamp)  # refuse a malformed entry before anything is queued

        def open_submission(raw: sqlite3.Connection) -> int | None:
            if not insert_claim(raw, claim):
                return None
            chase_id = insert_chase(raw, chase)
            details = {"chase_id": chase_id, **created.details}
            insert_entry(raw, audit_row(replace(created, details=details), stamp))
            return chase_id

        return await self._db.run_transaction(open_submission)

    async def record_placement(
        self,
        chase_id: int,
        *,
        idempotency_key: str,
        order_id: int,
        price: Decimal,
        status: str,
        steps_done: int,
        placed: AuditNote,
    ) -> None:
        """The broker accepted (or reconciliation found) `order_id`: in one transaction link
        it as step 0 at `price` (a magnitude), move the chase to `status` pointing at it,
        mark the key ``placed`` with the order id and append the audit entry `placed`.

        The key moves only while unresolved (a key already reported not placed stays so:
        the order surfaced late); a ``pending`` key, left by a version that claimed and
        marked in separate steps, passes through ``submitted``.
        """
        stamp = codec.ts(self._db.clock(), "now")
        encoded = codec.non_negative(price, "price")
        entry = audit_row(placed, stamp)

        def record(raw: sqlite3.Connection) -> None:
            advance_placed(
                raw,
                chase_id,
                status=status,
                order_id=order_id,
                steps_done=steps_done,
                last_price=encoded,
                now=stamp,
            )
            insert_link(raw, chase_id, order_id, None, 0, encoded, stamp)
            advance_key(
                raw,
                idempotency_key,
                "placed",
                order_id=order_id,
                detail=None,
                now=stamp,
                via_submitted=True,
            )
            insert_entry(raw, entry)

        await self._db.run_transaction(record)
