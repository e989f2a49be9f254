"""Limit prices as typed after `@` / `at`: plain positive decimals, with hints for typos."""

from __future__ import annotations

import re
from decimal import Decimal

from broker.tickets.model import PriceEffect, PriceMode, Refusal, TicketError, quote

PRICE_WORDS = {"mid": PriceMode.MID, "mkt": PriceMode.MARKET, "market": PriceMode.MARKET}
EFFECT_WORDS = {
    "cr": PriceEffect.CREDIT,
    "credit": PriceEffect.CREDIT,
    "db": PriceEffect.DEBIT,
    "dr": PriceEffect.DEBIT,
    "debit": PriceEffect.DEBIT,
}
PLAIN_PRICE = re.compile(r"^\$?(\d+(?:\.\d*)?|\.\d+)(cr|credit|db|dr|debit)?$", re.ASCII)
COMMA_DECIMAL = re.compile(r"^\$?(\d+),(\d{1,2})$", re.ASCII)
THOUSANDS = re.compile(r"^\$?(\d{1,3}(?:,\d{3})+(?:\.\d+)?)$", re.ASCII)
PRICE_TAIL = re.compile(r"^\.\d+$", re.ASCII)  # "57 .00": the cents split off by a space


def parse_price(raw: str) -> tuple[Decimal, PriceEffect | None]:
    """A limit price as typed after `@`/`at`: a plain positive decimal, optionally + cr/db."""
    low = raw.lower()
    example = 'a plain decimal like "@ 1.20" (or "@ mid" / "@ mkt")'
    if match := COMMA_DECIMAL.match(low):
        raise TicketError(
            Refusal.BAD_PRICE,
            f'price "{quote(raw)}" is not a plain decimal — did you mean {match[1]}.{match[2]}?',
        )
    if match := THOUSANDS.match(low):
        plain = match[1].replace(",", "")
        raise TicketError(
            Refusal.BAD_PRICE,
            f'price "{quote(raw)}" has a comma — did you mean {plain}? Write prices without '
            "thousands separators.",
        )
    if low.startswith("-"):
        raise TicketError(
            Refusal.BAD_PRICE,
            f'price "{quote(raw)}" is negative — give the price as a positive number and say '
            'cr or db for credit/debit (e.g. "@ 1.20 cr").',
        )
    match = PLAIN_PRICE.match(low)
    if match is None:
        raise TicketError(Refusal.BAD_PRICE, f'price "{quote(raw)}" is not {example}.')
    number = match[1]
    whole, _, decimals = number.partition(".")
    if len(whole) > 9 or len(decimals) > 6:
        raise TicketError(Refusal.BAD_PRICE, f'price "{quote(raw)}" has too many digits.')
    price = Decimal(number)
    if price <= 0:
        raise TicketError(
            Refusal.BAD_PRICE, f'price "{quote(raw)}" must be above 0 — or use "@ mid" / "@ mkt".'
        )
    effect = EFFECT_WORDS[match[2]] if match[2] else None
    return price, effect
