"""No reply can ping @everyone or a role from user text; the console runs through a pipe."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.localstack import LocalStack
from tests.e2e.bot.helpers import run

ROOT = Path(__file__).resolve().parents[3]


async def test_user_text_never_pings(stack: LocalStack) -> None:
    role = stack.role_id("Trader")
    hostile = [
        "!tt @everyone",
        f"!tt <@&{role}> hello",
        "!tt buy 1 @everyone @here",
        f"!tt quote <@&{role}>",
        "!tt help @everyone",
        "!tt replace @everyone 1.00",
    ]
    for text in hostile:
        assert await run(stack, "trader", text)  # every one of them gets an answer
    sends = [
        call
        for call in stack.discord.rest_log
        if call.method in ("POST", "PATCH")
        and ("/messages" in call.path or "/callback" in call.path)
    ]
    checked = 0
    for call in sends:
        body = call.body if isinstance(call.body, dict) else {}
        data = body.get("data") or {} if "/callback" in call.path else body
        if data.get("content") or data.get("embeds"):
            assert data.get("allowed_mentions", {}).get("parse") == [], (call.path, data)
            checked += 1
    assert checked >= len(hostile)
    assert all(not message.pings for message in stack.discord.messages)


async def test_console_through_a_pipe(tmp_path: Path) -> None:
    script = "!tt help\n!tt buy 1 SPY @ mid\n/click Confirm\n/wait 30\n!tt positions\n"
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = {**os.environ, "TT_BOT_ENV_FILE": str(empty_env_file), "DISCORD_TOKEN": ""}
    env["TT_BOT_DB_PATH"] = str(tmp_path / "unused.db")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--console",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(script.encode()), 120)
    output = stdout.decode()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "offline console" in output and "DISCORD_TOKEN" in output  # the banner
    assert "tt-bot commands" in output  # help
    assert "Preview: Buy to Open 1 SPY" in output and "[Confirm] [Cancel]" in output
    assert "Working · order #" in output  # placed
    assert "Filled: SPY" in output  # the fill notification
    positions = output[output.rindex("> !tt positions") :]
    assert "Positions" in positions and "SPY" in positions and "1" in positions
