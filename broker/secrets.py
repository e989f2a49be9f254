"""Secret values and redaction of secrets from text and structured data.

`Secret` keeps a credential out of reprs, f-strings and logs; `.reveal()` is the
only way to get the value back. `Redactor` scrubs known secret values and
token-shaped patterns (bearer tokens, JWTs, Discord bot tokens, ``key=value``
pairs with sensitive keys) from strings and nested containers. Both the broker
layer (error messages) and the logging setup use them.
"""

from __future__ import annotations

import functools
import hmac
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn

REDACTED: Final = "***"

# Shorter values are not substring-scrubbed: redacting e.g. "x" everywhere would
# destroy every message, and such values are not real credentials anyway.
MIN_SCRUB_LENGTH: Final = 6

_SENSITIVE_KEY_WORDS: Final = (
    "access_token",
    "access-token",
    "refresh_token",
    "refresh-token",
    "client_secret",
    "client-secret",
    "provider_secret",
    "provider-secret",
    "session_token",
    "session-token",
    "auth-token",
    "auth_token",
    "authorization",
    "api_key",
    "api-key",
    "x-api-key",
    "password",
    "encryption_key",
    "encryption_keys",
    "discord_token",
    "secret",
    "token",
)

_KEY_ALTERNATION = "|".join(
    re.escape(word) for word in sorted(_SENSITIVE_KEY_WORDS, key=len, reverse=True)
)

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # key: "value" / key=value / 'key': 'value' (JSON, repr, query strings, env lines)
    (
        re.compile(
            r"""(?P<key>["']?[\w-]*(?:"""
            + _KEY_ALTERNATION
            + r""")["']?\s*[:=]\s*)(?P<quote>["']?)(?:Bearer\s+)?[^\s"',&}\]]+""",
            re.IGNORECASE,
        ),
        r"\g<key>\g<quote>" + REDACTED,
    ),
    (re.compile(r"\bBearer\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), "Bearer " + REDACTED),
    # JWT (access tokens are JWTs in production)
    (re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}"), REDACTED),
    # Discord bot token: base64(user id) . timestamp . hmac
    (re.compile(r"\b[MNO][A-Za-z\d_-]{22,27}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,40}\b"), REDACTED),
)

# Every pattern above needs one of these in the text (same case rules as the patterns), so
# most log values (ids, prices, event names) are passed over with one scan instead of four
# substitutions: logging runs on the event loop, on the order path too.
_WORD_HINT: Final = re.compile(
    "token|secret|authorization|api_key|api-key|password|encryption_key|bearer", re.IGNORECASE
)
_JWT_HINT: Final = "eyJ"
_DISCORD_TOKEN_MIN_LENGTH: Final = 58  # 23 + "." + 6 + "." + 27


def _may_hold_token(text: str) -> bool:
    """False only if no pattern in `_PATTERNS` can match `text`."""
    return (
        _WORD_HINT.search(text) is not None
        or _JWT_HINT in text
        or (len(text) >= _DISCORD_TOKEN_MIN_LENGTH and text.count(".") >= 2)
    )


class Secret:
    """A secret string. ``str()``, ``repr()`` and formatting all give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The real value. Call it only where the value is sent to its destination."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"'{REDACTED}'"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __len__(self) -> int:
        return len(self.reveal())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")


_SENSITIVE_KEY_SUFFIXES: Final = frozenset(word.replace("-", "_") for word in _SENSITIVE_KEY_WORDS)


def _is_sensitive_key(key: object) -> bool:
    """True for keys such as ``refresh_token``, ``Authorization`` or ``secrets``."""
    return isinstance(key, str) and _is_sensitive_name(key)


@functools.lru_cache(maxsize=4096)  # the same few dozen keys come back in every log event
def _is_sensitive_name(key: str) -> bool:
    normalized = key.lower().replace("-", "_")
    if normalized.endswith("s") and not normalized.endswith("ss"):
        normalized = normalized[:-1]
    return any(
        normalized == word or normalized.endswith("_" + word) for word in _SENSITIVE_KEY_SUFFIXES
    )


class Redactor:
    """Scrubs known secret values and token-shaped patterns. Thread-safe."""

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        # Longest first so a secret containing another is removed whole.
        self._ordered: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str | Secret | None) -> None:
        """Register secret values to scrub (values shorter than MIN_SCRUB_LENGTH are ignored)."""
        plain = {
            value
            for value in (s.reveal() if isinstance(s, Secret) else s for s in secrets)
            if value and len(value) >= MIN_SCRUB_LENGTH
        }
        if not plain:
            return
        with self._lock:
            self._set_values(self._values | plain)

    def _set_values(self, values: frozenset[str]) -> None:
        self._values = values
        self._ordered = tuple(sorted(values, key=len, reverse=True))

    def discard(self, *secrets: str | Secret | None) -> None:
        plain = {s.reveal() if isinstance(s, Secret) else s for s in secrets if s}
        with self._lock:
            self._set_values(self._values - plain)

    def text(self, text: str, extra: Iterable[str] = ()) -> str:
        """Return ``text`` with known secrets, ``extra`` values and token patterns replaced."""
        ordered = self._ordered
        more = {v for v in extra if v and len(v) >= MIN_SCRUB_LENGTH} - self._values
        if more:
            ordered = tuple(sorted((*ordered, *more), key=len, reverse=True))
        for value in ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        if _may_hold_token(text):
            for pattern, replacement in _PATTERNS:
                text = pattern.sub(replacement, text)
        return text

    def value(self, obj: Any, extra: Iterable[str] = ()) -> Any:
        """Recursively scrub containers; values under sensitive keys become ***."""
        extra = tuple(extra)
        if isinstance(obj, Secret):
            return REDACTED
        if isinstance(obj, str):
            return self.text(obj, extra)
        if isinstance(obj, Mapping):
            return {
                key: (
                    REDACTED
                    if _is_sensitive_key(key) and obj_value is not None
                    else self.value(obj_value, extra)
                )
                for key, obj_value in obj.items()
            }
        if isinstance(obj, list):
            return [self.value(item, extra) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self.value(item, extra) for item in obj)
        return obj


#: Process-wide redactor: secrets loaded at start-up and by broker sessions register here,
#: and the logging pipeline scrubs every event with it.
default_redactor = Redactor()


def register_secrets(*secrets: str | Secret | None) -> None:
    """Register values the process-wide redactor must always scrub."""
    default_redactor.add(*secrets)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Scrub ``text`` with the process-wide redactor."""
    return default_redactor.text(text, extra)
