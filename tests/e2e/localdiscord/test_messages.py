"""Messages: prefix commands, intents, redelivery/edits, Discord limits, mentions, DMs, REST."""

from __future__ import annotations

import asyncio
import io
import time

import discord
import pytest

from bot.localdiscord import OutputEvent, World
from tests.e2e.localdiscord.conftest import Running, raw_request, run_bot


def _channel(env: Running, name: str = "trading") -> discord.TextChannel:
    (guild,) = env.bot.guilds
    channel = discord.utils.get(guild.text_channels, name=name)
    assert channel is not None
    return channel


async def test_prefix_ping_round_trip(running: Running) -> None:
    fake = running.discord
    sent = await fake.say("trader", "#trading", "!tt ping")
    reply = await fake.wait_for_message()
    assert reply.content == "pong"
    assert reply.channel.name == "trading"
    assert reply.author.id == fake.world.bot.id
    assert not reply.ephemeral and reply.edited_at is None
    assert sent.author.name == "trader"
    (post,) = [c for c in fake.rest_log if c.method == "POST"]
    assert post.path == f"/channels/{reply.channel.id}/messages"
    assert isinstance(post.body, dict) and post.body["allowed_mentions"] == {"parse": []}


async def test_message_content_intent_is_honoured() -> None:
    async with run_bot(bot_options={"message_content": False}) as env:
        fake, bot = env.discord, env.bot
        await fake.say("trader", "#trading", "!tt ping")
        await bot.wait_seen(1)
        assert bot.seen[0].content == ""  # no intent: blank content, so no command runs
        # A message that mentions the bot, and a DM, keep their content.
        await fake.say("trader", "#trading", f"{fake.world.bot.mention} hello")
        await fake.say_dm("trader", "!tt ping")
        await bot.wait_seen(3)
        assert bot.seen[1].content == f"{fake.world.bot.mention} hello"
        assert bot.seen[2].content == "!tt ping"
        assert isinstance(bot.seen[2].channel, discord.DMChannel)
        dm_reply = await fake.wait_for_message(lambda m: m.content == "pong")
        assert dm_reply.dm_recipient is not None and dm_reply.dm_recipient.name == "trader"
        assert [m.content for m in fake.messages_in("#trading")] == []
    async with run_bot() as env:  # with the intent the same message is visible
        await env.discord.say("trader", "#trading", "!tt ping")
        await env.bot.wait_seen(1)
        assert env.bot.seen[0].content == "!tt ping"


async def test_message_carries_member_roles(running: Running) -> None:
    await running.discord.say("admin", "#general", "hello")
    await running.bot.wait_seen(1)
    message = running.bot.seen[0]
    assert isinstance(message.author, discord.Member)
    assert [r.name for r in message.author.roles if not r.is_default()] == ["Admin"]
    assert message.author.guild_permissions.manage_guild
    assert message.channel.name == "general"  # type: ignore[union-attr]


async def test_redeliver_dispatches_the_same_message_again(running: Running) -> None:
    fake, bot = running.discord, running.bot
    sent = await fake.say("trader", "#trading", "!tt ping")
    await fake.wait_for_message(lambda m: m.content == "pong")
    await fake.redeliver(sent)
    await fake.wait_for_message(lambda m: m.content == "pong")
    await bot.wait_seen(2)
    assert [m.id for m in bot.seen] == [sent.id, sent.id]
    assert len([m for m in fake.messages if m.content == "pong"]) == 2  # this bot is not idempotent


async def test_edit_dispatches_message_update(running: Running) -> None:
    fake, bot = running.discord, running.bot
    sent = await fake.say("trader", "#general", "first")
    await bot.wait_seen(1)
    await fake.edit(sent, "second")
    await bot.wait_raw_edits(1)
    (raw,) = bot.raw_edits
    assert raw.message_id == sent.id
    assert raw.message.content == "second"
    assert raw.cached_message is not None and raw.cached_message.content == "first"
    assert sent.content == "second" and sent.edited and sent.history[0].content == "first"


async def test_discord_limits_answer_400_and_discord_py_raises(running: Running) -> None:
    channel = _channel(running)
    too_many_fields = discord.Embed(title="t")
    for i in range(26):
        too_many_fields.add_field(name=f"f{i}", value="v")
    big = [discord.Embed(description="d" * 4000) for _ in range(2)]  # 8000 > 6000 total
    cases: list[tuple[dict[str, object], str]] = [
        ({"content": "x" * 2001}, "In content: Must be 2000 or fewer in length."),
        ({"embed": too_many_fields}, "In embeds.0.fields: Must be 25 or fewer"),
        (
            {"embed": discord.Embed().add_field(name="n", value="v" * 1025)},
            "In embeds.0.fields.0.value: Must be 1024 or fewer",
        ),
        ({"embed": discord.Embed(title="t" * 257)}, "In embeds.0.title: Must be 256 or fewer"),
        (
            {"embed": discord.Embed(description="d" * 4097)},
            "In embeds.0.description: Must be 4096 or fewer",
        ),
        ({"embeds": big}, "Embed size exceeds maximum size of 6000"),
    ]
    for kwargs, text in cases:
        with pytest.raises(discord.HTTPException) as info:
            await channel.send(**kwargs)  # type: ignore[call-overload]
        assert info.value.status == 400 and info.value.code == 50035, kwargs
        assert text in str(info.value), str(info.value)
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send("   ")
    assert empty.value.code == 50006
    # Exactly at the limits is fine.
    ok = await channel.send("x" * 2000, embed=discord.Embed(title="t" * 256))
    assert running.discord.messages[-1].id == ok.id
    assert [c.status for c in running.discord.rest_log if c.method == "POST"] == [400] * 7 + [200]
    # discord.py itself refuses more than 10 embeds, so check the server rule over raw HTTP.
    status, body = await raw_request(
        running.discord,
        "POST",
        f"/channels/{channel.id}/messages",
        {"embeds": [{"title": "t"}] * 11},
    )
    assert status == 400
    assert body["errors"]["embeds"]["_errors"][0]["message"] == "Must be 10 or fewer in length."


async def test_rate_limit_with_via_is_retried_and_without_via_raises(running: Running) -> None:
    fake = running.discord
    fake.inject_rate_limit("POST", "/channels/*/messages", retry_after=0.05)
    await fake.say("trader", "#trading", "!tt ping")
    await fake.wait_for_message(lambda m: m.content == "pong")
    assert [c.status for c in fake.rest_log if c.method == "POST"] == [429, 200]
    fake.inject_rate_limit("POST", "/channels/*/messages", via=False)
    with pytest.raises(discord.HTTPException) as info:
        await _channel(running).send("hi")
    assert info.value.status == 429


async def test_injected_error_reaches_the_bot(running: Running) -> None:
    running.discord.inject_error(
        "POST", "/channels/*/messages", 403, code=50013, message="Missing Permissions"
    )
    with pytest.raises(discord.Forbidden) as info:
        await _channel(running).send("hi")
    assert info.value.code == 50013
    assert (await _channel(running).send("again")).content == "again"


async def test_allowed_mentions_and_pings_are_recorded(running: Running) -> None:
    fake = running.discord
    channel = _channel(running)
    trader = fake.world.user("trader")
    trader_role = fake.world.guilds[0].role("Trader")
    text = f"{trader.mention} {trader_role.mention} @everyone"
    await channel.send(text)  # the bot default: AllowedMentions.none()
    quiet = fake.messages[-1]
    assert quiet.allowed_mentions == {"parse": []}
    assert quiet.pings == frozenset()
    member = channel.guild.get_member(trader.id) or discord.Object(trader.id)
    await channel.send(text, allowed_mentions=discord.AllowedMentions(users=[member]))
    targeted = fake.messages[-1]
    assert targeted.allowed_mentions == {"parse": [], "users": [trader.id]}
    assert targeted.pings == {f"user:{trader.id}"}
    await channel.send(text, allowed_mentions=discord.AllowedMentions.all())
    assert fake.messages[-1].pings == {f"user:{trader.id}", f"role:{trader_role.id}", "everyone"}
    sends = [c for c in fake.rest_log if c.method == "POST"]
    assert all(isinstance(c.body, dict) and "allowed_mentions" in c.body for c in sends)


async def test_bot_edits_deletes_and_replies(running: Running) -> None:
    fake = running.discord
    channel = _channel(running)
    user_message = await fake.say("trader", "#trading", "hello")
    await running.bot.wait_seen(1)
    reply = await running.bot.seen[0].reply("hi back")
    record = fake.messages[-1]
    assert record.reference_id == user_message.id and reply.reference is not None
    assert record.pings == frozenset()  # AllowedMentions.none() also silences replied_user
    edited = await reply.edit(content="hi again")
    assert edited.content == "hi again" and record.edited
    assert [v.content for v in record.history] == ["hi back"]
    await reply.delete()
    assert record.deleted
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(record.id)
    with pytest.raises(discord.Forbidden) as info:  # not allowed to delete others' messages
        await running.bot.seen[0].delete()
    assert info.value.code == 50013


async def test_rest_fetches_typing_reactions_and_history(running: Running) -> None:
    fake, bot = running.discord, running.bot
    channel = _channel(running)
    trader = fake.world.user("trader")
    fetched_channel = await bot.fetch_channel(channel.id)
    assert fetched_channel.name == "trading"  # type: ignore[union-attr]
    member = await channel.guild.fetch_member(trader.id)
    assert [r.name for r in member.roles if not r.is_default()] == ["Trader"]
    user = await bot.fetch_user(trader.id)
    assert user.name == "trader"
    roles = await channel.guild.fetch_roles()
    assert {"Admin", "Trader", "Viewer", "@everyone"} <= {r.name for r in roles}
    fetched_guild = await bot.fetch_guild(channel.guild.id)
    assert fetched_guild.name == "Trading Desk"
    async with channel.typing():
        sent = await channel.send("working")
    await sent.add_reaction("✅")
    assert fake.messages[-1].reactions == ["✅"]
    assert (await channel.fetch_message(sent.id)).content == "working"
    history = [m.content async for m in channel.history(limit=5)]
    assert history == ["working"]
    assert fake.typing_events and fake.typing_events[0][0] == channel.id
    with pytest.raises(discord.NotFound):
        await channel.guild.fetch_member(999)


async def test_file_uploads_are_captured_as_attachments(running: Running) -> None:
    fake = running.discord
    channel = _channel(running)
    sent = await channel.send(
        "export", file=discord.File(io.BytesIO(b"sym,qty\nSPY,1\n"), "pos.csv")
    )
    record = fake.messages[-1]
    assert [(a.filename, a.size, a.data) for a in record.attachments] == [
        ("pos.csv", 14, b"sym,qty\nSPY,1\n")
    ]
    assert sent.attachments[0].filename == "pos.csv" and sent.attachments[0].size == 14
    edited = await sent.edit(content="export (no file)", attachments=[])
    assert edited.attachments == [] and record.attachments == []
    interaction = await fake.slash("trader", "#trading", "tt", "ping")
    assert interaction.original is not None and interaction.original.attachments == []


async def test_direct_messages_are_captured_and_closed_dms_refused() -> None:
    world = World()
    guild = world.add_guild("Desk")
    world.add_text_channel(guild, "trading")
    open_user = world.add_user("alice")
    closed_user = world.add_user("bob", accepts_dms=False)
    world.add_member(guild, open_user)
    world.add_member(guild, closed_user)
    async with run_bot(world) as env:
        fake, bot = env.discord, env.bot
        alice = await bot.fetch_user(open_user.id)
        await alice.send("your order filled")
        (dm,) = fake.dms_to("alice")
        assert dm.content == "your order filled" and dm.guild_id is None
        assert dm.channel.label == "DM @alice"
        bob = await bot.fetch_user(closed_user.id)
        with pytest.raises(discord.Forbidden) as info:
            await bob.send("hello")
        assert info.value.code == 50007


async def test_output_callback_and_iterator_see_creates_and_edits(running: Running) -> None:
    fake = running.discord
    seen: list[tuple[str, str]] = []
    unsubscribe = fake.on_output(lambda e: seen.append((e.kind, e.message.content)))
    iterated: list[OutputEvent] = []

    async def consume() -> None:
        async for event in fake.output():
            iterated.append(event)
            if len(iterated) == 2:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    message = await _channel(running).send("one")
    await message.edit(content="two")
    await asyncio.wait_for(consumer, 2)
    unsubscribe()
    await _channel(running).send("after unsubscribe")
    assert seen == [("create", "one"), ("edit", "two")]
    assert [(e.kind, e.message.id) for e in iterated] == [("create", message.id)] * 1 + [
        ("edit", message.id)
    ]


async def test_wait_for_message_times_out_with_a_useful_description(running: Running) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt ping")
    with pytest.raises(TimeoutError) as info:
        await fake.wait_for_message(lambda m: m.content == "never", timeout=0.3)
    assert "[#trading] tt-bot" in str(info.value) and "pong" in str(info.value)


async def test_driver_refuses_what_discord_would(running: Running) -> None:
    fake = running.discord
    with pytest.raises(ValueError, match="2000"):
        await fake.say("trader", "#trading", "x" * 2001)
    with pytest.raises(LookupError, match="no user named 'nobody'"):
        await fake.say("nobody", "#trading", "hi")
    with pytest.raises(LookupError, match="no channel named '#nowhere'"):
        await fake.say("trader", "#nowhere", "hi")


async def test_timing_stamps_mark_discord_handing_over_and_receiving(running: Running) -> None:
    """The stamps latency measurements use: when a dispatch went to the bot's connection, and
    when the bot's REST request reached the stand-in (before it was parsed)."""
    fake = running.discord
    before = time.monotonic()
    sent = await fake.say("trader", "#trading", "!tt ping")
    reply = await fake.wait_for_message()
    after = time.monotonic()
    assert sent.dispatched_monotonic is not None and reply.received_monotonic is not None
    assert before <= sent.changed_monotonic <= sent.dispatched_monotonic
    assert sent.dispatched_monotonic <= reply.received_monotonic <= reply.changed_monotonic
    assert reply.changed_monotonic <= after
    assert reply.dispatched_monotonic is None  # the bot's own message was not "sent to" it
    assert sent.received_monotonic is None  # the user's message came from the driver
