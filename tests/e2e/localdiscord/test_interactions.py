"""Interactions: slash commands, deferrals and follow-ups, buttons, deadlines, command sync."""

from __future__ import annotations

import asyncio
import time

import discord
import pytest

from bot.localdiscord import SlashCommandError, snowflake_time
from tests.e2e.localdiscord.conftest import Running, raw_request, run_bot


async def test_slash_ping_answers_through_the_interaction_callback(running: Running) -> None:
    fake = running.discord
    interaction = await fake.slash("trader", "#trading", "tt", "ping")
    assert not interaction.failed and interaction.response_type == 4
    assert interaction.original is not None and interaction.original.content == "pong"
    assert not interaction.original.ephemeral
    assert interaction.command == "tt ping"
    assert interaction.replies == [interaction.original]
    paths = [c.path for c in fake.rest_log if c.method == "POST"]
    assert paths == [f"/interactions/{interaction.id}/{interaction.token}/callback"]
    # Interaction ids are fresh time-based snowflakes (discord.py checks expiry from them).
    assert abs(snowflake_time(interaction.id).timestamp() - time.time()) < 5


async def test_slash_deferred_response_then_follow_ups(running: Running) -> None:
    fake = running.discord
    interaction = await fake.slash("trader", "#trading", "tt", "slow")
    assert interaction.response_type == 5
    second = await fake.wait_for_message(lambda m: m.content == "second")
    original = interaction.original
    assert original is not None
    # The first follow-up replaced the "thinking…" message; the second is a new message.
    assert original.content == "done" and not original.loading and not original.edited
    assert interaction.followups == [second]
    assert [m.content for m in interaction.replies] == ["done", "second"]
    assert not any(m.ephemeral for m in interaction.replies)


async def test_slash_ephemeral_deferral_keeps_replies_private(running: Running) -> None:
    fake = running.discord
    interaction = await fake.slash("trader", "#trading", "tt", "slow", {"private": True})
    assert interaction.response_type == 5 and interaction.ephemeral
    await fake.wait_for_message(lambda m: m.content == "second")
    assert all(m.ephemeral_to is not None for m in interaction.replies)
    assert {m.ephemeral_to.name for m in interaction.replies if m.ephemeral_to} == {"trader"}


async def test_slash_options_inferred_without_sync(running: Running) -> None:
    interaction = await running.discord.slash(
        "trader", "#trading", "tt", "qty", {"symbol": "SPY", "qty": 5, "dry": True}
    )
    assert interaction.original is not None
    assert interaction.original.content == "SPY:int=5 dry=True"
    assert running.bot.option_values == [("SPY", 5, True)]


async def test_slash_options_typed_and_checked_against_the_synced_tree(running: Running) -> None:
    fake, bot = running.discord, running.bot
    synced = await bot.tree.sync()
    assert [c.name for c in synced] == ["tt"]
    (tt,) = fake.synced_commands
    assert tt["id"] == str(synced[0].id) and tt["application_id"] == str(fake.world.bot.id)
    assert {o["name"] for o in tt["options"]} == {
        "help",
        "ping",
        "order",
        "slow",
        "qty",
        "quotes",
        "flash",
        "late",
    }
    # The tree says qty is an integer: a numeric string is sent as a real integer.
    interaction = await fake.slash("trader", "#trading", "tt", "qty", {"symbol": "SPY", "qty": "7"})
    assert interaction.original is not None
    assert interaction.original.content == "SPY:int=7 dry=False"
    with pytest.raises(SlashCommandError, match="has no option 'quantity'"):
        await fake.slash("trader", "#trading", "tt", "qty", {"symbol": "SPY", "quantity": 1})
    with pytest.raises(SlashCommandError, match="missing required option"):
        await fake.slash("trader", "#trading", "tt", "qty", {"symbol": "SPY"})
    with pytest.raises(SlashCommandError, match="no subcommand 'sell'"):
        await fake.slash("trader", "#trading", "tt", "sell")
    with pytest.raises(SlashCommandError, match="expects an integer"):
        await fake.slash("trader", "#trading", "tt", "qty", {"symbol": "SPY", "qty": "many"})
    # Re-syncing keeps command ids stable, as Discord does.
    again = await bot.tree.sync()
    assert again[0].id == synced[0].id
    assert fake.last_synced == fake.synced_commands


async def test_invalid_command_tree_fails_sync(running: Running) -> None:
    bad = discord.app_commands.Command(name="broken", description="x" * 101, callback=_noop_command)
    running.bot.tree.add_command(bad)
    with pytest.raises(discord.app_commands.CommandSyncFailure):
        await running.bot.tree.sync()


async def _noop_command(interaction: discord.Interaction) -> None:
    return None


async def test_button_click_by_author_updates_the_message(running: Running) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt order Buy 1 SPY @ mid")
    preview = await fake.wait_for_message(lambda m: m.has_button("Confirm"))
    assert [(b.label, b.custom_id, b.disabled) for b in preview.buttons] == [
        ("Confirm", "tt:confirm", False),
        ("Cancel", "tt:cancel", False),
    ]
    assert preview.embeds[0].title == "Buy 1 SPY @ mid"
    interaction = await fake.click("trader", "Confirm")
    assert interaction.response_type == 7 and not interaction.ephemeral
    assert interaction.dispatched_monotonic is not None
    assert interaction.created_monotonic <= interaction.dispatched_monotonic
    assert interaction.message is preview
    assert preview.content == "Confirmed." and preview.buttons == [] and preview.edited
    assert preview.history[0].content == "Order preview"
    placed = await fake.wait_for_message(lambda m: m.content.startswith("Order"))
    assert placed.content == "Order placed."


async def test_button_click_by_stranger_gets_an_ephemeral_refusal(running: Running) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt order Buy 1 SPY @ mid")
    preview = await fake.wait_for_message(lambda m: m.has_button("tt:cancel"))
    refusal = await fake.click("viewer", "tt:confirm")
    assert refusal.response_type == 4
    assert refusal.response is not None and refusal.response.data["flags"] == 64
    assert refusal.original is not None and refusal.original.ephemeral_to is not None
    assert refusal.original.ephemeral_to.name == "viewer"
    assert refusal.original.content == "This order isn't yours."
    assert preview.content == "Order preview" and not preview.edited  # untouched
    # The author can still cancel afterwards.
    cancel = await fake.click("trader", "Cancel", preview)
    assert cancel.response_type == 7 and preview.content == "Cancelled."
    await fake.wait_for_message(lambda m: m.content == "Order not placed.")


async def test_slash_order_view_works_through_interactions_too(running: Running) -> None:
    fake = running.discord
    slash = await fake.slash("trader", "#trading", "tt", "order", {"order": "Sell 2 QQQ"})
    preview = slash.original
    assert preview is not None and preview.has_button("Confirm")
    click = await fake.click("trader", "Confirm", preview)
    assert click.response_type == 7 and preview.content == "Confirmed."
    placed = await fake.wait_for_message(lambda m: m.content == "Order placed.")
    assert placed.interaction_id == slash.id  # a follow-up of the slash interaction


async def test_clicking_is_refused_for_disabled_missing_or_invisible_buttons(
    running: Running,
) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt order Buy 1 SPY")
    await fake.wait_for_message(lambda m: m.has_button("Confirm"))
    await fake.click("trader", "Confirm")
    with pytest.raises(LookupError, match="has a button 'Confirm'"):
        await fake.click("trader", "Confirm")  # the view was removed by the update
    await fake.say("trader", "#trading", "!tt order Buy 2 SPY")
    await fake.wait_for_message(lambda m: m.has_button("Confirm"))
    refusal = await fake.click("viewer", "Confirm")
    assert refusal.original is not None and refusal.original.ephemeral
    with pytest.raises(LookupError, match="visible to 'viewer'"):
        await fake.click("viewer", "Anything")


async def test_deferred_update_then_webhook_edits(running: Running) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt quotes")
    quotes = await fake.wait_for_message(lambda m: m.has_button("Refresh"))
    interaction = await fake.click("trader", "Refresh")
    assert interaction.response_type == 6 and interaction.original is quotes
    edited = await fake.wait_for_edit(lambda m: m.content == "Quotes refreshed.")
    assert edited is quotes and quotes.has_button("Refresh")  # the view stays
    note = await fake.wait_for_edit(lambda m: m.content == "Refreshed.")
    assert note.ephemeral_to is not None and note.ephemeral_to.name == "trader"
    assert [v.content for v in note.history] == ["Refreshing…"]
    assert interaction.followups == [note]
    patched = [c.path for c in fake.rest_log if c.method == "PATCH"]
    token = interaction.token
    app = fake.world.application_id
    assert patched == [
        f"/webhooks/{app}/{token}/messages/@original",
        f"/webhooks/{app}/{token}/messages/{note.id}",
    ]


async def test_original_response_can_be_deleted(running: Running) -> None:
    fake = running.discord
    interaction = await fake.slash("trader", "#trading", "tt", "flash")
    gone = await fake.wait_for_delete()
    assert gone is interaction.original and gone.deleted
    assert gone.content == "now you see it"


async def test_late_acknowledgement_fails_the_interaction() -> None:
    async with run_bot(interaction_deadline=0.1) as env:
        fake, bot = env.discord, env.bot
        bot.late_delay = 0.3
        interaction = await fake.slash("trader", "#trading", "tt", "late")
        assert interaction.failed and interaction.callbacks == []
        await fake.wait_for_request(lambda c: c.path.endswith("/callback"), timeout=2)
        assert interaction.rejected and "deadline" in interaction.rejected[0]
        await asyncio.wait_for(bot.command_errors_changed.wait(), 2)
        (error,) = bot.command_errors
        assert isinstance(error, discord.NotFound) and error.code == 10062


async def test_second_acknowledgement_is_rejected(running: Running) -> None:
    fake = running.discord
    interaction = await fake.slash("trader", "#trading", "tt", "ping")
    status, body = await raw_request(
        fake,
        "POST",
        f"/interactions/{interaction.id}/{interaction.token}/callback",
        {"type": 4, "data": {"content": "again"}},
    )
    assert status == 400 and body["code"] == 40060
    assert interaction.rejected == ["second acknowledgement"]
    status, body = await raw_request(
        fake, "POST", f"/interactions/{interaction.id}/not-the-token/callback", {"type": 4}
    )
    assert status == 404 and body["code"] == 10062


async def test_unknown_routes_are_recorded_and_404(running: Running) -> None:
    fake = running.discord
    status, body = await raw_request(fake, "GET", "/guilds/1/audit-logs")
    assert status == 404 and body == {"message": "404: Not Found", "code": 0}
    assert [(u.method, u.path) for u in fake.unhandled] == [("GET", "/guilds/1/audit-logs")]
    fake.unhandled.clear()  # the harness asserts none remain
