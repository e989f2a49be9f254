"""`OrderTicket` -> canonical order text that `parse_ticket` reads back to an equal ticket."""

from __future__ import annotations

from broker.tickets.model import (
    InstrumentKind,
    OrderTicket,
    PriceMode,
    Side,
    Structure,
    TicketLeg,
    TimeInForce,
    format_price,
)
from broker.tickets.symbols import plain_strike

_ACTION_WORDS = {
    (Side.BUY, None): "buy",
    (Side.SELL, None): "sell",
    (Side.BUY, True): "BTO",
    (Side.SELL, True): "STO",
    (Side.BUY, False): "BTC",
    (Side.SELL, False): "STC",
}


def _strike(leg: TicketLeg) -> str:
    assert leg.strike is not None
    return plain_strike(leg.strike)


def _option_tokens(ticket: OrderTicket) -> list[str]:
    legs = ticket.legs
    if ticket.structure is Structure.IRON_CONDOR:
        return ["IC", "/".join(_strike(leg) for leg in legs)]
    tokens: list[str] = []
    index = 0
    # A leg on the order's side followed by the opposite side of the same type is a vertical
    # (single legs always carry the order's side, so the pairing is unambiguous).
    while index < len(legs):
        leg = legs[index]
        assert leg.option_type is not None
        partner = legs[index + 1] if index + 1 < len(legs) else None
        if (
            partner is not None
            and leg.side is ticket.side
            and partner.side is not ticket.side
            and partner.option_type is leg.option_type
        ):
            tokens.append(f"{_strike(leg)}/{_strike(partner)}{leg.option_type.value}")
            index += 2
        else:
            tokens.append(f"{_strike(leg)}{leg.option_type.value}")
            index += 1
    return tokens


def _instrument_tokens(ticket: OrderTicket) -> list[str]:
    first = ticket.legs[0]
    if first.kind in (InstrumentKind.EQUITY, InstrumentKind.FUTURE):
        return [first.symbol]
    assert first.expiration is not None
    underlying = first.future_symbol or first.underlying
    return [underlying, first.expiration.isoformat(), *_option_tokens(ticket)]


def _price_tokens(ticket: OrderTicket) -> list[str]:
    if ticket.price_mode is PriceMode.MARKET:
        return ["@", "mkt"]
    tokens = ["@", "mid" if ticket.price is None else format_price(ticket.price)]
    if ticket.price_effect is not None:
        tokens.append("db" if ticket.price_effect.value == "Debit" else "cr")
    return tokens


def format_ticket(ticket: OrderTicket) -> str:
    """Canonical text: `ACTION QTY UNDERLYING [YYYY-MM-DD LEGS] @ PRICE [cr|db] [gtc] ...`."""
    parts = [_ACTION_WORDS[(ticket.side, ticket.opening)], str(ticket.quantity)]
    parts += _instrument_tokens(ticket)
    parts += _price_tokens(ticket)
    if ticket.time_in_force is TimeInForce.GTC:
        parts.append("gtc")
    if ticket.chase is not None:
        parts.append(f"chase={ticket.chase}")
    if ticket.ticks is not None:
        parts.append(f"ticks={ticket.ticks}")
    parts += [f"PT {target:f}" for target in ticket.exits.profit_targets]
    if ticket.exits.stop_loss is not None:
        parts.append(f"SL {ticket.exits.stop_loss:f}")
    return " ".join(parts)
