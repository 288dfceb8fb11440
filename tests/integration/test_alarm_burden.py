"""The alarm-burden report on the real InfluxDB, from a simulated stretch of a ward.

A short simulation (the worker's pipeline, the scripted adjudicator, the alert service's
book) is written to a fresh bucket in the production format; the report, reading it back
with its own Flux, must count exactly what the simulation says it produced, and the
``vitalstream alerts report`` command must write its report from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient
from typer.testing import CliRunner

from stream.cli.main import app
from stream.config import Settings
from stream.tools.adjudicator import AckPolicy
from stream.tools.burden.influx import window_result
from stream.tools.burden.metrics import iso
from stream.tools.burden.simulate import plan_week, simulate_into

pytestmark = pytest.mark.integration

DEVICES = 10
SECONDS = 300
# Quick nurses: most alarms are acknowledged while still open, so every verdict path and
# the acknowledgement counts are exercised within a short run.
QUICK = AckPolicy(median_s={"high": 20.0, "medium": 40.0, "low": 60.0}, never={"low": 0.5})


def test_the_report_counts_what_the_simulation_wrote(
    isolated_settings: Settings, influx_client: InfluxDBClient, tmp_path: Path
) -> None:
    settings = isolated_settings
    bucket, org = settings.influx.bucket, settings.influx.org
    start = float(int(time.time()) // 60 * 60) - 4 * 3600
    specs = plan_week(
        ["default", "noisy_ambulatory"], 1, devices=DEVICES, seconds=SECONDS, start=start,
        span_s=2 * 3600,
    )  # fmt: skip
    simulated = simulate_into(influx_client, bucket, org, specs, workers=1, policy=QUICK)
    totals = simulated["totals"]
    assert totals["alarms"] > 0 and totals["acknowledged"] > 0, totals
    assert sum(simulated["scripted_verdicts"].values()) == totals["alarms"]

    stop = start + 4 * 3600
    result = window_result(influx_client, bucket, org, start, stop)
    summary = result["summary"]
    assert summary["alarms"] == totals["alarms"]
    assert summary["acknowledged"] == totals["acknowledged"]
    assert {v: n for v, n in summary["verdicts"].items() if n} == simulated["verdicts"]
    assert summary["escalated_before_ack"] <= totals["escalations"]
    assert result["adjudications_outside_window"] == 0
    # Every device of both runs is a patient of its own, monitored for the run: its time
    # is the run's, give or take a 10 s step at each end (a silent device loses some).
    assert result["patients"] == 2 * DEVICES
    simulated_hours = 2 * DEVICES * SECONDS / 3600
    assert 0.9 * simulated_hours <= result["patient_hours"] <= 1.03 * simulated_hours
    assert {row["ward"] for row in result["by_ward"]} == {"ward-a", "ward-c"}
    assert sum(row["alarms"] for row in result["by_kind"]) == totals["alarms"]
    latency = summary["time_to_ack_s"]
    assert latency["n"] == totals["acknowledged"] and 0 < latency["median"] <= latency["p90"]

    # One ward alone: only its alarms, and its own patients' time.
    ward_a = window_result(influx_client, bucket, org, start, stop, ward="ward-a")
    assert ward_a["patients"] == DEVICES
    assert [row["ward"] for row in ward_a["by_ward"]] == ["ward-a"]
    assert ward_a["summary"]["alarms"] < summary["alarms"]

    out = tmp_path / "report"
    described = tmp_path / "simulation.json"
    described.write_text(json.dumps(simulated))
    command = [
        "alerts", "report", "--bucket", bucket, "--since", iso(start), "--until", iso(stop),
        "--out", str(out), "--json", "--simulation", str(described),
    ]  # fmt: skip
    ran = CliRunner().invoke(app, command, env=settings.child_env_vars())
    assert ran.exit_code == 0, ran.output
    printed = json.loads(ran.stdout)
    assert printed["summary"]["alarms"] == totals["alarms"]
    assert json.loads((out / "report.json").read_text()) == printed
    text = (out / "report.md").read_text()
    assert f"**{totals['alarms']} alarms**" in text
    assert (
        f"Outcome of the {totals['alarms']} alarms: {totals['acknowledged']} acknowledged" in text
    )
    for name in ("burden.png", "verdicts.png", "time-to-ack.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
