"""Per-call record of the HTTP round trips the SDK makes.

The SDK's `TastytradeError` carries no HTTP status, so the session installs
httpx2 request/response event hooks on the SDK's client. httpx2 awaits the
hooks inside the task that sends the request, so a `ContextVar` holding a
mutable `CallRecord` routes each round trip to the session call that caused it:
concurrent calls run in different tasks and never see each other's records,
and tasks spawned inside a call inherit (share) the caller's record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx2

#: Error bodies are kept only up to this size (they are short JSON documents).
_MAX_ERROR_BODY = 4096

OAUTH_PATH_SUFFIX = "/oauth/token"


@dataclass
class RoundTrip:
    """One HTTP request made during a session call."""

    request: httpx2.Request = field(repr=False)
    method: str
    path: str
    # Keyed digest of the Authorization header it carried (never the token itself).
    auth_digest: str | None = field(repr=False)
    status: int | None = None  # None: sent, no response (yet)
    error_body: str | None = field(default=None, repr=False)

    @property
    def is_oauth(self) -> bool:
        return self.path.endswith(OAUTH_PATH_SUFFIX)

    @property
    def is_error(self) -> bool:
        return self.status is not None and self.status >= 400

    def error_json(self) -> Any:
        if not self.error_body:
            return None
        try:
            return json.loads(self.error_body)
        except ValueError:
            return None


@dataclass
class CallRecord:
    """Everything one attempt of a session call sent and received."""

    trips: list[RoundTrip] = field(default_factory=list)

    def find(self, request: httpx2.Request) -> RoundTrip | None:
        for trip in reversed(self.trips):
            if trip.request is request:
                return trip
        return None

    @property
    def api_trips(self) -> list[RoundTrip]:
        """Round trips other than token refreshes."""
        return [trip for trip in self.trips if not trip.is_oauth]

    def last_error(self) -> RoundTrip | None:
        for trip in reversed(self.trips):
            if trip.is_error:
                return trip
        return None


current_record: ContextVar[CallRecord | None] = ContextVar("tt_bot_call_record", default=None)


def auth_digest(header_value: str | None, key: bytes) -> str | None:
    if not header_value:
        return None
    return hashlib.blake2b(header_value.encode(), key=key, digest_size=16).hexdigest()


class HookSet:
    """httpx2 event hooks bound to one broker session.

    `on_token` is called after every successful ``/oauth/token`` response (also
    the SDK's own lazy refreshes) so the session can count refreshes.
    """

    def __init__(self, digest_key: bytes, on_token: Callable[[], None]) -> None:
        self._digest_key = digest_key
        self._on_token = on_token

    def client_kwargs(self) -> dict[str, Any]:
        return {"event_hooks": {"request": [self.on_request], "response": [self.on_response]}}

    async def on_request(self, request: httpx2.Request) -> None:
        record = current_record.get()
        if record is None:
            return
        record.trips.append(
            RoundTrip(
                request=request,
                method=request.method,
                path=request.url.path,
                auth_digest=auth_digest(request.headers.get("Authorization"), self._digest_key),
            )
        )

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        if request.url.path.endswith(OAUTH_PATH_SUFFIX) and response.status_code // 100 == 2:
            self._on_token()
        record = current_record.get()
        if record is None:
            return
        trip = record.find(request)
        if trip is None:  # request hook missed (should not happen); record it anyway
            trip = RoundTrip(
                request=request, method=request.method, path=request.url.path, auth_digest=None
            )
            record.trips.append(trip)
        trip.status = response.status_code
        if response.status_code >= 400:
            # Hooks see an unread response; read it so the error body can be classified.
            body = await response.aread()
            trip.error_body = body[:_MAX_ERROR_BODY].decode("utf-8", errors="replace")
