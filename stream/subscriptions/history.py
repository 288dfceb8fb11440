"""A patient's recent vitals from InfluxDB, for the ward board's chart (``GET /vitals``).

Owns the Flux query (pure, below) and its read. The query is confined to the token's
scope inside InfluxDB itself: it filters on the ``patient`` tag *and* on the token's
wards (``ward`` tag), so a point written while the patient was on another ward is never
returned to a token of this one. Values are the device's own 1 Hz readings in measurement
``vitals`` (fields ``hr``, ``spo2``, ``resp``; see :func:`stream.sinks.measurements.vitals_lines`),
averaged per window so a 30-minute chart carries at most :data:`MAX_POINTS` points a series.

The browser never sees InfluxDB: the alert service reads it with its own token.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stream.config import Settings

VITAL_FIELDS = ("hr", "spo2", "resp")
MAX_POINTS = 360
MAX_MINUTES = 240
# Pseudonyms are ``p-`` + hex; simulator and test patients are short slugs. Anything with
# quotes, spaces or control characters is not a patient this service has written.
PATIENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def flux_string(text: str) -> str:
    r"""A Flux string literal holding exactly ``text`` (quotes, backslashes, ``${`` escaped).

    >>> print(flux_string('ward "A"'))
    "ward \"A\""
    >>> print(flux_string("a\\b ${x}"))
    "a\\b \${x}"
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def window_s(minutes: int) -> int:
    """Seconds averaged into one chart point: at most :data:`MAX_POINTS` points a series.

    >>> window_s(30), window_s(1), window_s(240)
    (5, 1, 40)
    """
    return max(1, math.ceil(minutes * 60 / MAX_POINTS))


def vitals_flux(
    bucket: str, patient: str, wards: Sequence[str] | Literal["*"], minutes: int
) -> str:
    """The Flux query for one patient's ``hr``/``spo2``/``resp`` over the last ``minutes``.

    ``wards`` is the token's scope: ``"*"`` adds no ward condition, a list keeps only
    points tagged with one of those wards.

    >>> print(vitals_flux("vitals", "p-1", ["A", "B"], 30))  # doctest: +NORMALIZE_WHITESPACE
    from(bucket: "vitals")
      |> range(start: -30m)
      |> filter(fn: (r) => r._measurement == "vitals" and r.patient == "p-1")
      |> filter(fn: (r) => r._field == "hr" or r._field == "spo2" or r._field == "resp")
      |> filter(fn: (r) => r.ward == "A" or r.ward == "B")
      |> group(columns: ["_field"])
      |> aggregateWindow(every: 5s, fn: mean, createEmpty: false)
      |> keep(columns: ["_time", "_field", "_value"])
    """
    fields = " or ".join(f"r._field == {flux_string(name)}" for name in VITAL_FIELDS)
    lines = [
        f"from(bucket: {flux_string(bucket)})",
        f"  |> range(start: -{int(minutes)}m)",
        '  |> filter(fn: (r) => r._measurement == "vitals"'
        f" and r.patient == {flux_string(patient)})",
        f"  |> filter(fn: (r) => {fields})",
    ]
    if wards != "*":
        allowed = " or ".join(f"r.ward == {flux_string(ward)}" for ward in wards) or "false"
        lines.append(f"  |> filter(fn: (r) => {allowed})")
    lines += [
        '  |> group(columns: ["_field"])',
        f"  |> aggregateWindow(every: {window_s(minutes)}s, fn: mean, createEmpty: false)",
        '  |> keep(columns: ["_time", "_field", "_value"])',
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class VitalsHistory:
    """What ``GET /vitals`` answers: per field, ``[epoch seconds, value]`` in time order."""

    patient: str
    minutes: int
    window_s: int
    now: float
    series: dict[str, list[tuple[float, float]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "minutes": self.minutes,
            "window_s": self.window_s,
            "now": self.now,
            "series": {name: [list(p) for p in points] for name, points in self.series.items()},
        }


def series_from_rows(rows: Iterable[tuple[str, float, float | None]]) -> dict[str, list]:
    """``(field, epoch s, value)`` rows as sorted series; null values are left out.

    >>> series_from_rows([("hr", 2.0, 71.0), ("hr", 1.0, 70.0), ("spo2", 1.0, None)])
    {'hr': [(1.0, 70.0), (2.0, 71.0)], 'spo2': [], 'resp': []}
    """
    series: dict[str, list[tuple[float, float]]] = {name: [] for name in VITAL_FIELDS}
    for name, t, value in rows:
        if name in series and value is not None and math.isfinite(value):
            series[name].append((t, float(value)))
    for points in series.values():
        points.sort()
    return series


def read_vitals(
    settings: Settings, token: str, patient: str, wards: Sequence[str] | Literal["*"], minutes: int
) -> VitalsHistory:
    """Query InfluxDB (blocking: run it on a worker thread) for the chart's series."""
    from influxdb_client import InfluxDBClient

    influx = settings.influx
    query = vitals_flux(influx.bucket, patient, wards, minutes)
    now = time.time()
    with InfluxDBClient(
        url=influx.url, token=token, org=influx.org, timeout=int(influx.timeout_s * 1000)
    ) as client:
        tables = client.query_api().query(query, org=influx.org)
    rows = (
        (record.get_field(), record.get_time().timestamp(), record.get_value())
        for table in tables
        for record in table.records
    )
    return VitalsHistory(patient, minutes, window_s(minutes), now, series_from_rows(rows))
