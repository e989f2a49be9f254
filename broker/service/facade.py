"""`TradingService`: the one object the Discord layer talks to.

Cogs call intention-revealing methods (`preview_order`, `place`, `positions`, `halt`, …) and
get typed results from `broker.service.models`; every refusal is a `ServiceError` whose
message can be shown as-is. Nothing here knows about Discord, and `cogs/` never sees the
tastytrade SDK. The parts (storage, sessions, chase engine, sync, fill tracker) are built
by `broker.service.runtime` and injected.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import structlog
from tastytrade import Account

from broker import calendar
from broker.events import ChaseStepped, EventBus, OrderFilled, OrderPlaced, Subscription
from broker.fills.engine import ChaseEngine
from broker.fills.model import ChaseStatus
from broker.service.account import AccountViews, Scoped
from broker.service.brokers import BrokerContext, BrokerDirectory, CredentialSource
from broker.service.errors import CredentialsMissing, ServiceError
from broker.service.guilds import GuildSettingsStore
from broker.service.models import (
    AccountRow,
    BalanceSummary,
    CancelOutcome,
    Environment,
    FillNotice,
    GuildView,
    HaltOutcome,
    OrderProgress,
    OrderRow,
    PlacementOutcome,
    PositionRow,
    PreviewSummary,
    QuoteSummary,
    ReplaceOutcome,
    StatusReport,
    SyncProgress,
    SyncSummary,
    TransactionRow,
)
from broker.service.orders import OrderDesk, OrderRequest
from broker.service.progress import ProgressHub
from broker.session import BrokerError
from broker.sync import SyncTarget
from storage.database import Database

__all__ = ["AccountSync", "NoticeLedger", "StreamerStatus", "TradingService"]

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[SyncProgress], Awaitable[None]]
_OPEN_CHASES = frozenset({ChaseStatus.SUBMITTING, ChaseStatus.WORKING})


class AccountSync(Protocol):
    """What the service needs from the sync layer (`broker.sync`)."""

    async def sync(
        self,
        context: BrokerContext,
        *,
        kind: str,
        progress: ProgressCallback | None,
        manual: bool = False,
    ) -> SyncSummary: ...

    def check_manual(self, context: BrokerContext) -> None: ...


class StreamerStatus(Protocol):
    """Fill tracking per account: started on demand, described for `!tt status`."""

    async def ensure(self, context: BrokerContext) -> None: ...

    def order_placed(self, environment: str, account_number: str, order_id: int) -> None: ...

    def describe(self, environment: Environment, account_number: str) -> str: ...

    async def resume(self, engine: ChaseEngine) -> None:
        """After a restart: follow every chase order that may still work."""
        ...


class NoticeLedger(Protocol):
    """Delivery bookkeeping of fill notices (`broker.notify.FillTracker(explicit_ack=True)`)."""

    async def acknowledge(self, dedupe_key: str) -> bool: ...

    async def redeliver_pending(self) -> int: ...


class TradingService:
    def __init__(
        self,
        *,
        db: Database,
        guilds: GuildSettingsStore,
        brokers: BrokerDirectory,
        engine: ChaseEngine,
        bus: EventBus,
        orders: OrderDesk,
        views: AccountViews,
        syncer: AccountSync,
        streamers: StreamerStatus | None,
        now: Callable[[], datetime],
        encryption_configured: bool,
        watch_timeout: float = 900.0,
        notices: NoticeLedger | None = None,
    ) -> None:
        self.db = db
        self.guilds = guilds
        self.brokers = brokers
        self.engine = engine
        self.bus = bus
        self.orders = orders
        self.views = views
        self.syncer = syncer
        self.streamers = streamers
        self._now = now
        self._encryption = encryption_configured
        self._watch_timeout = watch_timeout
        self._notices = notices
        self.progress = ProgressHub()
        self.progress.on_fill(self._fill_seen)
        self.progress.on_placed(self._order_placed)
        self._subscription: Subscription | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._resync_pending: set[tuple[int, str]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to broker events and resume chases that were open at shutdown."""
        self._subscription = self.bus.subscribe(self.progress.handle, name="trading-service")
        # The first 0DTE/NDTE expiry lookup would otherwise load the calendar on the loop.
        await asyncio.to_thread(calendar.warm_up)
        await self._resume_chases()

    async def _resume_chases(self) -> None:
        open_chases = await self.engine.store.with_status(
            frozenset(s for s in ChaseStatus if s.order_may_work)
        )
        sessions = {}
        for record in open_chases:
            key = (record.environment, record.account_number)
            if key in sessions:
                continue
            try:
                session, _ = await self.brokers.session(record.guild_id, Environment(key[0]))
            except ServiceError as exc:
                log.warning("resume_without_session", chase_id=record.id, reason=exc.message)
                continue
            except BrokerError as exc:
                log.warning("resume_without_session", chase_id=record.id, reason=exc.message)
                continue
            sessions[key] = session
        handles = await self.engine.resume_open(sessions)
        if handles:
            log.info("chases_resumed", count=len(handles))
        # Orders that may still work need their fills noticed again.
        for guild_id in {record.guild_id for record in open_chases}:
            await self._ensure_tracking(guild_id)
        if self.streamers is not None:
            try:
                await self.streamers.resume(self.engine)
            except (ServiceError, BrokerError) as exc:
                log.warning("fill_tracking_resume_failed", error=str(exc))

    # -- fill notice delivery --------------------------------------------------------------

    async def acknowledge_notice(self, dedupe_key: str) -> None:
        """A fill notice was posted (or can never be): it is not re-sent after a restart."""
        if self._notices is not None:
            await self._notices.acknowledge(dedupe_key)

    async def redeliver_notices(self) -> int:
        """Re-send notices claimed earlier but never acknowledged (call once subscribed)."""
        if self._notices is None:
            return 0
        return await self._notices.redeliver_pending()

    async def close(self) -> None:
        """Stop chases (they stay persisted) and background work; the owner closes the rest."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.engine.shutdown()
        await self.orders.drain()
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def now(self) -> datetime:
        return self._now()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("background_task_failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def idle(self) -> None:
        """Wait until queued events and background refreshes are done (console, tests)."""
        for _ in range(3):
            # Only our own subscription: other subscribers (the engine's) may legitimately
            # wait for a chase that waits for time to pass.
            if self._subscription is not None:
                await self._subscription.queue.join()
            if self._background:
                await asyncio.gather(*list(self._background), return_exceptions=True)
            await self.orders.drain()

    # -- guild settings --------------------------------------------------------------------

    async def guild(self, guild_id: int) -> GuildView:
        return await self.guilds.view(guild_id)

    async def allow_channel(self, guild_id: int, channel_id: int, *, allowed: bool) -> GuildView:
        view = await self.guilds.allow_channel(guild_id, channel_id, allowed)
        await self._audit(
            guild_id, "channel_allowed" if allowed else "channel_removed", channel=channel_id
        )
        return view

    async def set_notification_channel(self, guild_id: int, channel_id: int | None) -> GuildView:
        settings = await self.guilds.update(guild_id, notification_channel_id=channel_id)
        return await self.guilds.view(settings.guild_id)

    async def set_role_tier(self, guild_id: int, role_id: int, tier: str | None) -> GuildView:
        view = await self.guilds.set_role_tier(guild_id, role_id, tier)
        await self._audit(guild_id, "role_tier_set", role=role_id, tier=tier)
        return view

    async def set_limit(self, guild_id: int, name: str, value: str) -> GuildView:
        view = await self.guilds.set_limit(guild_id, name, value)
        await self._audit(guild_id, "limit_set", name=name, value=value)
        return view

    async def check_environment(self, guild_id: int, target: Environment) -> None:
        """Raise unless the guild could trade in `target` right now."""
        if target is Environment.PAPER:
            return
        try:
            await self.brokers.credentials(guild_id, target)
        except CredentialsMissing:
            how = f"`!tt link {target.value}`"
            why = (
                " (the bot's own live credentials are only for servers its owner listed in "
                "TT_LIVE_CONFIG_GUILD_IDS)"
                if target is Environment.LIVE
                else ""
            )
            raise CredentialsMissing(
                f"No {target.value} credentials linked for this server: an admin must link them "
                f"first with {how}{why}."
            ) from None

    async def set_environment(self, guild_id: int, target: Environment) -> GuildView:
        await self.check_environment(guild_id, target)
        changes: dict[str, object] = {"environment": target.value}
        if target is Environment.LIVE:
            changes["skip_confirmation"] = False  # live always confirms
        await self.guilds.update(guild_id, **changes)
        await self._audit(guild_id, "environment_set", environment=target.value)
        return await self.guilds.view(guild_id)

    async def halt(self, guild_id: int) -> HaltOutcome:
        # Refuse new orders first, then stop what is running.
        await self.guilds.update(guild_id, halted=True)
        results = await self.engine.halt(guild_id)
        cancelled = sum(
            1 for r in results if r.status in (ChaseStatus.HALTED, ChaseStatus.PARTIALLY_FILLED)
        )
        await self._audit(guild_id, "halted", chases=len(results), cancelled=cancelled)
        return HaltOutcome(halted=True, chases_stopped=len(results), orders_cancelled=cancelled)

    async def resume(self, guild_id: int) -> GuildView:
        await self.guilds.update(guild_id, halted=False)
        await self._audit(guild_id, "resumed")
        return await self.guilds.view(guild_id)

    def check_can_store_credentials(self) -> None:
        if not self._encryption:
            raise ServiceError(
                "Linking credentials is disabled: the bot has no encryption key. The bot owner "
                "must set TT_BOT_ENCRYPTION_KEYS (see config.example.env for the one-line key "
                "generator) and restart."
            )

    async def link(
        self, guild_id: int, environment: Environment, secret: str, refresh: str, *, linked_by: int
    ) -> int:
        self.check_can_store_credentials()
        await self._refuse_while_working(guild_id, environment, "linking new")
        count = await self.brokers.link(guild_id, environment, secret, refresh, user_id=linked_by)
        await self._audit(
            guild_id, "credentials_linked", environment=environment.value, by=linked_by
        )
        return count

    async def _refuse_while_working(
        self, guild_id: int, environment: Environment, action: str
    ) -> None:
        """Chases hold the session of these credentials: replacing or removing them would
        leave their orders without a way to cancel, halt or notice fills."""
        working = [
            record
            for record in await self.engine.store.with_status(
                frozenset(s for s in ChaseStatus if s.order_may_work), guild_id=guild_id
            )
            if record.environment == environment.value
        ]
        if working:
            raise ServiceError(
                f"{len(working)} {environment.value} order(s) of this server may still be "
                f"working; cancel them (`!tt cancel all`) or wait for them to finish before "
                f"{action} {environment.value} credentials."
            )

    async def unlink(self, guild_id: int, environment: Environment) -> Environment | None:
        """Remove linked credentials; returns the new environment if the guild had to move."""
        await self._refuse_while_working(guild_id, environment, "unlinking the")
        removed = await self.brokers.unlink(guild_id, environment)
        if not removed:
            raise ServiceError(f"This server has no linked {environment.value} credentials.")
        await self._audit(guild_id, "credentials_unlinked", environment=environment.value)
        settings = await self.guilds.get(guild_id)
        if settings.environment == environment.value:
            # Never carry on silently with other credentials (another account): back to paper.
            await self.guilds.update(guild_id, environment=Environment.PAPER.value)
            await self._audit(guild_id, "environment_set", environment=Environment.PAPER.value)
            return Environment.PAPER
        return None

    # -- orders ----------------------------------------------------------------------------

    async def preview_order(self, request: OrderRequest) -> PreviewSummary:
        return await self.orders.preview(request)

    async def preview_close(self, request: OrderRequest) -> PreviewSummary:
        """Preview closing a whole position, named by its `!tt positions` number or symbol."""
        target, _, price = request.text.partition("@")
        target = target.strip()
        context = await self.brokers.context(request.guild_id)
        rows = (await self.views.positions(context)).data
        row = _find_position(rows, target)
        text = closing_ticket(row) + (f" @ {price.strip()}" if price.strip() else "")
        closing = OrderRequest(
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            author_id=request.author_id,
            author_name=request.author_name,
            text=text,
            key=request.key,
        )
        summary = await self.orders.preview(closing)
        if target.lstrip("#").isdigit():
            # A number refers to a listing the user saw earlier, which may have changed since:
            # always show which position it is now and ask before closing it.
            summary = dataclasses.replace(summary, confirm_required=True)
        return summary

    async def place(self, preview: PreviewSummary) -> PlacementOutcome:
        outcome, chase_id = await self.orders.place(preview)
        if not outcome.duplicate and chase_id:
            self.progress.track(chase_id, outcome.progress)
        await self._ensure_tracking(preview.guild_id)
        return outcome

    async def watch(self, preview_id: str) -> AsyncIterator[OrderProgress]:
        async for progress in self.progress.watch(preview_id, limit_s=self._watch_timeout):
            yield progress

    async def placement_for_key(self, key: str) -> str | None:
        return await self.orders.placement_for_key(key)

    async def cancel(self, guild_id: int, target: str) -> CancelOutcome:
        outcome = await self.orders.cancel(guild_id, target)
        await self._audit(guild_id, "cancel", target=target, cancelled=list(outcome.cancelled))
        return outcome

    async def replace(
        self, guild_id: int, order_id: str, price: Decimal, *, key: str | None = None
    ) -> ReplaceOutcome:
        return await self.orders.replace(guild_id, order_id, price, key=key)

    async def subscribe_fills(
        self, callback: Callable[[FillNotice], Awaitable[None]]
    ) -> Callable[[], None]:
        return self.progress.subscribe_fills(callback)

    def _order_placed(self, event: OrderPlaced | ChaseStepped) -> None:
        if self.streamers is not None:
            order_id = event.order_id if isinstance(event, OrderPlaced) else event.new_order_id
            self.streamers.order_placed(event.context.environment, event.account_number, order_id)

    def _fill_seen(self, event: OrderFilled) -> None:
        # Stale snapshot, and the live book must catch up before it answers for these legs.
        self.orders.fill_seen(event)
        key = (event.context.guild_id, event.context.environment)
        if key in self._resync_pending:
            return
        self._resync_pending.add(key)
        self._spawn(self._refresh_after_fill(*key))

    async def _refresh_after_fill(self, guild_id: int, environment: str) -> None:
        """Bring positions and balances up to date after a fill (incremental sync)."""
        try:
            context = await self.brokers.context(guild_id, Environment(environment))
            await self.syncer.sync(context, kind="auto", progress=None)
            self.orders.positions_synced(environment, context.account_number)
        except (ServiceError, BrokerError) as exc:
            log.warning("post_fill_sync_failed", guild_id=guild_id, error=str(exc))
        finally:
            self._resync_pending.discard((guild_id, environment))

    async def _ensure_tracking(self, guild_id: int) -> None:
        if self.streamers is None:
            return
        try:
            await self.streamers.ensure(await self.brokers.context(guild_id))
        except (ServiceError, BrokerError) as exc:
            log.warning("fill_tracking_unavailable", guild_id=guild_id, error=str(exc))

    # -- account views ---------------------------------------------------------------------

    async def account_number(self, guild_id: int) -> str:
        return (await self.brokers.context(guild_id)).account_number

    async def _fresh_context(self, guild_id: int) -> BrokerContext:
        """The guild's context for a database query.

        A paper account (the built-in exchange, always small) is synced once on first use;
        sandbox and live accounts are only synced on request (`!tt sync`), by the schedule
        or after a fill, so a query never starts a long download unasked.
        """
        context = await self.brokers.context(guild_id)
        if context.environment is Environment.PAPER:
            account = await self.db.accounts.get(context.environment.value, context.account_number)
            if account is None or account.last_synced_at is None:
                await self.syncer.sync(context, kind="auto", progress=None)
        return context

    async def positions(self, guild_id: int) -> Scoped[list[PositionRow]]:
        return await self.views.positions(await self._fresh_context(guild_id))

    async def open_orders(self, guild_id: int) -> Scoped[list[OrderRow]]:
        context = await self._fresh_context(guild_id)
        chased: set[int] = set()
        for record in await self.engine.store.with_status(_OPEN_CHASES, guild_id=guild_id):
            chased.update(record.chain)
        return await self.views.open_orders(context, chased)

    async def balance(self, guild_id: int) -> Scoped[BalanceSummary]:
        return await self.views.balance(await self._fresh_context(guild_id))

    async def history(self, guild_id: int) -> Scoped[list[TransactionRow]]:
        return await self.views.history(await self._fresh_context(guild_id))

    async def quote(self, guild_id: int, text: str) -> Scoped[QuoteSummary]:
        return await self.views.quote(await self.brokers.context(guild_id), text)

    async def check_sync(self, guild_id: int) -> None:
        """Raise now if a manual sync would be refused (before showing a progress message)."""
        self.syncer.check_manual(await self.brokers.context(guild_id))

    async def sync(
        self, guild_id: int, *, kind: str, progress: ProgressCallback | None
    ) -> SyncSummary:
        context = await self.brokers.context(guild_id)
        summary = await self.syncer.sync(context, kind=kind, progress=progress, manual=True)
        self.orders.positions_synced(context.environment.value, context.account_number)
        return summary

    async def sync_targets(self) -> list[SyncTarget]:
        """Accounts the scheduled sync keeps fresh: those this bot has served since start."""
        return [
            SyncTarget(c.session, c.environment.value, c.account_number, c.guild_id)
            for c in self.brokers.active.values()
            if not c.session.closed
        ]

    async def _accounts_and_choice(
        self, guild_id: int
    ) -> tuple[Environment, list[Account], str | None]:
        """The open accounts and the guild's current one (None until an admin chooses)."""
        env = Environment((await self.guilds.get(guild_id)).environment)
        session, _ = await self.brokers.session(guild_id, env)
        accounts = await self.brokers.accounts(session)
        try:
            current: str | None = (await self.brokers.context(guild_id, env)).account_number
        except ServiceError:
            current = None  # several accounts and none (or a closed one) chosen
        return env, accounts, current

    async def accounts(self, guild_id: int) -> Scoped[list[AccountRow]]:
        env, accounts, current = await self._accounts_and_choice(guild_id)
        rows = [
            AccountRow(
                account_number=a.account_number,
                nickname=a.nickname or "",
                account_type=a.account_type_name or "",
                margin_or_cash=a.margin_or_cash or "",
                is_default=a.account_number == current,
            )
            for a in accounts
        ]
        return Scoped(env, current or "none chosen", rows)

    async def choose_account(self, guild_id: int, choice: str) -> str:
        env, accounts, _ = await self._accounts_and_choice(guild_id)
        chosen = None
        if choice.isdigit() and 1 <= int(choice) <= len(accounts) and len(choice) <= 2:
            chosen = accounts[int(choice) - 1]
        else:
            matches = [a for a in accounts if a.account_number.endswith(choice.upper())]
            if len(matches) == 1:
                chosen = matches[0]
        if chosen is None:
            raise ServiceError(
                f"No single account matches `{choice[:20]}`; use its # from `!tt accounts`."
            )
        field = f"default_account_{env.value}"
        await self.guilds.update(guild_id, **{field: chosen.account_number})
        await self._audit(guild_id, "account_chosen", account=chosen.account_number)
        return chosen.account_number

    async def status(self, guild_id: int) -> StatusReport:
        settings = await self.guilds.get(guild_id)
        env = Environment(settings.environment)
        working = await self.engine.store.with_status(_OPEN_CHASES, guild_id=guild_id)
        try:
            context = await self.brokers.context(guild_id)
        except CredentialsMissing:
            return StatusReport(
                environment=env,
                halted=settings.halted,
                account_number=None,
                session_state="no credentials",
                token_expires_at=None,
                streamer_state="off",
                last_sync_at=None,
                last_sync_status=None,
                working_chases=len(working),
                credentials_source=CredentialSource.MISSING.value,
            )
        except ServiceError as exc:
            return StatusReport(
                environment=env,
                halted=settings.halted,
                account_number=None,
                session_state=f"error: {exc.message}"[:200],
                token_expires_at=None,
                streamer_state="off",
                last_sync_at=None,
                last_sync_status=None,
                working_chases=len(working),
                credentials_source="?",
            )
        health = context.session.health()
        state = "ok"
        if health.last_error_category is not None:
            state = f"last error: {health.last_error_category.value}"
        run = await self.db.sync.latest_run(env.value, context.account_number)
        streamer = self.streamers.describe(env, context.account_number) if self.streamers else "off"
        if self.orders.quotes is not None:
            streamer = f"{streamer}; {self.orders.quotes.describe(context.session)}"
        return StatusReport(
            environment=env,
            halted=settings.halted,
            account_number=context.account_number,
            session_state=state,
            token_expires_at=health.token_expires_at,
            streamer_state=streamer,
            last_sync_at=run.finished_at or run.started_at if run else None,
            last_sync_status=run.status if run else None,
            working_chases=len(working),
            credentials_source=context.source.value,
        )

    async def _audit(self, guild_id: int, event: str, **details: object) -> None:
        await self.db.audit.record(event, guild_id=guild_id, details=dict(details))


def _find_position(rows: list[PositionRow], target: str) -> PositionRow:
    if not rows:
        raise ServiceError("There are no open positions to close (run `!tt sync` if unsure).")
    if target.lstrip("#").isdigit():
        number = int(target.lstrip("#"))
        for row in rows:
            if row.index == number:
                return row
        raise ServiceError(f"No position #{number}; `!tt positions` lists them.")
    wanted = " ".join(target.upper().split())
    matches = [
        r for r in rows if r.symbol.upper() == wanted or " ".join(r.symbol.split()) == wanted
    ]
    if not matches:
        matches = [r for r in rows if r.underlying.upper() == wanted]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ServiceError(f"No open position in `{target[:30]}`.")
    listed = ", ".join(f"#{r.index} {r.symbol}" for r in matches[:5])
    raise ServiceError(f"Several positions match `{target[:30]}` ({listed}); close one by #.")


def closing_ticket(row: PositionRow) -> str:
    """The order-language text that closes `row` completely."""
    quantity = abs(row.quantity)
    if quantity != quantity.to_integral_value():
        raise ServiceError(f"{row.symbol}: fractional quantities can't be closed here.")
    action = "stc" if row.quantity > 0 else "btc"
    return f"{action} {int(quantity)} {instrument_text(row.symbol, row.instrument_type)}"


def instrument_text(symbol: str, instrument_type: str) -> str:
    """A broker symbol in order-language form (`SPY 12/18/26 590P`, `/ESZ6 12/18/26 6000C`)."""
    if instrument_type == "Equity Option":
        root = symbol[:6].strip()
        code = symbol[6:].strip()
        yy, mm, dd, kind, strike = code[0:2], code[2:4], code[4:6], code[6], code[7:]
        strike_value = Decimal(strike) / 1000
        return f"{root} {int(mm)}/{int(dd)}/{yy} {strike_value.normalize():f}{kind}"
    if instrument_type == "Future Option":
        # ./ESZ6 EW3Z6 261218C6000 -> /ESZ6 12/18/26 6000C
        parts = symbol.lstrip(".").split()
        future, code = parts[0], parts[-1]
        yy, mm, dd, kind, strike = code[0:2], code[2:4], code[4:6], code[6], code[7:]
        return f"{future} {int(mm)}/{int(dd)}/{yy} {strike}{kind}"
    return symbol
