"""The redactor's fast path (pattern hints, cached order) scrubs exactly what the plain
algorithm does: every known value, longest first, then every token pattern, always."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.secrets import _PATTERNS, MIN_SCRUB_LENGTH, REDACTED, Redactor


def reference_text(values: set[str], text: str) -> str:
    """The plain algorithm, with no shortcut."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Pieces that make the patterns match (or nearly match), glued with ordinary text, in odd
# cases too (the patterns ignore case, including Unicode case folds like 'ſ' for 's').
FRAGMENTS = [
    "token",
    "Token",
    "TOKEN",
    "ſecret",
    "secret",
    "refresh_token",
    "access-token",
    "Authorization",
    "authorİzation",
    "api_key",
    "X-API-KEY",
    "password",
    "encryption_keys",
    "Bearer ",
    "bEaReR\t",
    "eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl",
    "eyJ",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789",
    "NzA5ODc2NTQzMjEwOTg3NjU0.Xy-_Z1.",
    "=",
    ": ",
    '"',
    "'",
    "&",
    ".",
    "sk-live-123456",
]
texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(string.printable + "ſİK", max_size=12)),
    max_size=8,
).map("".join)
known = st.sets(st.sampled_from(["sk-live-123456", "live-12", "abcdefghij", "token-value"]))


@settings(max_examples=400, deadline=None)
@given(values=known, text=texts)
@example(values=set(), text='{"refresh_token": "abc123", "price": "10.20"}')
@example(values=set(), text="ſecret=abcdef")
@example(values={"sk-live-123456"}, text="key sk-live-123456 and Bearer abc.def")
def test_fast_path_scrubs_exactly_like_the_plain_algorithm(values: set[str], text: str) -> None:
    assert Redactor(values).text(text) == reference_text(values, text)


@given(text=texts, extra=st.lists(st.sampled_from(["extra-secret", "tiny", "sk-live-123456"])))
def test_extra_values_are_scrubbed_like_registered_ones(text: str, extra: list[str]) -> None:
    values = {"sk-live-123456"}
    expected = reference_text(values | {v for v in extra if len(v) >= MIN_SCRUB_LENGTH}, text)
    assert Redactor(values).text(text, extra) == expected


def test_discarded_values_are_no_longer_scrubbed_and_added_ones_are() -> None:
    redactor = Redactor(["first-secret"])
    redactor.add("a-longer-first-secret")
    assert redactor.text("a-longer-first-secret first-secret") == f"{REDACTED} {REDACTED}"
    redactor.discard("first-secret")
    assert redactor.text("first-secret") == "first-secret"


def test_ordinary_log_values_pass_through_untouched() -> None:
    for value in ["chase_submitting", "10.20", "broker.fills.run", "2026-11-22T07:48:54Z"]:
        assert Redactor(["sk-live-123456"]).text(value) == value
