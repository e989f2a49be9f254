"""structlog set-up: JSON lines in production, readable console output in development.

Every event, from structlog or from stdlib loggers (discord.py, tastytrade,
httpx2, aiohttp), goes through the same pipeline, and a redaction step removes
secrets from it, including formatted tracebacks: values registered at start-up
(`configure_logging(secrets=...)`, `broker.secrets.register_secrets`) plus token
patterns (``Bearer …``, ``access_token``, ``refresh_token``, ``client_secret``,
Discord bot tokens, ``"auth-token"``, JWTs).

`bind_context()` attaches guild/user/command/order ids to every event logged in
the current task (structlog contextvars).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from broker.secrets import Secret, default_redactor

__all__ = [
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "redact_event",
]

LogFormat = Literal["json", "console"]

# Chatty third-party loggers and the level they are capped at.
_QUIET_LOGGERS: Final[Mapping[str, int]] = {
    "discord.http": logging.WARNING,  # one line per REST call and rate-limit bucket
    "discord.gateway": logging.INFO,
    "httpx2": logging.WARNING,
    "httpcore2": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "asyncio": logging.WARNING,
}


def redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: scrub secrets from every value (nested containers included)."""
    scrubbed: EventDict = default_redactor.value(event_dict)
    return scrubbed


def _json_default(value: object) -> str:
    return str(value)  # Decimal, datetime, Path, Secret ('***'), enums...


def configure_logging(
    format: LogFormat = "json",
    level: str | int = "INFO",
    secrets: Iterable[str | Secret | None] = (),
    *,
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging through one redacting pipeline to `stream`.

    Safe to call more than once (tests, reconfiguration): it replaces the root
    handler it installed before.
    """
    if format not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', not {format!r}")
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    default_redactor.add(*secrets)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=json.dumps, default=_json_default)
        if format == "json"
        else structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Render tracebacks to text first so redaction sees (and scrubs) them.
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = _RedactingHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.setLevel(numeric_level)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RedactingHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name, cap in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(cap, numeric_level))
    # The SDK pins its logger at DEBUG (tastytrade/__init__.py); follow the configured level.
    logging.getLogger("tastytrade").setLevel(numeric_level)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so reconfiguring (tests) also reaches module-level loggers.
        cache_logger_on_first_use=False,
    )


class _RedactingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (a marker type so it can be replaced)."""


def _is_tty(stream: TextIO | None) -> bool:
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty())


def bind_context(
    *,
    guild_id: int | str | None = None,
    user_id: int | str | None = None,
    command: str | None = None,
    order_id: int | str | None = None,
    **extra: Any,
) -> None:
    """Attach ids to every event logged from the current task (and tasks it starts)."""
    values = {
        "guild_id": guild_id,
        "user_id": user_id,
        "command": command,
        "order_id": order_id,
        **extra,
    }
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Like `bind_context`, but only inside a ``with`` block."""
    with structlog.contextvars.bound_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    ):
        yield


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
