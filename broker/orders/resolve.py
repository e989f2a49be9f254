"""Instrument resolution: ticket legs → real exchange symbols, multipliers and tick schedules.

Everything goes through the SDK (``Equity.get``, ``NestedOptionChain.get``, ``Future.get``,
``NestedFutureOptionChain.get``) via ``BrokerSession.read``. Chains and instruments are cached
per environment with a TTL (chains change daily, instruments rarely), so a warm build costs no
instrument request at all. Concurrent lookups of the same key share one request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Generic, TypeVar

from tastytrade.instruments import (
    Equity,
    Future,
    NestedFutureOptionChain,
    NestedFutureOptionChainExpiration,
    NestedOptionChain,
    NestedOptionChainExpiration,
    Strike,
)
from tastytrade.order import InstrumentType

from broker.orders.errors import BuildError, BuildRefusal
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.tickets.model import InstrumentKind, OptionType, TicketLeg
from broker.ticks import TickError, TickSchedule

__all__ = ["CachePolicy", "InstrumentResolver", "ResolvedInstrument", "TtlCache"]

K = TypeVar("K", bound=Hashable)

#: SEC Rule 612 (Reg NMS) stock increments, used only when the API omits a stock's tick-sizes.
REG_NMS_STOCK_TICKS = TickSchedule.from_sizes([("0.0001", "1"), ("0.01", None)])
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Seconds before cached data is fetched again."""

    chain_ttl: float = 15 * 60.0
    instrument_ttl: float = 60 * 60.0


class TtlCache(Generic[K, V]):
    """A small async TTL cache with single-flight loading (failures are not cached)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            await asyncio.wait([pending])
            if pending.cancelled():  # the loading caller was cancelled: load it ourselves
                return await self.get(key, load)
            return pending.result()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            self._entries[key] = (self._clock() + self._ttl, value)
            future.set_result(value)
            return value
        finally:
            del self._loading[key]


@dataclass(frozen=True, slots=True)
class ResolvedInstrument:
    """One leg's instrument as the exchange lists it."""

    instrument_type: InstrumentType
    symbol: str  # the exchange symbol to order
    underlying: str  # SPY, /ES
    multiplier: Decimal  # dollars per point per unit: 1 shares, 100 options, 50 /ES
    ticks: TickSchedule  # the instrument's own price ticks
    option_ticks: TickSchedule | None  # the underlying's option schedule (spread default)
    description: str  # for humans: "SPY 2026-12-18 600 Call"
    closing_only: bool = False
    expiration: date | None = None
    strike: Decimal | None = None
    option_type: OptionType | None = None
    #: The DXLink symbol (SPY, .SPY261218C600, /ESZ26:XCME); None when the API gave none
    #: (the sandbox omits it on future options), in which case quotes come from REST.
    streamer_symbol: str | None = None


def _streamer_symbol(value: str | None) -> str | None:
    stripped = (value or "").strip()
    return stripped or None


def _short_date(day: date, reference: date) -> str:
    return f"{day:%m/%d}" if day.year == reference.year else f"{day:%m/%d/%y}"


def _strike_text(strike: Decimal) -> str:
    return f"{strike.normalize():f}"


Ordered = TypeVar("Ordered", date, Decimal)


def _nearest(values: Sequence[Ordered], target: Ordered) -> list[Ordered]:
    """The closest listed value below and above ``target`` (one of them may not exist)."""
    ordered = sorted(values)
    below = [v for v in ordered if v < target]
    above = [v for v in ordered if v > target]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def _kind_name(option_type: OptionType | None) -> str:
    return "Call" if option_type is OptionType.CALL else "Put"


class InstrumentResolver:
    """Resolves ticket legs against the exchange, caching per environment."""

    def __init__(
        self,
        policy: CachePolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy or CachePolicy()
        self._now = now
        self._equities: TtlCache[tuple[str, str], Equity] = TtlCache(
            self.policy.instrument_ttl, clock
        )
        self._futures: TtlCache[tuple[str, str], list[Future]] = TtlCache(
            self.policy.instrument_ttl, clock
        )
        self._chains: TtlCache[tuple[str, str], list[NestedOptionChain]] = TtlCache(
            self.policy.chain_ttl, clock
        )
        self._future_chains: TtlCache[tuple[str, str], NestedFutureOptionChain] = TtlCache(
            self.policy.chain_ttl, clock
        )

    def clear(self) -> None:
        for cache in (self._equities, self._futures, self._chains, self._future_chains):
            cache.clear()

    async def resolve(self, broker: BrokerSession, leg: TicketLeg) -> ResolvedInstrument:
        match leg.kind:
            case InstrumentKind.EQUITY:
                return await self._equity(broker, leg)
            case InstrumentKind.EQUITY_OPTION:
                return await self._equity_option(broker, leg)
            case InstrumentKind.FUTURE:
                return await self._future(broker, leg)
            case InstrumentKind.FUTURE_OPTION:
                return await self._future_option(broker, leg)
        raise BuildError(BuildRefusal.UNSUPPORTED, f"cannot trade {leg.kind} instruments")

    # -- loaders --------------------------------------------------------------------------

    async def equity(self, broker: BrokerSession, symbol: str) -> Equity:
        async def load() -> Equity:
            try:
                return await broker.read(lambda s: Equity.get(s, symbol))
            except BrokerError as exc:
                _raise_if_unlisted(exc, f"{symbol} is not a symbol Tastytrade lists")
                raise

        return await self._equities.get((broker.environment.value, symbol), load)

    async def option_chains(
        self, broker: BrokerSession, underlying: str
    ) -> list[NestedOptionChain]:
        async def load() -> list[NestedOptionChain]:
            try:
                chains = await broker.read(
                    lambda s: NestedOptionChain.get(s, underlying), kind="chains"
                )
            except BrokerError as exc:
                _raise_if_unlisted(exc, f"{underlying} has no listed options")
                raise
            if not chains:
                raise BuildError(BuildRefusal.UNKNOWN_SYMBOL, f"{underlying} has no listed options")
            return chains

        return await self._chains.get((broker.environment.value, underlying), load)

    async def futures(self, broker: BrokerSession, product_code: str) -> list[Future]:
        async def load() -> list[Future]:
            try:
                listed = await broker.read(
                    lambda s: Future.get(s, product_codes=[product_code], page_offset=None)
                )
            except BrokerError as exc:
                _raise_if_unlisted(exc, f"/{product_code} is not a futures product")
                raise
            if not listed:
                raise BuildError(
                    BuildRefusal.UNKNOWN_SYMBOL, f"/{product_code} has no listed futures"
                )
            return listed

        return await self._futures.get((broker.environment.value, product_code), load)

    async def future_option_chain(
        self, broker: BrokerSession, root: str
    ) -> NestedFutureOptionChain:
        async def load() -> NestedFutureOptionChain:
            try:
                return await broker.read(
                    lambda s: NestedFutureOptionChain.get(s, root), kind="chains"
                )
            except BrokerError as exc:
                _raise_if_unlisted(exc, f"{root} has no listed options")
                raise

        return await self._future_chains.get((broker.environment.value, root), load)

    # -- per kind -------------------------------------------------------------------------

    async def _equity(self, broker: BrokerSession, leg: TicketLeg) -> ResolvedInstrument:
        equity = await self.equity(broker, leg.symbol)
        if not equity.active:
            raise BuildError(BuildRefusal.INACTIVE, f"{equity.symbol} is not active for trading")
        return ResolvedInstrument(
            instrument_type=InstrumentType.EQUITY,
            symbol=equity.symbol,
            underlying=equity.symbol,
            multiplier=Decimal(1),
            ticks=(
                _schedule(equity.tick_sizes, equity.symbol, "tick-sizes")
                if equity.tick_sizes
                else REG_NMS_STOCK_TICKS
            ),
            option_ticks=(
                TickSchedule.from_tick_sizes(equity.option_tick_sizes)
                if equity.option_tick_sizes
                else None
            ),
            description=equity.symbol,
            closing_only=equity.is_closing_only,
            streamer_symbol=_streamer_symbol(equity.streamer_symbol),
        )

    async def _equity_option(self, broker: BrokerSession, leg: TicketLeg) -> ResolvedInstrument:
        expiration_day, strike, option_type = _option_fields(leg)
        underlying = leg.underlying
        chains = await self.option_chains(broker, underlying)
        # A root can list the same date twice (SPX monthly AM vs SPXW PM): prefer the
        # chain whose root is the underlying itself, then the rest in API order.
        chains = sorted(chains, key=lambda c: c.root_symbol != underlying)
        found: tuple[NestedOptionChain, NestedOptionChainExpiration] | None = None
        for chain in chains:
            for expiration in chain.expirations:
                if expiration.expiration_date == expiration_day:
                    found = (chain, expiration)
                    break
            if found:
                break
        if found is None:
            listed = sorted({e.expiration_date for c in chains for e in c.expirations})
            raise _no_expiration(underlying, expiration_day, listed)
        chain, expiration = found
        listing = _strike_listing(expiration.strikes, strike)
        if listing is None:
            raise _no_strike(
                f"{underlying} {_short_date(expiration_day, expiration_day)}",
                strike,
                [s.strike_price for s in expiration.strikes],
            )
        call = option_type is OptionType.CALL
        symbol = listing.call if call else listing.put
        streamer_symbol = listing.call_streamer_symbol if call else listing.put_streamer_symbol
        ticks = _schedule(chain.tick_sizes, underlying, "option tick-sizes")
        return ResolvedInstrument(
            instrument_type=InstrumentType.EQUITY_OPTION,
            symbol=symbol,
            underlying=underlying,
            multiplier=Decimal(chain.shares_per_contract),
            ticks=ticks,
            option_ticks=ticks,
            description=(
                f"{underlying} {expiration_day.isoformat()} {_strike_text(strike)} "
                f"{_kind_name(option_type)}"
            ),
            expiration=expiration_day,
            strike=strike,
            option_type=option_type,
            streamer_symbol=_streamer_symbol(streamer_symbol),
        )

    async def _future(self, broker: BrokerSession, leg: TicketLeg) -> ResolvedInstrument:
        code = _product_code(leg.underlying)
        listed = await self.futures(broker, code)
        if leg.front_month_unresolved:
            future = self._front_month(code, listed)
        else:
            wanted = leg.future_symbol or leg.symbol
            named = next((f for f in listed if f.symbol == wanted), None)
            if named is None:
                names = ", ".join(f.symbol for f in sorted(listed, key=lambda f: f.expiration_date))
                raise BuildError(
                    BuildRefusal.UNKNOWN_SYMBOL, f"{wanted} is not listed; listed: {names}"
                )
            future = named
            if future.expires_at <= self._now():
                raise BuildError(BuildRefusal.INACTIVE, f"{future.symbol} has expired")
        ticks = (
            TickSchedule.from_tick_sizes(future.tick_sizes)
            if future.tick_sizes
            else TickSchedule.uniform(future.tick_size)
        )
        return ResolvedInstrument(
            instrument_type=InstrumentType.FUTURE,
            symbol=future.symbol,
            underlying=f"/{code}",
            multiplier=future.notional_multiplier,
            ticks=ticks,
            option_ticks=(
                TickSchedule.from_tick_sizes(future.option_tick_sizes)
                if future.option_tick_sizes
                else None
            ),
            description=future.symbol,
            closing_only=future.is_closing_only,
            expiration=future.expiration_date,
            streamer_symbol=_streamer_symbol(future.streamer_symbol),
        )

    def _front_month(self, code: str, listed: Sequence[Future]) -> Future:
        now = self._now()
        live = [f for f in listed if f.active and f.expires_at > now]
        if not live:
            raise BuildError(BuildRefusal.INACTIVE, f"/{code} has no active contract to trade")
        active = [f for f in live if f.active_month]
        return min(active or live, key=lambda f: f.expiration_date)

    async def _future_option(self, broker: BrokerSession, leg: TicketLeg) -> ResolvedInstrument:
        expiration_day, strike, option_type = _option_fields(leg)
        root = leg.underlying
        code = _product_code(root)
        chain = await self.future_option_chain(broker, root)
        expirations = [e for sub in chain.option_chains for e in sub.expirations]
        matching = [e for e in expirations if e.expiration_date == expiration_day]
        if leg.future_symbol is not None:
            matching = [e for e in matching if e.underlying_symbol == leg.future_symbol]
        if not matching:
            on_future = (
                [e for e in expirations if e.underlying_symbol == leg.future_symbol]
                if leg.future_symbol
                else expirations
            )
            label = f"{root} on {leg.future_symbol}" if leg.future_symbol else root
            raise _no_expiration(
                label, expiration_day, sorted({e.expiration_date for e in on_future})
            )
        with_strike = [e for e in matching if _strike_listing(e.strikes, strike) is not None]
        if not with_strike:
            raise _no_strike(
                f"{root} {_short_date(expiration_day, expiration_day)}",
                strike,
                sorted({s.strike_price for e in matching for s in e.strikes}),
            )
        if len(with_strike) > 1:
            roots = ", ".join(
                f"{e.option_contract_symbol} on {e.underlying_symbol}" for e in with_strike
            )
            raise BuildError(
                BuildRefusal.AMBIGUOUS,
                f"{root} lists more than one option series expiring "
                f"{_short_date(expiration_day, expiration_day)} ({roots}); name the future, "
                f"e.g. ./{with_strike[0].underlying_symbol.lstrip('/')}",
            )
        expiration: NestedFutureOptionChainExpiration = with_strike[0]
        listing = _strike_listing(expiration.strikes, strike)
        assert listing is not None
        listed_futures = await self.futures(broker, code)
        underlying_future = next(
            (f for f in listed_futures if f.symbol == expiration.underlying_symbol), None
        )
        if underlying_future is None:
            raise BuildError(
                BuildRefusal.UNKNOWN_SYMBOL,
                f"the future {expiration.underlying_symbol} under {root} options is not listed",
            )
        ticks = _schedule(expiration.tick_sizes, root, "option tick-sizes")
        call = option_type is OptionType.CALL
        return ResolvedInstrument(
            instrument_type=InstrumentType.FUTURE_OPTION,
            symbol=listing.call if call else listing.put,
            underlying=root,
            multiplier=underlying_future.notional_multiplier,
            ticks=ticks,
            option_ticks=ticks,
            description=(
                f"{root} {expiration_day.isoformat()} {_strike_text(strike)} "
                f"{_kind_name(option_type)} ({expiration.option_contract_symbol} on "
                f"{expiration.underlying_symbol})"
            ),
            expiration=expiration_day,
            strike=strike,
            option_type=option_type,
            streamer_symbol=_streamer_symbol(
                listing.call_streamer_symbol if call else listing.put_streamer_symbol
            ),
        )


# -- helpers -----------------------------------------------------------------------------------


def _option_fields(leg: TicketLeg) -> tuple[date, Decimal, OptionType]:
    if leg.expiration is None or leg.strike is None or leg.option_type is None:
        raise BuildError(
            BuildRefusal.UNSUPPORTED,
            f"{leg.symbol} needs an expiration, a strike and call/put to find the option",
        )
    return leg.expiration, leg.strike, leg.option_type


def _product_code(root: str) -> str:
    code = root.strip().lstrip("./")
    if not code.isalnum():
        raise BuildError(BuildRefusal.UNKNOWN_SYMBOL, f"{root} is not a futures product")
    return code.upper()


def _strike_listing(strikes: Sequence[Strike], strike: Decimal) -> Strike | None:
    return next((s for s in strikes if s.strike_price == strike), None)


def _schedule(sizes: Sequence[object] | None, owner: str, what: str) -> TickSchedule:
    try:
        if not sizes:
            raise TickError("empty")
        return TickSchedule.from_tick_sizes(sizes)  # type: ignore[arg-type]
    except TickError as exc:
        raise BuildError(
            BuildRefusal.UNSUPPORTED, f"Tastytrade sent no usable {what} for {owner} ({exc})"
        ) from exc


def _raise_if_unlisted(exc: BrokerError, message: str) -> None:
    """A 4xx on an instrument lookup means it isn't listed; anything else propagates as is."""
    if exc.category is ErrorCategory.REJECTED and exc.status in (400, 404, 422):
        raise BuildError(BuildRefusal.UNKNOWN_SYMBOL, message) from exc


def _no_expiration(label: str, wanted: date, listed: Sequence[date]) -> BuildError:
    nearest = _nearest(listed, wanted)
    hint = (
        "; nearest: " + ", ".join(_short_date(d, wanted) for d in nearest)
        if nearest
        else "; no expirations are listed"
    )
    return BuildError(
        BuildRefusal.NO_EXPIRATION, f"{label} has no {_short_date(wanted, wanted)} expiration{hint}"
    )


def _no_strike(label: str, wanted: Decimal, listed: Sequence[Decimal]) -> BuildError:
    nearest = _nearest(listed, wanted)
    hint = "; nearest: " + ", ".join(_strike_text(k) for k in nearest) if nearest else ""
    return BuildError(BuildRefusal.NO_STRIKE, f"{label} has no {_strike_text(wanted)} strike{hint}")
