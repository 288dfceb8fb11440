"""Golden output: the worker's whole output on a faulty ward, byte for byte.

A ward of the default scenario (its tachycardia, AF, ventricular run, desaturation, fall,
detached sensor, silent device ...) with the simulator's faults on (late, duplicated and
dropped frames, clock jitter) and a few malformed records, fed to a :class:`Pipeline`
with the shipped models the way the worker feeds it: enrolments, then one batch per
second, a timer tick after each, the tracker state saved once the output is "durable".
Everything the pipeline hands back (alerts, lines, dead letters, tracker state, held and
released positions, batch counts) is serialized and compared with
``golden/faulty_ward.jsonl.gz``, recorded from the code as it stood before a change of
layout. A restructuring must leave it identical, every number to :data:`REL_TOL` (numpy's
SIMD reductions round differently on different CPUs: a PPG quality index recorded on
one machine differed on another in its 14th digit), everything else byte for byte; a
change that *means* to change the output regenerates it on purpose::

    VITALSTREAM_GOLDEN_UPDATE=1 .venv/bin/pytest tests/unit/stream/test_golden_output.py

and says in its commit which figures moved and why.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.config import load_settings
from stream.scoring.scorer import Scorer
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline

GOLDEN = Path(__file__).parent / "golden" / "faulty_ward.jsonl.gz"
START = 1_700_000_000.0
DEVICES = 12
SECONDS = 300  # the silent device stops at 240 s
SEED = 11
PARTITIONS = 3
# Malformed records slipped in at these seconds: they must be dead-lettered, every time
# with the same reason, while their neighbours are processed.
JUNK = {
    15: b'{"v": 1, "device_id": "dev-x", "seq": "x"}',
    75: b"not json at all",
    130: b'{"v": 1, "device_id": "dev-x", "seq": 1, "t0": 1700000130.0, "signals": '
    b'{"spo2": {"fs": 1, "unit": "%", "samples": [130]}}}',
}
# Wall-clock durations differ run to run; everything else must not.
_TIMING_METRICS = frozenset({"batch_s", "scoring_s"})
# Fractions must agree to this relative difference: above the rounding of SIMD reductions
# across CPUs and what later steps make of it (1e-14 in a PPG quality index, 5e-12 in an
# ECG one, measured), far below any real change. Whole numbers (line protocol's
# nanosecond times, counts) and epoch seconds (from 1e6 on) must agree to the microsecond.
REL_TOL = 1e-9
EPOCH_ABS_TOL = 1e-6
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _output_record(kind: str, second: int, output: Any) -> bytes:
    counts = asdict(output.metrics) if output.metrics is not None else {}
    metrics = {k: v for k, v in sorted(counts.items()) if k not in _TIMING_METRICS}
    record = {
        "kind": kind,
        "second": second,
        "alerts": [orjson.loads(a.to_json()) for a in output.alerts],
        "lines": output.lines,
        "deadletters": [
            {"key": None if key is None else key.decode("latin-1"), **orjson.loads(d.to_json())}
            for key, d in output.deadletters
        ],
        "state": output.state,
        "held": [list(p) for p in output.held],
        "unheld": [list(p) for p in output.unheld],
        "metrics": metrics,
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def faulty_ward_output(tmp_dir: Path) -> Iterator[bytes]:
    """One serialized record per pipeline call of the golden run."""
    settings = load_settings(
        pseudonym_key="golden-key",
        models={"directory": str(tmp_dir / "registry")},  # only the shipped defaults
        stream={"signal_loss_s": 20.0},
    )
    pipeline = Pipeline(settings, Scorer.from_registry(settings), worker="golden")
    fleet = Fleet(load_scenario("default"), DEVICES, seed=SEED, start=START, faults=True)
    offset = 0
    for device_id, payload in fleet.enrolments():
        offset += 1
        output = pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), now=START)
        yield _output_record("enrol", 0, output)
    for second in range(SECONDS):
        tick = fleet.tick()
        records = []
        for device_id, payload in tick.messages:
            offset += 1
            # Like Kafka: a device's frames stay in the partition its key hashes to.
            partition = zlib.crc32(device_id.encode()) % PARTITIONS
            records.append(RawRecord(device_id.encode(), payload, partition, offset))
        if second in JUNK:
            records.insert(len(records) // 2, RawRecord(b"junk", JUNK[second], 0, -second))
        output = pipeline.process(records, now=tick.t + 1.0)
        pipeline.save(output)
        yield _output_record("batch", second, output)
        output = pipeline.tick(now=tick.t + 1.5)
        pipeline.save(output)
        yield _output_record("tick", second, output)


def test_pipeline_output_on_a_faulty_ward_is_unchanged(tmp_path: Path) -> None:
    produced = list(faulty_ward_output(tmp_path))
    if os.environ.get("VITALSTREAM_GOLDEN_UPDATE") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(gzip.compress(b"\n".join(produced) + b"\n", mtime=0))
        pytest.skip(f"golden output rewritten: {GOLDEN}")
    expected = gzip.decompress(GOLDEN.read_bytes()).splitlines()
    assert len(produced) == len(expected), "a different number of pipeline calls"
    for index, (got, want) in enumerate(zip(produced, expected, strict=True)):
        if got != want:
            got_record, want_record = orjson.loads(got), orjson.loads(want)
            differing = sorted(
                k for k in want_record if not same(got_record.get(k), want_record[k])
            )
            if differing:
                pytest.fail(
                    f"call {index} ({want_record['kind']} at second {want_record['second']}) "
                    f"differs in {differing}"
                )


def same(got: Any, want: Any) -> bool:
    """Equal, numbers to :data:`REL_TOL` (also those inside strings: line protocol).

    >>> same({"a": [1.0000000000001, "x=0.5000000000000001 7"]}, {"a": [1.0, "x=0.5 7"]})
    True
    >>> same("hr=61.0 5", "hr=60.0 5"), same([1, 2], [1]), same({"a": 1}, {"b": 1})
    (False, False, False)
    >>> same("x=1 1700000168000000001", "x=1 1700000168000000000")
    False
    >>> same(1700000098.01, 1700000098.0), same(1700000098.0000001, 1700000098.0)
    (False, True)
    """
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(same(got[k], want[k]) for k in want)
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, str) and isinstance(got, str):
        if got == want:
            return True
        if _NUMBER.split(got) != _NUMBER.split(want):
            return False
        return all(
            g == w or (_fraction(g) and _fraction(w) and same(float(g), float(w)))
            for g, w in zip(_NUMBER.findall(got), _NUMBER.findall(want), strict=True)
        )
    if isinstance(want, float) and isinstance(got, float):
        if abs(want) >= 1e6:
            return math.isclose(got, want, rel_tol=0.0, abs_tol=EPOCH_ABS_TOL)
        return math.isclose(got, want, rel_tol=REL_TOL)
    return got == want


def _fraction(token: str) -> bool:
    return any(c in token for c in ".eE")


def test_the_golden_run_exercises_what_it_guards() -> None:
    """The recorded run is worth comparing: alerts of several kinds, dead letters, held
    frames and a silent device are all in it."""
    records = [orjson.loads(r) for r in gzip.decompress(GOLDEN.read_bytes()).splitlines()]
    kinds = {a["kind"] for r in records for a in r["alerts"]}
    assert {"tachycardia", "device_silent", "sensor_detached"} <= kinds, kinds
    assert len([d for r in records for d in r["deadletters"]]) >= len(JUNK)
    assert any(r["held"] for r in records) and any(r["unheld"] for r in records)
    # The write budget: vitals and quality with every window, features (with scores and
    # NEWS2) about every stream.features_every_s.
    written = Counter(line.split(",", 1)[0] for r in records for line in r["lines"])
    assert written["quality"] > DEVICES * SECONDS * 0.8, written
    assert written["vitals"] > 2 * written["quality"] * 0.9, written
    assert 0 < written["features"] < written["quality"] / 5, written
