"""When to send a request again, and how long to wait first.

Exponential backoff with full jitter: before retry ``n`` the client sleeps a uniformly random time in
``[0, min(max_delay, base_delay * 2**(n-1))]``, which spreads out many clients that failed together
(a burst of 429s, an endpoint coming back). A ``Retry-After`` header (seconds or an HTTP date) replaces
the drawn delay. A call gives up after ``max_attempts`` attempts, or when the next wait would end past
``max_elapsed`` seconds after its first attempt.

Which failures may be retried depends on whether the request may be repeated (see
:func:`safe_to_resend`): reads (``/status``, ``/health``) and ``/cancel`` always; requests that change
state on RunPod (``/run``, ``/retry``, ``/purge-queue``) only when RunPod provably did not act on them.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: HTTP statuses worth another try: the request timed out on the server's side, rate limiting,
#: server and gateway errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Statuses that say the request was turned away before RunPod acted on it: 408 (the server gave up
#: reading the request), 429 (rate limited) and 503 (not accepting work). A submission refused this
#: way did not queue a job, so sending it again cannot run the job twice. 500, 502 and 504 come
#: after the request reached a server or a gateway's upstream, which may have queued the job.
NOT_PROCESSED_STATUSES = frozenset({408, 429, 503})


def safe_to_resend(status: int | None, *, idempotent: bool, delivered: bool) -> bool:
    """Whether a failed request may be sent again without risk of doing its work twice.

    ``status`` is the HTTP status of the answer (None when none came); ``delivered`` is False only when
    the request provably never left (connection refused, DNS failure, connect timeout)."""
    if idempotent or not delivered:
        return True
    return status in NOT_PROCESSED_STATUSES


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date (a date in
    the past means 0). None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one call is retried.

    ``max_attempts`` counts the first attempt; ``max_elapsed`` bounds the whole call, waits included
    (a ``Retry-After`` longer than what is left ends the call at once instead of sleeping past it)."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 180.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry: int) -> float:
        """A random wait before retry number ``retry`` (1 for the first): full jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, retry - 1))
        return self.rng.uniform(0.0, ceiling)

    def start(self, clock: Callable[[], float] = time.monotonic) -> Attempts:
        """Track one call's attempts, its first attempt about to be made."""
        return Attempts(self, clock)


class Attempts:
    """The attempts of one call so far."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.clock = clock
        self.started = clock()
        self.made = 1

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, counting it as made; None when the call must give
        up (attempts used up, or the wait would end past ``max_elapsed``)."""
        if self.made >= self.policy.max_attempts:
            return None
        delay = retry_after if retry_after is not None else self.policy.backoff(self.made)
        if self.elapsed + delay > self.policy.max_elapsed:
            return None
        self.made += 1
        return delay


__all__ = [
    "NOT_PROCESSED_STATUSES",
    "RETRYABLE_STATUSES",
    "Attempts",
    "RetryPolicy",
    "parse_retry_after",
    "safe_to_resend",
]
