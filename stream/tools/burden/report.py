"""The alarm-burden report: the terminal table, ``report.json`` and ``report.md``.

Owns presenting a :func:`stream.tools.burden.metrics.burden` result: a rich table for
the terminal, the JSON as computed, and a Markdown report with its definitions, its tables
(by kind, priority and ward) and the PNGs of :mod:`.figures` beside it. A simulated
week's description (:func:`stream.tools.burden.simulate.describe`) adds a section saying
exactly what was simulated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stream.records import VERDICTS
from stream.tools.burden.metrics import VERDICT_KEYS, iso

DEFINITIONS = """\
An **alarm** is an alert's `triggered` event in the window (InfluxDB measurement
`alerts`, tag `event=triggered`), once per `alert_id`. **Patient-time** is counted in
10-second steps: a step in which InfluxDB holds at least one `vitals` sample of the
patient (pseudonym), of any field, is monitored time (a silent device's is not); summed
over the distinct patients seen in the window, in days, that is the **patient-days** (a
ward's are its patients'). A step cut by the start or end of a monitoring stretch counts
whole: at most 10 s too many per stretch. An
alarm is **acknowledged** when measurement `adjudications` holds an acknowledgement of
it; acknowledgements of alarms raised before the window are left out (counted below).
**Time to acknowledge** is the adjudication's `latency_s`, from the alarm's first
publication to its acknowledgement (median and 90th centile, linear interpolation).
**Verdict shares** are of the acknowledged alarms; *none* is an acknowledgement without a
verdict."""


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def _verdict_cells(row: Mapping[str, Any]) -> list[str]:
    return [
        f"{row['verdicts'][v]} ({_pct(row['verdict_shares'][v])})" if row["acknowledged"] else "–"
        for v in VERDICT_KEYS
    ]


COLUMNS = (
    "alarms", "per patient-day", "acknowledged", "ack median", "ack p90", "escalated first",
    "actionable", "not actionable", "artefact", "none",
)  # fmt: skip


def table_row(name: str, row: Mapping[str, Any]) -> list[str]:
    """One row of the kind/priority/ward tables."""
    stats = row["time_to_ack_s"]
    return [
        name,
        str(row["alarms"]),
        _num(row["per_patient_day"]),
        f"{row['acknowledged']} ({_pct(row['share_acknowledged'])})",
        _minutes(stats["median"]),
        _minutes(stats["p90"]),
        str(row["escalated_before_ack"]),
        *_verdict_cells(row),
    ]


def _markdown_table(first: str, rows: Sequence[list[str]]) -> list[str]:
    header = [first, *COLUMNS]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """The headline figures as Markdown bullet points."""
    s = result["summary"]
    stats = s["time_to_ack_s"]
    shares = ", ".join(f"{v} {_pct(s['verdict_shares'][v])}" for v in VERDICT_KEYS)
    return [
        f"- **{s['alarms']} alarms** over **{result['patient_days']:.2f} patient-days** "
        f"({result['patients']} patients, {result['patient_hours']:.1f} patient-hours): "
        f"**{_num(s['per_patient_day'])} alarms per patient-day**",
        f"- acknowledged: {s['acknowledged']} ({_pct(s['share_acknowledged'])}); "
        f"{s['escalated_before_ack']} of them escalated first",
        f"- time to acknowledge: median {_minutes(stats['median'])}, "
        f"90th centile {_minutes(stats['p90'])} (n = {stats['n']})",
        f"- verdicts of the acknowledged alarms: {shares}",
    ]


def simulation_lines(simulation: Mapping[str, Any]) -> list[str]:
    """What the simulated week was, and what its figures do and do not say."""
    totals = simulation["totals"]
    policy = simulation["policy"]
    medians = ", ".join(f"{p} {s / 60:.1f} min" for p, s in policy["median_response_s"].items())
    never = ", ".join(f"{p} {100 * v:.0f} %" for p, v in policy["never_acknowledged"].items())
    every = simulation.get("scripted_verdicts", {})
    scripted = ", ".join(f"{v} {every.get(v, 0)}" for v in VERDICTS)
    return [
        "## What was simulated",
        "",
        f"{simulation['runs']} runs of the worker's own in-memory pipeline "
        "(`stream.worker.pipeline.Pipeline`, shipped models), one shipped scenario at one "
        f"seed each: scenarios {', '.join(f'`{s}`' for s in simulation['scenarios'])}; "
        f"seeds {simulation['seeds'][0]}–{simulation['seeds'][-1]}; "
        f"{'/'.join(map(str, simulation['devices_per_run']))} devices × "
        f"{'/'.join(map(str, simulation['seconds_per_run']))} s per run, network faults on. "
        f"That is **{simulation['patient_seconds']:,} patient-seconds = "
        f"{simulation['patient_days']:.2f} patient-days** of simulated monitoring, not "
        "time-scaled. The runs are spread over the week "
        f"({iso(simulation['start'])} – {iso(simulation['stop'])}); each run's patients "
        "are new patients (own pseudonym key).",
        "",
        "Every alarm was adjudicated by the scripted adjudicator "
        "(`stream.tools.adjudicator`) from the scenario's labels: explained by a clinical "
        "or technical event → *actionable*; explained by an artefact event or raised "
        "inside an artefact period → *artefact*; otherwise *not actionable*. Its "
        "acknowledgement was attempted a log-normal response time after the alarm's "
        f"publication (medians {medians}, after Bonafide et al., JAMA Pediatr 2017; "
        f"spread σ = {policy['sigma']}; never acknowledged: {never}; beyond "
        f"{policy['max_response_s'] / 60:.0f} min: never), through the alert service's own "
        "book, which escalates unacknowledged high-priority alarms and refuses to "
        "acknowledge an alarm that has already resolved. Everything was written to "
        "InfluxDB in the production format and this report read it back.",
        "",
        f"Outcome of the {totals.get('alarms', 0)} alarms: {totals.get('acknowledged', 0)} "
        f"acknowledged, {totals.get('resolved_first', 0)} resolved before their "
        f"acknowledgement came, {totals.get('never', 0)} never acknowledged by script; "
        f"{totals.get('escalations', 0)} escalations. The adjudicator's verdicts on *every* "
        f"alarm, acknowledged or not (which a ward would never see): {scripted}.",
        "",
        "**What these figures say:** the alarm burden per patient-day and the verdict "
        "shares follow from the pipeline's alarms on these scenarios (designed to "
        "provoke alarms: every event kind, artefact and confound wards; not a ward's "
        "case mix). The share acknowledged and the time to acknowledge follow from the "
        "scripted response times above, not from any clinician: they show the report "
        "working, not how fast a ward answers. Only alarms still open when their "
        "acknowledgement came are acknowledged, so the time to acknowledge of short-lived "
        "alarms (ventricular runs, falls, detached sensors) is that of the quickest "
        "responses, and their verdict shares rest on few alarms.",
        "",
    ]


def markdown(
    result: Mapping[str, Any],
    figures: Sequence[Path] = (),
    simulation: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> str:
    """The whole report as Markdown (figure links relative to the report's directory)."""
    window = result["window"]
    lines = [
        "# Alarm burden",
        "",
        f"Window {window['start']} – {window['stop']} (UTC), "
        f"{'ward `' + result['ward'] + '`' if result['ward'] else 'all wards'}.",
    ]
    if command:
        lines += ["", f"`{command}`"]
    lines += ["", *summary_lines(result), ""]
    if result["adjudications_outside_window"]:
        lines += [
            f"{result['adjudications_outside_window']} acknowledgements in the window are of "
            "alarms raised before it and are left out.",
            "",
        ]
    for path in figures:
        lines += [f"![{path.stem}]({path.name})", ""]
    lines += ["## By kind", "", *_markdown_table("kind", [
        table_row(row["kind"], row) for row in result["by_kind"]
    ]), ""]  # fmt: skip
    lines += ["## By priority", "", *_markdown_table("priority", [
        table_row(row["priority"], row) for row in result["by_priority"]
    ]), ""]  # fmt: skip
    lines += ["## By ward", "", *_markdown_table("ward", [
        table_row(row["ward"], row) for row in result["by_ward"]
    ]), ""]  # fmt: skip
    lines += [
        "*per patient-day*: alarms / patient-days (of the ward for the ward table); "
        "*escalated first*: acknowledged alarms escalated at least once before; verdict "
        "columns: count (share of the acknowledged).",
        "",
        "## Definitions",
        "",
        DEFINITIONS,
        "",
    ]
    if simulation is not None:
        lines += simulation_lines(simulation)
    return "\n".join(lines)


def write_json(path: Path, result: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def write_report(
    directory: Path,
    result: Mapping[str, Any],
    simulation: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> list[Path]:
    """``report.md`` and its PNGs into ``directory``; every path written."""
    from stream.tools.burden.figures import write_figures

    directory.mkdir(parents=True, exist_ok=True)
    figures = write_figures(result, directory)
    report = directory / "report.md"
    report.write_text(markdown(result, figures, simulation, command))
    return [report, *figures]


def print_result(console: Any, result: Mapping[str, Any]) -> None:
    """The summary and the by-kind and by-priority tables on a rich console."""
    from rich.table import Table

    window = result["window"]
    console.print(
        f"[bold]Alarm burden[/] {window['start']} – {window['stop']}, "
        f"{result['ward'] or 'all wards'}"
    )
    for text in summary_lines(result):
        console.print(text.replace("**", ""))
    for title, key in (("kind", "by_kind"), ("priority", "by_priority")):
        table = Table(title=f"by {title}", show_edge=False)
        for column in (title, *COLUMNS):
            table.add_column(column, justify="left" if column == title else "right")
        for row in result[key]:
            table.add_row(*table_row(row[title], row))
        console.print(table)
