"""When and how long to wait before sending a forecast again.

Forecasts have no side effects, so the client may send one again after an
answer that says "not now" (Overloaded, ShuttingDown) or after the connection
dropped before the answer came. Everything else (invalid params, a passed
``timeout_ms``, a model error, a garbled stream) is final: retrying the same
request would give the same answer or hide a bug.
"""

import random
from typing import Optional

from .errors import ConnectionError, Overloaded, ProtocolError, ShuttingDown

__all__ = ["backoff_delay", "retry_reason", "RETRY_REASONS"]

# The counters Client.stats keeps for each kind of retry.
RETRY_REASONS = ("overloaded", "shutting_down", "disconnected")


def backoff_delay(attempt: int, base: float, cap: float, rng: Optional[random.Random] = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    Exponential: ``d = min(cap, base * 2**attempt)``, then "equal jitter": a
    uniform draw in ``[d/2, d]``, so that clients refused together do not all
    come back at the same instant, yet each waits at least half the nominal
    delay.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0, got %r" % (attempt,))
    if base < 0 or cap < 0:
        raise ValueError("backoff and max_backoff must be >= 0, got %r and %r" % (base, cap))
    nominal = min(cap, base * (2.0 ** min(attempt, 64)))
    draw = (rng or random).random()
    return nominal / 2.0 + draw * nominal / 2.0


def retry_reason(exc: BaseException) -> Optional[str]:
    """Which retryable failure ``exc`` is ("overloaded", "shutting_down",
    "disconnected"), or None when it must not be retried.

    A ConnectionError caused by a ProtocolError (the daemon sent garbage) is
    not retried: a new connection to the same peer would most likely get the
    same garbage.
    """
    if isinstance(exc, Overloaded):
        return "overloaded"
    if isinstance(exc, ShuttingDown):
        return "shutting_down"
    if isinstance(exc, ConnectionError):
        if isinstance(exc, ProtocolError) or isinstance(exc.__cause__, ProtocolError):
            return None
        return "disconnected"
    return None
