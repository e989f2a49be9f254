"""Text helpers for replies: money, signed prices, environment badges, monospace tables.

Pure functions (no discord import). User-supplied text that ends up in a reply goes through
`sanitize` so it can neither ping anyone nor break out of a code block.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from tastytrade.order import PriceEffect

from broker.orders.pricing import split_signed_price
from broker.session import Environment

BADGES: dict[Environment, str] = {
    Environment.PAPER: "🧪 PAPER",
    Environment.SANDBOX: "🏖️ SANDBOX",
    Environment.LIVE: "🔴 LIVE",
}

# Embed colours per environment: live is red so nobody mistakes it for a test.
COLOURS: dict[Environment, int] = {
    Environment.PAPER: 0x5865F2,
    Environment.SANDBOX: 0xF1C40F,
    Environment.LIVE: 0xE74C3C,
}

_ZERO_WIDTH_SPACE = "\u200b"


def badge(environment: Environment) -> str:
    return BADGES[environment]


def money(amount: Decimal | None, *, signed: bool = False) -> str:
    """`$1,234.50`; with `signed`, a leading +/- (negative = money out)."""
    if amount is None:
        return "—"
    cents = amount.quantize(Decimal("0.01"))  # sign of what is shown, not of dust below it
    sign = "-" if cents < 0 else ("+" if signed and cents > 0 else "")
    return f"{sign}${abs(cents):,.2f}"


def plain_number(value: Decimal | None) -> str:
    """A Decimal without exponent noise or trailing zeros beyond cents (`10`, `1.5`, `0.25`)."""
    if value is None:
        return "—"
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return f"{normalized.to_integral_value():,}"
    return f"{normalized:,f}"


def price(magnitude: Decimal | None, effect: str | None = None) -> str:
    """`1.20 debit`, `2.10 credit`, or just `1.20` when there is no effect."""
    if magnitude is None:
        return "market"
    text = _price_digits(abs(magnitude))
    return f"{text} {effect.lower()}" if effect else text


def _price_digits(value: Decimal) -> str:
    """At least two decimals, more only when the price really has them (0.0025, 6000.25)."""
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return f"{value.normalize():,f}"
    return f"{value:,.2f}"


def signed_price(value: Decimal | None) -> str:
    """A price in the SDK sign convention (negative = debit) shown as `1.20 debit`."""
    if value is None:
        return "—"
    magnitude, effect = split_signed_price(value)
    if effect is PriceEffect.NONE:
        return "0.00"
    return price(magnitude, effect.value)


def mask_account(account_number: str | None) -> str:
    """Show only the last four characters of an account number in chat."""
    if not account_number:
        return "—"
    return f"…{account_number[-4:]}" if len(account_number) > 4 else account_number


def sanitize(text: str, *, limit: int = 200) -> str:
    """Neutralise mentions and code fences in user text echoed back into a reply.

    `AllowedMentions.none()` already prevents pings; this also keeps the *rendered* text
    from looking like a mention and stops a backtick run from closing our code blocks.
    """
    cleaned = (
        text.replace("@", "@" + _ZERO_WIDTH_SPACE)
        .replace("`", "ˋ")
        .replace("<#", "<" + _ZERO_WIDTH_SPACE + "#")
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def when(moment: datetime | None) -> str:
    """Compact UTC timestamp for tables (`2025-01-02 14:03`)."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] | None = None
) -> str:
    """A monospace table inside a code block; columns listed in `right` are right-aligned."""
    right = right or set()
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    body = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "```\n" + "\n".join(body).replace("```", "ˋˋˋ") + "\n```"


def chunk(rows: Sequence[Sequence[str]], size: int) -> list[Sequence[Sequence[str]]]:
    """Split rows into pages of `size` (at least one, possibly empty, page)."""
    if not rows:
        return [[]]
    return [rows[i : i + size] for i in range(0, len(rows), size)]
