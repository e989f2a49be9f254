"""Whole-list replies (positions) turned into records, reusing what did not change.

A sync re-reads the account's positions every time. Most of them are the same as last
time (all of them outside market hours), yet validating 1,000 `CurrentPosition` models
is the largest client cost of an incremental sync. `ItemMemo` keeps the previous reply's
raw items and the records made from them, by a key field (the symbol): an item equal to
the previous reply's item with that key reuses its record; any other item goes through
the SDK's model exactly as `Account.get_positions` does (``Model(**item)`` on the
``json.loads`` of the body). Reuse needs the raw items to be equal, so the memo is a pure
function cache (raw item -> record) and can never go stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from broker.session import BrokerError, ErrorCategory

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

_UNREADABLE = "Tastytrade sent a reply this bot could not understand."


class ItemMemo(Generic[M, R]):
    """Records of a ``{"data": {"items": [...]}}`` reply, validating only changed items."""

    def __init__(self, model: type[M], convert: Callable[[M], R], key: str) -> None:
        self._model = model
        self._convert = convert
        self._key = key
        self._previous: dict[object, tuple[dict[str, Any], R]] = {}

    def records(self, body: bytes) -> list[R]:
        items = _items_of(body)
        previous, key = self._previous, self._key
        kept: dict[object, tuple[dict[str, Any], R]] = {}
        records: list[R] = []
        model, convert = self._model, self._convert
        try:
            for item in items:
                item_key = item.get(key)
                known = previous.get(item_key)
                if known is not None and known[0] == item:
                    record = known[1]
                else:
                    # `**item` hands the model a copy (its validators rewrite signed fields
                    # in the dict they get): `item` stays as sent, for the next comparison.
                    record = convert(model(**item))
                records.append(record)
                kept[item_key] = (item, record)
        except (ValidationError, TypeError):
            raise BrokerError(ErrorCategory.CONTRACT, _UNREADABLE) from None
        self._previous = kept
        return records


def _items_of(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body)
        items = parsed["data"]["items"]
    except (ValueError, TypeError, KeyError):
        raise BrokerError(ErrorCategory.CONTRACT, _UNREADABLE) from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BrokerError(ErrorCategory.CONTRACT, _UNREADABLE)
    return items
