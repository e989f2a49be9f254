"""Typed records of what happened on the local Discord: messages, interactions, REST calls.

Records are what tests assert on and what the console renders. Message records are mutable
because Discord messages are: edits update them in place and keep the previous versions in
``history``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bot.localdiscord.world import ChannelKind, ChannelSpec, UserSpec

JSON = dict[str, Any]

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE_MENTION = re.compile(r"@(everyone|here)\b")


@dataclass(frozen=True, slots=True)
class Button:
    label: str | None
    custom_id: str | None
    style: int
    disabled: bool
    url: str | None = None
    emoji: str | None = None

    @classmethod
    def from_payload(cls, data: JSON) -> Button:
        emoji = data.get("emoji") or {}
        return cls(
            label=data.get("label"),
            custom_id=data.get("custom_id"),
            style=int(data.get("style", 1)),
            disabled=bool(data.get("disabled", False)),
            url=data.get("url"),
            emoji=emoji.get("name"),
        )


@dataclass(frozen=True, slots=True)
class EmbedField:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class Embed:
    """An embed as the bot sent it; ``raw`` keeps the exact payload."""

    title: str | None
    description: str | None
    fields: tuple[EmbedField, ...]
    footer: str | None
    author: str | None
    url: str | None
    color: int | None
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, data: JSON) -> Embed:
        return cls(
            title=data.get("title"),
            description=data.get("description"),
            fields=tuple(
                EmbedField(str(f.get("name", "")), str(f.get("value", "")), bool(f.get("inline")))
                for f in data.get("fields") or []
            ),
            footer=(data.get("footer") or {}).get("text"),
            author=(data.get("author") or {}).get("name"),
            url=data.get("url"),
            color=data.get("color"),
            raw=data,
        )

    @property
    def text(self) -> str:
        """All visible text of the embed, for substring assertions."""
        parts = [self.author, self.title, self.description]
        for f in self.fields:
            parts += [f.name, f.value]
        parts.append(self.footer)
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    filename: str
    size: int
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MessageVersion:
    """A message's state before an edit."""

    content: str
    embeds: tuple[Embed, ...]
    components: tuple[JSON, ...]
    replaced_at: datetime


def _flatten_components(components: list[JSON]) -> list[JSON]:
    flat: list[JSON] = []
    for component in components:
        flat.append(component)
        flat.extend(_flatten_components(component.get("components") or []))
        accessory = component.get("accessory")
        if accessory:
            flat.append(accessory)
    return flat


@dataclass(eq=False)
class MessageRecord:
    """A message on the local Discord (from the bot or from a user)."""

    id: int
    channel: ChannelSpec
    author: UserSpec
    content: str = ""
    embeds: list[Embed] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: JSON | None = None
    reference_id: int | None = None
    interaction_id: int | None = None
    ephemeral_to: UserSpec | None = None
    nonce: str | int | None = None
    tts: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: list[str] = field(default_factory=list)
    history: list[MessageVersion] = field(default_factory=list)
    # Mentions that allowed_mentions lets notify: "everyone", "user:<id>", "role:<id>".
    pings: frozenset[str] = frozenset()
    # When the message last appeared or changed (time.monotonic()), for the click settle time.
    changed_monotonic: float = field(default=0.0, repr=False)
    # A user's message: when its MESSAGE_CREATE went to the bot's gateway connection.
    dispatched_monotonic: float | None = field(default=None, repr=False)
    # A bot's message: when its REST request reached the stand-in (before any parsing).
    received_monotonic: float | None = field(default=None, repr=False)

    # -- derived views ------------------------------------------------------------------

    @property
    def ephemeral(self) -> bool:
        return self.ephemeral_to is not None

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    @property
    def loading(self) -> bool:
        """A deferred interaction response still showing "thinking…"."""
        return bool(self.flags & LOADING_FLAG)

    @property
    def guild_id(self) -> int | None:
        return self.channel.guild_id

    @property
    def dm_recipient(self) -> UserSpec | None:
        return self.channel.dm_recipient if self.channel.kind is ChannelKind.DM else None

    @property
    def buttons(self) -> list[Button]:
        return [
            Button.from_payload(c) for c in _flatten_components(self.components) if c["type"] == 2
        ]

    @property
    def text(self) -> str:
        """Content plus all embed text, for substring assertions."""
        return "\n".join([self.content, *(e.text for e in self.embeds)]).strip()

    def button(self, label_or_custom_id: str) -> Button:
        for button in self.buttons:
            if label_or_custom_id in (button.label, button.custom_id):
                return button
        raise LookupError(f"message {self.id} has no button {label_or_custom_id!r}")

    def has_button(self, label_or_custom_id: str) -> bool:
        return any(label_or_custom_id in (b.label, b.custom_id) for b in self.buttons)

    # -- mutation (used by the stand-in) --------------------------------------------------

    def snapshot(self) -> MessageVersion:
        return MessageVersion(
            self.content, tuple(self.embeds), tuple(self.components), datetime.now(UTC)
        )


def compute_pings(
    content: str,
    allowed_mentions: JSON | None,
    *,
    replied_user_id: int | None = None,
) -> frozenset[str]:
    """Which mentions in ``content`` Discord would let notify under ``allowed_mentions``.

    Without ``allowed_mentions`` Discord parses everything; with it, only what ``parse`` or
    the explicit ``users``/``roles`` lists allow (permission checks are not modelled).
    """
    users = {int(u) for u in _USER_MENTION.findall(content)}
    roles = {int(r) for r in _ROLE_MENTION.findall(content)}
    everyone = bool(_EVERYONE_MENTION.search(content))
    pings: set[str] = set()
    if allowed_mentions is None:
        parse = {"users", "roles", "everyone"}
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied = True
    else:
        parse = set(allowed_mentions.get("parse") or [])
        allowed_users = {int(u) for u in allowed_mentions.get("users") or []}
        allowed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
        replied = bool(allowed_mentions.get("replied_user", False))
    if everyone and "everyone" in parse:
        pings.add("everyone")
    pings.update(f"user:{u}" for u in users if "users" in parse or u in allowed_users)
    pings.update(f"role:{r}" for r in roles if "roles" in parse or r in allowed_roles)
    if replied_user_id is not None and replied:
        pings.add(f"user:{replied_user_id}")
    return frozenset(pings)


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One accepted interaction callback (type 4, 5, 6, 7, 8 or 9) and its data."""

    type: int
    data: JSON
    at: datetime

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & EPHEMERAL_FLAG)


@dataclass(eq=False)
class InteractionRecord:
    """An interaction the driver dispatched and everything the bot answered to it."""

    id: int
    token: str
    type: int  # 2 application command, 3 component
    user: UserSpec
    channel: ChannelSpec
    payload: JSON = field(repr=False)
    custom_id: str | None = None
    command: str | None = None  # "tt buy" for a slash command
    options: JSON = field(default_factory=dict)
    message: MessageRecord | None = None  # the message whose component was used
    created_monotonic: float = 0.0
    # When its INTERACTION_CREATE went to the bot's gateway connection (None: kept for replay).
    dispatched_monotonic: float | None = None
    callbacks: list[CallbackRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # callbacks Discord would refuse
    original: MessageRecord | None = None
    followups: list[MessageRecord] = field(default_factory=list)
    failed: bool = False  # no acknowledgement before the deadline ("This interaction failed")
    responded: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def response_type(self) -> int | None:
        return self.callbacks[0].type if self.callbacks else None

    @property
    def response(self) -> CallbackRecord | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def ephemeral(self) -> bool:
        return bool(self.callbacks) and self.callbacks[0].ephemeral

    @property
    def replies(self) -> list[MessageRecord]:
        """The original response (if it is a new message) followed by the follow-ups."""
        own = (
            [self.original]
            if self.original is not None and self.original.interaction_id == self.id
            else []
        )
        return own + self.followups

    async def wait_response(self, timeout: float = 5.0) -> CallbackRecord:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self.responded.wait()
        assert self.callbacks, "responded is only set after a callback is recorded"
        return self.callbacks[0]


@dataclass(frozen=True, slots=True)
class RestCall:
    """One REST request the bot made (path relative to ``/api/v10``)."""

    method: str
    path: str
    query: dict[str, str]
    body: JSON | list[Any] | None
    status: int
    at: datetime


OutputKind = Literal["create", "edit", "delete"]


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """A message appearing, changing or disappearing, in order of occurrence."""

    kind: OutputKind
    message: MessageRecord
