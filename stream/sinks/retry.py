"""The sink's retry policy: exponential backoff with jitter, bounded in total.

Pure arithmetic, no I/O: :class:`stream.sinks.influx.InfluxSink` sleeps the delays and asks
:meth:`RetryPolicy.exhausted` when to spool or report backpressure.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, each delay capped, the total capped.

    Delay ``n`` (0-based) is uniform in ``[c/2, c]`` with ``c = min(max_delay_s,
    initial_s * factor**n)``;
    after ``total_s`` of retrying the caller is told (:meth:`exhausted`) so it can report
    backpressure. Jitter keeps a fleet of workers from hammering a recovering InfluxDB in
    lockstep.

    >>> policy = RetryPolicy(initial_s=1.0, factor=2.0, max_delay_s=3.0, total_s=10.0)
    >>> [1.0 <= policy.delay(1) <= 2.0, 1.5 <= policy.delay(5) <= 3.0]
    [True, True]
    >>> policy.exhausted(started=0.0, now=9.9), policy.exhausted(started=0.0, now=10.0)
    (False, True)
    """

    initial_s: float = 0.2
    factor: float = 2.0
    max_delay_s: float = 5.0
    total_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay_s, self.initial_s * self.factor**attempt)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1

    def exhausted(self, started: float, now: float) -> bool:
        return now - started >= self.total_s
