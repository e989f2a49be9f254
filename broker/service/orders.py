"""Order entry for the Discord layer: preview → confirm → submit, plus cancel and replace.

A preview parses the text, builds the order against the guild's environment, checks the
guild's limits and the account's trading status, and dry-runs it at the exchange. The
result is kept (bound to the built order's fingerprint) until it is confirmed, cancelled
or older than the confirmation window. Confirming re-validates everything that may have
changed (halt, environment, age, limits) and hands the exact built order to the chase
engine, whose idempotency key (the Discord message or interaction id) is persisted before
anything is sent.

A leg without an explicit open/close is opening or closing depending on what is held, so the
preview remembers the held quantities it decided on and Confirm checks them again (from the
live position book, else one REST read): a position that changed in between refuses the
order rather than, say, turning a closing sell into a naked Sell to Open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog
from tastytrade.account import TradingStatus
from tastytrade.order import LimitOrder, PlacedOrder
from tastytrade.utils import PriceEffect

from broker.events import NotificationContext, OrderFilled
from broker.fills.broker_ops import OrderOps
from broker.fills.engine import ChaseEngine
from broker.fills.model import ChaseNotFound, ChaseOrder, ChaseRequest, ChaseResult, ChaseStatus
from broker.fills.policy import ChaseParams, ChaseParamsError
from broker.fills.reconcile import ReplaceOutcome as ReconciledReplace
from broker.fills.reconcile import reconcile_replacement
from broker.guards import GuardViolation, Limits, Violation, check_limits, check_trading_status
from broker.orders.build import BuiltOrder, OrderBuilder, PositionSource
from broker.orders.errors import BuildError
from broker.orders.pricing import signed_price, split_signed_price
from broker.positions.live import LiveBooks
from broker.preview import OrderPreview, preview_order
from broker.quotes import QuoteFeeds
from broker.service.brokers import BrokerContext, BrokerDirectory
from broker.service.errors import (
    ConfirmationExpired,
    GuildHalted,
    NotFound,
    PreviewMismatch,
    ServiceError,
)
from broker.service.guilds import GuildSettingsStore
from broker.service.models import (
    CancelOutcome,
    ChasePlan,
    LegLine,
    OrderProgress,
    PlacementOutcome,
    PreviewSummary,
    ProgressStage,
    ReplaceOutcome,
)
from broker.service.positions import LivePositions, PositionBook
from broker.session import BrokerError, Environment
from broker.tickets import OrderTicket, PriceMode, TicketError, parse_ticket
from storage.database import Database
from storage.guilds import GuildSettings

__all__ = ["OrderDesk", "OrderRequest"]

log = structlog.get_logger(__name__)

EXCHANGE_TZ = ZoneInfo("America/New_York")
TRADING_STATUS_TTL_SECONDS = 60.0
TRADING_STATUS_MAX_AGE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order command as the Discord layer received it."""

    guild_id: int
    channel_id: int
    author_id: int
    author_name: str
    text: str
    key: str  # idempotency key: the message id, or the interaction id for slash commands


@dataclass(slots=True)
class _Pending:
    summary: PreviewSummary
    preview: OrderPreview
    context: BrokerContext
    ticket: OrderTicket
    params: ChaseParams
    request: OrderRequest
    created_monotonic: float
    #: Held quantities (signed) the open/close of inferred legs was decided on, by symbol.
    decided_on: dict[str, Decimal]


def _leg_lines(built: BuiltOrder) -> list[LegLine]:
    return [
        LegLine(
            action=leg.action.value,
            quantity=leg.quantity,
            symbol=leg.symbol,
            instrument_type=leg.instrument_type.value,
            bid=leg.bid,
            ask=leg.ask,
        )
        for leg in built.legs
    ]


def guild_limits(settings: GuildSettings) -> Limits:
    """The guild's limits on top of the builder's conservative defaults."""
    defaults = Limits()
    quantity = settings.max_quantity
    return Limits(
        max_contracts=int(quantity) if quantity is not None else defaults.max_contracts,
        max_shares=int(quantity) if quantity is not None else defaults.max_shares,
        max_notional=settings.max_notional
        if settings.max_notional is not None
        else defaults.max_notional,
        max_loss=settings.max_loss if settings.max_loss is not None else defaults.max_loss,
    )


def chase_params(settings: GuildSettings, ticket: OrderTicket) -> ChaseParams:
    """Guild chase settings with the command's overrides (`chase=N`, `ticks=K`).

    An explicit limit price is the user's price: it is not chased unless `chase=N` asks for
    it. Mid orders are chased per the guild's settings; market orders never are.
    """
    if ticket.price_mode is PriceMode.MARKET:
        steps = 0
    elif ticket.chase is not None:
        steps = ticket.chase
    elif ticket.price_mode is PriceMode.LIMIT:
        steps = 0
    else:
        steps = settings.chase_max_steps
    try:
        return ChaseParams(
            interval_s=settings.chase_interval_seconds,
            ticks=ticket.ticks if ticket.ticks is not None else settings.chase_ticks,
            max_steps=steps,
        )
    except ChaseParamsError as exc:
        raise ServiceError(str(exc)) from None


def chase_order(built: BuiltOrder) -> ChaseOrder:
    """The engine's view of a built order: it sends exactly the confirmed ``built.order``
    (only price and external identifier change), starting at the previewed price."""
    try:
        return ChaseOrder.from_built(built)
    except ValueError as exc:
        raise ServiceError(f"This order can't be placed: {exc}.") from None


class OrderDesk:
    def __init__(
        self,
        db: Database,
        guilds: GuildSettingsStore,
        brokers: BrokerDirectory,
        engine: ChaseEngine,
        *,
        now: Callable[[], datetime],
        confirm_ttl_seconds: float = 60.0,
        builders: dict[Environment, OrderBuilder] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        live_positions: LiveBooks | None = None,
        quotes: QuoteFeeds | None = None,
    ) -> None:
        """``live_positions``: where the notification hub registers its account streamers'
        position books (the same registry must be given to both; without one, open/close
        is always decided over REST). ``quotes``: the streaming quote feeds previews price
        from when they have every leg (a session's feed starts on its first preview; without
        a registry every preview reads its quotes over REST)."""
        self._db = db
        self._guilds = guilds
        self._brokers = brokers
        self._engine = engine
        self._now = now
        self._monotonic = monotonic
        self.confirm_ttl = confirm_ttl_seconds
        self._builders = builders or {}
        self._pending: dict[str, _Pending] = {}
        self._status_cache: dict[tuple[str, str], tuple[float, TradingStatus]] = {}
        self._status_refreshing: set[tuple[str, str]] = set()
        self.positions = PositionBook(db, monotonic=monotonic, live=live_positions)
        self.quotes = quotes
        self._background: set[asyncio.Task[None]] = set()

    # -- preview ---------------------------------------------------------------------------

    def builder(self, environment: Environment) -> OrderBuilder:
        """One builder (and instrument cache) per environment: sandbox and live never mix."""
        builder = self._builders.get(environment)
        if builder is None:
            builder = self._builders[environment] = OrderBuilder()
        return builder

    def today(self) -> date:
        return self._now().astimezone(EXCHANGE_TZ).date()

    async def preview(self, request: OrderRequest) -> PreviewSummary:
        settings = await self._guilds.get(request.guild_id)
        if settings.halted:
            raise GuildHalted()
        try:
            ticket = parse_ticket(request.text, today=self.today())
        except TicketError as exc:
            raise ServiceError(exc.message) from None
        params = chase_params(settings, ticket)
        context = await self._brokers.context(request.guild_id)
        built, decided_on, from_book = await self._build(context, ticket)
        preview = await self._dry_run(context, built)
        if from_book and _holdings_disputed(preview):
            # The exchange says the live book is wrong about what is held (it missed a
            # message): decide again from a REST read, which also corrects the book.
            self.positions.distrust(context, list(decided_on))
            built, decided_on, _ = await self._build(context, ticket)
            preview = await self._dry_run(context, built)
        violations = check_limits(at_chase_worst(built, params), guild_limits(settings))
        violations += check_trading_status(built, await self._trading_status(context))
        summary = self._summarise(request, settings, context, preview, params, violations)
        self._forget_old()
        if not summary.would_reject:
            self._pending[summary.preview_id] = _Pending(
                summary, preview, context, ticket, params, request, self._monotonic(), decided_on
            )
        # Recorded off the reply path: the preview must not wait for a database write.
        self._later(
            self._db.audit.record(
                event="order_previewed",
                guild_id=request.guild_id,
                user_id=request.author_id,
                environment=context.environment.value,
                command=request.text[:200],
                idempotency_key=request.key,
                details={
                    "fingerprint": summary.fingerprint,
                    "would_reject": summary.would_reject,
                    "errors": list(summary.errors),
                },
            )
        )
        return summary

    def _later(self, work: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("order_desk_background_failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background writes (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _build(
        self, context: BrokerContext, ticket: OrderTicket
    ) -> tuple[BuiltOrder, dict[str, Decimal], bool]:
        """The built order, the held quantities its inferred open/close legs rest on, and
        whether those came from the live book (no request).

        A plain buy/sell is opening or closing depending on what is held *now*: a stale
        snapshot could turn a closing sell into a naked Sell to Open, so it reads the live book
        or the broker. Explicit BTO/STO/BTC/STC need neither (the exchange validates closes
        strictly).
        """
        fresh = any(leg.opening is None for leg in ticket.legs)
        positions = _Remembered(await self.positions.source(context, fresh=fresh))
        feed = self.quotes.feed_for(context.session) if self.quotes is not None else None
        try:
            built = await self.builder(context.environment).build(
                context.session, ticket, positions, quotes=feed
            )
        except BuildError as exc:
            raise ServiceError(exc.message) from None
        except BrokerError as exc:
            raise ServiceError(f"The broker couldn't price this order: {exc.message}") from None
        decided_on = {
            leg.symbol: positions.held.get(leg.symbol, Decimal(0))
            for asked, leg in zip(ticket.legs, built.legs, strict=True)
            if asked.opening is None
        }
        return built, decided_on, positions.from_book

    def fill_seen(self, event: OrderFilled) -> None:
        """A fill (from the streamer or the poller): positions on its legs changed."""
        self.positions.filled(
            event.context.environment,
            event.account_number,
            event.order_id,
            [leg.symbol for leg in event.legs],
        )

    def positions_synced(self, environment: str, account_number: str) -> None:
        self.positions.synced(environment, account_number)

    async def _trading_status(self, context: BrokerContext) -> TradingStatus:
        """The account's trading status, kept fresh off the order path.

        Within `TRADING_STATUS_TTL_SECONDS` the cached status is used; after that it is
        still used once while a refresh runs in the background (so an order never waits
        for it), and beyond `TRADING_STATUS_MAX_AGE_SECONDS` it is read before the order.
        """
        key = (context.environment.value, context.account_number)
        cached = self._status_cache.get(key)
        age = self._monotonic() - cached[0] if cached is not None else None
        if cached is not None and age is not None and age < TRADING_STATUS_MAX_AGE_SECONDS:
            if age >= TRADING_STATUS_TTL_SECONDS and key not in self._status_refreshing:
                self._status_refreshing.add(key)
                self._later(self._refresh_trading_status(context, key))
            return cached[1]
        return await self._read_trading_status(context, key)

    async def _refresh_trading_status(self, context: BrokerContext, key: tuple[str, str]) -> None:
        try:
            await self._read_trading_status(context, key)
        finally:
            self._status_refreshing.discard(key)

    async def _read_trading_status(
        self, context: BrokerContext, key: tuple[str, str]
    ) -> TradingStatus:
        account = context.account
        try:
            status = await context.session.read(lambda s: account.get_trading_status(s))
        except BrokerError as exc:
            raise ServiceError(
                f"Couldn't read the account's trading status: {exc.message}"
            ) from None
        self._status_cache[key] = (self._monotonic(), status)
        return status

    async def _dry_run(self, context: BrokerContext, built: BuiltOrder) -> OrderPreview:
        try:
            return await preview_order(context.session, context.account, built, now=self._now)
        except BrokerError as exc:
            raise ServiceError(f"The dry run failed: {exc.message}") from None

    def _summarise(
        self,
        request: OrderRequest,
        settings: GuildSettings,
        context: BrokerContext,
        preview: OrderPreview,
        params: ChaseParams,
        violations: Sequence[Violation],
    ) -> PreviewSummary:
        built = preview.built
        errors = [str(error) for error in preview.errors]
        errors += [v.message for v in violations]
        plan = None
        if built.price is not None:
            plan = ChasePlan(
                start_price=abs(built.price),
                ticks_per_step=params.ticks,
                max_steps=params.max_steps,
                interval_seconds=params.interval_s,
                cap_price=abs(built.net_natural) if built.net_natural is not None else None,
            )
        buying_power = preview.buying_power
        fees = preview.fees
        return PreviewSummary(
            preview_id=request.key,
            fingerprint=preview.fingerprint,
            environment=context.environment,
            account_number=context.account_number,
            guild_id=request.guild_id,
            author_id=request.author_id,
            command_text=request.text,
            legs=_leg_lines(built),
            order_type="Market" if built.price is None else "Limit",
            price=abs(built.price) if built.price is not None else None,
            price_effect=built.price_effect.value if built.price is not None else None,
            time_in_force=str(built.order.time_in_force.value),
            mid=abs(built.net_mid) if built.net_mid is not None else None,
            natural=abs(built.net_natural) if built.net_natural is not None else None,
            buying_power_effect=buying_power.change if buying_power is not None else None,
            fees=-abs(fees.total) if fees is not None else None,
            warnings=[str(w) for w in preview.warnings],
            errors=errors,
            chase=plan,
            # Live always asks; paper/sandbox may skip when the guild chose so.
            confirm_required=context.environment is Environment.LIVE
            or not settings.skip_confirmation,
            created_at=preview.created_at,
        )

    def _forget_old(self) -> None:
        horizon = self._monotonic() - 4 * self.confirm_ttl
        for key in [k for k, p in self._pending.items() if p.created_monotonic < horizon]:
            del self._pending[key]

    # -- placement -------------------------------------------------------------------------

    async def place(self, summary: PreviewSummary) -> tuple[PlacementOutcome, int]:
        """Submit a previewed order (re-validated). Returns the outcome and the chase id."""
        pending = self._pending.get(summary.preview_id)
        if pending is None or pending.summary.fingerprint != summary.fingerprint:
            raise ConfirmationExpired(int(self.confirm_ttl))
        settings = await self._guilds.get(summary.guild_id)
        if settings.halted:
            raise GuildHalted()
        if Environment(settings.environment) is not summary.environment:
            raise PreviewMismatch(
                f"This server switched to {settings.environment} after the preview "
                f"({summary.environment.value}); nothing was placed. Send the command again."
            )
        age = (self._now() - summary.created_at).total_seconds()
        if (
            age > self.confirm_ttl
            or self._monotonic() - pending.created_monotonic > self.confirm_ttl
        ):
            raise ConfirmationExpired(int(self.confirm_ttl))
        built = pending.preview.built
        if built.fingerprint() != summary.fingerprint:  # defence in depth: never drift
            raise PreviewMismatch("The order changed after the preview; nothing was placed.")
        violations = check_limits(at_chase_worst(built, pending.params), guild_limits(settings))
        if violations:
            raise ServiceError(str(GuardViolation(violations)))
        await self._check_positions_unchanged(pending)
        if self._pending.pop(summary.preview_id, None) is None:
            raise ConfirmationExpired(int(self.confirm_ttl))  # confirmed twice at once
        request = pending.request
        context = pending.context
        chase_request = ChaseRequest(
            session=context.session,
            account_number=context.account_number,
            order=chase_order(built),
            idempotency_key=request.key,
            params=pending.params,
            context=NotificationContext(
                guild_id=request.guild_id,
                environment=context.environment.value,
                channel_id=request.channel_id,
                author_id=request.author_id,
                author_name=request.author_name,
                notify_channel_id=settings.notification_channel_id,
            ),
            command_text=request.text[:200],
        )
        try:
            handle = await self._engine.submit(chase_request)
        except (ChaseParamsError, ValueError) as exc:
            raise ServiceError(str(exc)) from None
        order_id = None
        if handle.duplicate:
            record = await self._engine.store.by_key(request.key)
            if record is not None:
                order_id = record.current_order_id or (record.chain[-1] if record.chain else None)
        progress = OrderProgress(
            preview_id=summary.preview_id,
            idempotency_key=request.key,
            stage=ProgressStage.SUBMITTED,
            order_id=str(order_id) if order_id else None,
            price=summary.price,
            price_effect=summary.price_effect,
            steps_done=0,
            max_steps=pending.params.max_steps,
            filled_quantity=0,
            total_quantity=int(built.units),
        )
        outcome = PlacementOutcome(
            idempotency_key=request.key,
            order_id=progress.order_id,
            duplicate=handle.duplicate,
            progress=progress,
            environment=context.environment,
            submission=None if handle.duplicate else handle.submission,
        )
        return outcome, handle.chase_id

    async def _check_positions_unchanged(self, pending: _Pending) -> None:
        """Refuse when a position an inferred open/close was decided on changed since the
        preview (nothing is sent); asks the live book, else the broker (one request)."""
        if not pending.decided_on:
            return
        source = await self.positions.source(pending.context, fresh=True)
        try:
            held = await source.quantities(list(pending.decided_on))
        except BrokerError as exc:
            raise ServiceError(
                f"Couldn't re-check your positions before placing ({exc.message}); nothing was "
                "placed. Confirm again in a moment."
            ) from None
        for symbol, was in pending.decided_on.items():
            now = held.get(symbol, Decimal(0))
            if now != was:
                self._pending.pop(pending.summary.preview_id, None)
                raise PreviewMismatch(
                    f"Your {symbol.strip()} position changed since the preview (was "
                    f"{_quantity(was)}, now {_quantity(now)}); nothing was placed. Send the "
                    "command again."
                )

    async def placement_for_key(self, key: str) -> str | None:
        """The order a command key already placed (None if it placed nothing); one query."""
        order_id = await self._engine.store.placed_order_for_key(key)
        return None if order_id is None else str(order_id)

    # -- management ------------------------------------------------------------------------

    async def cancel(self, guild_id: int, target: str) -> CancelOutcome:
        if target.lower() == "all":
            return await self._cancel_all(guild_id)
        try:
            order_id = int(target.lstrip("#"))
        except ValueError:
            raise ServiceError("Use `!tt cancel <order id>` or `!tt cancel all`.") from None
        try:
            results = await self._engine.cancel(guild_id, order_id)
        except ChaseNotFound:
            return await self._cancel_plain(guild_id, order_id)
        return _cancel_outcome(results, target)

    async def _cancel_all(self, guild_id: int) -> CancelOutcome:
        chased = _cancel_outcome(await self._engine.cancel(guild_id, "all"), "all")
        context = await self._brokers.context(guild_id)
        ops = OrderOps(context.session, context.account_number)
        try:
            live = await ops.live()
        except BrokerError as exc:
            raise ServiceError(f"Couldn't list the working orders: {exc.message}") from None
        cancelled = list(chased.cancelled)
        failed = list(chased.failed)
        handled = set(cancelled) | {oid for oid, _ in failed}
        for order in live:
            if str(order.id) in handled or not _working(order):
                continue
            if await self._owned_elsewhere(guild_id, context.environment, order.id):
                continue  # another server's chase in a shared account: never touch it
            try:
                await ops.cancel(order.id)
                cancelled.append(str(order.id))
            except BrokerError as exc:
                failed.append((str(order.id), exc.message))
        return CancelOutcome(cancelled=cancelled, failed=failed)

    async def _owned_elsewhere(
        self, guild_id: int, environment: Environment, order_id: int
    ) -> bool:
        """Whether the order belongs to another guild's chase (accounts may be shared)."""
        record = await self._engine.store.by_order(environment.value, order_id)
        return record is not None and record.guild_id != guild_id

    async def _cancel_plain(self, guild_id: int, order_id: int) -> CancelOutcome:
        """Cancel an order that is not one of our chases (placed elsewhere, or synced)."""
        context = await self._brokers.context(guild_id)
        if await self._owned_elsewhere(guild_id, context.environment, order_id):
            raise ServiceError(_OTHER_SERVER.format(order_id=order_id, action="cancelled"))
        ops = OrderOps(context.session, context.account_number)
        try:
            order = await ops.get(order_id)
        except BrokerError:
            return CancelOutcome(cancelled=(), not_found=(str(order_id),))
        if not _working(order):
            return CancelOutcome(
                cancelled=(), failed=((str(order_id), f"it is already {order.status.value}"),)
            )
        try:
            await ops.cancel(order_id)
        except BrokerError as exc:
            return CancelOutcome(cancelled=(), failed=((str(order_id), exc.message),))
        return CancelOutcome(cancelled=(str(order_id),))

    async def replace(
        self, guild_id: int, target: str, price: Decimal, *, key: str | None = None
    ) -> ReplaceOutcome:
        """Move a working limit order to `price` (a positive magnitude; the order keeps its
        debit/credit). Idempotent on `key` (the command's message or interaction id)."""
        try:
            order_id = int(target)
        except ValueError:
            raise ServiceError("Use `!tt replace <order id> <price>`.") from None
        if (await self._guilds.get(guild_id)).halted:
            raise GuildHalted()
        context = await self._brokers.context(guild_id)
        claim_key = None
        if key is not None:
            claim_key = f"replace:{key}"
            claim = await self._db.idempotency.claim(
                claim_key,
                guild_id=guild_id,
                user_id=0,
                command_text=f"replace {order_id} {price}",
                environment=context.environment.value,
                account_number=context.account_number,
            )
            if not claim.won:
                done = claim.record.order_id
                raise ServiceError(
                    "This command was already handled"
                    + (f": order #{order_id} was replaced by #{done}." if done else ".")
                )
        try:
            outcome = await self._replace(guild_id, context, order_id, price)
        except BaseException:
            if claim_key is not None:
                await self._db.idempotency.mark(claim_key, "failed")
            raise
        if claim_key is not None:
            await self._db.idempotency.mark(claim_key, "submitted")
            await self._db.idempotency.mark(claim_key, "placed", order_id=int(outcome.new_order_id))
        return outcome

    async def _replace(
        self, guild_id: int, context: BrokerContext, order_id: int, price: Decimal
    ) -> ReplaceOutcome:
        record = await self._engine.store.by_order(context.environment.value, order_id)
        if record is not None and record.guild_id != guild_id:
            raise ServiceError(_OTHER_SERVER.format(order_id=order_id, action="replaced"))
        if record is not None and record.id in self._engine.running():
            raise ServiceError(
                f"Order #{order_id} is being chased right now; `!tt cancel {order_id}` it "
                "first, or wait for the chase to finish."
            )
        if record is not None and not record.order.schedule.is_on_tick(price):
            # Checked before the exchange sees it, with the two prices the user can use.
            below, above = record.order.schedule.nearest_valid(price)
            nearest = " or ".join(f"{p:f}" for p in (below, above) if p > 0)
            raise ServiceError(
                f"{price:f} is not a valid price for this order "
                f"(ticks: {record.order.schedule.describe()}); nearest valid: {nearest}."
            )
        ops = OrderOps(context.session, context.account_number)
        try:
            current = await ops.get(order_id)
        except BrokerError:
            raise NotFound(f"No order #{order_id} in this account.") from None
        if not _working(current):
            raise ServiceError(
                f"Order #{order_id} is {current.status.value}; it can't be replaced."
            )
        if current.price is None:
            raise ServiceError(f"Order #{order_id} has no limit price to replace.")
        _, effect = split_signed_price(current.price)
        if effect is PriceEffect.NONE:
            raise ServiceError(
                f"Order #{order_id} is priced at 0 (neither debit nor credit); replace it in "
                "the Tastytrade app."
            )
        signed = signed_price(price, effect)
        new_order = LimitOrder(time_in_force=current.time_in_force, legs=[], price=signed)
        try:
            placed = await ops.replace(order_id, new_order)
        except BrokerError as exc:
            if not exc.outcome_unknown:
                raise ServiceError(f"Not replaced: {exc.message}") from None
            # The answer was lost: ask the exchange whether the replacement exists.
            found = await reconcile_replacement(ops, old_order_id=order_id)
            if found.outcome is ReconciledReplace.REPLACED and found.order is not None:
                placed = found.order
            elif found.outcome is ReconciledReplace.NOT_REPLACED:
                raise ServiceError(
                    f"Not replaced: {exc.message} (order #{order_id} is unchanged)."
                ) from None
            else:
                raise ServiceError(
                    f"The replace of order #{order_id} may or may not have happened "
                    f"({exc.message}); check `!tt orders` before trying again."
                ) from None
        if record is not None:
            await self._engine.store.add_link(
                record.id,
                order_id=placed.id,
                replaces_order_id=order_id,
                step=record.steps_done,
                price=signed,
            )
            record.current_order_id = placed.id
            record.chain.append(placed.id)
            await self._engine.store.save(record)
        await self._db.audit.record(
            event="order_replaced",
            guild_id=guild_id,
            environment=context.environment.value,
            details={"old": order_id, "new": placed.id, "price": str(signed)},
        )
        return ReplaceOutcome(str(order_id), str(placed.id), price, effect.value)


_OTHER_SERVER = "Order #{order_id} was placed from another server; it can't be {action} from here."


def at_chase_worst(built: BuiltOrder, params: ChaseParams) -> BuiltOrder:
    """The order as the limits must see it: a chase may walk the price up to the natural, so
    when that is the larger amount the limits are checked there, not at the start price."""
    natural = built.net_natural
    if params.max_steps <= 0 or natural is None or built.price is None:
        return built
    if abs(natural) <= abs(built.price):
        return built
    return dataclasses.replace(built, price=natural)


class _Remembered:
    """A `PositionSource` that keeps what it answered (the quantities a build decided on)."""

    def __init__(self, inner: PositionSource) -> None:
        self._inner = inner
        self.held: Mapping[str, Decimal] = {}

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        self.held = await self._inner.quantities(symbols)
        return self.held

    @property
    def from_book(self) -> bool:
        return isinstance(self._inner, LivePositions) and self._inner.from_book


#: Dry-run errors meaning "you don't hold what this close assumes" (strict validation).
_HOLDINGS_DISPUTED = frozenset({"closing_with_no_position", "closing_quantity_exceeds_position"})


def _holdings_disputed(preview: OrderPreview) -> bool:
    return any(error.code in _HOLDINGS_DISPUTED for error in preview.errors)


def _quantity(value: Decimal) -> str:
    """A signed quantity as a person writes it (100, -2, 0.5)."""
    return f"{value.normalize():f}" if value else "0"


def _working(order: PlacedOrder) -> bool:
    return order.status.value in {"Received", "Routed", "In Flight", "Live", "Contingent"}


def _cancel_outcome(results: Sequence[ChaseResult], target: str) -> CancelOutcome:
    cancelled: list[str] = []
    failed: list[tuple[str, str]] = []
    for result in results:
        chain = result.order_chain
        shown = str(result.current_order_id or (chain[-1] if chain else target))
        if result.status in (
            ChaseStatus.CANCELLED,
            ChaseStatus.HALTED,
            ChaseStatus.PARTIALLY_FILLED,
        ):
            cancelled.append(shown)
        else:
            failed.append((shown, result.message or f"it is {result.status.value}"))
    return CancelOutcome(cancelled=cancelled, failed=failed)
