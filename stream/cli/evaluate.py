"""`vitalstream evaluate`: alarm quality of the worker's code on simulated scenarios.

Owns the :func:`evaluate` command (registered on the CLI root by :mod:`stream.cli.main`):
option parsing, the progress bar and where results go. The runs are
:mod:`stream.tools.evaluation.runner`'s, the figures :mod:`~stream.tools.evaluation.metrics`'
and the tables and report :mod:`~stream.tools.evaluation.report`'s.

Example::

    vitalstream evaluate --scenario all --seeds 3 --seconds 480 \\
        --json /tmp/eval.json --report docs/alarm-quality.md
    vitalstream evaluate --compare /tmp/eval-before.json --report docs/alarm-quality.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer


def evaluate(
    scenario: str = typer.Option(
        "all", "--scenario", help="a shipped scenario's name, a scenario YAML, or 'all'"
    ),
    seeds: int = typer.Option(3, "--seeds", min=1, help="seeds per scenario"),
    seed_start: int = typer.Option(0, "--seed-start", help="first seed"),
    devices: int | None = typer.Option(
        None,
        "--devices",
        min=1,
        help="devices per run (default: the scenario's patients; never fewer than those)",
    ),
    seconds: int = typer.Option(600, "--seconds", min=1, help="simulated seconds per run"),
    workers: int = typer.Option(2, "--workers", min=1, help="worker processes"),
    faults: bool = typer.Option(
        True, "--faults/--no-faults", help="the simulator's late, duplicated and dropped frames"
    ),
    json_path: Path | None = typer.Option(  # noqa: B008 - typer declares options this way
        None, "--json", help="write the whole result as JSON here"
    ),
    report_path: Path | None = typer.Option(  # noqa: B008
        None,
        "--report",
        help="write a Markdown report here (e.g. docs/alarm-quality.md), PNGs beside it",
    ),
    compare: Path | None = typer.Option(  # noqa: B008
        None, "--compare", help="an earlier --json result: before/after columns"
    ),
    models_dir: Path | None = typer.Option(  # noqa: B008
        None, "--models-dir", help="a model registry to evaluate (default: the shipped models)"
    ),
) -> None:
    """Alarm quality: recall, detection latency and false alarms per patient-hour of the
    worker's code over simulated scenarios × seeds (in memory, no services)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from stream.tools import plotting
    from stream.tools.evaluation import metrics, report, runner

    if report_path is not None:
        plotting.require()  # fail now, not after the runs
    from producers.scenario import ScenarioError

    try:
        before = report.read_json(compare) if compare is not None else None
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read {compare}: {exc}", param_hint="--compare") from None
    try:
        specs = runner.plan(
            runner.scenario_names(scenario), seeds, seed_start=seed_start, devices=devices,
            seconds=seconds, faults=faults,
        )  # fmt: skip
    except ScenarioError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    # The tables are wide: piped into a file or a CI log, do not wrap them at 80 columns.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    began = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("evaluating", total=len(specs))

        def done(run: metrics.Run) -> None:
            progress.update(task, advance=1, description=f"{run.scenario} seed {run.seed}")

        runs = runner.run_all(
            specs, workers=workers, models_dir=None if models_dir is None else str(models_dir),
            on_done=done,
        )  # fmt: skip
    settings = runner.evaluation_settings(models_dir or "unused")
    result = {
        "evaluation": runner.describe(specs, runs, settings, time.perf_counter() - began, workers),
        **metrics.evaluate(runs, runner.timings_from_settings(settings)),
    }
    report.print_result(console, result, before)
    if json_path is not None:
        typer.echo(f"wrote {report.write_json(json_path, result)}", err=True)
    if report_path is not None:
        for path in report.write_report(report_path, result, before):
            typer.echo(f"wrote {path}", err=True)
