"""Embeds carry the badge, show signed prices plainly and stay within Discord's limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bot import embeds
from broker.service.models import (
    ChasePlan,
    Environment,
    FillNotice,
    LegLine,
    OrderProgress,
    PositionRow,
    PreviewSummary,
    ProgressStage,
)

NOW = datetime(2025, 1, 2, 15, tzinfo=UTC)


def preview(**changes: object) -> PreviewSummary:
    fields: dict[str, object] = {
        "preview_id": "1",
        "fingerprint": "f",
        "environment": Environment.LIVE,
        "account_number": "5WT00001",
        "guild_id": 1,
        "author_id": 2,
        "command_text": "buy 1 SPY 12/18 590/595C @ 1.20",
        "legs": [
            LegLine(
                "Buy to Open",
                1,
                "SPY   261218C00590000",
                "Equity Option",
                Decimal("3.10"),
                Decimal("3.20"),
            ),
            LegLine(
                "Sell to Open",
                1,
                "SPY   261218C00595000",
                "Equity Option",
                Decimal("1.95"),
                Decimal("2.05"),
            ),
        ],
        "order_type": "Limit",
        "price": Decimal("1.20"),
        "price_effect": "Debit",
        "time_in_force": "Day",
        "mid": Decimal("1.15"),
        "natural": Decimal("1.25"),
        "buying_power_effect": Decimal("-120"),
        "fees": Decimal("-2.24"),
        "warnings": ["closing_with_no_position: nothing to close"],
        "errors": [],
        "chase": ChasePlan(Decimal("1.20"), 2, 3, 5.0, Decimal("1.25")),
        "confirm_required": True,
        "created_at": NOW,
    }
    fields.update(changes)
    return PreviewSummary(**fields)  # type: ignore[arg-type]


def test_preview_embed_shows_everything_with_the_badge() -> None:
    embed = embeds.preview_embed(preview())
    data = embed.to_dict()
    assert data["title"].startswith("🔴 LIVE · Preview: 2-leg order on SPY")
    assert data["footer"]["text"] == "🔴 LIVE · account …0001"
    values = {f["name"]: f["value"] for f in data["fields"]}
    assert values["Price"] == "Limit 1.20 debit · Day"
    assert values["Mid / natural"] == "1.15 / 1.25"
    assert values["Buying power"] == "-$120.00"
    assert values["Fees"] == "-$2.24"
    assert "2 tick(s) every 5 s" in values["Chase plan"]
    assert "⚠️ Warnings" in values and "Confirm?" in values
    assert "SPY   261218C00595000" in data["description"]
    assert len(embed) <= 6000


def test_rejected_preview_has_no_confirm_prompt() -> None:
    embed = embeds.preview_embed(preview(errors=["margin_check_failed: not enough buying power"]))
    names = [f["name"] for f in embed.to_dict()["fields"]]
    assert "⛔ The broker would reject this" in names and "Confirm?" not in names


def test_progress_and_fill_texts() -> None:
    progress = OrderProgress(
        "1", "1", ProgressStage.STEPPED, "101", Decimal("1.22"), "Debit", 1, 3, 0, 1
    )
    assert (
        embeds.progress_text(progress)
        == "↗️ Chasing · order #101 · at 1.22 debit · step 1/3 · filled 0/1"
    )
    notice = FillNotice(
        dedupe_key="d",
        environment=Environment.PAPER,
        guild_id=1,
        channel_id=2,
        author_id=3,
        order_id="101",
        legs=[LegLine("Buy to Open", 1, "SPY", "Equity")],
        filled_quantity=1,
        total_quantity=1,
        average_price=Decimal("-500.06"),
        fees=Decimal("0"),
        status="filled",
        start_price=Decimal("500.05"),
        final_price=Decimal("500.07"),
        steps=1,
        improvement=Decimal("0.04"),
    )
    data = embeds.fill_embed(notice, author_mention="<@3>").to_dict()
    values = {f["name"]: f["value"] for f in data["fields"]}
    assert data["title"] == "🧪 PAPER · Filled: SPY"
    assert values["Avg price"] == "500.06 debit"
    assert "0.04 better than the natural price" in values["Chase"]


def test_positions_paginate_and_every_page_fits() -> None:
    rows = [
        PositionRow(
            i, f"SYM{i}", f"SYM{i}", "Equity", Decimal(i), Decimal("10"), Decimal("11"), Decimal(i)
        )
        for i in range(1, 26)
    ]
    pages = embeds.positions_pages(rows, Environment.SANDBOX, "5WT00001")
    assert len(pages) == 3
    assert pages[0].title == "🏖️ SANDBOX · Positions (1/3)"
    assert all(len(page.description or "") <= 4096 and len(page) <= 6000 for page in pages)
    empty = embeds.positions_pages([], Environment.PAPER, None)
    assert len(empty) == 1 and "No open positions" in (empty[0].description or "")
