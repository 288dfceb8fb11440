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
    model: str = typer.Argument(..., help="rhythm or deterioration"),
    from_recordings: bool = typer.Option(
        False, "--from-recordings", help="also evaluate on real recordings (MIT-BIH 208)"
    ),
    from_influx: str | None = typer.Option(
        None, "--from-influx", help="train on features the stream wrote, e.g. -7d"
    ),
    epochs: int = typer.Option(30, "--epochs", min=1),
    out: Annotated[Path | None, typer.Option(help="default: the registry directory")] = None,
    folds: int = typer.Option(3, "--folds", min=0, help="patient-wise CV folds (0: none)"),
    patients: int = typer.Option(60, "--patients", min=4, help="simulated patients"),
    seconds: int = typer.Option(300, "--seconds", min=60, help="simulated seconds per patient"),
    seed: int = typer.Option(7, "--seed"),
    version: str | None = typer.Option(
        None, "--version", help="version name (default: the training time, e.g. 2026.11.24-1630)"
    ),
) -> None:
    """Train a model offline: patient-wise CV, baseline, ONNX export with parity, report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from models import train as training

    settings = load_settings()
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

        target = training.run(
            model,
            out or settings.models.directory,
            epochs=epochs,
            folds=folds,
            patients=patients,
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
