"""`vitalstream models list|show|promote` and `vitalstream train`.

Thin commands: the work is in ``stream.scoring.registry`` and ``models.train``. Torch is imported
only inside ``train`` so the rest of the CLI starts fast and works without the extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stream.config import Settings, load_settings

models_app = typer.Typer(help="List, inspect and promote model versions.", no_args_is_help=True)


def model_listing(settings: Settings) -> list[dict[str, object]]:
    """Every version as ``models list --json`` prints it: where it comes from, whether it
    is promoted, in shadow or the one in use (the promoted one, else the newest shipped
    default), and its card's metrics (held-out F1 and baselines, as trained)."""
    from stream.scoring.registry import ModelError, list_models, read_card, resolve

    in_use: dict[str, Path | None] = {}
    rows: list[dict[str, object]] = []
    for entry in list_models(settings):
        if entry.name not in in_use:
            try:
                in_use[entry.name] = resolve(entry.name, settings).resolve()
            except ModelError:
                in_use[entry.name] = None
        metrics: dict[str, object] = {}
        if entry.problem is None:
            metrics = dict(read_card(entry.path).metrics)
        rows.append(
            {
                "name": entry.name,
                "version": entry.version,
                "source": entry.source,
                "created": entry.created.isoformat(timespec="seconds") if entry.created else None,
                "promoted": entry.promoted,
                "shadow": entry.shadow,
                "in_use": in_use[entry.name] == entry.path.resolve(),
                "problem": entry.problem,
                "metrics": metrics,
            }
        )
    return rows


@models_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Every model version in the registry and the shipped defaults."""
    from rich.console import Console
    from rich.table import Table

    from stream.scoring.registry import list_models

    if as_json:
        typer.echo(json.dumps(model_listing(load_settings()), indent=2, default=str))
        return
    table = Table("model", "version", "source", "created", "state")
    for entry in list_models(load_settings()):
        state = "promoted" if entry.promoted else "shadow" if entry.shadow else ""
        if entry.problem:
            state = f"[red]unusable: {entry.problem}[/red]"
        created = entry.created.isoformat(timespec="seconds") if entry.created else "?"
        table.add_row(entry.name, entry.version, entry.source, created, state)
    Console().print(table)


@models_app.command("show")
def show_command(
    name: str,
    version: str | None = typer.Argument(None, help="default: the version in use"),
) -> None:
    """Print a model card."""
    from stream.scoring.registry import ModelError, show

    try:
        card = show(name, load_settings(), version)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from exc
    typer.echo(card.model_dump_json(indent=2))


def publish_rollout(settings: Settings, rollout_json: bytes, key: str) -> None:
    """Send the rollout on the control topic so every worker hot-swaps the model."""
    from kafka import KafkaProducer

    from stream.kafka import client_options

    producer = KafkaProducer(**client_options(settings.kafka), acks="all")
    try:
        producer.send(settings.topics.control, key=key.encode(), value=rollout_json).get(
            timeout=settings.kafka.request_timeout_s
        )
    finally:
        producer.close()


@models_app.command("promote")
def promote_command(
    name: str,
    version: str,
    shadow: bool = typer.Option(False, "--shadow", help="score alongside, raise no alerts"),
    publish: bool = typer.Option(True, help="publish the rollout on the control topic"),
) -> None:
    """Make NAME@VERSION the live (or shadow) model and tell the workers."""
    from stream.scoring.registry import ModelError, promote

    settings = load_settings()
    try:
        rollout = promote(name, version, settings, shadow=shadow)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if publish:
        publish_rollout(settings, rollout.to_json(), key=name)
    where = f" and published on {settings.topics.control}" if publish else ""
    typer.echo(f"{name}@{version} promoted{' (shadow)' if shadow else ''}{where}")


def train(
    model: str = typer.Argument(..., help="rhythm, deterioration or alarm-actionability"),
    from_recordings: bool = typer.Option(
        False, "--from-recordings", help="also evaluate on real recordings (MIT-BIH 208)"
    ),
    from_influx: str | None = typer.Option(
        None,
        "--from-influx",
        "--since",
        help="train on what the stream wrote in this range, e.g. -7d (alarm-actionability: "
        "the adjudicated alarms acknowledged in it, e.g. -30d)",
    ),
    bucket: str | None = typer.Option(
        None, "--bucket", help="alarm-actionability: the bucket to read (default: the stream's)"
    ),
    simulate_into: str | None = typer.Option(
        None,
        "--simulate-into",
        help="alarm-actionability: simulate a week of adjudicated alarms (--patients, "
        "--seconds) into this new bucket, then train on it as read back",
    ),
    replace: bool = typer.Option(
        False, "--replace", help="with --simulate-into: delete the bucket first if it exists"
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="simulation processes"),
    report_dir: Annotated[
        Path | None, typer.Option(help="alarm-actionability: also write the report here")
    ] = None,
    epochs: int = typer.Option(30, "--epochs", min=1),
    out: Annotated[Path | None, typer.Option(help="default: the registry directory")] = None,
    folds: int = typer.Option(3, "--folds", min=0, help="patient-wise CV folds (0: none)"),
    patients: int | None = typer.Option(
        None, "--patients", min=4, help="simulated patients (default: the shipped version's)"
    ),
    seconds: int = typer.Option(300, "--seconds", min=60, help="simulated seconds per patient"),
    seed: int = typer.Option(7, "--seed"),
    version: str | None = typer.Option(
        None, "--version", help="version name (default: the training time, e.g. 2026.11.24-1630)"
    ),
) -> None:
    """Train a model offline: patient-wise CV, baseline, ONNX export with parity, report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    settings = load_settings()
    if model == "alarm-actionability":
        train_actionability(
            settings, from_influx, bucket, simulate_into, replace, out, folds, patients or 60,
            seconds, seed, version, workers, report_dir,
        )  # fmt: skip
        return
    if bucket or simulate_into or report_dir:
        raise SystemExit("error: --bucket, --simulate-into, --report-dir: alarm-actionability")
    from models import train as training

    if model not in training.SPECS:
        raise SystemExit(f"error: unknown model {model!r}; choose {sorted(training.SPECS)}")
    windows = None
    if from_influx:
        from models.influx import deterioration_windows_from_influx

        if model != "deterioration":
            raise SystemExit("error: --from-influx trains the deterioration model only")
        windows = deterioration_windows_from_influx(settings, from_influx)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        if windows is None and model in training.STREAMING:
            # The streaming (stateful) GRU, trained hop by hop: what the stream runs.
            target = training.run_streaming(
                model,
                out or settings.models.directory,
                epochs=epochs,
                folds=folds,
                patients=patients or training.STREAMING[model].patients,
                seconds=seconds,
                seed=seed,
                from_recordings=from_recordings,
                version=version,
                progress=progress,
            )
        else:
            # Windows from InfluxDB: the window model (scored on each whole window).
            target = training.run(
                model,
                out or settings.models.directory,
                epochs=epochs,
                folds=folds,
                patients=patients or 60,
                seconds=seconds,
                seed=seed,
                from_recordings=from_recordings,
                windows=windows,
                version=version,
                progress=progress,
            )
    card = json.loads((target / "card.json").read_text())
    typer.echo(f"wrote {target}")
    typer.echo(json.dumps(card["metrics"]["held_out_test"], indent=2))


def train_actionability(
    settings: Settings,
    since: str | None,
    bucket: str | None,
    simulate_into: str | None,
    replace: bool,
    out: Path | None,
    folds: int,
    patients: int,
    seconds: int,
    seed: int,
    version: str | None,
    workers: int,
    report_dir: Path | None,
) -> None:
    """``vitalstream train alarm-actionability``: from InfluxDB's adjudicated alarms
    (``--from-influx RANGE [--bucket B]``), from a simulated week written to a bucket and
    read back (``--simulate-into B``), or from a simulated week in memory."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from models import actionability, adjudicated
    from stream.tools.burden import influx

    console = Console(stderr=True)
    start = float(int(time.time() // 60) * 60) - 7 * 86400.0
    # The last run and its acknowledgements (up to an hour) end before now.
    specs = adjudicated.plan(
        adjudicated.SCENARIOS, patients, seconds, start=start, seed_start=seed,
        span_s=7 * 86400.0 - seconds - 2 * 3600.0,
    )  # fmt: skip
    simulated: dict[str, object] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
        transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        finished = 0

        def run_done(_: object) -> None:
            nonlocal finished
            finished += 1
            progress("simulated runs", finished, len(specs))

        if simulate_into:
            if simulate_into == settings.influx.bucket:
                raise SystemExit("error: --simulate-into needs a bucket of its own")
            with influx.influx_client(settings) as client:
                if influx.bucket_exists(client, simulate_into) and not replace:
                    raise SystemExit(f"error: bucket {simulate_into!r} exists; pass --replace")
                influx.recreate_bucket(client, simulate_into, settings.influx.org)
                simulated = adjudicated.simulate_into(
                    client, simulate_into, settings.influx.org, specs, workers=workers,
                    on_done=run_done,
                )  # fmt: skip
            bucket, since = simulate_into, since or "-30d"
        if since:
            rows = adjudicated.read_settings_influx(settings, since, bucket)
            source = f"InfluxDB bucket {bucket or settings.influx.bucket}, acknowledged in {since}"
        else:
            rows, simulated = adjudicated.simulate(specs, workers=workers, on_done=run_done)
            source = "simulated in memory"
        if simulated:
            source += (
                f"; simulated: {simulated['runs']} runs ({', '.join(simulated['scenarios'])}), "
                f"{simulated['patients']} patients, {simulated['patient_hours']} patient-hours, "
                f"{simulated['alarms']} alarms, {simulated['acknowledged']} acknowledged "
                f"({simulated['resolved_before_acknowledgement']} resolved before anyone came, "
                f"{simulated['never_acknowledged']} never answered)"
            )
        console.print(f"{rows.describe()}; left out {rows.left_out}")
        target = actionability.run(
            rows, out or settings.models.directory, source=source, folds=folds, seed=seed,
            version=version, report_dir=report_dir, progress=progress,
        )  # fmt: skip
    card = json.loads((target / "card.json").read_text())
    typer.echo(f"wrote {target}")
    typer.echo(
        f"deploy in shadow: vitalstream models promote {card['name']} {card['version']} --shadow"
    )
    typer.echo(json.dumps(card["metrics"]["held_out_test"], indent=2))
