"""The text renderer: exact output for real bot messages and for hand-built records."""

from __future__ import annotations

from bot.localdiscord import (
    Attachment,
    Embed,
    MessageRecord,
    render_message,
    standard_world,
)
from tests.e2e.localdiscord.conftest import Running

PREVIEW = """\
[#trading] tt-bot
  Order preview
  ╭─ Buy 1 SPY @ mid
  │ Review and confirm.
  │ Symbol: SPY
  │ Legs:
  │   SYM  QTY
  │   SPY    1
  ╰─ Expires in 30s
  [Confirm] [Cancel]"""


async def test_render_order_preview_with_embed_and_buttons(running: Running) -> None:
    fake = running.discord
    await fake.say("trader", "#trading", "!tt order Buy 1 SPY @ mid")
    preview = await fake.wait_for_message(lambda m: m.has_button("Confirm"))
    assert render_message(preview) == PREVIEW
    refusal = await fake.click("viewer", "Confirm")
    assert refusal.original is not None
    assert render_message(refusal.original) == (
        "[#trading] tt-bot (ephemeral → @viewer)\n  This order isn't yours."
    )
    await fake.click("trader", "Confirm")
    assert render_message(preview) == (
        PREVIEW.replace("[#trading] tt-bot", "[#trading] tt-bot (edited)")
        .replace("Order preview", "Confirmed.")
        .replace("\n  [Confirm] [Cancel]", "")
    )


def _record(**fields: object) -> MessageRecord:
    world = standard_world()
    defaults: dict[str, object] = {
        "id": world.ids.next(),
        "channel": world.channel("#trading"),
        "author": world.bot,
    }
    defaults.update(fields)
    return MessageRecord(**defaults)  # type: ignore[arg-type]


def test_render_disabled_buttons_multiline_fields_and_markers() -> None:
    world = standard_world()
    trader = world.user("trader")
    embed = Embed.from_payload(
        {
            "author": {"name": "tt-bot"},
            "title": "Fills",
            "description": "Two fills\n```\nA  1\nB 22\n```",
            "fields": [
                {"name": "Note", "value": "line one\nline two"},
                {"name": "One-line code", "value": "```5WT00001```"},
            ],
        }
    )
    record = _record(
        channel=world.channel("#general"),
        author=world.bot,
        content="Result for <@1>",
        embeds=[embed],
        components=[
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 3, "label": "Retry", "custom_id": "r", "disabled": True},
                    {"type": 2, "style": 5, "label": "Docs", "url": "https://example.invalid"},
                    {"type": 2, "style": 2, "emoji": {"name": "✅"}, "custom_id": "ok"},
                ],
            },
            {"type": 1, "components": [{"type": 3, "custom_id": "pick", "placeholder": "Account"}]},
        ],
        attachments=[Attachment(1, "fills.csv", 42, "text/csv", b"x" * 42)],
        reactions=["👍"],
        ephemeral_to=trader,
    )
    record.edited_at = record.created_at
    assert render_message(record) == (
        "[#general] tt-bot (ephemeral → @trader) (edited)\n"
        "  Result for <@1>\n"
        "  ╭─ tt-bot Fills\n"
        "  │ Two fills\n"
        "  │   A  1\n"
        "  │   B 22\n"
        "  │ Note:\n"
        "  │   line one\n"
        "  │   line two\n"
        "  │ One-line code:\n"
        "  │   5WT00001\n"
        "  ╰─\n"
        "  [attachment: fills.csv, 42 bytes]\n"
        "  [Retry (disabled)] [Docs] [✅]\n"
        "  [▾ Account]\n"
        "  reactions: 👍"
    )


def test_render_dm_loading_and_deleted_messages() -> None:
    world = standard_world()
    trader = world.user("trader")
    dm = world.dm_channel(trader)
    assert render_message(_record(channel=dm, content="Filled 1 SPY")) == (
        "[DM → @trader] tt-bot\n  Filled 1 SPY"
    )
    assert render_message(_record(channel=dm, author=trader, content="!tt status")) == (
        "[DM from @trader] trader\n  !tt status"
    )
    assert render_message(_record(flags=1 << 7)) == "[#trading] tt-bot\n  tt-bot is thinking…"
    assert render_message(_record(content="gone", deleted=True)) == (
        "[#trading] tt-bot (deleted)\n  gone"
    )
