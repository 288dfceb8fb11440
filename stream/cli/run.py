"""`vitalstream worker|demo|analyze`: the stream core's commands.

Commands parse options, call into ``stream.worker.app`` / ``stream.worker.pipeline`` and
print; heavy imports (Faust, onnxruntime) happen inside them so ``vitalstream --help`` stays fast.

- ``worker``: one Faust worker process (scale out by starting more; they share the
  consumer group ``stream.app_id`` and split the partitions).
- ``analyze FILE``: a recording through the worker's own features, scoring, rules and
  alert lifecycle, one JSON line per window with ``--json``.
- ``demo``: services up, a worker and a simulated ward, alerts printed live.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from stream.records import Alert

PRIORITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def worker(
    workers_dir: Path | None = typer.Option(  # noqa: B008 - typer declares options this way
        None, "--workers-dir", help="Faust state directory (default: next to services data)"
    ),
) -> None:
    """Run a stream worker: frames in, alerts and time series out."""
    from faust import Worker

    from stream.config import load_settings
    from stream.kafka import ensure_topics, replication, stream_topics
    from stream.worker.app import create_app
    from stream.worker.collector import settle

    settings = load_settings()
    settings.pseudonym_secret  # noqa: B018 - fail now, not at the first enrolment
    # The replication factor follows the cluster unless configured: resolved once here.
    factor = replication(settings)
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"replication_factor": factor})}
    )
    ensure_topics(settings, stream_topics(settings))
    app, _ = create_app(settings, datadir=workers_dir)
    settle()  # models loaded, kernels compiled: freeze them out of the collector's sight
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


def _load_samples(path: Path, signal_name: str) -> np.ndarray:
    import numpy as np

    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            try:
                data = np.loadtxt(path, delimiter=",", ndmin=2)
            except ValueError:
                data = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)  # a header row
        data = np.asarray(data, dtype=float)
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:
        # A corrupt or binary file is the user's input error, not a crash.
        raise typer.BadParameter(f"{path.name} is not a numeric recording ({exc})") from exc
    if data.ndim == 2 and data.shape[1] == 0:
        raise typer.BadParameter(f"{path.name} has no columns")
    if signal_name == "acc":
        if data.ndim != 2 or data.shape[1] < 3:
            raise typer.BadParameter("acc needs three columns (x, y, z in g)")
        return data[:, :3]
    return data.reshape(-1) if data.ndim == 1 or data.shape[1] == 1 else data[:, 0]


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def analyze(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help=".npy or .csv"),  # noqa: B008
    signal_name: str = typer.Option(..., "--signal", help="ecg | ppg | acc"),
    fs: float = typer.Option(..., "--fs", min=1.0, help="sampling rate in Hz"),
    as_json: bool = typer.Option(False, "--json", help="one JSON line per window"),
) -> None:
    """Analyze a recording offline with exactly the worker's functions."""
    from stream.config import load_settings
    from stream.scoring.scorer import Scorer
    from stream.worker.analyze import analyze_recording

    if signal_name not in ("ecg", "ppg", "acc"):
        raise typer.BadParameter("--signal must be ecg, ppg or acc")
    settings = load_settings()
    samples = _load_samples(file, signal_name)
    results = analyze_recording(settings, Scorer.from_registry(settings), samples, signal_name, fs)
    rows = []
    for result in results:
        features = result.features
        live = [s for s in result.scores if not s.shadow]
        rows.append(
            {
                "t_start": result.t_start,
                "t_end": result.t_end,
                "heart_rate_bpm": _finite(
                    features["ppg_hr_bpm" if signal_name == "ppg" else "ecg_hr_bpm"]
                ),
                "beats_s": [round(b, 3) for b in result.beats_s],
                "quality": _finite(features["ppg_sqi" if signal_name == "ppg" else "ecg_sqi"]),
                # Every live model's scores (an ECG file shows its rhythm model's too);
                # "score" / "model" are the first of them, as before.
                "scores": {
                    s.ref: {k: round(v, 4) for k, v in s.probabilities.items()} for s in live
                },
                "score": {k: round(v, 4) for k, v in live[0].probabilities.items()}
                if live
                else None,
                "model": live[0].ref if live else None,
                "alerts": [f"{a.event}:{a.kind}:{a.priority}" for a in result.alerts],
            }
        )
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{file.name}: {len(rows)} windows ({signal_name}, {fs:g} Hz)")
    for column in ("window s", "HR bpm", "beats", "quality", "scores", "alerts"):
        table.add_column(column)
    for row in rows:
        scores = "\n".join(
            f"{ref}: " + " ".join(f"{k}={v:.2f}" for k, v in probabilities.items())
            for ref, probabilities in row["scores"].items()
        )
        table.add_row(
            f"{row['t_start']:.0f}-{row['t_end']:.0f}",
            "-" if row["heart_rate_bpm"] is None else f"{row['heart_rate_bpm']:.0f}",
            str(len(row["beats_s"])),
            "-" if row["quality"] is None else f"{row['quality']:.2f}",
            scores or "-",
            ", ".join(row["alerts"]),
        )
    Console().print(table)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from stream.cli.main import main; main()", *args]


def demo(
    duration: float = typer.Option(600.0, "--duration", min=1, help="seconds to run"),
    devices: int = typer.Option(10, "--devices", min=1, help="simulated wearables"),
    speed: float = typer.Option(1.0, "--speed", min=0.1, help="simulation speed (x real time)"),
    scenario: str = typer.Option("default", "--scenario", help="ward scenario"),
) -> None:
    """Live demo: services, a worker and a simulated ward; alerts print as they fire."""
    from kafka import KafkaConsumer
    from rich.console import Console

    from stream.config import load_settings
    from stream.kafka import client_options, ensure_topics, stream_topics
    from stream.records import Alert
    from stream.services import stack

    console = Console()
    settings = load_settings()
    stack.up(settings, Console(stderr=True))
    ensure_topics(settings, stream_topics(settings))
    consumer = KafkaConsumer(
        settings.topics.alerts, auto_offset_reset="latest", **client_options(settings.kafka)
    )
    consumer.poll(timeout_ms=1000)  # join now, so no alert of this run is missed
    log_path = Path(settings.services.data_dir).parent / "logs" / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        worker_proc = subprocess.Popen(_cli("worker"), stdout=log, stderr=subprocess.STDOUT)
    # Frames start in the past so a fast simulation never runs ahead of the worker clock.
    start = time.time() - duration * speed
    simulator = subprocess.Popen(
        _cli(
            "simulate", "--duration", str(duration * speed), "--devices", str(devices),
            "--speed", str(speed), "--scenario", scenario, "--start", str(start),
        ),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    console.print(
        f"[bold]VitalStream demo[/]: {devices} devices, scenario {scenario}, "
        f"{duration:.0f} s at {speed:g}x. Ctrl-C stops. Worker log: {log_path}"
    )
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline and worker_proc.poll() is None:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    _print_alert(console, Alert.from_json(record.value))
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        for proc in (simulator, worker_proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (simulator, worker_proc):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        consumer.close()
    console.print(
        f"Time series: InfluxDB {settings.influx.url}, org {settings.influx.org}, bucket "
        f"{settings.influx.bucket}; measurements vitals, features, quality, scores, news2, "
        f"alerts, pipeline (token in {settings.secrets_dir})."
    )


def _print_alert(console: Console, alert: Alert) -> None:
    style = PRIORITY_STYLE.get(alert.priority, "")
    console.print(
        f"[{style}]{alert.event:<10} {alert.priority:<6} {alert.kind:<16}[/] ward={alert.ward} "
        f"patient={alert.patient[:10]}… device={alert.device_id} {alert.message}",
        highlight=False,
    )
