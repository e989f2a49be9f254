"""DXLink quote feed at ``/dxlink`` (what the SDK's ``DXLinkStreamer`` 13.2.3 talks to).

Tokens come from ``GET /api-quote-tokens`` (``issue_token``); each is valid for
``quote_token_ttl`` seconds of exchange time (24 h, like production's), independent of the
access token that fetched it, and is checked at ``AUTH`` only.

Message flow (JSON TEXT frames; ``→`` client to server):

    → {"type":"SETUP","channel":0,"version":"0.1-DXF-JS/0.3.0","keepaliveTimeout":60,
       "acceptKeepaliveTimeout":60}
    ← {"type":"SETUP","channel":0,"version":"1.0-paper","keepaliveTimeout":60,
       "acceptKeepaliveTimeout":60}
    ← {"type":"AUTH_STATE","channel":0,"state":"UNAUTHORIZED"}
    → {"type":"AUTH","channel":0,"token":"…"}
    ← {"type":"AUTH_STATE","channel":0,"state":"AUTHORIZED","userId":"paper"}
    → {"type":"CHANNEL_REQUEST","channel":7,"service":"FEED","parameters":{"contract":"AUTO"}}
    ← {"type":"CHANNEL_OPENED","channel":7,"service":"FEED","parameters":{"contract":"AUTO"}}
    → {"type":"FEED_SETUP","channel":7,"acceptAggregationPeriod":0.1,
       "acceptDataFormat":"COMPACT","acceptEventFields":{"Quote":["eventSymbol",…]}}
    ← {"type":"FEED_CONFIG","channel":7,"aggregationPeriod":0.1,"dataFormat":"COMPACT",
       "eventFields":{"Quote":["eventSymbol",…]}}
    → {"type":"FEED_SUBSCRIPTION","channel":7,"add":[{"symbol":"SPY","type":"Quote"}]}
    ← {"type":"FEED_DATA","channel":7,"data":["Quote",["SPY",0,0,0,1795100400000,"Q",…]]}

* Quotes are the paper market's (the prices ``/market-data/by-type`` answers at that
  moment, sizes included): a snapshot when a symbol is added, then one event whenever its
  bid or ask changes (a new market tick, ``set_quote``/``clear_quote``); unchanged quotes
  are not resent. Events go out as soon as the change is seen (changes within one event
  loop turn are coalesced); the aggregation period is echoed, not applied.
* Values follow the channel's accepted field list and order (unknown field names are
  dropped from it; without a ``FEED_SETUP`` a channel sends FULL records with every
  field). Prices and sizes are JSON numbers written from their exact decimal text;
  ``eventTime``, ``sequence`` and ``timeNanoPart`` are 0 as in Tastytrade's feed;
  ``bidTime``/``askTime`` are the exchange time (ms) the side last changed.
* Symbols are streamer symbols (``SPY``, ``.SPY261218C600``, ``/ESZ26:XCME``,
  ``./EW3Z26C6000:XCME``). Unknown symbols stay subscribed and never produce an event, as
  with dxfeed. Other event types (Greeks, Trade, …) are accepted and never produce data.
* Keepalives: the server sends ``{"type":"KEEPALIVE","channel":0}`` after
  ``keepalive_interval`` seconds without sending anything (default: half the keepalive
  timeout it announced, i.e. of the client's ``acceptKeepaliveTimeout``, at most
  ``keepalive_timeout``). A client silent for longer than its own ``keepaliveTimeout``
  (``default_client_timeout`` before its SETUP) gets ``ERROR TIMEOUT`` and the socket is
  closed. The client's KEEPALIVEs (and websocket PINGs, answered) count as traffic.
* Errors: ``{"type":"ERROR","channel":0,"error":<type>,"message":…}`` with the dxLink
  types: ``INVALID_MESSAGE`` (not JSON, missing type/channel, bad fields),
  ``BAD_ACTION`` (out of order: anything before SETUP, a second SETUP, a channel that is
  not open or already open, an unknown service or message type), ``UNAUTHORIZED`` (a bad
  or expired token, followed by ``AUTH_STATE UNAUTHORIZED``; channel messages before
  AUTH), ``TIMEOUT``, ``UNKNOWN`` (a bug in the exchange, logged). The connection stays
  open after an error (except TIMEOUT); the SDK treats any ERROR as fatal.
* ``freeze()`` stalls every connection, current and new: nothing is read or sent (no
  pongs, no keepalives, no data, no silence timeout) and nothing is closed;
  ``unfreeze()`` resumes them: messages that arrived meanwhile are handled then, except
  websocket pings, which stay unanswered, and quotes that changed meanwhile are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from aiohttp import WSMsgType, web

from broker.paper.clock import SimClock
from broker.paper.market import Market
from broker.paper.payloads import JsonDict, dumps
from broker.paper.universe import (
    EquitySpec,
    Instrument,
    OptionContract,
    Universe,
    future_option_symbol,
    occ_symbol,
)

__all__ = ["QUOTE_FIELDS", "DXLinkHub", "ProtocolError", "StreamerSymbols"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "1.0-paper"
QUOTE = "Quote"
#: Quote fields this feed can fill (dxfeed names), in dxfeed's order.
QUOTE_FIELDS: tuple[str, ...] = (
    "eventType",
    "eventSymbol",
    "eventTime",
    "sequence",
    "timeNanoPart",
    "bidTime",
    "bidExchangeCode",
    "bidPrice",
    "bidSize",
    "askTime",
    "askExchangeCode",
    "askPrice",
    "askSize",
)
DATA_FORMATS = frozenset({"COMPACT", "FULL"})
CONTRACTS = frozenset({"AUTO", "TICKER", "STREAM", "HISTORY"})
MAX_MESSAGE_BYTES = 1024 * 1024
_MAX_RESOLVED = 10_000
_DAY = 86_400.0

_OPTION = re.compile(r"\.([A-Z][A-Z0-9]*?)(\d{6})([CP])(\d+(?:\.\d+)?)")
_FUTURE_OPTION = re.compile(r"\./([A-Z0-9]+?)(\d{2})([CP])(\d+(?:\.\d+)?):[A-Z]+")


class StreamerSymbols:
    """Streamer symbol → instrument of the universe (None when not listed)."""

    def __init__(self, universe: Universe) -> None:
        self._universe = universe
        self._futures = {f.streamer_symbol: f for f in universe.futures.values()}
        self._resolved: dict[str, Instrument | None] = {}

    def resolve(self, symbol: str) -> Instrument | None:
        if symbol in self._resolved:
            return self._resolved[symbol]
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        instrument = self._find(symbol)
        if instrument is not None and _streamer_symbol(instrument) != symbol:
            instrument = None
        self._resolved[symbol] = instrument
        return instrument

    def _find(self, symbol: str) -> Instrument | None:
        if symbol in self._universe.equities:
            return self._universe.equities[symbol]
        if symbol.startswith("./"):
            return self._future_option(symbol)
        if symbol.startswith("/"):
            return self._futures.get(symbol)
        match = _OPTION.fullmatch(symbol)
        if match is None:
            return None
        root, yymmdd, option_type, strike = match.groups()
        try:
            day = datetime.strptime(yymmdd, "%y%m%d").date()
        except ValueError:
            return None
        return self._universe.lookup(occ_symbol(root, day, option_type, Decimal(strike)))

    def _future_option(self, symbol: str) -> Instrument | None:
        match = _FUTURE_OPTION.fullmatch(symbol)
        if match is None:
            return None
        code, _, option_type, strike_text = match.groups()
        strike = Decimal(strike_text)
        for expirations in self._universe.future_option_chains.values():
            for expiration in expirations:
                if expiration.contract_code[:-1] == code and strike in expiration.strikes:
                    name = future_option_symbol(expiration, option_type, strike)
                    contract = self._universe.lookup(name)
                    if contract is not None and _streamer_symbol(contract) == symbol:
                        return contract
        return None


def _streamer_symbol(instrument: Instrument) -> str:
    if isinstance(instrument, EquitySpec):
        return instrument.symbol
    return instrument.streamer_symbol


def _exchange_code(instrument: Instrument) -> str:
    # Nasdaq for equities and their options, as Tastytrade's feed shows; none for CME.
    return "Q" if isinstance(instrument, EquitySpec | OptionContract) else ""


def _number(value: Decimal) -> str:
    """A Decimal as a JSON number with its exact digits ("NaN" string when not finite)."""
    return format(value, "f") if value.is_finite() else '"NaN"'


def _encode(value: object) -> str:
    if isinstance(value, Decimal):
        return _number(value)
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class _Sent:
    """The last quote a channel sent for a symbol."""

    bid: Decimal
    ask: Decimal
    bid_time: int
    ask_time: int


@dataclass(eq=False)
class _Channel:
    number: int
    contract: str
    data_format: str = "FULL"
    fields: tuple[str, ...] = QUOTE_FIELDS
    aggregation: float = 0.0
    quotes: set[str] = field(default_factory=set)
    others: set[tuple[str, str]] = field(default_factory=set)
    sent: dict[str, _Sent] = field(default_factory=dict)


class _Close:
    """Outbox marker: close the socket once everything before it is sent."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


class ProtocolError(Exception):
    """A client message the dxLink protocol refuses (becomes an ERROR message)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Connection:
    def __init__(self, hub: DXLinkHub, socket: web.WebSocketResponse) -> None:
        self.hub = hub
        self.socket = socket
        self.outbox: asyncio.Queue[str | _Close] = asyncio.Queue()
        self.resume = asyncio.Event()  # set while not frozen (or when closing)
        self.wake_timer = asyncio.Event()  # the timeouts changed (SETUP)
        if not hub.frozen:
            self.resume.set()
        self.closing = False
        self.set_up = False
        self.authorized = False
        self.client_timeout = hub.default_client_timeout
        self.server_timeout = hub.keepalive_timeout
        self.channels: dict[int, _Channel] = {}
        loop = asyncio.get_running_loop()
        self.last_received = self.last_sent = loop.time()

    # ------------------------------------------------------------ plumbing
    def send(self, message: JsonDict) -> None:
        self.outbox.put_nowait(dumps(message))

    def error(self, kind: str, message: str) -> None:
        self.send({"type": "ERROR", "channel": 0, "error": kind, "message": message})

    async def write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.outbox.get()
            await self.resume.wait()
            if self.socket.closed:
                return
            if isinstance(item, _Close):
                await self.socket.close(code=item.code, message=item.message.encode())
                return
            try:
                await self.socket.send_str(item)
            except ConnectionError:  # the client went away; the reader ends too
                return
            self.last_sent = loop.time()

    async def timer_loop(self) -> None:
        """Server keepalives, and the client's silence timeout."""
        loop = asyncio.get_running_loop()
        while not self.socket.closed:
            if not self.resume.is_set():
                await self.resume.wait()
                self.last_received = loop.time()  # a frozen server heard nothing
                continue
            now = loop.time()
            silence_due = self.last_received + self.client_timeout
            if now >= silence_due:
                self.error("TIMEOUT", f"No messages from the client for {self.client_timeout:g} s.")
                self.outbox.put_nowait(_Close(1000, "keepalive timeout"))
                return
            due = silence_due
            if self.set_up:
                keepalive_due = self.last_sent + self.keepalive_interval
                if now >= keepalive_due:
                    self.send({"type": "KEEPALIVE", "channel": 0})
                    self.last_sent = now  # counted as sent once queued
                    keepalive_due = now + self.keepalive_interval
                due = min(due, keepalive_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake_timer.wait(), max(due - now, 0.001))
            self.wake_timer.clear()

    @property
    def keepalive_interval(self) -> float:
        interval = self.hub.keepalive_interval
        return interval if interval is not None else self.server_timeout / 2

    # ------------------------------------------------------------ messages
    def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            self.error("INVALID_MESSAGE", "The message is not valid JSON.")
            return
        try:
            self._dispatch(message)
        except ProtocolError as problem:
            self.error(problem.kind, problem.message)
        except Exception:  # a bug in the exchange: say so, keep the connection
            log.exception("paper exchange: DXLink message failed")
            self.error("UNKNOWN", "Internal error.")

    def _dispatch(self, message: object) -> None:
        if not isinstance(message, dict):
            raise ProtocolError("INVALID_MESSAGE", "A message must be a JSON object.")
        kind = message.get("type")
        channel = message.get("channel")
        if not isinstance(kind, str) or not _is_int(channel):
            raise ProtocolError("INVALID_MESSAGE", "A message needs a type and a channel.")
        assert isinstance(channel, int)
        if kind in ("SETUP", "AUTH", "KEEPALIVE") and channel != 0:
            raise ProtocolError("INVALID_MESSAGE", f"{kind} belongs on channel 0.")
        if kind == "KEEPALIVE":
            return
        if kind == "SETUP":
            self._setup(message)
            return
        if not self.set_up:
            raise ProtocolError("BAD_ACTION", f"SETUP must come first, not {kind}.")
        if kind == "AUTH":
            self._auth(message)
            return
        if kind not in ("CHANNEL_REQUEST", "CHANNEL_CANCEL", "FEED_SETUP", "FEED_SUBSCRIPTION"):
            raise ProtocolError("BAD_ACTION", f"Unknown message type {kind}.")
        if not self.authorized:
            raise ProtocolError("UNAUTHORIZED", f"{kind} before a successful AUTH.")
        if kind == "CHANNEL_REQUEST":
            self._open(channel, message)
            return
        opened = self.channels.get(channel)
        if opened is None:
            raise ProtocolError("BAD_ACTION", f"{kind}: channel {channel} is not open.")
        if kind == "CHANNEL_CANCEL":
            del self.channels[channel]
            self.send({"type": "CHANNEL_CLOSED", "channel": channel})
        elif kind == "FEED_SETUP":
            self._feed_setup(opened, message)
        else:
            self._subscription(opened, message)

    def _setup(self, message: dict[str, object]) -> None:
        if self.set_up:
            raise ProtocolError("BAD_ACTION", "SETUP was already received.")
        version = message.get("version")
        if not isinstance(version, str) or not version:
            raise ProtocolError("INVALID_MESSAGE", "SETUP needs a version.")
        keepalive = _seconds(message, "keepaliveTimeout", self.hub.default_client_timeout)
        accept = _seconds(message, "acceptKeepaliveTimeout", self.hub.keepalive_timeout)
        self.client_timeout = keepalive
        self.server_timeout = min(accept, self.hub.keepalive_timeout)
        self.set_up = True
        self.wake_timer.set()
        self.send(
            {
                "type": "SETUP",
                "channel": 0,
                "version": PROTOCOL_VERSION,
                "keepaliveTimeout": self.server_timeout,
                "acceptKeepaliveTimeout": keepalive,
            }
        )
        self.send({"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"})

    def _auth(self, message: dict[str, object]) -> None:
        token = message.get("token")
        if isinstance(token, str) and self.hub.token_is_valid(token):
            self.authorized = True
            self.send(
                {"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED", "userId": "paper"}
            )
            return
        self.authorized = False
        self.channels.clear()
        self.error("UNAUTHORIZED", "AuthException: the token is invalid or has expired.")
        self.send({"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"})

    def _open(self, channel: int, message: dict[str, object]) -> None:
        if channel <= 0:
            raise ProtocolError("INVALID_MESSAGE", "Channels are positive numbers.")
        if channel in self.channels:
            raise ProtocolError("BAD_ACTION", f"Channel {channel} is already open.")
        service = message.get("service")
        if service != "FEED":
            raise ProtocolError("BAD_ACTION", f"Unsupported service {service!r}.")
        parameters = message.get("parameters", {})
        if not isinstance(parameters, dict):
            raise ProtocolError("INVALID_MESSAGE", "CHANNEL_REQUEST parameters must be an object.")
        contract = parameters.get("contract", "AUTO")
        if contract not in CONTRACTS:
            raise ProtocolError("INVALID_MESSAGE", f"Unknown contract {contract!r}.")
        assert isinstance(contract, str)
        self.channels[channel] = _Channel(channel, contract)
        self.send(
            {
                "type": "CHANNEL_OPENED",
                "channel": channel,
                "service": "FEED",
                "parameters": {"contract": contract},
            }
        )

    def _feed_setup(self, channel: _Channel, message: dict[str, object]) -> None:
        data_format = message.get("acceptDataFormat", channel.data_format)
        if data_format not in DATA_FORMATS:
            raise ProtocolError("INVALID_MESSAGE", f"Unknown data format {data_format!r}.")
        assert isinstance(data_format, str)
        period = _as_float(message.get("acceptAggregationPeriod", channel.aggregation))
        if period is None or period < 0:
            raise ProtocolError("INVALID_MESSAGE", "acceptAggregationPeriod must be >= 0.")
        fields = channel.fields
        accepted = message.get("acceptEventFields")
        if accepted is not None:
            if not isinstance(accepted, dict) or not all(
                isinstance(names, list) and all(isinstance(n, str) for n in names)
                for names in accepted.values()
            ):
                raise ProtocolError(
                    "INVALID_MESSAGE", "acceptEventFields maps event types to field lists."
                )
            quote_fields = accepted.get(QUOTE)
            if quote_fields is not None:
                fields = tuple(name for name in quote_fields if name in QUOTE_FIELDS)
                if not fields:
                    raise ProtocolError("INVALID_MESSAGE", "No known Quote field was accepted.")
        channel.data_format = data_format
        channel.aggregation = period
        channel.fields = fields
        self.send(
            {
                "type": "FEED_CONFIG",
                "channel": channel.number,
                "aggregationPeriod": channel.aggregation,
                "dataFormat": channel.data_format,
                "eventFields": {QUOTE: list(channel.fields)},
            }
        )

    def _subscription(self, channel: _Channel, message: dict[str, object]) -> None:
        add = _entries(message, "add")
        remove = _entries(message, "remove")
        reset = message.get("reset", False)
        if not isinstance(reset, bool):
            raise ProtocolError("INVALID_MESSAGE", "reset must be true or false.")
        if reset:
            channel.quotes.clear()
            channel.others.clear()
            channel.sent.clear()
        for kind, symbol in remove:
            if kind == QUOTE:
                channel.quotes.discard(symbol)
                channel.sent.pop(symbol, None)
            else:
                channel.others.discard((kind, symbol))
        added: list[str] = []
        for kind, symbol in add:
            if kind != QUOTE:
                channel.others.add((kind, symbol))
            elif symbol not in channel.quotes:
                channel.quotes.add(symbol)
                added.append(symbol)
        if added:
            self.hub.sync_market()
            self.send_changes(channel, added)

    # --------------------------------------------------------------- quotes
    def send_changes(self, channel: _Channel, symbols: Iterable[str]) -> None:
        """One FEED_DATA with an event for each of `symbols` whose quote changed (or was
        never sent on this channel)."""
        records: list[list[object]] = []
        now_ms = self.hub.now_ms()
        for symbol in symbols:
            current = self.hub.quote_of(symbol)
            if current is None:
                continue
            instrument, bid, ask = current
            last = channel.sent.get(symbol)
            if last is not None and (last.bid, last.ask) == (bid, ask):
                continue
            sent = _Sent(
                bid,
                ask,
                last.bid_time if last is not None and last.bid == bid else now_ms,
                last.ask_time if last is not None and last.ask == ask else now_ms,
            )
            channel.sent[symbol] = sent
            bid_size, ask_size = self.hub.sizes_of(instrument)
            values: dict[str, object] = {
                "eventType": QUOTE,
                "eventSymbol": symbol,
                "eventTime": 0,
                "sequence": 0,
                "timeNanoPart": 0,
                "bidTime": sent.bid_time,
                "bidExchangeCode": _exchange_code(instrument),
                "bidPrice": bid,
                "bidSize": bid_size,
                "askTime": sent.ask_time,
                "askExchangeCode": _exchange_code(instrument),
                "askPrice": ask,
                "askSize": ask_size,
            }
            records.append([values[name] for name in channel.fields])
        if records:
            self.outbox.put_nowait(_feed_data(channel, records))


def _feed_data(channel: _Channel, records: list[list[object]]) -> str:
    if channel.data_format == "COMPACT":
        flat = ",".join(_encode(value) for record in records for value in record)
        data = f'["{QUOTE}",[{flat}]]'
    else:
        objects = (
            "{"
            + ",".join(
                f"{json.dumps(name)}:{_encode(value)}"
                for name, value in zip(channel.fields, record, strict=True)
            )
            + "}"
            for record in records
        )
        data = "[" + ",".join(objects) + "]"
    return f'{{"type":"FEED_DATA","channel":{channel.number},"data":{data}}}'


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_float(value: object) -> float | None:
    """A JSON number as float; None for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _seconds(message: dict[str, object], key: str, default: float) -> float:
    value = _as_float(message.get(key, default))
    if value is None or not 0 < value < 10 * _DAY:
        raise ProtocolError("INVALID_MESSAGE", f"{key} must be a positive number of seconds.")
    return value


def _entries(message: dict[str, object], key: str) -> list[tuple[str, str]]:
    raw = message.get(key, [])
    if not isinstance(raw, list):
        raise ProtocolError("INVALID_MESSAGE", f"FEED_SUBSCRIPTION {key} must be a list.")
    entries: list[tuple[str, str]] = []
    for entry in raw:
        kind = entry.get("type") if isinstance(entry, dict) else None
        symbol = entry.get("symbol") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or not isinstance(symbol, str) or not symbol:
            raise ProtocolError(
                "INVALID_MESSAGE", f"FEED_SUBSCRIPTION {key} entries need a type and a symbol."
            )
        entries.append((kind, symbol))
    return entries


class DXLinkHub:
    """The ``/dxlink`` websocket handler, its quote tokens and its test switches."""

    def __init__(self, clock: SimClock, market: Market, universe: Universe) -> None:
        self._clock = clock
        self._market = market
        self._symbols = StreamerSymbols(universe)
        self._sizes: dict[str, tuple[Decimal, Decimal]] = {}
        self._tokens: dict[str, float] = {}
        self._connections: set[_Connection] = set()
        self._flush: asyncio.Handle | None = None
        self._frozen = False
        #: DXLink connections accepted so far (open or not).
        self.connections_accepted = 0
        #: Lifetime of a quote token, in exchange seconds.
        self.quote_token_ttl = _DAY
        #: The longest keepalive timeout the server announces (its own silence limit).
        self.keepalive_timeout = 60.0
        #: Seconds of sending nothing before a KEEPALIVE; None = half the announced timeout.
        self.keepalive_interval: float | None = None
        #: The client's silence limit until its SETUP names one.
        self.default_client_timeout = 60.0

    # ------------------------------------------------------------- tokens
    def issue_token(self) -> str:
        now = self._clock.timestamp()
        self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
        token = "dxlink-" + secrets.token_urlsafe(24)
        self._tokens[token] = now + self.quote_token_ttl
        return token

    def token_is_valid(self, token: str) -> bool:
        expiry = self._tokens.get(token)
        return expiry is not None and self._clock.timestamp() < expiry

    # ------------------------------------------------------- test switches
    @property
    def connection_count(self) -> int:
        """DXLink connections open now."""
        return len(self._connections)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        """Stall every connection (current and new): nothing read, nothing sent, not closed."""
        self._frozen = True
        for connection in self._connections:
            if not connection.closing:
                connection.resume.clear()

    def unfreeze(self) -> None:
        """Resume the connections; what changed meanwhile is sent."""
        self._frozen = False
        for connection in self._connections:
            connection.resume.set()
        self.on_market_change()

    def subscriptions(self, event_type: str = QUOTE) -> set[str]:
        """Symbols subscribed for `event_type` on any connection."""
        symbols: set[str] = set()
        for connection in self._connections:
            for channel in connection.channels.values():
                if event_type == QUOTE:
                    symbols |= channel.quotes
                else:
                    symbols |= {s for kind, s in channel.others if kind == event_type}
        return symbols

    # ------------------------------------------------------------- market
    def sync_market(self) -> None:
        """Bring the market up to the clock, as a REST request does before answering."""
        self._market.sync()

    def now_ms(self) -> int:
        return int(self._clock.timestamp() * 1000)

    def quote_of(self, symbol: str) -> tuple[Instrument, Decimal, Decimal] | None:
        instrument = self._symbols.resolve(symbol)
        if instrument is None:
            return None
        quote = self._market.instrument_quote(instrument)
        return instrument, quote.bid, quote.ask

    def sizes_of(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """The bid/ask sizes `/market-data` reports for the instrument (fixed per symbol)."""
        sizes = self._sizes.get(instrument.symbol)
        if sizes is None:
            item = self._market.market_data(instrument)
            bid_size, ask_size = item["bid-size"], item["ask-size"]
            assert isinstance(bid_size, Decimal) and isinstance(ask_size, Decimal)
            sizes = self._sizes[instrument.symbol] = (bid_size, ask_size)
        return sizes

    def on_market_change(self) -> None:
        """Market listener: send changed quotes once the current event-loop turn is over."""
        if not self._connections or self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop, so no connection to tell
            return
        self._flush = loop.call_soon(self._send_changes)

    def _send_changes(self) -> None:
        self._flush = None
        if self._frozen:
            return
        for connection in list(self._connections):
            if connection.closing or not connection.authorized:
                continue
            for channel in connection.channels.values():
                connection.send_changes(channel, channel.quotes)

    # ------------------------------------------------------------ sockets
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=False)
        await socket.prepare(request)
        connection = _Connection(self, socket)
        self._connections.add(connection)
        self.connections_accepted += 1
        tasks = [
            asyncio.create_task(connection.write_loop()),
            asyncio.create_task(connection.timer_loop()),
        ]
        loop = asyncio.get_running_loop()
        try:
            while not socket.closed:
                message = await socket.receive()
                arrived_frozen = not connection.resume.is_set()
                await connection.resume.wait()  # a frozen server reads nothing
                if socket.closed or message.type in _ENDS:
                    break
                connection.last_received = loop.time()
                if message.type == WSMsgType.PING:
                    if arrived_frozen:
                        continue  # never answered: its pong would vouch for the frozen time
                    with contextlib.suppress(ConnectionError):  # the client already left
                        await socket.pong(message.data)
                elif message.type == WSMsgType.TEXT:
                    connection.on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    connection.error("INVALID_MESSAGE", "Only text frames are supported.")
        finally:
            connection.closing = True
            self._connections.discard(connection)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
        return socket

    async def close_all(self, code: int = 1011, message: str = "closed by the exchange") -> None:
        for connection in list(self._connections):
            connection.closing = True
            connection.resume.set()  # a frozen connection can still be closed
            await connection.socket.close(code=code, message=message.encode())


_ENDS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
