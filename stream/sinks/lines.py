"""InfluxDB line protocol, built by hand: escapes, field types, series keys, timestamps.

Pure string building, no I/O. Which measurement, tags and fields each record becomes is
:mod:`stream.sinks.measurements`; writing the lines is :mod:`stream.sinks.influx`.

Lines are strings, not influxdb-client ``Point`` objects (those cost microseconds each).
Timestamps come from frame time, never the wall clock, so a replay after a crash
overwrites the same points instead of duplicating them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import compress
from math import isfinite
from operator import add

import orjson

FieldValue = float | int | bool | str

# Distinct field names are few (the schema's, the features', the models' classes), but a
# cache that only grows must still have a bound: past it, it starts again.
MAX_CACHED_FIELD_NAMES = 4096

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
    prefixes = _FIELD_PREFIXES
    encoded = []
    for name, value in fields.items():
        # Nearly every field is a float: no call into _field, and ``x - x == 0.0`` is the
        # finiteness test without a call (inf - inf and anything with NaN are NaN).
        if type(value) is float:
            if value - value == 0.0:
                encoded.append((prefixes.get(name) or field_prefix(name)) + repr(value))
            continue
        if value is None:
            continue
        text = _field(value)
        if text is not None:
            encoded.append((prefixes.get(name) or field_prefix(name)) + text)
    if not encoded:
        return None
    series = _series_key(measurement, tuple(tags.items()))
    return f"{series} {','.join(encoded)} {round(t * 1_000_000) * 1000}"  # to_ns, inlined


def series_key(measurement: str, tags: Sequence[tuple[str, str]]) -> str:
    """The escaped ``measurement,tag=value,...`` head of a line (tags sorted, empty ones
    left out), as :func:`line` writes it.

    >>> print(series_key("vitals", (("ward", "w 7"), ("patient", ""), ("device", "d1"))))
    vitals,device=d1,ward=w\\ 7
    """
    return _series_key(measurement, tuple(tags))


def field_prefix(name: str) -> str:
    """``name=`` with the field name escaped as :func:`line` escapes it (cached).

    >>> print(field_prefix("a,b"))
    a\\,b=
    """
    prefix = _FIELD_PREFIXES.get(name)
    if prefix is None:
        if len(_FIELD_PREFIXES) >= MAX_CACHED_FIELD_NAMES:
            _FIELD_PREFIXES.clear()
        prefix = _FIELD_PREFIXES[name] = name.translate(_TAG_ESCAPES) + "="
    return prefix


# What float_reprs writes for a NaN or an infinity (JSON's null): never a float's repr.
NON_FINITE = "null"


def float_reprs(values: list[float]) -> list[str]:
    """``repr`` of each value (exact Python floats), :data:`NON_FINITE` for NaN and
    infinities, at a fraction of the cost of ``repr``.

    ``repr`` of a float is the shortest text that reads back as the same float, found by
    Python with big-number arithmetic: a microsecond for a 17-digit feature value. orjson
    finds the same shortest, correctly rounded digits with a faster algorithm and writes
    them as ``repr`` does in the positional range; where the two spell a number differently
    (the exponent forms: ``1e-05`` against ``0.00001``, ``1e+16``), ``repr`` writes it. The
    module checks at import that orjson agrees (:data:`_ORJSON_WRITES_REPR`); if it does
    not, every value goes through ``repr``.

    >>> float_reprs([80.41884816753927, 96.0, float("nan"), 2.5e-05, -1e16, -0.0])
    ['80.41884816753927', '96.0', 'null', '2.5e-05', '-1e+16', '-0.0']
    """
    if not _ORJSON_WRITES_REPR or not values:
        return [repr(v) if isfinite(v) else NON_FINITE for v in values]
    written = orjson.dumps(values)
    texts = written[1:-1].decode().split(",")
    # Below 1e-4 (after a "0.0000") or in exponent form, orjson's spelling may not be
    # repr's: those (rare) values take repr. A "0.0000" inside a larger number ("10.00001")
    # only costs a needless repr.
    if b"e" in written or b"0.0000" in written:
        texts = [
            repr(v) if "e" in text or "0.0000" in text else text
            for text, v in zip(texts, values, strict=True)
        ]
    return texts


def _orjson_writes_repr() -> bool:
    """Whether this orjson writes floats of the positional range as ``repr`` does."""
    probes = [0.0, -0.0, 1.0, -2.5, 0.1, 1 / 3, 2 / 3, 1e-4, 0.00012, 123.456, 1e15]
    probes += [9999999999999998.0, 2.0**52 + 1, 80.41884816753927, 0.30000000000000004]
    try:
        written = orjson.dumps(probes).decode()
    except TypeError:
        return False
    return written == "[" + ",".join(map(repr, probes)) + "]"


_ORJSON_WRITES_REPR = _orjson_writes_repr()


def float_fields(prefixes: Sequence[str], values: Sequence[float]) -> str:
    """The field set of float fields as :func:`line` writes it, in one pass of C loops:
    ``prefixes`` from :func:`field_prefix`, ``values`` exact Python floats (``repr`` of a
    numpy scalar is not the float's), the non-finite ones left out; ``""`` when none is.

    >>> float_fields([field_prefix("hr"), field_prefix("sqi")], [float("nan"), 0.5])
    'sqi=0.5'
    """
    return ",".join(compress(map(add, prefixes, map(repr, values)), map(isfinite, values)))


# Measurement, tag and field names repeat on every line of a device (and field names on
# every line of a measurement): escape each distinct one once. Field name → ``name=``.
_FIELD_PREFIXES: dict[str, str] = {}


@lru_cache(maxsize=65536)
def _series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    return head + "".join(
        f",{k.translate(_TAG_ESCAPES)}={v.translate(_TAG_ESCAPES)}" for k, v in sorted(tags) if v
    )
