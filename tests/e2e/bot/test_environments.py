"""Per-guild environments: the sandbox toggle with its badge, going live, linking credentials.

Sandbox and live are pointed at two more local paper exchanges (a test-only endpoint
override), so the whole path — credentials, sessions, orders — runs offline and each
environment's orders provably land on its own exchange.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.localdiscord import standard_world
from bot.localstack import LocalStack, StackOptions, local_stack, trading_start_time
from bot.runtime import RuntimeOptions
from broker.paper import PaperConfig, PaperExchange
from broker.secrets import Secret
from broker.service.brokers import PaperEndpoints
from broker.service.errors import ServiceError
from broker.service.models import Environment
from tests.e2e.bot.conftest import NO_LUCK
from tests.e2e.bot.helpers import click, offline_config, only, run

ENCRYPTION_KEY = "k1:" + base64.urlsafe_b64encode(bytes(range(32))).decode()


@dataclass
class Envs:
    stack: LocalStack
    sandbox: PaperExchange
    live: PaperExchange | None


async def _exchange() -> PaperExchange:
    exchange = PaperExchange(
        PaperConfig(seed=11, start_time=trading_start_time(), real_time=False, fills=NO_LUCK)
    )
    await exchange.start()
    return exchange


@pytest.fixture
async def envs(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Envs]:
    # True: the bot has live credentials and this guild is allowed to use them;
    # "unlisted": the bot has live credentials but this guild is not in the allow-list.
    param = getattr(request, "param", False)
    with_live = bool(param)
    world = standard_world()
    sandbox = await _exchange()
    live = await _exchange() if with_live else None
    extra = {
        "TT_SANDBOX_PROVIDER_SECRET": "sandbox-provider-secret",
        "TT_SANDBOX_REFRESH_TOKEN": "sandbox-refresh-token",
        "TT_BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    }
    endpoints = {Environment.SANDBOX: PaperEndpoints(sandbox.api_url, sandbox.streamer_url)}
    if live is not None:
        extra |= {
            "TT_LIVE_PROVIDER_SECRET": "live-provider-secret",
            "TT_LIVE_REFRESH_TOKEN": "live-refresh-token",
        }
        if param is True:
            extra["TT_LIVE_CONFIG_GUILD_IDS"] = str(world.guilds[0].id)
        endpoints[Environment.LIVE] = PaperEndpoints(live.api_url, live.streamer_url)
    options = StackOptions(
        db_path=tmp_path / "tt.db",
        fills=NO_LUCK,
        runtime=RuntimeOptions(endpoints=endpoints),
        world=world,
    )
    try:
        async with local_stack(offline_config(**extra), options) as st:
            yield Envs(st, sandbox, live)
    finally:
        await sandbox.stop()
        if live is not None:
            await live.stop()


async def test_sandbox_toggle_and_badges(envs: Envs) -> None:
    st = envs.stack
    status = only(await run(st, "viewer", "!tt status"))
    assert "🧪 PAPER" in status.text

    switched = only(await run(st, "admin", "!tt sandbox on"))
    assert "Switched from 🧪 PAPER to 🏖️ SANDBOX" in switched.text
    assert "🏖️ SANDBOX" in only(await run(st, "viewer", "!tt status")).text
    assert "🏖️ SANDBOX" in only(await run(st, "admin", "!tt sandbox status")).text

    envs.sandbox.market.set_quote("SPY", "500.00", "500.00")
    preview = only(await run(st, "trader", "!tt buy 1 SPY @ mid"))
    assert preview.text.startswith("🏖️ SANDBOX · Preview")
    await click(st, "trader", "Confirm")
    await st.advance(1)
    assert [o.status for o in envs.sandbox.orders()] == ["Filled"]
    assert st.exchange.orders() == []  # nothing reached the paper exchange
    fill = [m for m in st.discord.messages_in("#trading") if "Filled: SPY" in m.text]
    assert fill and fill[0].text.startswith("🏖️ SANDBOX")

    # Sandbox and paper data are kept apart.
    sandbox_positions = only(await run(st, "viewer", "!tt positions"))
    assert "🏖️ SANDBOX" in sandbox_positions.text and "SPY" in sandbox_positions.text
    only(await run(st, "admin", "!tt sandbox off"))
    paper_positions = only(await run(st, "viewer", "!tt positions"))
    assert "🧪 PAPER" in paper_positions.text and "No open positions" in paper_positions.text


async def test_live_needs_credentials(envs: Envs) -> None:
    reply = only(await run(envs.stack, "admin", "!tt env live"))
    assert "No live credentials" in reply.text
    settings = await envs.stack.service.guild(envs.stack.guild_id)
    assert settings.environment is Environment.PAPER


@pytest.mark.parametrize("envs", [True], indirect=True)
async def test_going_live_needs_an_admin_and_a_confirmation(envs: Envs) -> None:
    st = envs.stack
    assert "needs the **admin** tier" in only(await run(st, "trader", "!tt env live")).text
    prompt = only(await run(st, "admin", "!tt env live"))
    assert "🔴 LIVE" in prompt.text and prompt.has_button("Confirm")
    settings = await st.service.guild(st.guild_id)
    assert settings.environment is Environment.PAPER  # not before the click

    stranger = await st.discord.click("trader", "Confirm")
    assert stranger.ephemeral
    await click(st, "admin", "Confirm")
    assert "Switched to 🔴 LIVE" in prompt.text
    settings = await st.service.guild(st.guild_id)
    assert settings.environment is Environment.LIVE
    assert "🔴 LIVE" in only(await run(st, "viewer", "!tt status")).text


@pytest.mark.parametrize("envs", [True], indirect=True)
async def test_confirmation_is_never_skipped_in_live(envs: Envs) -> None:
    st = envs.stack
    only(await run(st, "admin", "!tt limits set skip_confirm on"))
    st.exchange.market.set_quote("SPY", "500.00", "500.00")
    skipped = (await run(st, "trader", "!tt buy 1 SPY @ mid"))[0]
    assert not skipped.buttons and "Filled" in skipped.text
    assert len(st.exchange.orders()) == 1  # paper: placed straight away

    await run(st, "admin", "!tt env live")
    await click(st, "admin", "Confirm")
    refused = only(await run(st, "admin", "!tt limits set skip_confirm on"))
    assert "never be skipped in live" in refused.text
    preview = only(await run(st, "trader", "!tt buy 1 SPY @ mid"))
    assert preview.text.startswith("🔴 LIVE") and preview.has_button("Confirm")
    assert envs.live is not None and envs.live.orders() == []


async def test_switching_environment_invalidates_an_open_preview(envs: Envs) -> None:
    st = envs.stack
    st.exchange.market.set_quote("SPY", "500.00", "500.10")
    preview = only(await run(st, "trader", "!tt buy 1 SPY @ mid"))
    only(await run(st, "admin", "!tt env sandbox"))
    await click(st, "trader", "Confirm")
    assert "switched to sandbox after the preview" in preview.text
    assert st.exchange.orders() == [] and envs.sandbox.orders() == []


async def test_link_credentials_in_dms(envs: Envs) -> None:
    st = envs.stack
    secret, refresh = "my-provider-secret-123", "my-refresh-token-456"
    replies = await run(st, "admin", "!tt link sandbox")
    (prompt,) = st.discord.dms_to("admin")
    assert [m for m in replies if m is not prompt and "Check your DMs" in m.text]
    assert "provider secret" in prompt.text

    await st.discord.say_dm("admin", secret)
    await st.settle()
    await st.discord.say_dm("admin", refresh)
    await st.settle()
    dms = [m.text for m in st.discord.dms_to("admin")]
    assert any("Linked 🏖️ SANDBOX" in t for t in dms)
    assert any("credentials linked by" in m.text for m in st.discord.messages_in("#trading"))

    stored = await st.runtime.db.credentials.load(st.guild_id, "sandbox")
    assert stored is not None and stored.provider_secret.reveal() == secret
    # The secrets were never echoed anywhere, nor written in clear to the database file.
    assert not [m for m in st.discord.messages if secret in m.text or refresh in m.text]
    await st.runtime.db.checkpoint()
    raw = await asyncio.to_thread(Path(st.runtime.db.path).read_bytes)
    assert secret.encode() not in raw and refresh.encode() not in raw

    status = only(await run(st, "admin", "!tt env sandbox"))
    assert "🏖️ SANDBOX" in status.text
    assert "linked for this server" in only(await run(st, "viewer", "!tt status")).text

    unlinked = only(await run(st, "admin", "!tt unlink sandbox"))
    assert "Removed" in unlinked.text
    assert await st.runtime.db.credentials.load(st.guild_id, "sandbox") is None


async def test_link_refused_without_an_encryption_key(tmp_path: Path) -> None:
    async with local_stack(offline_config(), StackOptions(db_path=tmp_path / "tt.db")) as st:
        reply = only(await run(st, "admin", "!tt link sandbox"))
        assert "TT_BOT_ENCRYPTION_KEYS" in reply.text
        assert st.discord.dms_to("admin") == []


async def _link_in_dms(st: LocalStack, environment: str) -> None:
    await run(st, "admin", f"!tt link {environment}")
    await st.discord.say_dm("admin", f"{environment}-provider-secret-of-this-server")
    await st.settle()
    await st.discord.say_dm("admin", f"{environment}-refresh-token-of-this-server")
    await st.settle()


@pytest.mark.parametrize("envs", ["unlisted"], indirect=True)
async def test_live_needs_credentials_linked_for_the_guild(envs: Envs) -> None:
    st = envs.stack
    # The bot has live credentials, but this guild is not allowed to trade on them.
    refused = only(await run(st, "admin", "!tt env live"))
    assert "No live credentials linked for this server" in refused.text
    assert not refused.buttons
    assert (await st.service.guild(st.guild_id)).environment is Environment.PAPER

    await _link_in_dms(st, "live")
    prompt = only(await run(st, "admin", "!tt env live"))
    assert prompt.has_button("Confirm")
    await click(st, "admin", "Confirm")
    assert (await st.service.guild(st.guild_id)).environment is Environment.LIVE
    assert "linked for this server" in only(await run(st, "viewer", "!tt status")).text

    # Unlinking the live credentials never falls back to the bot's: back to paper, and said so.
    unlinked = only(await run(st, "admin", "!tt unlink live"))
    assert "now trades in 🧪 PAPER" in unlinked.text
    assert (await st.service.guild(st.guild_id)).environment is Environment.PAPER


async def test_unlinking_the_current_sandbox_credentials_moves_to_paper(envs: Envs) -> None:
    st = envs.stack
    await _link_in_dms(st, "sandbox")
    only(await run(st, "admin", "!tt env sandbox"))
    unlinked = only(await run(st, "admin", "!tt unlink sandbox"))
    # The bot's own sandbox credentials exist, but switching account silently is refused.
    assert "now trades in 🧪 PAPER" in unlinked.text
    assert (await st.service.guild(st.guild_id)).environment is Environment.PAPER


async def test_linked_credentials_without_a_key_are_an_error(tmp_path: Path) -> None:
    db_path = tmp_path / "tt.db"
    extra = {
        "TT_SANDBOX_PROVIDER_SECRET": "sandbox-provider-secret",
        "TT_SANDBOX_REFRESH_TOKEN": "sandbox-refresh-token",
    }
    world = standard_world()
    keyed = offline_config(**extra, TT_BOT_ENCRYPTION_KEYS=ENCRYPTION_KEY)
    async with local_stack(keyed, StackOptions(db_path=db_path, world=world)) as st:
        await st.runtime.db.credentials.store(
            st.guild_id,
            "sandbox",
            provider_secret=Secret("linked-secret"),
            refresh_token=Secret("linked-refresh"),
        )
        guild_id = st.guild_id
    # Restarted without the key: the linked credentials can't be read, and the bot's own
    # sandbox credentials are not used instead.
    async with local_stack(
        offline_config(**extra), StackOptions(db_path=db_path, world=world)
    ) as st:
        with pytest.raises(ServiceError, match="no encryption key"):
            await st.service.brokers.credentials(guild_id, Environment.SANDBOX)
        reply = only(await run(st, "admin", "!tt env sandbox"))
        assert "no encryption key" in reply.text
        assert (await st.service.guild(st.guild_id)).environment is Environment.PAPER


async def test_unlink_is_refused_while_orders_may_work(envs: Envs) -> None:
    st = envs.stack
    await _link_in_dms(st, "sandbox")
    only(await run(st, "admin", "!tt env sandbox"))
    envs.sandbox.market.set_quote("SPY", "500.00", "501.00")
    await run(st, "trader", "!tt buy 1 SPY @ mid")
    await click(st, "trader", "Confirm")
    await st.advance(30)  # chase done, order left working on the linked session
    assert [o.status for o in envs.sandbox.orders()].count("Live") == 1

    refused = only(await run(st, "admin", "!tt unlink sandbox"))
    assert "may still be working" in refused.text
    assert await st.runtime.db.credentials.load(st.guild_id, "sandbox") is not None

    # The order can still be cancelled through the linked session; then unlinking works.
    await run(st, "trader", "!tt cancel all")
    await st.advance(2)
    assert "Live" not in [o.status for o in envs.sandbox.orders()]
    assert "now trades in 🧪 PAPER" in only(await run(st, "admin", "!tt unlink sandbox")).text
