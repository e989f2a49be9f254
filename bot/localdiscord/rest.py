"""REST plumbing: route table, request parsing, auth, fault injection, logging, error shapes.

Every request under ``/api/v10`` goes through `RestApi.handle`: it is logged (`rest_log`),
may be answered by an injected fault (429 or an error), else routed; unknown routes are
recorded in `unhandled` and get Discord's 404.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from bot.localdiscord import errors
from bot.localdiscord.errors import DiscordApiError
from bot.localdiscord.records import RestCall
from bot.localdiscord.state import UploadedFile

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"

Reply = dict[str, Any] | list[Any] | None  # None answers 204 No Content


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    path: str  # relative to /api/v10, percent-decoded per segment
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[UploadedFile]
    # When the HTTP request reached the stand-in's handler (time.monotonic()), before parsing.
    received_monotonic: float = 0.0

    def json_object(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise errors.bad_request("expected a JSON object")
        return self.body

    def int_param(self, name: str) -> int:
        value = self.params[name]
        if not value.isdigit():
            raise DiscordApiError(
                400, 50035, "Invalid Form Body", errors={name: {"_errors": [_snowflake_error()]}}
            )
        return int(value)


def _snowflake_error() -> dict[str, str]:
    return {"code": "NUMBER_TYPE_COERCE", "message": "Value is not snowflake."}


Handler = Callable[[RestRequest], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    bot_auth: bool


@dataclass(slots=True)
class _Fault:
    method: str
    path_glob: str
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and fnmatch.fnmatchcase(path, self.path_glob)
        )


@dataclass(frozen=True, slots=True)
class UnhandledRequest:
    method: str
    path: str
    body: Any


@dataclass
class RestApi:
    token_ok: Callable[[str], bool]
    attachment_size_limit: int
    rest_log: list[RestCall] = field(default_factory=list)
    unhandled: list[UnhandledRequest] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    _routes: list[_Route] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _on_call: list[Callable[[RestCall], None]] = field(default_factory=list)

    # -- configuration ------------------------------------------------------------------

    def route(self, method: str, template: str, handler: Handler, *, bot_auth: bool = True) -> None:
        """Register ``handler`` for ``template`` such as ``/channels/{channel_id}/messages``."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._routes.append(_Route(method, re.compile(f"^{regex}$"), handler, bot_auth))

    def inject_rate_limit(
        self,
        method: str,
        path_glob: str,
        *,
        retry_after: float = 0.2,
        times: int = 1,
        is_global: bool = False,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` matching requests with 429.

        With ``via`` (Discord's real responses carry a ``Via`` header) discord.py sleeps
        ``retry_after`` and retries; without it discord.py treats the 429 as a Cloudflare ban
        and raises ``HTTPException``.
        """
        if via:
            body = json.dumps(
                {
                    "message": "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": is_global,
                }
            ).encode()
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(max(1, round(retry_after))),
                "X-RateLimit-Scope": "global" if is_global else "user",
            }
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            self._faults.append(
                _Fault(method, path_glob, 429, body, "application/json", headers, times)
            )
        else:
            body = b"<html><body>error code: 1015</body></html>"
            self._faults.append(_Fault(method, path_glob, 429, body, "text/html", {}, times))

    def inject_error(
        self,
        method: str,
        path_glob: str,
        status: int,
        *,
        code: int = 0,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with a Discord error (e.g. 403 50013)."""
        body = json.dumps({"message": message or f"{status}: injected error", "code": code})
        self._faults.append(
            _Fault(method, path_glob, status, body.encode(), "application/json", {}, times)
        )

    def add_call_listener(self, listener: Callable[[RestCall], None]) -> None:
        self._on_call.append(listener)

    # -- serving ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        raw = request.rel_url.raw_path
        path = "/".join(unquote(part) for part in raw[len(API_PREFIX) :].split("/"))
        query = dict(request.query)
        try:
            body, files = await _read_body(request, self.attachment_size_limit)
        except DiscordApiError as exc:
            return self._finish(request.method, path, query, None, _error_response(exc))
        fault = next((f for f in self._faults if f.matches(request.method, path)), None)
        if fault is not None:
            fault.remaining -= 1
            response = web.Response(
                status=fault.status,
                body=fault.body,
                content_type=fault.content_type,
                headers=fault.headers,
            )
            return self._finish(request.method, path, query, body, response)
        response = await self._dispatch(request, path, query, body, files, arrived)
        return self._finish(request.method, path, query, body, response)

    async def _dispatch(
        self,
        request: web.Request,
        path: str,
        query: dict[str, str],
        body: Any,
        files: list[UploadedFile],
        arrived: float,
    ) -> web.Response:
        for route in self._routes:
            if route.method != request.method:
                continue
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.bot_auth and not self._authorized(request):
                return _error_response(errors.unauthorized())
            rest_request = RestRequest(
                request.method, path, match.groupdict(), query, body, files, arrived
            )
            try:
                reply = await route.handler(rest_request)
            except DiscordApiError as exc:
                return _error_response(exc)
            except Exception as exc:  # a bug in the stand-in: answer 500 and remember it
                log.exception("local discord: handler for %s %s failed", request.method, path)
                self.server_errors.append(f"{request.method} {path}: {exc!r}")
                return _error_response(DiscordApiError(500, 0, "500: Internal Server Error"))
            if reply is None:
                return web.Response(status=204)
            return json_response(reply)
        self.unhandled.append(UnhandledRequest(request.method, path, body))
        log.warning("local discord: unhandled route %s %s", request.method, path)
        return _error_response(errors.not_found())

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bot ") and self.token_ok(header[len("Bot ") :])

    def _finish(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        response: web.Response,
    ) -> web.Response:
        call = RestCall(method, path, query, body, response.status, datetime.now(UTC))
        self.rest_log.append(call)
        for listener in list(self._on_call):
            listener(call)
        return response


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json".
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def _error_response(exc: DiscordApiError) -> web.Response:
    response = json_response(exc.body(), exc.status)
    response.headers.update(exc.headers)
    return response


async def _read_body(request: web.Request, size_limit: int) -> tuple[Any, list[UploadedFile]]:
    """JSON bodies, or discord.py's multipart form (``payload_json`` plus ``files[n]``)."""
    if not request.can_read_body:
        return None, []
    if request.content_type == "multipart/form-data":
        body: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = bytes(await part.read())
            if part.name == "payload_json":
                body = json.loads(data)
            elif part.name.startswith("files["):
                if len(data) > size_limit:
                    raise errors.too_large()
                index = int(part.name[len("files[") : -1])
                content_type = part.headers.get("Content-Type")
                files.append(
                    UploadedFile(index, part.filename or f"file{index}", content_type, data)
                )
        return body, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except json.JSONDecodeError:
        raise DiscordApiError(400, 50109, "The request body contains invalid JSON.") from None
