"""Benchmark results shared by the report's tests (the report's sections and its I/O)."""

from __future__ import annotations

import pytest


@pytest.fixture
def headroom_suite() -> dict:
    """A headroom suite's JSON, as ``vitalstream bench headroom --json`` writes it."""
    row = {
        "devices": 5000, "produced_frames_per_s": 4990.0, "consumed_frames_per_s": 4985.0,
        "lag_frames_end": 900, "lag_slope_frames_per_s": 1.5,
        "cpu_percent": {"simulator": 45.0, "kafka": 20.0, "influxd": 40.0, "passthrough": 50.0},
        "total_cpu_percent": 155.0, "cores": 2, "cores_left": 0.45,
        "budget_us_per_frame": 90.3, "passthrough_us_per_frame": 100.3, "lines_per_frame": 4.0,
        "realtime": True, "producer_realtime": True, "passthrough_keeps_up": True,
    }  # fmt: skip
    summary = {
        key: row[key]
        for key in ("devices", "consumed_frames_per_s", "realtime", "passthrough_keeps_up",
                    "total_cpu_percent", "cores", "cores_left", "budget_us_per_frame")
    } | {"e2e_worker_us_per_frame": 2920.0, "e2e_knee_devices": 500, "e2e_knee_workers": 2,
         "speedup_needed": 32.34, "analysis_speedup_needed": 31.23,
         "pydantic_decode_us_per_frame": 135.3, "seconds_per_size": 60, "warmup_s": 20}  # fmt: skip
    return {"suite": "headroom", "machine": {"cpu": "X", "cores": 2}, "versions": {},
            "results": [row], "summary": summary}  # fmt: skip
