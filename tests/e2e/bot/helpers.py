"""Helpers for driving the bot through the local Discord stand-in."""

from __future__ import annotations

from bot.config import Config, load_config
from bot.localdiscord import MessageRecord
from bot.localstack import LocalStack


def offline_config(**extra: str) -> Config:
    """Configuration from an explicit mapping only (no .env), fast chase interval."""
    return load_config(environ={"TT_BOT_CHASE_INTERVAL_SECONDS": "5", **extra})


async def run(
    st: LocalStack, user: str, text: str, channel: str = "#trading"
) -> list[MessageRecord]:
    """`user` says `text`; returns the bot messages it caused (in their latest state)."""
    before = len(st.discord.messages)
    await st.discord.say(user, channel, text)
    await st.settle()
    return st.discord.messages[before:]


async def click(st: LocalStack, user: str, label: str) -> list[MessageRecord]:
    """`user` clicks `label`; returns new bot messages (edits show in `st.discord.messages`)."""
    before = len(st.discord.messages)
    await st.discord.click(user, label)
    await st.settle()
    return st.discord.messages[before:]


def only(messages: list[MessageRecord]) -> MessageRecord:
    assert len(messages) == 1, [m.text for m in messages]
    return messages[0]
