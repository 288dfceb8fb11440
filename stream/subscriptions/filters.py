"""Subscription filters, parsed strictly from query parameters.

Every parameter is repeatable except ``min_priority`` and ``cursor``. An unknown name or a
bad value raises :class:`FilterError` with a message precise enough to show the caller.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from stream.records import PRIORITY_RANK, Alert

FILTER_PARAMS = ("patient", "ward", "device", "kind", "min_priority")
# Parameters that are not filters but are still accepted on feed endpoints.
CONTROL_PARAMS = ("cursor",)
_MAX_VALUE_CHARS = 128


class FilterError(ValueError):
    """An unknown or invalid filter parameter."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class AlertFilter(BaseModel):
    """Which alerts a subscriber wants; empty sets mean 'any'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    patients: frozenset[str] = frozenset()
    wards: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    min_priority: str = Field("low", pattern="^(low|medium|high)$")

    def matches(self, alert: Alert) -> bool:
        return (
            (not self.patients or alert.patient in self.patients)
            and (not self.wards or alert.ward in self.wards)
            and (not self.devices or alert.device_id in self.devices)
            and (not self.kinds or alert.kind in self.kinds)
            and PRIORITY_RANK[alert.priority] >= PRIORITY_RANK[self.min_priority]
        )


def parse_filter(
    params: Iterable[tuple[str, str]], allowed_extra: tuple[str, ...] = CONTROL_PARAMS
) -> AlertFilter:
    """Build a filter from (name, value) pairs; reject anything unknown or malformed."""
    values: dict[str, set[str]] = {name: set() for name in FILTER_PARAMS}
    for name, value in params:
        if name in allowed_extra:
            continue
        if name in ("token", "access_token"):
            raise FilterError(
                "token_in_query",
                "tokens are accepted only in the Authorization header, never in the URL",
            )
        if name not in values:
            allowed = ", ".join(FILTER_PARAMS + allowed_extra)
            raise FilterError(
                "unknown_filter", f"unknown query parameter {name!r}; allowed: {allowed}"
            )
        if not value or len(value) > _MAX_VALUE_CHARS:
            raise FilterError("bad_filter", f"{name} must be 1..{_MAX_VALUE_CHARS} characters")
        values[name].add(value)
    priorities = values.pop("min_priority")
    if len(priorities) > 1:
        raise FilterError("bad_filter", "min_priority may be given once")
    min_priority = next(iter(priorities), "low")
    if min_priority not in PRIORITY_RANK:
        raise FilterError(
            "bad_filter", f"min_priority {min_priority!r} is not one of low, medium, high"
        )
    return AlertFilter(
        patients=frozenset(values["patient"]),
        wards=frozenset(values["ward"]),
        devices=frozenset(values["device"]),
        kinds=frozenset(values["kind"]),
        min_priority=min_priority,
    )
