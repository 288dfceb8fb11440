"""InfluxDB line protocol, built by hand: escapes, field types, series keys, timestamps.

Pure string building, no I/O. Which measurement, tags and fields each record becomes is
:mod:`stream.sinks.measurements`; writing the lines is :mod:`stream.sinks.influx`.

Lines are strings, not influxdb-client ``Point`` objects (those cost microseconds each).
Timestamps come from frame time, never the wall clock, so a replay after a crash
overwrites the same points instead of duplicating them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

FieldValue = float | int | bool | str

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\\": "\\\\"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": ""})


def to_ns(t: float) -> int:
    """Epoch seconds to integer nanoseconds, rounded to the microsecond so the same frame
    time always gives the same timestamp (float noise below 1 µs would split points).

    >>> to_ns(1.000001)
    1000001000
    >>> to_ns(1_795_535_491.1) == to_ns(1_795_535_491.0 + 0.1)
    True
    """
    return round(t * 1_000_000) * 1000


def _field(value: FieldValue) -> str | None:
    if type(value) is float:  # nearly every field: skip the isinstance chain
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return f'"{escaped}"'
    return None


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    t: float,
) -> str | None:
    """One line-protocol line; ``None`` when no field has a finite value.

    >>> line("vitals", {"device": "d1"}, {"hr": 72.0, "lead_off": False}, 1.5)
    'vitals,device=d1 hr=72.0,lead_off=false 1500000000'
    """
    encoded = []
    for name, value in fields.items():
        if type(value) is float:  # nearly every field: no call into _field
            if math.isfinite(value):
                encoded.append(f"{_escaped_key(name)}={value!r}")
            continue
        if value is None:
            continue
        text = _field(value)
        if text is not None:
            encoded.append(f"{_escaped_key(name)}={text}")
    if not encoded:
        return None
    return f"{_series_key(measurement, tuple(tags.items()))} {','.join(encoded)} {to_ns(t)}"


# Measurement, tag and field names repeat on every line of a device (and field names on
# every line of a measurement): escape each distinct one once.
@lru_cache(maxsize=1024)
def _escaped_key(name: str) -> str:
    return name.translate(_TAG_ESCAPES)


@lru_cache(maxsize=65536)
def _series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    return head + "".join(
        f",{k.translate(_TAG_ESCAPES)}={v.translate(_TAG_ESCAPES)}" for k, v in sorted(tags) if v
    )
