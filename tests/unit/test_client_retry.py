"""The client's retry rules: Retry-After in both spellings, full-jitter backoff bounds, bounded attempts
and total time, which failures may be sent again, and the adaptive status polling."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from comfy_serverless.client import PollPolicy, RetryPolicy
from comfy_serverless.client.retry import parse_retry_after, safe_to_resend

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (" 2.5 ", 2.5),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),  # a date already past: go now
        ("-3", 0.0),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "nan", "Someday, 99 Foo 2026"])
def test_an_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_backoff_draws_over_the_whole_range_up_to_a_doubling_capped_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=6.0, rng=random.Random(7))
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 6.0), (9, 6.0)]:
        draws = [policy.backoff(retry) for _ in range(300)]
        assert all(0.0 <= draw <= ceiling for draw in draws)
        # Full jitter: the draws cover the range, not a band near the ceiling.
        assert min(draws) < 0.1 * ceiling and max(draws) > 0.9 * ceiling


def test_a_call_gets_at_most_max_attempts() -> None:
    attempts = RetryPolicy(max_attempts=3, base_delay=0.01).start(clock=lambda: 0.0)
    assert attempts.next_delay() is not None
    assert attempts.next_delay() is not None
    assert attempts.next_delay() is None
    assert attempts.made == 3


def test_retry_after_replaces_the_backoff_while_it_fits_the_time_budget() -> None:
    now = [100.0]
    attempts = RetryPolicy(max_attempts=10, base_delay=50.0, max_elapsed=30.0).start(clock=lambda: now[0])
    assert attempts.next_delay(retry_after=12.0) == 12.0
    now[0] += 12.0
    # 12 s spent; 20 more would end past the 30 s budget: give up now rather than sleep past it.
    assert attempts.next_delay(retry_after=20.0) is None


def test_backoff_never_ends_past_the_time_budget() -> None:
    class Ceiling(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    now = [0.0]
    attempts = RetryPolicy(max_attempts=10, base_delay=4.0, max_elapsed=10.0, rng=Ceiling()).start(
        clock=lambda: now[0]
    )
    assert attempts.next_delay() == 4.0
    now[0] += 4.0
    assert attempts.next_delay() is None  # 4 + 8 > 10


@pytest.mark.parametrize(
    ("status", "idempotent", "delivered", "safe"),
    [
        (None, True, True, True),  # a read whose answer was lost
        (502, True, True, True),
        (None, False, False, True),  # a submission refused at connect: never arrived
        (429, False, True, True),  # rate limited: RunPod did not take it
        (503, False, True, True),
        (408, False, True, True),
        (None, False, True, False),  # a submission whose answer was lost may have queued a job
        (500, False, True, False),
        (502, False, True, False),
        (504, False, True, False),
    ],
)
def test_only_requests_provably_not_acted_on_are_sent_again_unless_repeatable(
    status: int | None, idempotent: bool, delivered: bool, safe: bool
) -> None:
    assert safe_to_resend(status, idempotent=idempotent, delivered=delivered) is safe


def test_polling_backs_off_while_nothing_changes_and_speeds_up_on_progress() -> None:
    poll = PollPolicy(initial=0.5, maximum=5.0, factor=2.0)
    delays = [0.5]
    for _ in range(6):
        delays.append(poll.next_delay(delays[-1], changed=False))
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert poll.next_delay(5.0, changed=True) == 2.5
    assert poll.next_delay(0.5, changed=True) == 0.5
