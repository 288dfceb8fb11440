"""What an evaluation shows: the terminal tables, the JSON file and the Markdown report.

Owns presenting a result (``{"evaluation": runner.describe(...), **metrics.evaluate(...)}``):
rich tables on the terminal, the JSON as written by ``--json`` (read back by
``--compare``), and the Markdown report with its PNGs beside it (:mod:`.figures`), with
before/after columns when an earlier JSON is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

Result = Mapping[str, Any]
DEFINITIONS = """\
An **alarm** is an alert's `triggered` event (its `repeated` and `resolved` events are the
same alarm). A labelled event of the simulator *explains* an alarm of the **same device**
when the alarm's kind is one the event explains (`EXPLAINS` in
`stream/tools/evaluation/matching.py`, with the reason for each entry) and its onset lies
in [event start, event end + the alarm kind's resolve delay]. An alarm no event explains
is a **false alarm**. **Recall** is, per clinical or technical event kind, the share of
events with at least one explaining alarm; an event that, within the run, lasts less than
its alert's designed delay (onset delay; fall inactivity; silence timeout) cannot raise it
by design and is listed under *not scored* instead. **Latency** is when the first
explaining alarm was raised, after the event's start. *Beyond delay* is how much later
than its designed delay the first alarm came, counted from when the event became
alarmable: its start, or, for an event whose alarm is a vital-sign limit (tachycardia,
bradycardia, desaturation, tachypnoea, fever: `LIMIT_EVENTS`), the second the patient's
true value (the simulator's, without sensor noise) first reached the worker's limit. A
fever rising over minutes cannot alarm until the temperature reaches 38.1 °C; IEC
60601-2-27 likewise times a heart-rate alarm from the change that crosses its limit.
A **patient-hour** is one device for an hour.
"""


def read_json(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def write_json(path: Path, result: Result) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def fmt(value: Any, digits: int = 2) -> str:
    """A cell: ``-`` for nothing, floats rounded, the rest as is.

    >>> fmt(None), fmt(0.98765, 3), fmt(12), fmt(True)
    ('-', '0.988', '12', 'yes')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _dig(data: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _pair(before: Result | None, after: Any, *keys: Any, digits: int = 2) -> list[str]:
    """``[after]``, or ``[before, after]`` when comparing."""
    if before is None:
        return [fmt(after, digits)]
    return [fmt(_dig(before, *keys), digits), fmt(after, digits)]


def _heads(before: Result | None, name: str) -> list[str]:
    return [name] if before is None else [f"{name} before", f"{name} after"]


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*lines, ""]


# -- the rows every presentation shares -----------------------------------------------------


def _lowest(summary: Mapping[str, Any]) -> str:
    kind = summary.get("recall_min_kind") or "-"
    return f"{fmt(summary.get('recall_min'), 3)} ({kind})"


SUMMARY_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("runs", ("runs",)),
    ("patient-hours", ("patient_hours",)),
    ("alarms", ("alarms",)),
    ("alarm burden / patient-hour", ("alarm_burden_per_patient_hour", "overall")),
    ("false alarms", ("false_alarms",)),
    ("false alarms / patient-hour", ("false_alarms_per_patient_hour", "overall")),
    ("false physiological / patient-hour",
     ("by_category", "physiological", "false_per_patient_hour")),
    ("false technical / patient-hour", ("by_category", "technical", "false_per_patient_hour")),
    ("false high-priority alarms", ("false_high_priority",)),
    ("false in artefact/confound periods", ("false_in_artefact_or_confound",)),
    ("false outside them", ("false_outside_artefact_or_confound",)),
    ("events not scored", ("labels_unscorable",)),
    ("duplicate 'triggered' events", ("duplicate_triggers",)),
)  # fmt: skip


def summary_rows(result: Result, before: Result | None = None) -> list[list[str]]:
    s = result["summary"]
    rows = [[name, *_pair(before, _dig(s, *keys), "summary", *keys)] for name, keys in SUMMARY_ROWS]
    earlier = [] if before is None else [_lowest(before.get("summary", {}))]
    rows.insert(-2, ["lowest recall", *earlier, _lowest(s)])
    return rows


def scenario_rows(result: Result, before: Result | None = None) -> list[list[str]]:
    rows = []
    for name, s in result["scenarios"].items():
        split = s["by_category"]
        rows.append(
            [name, fmt(s["runs"]), fmt(s["devices"]), fmt(s["seconds"]), fmt(s["patient_hours"]),
             fmt(s["alarms"]),
             *_pair(before, s["alarm_burden_per_patient_hour"], "scenarios", name,
                    "alarm_burden_per_patient_hour"),
             fmt(s["false_alarms"]),
             *_pair(before, s["false_alarms_per_patient_hour"], "scenarios", name,
                    "false_alarms_per_patient_hour"),
             *_pair(before, s["false_high_priority"], "scenarios", name, "false_high_priority"),
             f"{split['physiological']['false_alarms']} / {split['technical']['false_alarms']}"]
        )  # fmt: skip
    return rows


SCENARIO_HEADS = ("scenario", "runs", "devices", "seconds", "patient-h", "alarms")


def scenario_heads(before: Result | None) -> list[str]:
    return [*SCENARIO_HEADS, *_heads(before, "burden/ph"), "false",
            *_heads(before, "false/ph"), *_heads(before, "false high"),
            "false phys / tech"]  # fmt: skip


def kind_rows(result: Result, before: Result | None = None) -> list[list[str]]:
    rows = []
    for kind, k in result["kinds"].items():
        lat, beyond = k["latency_s"], k["beyond_delay_s"]
        by = ", ".join(f"{alert} {n}" for alert, n in k["detected_by"].items())
        rows.append(
            [kind, k["category"], f"{k['detected']}/{k['scorable']}",
             f"{k.get('own_alert', '-')}/{k['scorable']}",
             *_pair(before, k["recall"], "kinds", kind, "recall", digits=3),
             fmt(lat["median"], 1), fmt(lat["p95"], 1), fmt(lat["max"], 1),
             *_pair(before, beyond["p95"], "kinds", kind, "beyond_delay_s", "p95", digits=1),
             fmt(beyond["max"], 1), by or "-"]
        )  # fmt: skip
    return rows


def kind_heads(before: Result | None) -> list[str]:
    return ["event", "category", "detected/scored", "own alert", *_heads(before, "recall"),
            "latency median s", "p95 s", "max s", *_heads(before, "beyond delay p95 s"),
            "beyond max s", "detected by"]  # fmt: skip


def _group_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in ("scenario", "kind", "priority") if k in row)


def group_rows(
    groups: Sequence[Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]] | None,
    key: Callable[[Mapping[str, Any]], tuple[str, ...]] = _group_key,
) -> list[list[str]]:
    """False-alarm groups with their counts (and the earlier counts, 0 where a group is
    new; groups gone since are listed with 0 after)."""
    rows = []
    old = {key(g): g for g in earlier or ()}
    for g in groups:
        counts = [fmt(g["count"])]
        if earlier is not None:
            counts.insert(0, fmt(old.pop(key(g), {}).get("count", 0)))
        rows.append([*key(g), *counts, fmt(g["per_patient_hour"])])
    for k, g in old.items():
        rows.append([*k, fmt(g["count"]), "0", "0.00"])
    return rows


# -- terminal -------------------------------------------------------------------------------


def print_result(console: Any, result: Result, before: Result | None = None) -> None:
    """The summary, per-scenario, per-kind and false-alarm tables on a rich console."""
    from rich.table import Table

    def show(title: str, heads: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        table = Table(title=title, title_justify="left")
        for i, head in enumerate(heads):
            table.add_column(head, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)

    e = result["evaluation"]
    show("alarm quality", ["measure", *_heads(before, "value")], summary_rows(result, before))
    show("by scenario", scenario_heads(before), scenario_rows(result, before))
    show("by event kind", kind_heads(before), kind_rows(result, before))
    earlier = None if before is None else before.get("false_alarm_groups", [])
    show("false alarms by scenario, kind, priority",
         ["scenario", "kind", "priority", *_heads(before, "count"), "per patient-hour"],
         group_rows(result["false_alarm_groups"], earlier))  # fmt: skip
    console.print(
        f"{len(e['scenarios'])} scenarios × {len(e['seeds'])} seeds in {e['wall_s']} s "
        f"on {e['workers']} worker(s); models {e['models'] or 'none loaded'}"
    )


# -- Markdown -------------------------------------------------------------------------------


def _periods(row: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{p['event']} ({p['category']}) {p['start_s']:g}-{p['end_s']:g} s" for p in row["periods"]
    )


def markdown(result: Result, figures: Mapping[str, str], before: Result | None = None) -> str:
    """The report's text; ``figures`` maps a figure's role to its file name beside it."""
    e, s = result["evaluation"], result["summary"]
    scenarios = ", ".join(f"`{n}` ({v['devices']} devices)" for n, v in e["scenarios"].items())
    seconds = next(iter(e["scenarios"].values()), {}).get("seconds")
    models = ", ".join(f"{n}@{v}" for n, v in e["models"].items())
    lines = [
        "# Alarm quality",
        "",
        "The worker's own code (`stream.worker.pipeline.Pipeline`, shipped models) over "
        "simulated scenarios, its alarms matched with the simulator's labelled events "
        "(`vitalstream evaluate`).",
        "",
        f"- scenarios: {scenarios}",
        f"- seeds: {', '.join(map(str, e['seeds']))}; {seconds} s per run; "
        f"network faults {'on' if e['faults'] else 'off'}",
        f"- models: {models or 'none'}; silence timeout {e['signal_loss_s']:g} s",
        f"- {e['wall_s']} s on {e['workers']} worker process(es)",
        "",
        DEFINITIONS,
    ]  # fmt: skip
    if before is not None:
        b = before.get("evaluation", {})
        seeds = ", ".join(map(str, b.get("seeds", [])))
        lines += [
            f"*Before*: the evaluation in the file given to `--compare` "
            f"({len(b.get('scenarios', {}))} scenarios, seeds {seeds}).",
            "",
        ]
    lines += ["## Summary", ""]
    lines += _md_table(["measure", *_heads(before, "value")], summary_rows(result, before))
    lines += ["## By scenario", ""]
    lines += _md_table(scenario_heads(before), scenario_rows(result, before))
    if "false_alarms" in figures:
        lines += [f"![false alarms per patient-hour]({figures['false_alarms']})", ""]
    lines += ["## Detection by event kind", ""]
    lines += _md_table(kind_heads(before), kind_rows(result, before))
    if "latency" in figures:
        lines += [f"![detection latency]({figures['latency']})", ""]
    earlier = None if before is None else before.get("false_alarm_groups", [])
    lines += ["## False alarms by scenario, kind and priority", ""]
    lines += _md_table(
        ["scenario", "kind", "priority", *_heads(before, "count"), "per patient-hour"],
        group_rows(result["false_alarm_groups"], earlier),
    )
    earlier = None if before is None else before.get("false_by_kind_priority", [])
    lines += ["## False alarms by kind and priority, all scenarios", ""]
    lines += _md_table(
        ["kind", "priority", *_heads(before, "count"), "per patient-hour"],
        group_rows(result["false_by_kind_priority"], earlier),
    )
    unscored = [r for r in result["labels"] if r["target"] and not r["scorable"]]
    if unscored:
        lines += ["## Events not scored", "",
                  "Too short within the run for their alert's designed delay.", ""]  # fmt: skip
        lines += _md_table(
            ["scenario", "seed", "device", "event", "start-end s", "designed delay s", "detected"],
            ([r["scenario"], fmt(r["seed"]), r["device_id"], r["event"],
              f"{r['start_s']:g}-{r['end_s']:g}", fmt(r["designed_delay_s"], 0),
              fmt(r["detected"])] for r in unscored),
        )  # fmt: skip
    missed = [r for r in result["labels"] if r["scorable"] and not r["detected"]]
    if missed:
        lines += ["## Missed events", ""]
        lines += _md_table(
            ["scenario", "seed", "device", "event", "start-end s"],
            ([r["scenario"], fmt(r["seed"]), r["device_id"], r["event"],
              f"{r['start_s']:g}-{r['end_s']:g}"] for r in missed),
        )  # fmt: skip
    lines += [f"## Every false alarm ({s['false_alarms']})", ""]
    if result["false_alarms"]:
        lines += _md_table(
            ["scenario", "seed", "device", "kind", "priority", "onset s", "raised s",
             "in labelled periods", "message"],
            ([f["scenario"], fmt(f["seed"]), f["device_id"], f["kind"], f["priority"],
              fmt(f["onset_s"], 1), fmt(f["raised_s"], 1), _periods(f) or "-", f["message"]]
             for f in result["false_alarms"]),
        )  # fmt: skip
    else:
        lines += ["None.", ""]
    return "\n".join(lines)


def write_report(path: Path, result: Result, before: Result | None = None) -> list[Path]:
    """The Markdown report at ``path`` and its PNGs beside it (``<stem>-*.png``)."""
    from stream.tools.evaluation.figures import false_alarms_figure, latency_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    names = {"false_alarms": f"{path.stem}-false-alarms.png", "latency": f"{path.stem}-latency.png"}
    written = [
        false_alarms_figure(result, path.parent / names["false_alarms"], before),
        latency_figure(result, path.parent / names["latency"]),
    ]
    path.write_text(markdown(result, names, before))
    return [path, *written]
