"""Fault injection: latency, scripted error responses, dropped connections."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from broker.paper.payloads import JsonDict

ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request was malformed."),
    401: ("unauthorized", "This session is invalid or has expired."),
    403: ("not_permitted", "User not permitted access"),
    404: ("not_found", "The requested resource was not found."),
    409: ("conflict", "The request conflicts with the current state."),
    422: ("unprocessable_entity", "The request could not be processed."),
    429: ("rate_limit_exceeded", "Rate limit exceeded. Please try again later."),
    500: ("internal_server_error", "An internal server error occurred."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "Gateway timeout."),
}


def error_body(status: int, code: str | None = None, message: str | None = None) -> JsonDict:
    default_code, default_message = ERROR_CODES.get(status, ("error", "Request failed."))
    return {"error": {"code": code or default_code, "message": message or default_message}}


@dataclass
class _Rule:
    method: str | None
    path_glob: str
    remaining: int | None  # None = until cleared

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path_glob)


@dataclass
class _Latency(_Rule):
    seconds: float = 0.0


@dataclass
class _Failure(_Rule):
    status: int = 500
    body: str | JsonDict | None = None


@dataclass(frozen=True)
class Failure:
    status: int
    body: str | JsonDict


class Faults:
    """Scripted misbehaviour. Path globs match the raw request path (no query string)."""

    def __init__(self) -> None:
        self._latencies: list[_Latency] = []
        self._failures: list[_Failure] = []
        self._drops: list[_Rule] = []
        self._streamer_errors: list[str] = []

    def latency(self, seconds: float, method: str | None = None, path: str = "*") -> None:
        """Delay every matching request by `seconds` until `clear()`."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latencies.append(_Latency(method, path, None, seconds))

    def fail(
        self,
        method: str | None,
        path_glob: str,
        status: int,
        times: int = 1,
        *,
        code: str | None = None,
        message: str | None = None,
        body: str | None = None,
    ) -> None:
        """The next `times` matching requests get `status` with the real error body
        (or `body` verbatim, e.g. an HTML error page)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")
        payload: str | JsonDict = body if body is not None else error_body(status, code, message)
        self._failures.append(_Failure(method, path_glob, times, status, payload))

    def drop_after_accept(
        self, method: str = "POST", path_glob: str = "/accounts/*/orders", times: int = 1
    ) -> None:
        """Process the next `times` matching requests, then close the connection
        without sending the response."""
        self._drops.append(_Rule(method, path_glob, times))

    def streamer_error(self, message: str = "failed", times: int = 1) -> None:
        """The next `times` streamer subscriptions get an error ack carrying `message`."""
        self._streamer_errors.extend([message] * times)

    def clear(self) -> None:
        self._latencies.clear()
        self._failures.clear()
        self._drops.clear()
        self._streamer_errors.clear()

    # ------------------------------------------------------------ consumers
    def delay_for(self, method: str, path: str) -> float:
        return sum(r.seconds for r in self._latencies if r.matches(method, path))

    def take_failure(self, method: str, path: str) -> Failure | None:
        for rule in self._failures:
            if rule.matches(method, path):
                assert rule.remaining is not None and rule.body is not None
                rule.remaining -= 1
                return Failure(rule.status, rule.body)
        return None

    def take_drop(self, method: str, path: str) -> bool:
        for rule in self._drops:
            if rule.matches(method, path):
                assert rule.remaining is not None
                rule.remaining -= 1
                return True
        return False

    def take_streamer_error(self) -> str | None:
        return self._streamer_errors.pop(0) if self._streamer_errors else None
