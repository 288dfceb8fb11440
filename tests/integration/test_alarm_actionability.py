"""Training alarm actionability from what InfluxDB holds.

A synthetic ward's alarms are written to a fresh bucket the way production writes them
(the worker's ``alerts`` and window ``features``/``quality``, the alert service's
``adjudications``); reading them back must give exactly the rows they were made from,
and ``vitalstream train alarm-actionability --from-influx`` must train, register and
report a model from them that beats the kind-and-priority baseline on held-out patients.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient
from typer.testing import CliRunner

from models.adjudicated import read_influx
from stream.cli.main import app
from stream.config import Settings
from stream.sinks.measurements import adjudication_line, alert_line, feature_lines, patient_tags
from stream.tools.burden.influx import write_lines
from tests.unit.models import synthetic_adjudications as synthetic

pytestmark = pytest.mark.integration


def test_training_reads_the_adjudicated_alarms_back(
    isolated_settings: Settings, influx_client: InfluxDBClient, tmp_path: Path
) -> None:
    settings = isolated_settings
    bucket, org = settings.influx.bucket, settings.influx.org
    start = float(int(time.time()) // 60 * 60) - 4 * 86400
    alarms = synthetic.ward(patients=60, seed=5, start=start)
    # One alarm is acknowledged without a verdict (an old-style ack): counted, not learnt.
    unanswered = next(alarm for alarm in alarms if alarm.acknowledged is None)
    unanswered.acknowledged = unanswered.triggered.model_copy(
        update={"event": "acknowledged", "t_event": unanswered.triggered.t_event + 60.0}
    )
    lines: list[str | None] = []
    for alarm in alarms:
        a = alarm.triggered
        tags = patient_tags(a.ward, a.patient, a.device_id)
        lines += [alert_line(a), *feature_lines(alarm.features, tags, a.t_event)]
        if alarm.acknowledged is not None:
            lines.append(adjudication_line(alarm.acknowledged, triggered_at=a.t_event))
    write_lines(influx_client, bucket, org, [text for text in lines if text])

    expected = synthetic.rows(alarms)
    read = read_influx(influx_client, bucket, org, "-7d")
    assert read.alert_ids == expected.alert_ids
    assert read.verdicts == expected.verdicts and read.kinds == expected.kinds
    assert read.features == expected.features  # the values survive the line protocol
    assert read.sha256() == expected.sha256()
    never = sum(alarm.acknowledged is None for alarm in alarms)
    assert read.left_out == {"never_acknowledged": never, "no_verdict": 1}
    assert len(read) == len(alarms) - never - 1 > 200

    out = tmp_path / "registry"
    command = [
        "train", "alarm-actionability", "--from-influx", "-7d", "--bucket", bucket,
        "--out", str(out), "--folds", "3", "--version", "it-1",
        "--report-dir", str(tmp_path / "docs"),
    ]  # fmt: skip
    ran = CliRunner().invoke(app, command, env=settings.child_env_vars())
    assert ran.exit_code == 0, ran.output
    card = json.loads((out / "alarm-actionability" / "it-1" / "card.json").read_text())
    metrics = card["metrics"]
    assert metrics["split"]["training_alarms"] + metrics["split"]["held_out_alarms"] == len(read)
    assert metrics["source"].startswith(f"InfluxDB bucket {bucket}")
    model, kind = metrics["held_out_test"]["model"], metrics["held_out_test"]["kind + priority"]
    assert model["auroc"] > kind["auroc"]
    assert model["suppressed_share_of_non_actionable"] > kind["suppressed_share_of_non_actionable"]
    assert metrics["onnx_parity_max_abs_diff"] < 1e-5
    assert card["inputs"][0]["kind"] == "alert"
    assert "alarm-actionability it-1 --shadow" in ran.output
    report = (tmp_path / "docs" / "alarm-actionability.md").read_text()
    assert f"never acknowledged {never}" in report and "no verdict 1" in report
