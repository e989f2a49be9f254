"""Fill-retry ("chase") state, persisted so a restart can resume or report every chase.

A chase belongs to one command (unique idempotency key). Prices are magnitudes; the
chase's ``price_effect`` (Debit/Credit) carries the sign. Every order of the replace chain
is a row in ``chase_orders``; `record_replacement` adds a link and advances the chase in
one transaction, so the chain and the chase never disagree. `create` and `placement` are
one worker round trip each; `storage.submissions` composes the statement functions here
(`prepare_chase`, `insert_chase`, `insert_link`, `advance_placed`) into larger transactions.

Status moves: ``working`` -> any other status; ``left_working`` (the last order was left
as a DAY order) -> filled | cancelled; ``halted`` -> filled | cancelled | left_working;
``not_placed`` and ``failed`` -> left_working | filled | cancelled only when an order reported
lost turns up late (the engine adopts it); filled and cancelled are final.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError, StorageError
from storage.guilds import MAX_CHASE_STEPS, UNSET, _Unset

if TYPE_CHECKING:
    from storage.database import Database

STATUSES: Final = (
    "working",
    "filled",
    "left_working",
    "cancelled",
    "not_placed",
    "failed",
    "halted",
)
_NEXT: Final[dict[str, frozenset[str]]] = {
    "working": frozenset(STATUSES) - {"working"},
    "left_working": frozenset({"filled", "cancelled"}),
    "halted": frozenset({"filled", "cancelled", "left_working"}),
    "filled": frozenset(),
    "cancelled": frozenset(),
    # An order reported lost (a timed-out submission the exchange processed late) can still
    # surface; the chase engine then adopts it instead of leaving it orphaned.
    "not_placed": frozenset({"left_working", "filled", "cancelled"}),
    "failed": frozenset({"left_working", "filled", "cancelled"}),
}
#: status -> the statuses a chase may move to it from (derived from _NEXT, never edited).
_PREVIOUS: Final[dict[str, tuple[str, ...]]] = {
    status: tuple(before for before in STATUSES if status in _NEXT[before]) for status in STATUSES
}


@dataclass(frozen=True, slots=True)
class NewChase:
    """What the fill-retry engine knows when it starts a chase."""

    idempotency_key: str
    guild_id: int
    channel_id: int
    author_id: int
    environment: str
    account_number: str
    ticket_json: str  # the parsed order ticket, as a JSON object
    price_effect: str  # Debit | Credit
    start_price: Decimal  # magnitude
    max_steps: int
    ticks_per_step: int
    interval_seconds: float
    natural_price: Decimal | None = None  # far side (ask for a buy) at submission
    tick_schedule_json: str = "[]"
    current_order_id: int | None = None


@dataclass(frozen=True, slots=True)
class Chase:
    chase_id: int
    idempotency_key: str
    guild_id: int
    channel_id: int
    author_id: int
    environment: str
    account_number: str
    ticket_json: str
    status: str
    current_order_id: int | None
    steps_done: int
    max_steps: int
    ticks_per_step: int
    interval_seconds: float
    price_effect: str
    start_price: Decimal
    last_price: Decimal
    natural_price: Decimal | None
    tick_schedule_json: str
    created_at: datetime
    updated_at: datetime

    @property
    def is_working(self) -> bool:
        return self.status == "working"

    @property
    def steps_left(self) -> int:
        return self.max_steps - self.steps_done

    @property
    def ticket(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.ticket_json)
        return parsed


@dataclass(frozen=True, slots=True)
class ChaseLink:
    chase_id: int
    order_id: int
    replaces_order_id: int | None
    step: int
    price: Decimal
    created_at: datetime


_INSERT_COLUMNS: Final = (
    "idempotency_key, guild_id, channel_id, author_id, environment, account_number, "
    "ticket_json, status, current_order_id, steps_done, max_steps, ticks_per_step, "
    "interval_seconds, price_effect, start_price, last_price, natural_price, "
    "tick_schedule_json, created_at, updated_at"
)
_COLUMNS: Final = f"id, {_INSERT_COLUMNS}"
_INSERT_SQL: Final = (
    f"INSERT INTO chases ({_INSERT_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, 'working', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_LINK_SQL: Final = (
    "INSERT INTO chase_orders (chase_id, order_id, replaces_order_id, step, price, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chase_id, order_id) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class ChasePlacement:
    """What a command's chase has placed, read in one SELECT (`ChasesRepository.placement`)."""

    chase_id: int
    status: str  # the row status
    current_order_id: int | None
    last_linked_order_id: int | None  # the chain's last order in step order, if any
    outcome_details: dict[str, Any] | None  # details of the latest outcome audit entry


@dataclass(frozen=True, slots=True)
class PreparedChase:
    """A validated `NewChase` as statement parameters (`prepare_chase`)."""

    row: tuple[object, ...]
    first_order_id: int | None
    start: str
    now: str


def prepare_chase(new: NewChase, now: str) -> PreparedChase:
    """Validate `new` and encode it for `insert_chase` (before the worker round trip)."""
    _validate_new(new)
    start = codec.non_negative(new.start_price, "start_price")
    row = (
        new.idempotency_key,
        new.guild_id,
        new.channel_id,
        new.author_id,
        codec.environment(new.environment),
        new.account_number,
        new.ticket_json,
        new.current_order_id,
        new.max_steps,
        new.ticks_per_step,
        float(new.interval_seconds),
        new.price_effect,
        start,
        start,
        codec.non_negative_opt(new.natural_price, "natural_price"),
        new.tick_schedule_json,
        now,
        now,
    )
    return PreparedChase(row, new.current_order_id, start, now)


def insert_chase(raw: sqlite3.Connection, chase: PreparedChase) -> int:
    """Insert a working chase (and its first link, if it has an order) inside a unit of
    work; return its id. A second chase for the same key raises (DuplicateError)."""
    chase_id = raw.execute(_INSERT_SQL, chase.row).lastrowid
    if chase_id is None:
        raise StorageError("the chase insert did not produce a row id")
    if chase.first_order_id is not None:
        insert_link(raw, chase_id, chase.first_order_id, None, 0, chase.start, chase.now)
    return chase_id


def insert_link(
    raw: sqlite3.Connection,
    chase_id: int,
    order_id: int,
    replaces_order_id: int | None,
    step: int,
    price: str,
    now: str,
) -> None:
    """Record one order of a chain inside a unit of work (idempotent per order id)."""
    if step < 0:
        raise InvalidValueError(f"step must be >= 0 (got {step})")
    raw.execute(_INSERT_LINK_SQL, (chase_id, order_id, replaces_order_id, step, price, now))


def advance_placed(
    raw: sqlite3.Connection,
    chase_id: int,
    *,
    status: str,
    order_id: int,
    steps_done: int,
    last_price: str,
    now: str,
) -> None:
    """Point a chase at its placed order and set its status, inside a unit of work: one
    UPDATE whose WHERE clause admits only the allowed status moves (a refused move, or a
    missing chase, raises after a read that says why)."""
    _check_status(status)
    if steps_done < 0:
        raise InvalidValueError(f"steps done must be >= 0 (got {steps_done})")
    allowed = (status, *_PREVIOUS[status])
    marks = ", ".join("?" for _ in allowed)
    changed = raw.execute(
        "UPDATE chases SET status = ?, current_order_id = ?, steps_done = ?, last_price = ?, "
        f"updated_at = ? WHERE id = ? AND status IN ({marks})",
        (status, order_id, steps_done, last_price, now, chase_id, *allowed),
    ).rowcount
    if changed:
        return
    row = raw.execute("SELECT status FROM chases WHERE id = ?", (chase_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"chase {chase_id} does not exist")
    raise StorageError(f"chase {chase_id} cannot go from {row[0]} to {status}")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidValueError(
            f"unknown chase status {status!r}; use one of {', '.join(STATUSES)}"
        )


def _chase(row: sqlite3.Row) -> Chase:
    return Chase(
        chase_id=row[0],
        idempotency_key=row[1],
        guild_id=row[2],
        channel_id=row[3],
        author_id=row[4],
        environment=row[5],
        account_number=row[6],
        ticket_json=row[7],
        status=row[8],
        current_order_id=row[9],
        steps_done=row[10],
        max_steps=row[11],
        ticks_per_step=row[12],
        interval_seconds=float(row[13]),
        price_effect=row[14],
        start_price=Decimal(row[15]),
        last_price=Decimal(row[16]),
        natural_price=codec.to_dec_opt(row[17]),
        tick_schedule_json=row[18],
        created_at=codec.from_ts(row[19]),
        updated_at=codec.from_ts(row[20]),
    )


def _link(row: sqlite3.Row) -> ChaseLink:
    return ChaseLink(
        chase_id=row[0],
        order_id=row[1],
        replaces_order_id=row[2],
        step=row[3],
        price=Decimal(row[4]),
        created_at=codec.from_ts(row[5]),
    )


def _validate_new(new: NewChase) -> None:
    codec.json_object(new.ticket_json, "ticket_json")
    _json_any(new.tick_schedule_json, "tick_schedule_json")
    if new.price_effect not in ("Debit", "Credit"):
        raise InvalidValueError(
            f"chase price effect must be Debit or Credit, not {new.price_effect!r}"
        )
    if not 1 <= new.ticks_per_step <= 3:
        raise InvalidValueError(f"ticks per step must be 1, 2 or 3 (got {new.ticks_per_step})")
    if not 0 <= new.max_steps <= MAX_CHASE_STEPS:
        raise InvalidValueError(
            f"max steps must be between 0 and {MAX_CHASE_STEPS} (got {new.max_steps})"
        )
    if not new.interval_seconds > 0:
        raise InvalidValueError(f"interval must be positive (got {new.interval_seconds})")


def _json_any(text: str, field: str) -> None:
    try:
        json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InvalidValueError(f"{field} is not valid JSON: {exc}") from None


class ChasesRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewChase) -> Chase:
        """Persist a new working chase; a second chase for the same key is a DuplicateError."""
        prepared = prepare_chase(new, codec.ts(self._db.clock(), "now"))

        def create(raw: sqlite3.Connection) -> sqlite3.Row:
            chase_id = insert_chase(raw, prepared)
            row: sqlite3.Row = raw.execute(
                f"SELECT {_COLUMNS} FROM chases WHERE id = ?", (chase_id,)
            ).fetchone()
            return row

        return _chase(await self._db.run_transaction(create))

    async def get(self, chase_id: int) -> Chase | None:
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM chases WHERE id = ?", (chase_id,))
        return None if row is None else _chase(row)

    async def require(self, chase_id: int) -> Chase:
        chase = await self.get(chase_id)
        if chase is None:
            raise NotFoundError(f"chase {chase_id} does not exist")
        return chase

    async def by_idempotency_key(self, idempotency_key: str) -> Chase | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM chases WHERE idempotency_key = ?", (idempotency_key,)
        )
        return None if row is None else _chase(row)

    async def placement(self, idempotency_key: str, *, outcome_event: str) -> ChasePlacement | None:
        """The key's chase, its current and last linked order and the details of its latest
        `outcome_event` audit entry: one SELECT (on every trading command, to recognise a
        re-delivered message). None when no chase has this key."""
        row = await self._db.fetch_one(
            "SELECT c.id, c.status, c.current_order_id, "
            "(SELECT o.order_id FROM chase_orders o WHERE o.chase_id = c.id "
            "ORDER BY o.step DESC, o.created_at DESC, o.order_id DESC LIMIT 1), "
            "(SELECT a.details FROM audit_log a WHERE a.idempotency_key = c.idempotency_key "
            "AND a.event = ? ORDER BY a.id DESC LIMIT 1) "
            "FROM chases c WHERE c.idempotency_key = ?",
            (outcome_event, idempotency_key),
        )
        if row is None:
            return None
        return ChasePlacement(
            chase_id=row[0],
            status=row[1],
            current_order_id=row[2],
            last_linked_order_id=row[3],
            outcome_details=None if row[4] is None else json.loads(row[4]),
        )

    async def by_order(self, environment: str, order_id: int) -> Chase | None:
        """The chase that placed `order_id` (any link of its chain)."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM chases WHERE environment = ? AND id IN "
            "(SELECT chase_id FROM chase_orders WHERE order_id = ?) ORDER BY id LIMIT 1",
            (codec.environment(environment), order_id),
        )
        return None if row is None else _chase(row)

    async def open_chases(self, environment: str | None = None) -> list[Chase]:
        """Chases still working (resume or settle them after a restart), oldest first."""
        if environment is None:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM chases WHERE status = 'working' ORDER BY id"
            )
        else:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM chases WHERE status = 'working' AND environment = ? "
                "ORDER BY id",
                (codec.environment(environment),),
            )
        return [_chase(row) for row in rows]

    async def with_status(
        self, statuses: Sequence[str], *, guild_id: int | None = None
    ) -> list[Chase]:
        """Chases in any of `statuses` (optionally of one guild), oldest first.

        Used to resume, cancel or halt: e.g. every ``working``/``left_working`` chase of a guild.
        """
        wanted = list(dict.fromkeys(statuses))
        for status in wanted:
            _check_status(status)
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT {_COLUMNS} FROM chases WHERE status IN ({marks})"
        params: list[object] = list(wanted)
        if guild_id is not None:
            sql += " AND guild_id = ?"
            params.append(guild_id)
        rows = await self._db.fetch_all(sql + " ORDER BY id", tuple(params))
        return [_chase(row) for row in rows]

    async def update(
        self,
        chase_id: int,
        *,
        status: str | _Unset = UNSET,
        current_order_id: int | _Unset | None = UNSET,
        steps_done: int | _Unset = UNSET,
        last_price: Decimal | _Unset = UNSET,
        natural_price: Decimal | _Unset | None = UNSET,
        tick_schedule_json: str | _Unset = UNSET,
    ) -> Chase:
        """Change the given fields; status changes must follow the allowed moves."""
        async with self._db.transaction():
            chase = await self.require(chase_id)
            values: dict[str, object] = {}
            if not isinstance(status, _Unset):
                _check_status(status)
                if status != chase.status and status not in _NEXT[chase.status]:
                    raise StorageError(
                        f"chase {chase_id} cannot go from {chase.status} to {status}"
                    )
                values["status"] = status
            if not isinstance(current_order_id, _Unset):
                values["current_order_id"] = current_order_id
            if not isinstance(steps_done, _Unset):
                if not 0 <= steps_done <= chase.max_steps:
                    raise InvalidValueError(
                        f"steps done must be between 0 and {chase.max_steps} (got {steps_done})"
                    )
                values["steps_done"] = steps_done
            if not isinstance(last_price, _Unset):
                values["last_price"] = codec.non_negative(last_price, "last_price")
            if not isinstance(natural_price, _Unset):
                values["natural_price"] = codec.non_negative_opt(natural_price, "natural_price")
            if not isinstance(tick_schedule_json, _Unset):
                _json_any(tick_schedule_json, "tick_schedule_json")
                values["tick_schedule_json"] = tick_schedule_json
            if values:
                values["updated_at"] = codec.ts(self._db.clock(), "now")
                await self._db.execute(
                    f"UPDATE chases SET {', '.join(f'{name} = ?' for name in values)} WHERE id = ?",
                    (*values.values(), chase_id),
                )
            return await self.require(chase_id)

    async def record_replacement(self, chase_id: int, new_order_id: int, price: Decimal) -> Chase:
        """One step done: link `new_order_id` (replacing the current order) and advance."""
        async with self._db.transaction():
            chase = await self.require(chase_id)
            if not chase.is_working:
                raise StorageError(f"chase {chase_id} is {chase.status}, not working")
            if chase.steps_done >= chase.max_steps:
                raise StorageError(f"chase {chase_id} already used all {chase.max_steps} steps")
            encoded = codec.non_negative(price, "price")
            now = codec.ts(self._db.clock(), "now")
            step = chase.steps_done + 1
            await self._insert_link(
                chase_id, new_order_id, chase.current_order_id, step, encoded, now
            )
            await self._db.execute(
                "UPDATE chases SET current_order_id = ?, steps_done = ?, last_price = ?, "
                "updated_at = ? WHERE id = ?",
                (new_order_id, step, encoded, now, chase_id),
            )
            return await self.require(chase_id)

    async def add_link(
        self,
        chase_id: int,
        order_id: int,
        *,
        replaces_order_id: int | None,
        price: Decimal,
        step: int,
    ) -> ChaseLink:
        """Record one order of the chase's chain (idempotent for the same order id)."""
        now = codec.ts(self._db.clock(), "now")
        async with self._db.transaction():
            await self.require(chase_id)
            await self._insert_link(
                chase_id, order_id, replaces_order_id, step, codec.non_negative(price, "price"), now
            )
            row = await self._db.fetch_one(
                "SELECT chase_id, order_id, replaces_order_id, step, price, created_at "
                "FROM chase_orders WHERE chase_id = ? AND order_id = ?",
                (chase_id, order_id),
            )
        assert row is not None
        return _link(row)

    async def links(self, chase_id: int) -> list[ChaseLink]:
        """The chase's orders in step order."""
        rows = await self._db.fetch_all(
            "SELECT chase_id, order_id, replaces_order_id, step, price, created_at "
            "FROM chase_orders WHERE chase_id = ? ORDER BY step, created_at",
            (chase_id,),
        )
        return [_link(row) for row in rows]

    async def _insert_link(
        self,
        chase_id: int,
        order_id: int,
        replaces_order_id: int | None,
        step: int,
        price: str,
        now: str,
    ) -> None:
        await self._db.run_on_connection(
            lambda raw: insert_link(raw, chase_id, order_id, replaces_order_id, step, price, now)
        )
