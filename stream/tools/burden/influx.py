"""The alarm-burden report's InfluxDB side: the Flux that reads a window, and writing lines.

Owns the three queries behind :func:`stream.tools.burden.metrics.burden` (each optionally
confined to one ward inside the Flux, so a ward's report never reads another ward):

- the alarms: ``alerts`` points with ``event=triggered`` (field ``alert_id``);
- the acknowledgements: ``adjudications``, fields pivoted beside the tags;
- the patient-time: ``vitals`` counted per :data:`~.metrics.STEP_S` step per series
  (InfluxDB pushes that down to storage), then the steps of each (ward, patient) counted
  once whatever the fields: the union of the fields' steps.

and :func:`write_lines`, which the simulated week writes with. Times are passed to Flux
as RFC 3339 literals, strings as escaped Flux string literals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from stream.config import Settings
from stream.sinks.measurements import NO_VERDICT
from stream.tools.burden.metrics import STEP_S, AdjudicationRow, AlarmRow, burden

WRITE_BATCH = 5000


def flux_string(text: str) -> str:
    """A Flux string literal (quotes, backslashes and ``${`` interpolation escaped).

    >>> print(flux_string('ward "A" ${x}'))
    "ward \\"A\\" \\${x}"
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def flux_time(t: float) -> str:
    """Epoch seconds as a Flux time literal.

    >>> flux_time(1.5)
    '1970-01-01T00:00:01.500000Z'
    """
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _source(bucket: str, start: float, stop: float, predicate: str, ward: str | None) -> str:
    where = f"{predicate} and r.ward == {flux_string(ward)}" if ward is not None else predicate
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
        f"  |> filter(fn: (r) => {where})\n"
    )


def alarms_flux(bucket: str, start: float, stop: float, ward: str | None = None) -> str:
    """Every ``triggered`` alert event of the window, one row each."""
    return _source(
        bucket, start, stop,
        'r._measurement == "alerts" and r._field == "alert_id" and r.event == "triggered"', ward,
    ) + (
        '  |> keep(columns: ["_time", "_value", "ward", "patient", "kind", "priority"])\n'
        "  |> group()"
    )  # fmt: skip


def adjudications_flux(bucket: str, start: float, stop: float, ward: str | None = None) -> str:
    """Every acknowledgement of the window, its fields beside its tags."""
    return _source(bucket, start, stop, 'r._measurement == "adjudications"', ward) + (
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n  |> group()'
    )


def patient_steps_flux(bucket: str, start: float, stop: float, ward: str | None = None) -> str:
    """Per (ward, patient): the :data:`~.metrics.STEP_S` steps with at least one ``vitals``
    sample of any field."""
    return _source(bucket, start, stop, 'r._measurement == "vitals"', ward) + (
        f"  |> aggregateWindow(every: {STEP_S}s, fn: count, createEmpty: false)\n"
        '  |> group(columns: ["ward", "patient"])\n'
        f"  |> aggregateWindow(every: {STEP_S}s, fn: count, createEmpty: false)\n"
        "  |> count()\n"
        "  |> group()"
    )


def _records(client: Any, flux: str, org: str) -> list[dict[str, Any]]:
    return [r.values for t in client.query_api().query(flux, org=org) for r in t.records]


def _epoch(value: datetime) -> float:
    return value.timestamp()


def read_window(
    client: Any, bucket: str, org: str, start: float, stop: float, ward: str | None = None
) -> tuple[list[AlarmRow], list[AdjudicationRow], dict[tuple[str, str], float]]:
    """The alarms, acknowledgements and monitored seconds per (ward, patient) of a window
    (and ward)."""
    alarms = [
        AlarmRow(
            str(r["_value"]), _epoch(r["_time"]), r["ward"], r["patient"], r["kind"],
            r["priority"],
        )
        for r in _records(client, alarms_flux(bucket, start, stop, ward), org)
    ]  # fmt: skip
    adjudications = []
    for r in _records(client, adjudications_flux(bucket, start, stop, ward), org):
        latency = r.get("latency_s")
        adjudications.append(
            AdjudicationRow(
                str(r["alert_id"]), _epoch(r["_time"]), r["ward"], r["patient"], r["kind"],
                r["priority"], r.get("verdict") or NO_VERDICT,
                None if latency is None else float(latency),
                int(r.get("escalation_level") or 0), str(r.get("by") or ""),
            )
        )  # fmt: skip
    seconds = {
        (r["ward"], r["patient"]): float(r["_value"] * STEP_S)
        for r in _records(client, patient_steps_flux(bucket, start, stop, ward), org)
    }
    return alarms, adjudications, seconds


def window_result(
    client: Any, bucket: str, org: str, start: float, stop: float, ward: str | None = None
) -> dict[str, Any]:
    """The report's figures for a window (and ward), read from ``bucket``."""
    alarms, adjudications, seconds = read_window(client, bucket, org, start, stop, ward)
    result = burden(alarms, adjudications, seconds, start=start, stop=stop, ward=ward)
    result["bucket"] = bucket
    return result


def bucket_exists(client: Any, bucket: str) -> bool:
    return client.buckets_api().find_bucket_by_name(bucket) is not None


def recreate_bucket(client: Any, bucket: str, org: str) -> None:
    """Delete the bucket if it exists and create it empty (infinite retention)."""
    api = client.buckets_api()
    found = api.find_bucket_by_name(bucket)
    if found is not None:
        api.delete_bucket(found)
    api.create_bucket(bucket_name=bucket, org=org)


@contextmanager
def influx_client(settings: Settings) -> Iterator[Any]:
    """An InfluxDB client for the configured server (closed after the block)."""
    from influxdb_client import InfluxDBClient

    influx = settings.influx
    with InfluxDBClient(
        url=influx.url,
        token=settings.influx_token or "",
        org=influx.org,
        timeout=int(max(influx.timeout_s, 60.0) * 1000),
    ) as client:
        yield client


def write_lines(
    client: Any, bucket: str, org: str, lines: Iterable[str], batch: int = WRITE_BATCH
) -> int:
    """Write line-protocol lines (nanosecond times) in batches; how many were written."""
    from influxdb_client import WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    api = client.write_api(write_options=SYNCHRONOUS)
    written = 0
    chunk: list[str] = []
    for text in lines:
        chunk.append(text)
        if len(chunk) >= batch:
            api.write(bucket=bucket, org=org, record=chunk, write_precision=WritePrecision.NS)
            written += len(chunk)
            chunk = []
    if chunk:
        api.write(bucket=bucket, org=org, record=chunk, write_precision=WritePrecision.NS)
        written += len(chunk)
    return written
