"""`ServiceError`: the one exception a broken Kafka or InfluxDB surfaces as.

Its message is a single specific line (what failed, where, why) that the CLI prints
as-is; an optional ``log_tail`` carries the service's last log lines for `services up`.
"""

from __future__ import annotations


class ServiceError(RuntimeError):
    """A local or remote service is unreachable, misconfigured or failed to start."""

    def __init__(self, message: str, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail
