"""Shared state of the local Discord: messages, interactions, synced commands, output events.

REST handlers and the driver API both change state only through this class, so every change
is recorded, shown to output listeners and (like real Discord) echoed to the bot's gateway.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.localdiscord import errors
from bot.localdiscord.gateway import Gateway
from bot.localdiscord.payloads import message_payload
from bot.localdiscord.records import (
    JSON,
    Attachment,
    Embed,
    InteractionRecord,
    MessageRecord,
    OutputEvent,
    OutputKind,
    compute_pings,
)
from bot.localdiscord.world import ChannelSpec, UserSpec, World

log = logging.getLogger(__name__)

OutputCallback = Callable[[OutputEvent], Awaitable[None] | None]

# Flags a sender may set on a message; everything else is Discord's to decide.
_SETTABLE_FLAGS = (1 << 2) | (1 << 6) | (1 << 12) | (1 << 15)  # suppress embeds, ephemeral,
# suppress notifications, components v2


@dataclass(frozen=True, slots=True)
class UploadedFile:
    index: int
    filename: str
    content_type: str | None
    data: bytes


@dataclass(slots=True)
class _Listener:
    callback: OutputCallback
    include_user_messages: bool


class DiscordState:
    def __init__(self, world: World, gateway: Gateway, *, echo_bot_messages: bool) -> None:
        self.world = world
        self.gateway = gateway
        self.echo_bot_messages = echo_bot_messages
        self.all_messages: list[MessageRecord] = []
        self._messages_by_id: dict[int, MessageRecord] = {}
        self.interactions: list[InteractionRecord] = []
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}
        self.events: list[OutputEvent] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._listeners: list[_Listener] = []
        self._listener_tasks: set[asyncio.Future[None]] = set()
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.last_synced: list[JSON] | None = None
        self.command_ids: dict[tuple[int | None, str, int], int] = {}
        self.typing: list[tuple[int, datetime]] = []

    # -- lookups ------------------------------------------------------------------------

    def message(self, message_id: int, channel: ChannelSpec | None = None) -> MessageRecord:
        record = self._messages_by_id.get(message_id)
        if record is None or record.deleted:
            raise errors.unknown_message()
        if channel is not None and record.channel.id != channel.id:
            raise errors.unknown_message()
        return record

    def find_message(self, message_id: int) -> MessageRecord | None:
        return self._messages_by_id.get(message_id)

    def interaction_by_id(self, interaction_id: int) -> InteractionRecord | None:
        return self._interactions_by_id.get(interaction_id)

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return self._interactions_by_token.get(token)

    def add_interaction(self, record: InteractionRecord) -> None:
        self.interactions.append(record)
        self._interactions_by_id[record.id] = record
        self._interactions_by_token[record.token] = record

    # -- building messages --------------------------------------------------------------

    def new_message(
        self,
        body: JSON,
        *,
        channel: ChannelSpec,
        author: UserSpec,
        files: list[UploadedFile] | None = None,
        ephemeral_to: UserSpec | None = None,
        interaction_id: int | None = None,
        extra_flags: int = 0,
    ) -> MessageRecord:
        """A message record from a send body (already validated against Discord limits)."""
        reference_id = _reference_id(body)
        referenced = self.find_message(reference_id) if reference_id is not None else None
        content = str(body.get("content") or "")
        record = MessageRecord(
            id=self.world.ids.next(),
            channel=channel,
            author=author,
            content=content,
            embeds=[Embed.from_payload(e) for e in body.get("embeds") or []],
            components=list(body.get("components") or []),
            attachments=[self._attachment(f) for f in files or []],
            flags=(int(body.get("flags") or 0) & _SETTABLE_FLAGS) | extra_flags,
            allowed_mentions=body.get("allowed_mentions"),
            reference_id=reference_id,
            interaction_id=interaction_id,
            ephemeral_to=ephemeral_to,
            nonce=body.get("nonce"),
            tts=bool(body.get("tts", False)),
        )
        record.pings = compute_pings(
            content,
            record.allowed_mentions,
            replied_user_id=referenced.author.id if referenced is not None else None,
        )
        return record

    def apply_edit(self, record: MessageRecord, body: JSON, files: list[UploadedFile]) -> None:
        """Apply a PATCH body: only the keys present change; the old version goes to history."""
        record.history.append(record.snapshot())
        if "content" in body:
            record.content = str(body["content"] or "")
        if "embeds" in body:
            record.embeds = [Embed.from_payload(e) for e in body["embeds"] or []]
        if "components" in body:
            record.components = list(body["components"] or [])
        if "attachments" in body:
            keep = {int(a["id"]) for a in body["attachments"] or [] if _is_snowflake(a.get("id"))}
            record.attachments = [a for a in record.attachments if a.id in keep]
        record.attachments += [self._attachment(f) for f in files]
        if "allowed_mentions" in body:
            record.allowed_mentions = body["allowed_mentions"]
        if "flags" in body and body["flags"] is not None:
            # Only "suppress embeds" can be toggled on an existing message.
            record.flags = (record.flags & ~(1 << 2)) | (int(body["flags"]) & (1 << 2))
        record.pings = compute_pings(record.content, record.allowed_mentions)
        record.edited_at = datetime.now(UTC)

    def _attachment(self, upload: UploadedFile) -> Attachment:
        return Attachment(
            self.world.ids.next(),
            upload.filename,
            len(upload.data),
            upload.content_type,
            upload.data,
        )

    # -- publishing ---------------------------------------------------------------------

    async def publish_create(self, record: MessageRecord, *, echo: bool = True) -> None:
        record.changed_monotonic = time.monotonic()
        self.all_messages.append(record)
        self._messages_by_id[record.id] = record
        self._emit("create", record)
        if echo and self._should_echo(record):
            await self.gateway.dispatch("MESSAGE_CREATE", self.payload(record))

    async def publish_edit(self, record: MessageRecord, *, echo: bool = True) -> None:
        record.changed_monotonic = time.monotonic()
        self._emit("edit", record)
        if echo and self._should_echo(record):
            await self.gateway.dispatch("MESSAGE_UPDATE", self.payload(record))

    async def publish_delete(self, record: MessageRecord) -> None:
        record.deleted = True
        self._emit("delete", record)
        if not record.ephemeral:
            data: JSON = {"id": str(record.id), "channel_id": str(record.channel.id)}
            if record.guild_id is not None:
                data["guild_id"] = str(record.guild_id)
            await self.gateway.dispatch("MESSAGE_DELETE", data)

    def payload(self, record: MessageRecord, *, content_visible: bool = True) -> JSON:
        referenced = (
            self.find_message(record.reference_id) if record.reference_id is not None else None
        )
        return message_payload(
            record, self.world, content_visible=content_visible, referenced=referenced
        )

    def _should_echo(self, record: MessageRecord) -> bool:
        # Discord echoes the bot's own (non-ephemeral) messages over the gateway too.
        return (
            self.echo_bot_messages
            and record.author.id == self.world.bot.id
            and not record.ephemeral
            and self.gateway.identified.is_set()
        )

    # -- output events and waiting ------------------------------------------------------

    def _emit(self, kind: OutputKind, record: MessageRecord) -> None:
        event = OutputEvent(kind, record)
        self.events.append(event)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for listener in list(self._listeners):
            if record.author.bot or listener.include_user_messages:
                self._call_listener(listener.callback, event)

    def _call_listener(self, callback: OutputCallback, event: OutputEvent) -> None:
        try:
            result = callback(event)
        except Exception:
            log.exception("local discord: output listener failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._listener_tasks.add(task)
            task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Future[None]) -> None:
        self._listener_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("local discord: output listener failed", exc_info=task.exception())

    def add_listener(self, callback: OutputCallback, *, include_user_messages: bool) -> None:
        self._listeners.append(_Listener(callback, include_user_messages))

    def remove_listener(self, callback: OutputCallback) -> None:
        self._listeners = [entry for entry in self._listeners if entry.callback is not callback]

    async def next_event(self) -> None:
        """Resolve when the next output event is emitted."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


def _reference_id(body: JSON) -> int | None:
    ref = body.get("message_reference")
    if isinstance(ref, dict) and _is_snowflake(ref.get("message_id")):
        return int(ref["message_id"])
    return None


def _is_snowflake(value: Any) -> bool:
    return isinstance(value, int | str) and str(value).isdigit() and int(value) > 10_000
