"""The gateway websocket: HELLO, IDENTIFY/RESUME, READY, GUILD_CREATE and dispatches.

Frames are always TEXT, so discord.py never engages its zlib/zstd decompressor. Dispatched
events are kept with their sequence numbers so a RESUME replays what the bot missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from bot.localdiscord.payloads import guild_payload, member_payload, user_payload
from bot.localdiscord.records import JSON
from bot.localdiscord.world import World

log = logging.getLogger(__name__)

INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_DISALLOWED_INTENTS = 4014


class Gateway:
    """Serves the bot's gateway connection(s) and dispatches events to the live one."""

    def __init__(
        self,
        world: World,
        *,
        url: Callable[[], str],
        token_ok: Callable[[str], bool],
        allowed_privileged_intents: int,
        heartbeat_interval_ms: int,
    ) -> None:
        self._world = world
        self._url = url
        self._token_ok = token_ok
        self._allowed_privileged = allowed_privileged_intents
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._ws: web.WebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._seq = 0
        self._backlog: list[tuple[int, str, JSON]] = []
        self.session_id: str | None = None
        self.intents: int | None = None
        self.identified = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0
        self.resumes = 0
        self.received: list[JSON] = []  # every client frame (token redacted), for tests

    @property
    def has_members_intent(self) -> bool:
        return bool((self.intents or 0) & INTENT_GUILD_MEMBERS)

    @property
    def has_message_content_intent(self) -> bool:
        return bool((self.intents or 0) & INTENT_MESSAGE_CONTENT)

    # -- server side --------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        await ws.send_str(
            json.dumps({"op": OP_HELLO, "d": {"heartbeat_interval": self._heartbeat_interval_ms}})
        )
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.received.append(_redacted(frame))
                await self._on_frame(ws, frame)
        finally:
            if self._ws is ws:
                self._ws = None
                self.connected.clear()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, frame: JSON) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            await ws.send_str(json.dumps({"op": OP_HEARTBEAT_ACK}))
        elif op == OP_IDENTIFY:
            await self._identify(ws, data or {})
        elif op == OP_RESUME:
            await self._resume(ws, data or {})
        elif op == OP_REQUEST_GUILD_MEMBERS:
            await self._send_member_chunks(data or {})
        elif op in (OP_PRESENCE_UPDATE, OP_VOICE_STATE_UPDATE):
            pass  # accepted and ignored, as Discord does for a bot without voice
        else:
            log.warning("local discord: unexpected gateway op %s", op)

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> None:
        if not self._token_ok(str(data.get("token", ""))):
            await ws.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self._allowed_privileged:
            await ws.close(code=CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        self.intents = intents
        self.session_id = secrets.token_hex(16)
        self._seq = 0
        self._backlog.clear()
        self._ws = ws
        ready = {
            "v": 10,
            "user": user_payload(self._world.bot),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self._world.guilds],
            "session_id": self.session_id,
            "resume_gateway_url": self._url(),
            "application": {"id": str(self._world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "shard": [0, 1],
        }
        await self._dispatch_on(ws, "READY", ready)
        for guild in self._world.guilds:
            payload = guild_payload(guild, self._world, with_members=self.has_members_intent)
            await self._dispatch_on(ws, "GUILD_CREATE", payload)
        self.connected.set()
        self.identified.set()

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> None:
        if data.get("session_id") != self.session_id or not self._token_ok(
            str(data.get("token", ""))
        ):
            await ws.send_str(json.dumps({"op": OP_INVALID_SESSION, "d": False}))
            return
        self._ws = ws
        self.resumes += 1
        last_seen = int(data.get("seq") or 0)
        async with self._send_lock:
            for seq, event, payload in self._backlog:
                if seq > last_seen:
                    await ws.send_str(json.dumps({"op": 0, "d": payload, "s": seq, "t": event}))
        await self._dispatch_on(ws, "RESUMED", {})
        self.connected.set()

    async def _send_member_chunks(self, data: JSON) -> None:
        guild = self._world.guild(int(data["guild_id"]))
        query = str(data.get("query") or "").casefold()
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = [
            m
            for m in guild.members
            if (not wanted or m.user.id in wanted) and m.user.name.casefold().startswith(query)
        ]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [member_payload(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatching --------------------------------------------------------------------

    async def _dispatch_on(self, ws: web.WebSocketResponse, event: str, data: Any) -> float:
        async with self._send_lock:
            self._seq += 1
            self._backlog.append((self._seq, event, data))
            await ws.send_str(json.dumps({"op": 0, "d": data, "s": self._seq, "t": event}))
            return time.monotonic()

    async def dispatch(self, event: str, data: JSON) -> float | None:
        """Send a DISPATCH to the bot; kept for replay if the bot is between connections.

        Returns when (``time.monotonic()``) the frame was handed to the bot's connection,
        or None when it was kept for replay.
        """
        if not self.identified.is_set():
            raise RuntimeError("the bot has not identified on the local gateway yet")
        ws = self._ws
        if ws is None or ws.closed:
            async with self._send_lock:
                self._seq += 1
                self._backlog.append((self._seq, event, data))
            return None
        return await self._dispatch_on(ws, event, data)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py reconnects to ``resume_gateway_url`` and resumes."""
        ws = self._ws
        if ws is not None and not ws.closed:
            self.connected.clear()
            await ws.send_str(json.dumps({"op": OP_RECONNECT, "d": None}))

    async def close(self, code: int = 1001) -> None:
        ws, self._ws = self._ws, None
        self.connected.clear()
        if ws is not None and not ws.closed:
            await ws.close(code=code)


def _redacted(frame: JSON) -> JSON:
    """The frame without the bot token (IDENTIFY and RESUME carry it)."""
    data = frame.get("d")
    if isinstance(data, dict) and "token" in data:
        return {**frame, "d": {**data, "token": "***"}}
    return frame
