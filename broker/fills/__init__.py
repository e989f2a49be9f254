"""The fill-retry ("chase") engine: start at the mid, step toward the far side with
cancel-replace, never resubmit blindly, persist everything (see ``broker.fills.engine``)."""

from broker.fills.clock import Clock, RealClock, SimulatedClock
from broker.fills.engine import ChaseEngine, ChaseHandle, SessionLookup
from broker.fills.model import (
    ChaseNotFound,
    ChaseOrder,
    ChaseRecord,
    ChaseRequest,
    ChaseResult,
    ChaseStatus,
)
from broker.fills.policy import ChaseParams, ChaseParamsError, PriceLadder

__all__ = [
    "ChaseEngine",
    "ChaseHandle",
    "ChaseNotFound",
    "ChaseOrder",
    "ChaseParams",
    "ChaseParamsError",
    "ChaseRecord",
    "ChaseRequest",
    "ChaseResult",
    "ChaseStatus",
    "Clock",
    "PriceLadder",
    "RealClock",
    "SessionLookup",
    "SimulatedClock",
]
