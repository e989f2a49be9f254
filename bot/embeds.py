"""Embed builders for every reply that concerns orders or the account.

Each builder takes a typed result from `broker.service` and returns a `discord.Embed`.
Order and account embeds carry the environment badge in the title and the footer, so a
paper fill can never be mistaken for a live one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import discord

from bot import formatting as fmt
from broker.service.models import (
    AccountRow,
    BalanceSummary,
    Environment,
    FillNotice,
    LegLine,
    OrderProgress,
    OrderRow,
    PositionRow,
    PreviewSummary,
    ProgressStage,
    QuoteSummary,
    StatusReport,
    SyncProgress,
    SyncSummary,
    TransactionRow,
)

ROWS_PER_PAGE = 10


def _base(title: str, environment: Environment, *, account: str | None = None) -> discord.Embed:
    embed = discord.Embed(
        title=f"{fmt.badge(environment)} · {title}"[:256], colour=fmt.COLOURS[environment]
    )
    footer = fmt.badge(environment)
    if account:
        footer += f" · account {fmt.mask_account(account)}"
    embed.set_footer(text=footer)
    return embed


def _legs_table(legs: Sequence[LegLine], *, quotes: bool) -> str:
    headers = ["Action", "Qty", "Symbol"] + (["Bid", "Ask"] if quotes else [])
    rows = []
    for leg in legs:
        row = [leg.action, str(leg.quantity), leg.symbol]
        if quotes:
            row += [fmt.price(leg.bid) if leg.bid is not None else "—"]
            row += [fmt.price(leg.ask) if leg.ask is not None else "—"]
        rows.append(row)
    return fmt.table(headers, rows, right={1, 3, 4})


def chase_text(preview: PreviewSummary) -> str:
    plan = preview.chase
    if preview.order_type == "Market":
        return "Market order: fills at the market, no chase."
    if plan is None or not plan.enabled:
        return "No chase: the limit stays where it is."
    cap = f", never past the natural {fmt.price(plan.cap_price)}" if plan.cap_price else ""
    return (
        f"Start {fmt.price(plan.start_price)}, then up to {plan.max_steps} step(s) of "
        f"{plan.ticks_per_step} tick(s) every {plan.interval_seconds:g} s{cap}; "
        "then it stays working as a DAY order."
    )


def preview_embed(preview: PreviewSummary, *, status: str | None = None) -> discord.Embed:
    embed = _base(
        f"Preview: {preview.headline}", preview.environment, account=preview.account_number
    )
    embed.description = _legs_table(preview.legs, quotes=True)
    if preview.order_type == "Market":
        price_text = "market"
    else:
        price_text = f"{preview.order_type} {fmt.price(preview.price, preview.price_effect)}"
    embed.add_field(name="Price", value=f"{price_text} · {preview.time_in_force}", inline=True)
    embed.add_field(
        name="Mid / natural",
        value=f"{fmt.price(preview.mid)} / {fmt.price(preview.natural)}"
        if preview.mid is not None or preview.natural is not None
        else "—",
        inline=True,
    )
    embed.add_field(
        name="Buying power",
        value=fmt.money(preview.buying_power_effect, signed=True),
        inline=True,
    )
    embed.add_field(name="Fees", value=fmt.money(preview.fees, signed=True), inline=True)
    embed.add_field(name="Chase plan", value=chase_text(preview), inline=False)
    if preview.warnings:
        embed.add_field(
            name="⚠️ Warnings",
            value="\n".join(f"• {w}" for w in preview.warnings)[:1024],
            inline=False,
        )
    if preview.errors:
        embed.add_field(
            name="⛔ The broker would reject this",
            value="\n".join(f"• {e}" for e in preview.errors)[:1024],
            inline=False,
        )
    if status:
        embed.add_field(name="Status", value=status[:1024], inline=False)
    elif preview.confirm_required and not preview.would_reject:
        embed.add_field(
            name="Confirm?",
            value="Press **Confirm** within 60 s to place this order, or **Cancel**.",
            inline=False,
        )
    return embed


_STAGE_TEXT: dict[ProgressStage, str] = {
    ProgressStage.SUBMITTED: "⏳ Submitted",
    ProgressStage.WORKING: "⏳ Working",
    ProgressStage.STEPPED: "↗️ Chasing",
    ProgressStage.PARTIALLY_FILLED: "◐ Partially filled",
    ProgressStage.FILLED: "✅ Filled",
    ProgressStage.LEFT_WORKING: "📌 Left working (DAY)",
    ProgressStage.CANCELLED: "✖️ Cancelled",
    ProgressStage.EXPIRED: "⌛ Expired",
    ProgressStage.REJECTED: "⛔ Rejected",
    ProgressStage.NOT_PLACED: "✖️ Not placed",
    ProgressStage.HALTED: "🛑 Halted",
}


def progress_text(progress: OrderProgress) -> str:
    parts = [_STAGE_TEXT[progress.stage]]
    if progress.order_id:
        parts.append(f"order #{progress.order_id}")
    if progress.price is not None:
        parts.append(f"at {fmt.price(progress.price, progress.price_effect)}")
    if progress.max_steps:
        parts.append(f"step {progress.steps_done}/{progress.max_steps}")
    if progress.total_quantity:
        parts.append(f"filled {progress.filled_quantity}/{progress.total_quantity}")
    text = " · ".join(parts)
    return f"{text}\n{progress.detail}" if progress.detail else text


def fill_embed(notice: FillNotice, *, author_mention: str | None = None) -> discord.Embed:
    title = {
        "filled": "Filled",
        "partially filled": "Partial fill",
    }.get(notice.status, notice.status.capitalize())
    head = notice.legs[0].symbol if notice.legs else notice.order_id
    embed = _base(f"{title}: {head}", notice.environment)
    embed.description = _legs_table(notice.legs, quotes=False) if notice.legs else None
    embed.add_field(name="Order", value=f"#{notice.order_id}", inline=True)
    embed.add_field(
        name="Filled", value=f"{notice.filled_quantity}/{notice.total_quantity}", inline=True
    )
    if notice.average_price is not None:
        embed.add_field(name="Avg price", value=fmt.signed_price(notice.average_price), inline=True)
    if notice.fees is not None:
        embed.add_field(name="Fees", value=fmt.money(notice.fees, signed=True), inline=True)
    if notice.start_price is not None:
        chase = (
            f"start {fmt.price(notice.start_price)} → final {fmt.price(notice.final_price)}"
            f" in {notice.steps} step(s)"
        )
        if notice.improvement is not None and notice.improvement > 0:
            chase += f"; {fmt.price(notice.improvement)} better than the natural price"
        elif notice.improvement is not None and notice.improvement == 0:
            chase += "; at the natural price"
        embed.add_field(name="Chase", value=chase, inline=False)
    if notice.reason:
        embed.add_field(name="Reason", value=fmt.sanitize(notice.reason, limit=1000), inline=False)
    if author_mention:
        embed.add_field(name="For", value=author_mention, inline=True)
    return embed


def orders_pages(
    rows: Sequence[OrderRow], environment: Environment, account: str | None
) -> list[discord.Embed]:
    table_rows = [
        [
            f"#{r.order_id}",
            r.status + (" ↗" if r.chasing else ""),
            " / ".join(f"{leg.action.split()[0]} {leg.quantity} {leg.symbol}" for leg in r.legs)[
                :48
            ],
            r.order_type,
            fmt.signed_price(r.price) if r.order_type != "Market" else "market",
            f"{r.filled_quantity}/{r.size}",
            r.time_in_force,
        ]
        for r in rows
    ]
    return _paged(
        "Open orders",
        ["Order", "Status", "Legs", "Type", "Price", "Filled", "TIF"],
        table_rows,
        environment,
        account,
        right={4, 5},
        empty="No open orders.",
    )


def positions_pages(
    rows: Sequence[PositionRow], environment: Environment, account: str | None
) -> list[discord.Embed]:
    table_rows = [
        [
            str(r.index),
            r.symbol,
            fmt.plain_number(r.quantity),
            fmt.price(r.average_open_price) if r.average_open_price is not None else "—",
            fmt.price(r.mark) if r.mark is not None else "—",
            fmt.money(r.unrealized_pnl, signed=True),
        ]
        for r in rows
    ]
    return _paged(
        "Positions",
        ["#", "Symbol", "Qty", "Avg open", "Mark", "P&L"],
        table_rows,
        environment,
        account,
        right={0, 2, 3, 4, 5},
        empty="No open positions. (Run `!tt sync` if you expected some.)",
        note="Close one with `!tt close <#>` or `!tt close <symbol>`.",
    )


def history_pages(
    rows: Sequence[TransactionRow], environment: Environment, account: str | None
) -> list[discord.Embed]:
    table_rows = [
        [
            fmt.when(r.executed_at),
            (r.action or r.type)[:16],
            (r.symbol or "")[:22],
            fmt.plain_number(r.quantity) if r.quantity is not None else "",
            fmt.price(r.price) if r.price is not None else "",
            fmt.money(r.value, signed=True),
        ]
        for r in rows
    ]
    return _paged(
        "History",
        ["When (UTC)", "Action", "Symbol", "Qty", "Price", "Value"],
        table_rows,
        environment,
        account,
        right={3, 4, 5},
        empty="No transactions yet. (Run `!tt sync` to fetch them.)",
    )


def _paged(
    title: str,
    headers: list[str],
    rows: list[list[str]],
    environment: Environment,
    account: str | None,
    *,
    right: set[int],
    empty: str,
    note: str | None = None,
) -> list[discord.Embed]:
    pages = fmt.chunk(rows, ROWS_PER_PAGE)
    embeds = []
    for number, page in enumerate(pages, start=1):
        suffix = f" ({number}/{len(pages)})" if len(pages) > 1 else ""
        embed = _base(title + suffix, environment, account=account)
        embed.description = fmt.table(headers, page, right=right) if page else empty
        if note and page:
            embed.description += f"\n{note}"
        embeds.append(embed)
    return embeds


def balance_embed(
    summary: BalanceSummary, environment: Environment, account: str | None
) -> discord.Embed:
    embed = _base("Balance", environment, account=account)
    embed.add_field(name="Net liquidating value", value=fmt.money(summary.net_liquidating_value))
    embed.add_field(name="Cash", value=fmt.money(summary.cash_balance))
    embed.add_field(name="Equity buying power", value=fmt.money(summary.equity_buying_power))
    embed.add_field(
        name="Derivative buying power", value=fmt.money(summary.derivative_buying_power)
    )
    embed.add_field(
        name="Maintenance requirement", value=fmt.money(summary.maintenance_requirement)
    )
    embed.add_field(name="As of", value=fmt.when(summary.as_of) + " UTC")
    return embed


def quote_embed(quote: QuoteSummary, environment: Environment) -> discord.Embed:
    embed = _base(f"Quote: {quote.symbol}", environment)
    embed.add_field(name="Bid", value=fmt.price(quote.bid) if quote.bid is not None else "—")
    embed.add_field(name="Ask", value=fmt.price(quote.ask) if quote.ask is not None else "—")
    embed.add_field(name="Mid", value=fmt.price(quote.mid) if quote.mid is not None else "—")
    if quote.last is not None:
        embed.add_field(name="Last", value=fmt.price(quote.last))
    if quote.mark is not None:
        embed.add_field(name="Mark", value=fmt.price(quote.mark))
    embed.add_field(name="Type", value=quote.instrument_type)
    return embed


def status_embed(report: StatusReport, now: datetime) -> discord.Embed:
    embed = _base("Status", report.environment, account=report.account_number)
    embed.add_field(name="Environment", value=fmt.badge(report.environment))
    embed.add_field(name="Trading", value="🛑 halted" if report.halted else "✅ enabled")
    embed.add_field(name="Credentials", value=report.credentials_source)
    session = report.session_state
    if report.token_expires_at is not None:
        # Token lifetimes run on the wall clock, whatever clock the market runs on.
        remaining = int((report.token_expires_at - datetime.now(UTC)).total_seconds())
        session += f" (token valid {max(remaining, 0) // 60} min)"
    embed.add_field(name="Session", value=session)
    embed.add_field(name="Streamer", value=report.streamer_state)
    sync = fmt.ago(report.last_sync_at, now)
    if report.last_sync_status:
        sync += f" ({report.last_sync_status})"
    embed.add_field(name="Last sync", value=sync)
    embed.add_field(name="Working chases", value=str(report.working_chases))
    return embed


def sync_progress_embed(
    progress: SyncProgress | None, environment: Environment, account: str | None
) -> discord.Embed:
    embed = _base("Sync running…", environment, account=account)
    if progress is None:
        embed.description = "Starting…"
        return embed
    total = f" of ~{progress.estimated_total:,}" if progress.estimated_total else ""
    bar = ""
    if progress.estimated_total:
        done = min(progress.rows_written / progress.estimated_total, 1.0)
        filled = int(done * 20)
        bar = f"\n`[{'#' * filled}{'.' * (20 - filled)}]` {done:.0%}"
    stage = f"{progress.stage}: " if progress.stage else ""
    embed.description = (
        f"{stage}{progress.pages_done} page(s), {progress.rows_written:,} row(s){total}{bar}"
    )
    return embed


def sync_done_embed(
    summary: SyncSummary, environment: Environment, account: str | None
) -> discord.Embed:
    embed = _base("Sync complete", environment, account=account)
    joined = " (joined a sync that was already running)" if summary.attached else ""
    embed.description = (
        f"{summary.kind.capitalize()} sync: {summary.rows_written:,} row(s) in "
        f"{summary.pages} page(s), {summary.duration_seconds:.1f} s{joined}.\n"
        f"{summary.positions} position(s), {summary.open_orders} open order(s)."
    )
    return embed


def accounts_embed(rows: Sequence[AccountRow], environment: Environment) -> discord.Embed:
    embed = _base("Accounts", environment)
    if not rows:
        embed.description = "No accounts found for these credentials."
        return embed
    embed.description = (
        fmt.table(
            ["", "Account", "Nickname", "Type"],
            [
                [
                    "★" if r.is_default else "",
                    r.account_number,
                    fmt.sanitize(r.nickname, limit=24),
                    f"{r.account_type} {r.margin_or_cash}".strip(),
                ]
                for r in rows
            ],
        )
        + "\n★ = this server's default. Admins: `!tt accounts <number>` to change it."
    )
    return embed
