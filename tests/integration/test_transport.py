"""Why the SDK's REST client does not use aiohttp (task L3), pinned against real sockets.

aiohttp's client is ~0.7 ms faster per loopback request, but two of its behaviours break
guarantees the session relies on; these tests pin them down, so anyone re-trying an
aiohttp transport starts from the facts:

* it silently resends an idempotent request (PUT = replace, DELETE = cancel) once when a
  kept-alive connection drops after the exchange processed it;
* it can reuse a pooled connection the server already closed (it only checks whether its
  protocol has seen the EOF yet), failing the next request as "possibly sent", where httpx2
  (httpcore2 polls the socket) opens a new connection. That one depends on event-loop
  timing, so only httpx2's side of it is pinned here.

The REST client now runs on `broker.session.transport.LeanTransport` (asyncio + h11, no
resend, the same checks before reusing a connection); `test_lean_transport.py` pins it,
scenario by scenario against httpx2's own transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import httpx2
import pytest

from broker.paper import PaperConfig, PaperExchange

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def exchange() -> AsyncIterator[PaperExchange]:
    async with PaperExchange(PaperConfig(seed=7)) as ex:
        yield ex


def _served(ex: PaperExchange, method: str, path: str) -> int:
    return sum(1 for m, raw in ex.requests if m == method and raw.split("?")[0] == path)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback TCP server running `handler` per connection; yields its base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request (head and Content-Length body); returns the head."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    return head


def _one_answer_per_connection(heads: list[bytes]) -> Handler:
    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then close, without announcing Connection: close

    return one_shot


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_aiohttp_resends_a_dropped_idempotent_request(
    exchange: PaperExchange, method: str
) -> None:
    path = f"/accounts/{exchange.account_number}/orders/1"
    async with aiohttp.ClientSession() as session:
        async with session.get(exchange.api_url + "/customers/me") as warm:
            await warm.read()  # leaves a kept-alive connection in the pool
        exchange.faults.drop_after_accept(method=method, path_glob=path, times=1)
        async with session.request(method, exchange.api_url + path, data=b"{}") as answer:
            await answer.read()
    assert _served(exchange, method, path) == 2  # processed twice, reported once


async def test_aiohttp_with_retry_connection_off_sends_a_dropped_put_once(
    exchange: PaperExchange,
) -> None:
    path = f"/accounts/{exchange.account_number}/orders/1"
    async with aiohttp.ClientSession() as session:
        assert isinstance(session._retry_connection, bool)  # the private switch exists
        session._retry_connection = False
        async with session.get(exchange.api_url + "/customers/me") as warm:
            await warm.read()
        exchange.faults.drop_after_accept(method="PUT", path_glob=path, times=1)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.put(exchange.api_url + path, data=b"{}")
    assert _served(exchange, "PUT", path) == 1


async def test_httpx2_reconnects_when_the_server_closed_the_pooled_connection() -> None:
    heads: list[bytes] = []
    async with (
        raw_server(_one_answer_per_connection(heads)) as base,
        httpx2.AsyncClient() as client,
    ):
        for method in ("GET", "POST", "PUT", "DELETE"):
            response = await client.request(method, base + "/x", content=b"{}")
            assert response.status_code == 200
    assert len(heads) == 4
