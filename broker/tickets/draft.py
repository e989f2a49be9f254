"""The parser's working state (`Draft`) and its validation into an `OrderTicket`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from broker.tickets.exits import find_exits
from broker.tickets.model import (
    EQUITY_EXAMPLE,
    OPTION_EXAMPLE,
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
    quote,
)
from broker.tickets.symbols import (
    Underlying,
    check_strike,
    future_option_symbol,
    occ_symbol,
    plain_strike,
)

MAX_OPTION_LEGS = 4


@dataclass(frozen=True, slots=True)
class LegSpec:
    strike: Decimal
    option_type: OptionType
    opposite_side: bool  # the second strike of a vertical, the wings of an iron condor...
    raw: str


@dataclass(slots=True)
class Draft:
    side: Side
    opening: bool | None
    quantity: int = 1
    underlying: Underlying | None = None
    underlying_raw: str = ""
    expiration: date | None = None
    expiration_raw: str = ""
    legs: list[LegSpec] = field(default_factory=list)
    groups: list[Structure] = field(default_factory=list)
    price_mode: PriceMode | None = None
    price: Decimal | None = None
    price_raw: str = ""
    effect: PriceEffect | None = None
    effect_raw: str = ""
    time_in_force: TimeInForce | None = None
    settings: dict[str, int] = field(default_factory=dict)
    stray_numbers: list[str] = field(default_factory=list)
    trailer: list[str] = field(default_factory=list)


def assemble(draft: Draft, comments: list[str]) -> OrderTicket:
    _check_strays(draft)
    underlying = draft.underlying
    if underlying is None:
        raise TicketError(
            Refusal.NO_SYMBOL,
            f"which ticker? — add the symbol, e.g. {OPTION_EXAMPLE}, {EQUITY_EXAMPLE} or "
            '"buy 1 /ESZ6 @ 6000.25".',
        )
    if draft.legs:
        legs, structure = _option_legs(draft, underlying)
    elif draft.expiration is not None:
        raise TicketError(
            Refusal.NO_STRIKE,
            f'expiration "{quote(draft.expiration_raw)}" but no strike — add one with its '
            f"type, e.g. {OPTION_EXAMPLE}.",
        )
    else:
        legs, structure = _outright_leg(draft, underlying)
    mode = draft.price_mode or PriceMode.MID
    tif = draft.time_in_force or TimeInForce.DAY
    implied = PriceEffect.DEBIT if draft.side is Side.BUY else PriceEffect.CREDIT
    if draft.effect is not None and draft.effect is not implied:
        verb = "buying" if draft.side is Side.BUY else "selling"
        raise TicketError(
            Refusal.EFFECT_CONFLICT,
            f'"{draft.effect_raw}" contradicts the order: {verb} this is a '
            f"{implied.value.lower()} — remove it, or flip buy/sell if you meant the other side.",
        )
    if mode is PriceMode.MARKET and tif is TimeInForce.GTC:
        raise TicketError(
            Refusal.GTC_MARKET,
            'a GTC market order is not allowed — give a limit price with gtc (e.g. "@ 1.20 gtc") '
            "or drop gtc.",
        )
    return OrderTicket(
        side=draft.side,
        quantity=draft.quantity,
        structure=structure,
        legs=legs,
        price_mode=mode,
        price=draft.price if mode is PriceMode.LIMIT else None,
        price_effect=None if mode is PriceMode.MARKET else implied,
        time_in_force=tif,
        chase=draft.settings.get("chase"),
        ticks=draft.settings.get("ticks"),
        exits=find_exits(comments),
        comment=" | ".join(comment for comment in comments if comment),
    )


def _check_strays(draft: Draft) -> None:
    if not draft.stray_numbers:
        return
    raw = draft.stray_numbers[0]
    option_context = bool(draft.legs) or draft.expiration is not None
    if raw.startswith(("$", ".")) or not option_context:
        raise TicketError(
            Refusal.BAD_PRICE,
            f'"{quote(raw)}" looks like a price — put "@" before it (e.g. "@ '
            f'{raw.lstrip("$")}"); a strike needs C or P (590C).',
        )
    raise TicketError(
        Refusal.NO_OPTION_TYPE,
        f'"{quote(raw)}" has no call/put letter — write {raw}C or {raw}P (e.g. {OPTION_EXAMPLE}).',
    )


def _outright_leg(draft: Draft, underlying: Underlying) -> tuple[tuple[TicketLeg, ...], Structure]:
    kind = InstrumentKind.FUTURE if underlying.is_future else InstrumentKind.EQUITY
    leg = TicketLeg(
        side=draft.side,
        opening=draft.opening,
        kind=kind,
        symbol=underlying.symbol,
        quantity=draft.quantity,
        underlying=underlying.root,
        future_symbol=underlying.symbol if underlying.contract_given else None,
        front_month_unresolved=underlying.is_future and not underlying.contract_given,
    )
    return (leg,), Structure.FUTURE if underlying.is_future else Structure.EQUITY


def _option_legs(draft: Draft, underlying: Underlying) -> tuple[tuple[TicketLeg, ...], Structure]:
    expiration = draft.expiration
    if expiration is None:
        raise TicketError(
            Refusal.NO_EXPIRATION,
            f'"{quote(draft.legs[0].raw)}" has no expiration — add one such as 12/18, '
            f"2026-12-18 or 0DTE (e.g. {OPTION_EXAMPLE}).",
        )
    if len(draft.legs) > MAX_OPTION_LEGS:
        raise TicketError(
            Refusal.TOO_MANY_LEGS,
            f"{len(draft.legs)} option legs — an order has at most {MAX_OPTION_LEGS}.",
        )
    if not underlying.is_future and "/" in underlying.symbol:
        raise TicketError(
            Refusal.BAD_SYMBOL,
            f'options on "{underlying.symbol}" use a different root — write the option root '
            f"(e.g. BRKB) instead.",
        )
    seen: set[tuple[OptionType, Decimal]] = set()
    legs: list[TicketLeg] = []
    for spec in draft.legs:
        strike = check_strike(spec.strike, spec.raw, equity=not underlying.is_future)
        key = (spec.option_type, strike)
        if key in seen:
            raise TicketError(
                Refusal.DUPLICATE_LEG,
                f"the {plain_strike(strike)}{spec.option_type.value} option appears twice in "
                "one order — list each strike once.",
            )
        seen.add(key)
        legs.append(_option_leg(draft, underlying, spec, strike, expiration))
    _check_verticals(draft)
    return tuple(legs), _structure(draft)


def _option_leg(
    draft: Draft, underlying: Underlying, spec: LegSpec, strike: Decimal, expiration: date
) -> TicketLeg:
    if underlying.is_future:
        kind = InstrumentKind.FUTURE_OPTION
        symbol = future_option_symbol(underlying.symbol, expiration, spec.option_type, strike)
    else:
        kind = InstrumentKind.EQUITY_OPTION
        symbol = occ_symbol(underlying.symbol, expiration, spec.option_type, strike)
    return TicketLeg(
        side=draft.side.opposite if spec.opposite_side else draft.side,
        opening=draft.opening,
        kind=kind,
        symbol=symbol,
        quantity=draft.quantity,
        underlying=underlying.root,
        expiration=expiration,
        strike=strike,
        option_type=spec.option_type,
        future_symbol=underlying.symbol if underlying.contract_given else None,
        front_month_unresolved=underlying.is_future and not underlying.contract_given,
    )


def _check_verticals(draft: Draft) -> None:
    """The first strike of a vertical gets the order's side, so it must be the dearer leg.

    `buy 590/595P` would be long 590P / short 595P: a credit spread sent as a debit. We refuse
    and show the equivalent spelling rather than guess which the user meant.
    """
    specs = iter(draft.legs)
    for group in draft.groups:
        if group is Structure.IRON_CONDOR:
            return
        first = next(specs)
        if group is not Structure.VERTICAL:
            continue
        second = next(specs)
        is_call = first.option_type is OptionType.CALL
        dearer_first = first.strike < second.strike if is_call else first.strike > second.strike
        if dearer_first:
            continue
        letter = first.option_type.value
        order = "lower" if is_call else "higher"
        other = draft.side.opposite.value
        effect = "credit" if draft.side is Side.BUY else "debit"
        raise TicketError(
            Refusal.BAD_SPREAD,
            f'"{quote(first.raw)}": the first strike gets the order\'s side, so in a '
            f"{'call' if is_call else 'put'} vertical it must be the {order} strike; as written "
            f"this is a {effect} spread. For these same legs write "
            f'"{other} ... {plain_strike(second.strike)}/{plain_strike(first.strike)}{letter}".',
        )


def _structure(draft: Draft) -> Structure:
    groups = draft.groups
    if len(groups) == 1:
        return groups[0]
    single_pair = groups == [Structure.SINGLE, Structure.SINGLE]
    if single_pair and draft.legs[0].option_type is not draft.legs[1].option_type:
        return Structure.STRANGLE
    return Structure.COMBO
