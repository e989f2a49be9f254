"""The fill-retry ("chase") engine: start at the mid, step toward the far side with
cancel-replace, never resubmit blindly, persist everything (see ``broker.fills.engine``)."""

from broker.fills.clock import Clock, RealClock, SimulatedClock
from broker.fills.engine import ChaseEngine, ChaseHandle, SessionLookup, WorkingOrder
from broker.fills.model import (
    ChaseNotFound,
    ChaseOrder,
    ChaseRecord,
    ChaseRequest,
    ChaseResult,
    ChaseStatus,
    OrderDrift,
)
from broker.fills.policy import ChaseParams, ChaseParamsError, PriceLadder
from broker.fills.run import HaltCheck

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
    "HaltCheck",
    "OrderDrift",
    "PriceLadder",
    "RealClock",
    "SessionLookup",
    "SimulatedClock",
    "WorkingOrder",
]
