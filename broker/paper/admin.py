"""`/_admin/*`: the test/benchmark handle over HTTP (no bearer token needed).

POST /_admin/faults          {"kind": "latency", "seconds", "method"?, "path"?}
                             {"kind": "fail", "method", "path", "status", "times"?, "code"?,
                              "message"?, "body"?}
                             {"kind": "drop_after_accept", "method"?, "path"?, "times"?}
                             {"kind": "streamer_error", "message"?, "times"?}
                             {"kind": "clear"}
GET  /_admin/clock           -> {"now"}
POST /_admin/clock/advance   {"seconds"} -> {"now"}
POST /_admin/market/step     {"seconds"} -> {"now"}
GET  /_admin/quote?symbol=S  -> {"symbol","bid","ask","mid","pinned"}
POST /_admin/quote           {"symbol","bid","ask"} pins a quote
DELETE /_admin/quote?symbol= unpins (all when no symbol)
POST /_admin/revoke          {"refresh_token"}
POST /_admin/streamers/close {"code"?}   (account streamer and DXLink sockets)
POST /_admin/dxlink/freeze   stalls every DXLink connection; /_admin/dxlink/unfreeze resumes
GET  /_admin/requests        -> {"requests": [[method, raw_path], ...]}; DELETE clears
GET  /_admin/orders?account= -> {"items": [order, ...]}
POST /_admin/seed            {"account"?, "transactions"?, "orders"?, "positions"?, "days"?}
GET  /_admin/stats           -> {"oauth-grants","requests","streamers","dxlink","now"}
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from aiohttp import web

from broker.paper.market import UnknownSymbolError
from broker.paper.payloads import JsonDict, dumps

if TYPE_CHECKING:
    from broker.paper.exchange import PaperExchange


class AdminError(Exception):
    pass


def _number(body: JsonDict, key: str, default: float | None = None) -> float:
    raw = body.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise AdminError(f"{key} must be a number")
    try:
        return float(raw)
    except ValueError as error:
        raise AdminError(f"{key} must be a number") from error


def _int(body: JsonDict, key: str, default: int) -> int:
    value = _number(body, key, default)
    if value != int(value) or value < 0:
        raise AdminError(f"{key} must be a non-negative integer")
    return int(value)


class Admin:
    def __init__(self, exchange: PaperExchange) -> None:
        self.ex = exchange

    async def dispatch(self, request: web.Request, path: str) -> web.Response:
        try:
            body = await self._body(request)
            payload = self._route(request.method, path, request, body)
            return web.Response(text=dumps(payload), content_type="application/json")
        except (AdminError, ValueError, UnknownSymbolError) as error:
            message = (
                str(error)
                if not isinstance(error, UnknownSymbolError)
                else (f"unknown symbol {error.args[0]!r}")
            )
            return web.Response(
                status=400,
                text=dumps({"error": {"code": "invalid_parameter", "message": message}}),
                content_type="application/json",
            )

    async def _body(self, request: web.Request) -> JsonDict:
        text = await request.text()
        if not text:
            return {}
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise AdminError("the body must be JSON") from error
        if not isinstance(body, dict):
            raise AdminError("the body must be a JSON object")
        return body

    def _route(self, method: str, path: str, request: web.Request, body: JsonDict) -> JsonDict:
        ex = self.ex
        query = request.rel_url.query
        if path == "/_admin/faults" and method == "POST":
            return self._faults(body)
        if path == "/_admin/clock" and method == "GET":
            return {"now": ex.clock.now()}
        if path == "/_admin/clock/advance" and method == "POST":
            return {"now": ex.clock.advance(_number(body, "seconds"))}
        if path == "/_admin/market/step" and method == "POST":
            ex.market.step(_number(body, "seconds"))
            return {"now": ex.clock.now()}
        if path == "/_admin/quote":
            if method == "GET":
                quote = ex.market.quote(str(query.get("symbol", "")))
                return {
                    "symbol": quote.symbol,
                    "bid": quote.bid,
                    "ask": quote.ask,
                    "mid": quote.mid,
                    "pinned": quote.pinned,
                }
            if method == "POST":
                try:
                    bid, ask = Decimal(str(body["bid"])), Decimal(str(body["ask"]))
                except (KeyError, InvalidOperation) as error:
                    raise AdminError("bid and ask are required numbers") from error
                quote = ex.market.set_quote(str(body.get("symbol", "")), bid, ask)
                return {"symbol": quote.symbol, "bid": quote.bid, "ask": quote.ask}
            if method == "DELETE":
                ex.market.clear_quote(query.get("symbol") or body.get("symbol"))
                return {"ok": True}
        if path == "/_admin/revoke" and method == "POST":
            token = body.get("refresh_token")
            if not isinstance(token, str) or not token:
                raise AdminError("refresh_token is required")
            ex.revoke_refresh_token(token)
            return {"ok": True}
        if path == "/_admin/streamers/close" and method == "POST":
            ex.close_streamers(_int(body, "code", 1011))
            return {"ok": True}
        if path == "/_admin/dxlink/freeze" and method == "POST":
            ex.dxlink.freeze()
            return {"ok": True}
        if path == "/_admin/dxlink/unfreeze" and method == "POST":
            ex.dxlink.unfreeze()
            return {"ok": True}
        if path == "/_admin/requests":
            if method == "DELETE":
                ex.requests.clear()
                return {"ok": True}
            return {"requests": [list(r) for r in ex.requests]}
        if path == "/_admin/orders" and method == "GET":
            account = query.get("account") or ex.account_number
            if account not in ex.engine.accounts:
                raise AdminError(f"unknown account {account}")
            return {"items": [o.to_json() for o in ex.orders(account)]}
        if path == "/_admin/seed" and method == "POST":
            account = body.get("account") or ex.account_number
            if not isinstance(account, str) or account not in ex.engine.accounts:
                raise AdminError(f"unknown account {account}")
            summary = ex.seed_history(
                account,
                transactions=_int(body, "transactions", 0),
                orders=_int(body, "orders", 0),
                positions=_int(body, "positions", 0),
                days=_int(body, "days", 365),
            )
            return {
                "transactions": summary.transactions,
                "orders": summary.orders,
                "positions": summary.positions,
            }
        if path == "/_admin/stats" and method == "GET":
            return {
                "oauth-grants": ex.oauth_grants,
                "requests": len(ex.requests),
                "streamers": ex.hub.connection_count,
                "dxlink": ex.dxlink.connection_count,
                "now": ex.clock.now(),
            }
        raise AdminError(f"no admin route {method} {path}")

    def _faults(self, body: JsonDict) -> JsonDict:
        faults = self.ex.faults
        kind = body.get("kind")
        method = body.get("method")
        if method is not None and not isinstance(method, str):
            raise AdminError("method must be a string")
        if kind == "latency":
            faults.latency(_number(body, "seconds"), method, str(body.get("path", "*")))
        elif kind == "fail":
            body_text = body.get("body")
            faults.fail(
                method,
                str(body.get("path", "*")),
                _int(body, "status", 500),
                _int(body, "times", 1),
                code=body.get("code") if isinstance(body.get("code"), str) else None,
                message=body.get("message") if isinstance(body.get("message"), str) else None,
                body=body_text if isinstance(body_text, str) else None,
            )
        elif kind == "drop_after_accept":
            faults.drop_after_accept(
                method or "POST",
                str(body.get("path", "/accounts/*/orders")),
                _int(body, "times", 1),
            )
        elif kind == "streamer_error":
            faults.streamer_error(str(body.get("message", "failed")), _int(body, "times", 1))
        elif kind == "clear":
            faults.clear()
        else:
            raise AdminError(
                "kind must be latency, fail, drop_after_accept, streamer_error or clear"
            )
        return {"ok": True}
