"""Training data read back from InfluxDB: the features and alerts the stream wrote.

``vitalstream train deterioration --from-influx -7d`` learns from real traffic: the
``features`` measurement (tags ``patient``, ``device``; one field per feature name, one
point per 10 s window) becomes per-patient sequences, and a window is labelled positive
when the same patient had a physiological alert (measurement ``alerts``) within
:data:`HORIZON_S` after the window ends: the model learns to see it coming.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from models import dataset
from stream.config import Settings

HORIZON_S = 1800.0
# A relative Flux duration such as -7d or -12h30m: the only thing interpolated into Flux.
RANGE_PATTERN = re.compile(r"^-\d+(ns|us|ms|s|m|h|d|w|mo|y)(\d+(ns|us|ms|s|m|h|d|w|mo|y))*$")


def _flux(settings: Settings, start: str) -> tuple[str, str]:
    bucket = settings.influx.bucket.replace('"', "")
    fields = " or ".join(f'r._field == "{name}"' for name in dataset.DETERIORATION_FEATURES)
    features = f"""
from(bucket: "{bucket}")
  |> range(start: {start})
  |> filter(fn: (r) => r._measurement == "features")
  |> filter(fn: (r) => {fields})
  |> pivot(rowKey: ["_time", "patient"], columnKey: ["_field"], valueColumn: "_value")
  |> group(columns: ["patient"])
  |> sort(columns: ["_time"])
"""
    alerts = f"""
from(bucket: "{bucket}")
  |> range(start: {start})
  |> filter(fn: (r) => r._measurement == "alerts" and r.category == "physiological")
  |> keep(columns: ["_time", "patient"])
  |> group(columns: ["patient"])
"""
    return features, alerts


def deterioration_windows_from_influx(settings: Settings, start: str) -> dataset.Windows:
    """Deterioration training windows from the stream's own features and alerts."""
    from influxdb_client import InfluxDBClient

    if not RANGE_PATTERN.match(start):
        raise ValueError(f"range must be a relative Flux duration such as -7d, got {start!r}")
    features_query, alerts_query = _flux(settings, start)
    series: dict[str, list[tuple[float, list[float]]]] = defaultdict(list)
    alert_times: dict[str, list[float]] = defaultdict(list)
    with InfluxDBClient(
        url=settings.influx.url,
        token=settings.influx_token,
        org=settings.influx.org,
        timeout=int(settings.influx.timeout_s * 1000),
    ) as client:
        query = client.query_api()
        for table in query.query(features_query):
            for record in table.records:
                row = [
                    float(v) if (v := record.values.get(n)) is not None else float("nan")
                    for n in dataset.DETERIORATION_FEATURES
                ]
                series[record.values["patient"]].append((record.get_time().timestamp(), row))
        for table in query.query(alerts_query):
            for record in table.records:
                alert_times[record.values["patient"]].append(record.get_time().timestamp())
    return windows_from_series(series, alert_times)


def windows_from_series(
    series: dict[str, list[tuple[float, list[float]]]],
    alert_times: dict[str, list[float]],
    hop: int = 6,
) -> dataset.Windows:
    """Sliding 10 min sequences per patient, labelled by an alert in the next 30 min."""
    length = int(dataset.DETERIORATION_WINDOW_S * dataset.DETERIORATION_FS)
    x, y, patients = [], [], []
    for patient, points in series.items():
        times = np.array([t for t, _ in points])
        values = np.array([v for _, v in points], dtype=np.float32)
        alerts = np.sort(np.asarray(alert_times.get(patient, []), dtype=float))
        for end in range(length, len(points) + 1, hop):
            t_end = times[end - 1]
            upcoming = np.searchsorted(alerts, t_end, side="right") < np.searchsorted(
                alerts, t_end + HORIZON_S, side="right"
            )
            x.append(values[end - length : end])
            y.append([float(upcoming)])
            patients.append(patient)
    if not x:
        raise ValueError("InfluxDB holds no complete 10 min feature sequence in that range")
    return dataset.Windows(
        x=np.stack(x),
        y=np.asarray(y, dtype=np.float32),
        patients=np.asarray(patients),
        classes=dataset.DETERIORATION_CLASSES,
        channels=dataset.DETERIORATION_FEATURES,
        fs=dataset.DETERIORATION_FS,
    )
