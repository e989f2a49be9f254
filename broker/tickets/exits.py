"""Best-effort capture of exit levels (PT / SL) from an alert's comment text.

Informational only: they are shown to the user and never change the order. Percentages and
trailing stops (`PT: 85%TS10%`, `SL: 50%`) are not levels and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from broker.tickets.model import ExitTargets

_NUMBER = r"\$?(\d+(?:\.\d+)?|\.\d+)(?![\d.]*\s*%)"
_TARGET = re.compile(rf"\b(?:pt\d?|tp\d?|targets?|price\s+target)\s*:?\s*{_NUMBER}", re.I | re.A)
_STOP = re.compile(
    rf"\b(?:sl|stop(?:\s*loss)?|stope)\s*:?\s*(?:(?:is|at|below|under|around|@)\s*)*{_NUMBER}",
    re.I | re.A,
)


def find_exits(texts: Iterable[str]) -> ExitTargets:
    targets: list[Decimal] = []
    stop: Decimal | None = None
    for text in texts:
        targets.extend(Decimal(match[1]) for match in _TARGET.finditer(text))
        if stop is None and (match := _STOP.search(text)):
            stop = Decimal(match[1])
    return ExitTargets(profit_targets=tuple(targets), stop_loss=stop)
