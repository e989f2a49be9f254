"""OAuth token endpoint semantics: refresh-token grants and bearer access tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.paper.clock import SimClock
from broker.paper.payloads import JsonDict


@dataclass
class _AccessToken:
    refresh_token: str
    expires_at: datetime


class OAuthError(Exception):
    """A rejected token request; `body` is the real `{"error_code","error_description"}`."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.body: JsonDict = {"error_code": code, "error_description": description}


class TokenStore:
    def __init__(
        self,
        clock: SimClock,
        ttl: int,
        *,
        accept_any: bool,
        provider_secret: str | None,
        refresh_tokens: tuple[str, ...],
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._accept_any = accept_any
        self._provider_secret = provider_secret
        self._known_refresh = set(refresh_tokens)
        self._revoked: set[str] = set()
        self._tokens: dict[str, _AccessToken] = {}
        self.grants = 0

    def __repr__(self) -> str:
        return f"TokenStore(grants={self.grants}, active={len(self._tokens)})"

    def grant(self, body: object, *, has_authorization_header: bool) -> JsonDict:
        """Handle `POST /oauth/token`; raises OAuthError."""
        if has_authorization_header:
            raise OAuthError(
                400,
                "invalid_request",
                "The token endpoint must be called without an Authorization header.",
            )
        if not isinstance(body, dict):
            raise OAuthError(400, "invalid_request", "Expected a JSON object body.")
        if body.get("grant_type") != "refresh_token":
            raise OAuthError(400, "unsupported_grant_type", "grant_type must be refresh_token.")
        secret = body.get("client_secret")
        refresh = body.get("refresh_token")
        if not isinstance(secret, str) or not secret:
            raise OAuthError(400, "invalid_request", "client_secret is required.")
        if not isinstance(refresh, str) or not refresh:
            raise OAuthError(400, "invalid_request", "refresh_token is required.")
        if not self._accept_any and secret != self._provider_secret:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        if refresh in self._revoked:
            raise OAuthError(401, "invalid_grant", "The refresh token has been revoked.")
        if not self._accept_any and refresh not in self._known_refresh:
            raise OAuthError(401, "invalid_grant", "The refresh token is invalid.")
        now = self._clock.now()
        self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _AccessToken(refresh, now + timedelta(seconds=self._ttl))
        self.grants += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self._ttl}

    def is_valid(self, access_token: str) -> bool:
        entry = self._tokens.get(access_token)
        if entry is None or entry.refresh_token in self._revoked:
            return False
        return entry.expires_at > self._clock.now()

    def revoke(self, refresh_token: str) -> None:
        """Revoke a grant: the refresh token and every access token issued from it."""
        self._revoked.add(refresh_token)
        self._tokens = {k: v for k, v in self._tokens.items() if v.refresh_token != refresh_token}
