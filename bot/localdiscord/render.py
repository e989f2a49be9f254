"""Plain-text rendering of local Discord messages, for the console and test failure output.

Deterministic, no colours, narrow: a header line (channel, author, ephemeral recipient,
edited/deleted markers), then the body indented by two spaces — content, each embed as a
framed block, attachments, buttons as ``[Label]`` and reactions. Code blocks lose their
fences but keep their alignment, so tables stay tables.
"""

from __future__ import annotations

from typing import Any

from bot.localdiscord.records import Button, Embed, MessageRecord

_INDENT = "  "
_EMBED_TOP = "╭─"
_EMBED_SIDE = "│ "
_EMBED_BOTTOM = "╰─"


def render_message(record: MessageRecord) -> str:
    """A readable, deterministic text block for ``record`` (no trailing newline)."""
    lines = [_header(record)]
    body: list[str] = []
    if record.loading:
        body.append(f"{record.author.name} is thinking…")
    body += unfence(record.content)
    for embed in record.embeds:
        body += _embed_lines(embed)
    for attachment in record.attachments:
        body.append(f"[attachment: {attachment.filename}, {attachment.size} bytes]")
    body += _component_lines(record.components)
    if record.reactions:
        body.append("reactions: " + " ".join(record.reactions))
    lines += [_INDENT + line if line else "" for line in body]
    return "\n".join(lines)


def _header(record: MessageRecord) -> str:
    if record.dm_recipient is not None:
        where = (
            f"DM → @{record.dm_recipient.name}"
            if record.author.bot
            else f"DM from @{record.author.name}"
        )
    else:
        where = record.channel.label
    header = f"[{where}] {record.author.name}"
    if record.ephemeral_to is not None:
        header += f" (ephemeral → @{record.ephemeral_to.name})"
    if record.edited:
        header += " (edited)"
    if record.deleted:
        header += " (deleted)"
    return header


def unfence(text: str) -> list[str]:
    """Lines of ``text`` with code-block fences dropped and code lines indented two spaces."""
    if not text:
        return []
    lines: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            in_code = not in_code
            remainder = line.strip()[3:]
            # A one-line block ("```text```") keeps its text.
            if remainder.endswith("```") and len(remainder) >= 3:
                lines.append(_INDENT + remainder[:-3])
                in_code = not in_code
            continue
        lines.append(_INDENT + line if in_code else line)
    return lines


def _embed_lines(embed: Embed) -> list[str]:
    heading = " ".join(part for part in (embed.author, embed.title) if part)
    lines = [f"{_EMBED_TOP} {heading}" if heading else _EMBED_TOP]
    inner: list[str] = unfence(embed.description or "")
    for field in embed.fields:
        value_lines = unfence(field.value)
        if "```" in field.value or len(value_lines) > 1:
            inner.append(f"{field.name}:")
            inner += [line if line.startswith(_INDENT) else _INDENT + line for line in value_lines]
        else:
            inner.append(f"{field.name}: {value_lines[0] if value_lines else ''}".rstrip())
    lines += [(_EMBED_SIDE + line).rstrip() for line in inner]
    lines.append(f"{_EMBED_BOTTOM} {embed.footer}" if embed.footer else _EMBED_BOTTOM)
    return lines


def _component_lines(components: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for component in components:
        kind = component.get("type")
        children = component.get("components")
        if kind == 1 and isinstance(children, list):  # action row
            rendered = [_inline(child) for child in children if isinstance(child, dict)]
            lines.append(" ".join(r for r in rendered if r))
        elif kind == 10:  # text display (components v2)
            lines += unfence(str(component.get("content", "")))
        elif isinstance(children, list):  # container / section: render the children
            lines += _component_lines([c for c in children if isinstance(c, dict)])
            accessory = component.get("accessory")
            if isinstance(accessory, dict) and _inline(accessory):
                lines.append(_inline(accessory))
        elif kind == 14:  # separator
            lines.append("")
        elif kind in (2, 3, 5, 6, 7, 8):
            lines.append(_inline(component))
    return lines


def _inline(component: dict[str, Any]) -> str:
    kind = component.get("type")
    if kind == 2:
        return _button(Button.from_payload(component))
    if kind in (3, 5, 6, 7, 8):  # select menus
        placeholder = component.get("placeholder") or "select"
        disabled = " (disabled)" if component.get("disabled") else ""
        return f"[▾ {placeholder}{disabled}]"
    return ""


def _button(button: Button) -> str:
    label = " ".join(part for part in (button.emoji, button.label) if part) or "?"
    return f"[{label} (disabled)]" if button.disabled else f"[{label}]"
