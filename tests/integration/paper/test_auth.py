"""OAuth grants, bearer checks, expiry on the exchange clock, revocation."""

from __future__ import annotations

import time

import httpx2
import pytest
from tastytrade import Account, Session
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import frozen_config


async def test_refresh_grants_a_bearer_token(frozen: PaperExchange, session: Session) -> None:
    customer = await session.get_customer()
    assert customer.first_name == "Paper"
    assert session.session_token != "kyrieeleison"
    assert frozen.oauth_grants == 1
    assert ("POST", "/oauth/token") in frozen.requests
    assert await session.validate()


async def test_token_response_is_bare_json(frozen: PaperExchange) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as client:
        response = await client.post(
            "/oauth/token",
            json={"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "r"},
        )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900


async def test_token_request_with_authorization_header_is_rejected(
    frozen: PaperExchange,
) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as client:
        response = await client.post(
            "/oauth/token",
            json={"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "r"},
            headers={"Authorization": "Bearer stale"},
        )
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_request"
    assert frozen.oauth_grants == 0


async def test_bad_grant_bodies_use_the_oauth_error_shape(frozen: PaperExchange) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as client:
        wrong_grant = await client.post("/oauth/token", json={"grant_type": "password"})
        missing = await client.post("/oauth/token", json={"grant_type": "refresh_token"})
        garbage = await client.post("/oauth/token", content=b"[1, 2")
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error_code"] == "unsupported_grant_type"
    assert missing.status_code == 400
    assert set(missing.json()) == {"error_code", "error_description"}
    assert garbage.status_code == 400


async def test_requests_without_a_valid_bearer_get_401(frozen: PaperExchange) -> None:
    async with httpx2.AsyncClient(base_url=frozen.api_url) as client:
        missing = await client.get("/customers/me/accounts")
        wrong = await client.get(
            "/customers/me/accounts", headers={"Authorization": "Bearer not-a-token"}
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_token_expires_on_the_exchange_clock(frozen: PaperExchange, session: Session) -> None:
    account = await Account.get(session, frozen.account_number)
    frozen.clock.advance(901)
    # The SDK still believes its token is fresh (it uses wall time), so it gets a 401.
    with pytest.raises(TastytradeError, match="unauthorized"):
        await account.get_balances(session)
    await session.refresh(force=True)
    assert (await account.get_balances(session)).cash_balance > 0
    assert frozen.oauth_grants == 2


async def test_revoked_refresh_token_cannot_refresh_and_kills_access_tokens(
    frozen: PaperExchange, session: Session
) -> None:
    account = await Account.get(session, frozen.account_number)
    frozen.revoke_refresh_token("refresh")
    with pytest.raises(TastytradeError, match="unauthorized"):
        await account.get_balances(session)
    with pytest.raises(TastytradeError, match="invalid_grant") as raised:
        await session.refresh(force=True)
    assert "refresh" not in str(raised.value).replace("refresh token", "")


async def test_short_ttl_is_honoured_and_validated() -> None:
    async with PaperExchange(frozen_config(token_ttl=61)) as exchange:
        session = Session("secret", "refresh", is_test=True)
        session._client.base_url = exchange.api_url
        async with session:
            await session.refresh()
            assert 0 < session.session_expiration - time.time() <= 61
    with pytest.raises(ValueError, match="token_ttl"):
        frozen_config(token_ttl=30)


async def test_strict_credentials() -> None:
    config = frozen_config(
        accept_any_credentials=False, provider_secret="good", refresh_tokens=("known",)
    )
    async with PaperExchange(config) as exchange:
        cases = (("bad", "known", "invalid_client"), ("good", "unknown", "invalid_grant"))
        for secret, refresh, code in cases:
            session = Session(secret, refresh, is_test=True)
            session._client.base_url = exchange.api_url
            async with session:
                with pytest.raises(TastytradeError, match=code):
                    await session.refresh()
        session = Session("good", "known", is_test=True)
        session._client.base_url = exchange.api_url
        async with session:
            await session.refresh()
            assert exchange.oauth_grants == 1


def test_config_repr_hides_credentials() -> None:
    config = frozen_config(
        accept_any_credentials=False, provider_secret="s3cret", refresh_tokens=("r3fresh",)
    )
    assert "s3cret" not in repr(config) and "r3fresh" not in repr(config)
