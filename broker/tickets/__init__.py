"""The order language: `parse_ticket(text, today=...) -> OrderTicket` (pure, no I/O).

Grammar (case-insensitive; `!tt`, `$` before tickers, Discord mentions, emoji and markdown are
ignored)::

    [label:] ACTION [QTY] UNDERLYING [EXPIRATION] [LEGS] [@|at PRICE] [cr|db] [day|gtc]
             [chase=N] [ticks=K] [(comment)] [PT x SL y ...]

- ACTION: buy, sell (opening=None: the builder decides from the position), BTO/STO
  (opening=True), BTC/STC (opening=False); also "buy to open" etc. QTY defaults to 1.
- UNDERLYING: `AAPL`, `$AAPL`, `/ESZ6` (kept), `/ES` (front month: `front_month_unresolved`).
- EXPIRATION: `12/18` (next on or after today), `12/18/26`, `12/18/2026`, `2026-12-18`,
  `Dec 18`, `0DTE` (today, must be a NYSE trading day), `NDTE` (N NYSE trading days ahead).
  Strikes and expiration may come in either order.
- LEGS: `590P`, `590 puts`, `282.5C`; vertical `590/595C` (first strike gets the order's side,
  second the opposite; the first must be the dearer strike: lower for calls, higher for puts);
  several legs `580P 620C` (all on the order's side); iron condor `IC 570/575/605/610` (sell:
  long 570P, short 575P, short 605C, long 610C; buy flips every leg). At most 4 option legs.
- PRICE: `@ 1.20`, `@1.2`, `@ .70`, `at 0.70`, `@ mid`, `@ mkt`/`@ market`; none means mid.

Canonical symbols: equity options use OCC (`SPY   261218P00590000`). Future options cannot be
named fully by the parser (the option contract code comes from the exchange's chain), so they
get the *unresolved* form `./ES 261218C6000` (or `./ESZ6 261218C6000` when the future
contract was given) plus structured fields; the builder maps it to e.g.
`./ESZ6 EW3Z6 261218C6000`.

Prices are magnitudes, normalised to at least 2 decimals (`1.2` -> "1.20", `.7` -> "0.70",
`25` -> "25.00", `0.965` stays). The price effect always follows the side: buy -> Debit,
sell -> Credit (verticals are constrained so this is also the economic effect); `cr`/`db`
must agree. Market orders have no price and no effect.
"""

from broker.tickets.format import format_ticket
from broker.tickets.model import (
    ExitTargets,
    InstrumentKind,
    OptionType,
    OrderTicket,
    PriceEffect,
    PriceMode,
    Refusal,
    Side,
    Structure,
    TicketError,
    TicketLeg,
    TimeInForce,
)
from broker.tickets.parser import parse_ticket

__all__ = [
    "ExitTargets",
    "InstrumentKind",
    "OptionType",
    "OrderTicket",
    "PriceEffect",
    "PriceMode",
    "Refusal",
    "Side",
    "Structure",
    "TicketError",
    "TicketLeg",
    "TimeInForce",
    "format_ticket",
    "parse_ticket",
]
