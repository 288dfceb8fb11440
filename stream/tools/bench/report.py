"""The benchmark report: docs/benchmarks.md and its figures in docs/bench/.

Owns the report's inputs and its I/O: the suites' JSON files (``docs/bench/<suite>.json``),
the py-spy profile (``docs/bench/profile.txt``, collapsed stacks, summarized by
:func:`profile_top`) and the hand-kept log of performance changes
(``docs/bench/changes.json``). :func:`write_report` reads them and writes the Markdown
(:mod:`stream.tools.bench.report_sections`, pure) and the PNGs
(:mod:`stream.tools.bench.report_figures`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from stream.tools.bench.common import read_json
from stream.tools.bench.report_figures import write_figures
from stream.tools.bench.report_sections import DERIVED, SUITES, render_markdown

OWN_PACKAGES = ("stream", "models", "producers")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``func (path/to/mod.py:12)`` → ``mod.py:func``."""
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    return f"{Path(found['file']).name}:{found['func']}"


def _own_code(frame: str) -> bool:
    """Whether a py-spy frame is VitalStream's: py-spy names files relative to their
    sys.path entry (``stream/pipeline.py``, ``faust/agents/agent.py``)."""
    found = _FRAME.match(frame.strip())
    path = found["file"] if found else frame
    if "site-packages" in path or "/lib/python" in path or path.startswith("<"):
        return False
    parts = Path(path).parts
    if parts and parts[0] == "/":
        return any(f"/{package}/" in path for package in OWN_PACKAGES)
    return len(parts) > 1 and parts[0] in OWN_PACKAGES


def profile_top(
    collapsed: str, n: int = 15, entry_share: float = 0.9
) -> dict[str, list[tuple[str, float]]]:
    """Top functions of py-spy collapsed stacks: ``self`` (leaf, any code) and ``total``
    (inclusive, VitalStream's own functions only) shares of all samples, largest first.

    Functions on at least ``entry_share`` of the samples (the CLI and worker entry points)
    say nothing and are left out of ``total``."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for text in collapsed.splitlines():
        stack, _, count_text = text.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        raw_frames = [f for f in stack.split(";") if f.strip()]
        for name in {_short(f) for f in raw_frames if _own_code(f)}:
            total_counts[name] += count
    if samples == 0:
        return {"self": [], "total": []}
    return {
        "self": [(name, c / samples) for name, c in self_counts.most_common(n)],
        "total": [
            (name, c / samples)
            for name, c in total_counts.most_common()
            if c / samples < entry_share
        ][:n],
    }


def write_report(bench_dir: Path, markdown_path: Path) -> list[Path]:
    """Regenerate the Markdown and the PNGs from the JSON in ``bench_dir``."""
    suites = {name: read_json(bench_dir / f"{name}.json") for name in (*SUITES, *DERIVED)}
    profile_path = bench_dir / "profile.txt"
    profile = profile_top(profile_path.read_text()) if profile_path.is_file() else None
    changes = read_json(bench_dir / "changes.json")
    written = write_figures(suites, profile, bench_dir)
    text = render_markdown(suites, profile, changes)
    notes = bench_dir / "notes.md"
    if notes.is_file():  # hand-written findings that are not numbers (appended verbatim)
        text += "\n" + notes.read_text()
    markdown_path.write_text(text)
    return [*written, markdown_path]
