"""Turn a chat message into order tokens: strip Discord noise, set comments aside, split words."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_DISCORD_MARKUP = re.compile(
    r"<@[!&]?\d+>"  # user and role mentions
    r"|<#\d+>"  # channel mentions
    r"|<a?:\w+:\d+>"  # custom emoji
    r"|</[\w -]+:\d+>"  # slash-command mentions
    r"|<t:-?\d+(?::\w)?>"  # timestamps
    r"|@(?:here|everyone)\b",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"\*+|__+|~~|\|\||`+")
_QUOTE_PREFIX = re.compile(r"^\s*>+ ?", re.MULTILINE)
_TT_PREFIX = re.compile(r"^\s*!tt\b", re.IGNORECASE)
_EQUALS = re.compile(r"\s*=\s*")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_TRAILING_PUNCTUATION = ",;!?"
# Emoji and other pictographs, invisible format characters, variation selectors, skin tones.
_DROPPED_CATEGORIES = frozenset({"So", "Cs", "Co", "Cf", "Cn"})


@dataclass(frozen=True, slots=True)
class Token:
    raw: str  # as typed (minus surrounding punctuation), for messages
    low: str  # lower-cased, without a trailing ':'
    labelled: bool = False  # ended with ':' ("Lotto:", "PT1:")


@dataclass(frozen=True, slots=True)
class Lexed:
    tokens: list[Token]
    comments: list[str]


def _drop_symbols(text: str) -> str:
    if text.isascii():
        return text
    kept = []
    for char in text:
        if unicodedata.category(char) in _DROPPED_CATEGORIES:
            continue
        if "\ufe00" <= char <= "\ufe0f" or "\U0001f3fb" <= char <= "\U0001f3ff":
            continue
        kept.append(char)
    return "".join(kept)


def _split_comments(text: str) -> tuple[str, list[str]]:
    """Remove bracketed asides; an unclosed bracket comments out the rest of the text."""
    if not any(opener in text for opener in _OPENERS):
        return text, []
    comments: list[str] = []
    body: list[str] = []
    depth_stack: list[str] = []
    current: list[str] = []
    for char in text:
        if char in _OPENERS:
            if depth_stack:
                current.append(char)
            depth_stack.append(_OPENERS[char])
            continue
        if depth_stack and char == depth_stack[-1]:
            depth_stack.pop()
            if depth_stack:
                current.append(char)
            else:
                comments.append("".join(current).strip())
                current = []
                body.append(" ")
            continue
        (current if depth_stack else body).append(char)
    if depth_stack:
        comments.append("".join(current).strip())
    return "".join(body), [comment for comment in comments if comment]


def _token(word: str) -> Token | None:
    word = word.strip(_TRAILING_PUNCTUATION)
    # A full stop ends a sentence ("115p.", "@ 1.20."); "1." means 1 either way.
    if len(word) > 1 and word.endswith(".") and word[-2] != ".":
        word = word[:-1]
    if word != "@" and not any(char.isalnum() for char in word):
        return None
    labelled = word.endswith(":") and len(word) > 1
    low = word.lower().rstrip(":") if labelled else word.lower()
    return Token(raw=word, low=low, labelled=labelled)


def lex(text: str) -> Lexed:
    text = unicodedata.normalize("NFKC", text)
    text = _DISCORD_MARKUP.sub(" ", text)
    text = _QUOTE_PREFIX.sub("", text)
    text = _MARKDOWN.sub("", text)
    text = _drop_symbols(text)
    text = _TT_PREFIX.sub("", text, count=1)
    body, comments = _split_comments(text)
    body = _EQUALS.sub("=", body).replace("@", " @ ")
    tokens = [token for word in body.split() if (token := _token(word)) is not None]
    return Lexed(tokens=tokens, comments=comments)
