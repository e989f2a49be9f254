"""REST routes of the paper exchange, matched on the raw (still percent-encoded) path."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from broker.paper import calendar, payloads, views
from broker.paper.engine import NotFoundError
from broker.paper.faults import error_body
from broker.paper.ledger import ZERO, Account, Transaction, underlying_of
from broker.paper.orders import Order
from broker.paper.payloads import JsonDict
from broker.paper.queries import (
    ListCache,
    Query,
    filter_orders,
    filter_transactions,
    paginate,
)
from broker.paper.universe import (
    EquitySpec,
    FutureContract,
    FutureOptionContract,
    Instrument,
    Kind,
    OptionContract,
)

if TYPE_CHECKING:
    from broker.paper.exchange import PaperExchange

MARKET_DATA_KEYS: dict[str, Kind | None] = {
    "equity": Kind.EQUITY,
    "equity-option": Kind.EQUITY_OPTION,
    "future": Kind.FUTURE,
    "future-option": Kind.FUTURE_OPTION,
    "index": None,
    "cryptocurrency": None,
}
MAX_MARKET_DATA_SYMBOLS = 100


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.body = error_body(status, code, message)


@dataclass(frozen=True)
class Call:
    """One request as the handlers see it."""

    request: web.Request
    params: dict[str, str]
    query: Query

    @property
    def account(self) -> str:
        return self.params["account"]

    async def json_body(self) -> object:
        text = await self.request.text()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise HttpError(400, "invalid_json", "The request body is not valid JSON.") from error


Reply = tuple[int, JsonDict | views.PreEncoded]
Handler = Callable[[Call], Awaitable[Reply]]


def ok(data: JsonDict, status: int = 200, **extra: object) -> Reply:
    return status, {"data": data, **extra}


class Routes:
    def __init__(self, exchange: PaperExchange) -> None:
        self.ex = exchange
        self._transaction_cache: ListCache[Transaction] = ListCache()
        self._order_cache: ListCache[Order] = ListCache()
        # Per account: the live-orders selection and the (orders version, day) it is for.
        self._live_cache: dict[str, tuple[tuple[int, date], list[Order]]] = {}
        a = r"/accounts/(?P<account>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/customers/me", self.customer),
            ("POST", r"/sessions/validate", self.validate),
            ("GET", r"/customers/me/accounts", self.accounts),
            ("GET", r"/customers/me/accounts/(?P<account>[^/]+)", self.account),
            ("GET", a, self.account),
            ("GET", a + r"/balances(?:/(?P<currency>[^/]+))?", self.balances),
            ("GET", a + r"/positions", self.positions),
            ("GET", a + r"/trading-status", self.trading_status),
            ("GET", a + r"/transactions", self.transactions),
            ("GET", a + r"/transactions/total-fees", self.total_fees),
            ("GET", a + r"/transactions/(?P<id>[^/]+)", self.transaction),
            ("GET", a + r"/orders", self.order_history),
            ("POST", a + r"/orders", self.place),
            ("POST", a + r"/orders/dry-run", self.dry_run),
            ("GET", a + r"/orders/live", self.live_orders),
            ("GET", a + r"/orders/(?P<id>[^/]+)", self.get_order),
            ("PUT", a + r"/orders/(?P<id>[^/]+)", self.replace),
            ("DELETE", a + r"/orders/(?P<id>[^/]+)", self.cancel),
            ("GET", r"/api-quote-tokens", self.quote_tokens),
            ("GET", r"/market-data/by-type", self.market_data_by_type),
            ("GET", r"/market-data/(?P<type>[^/]+)/(?P<symbol>.+)", self.market_data),
            ("GET", r"/instruments/equities", self.equities),
            ("GET", r"/instruments/equities/(?P<symbol>[^/]+)", self.equity),
            ("GET", r"/instruments/equity-options/(?P<symbol>[^/]+)", self.option),
            ("GET", r"/option-chains/(?P<symbol>[^/]+)/nested", self.nested_chain),
            ("GET", r"/option-chains/(?P<symbol>[^/]+)", self.option_chain),
            ("GET", r"/instruments/futures", self.futures),
            ("GET", r"/instruments/futures/(?P<symbol>.+)", self.future),
            ("GET", r"/instruments/future-options/(?P<symbol>[^/]+)", self.future_option),
            ("GET", r"/futures-option-chains/(?P<symbol>[^/]+)/nested", self.nested_fop_chain),
            ("GET", r"/futures-option-chains/(?P<symbol>[^/]+)", self.fop_chain),
        ]
        self._table = [(m, re.compile(p), h) for m, p, h in table]

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        path = path.rstrip("/") or "/"
        for route_method, pattern, handler in self._table:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return handler, params
        return None

    # ------------------------------------------------------------- helpers
    @property
    def _now(self) -> datetime:
        return self.ex.engine.now()

    def _today(self) -> date:
        return calendar.ny_date(self._now)

    def _account_of(self, call: Call) -> Account:
        try:
            return self.ex.engine.account(call.account)
        except NotFoundError as error:
            raise HttpError(404, "not_found", f"Account {call.account} not found.") from error

    def _order_id(self, call: Call) -> int:
        raw = call.params["id"]
        if not raw.isdigit():
            raise HttpError(404, "not_found", f"Order {raw!r} not found.")
        return int(raw)

    # ------------------------------------------------------------ customer
    async def customer(self, call: Call) -> Reply:
        account = self.ex.engine.account(self.ex.account_number)
        return ok(views.customer(account))

    async def validate(self, call: Call) -> Reply:
        return await self.customer(call)

    async def accounts(self, call: Call) -> Reply:
        items = [
            {"account": views.account_json(a), "authority-level": "owner"}
            for a in self.ex.engine.accounts.values()
        ]
        return ok({"items": items}, context="/customers/me/accounts")

    async def account(self, call: Call) -> Reply:
        self._account_of(call)
        return ok(views.account_json(self.ex.engine.account(call.account)))

    async def balances(self, call: Call) -> Reply:
        self._account_of(call)
        currency = call.params.get("currency", "USD")
        if currency != "USD":
            raise HttpError(404, "not_found", f"No {currency} balances for this account.")
        account = self.ex.engine.account(call.account)
        return ok(self.ex.engine.balances_json(account))

    async def trading_status(self, call: Call) -> Reply:
        self._account_of(call)
        account = self.ex.engine.account(call.account)
        return ok(views.trading_status(account, self._now))

    async def positions(self, call: Call) -> Reply:
        self._account_of(call)
        account = self.ex.engine.account(call.account)
        q = call.query
        underlyings = set(q.values("underlying-symbol"))
        symbol = q.get("symbol")
        instrument_type = q.get("instrument-type")
        include_closed = q.boolean("include-closed-positions") or False
        product_code = q.get("underlying-product-code")
        texts = []
        engine = self.ex.engine
        market = engine.market
        today = self._today()
        for position in account.positions.values():
            if position.quantity == 0 and not include_closed:
                continue
            if symbol and position.symbol != symbol:
                continue
            if instrument_type and position.instrument.kind.value != instrument_type:
                continue
            underlying = underlying_of(position.instrument)
            if underlyings and underlying not in underlyings:
                continue
            if product_code and not underlying.lstrip("/").startswith(product_code.lstrip("/")):
                continue
            mark = market.instrument_quote(position.instrument).mid
            texts.append(views.position_text(account, position, mark, today))
        # Pre-encoded: each position's JSON text is kept until the position or its mark moves.
        return 200, views.positions_reply(account, texts)

    # -------------------------------------------------------- transactions
    async def transactions(self, call: Call) -> Reply:
        self._account_of(call)
        account = self.ex.engine.account(call.account)
        key, run = filter_transactions(account, call.query)
        rows = self._transaction_cache.get(account.transactions_version, key)
        if rows is None:
            rows = list(run())
            self._transaction_cache.put(account.transactions_version, key, rows)
        return 200, paginate(
            rows,
            call.query,
            250,
            views.transaction,
            f"/accounts/{account.number}/transactions",
        )

    async def transaction(self, call: Call) -> Reply:
        self._account_of(call)
        account = self.ex.engine.account(call.account)
        raw = call.params["id"]
        if raw.isdigit():
            wanted = int(raw)
            for tx in account.transactions:
                if tx.id == wanted:
                    return ok(views.transaction(tx))
        raise HttpError(404, "not_found", f"Transaction {raw!r} not found.")

    async def total_fees(self, call: Call) -> Reply:
        self._account_of(call)
        account = self.ex.engine.account(call.account)
        day = call.query.day("date") or self._today()
        total = ZERO
        for tx in account.transactions:
            if tx.fees is not None and calendar.ny_date(tx.executed_at) == day:
                total += tx.fees.total
        return ok(payloads.signed("total-fees", -total))

    # --------------------------------------------------------------- orders
    async def order_history(self, call: Call) -> Reply:
        self._account_of(call)
        engine = self.ex.engine
        orders = engine.orders_of(call.account)
        key, run = filter_orders(orders, call.query)
        cache_key = (call.account, *key)
        rows = self._order_cache.get(engine.orders_version, cache_key)
        if rows is None:
            rows = list(run())
            self._order_cache.put(engine.orders_version, cache_key, rows)
        return 200, paginate(
            rows,
            call.query,
            50,
            Order.to_json,
            f"/accounts/{call.account}/orders",
        )

    async def live_orders(self, call: Call) -> Reply:
        self._account_of(call)
        engine = self.ex.engine
        today = self._today()
        # Which orders qualify changes only with a status change or an order added (both
        # move `orders_version`: fills and touches happen on working orders) or a new day.
        key = (engine.orders_version, today)
        cached = self._live_cache.get(call.account)
        if cached is not None and cached[0] == key:
            selected = cached[1]
        else:
            # Today's New York day as UTC bounds: one comparison per order, no zone work.
            day_start = calendar.ny_time(today, 0)
            day_end = calendar.ny_time(today + timedelta(days=1), 0)
            selected = [
                order
                for order in reversed(engine.orders_of(call.account))
                if order.is_working
                or day_start <= (order.updated_at or order.received_at) < day_end
            ]
            self._live_cache[call.account] = (key, selected)
        return ok({"items": [order.to_json() for order in selected]})

    async def get_order(self, call: Call) -> Reply:
        self._account_of(call)
        order_id = self._order_id(call)
        try:
            order = self.ex.engine.order(call.account, order_id)
        except NotFoundError as error:
            raise HttpError(404, "not_found", f"Order {order_id} not found.") from error
        return ok(order.to_json())

    async def place(self, call: Call) -> Reply:
        self._account_of(call)
        body = await call.json_body()
        return ok(self.ex.engine.submit(call.account, body, dry_run=False), status=201)

    async def dry_run(self, call: Call) -> Reply:
        self._account_of(call)
        body = await call.json_body()
        return ok(self.ex.engine.submit(call.account, body, dry_run=True))

    async def replace(self, call: Call) -> Reply:
        self._account_of(call)
        order_id = self._order_id(call)
        body = await call.json_body()
        try:
            return ok(self.ex.engine.replace(call.account, order_id, body))
        except NotFoundError as error:
            raise HttpError(404, "not_found", f"Order {order_id} not found.") from error

    async def cancel(self, call: Call) -> Reply:
        self._account_of(call)
        order_id = self._order_id(call)
        try:
            return ok(self.ex.engine.cancel(call.account, order_id))
        except NotFoundError as error:
            raise HttpError(404, "not_found", f"Order {order_id} not found.") from error

    # ---------------------------------------------------------- market data
    async def quote_tokens(self, call: Call) -> Reply:
        data: JsonDict = {
            "token": self.ex.dxlink.issue_token(),
            "dxlink-url": self.ex.dxlink_url,
            "level": "api",
        }
        return ok(data, context="/api-quote-tokens")

    async def market_data_by_type(self, call: Call) -> Reply:
        requested: list[tuple[Kind | None, str]] = []
        for key, kind in MARKET_DATA_KEYS.items():
            requested.extend((kind, symbol) for symbol in call.query.all(key))
        if len(requested) > MAX_MARKET_DATA_SYMBOLS:
            raise HttpError(
                400,
                "invalid_parameter",
                f"At most {MAX_MARKET_DATA_SYMBOLS} symbols may be requested at once.",
            )
        items = []
        for kind, symbol in requested:
            instrument = self.ex.universe.lookup(symbol)
            if instrument is not None and instrument.kind is kind:
                items.append(self.ex.market.market_data(instrument))
        return ok({"items": items}, pagination=None)

    async def market_data(self, call: Call) -> Reply:
        wanted = MARKET_DATA_KEYS.get(call.params["type"].lower().replace(" ", "-"))
        symbol = call.params["symbol"]
        # The SDK puts the symbol in the path unencoded: `/ESZ6` arrives as `//ESZ6` and
        # the client drops the `./` of a future option as a dot segment. Put them back.
        if wanted is Kind.FUTURE:
            symbol = "/" + symbol.lstrip("/")
        elif wanted is Kind.FUTURE_OPTION and not symbol.startswith("./"):
            symbol = "./" + symbol.lstrip("/")
        instrument = self.ex.universe.lookup(symbol)
        if instrument is None or wanted is not instrument.kind:
            raise HttpError(404, "not_found", f"No market data for {symbol!r}.")
        return ok(self.ex.market.market_data(instrument))

    # ----------------------------------------------------------- instruments
    def _lookup(self, symbol: str, kind: Kind) -> Instrument:
        instrument = self.ex.universe.lookup(symbol)
        if instrument is None or instrument.kind is not kind:
            raise HttpError(404, "not_found", f"{kind.value} {symbol!r} not found.")
        return instrument

    async def equity(self, call: Call) -> Reply:
        instrument = self._lookup(call.params["symbol"], Kind.EQUITY)
        assert isinstance(instrument, EquitySpec)
        return ok(payloads.equity(instrument))

    async def equities(self, call: Call) -> Reply:
        symbols = call.query.values("symbol")
        specs = self.ex.universe.equities
        wanted = [specs[s] for s in symbols if s in specs] if symbols else list(specs.values())
        is_etf = call.query.boolean("is-etf")
        if is_etf is not None:
            wanted = [s for s in wanted if s.is_etf == is_etf]
        return 200, paginate(wanted, call.query, 250, payloads.equity, "/instruments/equities")

    async def option(self, call: Call) -> Reply:
        instrument = self._lookup(call.params["symbol"], Kind.EQUITY_OPTION)
        assert isinstance(instrument, OptionContract)
        return ok(payloads.option(instrument, self._today()))

    async def nested_chain(self, call: Call) -> Reply:
        symbol = call.params["symbol"]
        if symbol not in self.ex.universe.chains:
            raise HttpError(404, "not_found", f"No option chain for {symbol!r}.")
        chain = payloads.nested_option_chain(self.ex.universe, symbol, self._today())
        return ok({"items": [chain]})

    async def option_chain(self, call: Call) -> Reply:
        symbol = call.params["symbol"]
        if symbol not in self.ex.universe.chains:
            raise HttpError(404, "not_found", f"No option chain for {symbol!r}.")
        today = self._today()
        items = [payloads.option(o, today) for o in self.ex.universe.options_of(symbol)]
        return ok({"items": items})

    async def future(self, call: Call) -> Reply:
        symbol = call.params["symbol"]
        contract = self.ex.universe.future(symbol.lstrip("/"))
        if contract is None:
            raise HttpError(404, "not_found", f"Future {symbol!r} not found.")
        return ok(payloads.future(contract, self._today()))

    async def futures(self, call: Call) -> Reply:
        universe = self.ex.universe
        symbols = call.query.values("symbol")
        codes = {c.lstrip("/") for c in call.query.values("product-code")}
        contracts: list[FutureContract] = list(universe.futures.values())
        if symbols:
            found = [universe.future(s.lstrip("/")) for s in symbols]
            contracts = [c for c in found if c is not None]
        elif codes:
            contracts = [c for c in contracts if c.product.code in codes]
        today = self._today()
        return 200, paginate(
            contracts,
            call.query,
            250,
            lambda c: payloads.future(c, today),
            "/instruments/futures",
        )

    async def future_option(self, call: Call) -> Reply:
        instrument = self._lookup(call.params["symbol"], Kind.FUTURE_OPTION)
        assert isinstance(instrument, FutureOptionContract)
        return ok(payloads.future_option(instrument, self._today()))

    async def nested_fop_chain(self, call: Call) -> Reply:
        code = call.params["symbol"].lstrip("/")
        if code not in self.ex.universe.future_option_chains:
            raise HttpError(404, "not_found", f"No future option chain for {code!r}.")
        chain = payloads.nested_future_option_chain(self.ex.universe, code, self._today())
        return ok(chain)

    async def fop_chain(self, call: Call) -> Reply:
        code = call.params["symbol"].lstrip("/")
        if code not in self.ex.universe.future_option_chains:
            raise HttpError(404, "not_found", f"No future option chain for {code!r}.")
        today = self._today()
        items = [payloads.future_option(o, today) for o in self.ex.universe.future_options_of(code)]
        return ok({"items": items})
