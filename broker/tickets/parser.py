"""The order-language grammar: tokens -> `OrderTicket`, or a `TicketError` that says what to fix.

Shape: `[label:] ACTION [QTY] <body in any order> [@ PRICE] [settings] [comment]`, where the body
holds one underlying, at most one expiration and the strike tokens. See `broker.tickets`.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime
from decimal import Decimal

from broker.tickets import dates
from broker.tickets.draft import Draft, LegSpec, assemble
from broker.tickets.lexer import Token, lex
from broker.tickets.model import (
    EQUITY_EXAMPLE,
    OPTION_EXAMPLE,
    OptionType,
    OrderTicket,
    PriceEffect,
    PriceMode,
    Refusal,
    Side,
    Structure,
    TicketError,
    TimeInForce,
    quote,
)
from broker.tickets.prices import EFFECT_WORDS, PRICE_TAIL, PRICE_WORDS, parse_price
from broker.tickets.symbols import parse_underlying

MAX_TEXT = 4000
MAX_QUANTITY = 1_000_000
CHASE_RANGE = range(0, 11)
TICKS_RANGE = range(1, 4)

ACTIONS: dict[str, tuple[Side, bool | None]] = {
    "buy": (Side.BUY, None),
    "sell": (Side.SELL, None),
    "bto": (Side.BUY, True),
    "sto": (Side.SELL, True),
    "btc": (Side.BUY, False),
    "stc": (Side.SELL, False),
}
OPTION_TYPES = {
    "c": OptionType.CALL,
    "call": OptionType.CALL,
    "calls": OptionType.CALL,
    "p": OptionType.PUT,
    "put": OptionType.PUT,
    "puts": OptionType.PUT,
}
TIF_WORDS = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC}
EXPIRATION_WORDS = {"exp", "expiry", "expiration", "expires", "expiring"}
# Words that never name a ticker, even before the underlying. "dte" is one: "buy 1 DTE"
# reads as one day to expiration, so DTE-the-ticker would mean different things with and
# without a quantity; it is refused rather than guessed.
RESERVED = {
    "dte",
    "ic",
    "iron",
    "to",
    "gtc",
    *PRICE_WORDS,
    *EXPIRATION_WORDS,
    "calls",
    "call",
    "puts",
    "put",
}

_NUM = r"\$?(\d+(?:\.\d+)?|\.\d+)"
_TYPE = r"(c|p|calls?|puts?)"
BARE_NUMBER = re.compile(rf"^{_NUM}$", re.ASCII)
STRIKE = re.compile(rf"^{_NUM}{_TYPE}$", re.ASCII)
VERTICAL = re.compile(rf"^{_NUM}(c|p)?/{_NUM}{_TYPE}?$", re.ASCII)
FOUR_STRIKES = re.compile(rf"^{_NUM}/{_NUM}/{_NUM}/{_NUM}$", re.ASCII)
EXIT_WORD = re.compile(r"^(?:pt\d?|tp\d?|sl|stop|stope|target|targets)(?::.*)?$", re.ASCII)
SETTING = re.compile(r"^([a-z_]+)=(.*)$")
INTEGER = re.compile(r"^[+-]?\d+$", re.ASCII)
NEGATING_LABEL = re.compile(r"cancel|void|ignore|scratch|^not?$|^don'?t$|^never$|^closed?$|^exit")
PRICE_LIKE = re.compile(r"^[-$.\d]", re.ASCII)


def parse_ticket(text: str, *, today: date) -> OrderTicket:
    """Parse one order. Raises `TicketError` with a user-facing message on any problem."""
    if isinstance(today, datetime):
        raise TypeError("today must be a date (the exchange's local date), not a datetime")
    if len(text) > MAX_TEXT:
        raise TicketError(
            Refusal.TOO_LONG, f"the message is too long for one order (over {MAX_TEXT} chars)."
        )
    lexed = lex(text)
    return _Parser(lexed.tokens, today).parse(lexed.comments)


class _Parser:
    def __init__(self, tokens: list[Token], today: date) -> None:
        self.tokens = tokens
        self.today = today
        self.i = 0

    # -- token access ---------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        index = self.i + offset
        return self.tokens[index] if 0 <= index < len(self.tokens) else None

    def peek_low(self, offset: int = 0) -> str:
        token = self.peek(offset)
        return token.low if token is not None else ""

    # -- entry ----------------------------------------------------------------------------
    def parse(self, comments: list[str]) -> OrderTicket:
        if not self.tokens:
            raise TicketError(
                Refusal.EMPTY, f"there is no order here — write e.g. {OPTION_EXAMPLE}."
            )
        self._skip_label()
        draft = self._action()
        self._quantity(draft)
        while self.i < len(self.tokens):
            self._body_token(draft)
        return assemble(draft, [*comments, " ".join(draft.trailer)])

    def _skip_label(self) -> None:
        """`Lotto: BTO ...`, `AVI#9896: STC ...`: a short label before the action is dropped,
        unless it could cancel or negate the alert (`Cancel: BTO ...`)."""
        for index, token in enumerate(self.tokens[:4]):
            if token.low in ACTIONS:
                return
            if not token.labelled or index + 1 >= len(self.tokens):
                continue
            if self.tokens[index + 1].low in ACTIONS:
                label = self.tokens[: index + 1]
                if any(NEGATING_LABEL.search(word.low) for word in label):
                    raise TicketError(
                        Refusal.UNKNOWN_WORD,
                        f'"{quote(" ".join(word.raw for word in label))}" in front of the order '
                        "may cancel or negate it — send just the order, e.g. "
                        f"{OPTION_EXAMPLE}.",
                    )
                self.i = index + 1
            return

    def _action(self) -> Draft:
        token = self.peek()
        if token is None or token.low not in ACTIONS:
            word = "" if token is None else f' (not "{quote(token.raw)}")'
            raise TicketError(
                Refusal.NO_ACTION,
                f"an order starts with buy, sell, BTO, STO, BTC or STC{word} — "
                f"e.g. {OPTION_EXAMPLE} or {EQUITY_EXAMPLE}.",
            )
        side, opening = ACTIONS[token.low]
        self.i += 1
        if token.low in ("buy", "sell") and self.peek_low() == "to":
            follow = self.peek_low(1)
            if follow in ("open", "close"):
                opening = follow == "open"
                self.i += 2
        return Draft(side=side, opening=opening)

    def _quantity(self, draft: Draft) -> None:
        token = self.peek()
        if token is None:
            return
        follower = self.peek_low(1)
        if INTEGER.match(token.low) and follower != "dte":  # the grammar puts QTY first
            digits = token.low.lstrip("+-")
            if len(digits) > 7 or int(token.low) > MAX_QUANTITY:
                raise TicketError(
                    Refusal.BAD_QUANTITY, f'quantity "{quote(token.raw)}" is too large.'
                )
            if int(token.low) < 1:
                raise TicketError(
                    Refusal.BAD_QUANTITY,
                    f'quantity must be 1 or more, not "{token.raw}" — to sell, write "sell" '
                    f'(e.g. "STC 2 SPY 12/18 590P @ 1.20").',
                )
            draft.quantity = int(token.low)
            self.i += 1
        elif BARE_NUMBER.match(token.low) and "." in token.low and parse_underlying(follower):
            raise TicketError(
                Refusal.BAD_QUANTITY,
                f'quantity "{token.raw}" must be a whole number of shares/contracts — '
                f"e.g. {EQUITY_EXAMPLE}.",
            )

    # -- body -----------------------------------------------------------------------------
    def _body_token(self, draft: Draft) -> None:
        token = self.tokens[self.i]
        low = token.low
        if low == "@" or (low == "at" and self._price_follows()):
            self._price_marker(draft)
        elif low in ACTIONS:
            raise TicketError(
                Refusal.MULTIPLE_ORDERS,
                f'found a second order at "{token.raw}" — send one order per message.',
            )
        elif low in PRICE_WORDS and draft.underlying is not None:
            self._set_price(draft, PRICE_WORDS[low], None, token.raw)
            self.i += 1
        elif EXIT_WORD.match(low) and draft.underlying is not None:
            if draft.price_mode is None:
                raise TicketError(
                    Refusal.EXIT_BEFORE_PRICE,
                    f'"{quote(token.raw)}" is an exit target, so the price must come before it '
                    f'— e.g. "BTO 1 SPY 12/18 590P @ 1.20 PT 1.80 SL 0.90" (or "@ mid PT 1.80").',
                )
            self._trailer(draft)
        elif SETTING.match(low):
            self._setting(draft, token)
        elif not self._expiration(draft) and not self._strikes(draft):
            self._word(draft, token)

    def _price_follows(self) -> bool:
        follower = self.peek_low(1)
        return bool(follower) and (bool(PRICE_LIKE.match(follower)) or follower in PRICE_WORDS)

    def _price_marker(self, draft: Draft) -> None:
        marker = self.tokens[self.i]
        token = self.peek(1)
        if token is None:
            raise TicketError(
                Refusal.BAD_PRICE,
                f'"{marker.raw}" needs a price after it — e.g. "@ 1.20", "@ mid" or "@ mkt".',
            )
        if draft.price_mode is not None and token.low.isalpha() and token.low not in PRICE_WORDS:
            self._trailer(draft)  # "@ 1.03 @Cblast Alert": a rendered role mention
            return
        if token.low in PRICE_WORDS:
            self._set_price(draft, PRICE_WORDS[token.low], None, token.raw)
            self.i += 2
            return
        price, effect = parse_price(token.raw)
        self._set_price(draft, PriceMode.LIMIT, price, token.raw)
        if effect is not None:
            self._set_effect(draft, effect, token.raw)
        self.i += 2
        tail = self.peek()
        if tail is not None and PRICE_TAIL.match(tail.low):
            raise TicketError(
                Refusal.BAD_PRICE,
                f'price "{token.raw} {tail.raw}" has a space in it — did you mean '
                f"{token.raw.lstrip('$').rstrip('.')}{tail.raw}?",
            )

    def _set_price(self, draft: Draft, mode: PriceMode, price: Decimal | None, raw: str) -> None:
        if draft.price_mode is not None:
            raise TicketError(
                Refusal.TWO_PRICES,
                f'two prices ("{quote(draft.price_raw)}" and "{quote(raw)}") — give one, '
                f'e.g. "@ 1.20", "@ mid" or "@ mkt".',
            )
        draft.price_mode, draft.price, draft.price_raw = mode, price, raw

    def _set_effect(self, draft: Draft, effect: PriceEffect, raw: str) -> None:
        if draft.effect is not None and draft.effect is not effect:
            raise TicketError(
                Refusal.EFFECT_CONFLICT,
                f'both "{draft.effect_raw}" and "{raw}" — an order is either a credit or a debit.',
            )
        draft.effect, draft.effect_raw = effect, raw

    def _setting(self, draft: Draft, token: Token) -> None:
        match = SETTING.match(token.low)
        assert match is not None
        key, value = match.groups()
        allowed = {"chase": CHASE_RANGE, "ticks": TICKS_RANGE}
        if key not in allowed:
            raise TicketError(
                Refusal.BAD_SETTING,
                f'unknown setting "{quote(token.raw)}" — the settings are chase=N (0-10 '
                f"price steps, 0 = no chase) and ticks=K (1-3 ticks per step).",
            )
        bounds = allowed[key]
        if not (value.isascii() and value.isdigit() and len(value) <= 3 and int(value) in bounds):
            raise TicketError(
                Refusal.BAD_SETTING,
                f'"{quote(token.raw)}": {key} must be a whole number from {bounds.start} to '
                f"{bounds.stop - 1} (e.g. {key}={bounds.start + 1}).",
            )
        if key in draft.settings:
            raise TicketError(Refusal.DUPLICATE_SETTING, f"{key}= is given twice — give it once.")
        draft.settings[key] = int(value)
        self.i += 1

    def _trailer(self, draft: Draft) -> None:
        """Everything from here on is comment (exit targets, a rendered mention, chatter)."""
        rest = self.tokens[self.i :]
        for token in rest:
            if token.low in ("bto", "sto", "btc", "stc"):
                raise TicketError(
                    Refusal.MULTIPLE_ORDERS,
                    f'found a second order at "{token.raw}" — send one order per message.',
                )
            if token.low == "gtc" or SETTING.match(token.low):
                raise TicketError(
                    Refusal.BAD_SETTING,
                    f'"{quote(token.raw)}" comes after the comment/exit targets, where it would be '
                    f'ignored — put it right after the price (e.g. "@ 1.20 gtc PT 1.80").',
                )
        draft.trailer = [token.raw for token in rest]
        self.i = len(self.tokens)

    # -- expirations ----------------------------------------------------------------------
    def _expiration(self, draft: Draft) -> bool:
        token = self.tokens[self.i]
        low = token.low
        if low in EXPIRATION_WORDS and self.peek(1) is not None:
            self.i += 1
            if self._expiration(draft):
                return True
            self.i -= 1
            return False
        if match := dates.DTE.match(low):
            expiration = dates.days_to_expiration(int(match[1]), token.raw, self.today)
            return self._set_expiration(draft, expiration, token.raw, consumed=1)
        if INTEGER.match(low) and self.peek_low(1) == "dte":
            raw = f"{token.raw} {self.tokens[self.i + 1].raw}"
            expiration = dates.days_to_expiration(int(low), raw, self.today)
            return self._set_expiration(draft, expiration, raw, consumed=2)
        if (slash := dates.SLASH_DATE.match(low)) and not self._vertical_follows(slash, draft):
            expiration_or_none = dates.parse_slash_or_iso(low, token.raw, self.today)
            assert expiration_or_none is not None
            return self._set_expiration(draft, expiration_or_none, token.raw, consumed=1)
        if dates.ISO_DATE.match(low):
            iso = dates.parse_slash_or_iso(low, token.raw, self.today)
            assert iso is not None
            return self._set_expiration(draft, iso, token.raw, consumed=1)
        return self._month_name_date(draft)

    def _vertical_follows(self, slash: re.Match[str], draft: Draft) -> bool:
        """Is this `A/B` a vertical rather than a date?

        `590/595` (no month 590) is a spread missing its type; `5/10 calls` is a spread. A lone
        `C`/`P` after a date-like `07/14` is the ticker (`BTO 10 07/14 C 48 calls`) unless the
        underlying is already known (`SPY 5/10 C`); zero-padded numbers are never strikes.
        """
        if int(slash[1]) > 31 or int(slash[2]) > 31:
            return True
        follower = self.peek_low(1)
        if slash[3] is not None or follower not in OPTION_TYPES:
            return False
        if slash[1].startswith("0") or slash[2].startswith("0"):
            return False
        return len(follower) > 1 or draft.underlying is not None

    def _month_name_date(self, draft: Draft) -> bool:
        low, next_low = self.peek_low(), self.peek_low(1)
        if low in dates.MONTHS and (day := dates.DAY_OF_MONTH.match(next_low)):
            month, consumed = dates.MONTHS[low], 2
            year = self.peek_low(2)
        elif (day := dates.DAY_OF_MONTH.match(low)) and next_low in dates.MONTHS:
            month, consumed = dates.MONTHS[next_low], 2
            year = self.peek_low(2)
            # "15 mar 24" (2-digit year) unless "24" is a strike: "15 mar 24 calls".
            if len(year) == 2 and year.isdigit() and self.peek_low(3) not in OPTION_TYPES:
                year = "20" + year
        else:
            return False
        raw_parts = [token.raw for token in self.tokens[self.i : self.i + consumed]]
        if dates.YEAR.match(year) and self.peek_low(3) not in OPTION_TYPES:
            consumed += 1
            raw_parts.append(year)
            raw = " ".join(raw_parts)
            expiration = dates.with_year(year, month, int(day[1]), raw, self.today)
        else:
            raw = " ".join(raw_parts)
            expiration = dates.next_month_day(month, int(day[1]), raw, self.today)
        return self._set_expiration(draft, expiration, raw, consumed=consumed)

    def _set_expiration(self, draft: Draft, expiration: date, raw: str, *, consumed: int) -> bool:
        if draft.expiration is not None and draft.expiration != expiration:
            raise TicketError(
                Refusal.TWO_EXPIRATIONS,
                f'two expirations ("{quote(draft.expiration_raw)}" and "{quote(raw)}") — one '
                "order uses one expiration (calendars and diagonals are not supported).",
            )
        draft.expiration, draft.expiration_raw = expiration, raw
        self.i += consumed
        return True

    # -- strikes --------------------------------------------------------------------------
    def _strikes(self, draft: Draft) -> bool:
        token = self.tokens[self.i]
        low = token.low
        follower = self.peek_low(1)
        if match := STRIKE.match(low):
            self._add_single(draft, match[1], OPTION_TYPES[match[2]], token.raw, consumed=1)
            return True
        if BARE_NUMBER.match(low) and follower in OPTION_TYPES:
            raw = f"{token.raw} {self.tokens[self.i + 1].raw}"
            self._add_single(draft, low.lstrip("$"), OPTION_TYPES[follower], raw, consumed=2)
            return True
        if match := VERTICAL.match(low):
            self._add_vertical(draft, match, token.raw)
            return True
        if low in ("ic", "iron") and (draft.underlying is not None or self._four_strikes_ahead()):
            self._add_iron_condor(draft, token)
            return True
        if FOUR_STRIKES.match(low):
            raise TicketError(
                Refusal.BAD_SPREAD,
                f'"{quote(token.raw)}" has four strikes — for an iron condor write IC before them '
                '(e.g. "sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10").',
            )
        if BARE_NUMBER.match(low):
            # A strike without C/P, or a price without "@": decided once the body is read.
            draft.stray_numbers.append(token.raw)
            self.i += 1
            return True
        return False

    def _four_strikes_ahead(self) -> bool:
        return any(FOUR_STRIKES.match(self.peek_low(offset)) for offset in (1, 2))

    def _add_single(
        self, draft: Draft, strike: str, option_type: OptionType, raw: str, *, consumed: int
    ) -> None:
        draft.legs.append(LegSpec(_decimal(strike), option_type, False, raw))
        draft.groups.append(Structure.SINGLE)
        self.i += consumed

    def _add_vertical(self, draft: Draft, match: re.Match[str], raw: str) -> None:
        first, first_type, second, second_type = match.groups()
        consumed = 1
        if second_type is None and self.peek_low(1) in OPTION_TYPES:
            second_type, consumed = self.peek_low(1), 2
            raw = f"{raw} {self.tokens[self.i + 1].raw}"
        if second_type is None:
            raise TicketError(
                Refusal.NO_OPTION_TYPE,
                f'"{quote(raw)}" has no call/put letter — write {first}/{second}C or '
                f'{first}/{second}P (e.g. "buy 1 SPY 12/18 590/595C @ 1.20").',
            )
        option_type = OPTION_TYPES[second_type]
        if first_type is not None and OPTION_TYPES[first_type] is not option_type:
            raise TicketError(
                Refusal.BAD_SPREAD,
                f'"{quote(raw)}" mixes a call and a put — a vertical uses one type '
                '(e.g. "590/595C"); for a strangle write "580P 620C".',
            )
        low_strike, high_strike = _decimal(first), _decimal(second)
        if low_strike == high_strike:
            raise TicketError(
                Refusal.BAD_SPREAD,
                f'"{quote(raw)}": a vertical needs two different strikes (e.g. "590/595C").',
            )
        draft.legs.append(LegSpec(low_strike, option_type, False, raw))
        draft.legs.append(LegSpec(high_strike, option_type, True, raw))
        draft.groups.append(Structure.VERTICAL)
        self.i += consumed

    def _add_iron_condor(self, draft: Draft, token: Token) -> None:
        self.i += 1
        if token.low == "iron" and self.peek_low() == "condor":
            self.i += 1
        strikes_token = self.peek()
        match = FOUR_STRIKES.match(strikes_token.low) if strikes_token is not None else None
        if strikes_token is None or match is None:
            raise TicketError(
                Refusal.BAD_SPREAD,
                'an iron condor needs four strikes, lowest first: "IC 570/575/605/610" '
                '(e.g. "sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10").',
            )
        strikes = [_decimal(part) for part in match.groups()]
        if any(low >= high for low, high in itertools.pairwise(strikes)):
            raise TicketError(
                Refusal.BAD_SPREAD,
                f'iron condor strikes "{quote(strikes_token.raw)}" must be strictly increasing: '
                "long put / short put / short call / long call (e.g. IC 570/575/605/610).",
            )
        raw = strikes_token.raw
        # Selling an IC: long the outer wings, short the inner strikes (buying flips all).
        draft.legs.extend(
            [
                LegSpec(strikes[0], OptionType.PUT, True, raw),
                LegSpec(strikes[1], OptionType.PUT, False, raw),
                LegSpec(strikes[2], OptionType.CALL, False, raw),
                LegSpec(strikes[3], OptionType.CALL, True, raw),
            ]
        )
        draft.groups.append(Structure.IRON_CONDOR)
        self.i += 1

    # -- words ----------------------------------------------------------------------------
    def _word(self, draft: Draft, token: Token) -> None:
        low = token.low
        if draft.underlying is not None or low in RESERVED:
            if low in EFFECT_WORDS:
                self._set_effect(draft, EFFECT_WORDS[low], token.raw)
                self.i += 1
                return
            if low in TIF_WORDS:
                tif = TIF_WORDS[low]
                if draft.time_in_force not in (None, tif):
                    raise TicketError(
                        Refusal.DUPLICATE_SETTING,
                        "both day and gtc — choose one time in force.",
                    )
                draft.time_in_force = tif
                self.i += 1
                return
        if low == "dte":  # a number before it would have made it an expiration
            raise TicketError(
                Refusal.UNKNOWN_WORD,
                '"DTE" needs the number of trading days before it, e.g. "0DTE" or "3 DTE" '
                "(the ticker DTE can't be traded by name: it would read as an expiration).",
            )
        underlying = None if low in RESERVED else parse_underlying(low)
        if underlying is not None:
            if draft.underlying is None:
                draft.underlying, draft.underlying_raw = underlying, token.raw
            elif underlying.symbol != draft.underlying.symbol and _looks_like_ticker(token):
                raise TicketError(
                    Refusal.MIXED_UNDERLYINGS,
                    f'"{quote(token.raw)}" looks like a second underlying after '
                    f'"{quote(draft.underlying_raw)}" — one order trades one underlying, so send '
                    "separate orders (if it is a comment, put it in parentheses).",
                )
            elif underlying.symbol != draft.underlying.symbol:
                raise _unknown(token)
            self.i += 1
            return
        if PRICE_LIKE.match(low) and any(char.isdigit() for char in low):
            raise TicketError(
                Refusal.UNKNOWN_WORD,
                f'"{quote(token.raw)}" is not a strike, date or price I can read — strikes look '
                f'like 590P or 590/595C, dates like 12/18, prices like "@ 1.20" '
                f"(e.g. {OPTION_EXAMPLE}).",
            )
        raise _unknown(token)


def _looks_like_ticker(token: Token) -> bool:
    raw = token.raw
    return raw.startswith(("$", "/")) or raw.isupper()


def _unknown(token: Token) -> TicketError:
    if token.low in ("limit", "lmt", "lim", "price"):
        return TicketError(
            Refusal.UNKNOWN_WORD,
            f'"{quote(token.raw)}": write the limit price after "@", e.g. {OPTION_EXAMPLE}.',
        )
    return TicketError(
        Refusal.UNKNOWN_WORD,
        f'unknown word "{quote(token.raw)}" — put comments in parentheses, e.g. '
        f'"BTO 1 SPY 12/18 590P @ 1.20 (lotto)".',
    )


def _decimal(text: str) -> Decimal:
    return Decimal(text.lstrip("$"))
