"""Error classification, status capture hooks and value types of broker.session."""

from __future__ import annotations

import asyncio
import pickle
import random
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel, ValidationError
from tastytrade.utils import TastytradeError, validate_response

from broker.secrets import REDACTED, Redactor, Secret, register_secrets
from broker.session import (
    BrokerError,
    Credentials,
    Environment,
    ErrorCategory,
    RefreshPolicy,
    RetryPolicy,
    Timeouts,
)
from broker.session.capture import CallRecord, HookSet, RoundTrip, current_record
from broker.session.errors import broker_error_entries, classify, timeout_error
from broker.session.retry import full_jitter_delay

API = "http://127.0.0.1:9"


def _request(method: str, path: str, token: str | None = "tok-1") -> httpx2.Request:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.Request(method, API + path, headers=headers)


def _trip(method: str, path: str, status: int | None, body: Any = None) -> RoundTrip:
    text = None
    if body is not None:
        text = body if isinstance(body, str) else httpx2.Response(200, json=body).text
    return RoundTrip(
        request=_request(method, path),
        method=method,
        path=path,
        auth_digest="d1",
        status=status,
        error_body=text,
    )


def _sdk_error(status: int, body: Any) -> TastytradeError:
    """The exception the real SDK raises for this response."""
    response = httpx2.Response(status, json=body, request=_request("GET", "/x"))
    with pytest.raises(TastytradeError) as info:
        validate_response(response)
    return info.value


PREFLIGHT = {
    "error": {
        "code": "preflight_check_failure",
        "message": "One or more preflight checks failed",
        "errors": [{"code": "cant_buy_for_credit", "message": "You cannot buy for a credit."}],
    }
}


# --------------------------------------------------------------------------- classification


def test_422_preflight_is_rejected_with_nested_codes() -> None:
    record = CallRecord([_trip("POST", "/accounts/5WT00001/orders/dry-run", 422, PREFLIGHT)])
    error = classify(_sdk_error(422, PREFLIGHT), record, submission=False)
    assert error.category is ErrorCategory.REJECTED
    assert error.codes == ("cant_buy_for_credit",)
    assert error.status == 422
    assert error.message == "You cannot buy for a credit."
    assert error.details == (("cant_buy_for_credit", "You cannot buy for a credit."),)
    assert error.outcome_unknown is False


def test_422_without_nested_errors_uses_top_level_code() -> None:
    body = {"error": {"code": "order_not_cancellable", "message": "Order is already filled."}}
    record = CallRecord([_trip("DELETE", "/accounts/5WT00001/orders/7", 422, body)])
    error = classify(_sdk_error(422, body), record, submission=True)
    assert error.category is ErrorCategory.REJECTED
    assert error.codes == ("order_not_cancellable",)
    assert error.outcome_unknown is False  # a 422 means nothing happened


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, ErrorCategory.AUTH),
        (403, ErrorCategory.AUTH),
        (429, ErrorCategory.RATE_LIMIT),
        (500, ErrorCategory.SERVER),
        (502, ErrorCategory.SERVER),
        (503, ErrorCategory.SERVER),
        (404, ErrorCategory.REJECTED),
    ],
)
def test_status_codes_map_to_categories(status: int, category: ErrorCategory) -> None:
    body = {"error": {"code": "some_code", "message": "Some message."}}
    record = CallRecord([_trip("GET", "/customers/me/accounts", status, body)])
    error = classify(_sdk_error(status, body), record, submission=False)
    assert error.category is category
    assert error.status == status
    assert error.category.transient is (
        category in {ErrorCategory.RATE_LIMIT, ErrorCategory.SERVER}
    )


def test_html_error_page_is_classified_by_status() -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    record = CallRecord([_trip("GET", "/customers/me", 502, html)])
    response = httpx2.Response(502, text=html, request=_request("GET", "/customers/me"))
    with pytest.raises(TastytradeError) as info:
        validate_response(response)
    error = classify(info.value, record, submission=False)
    assert error.category is ErrorCategory.SERVER
    assert error.codes == ()


def test_oauth_invalid_grant_is_token_revoked() -> None:
    body = {"error_code": "invalid_grant", "error_description": "Grant revoked"}
    record = CallRecord([_trip("POST", "/oauth/token", 400, body)])
    error = classify(_sdk_error(400, body), record, submission=False)
    assert error.category is ErrorCategory.TOKEN_REVOKED
    assert error.codes == ("invalid_grant",)


def test_oauth_string_error_body_which_crashes_the_sdk_is_still_token_revoked() -> None:
    body = {"error": "invalid_grant"}
    response = httpx2.Response(400, json=body, request=_request("POST", "/oauth/token"))
    with pytest.raises(AttributeError) as info:  # the SDK's own crash (notes §0.11)
        validate_response(response)
    record = CallRecord([_trip("POST", "/oauth/token", 400, body)])
    error = classify(info.value, record, submission=False)
    assert error.category is ErrorCategory.TOKEN_REVOKED


def test_oauth_401_is_token_revoked_and_other_oauth_4xx_is_auth() -> None:
    body = {"error_code": "invalid_request", "error_description": "User is not a customer"}
    revoked = classify(
        _sdk_error(401, body),
        CallRecord([_trip("POST", "/oauth/token", 401, body)]),
        submission=False,
    )
    transient = classify(
        _sdk_error(400, body),
        CallRecord([_trip("POST", "/oauth/token", 400, body)]),
        submission=False,
    )
    assert revoked.category is ErrorCategory.TOKEN_REVOKED
    assert transient.category is ErrorCategory.AUTH
    assert "User is not a customer" in transient.message


def test_oauth_invalid_client_is_auth_not_revoked() -> None:
    body = {"error_code": "invalid_client", "error_description": "Client authentication failed."}
    record = CallRecord([_trip("POST", "/oauth/token", 401, body)])
    error = classify(_sdk_error(401, body), record, submission=False)
    assert error.category is ErrorCategory.AUTH
    assert error.codes == ("invalid_client",)


def test_oauth_5xx_is_server() -> None:
    record = CallRecord([_trip("POST", "/oauth/token", 503, {"error": {"code": "x"}})])
    error = classify(_sdk_error(503, {"error": {"code": "x"}}), record, submission=False)
    assert error.category is ErrorCategory.SERVER


def test_connection_refused_is_network_and_never_outcome_unknown() -> None:
    record = CallRecord([_trip("POST", "/accounts/5WT00001/orders", None)])
    error = classify(httpx2.ConnectError("refused"), record, submission=True)
    assert error.category is ErrorCategory.NETWORK
    assert error.outcome_unknown is False


def test_dropped_connection_after_sending_a_submission_is_outcome_unknown() -> None:
    record = CallRecord([_trip("POST", "/accounts/5WT00001/orders", None)])
    dropped = httpx2.RemoteProtocolError("Server disconnected without sending a response.")
    assert classify(dropped, record, submission=True).outcome_unknown is True
    read = classify(dropped, record, submission=False)
    assert read.category is ErrorCategory.NETWORK
    assert read.outcome_unknown is False


def test_httpx_read_timeout_is_timeout() -> None:
    record = CallRecord([_trip("POST", "/accounts/5WT00001/orders", None)])
    error = classify(httpx2.ReadTimeout("slow"), record, submission=True)
    assert error.category is ErrorCategory.TIMEOUT
    assert error.outcome_unknown is True


def test_submission_5xx_is_outcome_unknown() -> None:
    body = {"error": {"code": "internal", "message": "boom"}}
    record = CallRecord([_trip("POST", "/accounts/5WT00001/orders", 500, body)])
    error = classify(_sdk_error(500, body), record, submission=True)
    assert error.category is ErrorCategory.SERVER
    assert error.outcome_unknown is True


def test_malformed_success_payloads_are_contract_errors() -> None:
    class Model(BaseModel):
        id: int

    with pytest.raises(ValidationError) as info:
        Model(id="not a number")  # type: ignore[arg-type]
    record = CallRecord([_trip("GET", "/customers/me/accounts", 200)])
    assert classify(info.value, record, submission=False).category is ErrorCategory.CONTRACT
    assert classify(KeyError("data"), record, submission=False).category is ErrorCategory.CONTRACT
    no_data = TastytradeError("No data present in response: {}")
    assert classify(no_data, record, submission=False).category is ErrorCategory.CONTRACT
    # A success that could not be parsed on a submission: the order may exist.
    assert classify(KeyError("id"), record, submission=True).outcome_unknown is True


def test_unexpected_exceptions_become_contract_errors_without_their_text() -> None:
    record = CallRecord()
    error = classify(RuntimeError("internal detail"), record, submission=False)
    assert error.category is ErrorCategory.CONTRACT
    assert "internal detail" not in error.message
    assert "RuntimeError" in error.message


def test_timeout_error_outcome_depends_on_whether_a_request_was_sent() -> None:
    sent = CallRecord([_trip("POST", "/accounts/5WT00001/orders", None)])
    only_refresh = CallRecord([_trip("POST", "/oauth/token", None)])
    assert timeout_error(sent, 1.5, submission=True).outcome_unknown is True
    assert timeout_error(only_refresh, 1.5, submission=True).outcome_unknown is False
    assert timeout_error(sent, 1.5, submission=False).outcome_unknown is False
    error = timeout_error(sent, 1.5, submission=True)
    assert error.category is ErrorCategory.TIMEOUT
    assert "1.5 s" in error.message


def test_broker_error_entries_handles_every_documented_shape() -> None:
    assert broker_error_entries(PREFLIGHT) == [
        ("cant_buy_for_credit", "You cannot buy for a credit.")
    ]
    assert broker_error_entries({"error": {"domain": "orders", "reason": "bad"}}) == [
        ("orders", "bad")
    ]
    assert broker_error_entries({"error_code": "invalid_request", "error_description": "x"}) == [
        ("invalid_request", "x")
    ]
    assert broker_error_entries({"error": "invalid_grant"}) == [("invalid_grant", "")]
    assert broker_error_entries({"error": {"errors": []}}) == []
    assert broker_error_entries(["not", "a", "dict"]) == []
    assert broker_error_entries(None) == []


# ------------------------------------------------------------------------------ secrecy


def test_broker_error_message_never_contains_tokens() -> None:
    register_secrets("registered-provider-secret-123")
    error = BrokerError(
        ErrorCategory.AUTH,
        "failed with Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl and "
        "registered-provider-secret-123 and refresh_token=abcdefgh",
        details=[("x", "Bearer zzzzzzzzzz")],
    )
    for text in (error.message, str(error), repr(error), str(error.details)):
        assert "eyJhbGciOi" not in text
        assert "registered-provider-secret-123" not in text
        assert "abcdefgh" not in text
        assert "zzzzzzzzzz" not in text
    assert error.message.count(REDACTED) >= 3


def test_secret_hides_its_value_everywhere() -> None:
    secret = Secret("hunter2-very-secret")
    assert repr(secret) == "'***'"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert f"{secret!r:>10}".strip() == "'***'"
    assert "hunter2" not in repr([secret, {"k": secret}])
    assert secret.reveal() == "hunter2-very-secret"
    assert secret == Secret("hunter2-very-secret")
    assert secret != Secret("other")
    assert len({secret, Secret("hunter2-very-secret")}) == 1
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_credentials_repr_hides_secrets_and_plain_strings_are_wrapped() -> None:
    creds = Credentials(
        environment=Environment.SANDBOX,
        provider_secret="provider-plain-value",  # type: ignore[arg-type]
        refresh_token=Secret("refresh-plain-value"),
    )
    assert isinstance(creds.provider_secret, Secret)
    assert "plain-value" not in repr(creds)
    assert creds.resolved_api_url == "https://api.cert.tastyworks.com"
    assert creds.resolved_streamer_url == "wss://streamer.cert.tastyworks.com"


def test_credentials_validation() -> None:
    with pytest.raises(ValueError, match="api_url and streamer_url"):
        Credentials(Environment.PAPER, Secret("a"), Secret("b"))
    with pytest.raises(ValueError, match="refresh_token must be a non-empty Secret"):
        Credentials(Environment.SANDBOX, Secret("a"), Secret(""))
    live = Credentials("live", Secret("a"), Secret("b"))  # type: ignore[arg-type]
    assert live.environment is Environment.LIVE
    assert live.resolved_api_url == "https://api.tastyworks.com"
    assert not Environment.LIVE.is_test and Environment.PAPER.is_test


def test_redactor_scrubs_nested_values_and_sensitive_keys() -> None:
    redactor = Redactor(["known-secret-value"])
    event = {
        "event": "call failed for known-secret-value",
        "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
        "body": [{"refresh_token": "rt-123456"}, ("client_secret=cs-987654",)],
        "token_expires_at": "2026-01-01T00:00:00Z",
        "count": 3,
    }
    scrubbed = redactor.value(event)
    assert scrubbed["event"] == "call failed for ***"
    assert scrubbed["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert scrubbed["body"][0] == {"refresh_token": REDACTED}
    assert scrubbed["body"][1] == ("client_secret=***",)
    assert scrubbed["token_expires_at"] == "2026-01-01T00:00:00Z"
    assert scrubbed["count"] == 3


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ('{"access_token": "at-abcdef123", "expires_in": 900}', "at-abcdef123"),
        ("{'refresh_token': 'rt-abcdef123'}", "rt-abcdef123"),
        ('{"auth-token": "Bearer stream-tok-123"}', "stream-tok-123"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("token=MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123", "GAbCdE"),
        ("bot MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123 failed", "GAbCdE"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijk", "eyJzdWIiOiIxIn0"),
    ],
)
def test_redactor_patterns(text: str, leak: str) -> None:
    scrubbed = Redactor().text(text)
    assert leak not in scrubbed
    assert REDACTED in scrubbed


def test_redactor_ignores_values_too_short_to_be_secrets() -> None:
    redactor = Redactor(["x", "ab"])
    assert redactor.text("x marks the spot, ab") == "x marks the spot, ab"


# ---------------------------------------------------------------------------- hooks


async def test_hooks_route_round_trips_to_the_calling_task_only() -> None:
    granted: list[int] = []
    hooks = HookSet(b"k" * 16, lambda: granted.append(1))

    async def one_call(path: str, status: int) -> CallRecord:
        record = CallRecord()
        current_record.set(record)  # each task has its own context copy
        request = _request("GET", path)
        await hooks.on_request(request)
        await asyncio.sleep(0)  # interleave with the other task
        body = {"error": {"code": f"code_{status}", "message": "m"}}
        await hooks.on_response(httpx2.Response(status, json=body, request=request))
        return record

    first, second = await asyncio.gather(
        asyncio.create_task(one_call("/a", 429)), asyncio.create_task(one_call("/b", 503))
    )
    assert [(t.path, t.status) for t in first.trips] == [("/a", 429)]
    assert [(t.path, t.status) for t in second.trips] == [("/b", 503)]
    assert first.trips[0].error_json()["error"]["code"] == "code_429"
    assert granted == []


async def test_hooks_count_successful_token_grants_even_outside_a_call() -> None:
    granted: list[int] = []
    hooks = HookSet(b"k" * 16, lambda: granted.append(1))
    request = _request("POST", "/oauth/token", token=None)
    await hooks.on_request(request)
    await hooks.on_response(httpx2.Response(200, json={"access_token": "a"}, request=request))
    await hooks.on_response(httpx2.Response(400, json={"error": "x"}, request=request))
    assert granted == [1]


async def test_hook_digest_identifies_the_token_without_storing_it() -> None:
    hooks = HookSet(b"k" * 16, lambda: None)
    record = CallRecord()
    token = current_record.set(record)
    try:
        for bearer in ("token-one-abc", "token-one-abc", "token-two-abc"):
            await hooks.on_request(_request("GET", "/x", token=bearer))
    finally:
        current_record.reset(token)
    digests = [trip.auth_digest for trip in record.trips]
    assert digests[0] == digests[1] != digests[2]
    assert all(d is not None and "token" not in d for d in digests)
    assert "token-one" not in repr(record)


# -------------------------------------------------------------------------- policies


def test_full_jitter_stays_within_exponential_ceiling() -> None:
    policy = RetryPolicy(attempts=5, base_delay=0.1, max_delay=0.5)
    rng = random.Random(3)
    assert [policy.backoff_ceiling(i) for i in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    for retry_index in range(5):
        delays = [full_jitter_delay(policy, retry_index, rng) for _ in range(200)]
        assert all(0 <= d <= policy.backoff_ceiling(retry_index) for d in delays)
        assert max(delays) > policy.backoff_ceiling(retry_index) / 2  # actually jittered


def test_policy_and_timeout_validation() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match=r"Timeouts\.orders"):
        Timeouts(orders=0)
    with pytest.raises(ValueError, match=r"Timeouts\.reads"):
        Timeouts(reads=float("nan"))
    timeouts = Timeouts(chains=20)
    assert timeouts.for_kind("chains") == 20
    assert timeouts.for_kind("validate") == 5
    assert timeouts.for_kind("orders") == 10
    assert timeouts.longest == 20


def test_refresh_policy_refreshes_before_expiry_but_not_in_a_loop() -> None:
    policy = RefreshPolicy(lead_seconds=120, min_interval_seconds=1)
    assert policy.delay_until_refresh(900) == 780
    assert policy.delay_until_refresh(61) == 30.5  # short token: half its life
    assert policy.delay_until_refresh(0.5) == 1  # expired: soon, but not busy-looping
    assert policy.delay_until_refresh(-50) == 1
    eager = RefreshPolicy(lead_seconds=899.5, min_interval_seconds=0.1, min_life_fraction=0)
    assert eager.delay_until_refresh(900) == 0.5
    with pytest.raises(ValueError, match="min_life_fraction"):
        RefreshPolicy(min_life_fraction=1)
