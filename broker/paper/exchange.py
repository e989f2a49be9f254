"""`PaperExchange`: a local, Tastytrade-compatible exchange (aiohttp HTTP, the account
streamer at `/streamer` and the DXLink quote feed at `/dxlink`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl

from aiohttp import web

from broker.paper import calendar
from broker.paper.admin import Admin
from broker.paper.auth import OAuthError, TokenStore
from broker.paper.clock import SimClock
from broker.paper.config import PaperConfig
from broker.paper.dxlink import DXLinkHub
from broker.paper.engine import Engine, NotFoundError
from broker.paper.faults import Faults, error_body
from broker.paper.market import Market
from broker.paper.orders import Order, OrderStateError, PreflightError
from broker.paper.payloads import JsonDict, dumps
from broker.paper.queries import BadQueryError, Query
from broker.paper.routes import Call, HttpError, Routes
from broker.paper.seeding import SeedSummary, seed_history
from broker.paper.streamer import StreamerHub
from broker.paper.universe import Universe, build_universe
from broker.paper.views import PreEncoded

log = logging.getLogger(__name__)

#: Websocket endpoints: logged in `requests`, not reported to `on_served`.
WEBSOCKET_PATHS = frozenset({"/streamer", "/dxlink"})


class PaperExchange:
    """Start with `async with PaperExchange(PaperConfig(...)) as ex` (or start()/stop())."""

    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config or PaperConfig()
        self.clock = SimClock(self.config.start_time, real_time=self.config.real_time)
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        #: Called once per API request served (not the websockets): method, path with query,
        #: and when (time.monotonic()) the handler got it and had its answer ready.
        self.on_served: Callable[[str, str, float, float], None] | None = None
        self.tokens = TokenStore(
            self.clock,
            self.config.token_ttl,
            accept_any=self.config.accept_any_credentials,
            provider_secret=self.config.provider_secret,
            refresh_tokens=self.config.refresh_tokens,
        )
        self._universe: Universe | None = None
        self._market: Market | None = None
        self._engine: Engine | None = None
        self._hub: StreamerHub | None = None
        self._dxlink: DXLinkHub | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._port = 0
        self._routes = Routes(self)
        self._admin = Admin(self)

    def __repr__(self) -> str:
        return f"PaperExchange(api_url={self.api_url!r}, seed={self.config.seed})"

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the exchange is already running")
        today = calendar.ny_date(self.clock.now())
        self._universe = await asyncio.to_thread(build_universe, today)
        self._market = Market(
            self._universe,
            self.clock,
            self.config.market,
            self.config.seed,
            fills=dataclasses.replace(self.config.fills),
        )
        self._hub = StreamerHub(
            self.clock, self.tokens.is_valid, lambda n: n in self.engine.accounts, self.faults
        )
        self._dxlink = DXLinkHub(self.clock, self._market, self._universe)
        self._engine = Engine(self.config, self._universe, self._market, self.clock, self._hub)
        self._market.sync = self._engine.catch_up
        self._market.add_listener(self._dxlink.on_market_change)
        self.clock.add_listener(self._engine.catch_up)
        self._engine.open_account(
            self.config.account_number, self.config.cash_account, self.config.starting_cash
        )
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1]
        if self.config.real_time:
            self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._engine is not None:
            self._engine.close()
        if self._hub is not None:
            await self._hub.close_all(1001, "exchange shutting down")
        if self._dxlink is not None:
            await self._dxlink.close_all(1001, "exchange shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.market.fills.evaluation_interval)
            try:
                self.engine.catch_up()
            except Exception:  # keep the exchange alive; the error is a bug to look at
                log.exception("paper exchange: evaluation failed")

    # -------------------------------------------------------------- handle
    @property
    def port(self) -> int:
        return self._port

    @property
    def api_url(self) -> str:
        return f"http://{self.config.host}:{self._port}"

    @property
    def streamer_url(self) -> str:
        return f"ws://{self.config.host}:{self._port}/streamer"

    @property
    def dxlink_url(self) -> str:
        """The DXLink websocket that `/api-quote-tokens` names."""
        return f"ws://{self.config.host}:{self._port}/dxlink"

    @property
    def account_number(self) -> str:
        return self.config.account_number

    @property
    def universe(self) -> Universe:
        if self._universe is None:
            raise RuntimeError("the exchange is not started")
        return self._universe

    @property
    def market(self) -> Market:
        if self._market is None:
            raise RuntimeError("the exchange is not started")
        return self._market

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the exchange is not started")
        return self._engine

    @property
    def hub(self) -> StreamerHub:
        if self._hub is None:
            raise RuntimeError("the exchange is not started")
        return self._hub

    @property
    def dxlink(self) -> DXLinkHub:
        """The DXLink quote feed: `freeze()`/`unfreeze()`, `connection_count`,
        `subscriptions()`, `keepalive_interval`, `quote_token_ttl`."""
        if self._dxlink is None:
            raise RuntimeError("the exchange is not started")
        return self._dxlink

    @property
    def oauth_grants(self) -> int:
        return self.tokens.grants

    def revoke_refresh_token(self, token: str) -> None:
        self.tokens.revoke(token)

    def close_streamers(self, code: int = 1011) -> asyncio.Task[None]:
        """Close every account-streamer and DXLink websocket with `code` (await the result
        to wait for it)."""
        return asyncio.ensure_future(self._close_streamers(code))

    async def _close_streamers(self, code: int) -> None:
        await self.hub.close_all(code)
        await self.dxlink.close_all(code)

    def orders(self, account: str | None = None) -> list[Order]:
        """The exchange's orders of `account` (default account), oldest first."""
        self.engine.catch_up()
        return self.engine.orders_of(account or self.account_number)

    def open_account(
        self, number: str, *, cash_account: bool = False, cash: Decimal = Decimal("100000")
    ) -> None:
        """Add another funded account for the same customer."""
        if number in self.engine.accounts:
            raise ValueError(f"account {number} already exists")
        self.engine.open_account(number, cash_account, cash)

    def seed_history(
        self,
        account: str | None = None,
        *,
        transactions: int = 0,
        orders: int = 0,
        positions: int = 0,
        days: int = 365,
    ) -> SeedSummary:
        """Fabricate realistic history (fast enough for 100k transactions)."""
        return seed_history(
            self.engine,
            account or self.account_number,
            transactions=transactions,
            orders=orders,
            positions=positions,
            days=days,
            seed=self.config.seed,
        )

    # ------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path
        path = raw_path.split("?", 1)[0]
        method = request.method
        if path.startswith("/_admin/"):
            return await self._admin.dispatch(request, path)
        self.requests.append((method, raw_path))
        if path in WEBSOCKET_PATHS and method == "GET":
            return await self._answer(request, method, path)
        started = time.monotonic()
        response = await self._answer(request, method, path)
        if self.on_served is not None:
            self.on_served(method, raw_path, started, time.monotonic())
        return response

    async def _answer(self, request: web.Request, method: str, path: str) -> web.StreamResponse:
        delay = self.faults.delay_for(method, path)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self.faults.take_failure(method, path)
        if failure is not None:
            if isinstance(failure.body, str):
                return web.Response(
                    status=failure.status, text=failure.body, content_type="text/html"
                )
            return _json(failure.status, failure.body)
        if path == "/streamer" and method == "GET":
            return await self.hub.handle(request)
        if path == "/dxlink" and method == "GET":
            return await self.dxlink.handle(request)
        status, body = await self._serve(request, method, path)
        if self.faults.take_drop(method, path):
            # The work is done; the client never hears about it.
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=204)
        return _json(status, body)

    async def _serve(
        self, request: web.Request, method: str, path: str
    ) -> tuple[int, JsonDict | PreEncoded]:
        try:
            if path == "/oauth/token" and method == "POST":
                return await self._oauth(request)
            if not self._authorized(request):
                return 401, error_body(401, "unauthorized", "Token is invalid or has expired.")
            resolved = self._routes.resolve(method, path)
            if resolved is None:
                return 404, error_body(404, "not_found", f"No route for {method} {path}.")
            handler, params = resolved
            self.engine.catch_up()
            query = request.rel_url.raw_query_string
            return await handler(Call(request, params, Query(query)))
        except HttpError as error:
            return error.status, error.body
        except PreflightError as error:
            errors = [{"code": c, "message": m} for c, m in error.errors]
            return 422, {
                "error": {
                    "code": "preflight_check_failure",
                    "message": "One or more preflight checks failed",
                    "errors": errors,
                }
            }
        except OrderStateError as error:
            return 422, error_body(422, error.code, error.message)
        except NotFoundError as error:
            return 404, error_body(404, "not_found", str(error))
        except BadQueryError as error:
            return 400, error_body(400, "invalid_parameter", str(error))
        except OAuthError as error:
            return error.status, error.body
        except Exception:
            # A bug in the exchange: answer like the real API's 500 (and keep serving).
            log.exception("paper exchange: %s %s failed", method, path)
            return 500, error_body(500)

    async def _oauth(self, request: web.Request) -> tuple[int, JsonDict]:
        text = await request.text()
        body: object
        try:
            body = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = dict(parse_qsl(text))
        has_auth = "Authorization" in request.headers
        return 200, self.tokens.grant(body, has_authorization_header=has_auth)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme == "Bearer" and bool(token) and self.tokens.is_valid(token)


def _json(status: int, body: object) -> web.Response:
    text = body.text if isinstance(body, PreEncoded) else dumps(body)
    return web.Response(status=status, text=text, content_type="application/json")
