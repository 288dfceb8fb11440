"""Live model rollout on the real services: a running `vitalstream worker` scores frames
from `vitalstream simulate`, `vitalstream models promote` swaps the rhythm model without a
restart and without losing a frame, and a corrupt version is refused while the previous
one keeps serving."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from stream.config import Settings, load_settings
from stream.kafka import client_options
from stream.records import ModelRollout
from stream.scoring import registry
from tests.integration.harness import (
    Simulation,
    WorkerProcess,
    cli,
    influx_rows,
    worker_env,
    written_vitals,
)

pytestmark = pytest.mark.integration

OLD, NEW, CORRUPT = "rollout-old", "rollout-new", "rollout-corrupt"
DEVICES, DURATION_S, SPEED = 3, 100, 2  # 50 s of wall time: rollouts happen mid-stream
_SCORES = (
    '|> filter(fn: (r) => r._measurement == "scores" and r.model == "rhythm" '
    'and r._field == "af") |> keep(columns: ["_time", "device", "version"]) |> group()'
)
SCENARIO = """
name: rollout
ward: ward-rollout
patients:
  - id: MRN-ROLLOUT-A
    events: [{event: af, start: 20, end: 80, severity: 0.8}]
  - id: MRN-ROLLOUT-B
"""


def rhythm_registry(root: Path) -> None:
    """Three copies of the shipped rhythm model under new versions; one then corrupted."""
    shipped = registry.resolve("rhythm", load_settings(models={"directory": root / "none"}))
    card = registry.read_card(shipped)
    for version in (OLD, NEW, CORRUPT):
        copy = card.model_copy(update={"version": version})
        registry.write_version(root, copy, shipped / registry.ONNX_FILE)
    with (root / "rhythm" / CORRUPT / registry.ONNX_FILE).open("ab") as onnx_file:
        onnx_file.write(b"\0corrupt")


def scores(settings: Settings, influx_client) -> list[tuple[str, float, str]]:
    rows = influx_rows(settings, influx_client, _SCORES)
    return [(r.values["device"], r.get_time().timestamp(), r.values["version"]) for r in rows]


def wait_for_log(worker: WorkerProcess, text: str, timeout_s: float = 30.0) -> None:
    wait_until(lambda: text in worker.log_path.read_text(errors="replace"), timeout_s, text)


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}")


def test_promote_swaps_the_rhythm_model_live_and_refuses_a_corrupt_one(
    isolated_settings, influx_client, tmp_path
):
    root = tmp_path / "models"
    rhythm_registry(root)
    settings = isolated_settings.model_copy(
        update={"models": isolated_settings.models.model_copy(update={"directory": root})}
    )
    registry.promote("rhythm", OLD, settings)
    scenario = tmp_path / "rollout.yaml"
    scenario.write_text(SCENARIO)
    simulation = Simulation(scenario, DEVICES, DURATION_S, start=time.time() - 600, seed=5)
    _, expected_vitals, expected_frames = simulation.expected()
    env = worker_env(settings, VITALSTREAM_MODELS__DIRECTORY=str(root))
    worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path / "workers")
    worker.start()
    simulator = None
    try:
        worker.wait_ready()
        simulator = subprocess.Popen(
            simulation.argv(SPEED, tmp_path / "labels.jsonl"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_until(lambda: scores(settings, influx_client), 60, f"scores of rhythm@{OLD}")

        promoted = subprocess.run(
            cli("models", "promote", "rhythm", NEW), env=env, capture_output=True, text=True
        )
        assert promoted.returncode == 0, promoted.stderr
        wait_for_log(worker, f"model rhythm@{NEW} now live")

        # The CLI refuses the corrupt version itself: nothing promoted, nothing published.
        refused = subprocess.run(
            cli("models", "promote", "rhythm", CORRUPT), env=env, capture_output=True, text=True
        )
        assert refused.returncode != 0
        assert "checksum mismatch" in refused.stdout + refused.stderr
        assert (root / "rhythm" / registry.PROMOTED_FILE).read_text().strip() == NEW
        # A rollout message naming it anyway (another tool, a stale script) is refused by
        # the worker, which keeps serving the version it has.
        card = registry.read_card(root / "rhythm" / CORRUPT)
        forged = ModelRollout(
            name="rhythm", version=CORRUPT, path=str(root / "rhythm" / CORRUPT),
            sha256=card.onnx_sha256, shadow=False, at=time.time(),
        )  # fmt: skip
        producer = KafkaProducer(**client_options(settings.kafka))
        producer.send(settings.topics.control, key=b"rhythm", value=forged.to_json()).get(10)
        producer.close()
        wait_for_log(worker, f"rollout of rhythm@{CORRUPT} refused")
        refused_at = max(t for _, t, _ in scores(settings, influx_client))
        wait_until(
            lambda: max(t for _, t, _ in scores(settings, influx_client)) > refused_at + 5,
            60,
            "windows scored after the refusal",
        )

        out, err = simulator.communicate(timeout=120)
        assert simulator.returncode == 0, err
        assert orjson.loads(out.splitlines()[-1])["frames"] == expected_frames
        wait_until(
            lambda: expected_vitals <= written_vitals(settings, influx_client),
            60,
            "every frame's vitals in InfluxDB",
        )
    finally:
        if simulator is not None and simulator.poll() is None:
            simulator.kill()
        exit_code = worker.stop()
    log_text = worker.log_path.read_text(errors="replace")
    assert exit_code == 0, log_text[-3000:]

    # No frame lost: every vitals sample instant of every produced frame is a point.
    assert expected_vitals and expected_vitals <= written_vitals(settings, influx_client)
    # Scores switched version once per device, old → new, never to the corrupt one.
    per_device: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for device, t, version in scores(settings, influx_client):
        per_device[device].append((t, version))
    assert len(per_device) == DEVICES
    for device, rows in per_device.items():
        versions = [version for _, version in sorted(rows)]
        switch = versions.index(NEW) if NEW in versions else len(versions)
        assert 0 < switch < len(versions), (device, versions)
        assert versions[:switch] == [OLD] * switch, device
        assert versions[switch:] == [NEW] * (len(versions) - switch), device
    newest = max(t for rows in per_device.values() for t, _ in rows)
    assert newest > refused_at + 5
    assert {v for rows in per_device.values() for _, v in rows} == {OLD, NEW}
    assert "MRN-ROLLOUT" not in log_text  # patient ids never reach the log
