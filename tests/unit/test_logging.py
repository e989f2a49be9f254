"""bot.logging: JSON/console output, stdlib routing, context binding and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from bot.logging import LogFormat, bind_context, bound_context, clear_context, configure_logging
from broker.secrets import Secret, default_redactor
from broker.session import BrokerError, ErrorCategory

PROVIDER = "provider-secret-value-123"
REFRESH = "refresh-token-value-456"
DISCORD = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in ("discord.http", "tastytrade")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old_level in named.items():
        logging.getLogger(name).setLevel(old_level)
    clear_context()
    structlog.reset_defaults()
    default_redactor.discard(PROVIDER, REFRESH)


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _configure(fmt: LogFormat = "json", level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(fmt, level, secrets=[Secret(PROVIDER), REFRESH], stream=stream)
    return stream


def test_json_lines_carry_level_logger_timestamp_and_fields() -> None:
    stream = _configure()
    structlog.get_logger("tt.test").info("order placed", order_id=123, price="1.25")
    [event] = _json_lines(stream)
    assert event["event"] == "order placed"
    assert event["level"] == "info"
    assert event["logger"] == "tt.test"
    assert event["order_id"] == 123 and event["price"] == "1.25"
    assert event["timestamp"].endswith("Z")


def test_known_secrets_are_removed_from_events_and_nested_values() -> None:
    stream = _configure()
    structlog.get_logger("tt.test").warning(
        f"refresh with {REFRESH} failed",
        request={"json": {"client_secret": PROVIDER, "grant_type": "refresh_token"}},
        attempts=[f"sent {PROVIDER}", ("tuple", REFRESH)],
        secret_object=Secret("object-secret-789"),
    )
    text = stream.getvalue()
    assert PROVIDER not in text and REFRESH not in text and "object-secret-789" not in text
    [event] = _json_lines(stream)
    assert event["event"] == "refresh with *** failed"
    assert event["request"]["json"] == {"client_secret": "***", "grant_type": "refresh_token"}
    assert event["attempts"] == ["sent ***", ["tuple", "***"]]


@pytest.mark.parametrize(
    ("message", "leak"),
    [
        ("header Authorization: Bearer abcdef.ghijkl.mnopqr", "abcdef.ghijkl"),
        ('body {"access_token": "at-0123456789", "expires_in": 900}', "at-0123456789"),
        ("query refresh_token=rt-0123456789&x=1", "rt-0123456789"),
        ('oauth {"client_secret": "cs-0123456789"}', "cs-0123456789"),
        ('streamer {"action": "connect", "auth-token": "Bearer st-0123456789"}', "st-0123456789"),
        (f"discord login with {DISCORD}", "GAbCdE"),
    ],
)
def test_token_patterns_are_removed(message: str, leak: str) -> None:
    stream = _configure()
    structlog.get_logger("tt.test").info(message)
    assert leak not in stream.getvalue()
    assert "***" in _json_lines(stream)[0]["event"]


def test_exception_text_and_traceback_are_scrubbed() -> None:
    stream = _configure()
    log = structlog.get_logger("tt.test")

    def failing_refresh(secret: str) -> None:
        raise RuntimeError(f"oauth rejected client_secret={secret} with Bearer eyJabc.eyJdef.sig")

    try:
        failing_refresh(PROVIDER)
    except RuntimeError:
        log.exception("refresh crashed")
    [event] = _json_lines(stream)
    assert "Traceback" in event["exception"]
    assert "RuntimeError" in event["exception"]
    assert PROVIDER not in stream.getvalue()
    assert "eyJabc" not in stream.getvalue()


def test_stdlib_loggers_are_routed_and_scrubbed() -> None:
    stream = _configure()
    logging.getLogger("tastytrade").warning("refresh failed for %s", REFRESH)
    try:
        raise ValueError(f"bad grant {REFRESH}")
    except ValueError:
        logging.getLogger("discord.client").exception("handler failed")
    events = _json_lines(stream)
    assert [e["logger"] for e in events] == ["tastytrade", "discord.client"]
    assert events[0]["event"] == "refresh failed for ***"
    assert "bad grant ***" in events[1]["exception"]
    assert REFRESH not in stream.getvalue()


def test_levels_filter_and_chatty_loggers_are_quieted() -> None:
    stream = _configure(level="INFO")
    structlog.get_logger("tt.test").debug("hidden")
    logging.getLogger("tastytrade").debug("sdk debug is hidden at INFO")
    logging.getLogger("discord.http").info("per-request chatter is hidden")
    logging.getLogger("discord.http").warning("rate limited")
    events = _json_lines(stream)
    assert [e["event"] for e in events] == ["rate limited"]


def test_bind_context_adds_ids_to_every_event_including_stdlib() -> None:
    stream = _configure()
    bind_context(guild_id=42, user_id=7, command="buy", order_id=None)
    structlog.get_logger("tt.test").info("parsed")
    logging.getLogger("broker.x").info("from stdlib")
    with bound_context(order_id=991):
        structlog.get_logger("tt.test").info("submitted")
    structlog.get_logger("tt.test").info("after")
    events = _json_lines(stream)
    assert all(e["guild_id"] == 42 and e["command"] == "buy" for e in events)
    assert "order_id" not in events[0]
    assert events[2]["order_id"] == 991
    assert "order_id" not in events[3]
    clear_context()
    structlog.get_logger("tt.test").info("cleared")
    assert "guild_id" not in _json_lines(stream)[-1]


def test_broker_errors_logged_with_exc_info_stay_clean() -> None:
    stream = _configure()
    try:
        raise BrokerError(ErrorCategory.AUTH, f"token {REFRESH} rejected")
    except BrokerError:
        structlog.get_logger("tt.test").exception("call failed")
    assert REFRESH not in stream.getvalue()


def test_console_format_is_readable_and_scrubbed() -> None:
    stream = _configure(fmt="console")
    structlog.get_logger("tt.test").info("hello", secret_value=PROVIDER, n=1)
    try:
        raise ValueError(REFRESH)
    except ValueError:
        logging.getLogger("tt.other").exception("boom")
    text = stream.getvalue()
    assert "hello" in text and "n=1" in text
    assert "Traceback" in text and "ValueError" in text
    assert PROVIDER not in text and REFRESH not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_reconfiguring_replaces_the_handler() -> None:
    first = _configure()
    second = _configure()
    structlog.get_logger("tt.test").info("once")
    assert first.getvalue() == ""
    assert len(_json_lines(second)) == 1


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "LOUD")
