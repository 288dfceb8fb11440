"""Retry policy: backoff grows, is capped, and the total budget runs out."""

from __future__ import annotations

import random

from stream.sinks.retry import RetryPolicy


def test_retry_policy_grows_caps_and_stops():
    policy = RetryPolicy(initial_s=0.1, factor=2, max_delay_s=1.0, total_s=10)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(8)]
    assert all(0.05 <= d <= 0.1 for d in delays[:1])
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    assert not policy.exhausted(0.0, 9.9)
    assert policy.exhausted(0.0, 10.0)
