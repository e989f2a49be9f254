"""A lean asyncio HTTP/1.1 transport for the SDK's REST client.

httpx2's default transport (httpcore2 over anyio) spends about half of each request's
client CPU on pool bookkeeping, a cancel scope per read and write, and two socket writes
per POST. This one does only what the REST client needs: h11 for the framing, a
keep-alive pool per origin, one write per request, the whole reply read into memory.
httpx2 still does everything above the transport (headers, auth, event hooks, redirects,
decoding, cookies), and failures are raised as the httpx2 exceptions httpcore2 raises in
the same situation, because `broker.session.errors.classify` decides from the type
whether an order may have reached the exchange:

* nothing is ever sent twice: no retry, no replay on another connection, ever;
* an idle pooled connection is reused only if the peer neither closed it nor sent
  anything while it was idle (the protocol callbacks say so, and a zero-timeout poll
  of the socket catches what the event loop has not dispatched yet, as httpcore2 does);
* before a single byte of the request was written a failure is `ConnectError`,
  `ConnectTimeout`, `PoolTimeout` or `LocalProtocolError` ("not sent"); once written
  it is `WriteTimeout`, `ReadError`, `ReadTimeout` or `RemoteProtocolError` ("may have
  reached"), also when the reply's status arrived and its body was cut short;
* a connection goes back to the pool only when h11 has both sides DONE and nothing
  is left unread or unsent; after any failure or cancellation it is closed.

`install_lean_transport` puts it under one `httpx2.AsyncClient` (the SDK's REST client);
the SDK's streamers build their own clients and keep httpx2's transport (websockets need
httpcore2's network stream).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import h11
import httpcore2
import httpx2

__all__ = [
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS_PER_ORIGIN",
    "LeanTransport",
    "install_lean_transport",
]

DEFAULT_MAX_CONNECTIONS_PER_ORIGIN = 10
#: Seconds an idle connection is kept (httpx2's default `Limits.keepalive_expiry`).
DEFAULT_KEEPALIVE_EXPIRY = 5.0
# As httpcore2: the most bytes of an unfinished response head h11 will buffer.
_MAX_INCOMPLETE_EVENT_SIZE = 100 * 1024
# As anyio's connect_tcp (RFC 8305); only used when a host has several addresses.
_HAPPY_EYEBALLS_DELAY = 0.25
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

Origin = tuple[bytes, bytes, int]


def _socket_readable(fd: int) -> bool:
    """Whether a recv() on `fd` would return at once (data or EOF); as httpcore2's check."""
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _BufferedBody(httpx2.AsyncByteStream):
    """The reply body, already read. A stream (not ``content=``) so httpx2 times and
    closes the response exactly as it does for its own transport (`response.elapsed`)."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, used by one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.busy = True  # a request owns it (new connections are opened for one)
        self.idle_since = 0.0
        self._h11 = h11.Connection(
            our_role=h11.CLIENT, max_incomplete_event_size=_MAX_INCOMPLETE_EVENT_SIZE
        )
        self._fd = -1
        self._incoming = bytearray()
        self._eof = False  # the peer finished sending (FIN, TLS close or a clean loss)
        self._lost = False
        self._lost_error: Exception | None = None
        self._spoiled = False  # the peer sent bytes while no request was waiting for them
        self._eof_fed = False
        self._write_paused = False
        self._wakeup: asyncio.Future[bool] | None = None

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Paused while anything is unsent, so "written" means handed to the kernel, as
        # httpcore2's write (a write timeout is then measured the same way).
        transport.set_write_buffer_limits(high=0)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Nothing may arrive on an idle HTTP/1.1 connection: never reuse it.
            self._spoiled = True
            self.abort()
            return
        self._incoming += data
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._lost_error = exc
        if exc is None:
            self._eof = True
        self._write_paused = False
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # --------------------------------------------------------------------- pooling

    def reusable(self, now: float, keepalive_expiry: float | None) -> bool:
        """Whether an idle connection may carry the next request (checked just before)."""
        transport = self.transport
        if (
            self.busy
            or self._spoiled
            or self._eof
            or self._lost
            or transport is None
            or transport.is_closing()
        ):
            return False
        if keepalive_expiry is not None and now - self.idle_since > keepalive_expiry:
            return False
        # The peer's FIN (or stray bytes) may sit in the socket before the event loop
        # has dispatched it to this protocol; httpcore2 polls for the same reason.
        return not _socket_readable(self._fd)

    @property
    def dead(self) -> bool:
        return self._spoiled or self._eof or self._lost

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()  # never keep sending a request we gave up on
        else:
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --------------------------------------------------------------------- request

    async def send(
        self, request: httpx2.Request, body: bytes, timeouts: Mapping[str, float | None]
    ) -> tuple[httpx2.Response, bool]:
        """Send the request in one write and read the whole reply.

        Returns the response and whether the connection may be reused. Raises httpx2
        exceptions; the caller closes the connection on any exception.
        """
        assert self.transport is not None
        state = self._h11
        try:
            parts = [
                state.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
            ]
            if body:
                parts.append(state.send(h11.Data(data=body)))
            parts.append(state.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise httpx2.LocalProtocolError(str(exc)) from exc
        if self.dead or self._incoming:
            # A new connection the server closed (or wrote on) before we wrote a byte.
            raise httpx2.ConnectError("The server ended the connection before the request.")
        self.transport.write(b"".join(part for part in parts if part))
        if self._write_paused:
            await self._drain(timeouts.get("write"))

        read_timeout = timeouts.get("read")
        while True:
            event = await self._next_event(read_timeout)
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                break  # an upgrade: the connection is not HTTP any more (closed below)
        head = event
        chunks: list[bytes] = []
        if isinstance(head, h11.Response):
            while True:
                part = await self._next_event(read_timeout)
                if isinstance(part, h11.Data):
                    chunks.append(bytes(part.data))
                else:  # EndOfMessage (h11 raises on a truncated body)
                    break
        response = httpx2.Response(
            status_code=head.status_code,
            headers=head.headers.raw_items(),
            stream=_BufferedBody(b"".join(chunks)),
            extensions={
                "http_version": b"HTTP/" + head.http_version,
                "reason_phrase": head.reason,
            },
            request=request,
        )
        return response, self._finish_cycle()

    async def _drain(self, seconds: float | None) -> None:
        """Wait until the kernel took the whole request (or the connection ended)."""
        deadline = None if seconds is None else self.loop.time() + seconds
        while self._write_paused and not self._lost:
            remaining = None if deadline is None else deadline - self.loop.time()
            if not await self._wait(remaining):
                raise httpx2.WriteTimeout("Timed out writing the request.")
        # A connection lost while writing is not reported here: like httpcore2, go on to
        # read whatever the server answered before it closed (else "disconnected").

    async def _next_event(self, seconds: float | None) -> Any:
        state = self._h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx2.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            if self._incoming:
                data = bytes(self._incoming)
                self._incoming.clear()
                state.receive_data(data)
            elif self._lost and not self._eof:
                raise httpx2.ReadError(str(self._lost_error))
            elif self._eof and not self._eof_fed:
                if state.their_state is h11.SEND_RESPONSE:
                    raise httpx2.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                self._eof_fed = True
                state.receive_data(b"")
            elif self._eof:  # pragma: no cover - h11 raises or ends the message on EOF
                raise httpx2.RemoteProtocolError("Server disconnected.")
            elif not await self._wait(seconds):
                raise httpx2.ReadTimeout("Timed out reading the response.")

    async def _wait(self, seconds: float | None) -> bool:
        """Wait for any protocol event; False when `seconds` passed first."""
        if seconds is not None and seconds <= 0:
            return False
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._wakeup = waiter
        timer = None if seconds is None else self.loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _finish_cycle(self) -> bool:
        state = self._h11
        transport = self.transport
        if (
            state.our_state is not h11.DONE
            or state.their_state is not h11.DONE
            or self._incoming
            or state.trailing_data[0]
            or self.dead
            or self._write_paused
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size()
        ):
            return False
        state.start_next_cycle()
        return True


class _OriginPool:
    """Keep-alive connections to one origin, at most `limit` open (idle or lent out)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, limit: int, keepalive_expiry: float | None
    ) -> None:
        self.loop = loop
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._lent = 0  # slots taken by requests (connections in use or being opened)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.connections: set[_Connection] = set()
        self.closed = False

    async def acquire(self, seconds: float | None) -> _Connection | None:
        """A reusable idle connection, or None: the caller may open a new one.

        Either way the caller holds a slot until `release()`.
        """
        deadline = None if seconds is None else self.loop.time() + seconds
        while True:
            if self.closed:
                raise RuntimeError("Cannot send a request, as the transport has been closed.")
            now = time.monotonic()
            while self._idle:
                connection = self._idle.pop()  # the most recently used first
                if connection.reusable(now, self._keepalive_expiry):
                    connection.busy = True
                    self._lent += 1
                    return connection
                self._discard(connection)
            if self._lent < self._limit:
                self._lent += 1
                return None
            await self._wait_for_slot(deadline)

    async def _wait_for_slot(self, deadline: float | None) -> None:
        remaining = None if deadline is None else deadline - self.loop.time()
        if remaining is not None and remaining <= 0:
            raise httpx2.PoolTimeout("Timed out waiting for a connection from the pool.")
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append(waiter)
        timer = None if remaining is None else self.loop.call_later(remaining, _expire_pool, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake_one()  # we were handed a slot we will not use: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def adopt(self, connection: _Connection) -> None:
        self.connections.add(connection)

    def release(self, connection: _Connection | None, *, reusable: bool) -> None:
        """Give the slot back; the connection returns to the pool or is closed."""
        self._lent -= 1
        if connection is not None:
            if reusable and not self.closed:
                connection.busy = False
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                self._discard(connection)
        self._prune()
        self._wake_one()

    def close(self) -> None:
        self.closed = True
        for connection in list(self.connections):
            self._discard(connection)
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it sees `closed` and raises

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self.connections.discard(connection)

    def _prune(self) -> None:
        if not any(connection.dead for connection in self._idle):
            return
        for connection in [c for c in self._idle if c.dead]:
            self._idle.remove(connection)
            self._discard(connection)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _expire_pool(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(
            httpx2.PoolTimeout("Timed out waiting for a connection from the pool.")
        )


class LeanTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with h11; see the module docstring for the guarantees.

    `ssl_context` verifies https servers (default: what httpx2 builds for
    ``verify=True``). At most `max_connections_per_origin` connections per
    (scheme, host, port); a request beyond that waits up to the pool timeout and then
    raises `httpx2.PoolTimeout`. Idle connections older than `keepalive_expiry`
    seconds are closed instead of reused.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
        keepalive_expiry: float | None = DEFAULT_KEEPALIVE_EXPIRY,
    ) -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self._ssl_context = ssl_context
        self._alpn_set = False
        self._limit = max_connections_per_origin
        self._keepalive_expiry = keepalive_expiry
        self._pools: dict[Origin, _OriginPool] = {}
        self._closed = False

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context https connections are verified with."""
        if self._ssl_context is None:
            self._ssl_context = httpx2.create_ssl_context()
        if not self._alpn_set:
            self._ssl_context.set_alpn_protocols(["http/1.1"])  # as httpcore2
            self._alpn_set = True
        return self._ssl_context

    def connection_count(self) -> int:
        """Open connections (idle or in use), over every origin."""
        return sum(len(pool.connections) for pool in self._pools.values())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the transport has been closed.")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            if not scheme:
                raise httpx2.UnsupportedProtocol(
                    "Request URL is missing an 'http://' or 'https://' protocol."
                )
            raise httpx2.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme.decode('ascii')}://'."
            )
        origin: Origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        pool = self._pool_for(origin)
        connection = await pool.acquire(timeouts.get("pool"))
        try:
            if connection is None:
                connection = await self._open(pool, origin, timeouts.get("connect"), request)
            response, reusable = await connection.send(request, body, timeouts)
        except BaseException:
            pool.release(connection, reusable=False)
            raise
        pool.release(connection, reusable=reusable)
        return response

    async def aclose(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            _close_pool(pool)

    def _pool_for(self, origin: Origin) -> _OriginPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(origin)
        if pool is None or pool.loop is not loop:
            if pool is not None:  # used from another (maybe finished) event loop before
                _close_pool(pool)
            pool = _OriginPool(loop, self._limit, self._keepalive_expiry)
            self._pools[origin] = pool
        return pool

    async def _open(
        self,
        pool: _OriginPool,
        origin: Origin,
        seconds: float | None,
        request: httpx2.Request,
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        tls = scheme == b"https"
        connection = _Connection(pool.loop)
        try:
            async with asyncio.timeout(seconds):
                await pool.loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=self.ssl_context if tls else None,
                    server_hostname=(request.extensions.get("sni_hostname") or host)
                    if tls
                    else None,
                    ssl_handshake_timeout=seconds if tls and seconds else None,
                    happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
                )
        except TimeoutError as exc:  # ours, or the OS's ETIMEDOUT (as httpcore2 maps it)
            raise httpx2.ConnectTimeout(str(exc) or "Timed out connecting.") from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS verification (ssl.SSLError)
            raise httpx2.ConnectError(str(exc)) from exc
        pool.adopt(connection)
        return connection


def _close_pool(pool: _OriginPool) -> None:
    if pool.loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is pool.loop:
        pool.close()
    else:
        pool.loop.call_soon_threadsafe(pool.close)


def install_lean_transport(
    client: httpx2.AsyncClient,
    *,
    max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
    keepalive_expiry: float | None = DEFAULT_KEEPALIVE_EXPIRY,
) -> None:
    """Make a `LeanTransport` the default transport of `client` (before its first request).

    It verifies https servers with the SSL context httpx2 built for this client (so
    ``verify=...`` given to the client still applies). URLs an environment proxy claims
    keep httpx2's proxy transport (`_mounts` are consulted before `_transport`). The
    replaced default transport, which has opened nothing yet, is dropped.

    Relies on httpx2/httpcore2 private names; raises `TypeError` if they changed.
    """
    replaced = getattr(client, "_transport", None)
    if not isinstance(replaced, httpx2.AsyncHTTPTransport):
        raise TypeError(
            "install_lean_transport expects the client's own default httpx2 transport, "
            f"found {type(replaced).__name__}"
        )
    pool = getattr(replaced, "_pool", None)
    if type(pool) is not httpcore2.AsyncConnectionPool:
        raise TypeError(f"unexpected httpx2 default transport internals: {type(pool).__name__}")
    ssl_context = getattr(pool, "_ssl_context", None)
    if not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError("cannot find the SSL context httpx2 built for this client")
    if not isinstance(getattr(client, "_mounts", None), dict):
        raise TypeError("httpx2.AsyncClient no longer keeps proxy mounts in _mounts")
    if pool.connections:
        raise RuntimeError("install_lean_transport must run before the client sends anything")
    client._transport = LeanTransport(
        ssl_context=ssl_context,
        max_connections_per_origin=max_connections_per_origin,
        keepalive_expiry=keepalive_expiry,
    )
