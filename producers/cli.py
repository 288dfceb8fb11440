"""`vitalstream simulate` and `vitalstream replay`: argument handling only.

The work lives in producers.fleet, producers.recordings and producers.publisher; heavy
imports happen inside the commands so `vitalstream --help` stays fast. Both commands date
their frames by producers.timebase's rule (a fast run starts in the past, so no frame is
ahead of the clock when sent) and print the start they chose on stderr.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import typer

from producers.gateways import DEFAULT_PER_MESSAGE, MAX_PER_MESSAGE, PER_MESSAGE_HELP


def _carried(per_message: int) -> str:
    """How frames travel, in words.

    >>> _carried(1), _carried(16)
    ('one device each', 'gateway batches of up to 16 devices')
    """
    return (
        "one device each" if per_message == 1 else f"gateway batches of up to {per_message} devices"
    )


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(2)


def simulate(
    devices: int = typer.Option(10, "--devices", min=1, help="number of simulated wearables"),
    duration: float = typer.Option(60.0, "--duration", min=0, help="seconds of frames to send"),
    speed: float = typer.Option(1.0, "--speed", min=0, help="x real time; 0 = as fast as possible"),
    scenario: str = typer.Option("default", "--scenario", help="shipped name or YAML file"),
    seed: int = typer.Option(0, "--seed", help="same seed, same data"),
    start: float | None = typer.Option(
        None,
        "--start",
        help="epoch seconds of the first frame (default: now, or in the past by "
        "duration x (1 - 1/speed) when faster than real time, by the duration at speed 0)",
    ),
    frame_s: float = typer.Option(1.0, "--frame-seconds", help="seconds per frame (whole)"),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="late/duplicate/lost frames"),
    labels_out: Path | None = typer.Option(  # noqa: B008 - typer declares options this way
        None, "--labels-out", help="write event labels (JSONL)"
    ),
    per_message: int = typer.Option(
        DEFAULT_PER_MESSAGE, "--per-message", min=1, max=MAX_PER_MESSAGE, help=PER_MESSAGE_HELP
    ),
    as_json: bool = typer.Option(False, "--json", help="last line: JSON summary"),
) -> None:
    """Simulate a wearable fleet with labelled events (clinical, technical, artefact, confound)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from producers.fleet import Fleet, run_fleet, write_labels
    from producers.publisher import Publisher, ensure_topics, producer_topics, stop_on_signals
    from producers.scenario import ScenarioError, load_scenario
    from producers.timebase import choose_start, describe_start
    from stream.config import load_settings

    settings = load_settings()
    now = time.time()
    try:
        chosen = load_scenario(scenario)
        first = choose_start(
            start, now=now, duration_s=duration, speed=speed, frame_s=frame_s,
            max_future_s=settings.stream.max_future_skew_s,
        )  # fmt: skip
        fleet = Fleet(chosen, devices, seed=seed, start=first, frame_s=frame_s, faults=faults)
    except (ScenarioError, ValueError) as exc:  # StartError is a ValueError
        _fail(str(exc))
    typer.echo(f"simulate: {describe_start(first, now)}", err=True)
    if labels_out is not None:
        write_labels(fleet.labels(duration), labels_out)
    ensure_topics(settings, producer_topics(settings))
    periods = max(1, int(duration / frame_s))
    with (
        stop_on_signals() as stop,
        Publisher(settings) as publisher,
        Progress(
            TextColumn("[bold]simulate"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeRemainingColumn(), transient=True, disable=as_json,
        ) as progress,
    ):  # fmt: skip
        task = progress.add_task("frames", total=periods * frame_s)
        stats = run_fleet(
            fleet,
            publisher.send,
            frames_topic=settings.topics.frames,
            enrolments_topic=settings.topics.enrolments,
            duration_s=duration,
            speed=speed,
            stop=stop.is_set,
            on_tick=lambda _tick: progress.advance(task, frame_s),
            per_message=per_message,
        )
        publisher.flush()
        errors = publisher.errors
    summary = {
        "devices": stats.devices,
        "frames": stats.frames,
        "messages": stats.messages,
        "per_message": per_message,
        "samples": stats.samples,
        "errors": errors,
        "topic": settings.topics.frames,
        "start": first,
        "seconds": round(stats.seconds, 3),
    }
    if not as_json:
        typer.echo(
            f"{stats.frames} frames ({stats.samples} samples) from {stats.devices} devices "
            f"in {stats.messages} messages ({_carried(per_message)}) in {stats.seconds:.1f} s "
            f"to {settings.topics.frames}; {errors} delivery errors; "
            f"scenario {chosen.name}" + (f"; labels in {labels_out}" if labels_out else "")
        )
    if as_json:
        typer.echo(json.dumps(summary))
    if errors:
        raise typer.Exit(1)


def replay(
    source: str = typer.Argument(..., help="mitbih-208 | heartpy-ppg | basicmotions | a file"),
    device_id: str = typer.Option(..., "--device-id", help="device id the frames carry"),
    speed: float = typer.Option(1.0, "--speed", min=0, help="x real time; 0 = as fast as possible"),
    signal: str | None = typer.Option(None, "--signal", help="ecg | ppg | acc (files)"),
    fs: float | None = typer.Option(None, "--fs", help="sampling rate of a file (Hz)"),
    patient_id: str | None = typer.Option(None, "--patient-id", help="enrol to this patient"),
    start: float | None = typer.Option(
        None,
        "--start",
        help="epoch seconds of the first frame (default: now, or in the past by "
        "length x (1 - 1/speed) when faster than real time, by the length at speed 0)",
    ),
    per_message: int = typer.Option(
        DEFAULT_PER_MESSAGE,
        "--per-message",
        min=1,
        max=MAX_PER_MESSAGE,
        help=PER_MESSAGE_HELP + ". A replay is one device: N > 1 sends each frame in its "
        "gateway's batch (gw-0001, carrying that one device), 1 keyed by the device id",
    ),
    as_json: bool = typer.Option(False, "--json", help="last line: JSON summary"),
) -> None:
    """Replay a real recording as device frames, resampled to the device rate."""
    import re

    from producers.fleet import paced
    from producers.gateways import gateways_for, messages_of
    from producers.publisher import Publisher, ensure_topics, producer_topics, stop_on_signals
    from producers.recordings import RecordingError, frames, load_recording, to_device_rate
    from producers.timebase import StartError, choose_start, describe_start
    from stream.config import load_settings
    from stream.records import DEVICE_ID_PATTERN, Enrolment

    if not re.match(DEVICE_ID_PATTERN, device_id):
        _fail(f"device id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    settings = load_settings()
    try:
        recording = load_recording(source, signal, fs)
    except RecordingError as exc:
        _fail(str(exc))
    if not as_json:
        prov = recording.provenance
        typer.echo(
            f"{recording.name}: {prov.get('content', recording.signal)} "
            f"[{prov['package']} {prov['version']}, {prov['file']}; {prov['licence']}]"
        )
    samples, device_fs = to_device_rate(recording)
    now = time.time()
    length_s = float(math.ceil(len(samples) / device_fs))  # one frame per second
    try:
        first = choose_start(
            start, now=now, duration_s=length_s, speed=speed,
            max_future_s=settings.stream.max_future_skew_s,
        )  # fmt: skip
    except StartError as exc:
        _fail(str(exc))
    typer.echo(f"replay: {describe_start(first, now)}", err=True)
    payloads = list(frames(device_id, recording.signal, samples, device_fs, first))
    ensure_topics(settings, producer_topics(settings))
    began = time.perf_counter()
    sent = 0
    with stop_on_signals() as stop, Publisher(settings) as publisher:
        enrolment = Enrolment(
            device_id=device_id, patient_id=patient_id or f"replay-{recording.name}", t=first
        )
        publisher.send(settings.topics.enrolments, device_id, enrolment.to_json())
        gateways = gateways_for([device_id], per_message)
        for k, _lag in paced(len(payloads), 1.0, speed, stop.is_set):
            for key, value in messages_of([(device_id, payloads[k])], gateways):
                publisher.send(settings.topics.frames, key, value)
            sent += 1
        publisher.flush()
        errors = publisher.errors
    summary = {
        "device_id": device_id,
        "source": recording.name,
        "signal": recording.signal,
        "fs_source": recording.fs,
        "fs_sent": device_fs,
        "frames": sent,
        "per_message": per_message,
        "samples": int(min(len(samples), sent * device_fs)),
        "errors": errors,
        "topic": settings.topics.frames,
        "start": first,
        "seconds": round(time.perf_counter() - began, 3),
        "provenance": recording.provenance,
    }
    typer.echo(json.dumps(summary) if as_json else json.dumps(summary, indent=2))
    if errors:
        raise typer.Exit(1)
