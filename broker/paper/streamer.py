"""Account streamer (the AlertStreamer's websocket).

Client messages: `{"auth-token","action","request-id","value"?}` with actions `connect`
(value = account numbers), `heartbeat`, `public-watchlists-subscribe`,
`quote-alerts-subscribe`. Acks: `{"status","action","web-socket-session-id","value"?,
"request-id"}` (never a `type` key). Notifications: `{"type","data","timestamp",
"ws-sequence"}` for Order, AccountBalance and CurrentPosition. TEXT frames only; the
websocket layer answers pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from broker.paper.clock import SimClock
from broker.paper.faults import Faults
from broker.paper.payloads import JsonDict, dumps

MAX_MESSAGE_BYTES = 64 * 1024
SUBSCRIPTIONS = frozenset({"public-watchlists-subscribe", "quote-alerts-subscribe"})


@dataclass(eq=False)
class _Connection:
    socket: web.WebSocketResponse
    session_id: str
    accounts: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    sequence: int = 0

    async def write_loop(self) -> None:
        while True:
            message = await self.queue.get()
            if self.socket.closed:
                return
            try:
                await self.socket.send_str(message)
            except ConnectionError:  # the client went away; the reader loop ends too
                return


class StreamerHub:
    """Websocket handler plus the exchange's notifier (`publish`)."""

    def __init__(
        self,
        clock: SimClock,
        token_is_valid: Callable[[str], bool],
        account_exists: Callable[[str], bool],
        faults: Faults,
    ) -> None:
        self._clock = clock
        self._token_is_valid = token_is_valid
        self._account_exists = account_exists
        self._faults = faults
        self._connections: set[_Connection] = set()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        connection = _Connection(socket, secrets.token_hex(4))
        self._connections.add(connection)
        writer = asyncio.create_task(connection.write_loop())
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self._on_text(connection, message.data)
                elif message.type == WSMsgType.BINARY:
                    self._ack_error(connection, None, None, "binary-frames-not-supported")
        finally:
            self._connections.discard(connection)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return socket

    def _on_text(self, connection: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            self._ack_error(connection, None, None, "invalid-json")
            return
        if not isinstance(message, dict):
            self._ack_error(connection, None, None, "invalid-message")
            return
        request_id = message.get("request-id")
        action = message.get("action")
        token = message.get("auth-token")
        if isinstance(token, str) and token.startswith("Bearer "):
            token = token[len("Bearer ") :]
        if not isinstance(action, str):
            self._ack_error(connection, action, request_id, "missing-action")
            return
        if not isinstance(token, str) or not self._token_is_valid(token):
            self._ack_error(connection, action, request_id, "invalid-auth-token")
            return
        injected = self._faults.take_streamer_error()
        if injected is not None:
            self._ack_error(connection, action, request_id, injected)
            return
        if action == "connect":
            value = message.get("value")
            accounts = [value] if isinstance(value, str) else value
            if (
                not isinstance(accounts, list)
                or not accounts
                or not all(isinstance(a, str) and self._account_exists(a) for a in accounts)
            ):
                self._ack_error(connection, action, request_id, "invalid-account-number")
                return
            connection.accounts.update(accounts)
            self._ack(connection, action, request_id, accounts)
        elif action == "heartbeat":
            self._ack(connection, action, request_id, None)
        elif action in SUBSCRIPTIONS:
            if not connection.accounts:
                self._ack_error(connection, action, request_id, "connect-not-completed")
                return
            self._ack(connection, action, request_id, None)
        else:
            self._ack_error(connection, action, request_id, "unknown-action")

    def _ack(self, connection: _Connection, action: str, request_id: object, value: object) -> None:
        ack: JsonDict = {
            "status": "ok",
            "action": action,
            "web-socket-session-id": connection.session_id,
        }
        if value is not None:
            ack["value"] = value
        if request_id is not None:
            ack["request-id"] = request_id
        connection.queue.put_nowait(dumps(ack))

    def _ack_error(
        self, connection: _Connection, action: object, request_id: object, message: str
    ) -> None:
        ack: JsonDict = {
            "status": "error",
            "action": action,
            "web-socket-session-id": connection.session_id,
            "message": message,
        }
        if request_id is not None:
            ack["request-id"] = request_id
        connection.queue.put_nowait(dumps(ack))

    def publish(self, account_number: str, message_type: str, data: JsonDict) -> None:
        """Queue a notification for every connection subscribed to the account."""
        targets = [c for c in self._connections if account_number in c.accounts]
        if not targets:
            return
        timestamp = int(self._clock.timestamp() * 1000)
        for connection in targets:
            connection.sequence += 1
            payload = {
                "type": message_type,
                "data": data,
                "timestamp": timestamp,
                "ws-sequence": connection.sequence,
            }
            connection.queue.put_nowait(dumps(payload))

    async def close_all(self, code: int = 1011, message: str = "closed by the exchange") -> None:
        connections = list(self._connections)
        for connection in connections:
            await connection.socket.close(code=code, message=message.encode())
