"""Pure parts of the service facade: limit parsing, closing tickets, progress, chase plans."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from broker.events import (
    ChaseLeftWorking,
    ChaseStepped,
    ChaseSummary,
    LegInfo,
    NotificationContext,
    OrderFilled,
    OrderPlaced,
    OrderTerminal,
    SubmissionNotPlaced,
)
from broker.service.errors import ServiceError
from broker.service.facade import closing_ticket, instrument_text
from broker.service.guilds import LIMIT_NAMES, guild_view, parse_limit
from broker.service.models import OrderProgress, PositionRow, ProgressStage
from broker.service.orders import chase_params, guild_limits
from broker.service.progress import ProgressHub, fill_notice
from broker.tickets import parse_ticket
from storage.guilds import GuildSettings

AT = datetime(2025, 1, 2, 15, tzinfo=UTC)
CONTEXT = NotificationContext(guild_id=1, environment="paper", channel_id=10, author_id=5)
LEGS = (LegInfo("SPY", "Buy to Open", Decimal(1), "Equity"),)


def test_limit_names_parse_to_repository_fields() -> None:
    assert set(LIMIT_NAMES) == {
        "max_quantity",
        "max_notional",
        "max_loss",
        "skip_confirm",
        "chase_ticks",
        "chase_steps",
        "chase_interval",
    }
    assert parse_limit("max_notional", "$10,000") == {"max_notional": Decimal("10000")}
    assert parse_limit("max_loss", "none") == {"max_loss": None}
    assert parse_limit("skip_confirm", "on") == {"skip_confirmation": True}
    assert parse_limit("chase_steps", "0") == {"chase_max_steps": 0}
    assert parse_limit("chase_interval", "2.5s") == {"chase_interval_seconds": 2.5}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_quantity", "lots", "needs a number"),
        ("max_notional", "-5", "zero or more"),
        ("skip_confirm", "maybe", "`on` or `off`"),
        ("chase_ticks", "4", "from 1 to 3"),
        ("chase_interval", "0", "between 0.1 and 3600"),
        ("colour", "red", "Unknown setting"),
    ],
)
def test_bad_limit_values_are_refused_clearly(name: str, value: str, message: str) -> None:
    with pytest.raises(ServiceError, match=message):
        parse_limit(name, value)


def test_guild_view_and_limits() -> None:
    settings = GuildSettings(
        guild_id=1,
        environment="sandbox",
        allowed_channel_ids=frozenset({10}),
        role_tiers={7: "trader"},
        max_quantity=Decimal(3),
        max_notional=Decimal("5000"),
    )
    view = guild_view(settings)
    assert view.environment.value == "sandbox" and view.role_tiers == {7: "trader"}
    assert view.limits["max_notional"] == "$5,000.00"
    assert view.limits["max_loss"] == "default"
    limits = guild_limits(settings)
    assert limits.max_contracts == 3 and limits.max_shares == 3
    assert limits.max_notional == Decimal("5000")


@pytest.mark.parametrize(
    ("text", "steps", "ticks"),
    [
        ("buy 1 SPY", 3, 2),  # mid: the guild's chase
        ("buy 1 SPY @ 500.05", 0, 2),  # the user's own limit is not chased
        ("buy 1 SPY @ 500.05 chase=2", 2, 2),
        ("buy 1 SPY @ mid ticks=1", 3, 1),
        ("buy 1 SPY @ mkt", 0, 2),
    ],
)
def test_chase_params_follow_the_ticket(text: str, steps: int, ticks: int) -> None:
    settings = GuildSettings(guild_id=1, environment="paper", chase_max_steps=3, chase_ticks=2)
    params = chase_params(settings, parse_ticket(text, today=date(2025, 1, 2)))
    assert (params.max_steps, params.ticks) == (steps, ticks)


def _row(symbol: str, kind: str, quantity: str) -> PositionRow:
    return PositionRow(1, symbol, symbol.split()[0], kind, Decimal(quantity), None, None, None)


def test_closing_tickets_round_trip_through_the_parser() -> None:
    today = date(2026, 1, 2)
    cases = {
        ("AAPL", "Equity", "10"): "stc 10 AAPL",
        ("SPY   261218P00590000", "Equity Option", "-2"): "btc 2 SPY 12/18/26 590P",
        ("SPY   261218C00282500", "Equity Option", "1"): "stc 1 SPY 12/18/26 282.5C",
        ("/ESZ6", "Future", "1"): "stc 1 /ESZ6",
    }
    for (symbol, kind, quantity), expected in cases.items():
        text = closing_ticket(_row(symbol, kind, quantity))
        assert text == expected
        parse_ticket(text, today=today)  # the parser accepts what we generate
    assert instrument_text("./ESZ6 EW3Z6 261218C6000", "Future Option") == "/ESZ6 12/18/26 6000C"
    with pytest.raises(ServiceError, match="fractional"):
        closing_ticket(_row("AAPL", "Equity", "0.5"))


def _progress() -> OrderProgress:
    return OrderProgress(
        "p1", "k1", ProgressStage.SUBMITTED, None, Decimal("1.20"), "Debit", 0, 3, 0, 1
    )


async def test_progress_follows_the_chase() -> None:
    hub = ProgressHub()
    hub.track(42, _progress())
    events = [
        OrderPlaced(
            context=CONTEXT,
            account_number="A",
            at=AT,
            chase_id=42,
            order_id=100,
            legs=LEGS,
            quantity=Decimal(1),
            price=Decimal("-1.20"),
            effect="Debit",
            time_in_force="Day",
            max_steps=3,
        ),
        ChaseStepped(
            context=CONTEXT,
            account_number="A",
            at=AT,
            chase_id=42,
            step=1,
            max_steps=3,
            old_order_id=100,
            new_order_id=101,
            old_price=Decimal("-1.20"),
            new_price=Decimal("-1.22"),
            natural=Decimal("-1.30"),
            effect="Debit",
        ),
        OrderFilled(
            context=CONTEXT,
            account_number="A",
            at=AT,
            dedupe_key="d",
            order_id=101,
            chase_id=42,
            legs=LEGS,
            underlying_symbol="SPY",
            filled_quantity=Decimal(1),
            fill_quantity=Decimal(1),
            total_quantity=Decimal(1),
            average_price=Decimal("-1.22"),
            effect="Debit",
            fees=Decimal("0.50"),
            complete=True,
        ),
    ]
    for event in events:
        await hub.handle(event)
    seen = [p async for p in hub.watch("p1", limit_s=1)]
    assert [p.stage for p in seen] == [
        ProgressStage.WORKING,
        ProgressStage.STEPPED,
        ProgressStage.FILLED,
    ]
    assert seen[1].order_id == "101" and seen[1].price == Decimal("1.22")
    assert seen[2].detail == "Average fill 1.22 debit."


@pytest.mark.parametrize(
    ("event", "stage"),
    [
        (
            ChaseLeftWorking(
                context=CONTEXT,
                account_number="A",
                at=AT,
                chase_id=7,
                order_id=9,
                price=Decimal("-1.25"),
                effect="Debit",
                time_in_force="Day",
                steps=3,
                natural=None,
                filled_quantity=Decimal(0),
                total_quantity=Decimal(1),
            ),
            ProgressStage.LEFT_WORKING,
        ),
        (
            SubmissionNotPlaced(
                context=CONTEXT,
                account_number="A",
                at=AT,
                chase_id=7,
                idempotency_key="k1",
                reason="margin_check_failed",
                rejected=True,
            ),
            ProgressStage.REJECTED,
        ),
    ],
)
async def test_other_outcomes(event: object, stage: ProgressStage) -> None:
    hub = ProgressHub()
    hub.track(7, _progress())
    await hub.handle(event)  # type: ignore[arg-type]
    async for progress in hub.watch("p1", limit_s=0.2):
        assert progress.stage is stage
        break


async def test_fill_notices_carry_sign_fees_and_chase() -> None:
    summary = ChaseSummary(
        chase_id=3,
        start_price=Decimal("-1.20"),
        final_price=Decimal("-1.22"),
        steps=1,
        max_steps=3,
        natural_at_submission=Decimal("-1.30"),
        mid_at_submission=Decimal("-1.20"),
        order_chain=(100, 101),
        improvement=Decimal("0.08"),
    )
    filled = OrderFilled(
        context=CONTEXT,
        account_number="A",
        at=AT,
        dedupe_key="d",
        order_id=101,
        chase_id=3,
        legs=LEGS,
        underlying_symbol="SPY",
        filled_quantity=Decimal(1),
        fill_quantity=Decimal(1),
        total_quantity=Decimal(2),
        average_price=Decimal("-1.22"),
        effect="Debit",
        fees=Decimal("0.50"),
        complete=False,
        chase=summary,
    )
    notice = fill_notice(filled)
    assert notice.status == "partially filled" and notice.channel_id == 10
    assert notice.average_price == Decimal("-1.22") and notice.fees == Decimal("-0.50")
    assert (notice.start_price, notice.final_price, notice.steps) == (
        Decimal("1.20"),
        Decimal("1.22"),
        1,
    )
    terminal = OrderTerminal(
        context=CONTEXT,
        account_number="A",
        at=AT,
        dedupe_key="t",
        order_id=101,
        chase_id=3,
        status="Rejected",
        reason="margin_check_failed",
        legs=LEGS,
        underlying_symbol="SPY",
        filled_quantity=Decimal(0),
        total_quantity=Decimal(1),
    )
    assert fill_notice(terminal).status == "rejected"
    assert fill_notice(terminal).reason == "margin_check_failed"

    hub = ProgressHub()
    got = []

    async def collect(notice: object) -> None:
        got.append(notice)

    async def broken(notice: object) -> None:
        raise RuntimeError("a failing subscriber must not stop the others")

    hub.subscribe_fills(broken)
    hub.subscribe_fills(collect)
    await hub.handle(filled)
    assert len(got) == 1
