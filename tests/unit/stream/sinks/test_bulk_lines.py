"""The bulk line builders write the bytes the per-item ones write, on randomized inputs.

NaN, infinities, negative, huge and tiny values (the exponent forms ``repr`` spells its own
way), integers and flags among floats, numpy scalars, and tags that need escaping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from stream.records import VITALS, Frame, PatientContext, Signals
from stream.signal.frames import FrameBatch
from stream.signal.window import FEATURE_NAMES
from stream.sinks import lines as lines_module
from stream.sinks.lines import NON_FINITE, float_reprs, line
from stream.sinks.measurements import (
    QUALITY_FEATURES,
    brief_window_lines,
    feature_lines,
    frame_lines,
    news2_line,
    patient_series,
    patient_tags,
    raw_lines,
    score_line,
    series_news2_line,
    vitals_lines,
    window_lines,
)

TRIALS = 400
# Awkward characters for tags and names: the line protocol escapes them.
AWKWARD = [" ", ",", "=", "\\", "\n", '"', "%", "{", "}"]


def _float(rng: random.Random) -> float:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0])
    if kind == 1:  # any finite double, from its bits
        value = float(np.frombuffer(rng.getrandbits(64).to_bytes(8, "little"), np.float64)[0])
        return value if math.isfinite(value) else 1.5
    if kind == 2:  # tiny and huge: the exponent forms
        return rng.choice([-1, 1]) * rng.random() * 10.0 ** rng.randint(-30, 30)
    if kind == 3:  # around 1e-4 and 1e16, where repr changes form
        return rng.choice([-1, 1]) * rng.uniform(0.5, 2) * rng.choice([1e-4, 1e-5, 1e15, 1e16])
    if kind == 4:
        return float(rng.randint(-300, 300))
    if kind == 5:
        return round(rng.uniform(-200, 200), rng.randint(0, 6))
    return rng.uniform(-1, 1) * 10.0 ** rng.randint(-3, 4)


def _text(rng: random.Random, base: str) -> str:
    return base + "".join(rng.choice([*AWKWARD, "a", "7"]) for _ in range(rng.randint(0, 3)))


def _tags(rng: random.Random) -> tuple[str, str, str]:
    patient = "" if rng.random() < 0.1 else _text(rng, "p")  # an empty tag is left out
    return _text(rng, "w"), patient, _text(rng, "d")


def _reference_line(
    measurement: str, tags: dict[str, str], fields: dict[str, Any], t: float
) -> str | None:
    """``line`` as it stood before it lost its per-field calls (the behaviour to keep)."""

    def encode(value: Any) -> str | None:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"{value}i"
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else None
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
            return f'"{escaped}"'
        return None

    tag_escapes = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\\": "\\\\"})
    encoded = [
        f"{name.translate(tag_escapes)}={text}"
        for name, value in fields.items()
        if value is not None and (text := encode(value)) is not None
    ]
    if not encoded:
        return None
    head = measurement.translate(str.maketrans({",": r"\,", " ": r"\ ", "\n": ""}))
    head += "".join(
        f",{k.translate(tag_escapes)}={v.translate(tag_escapes)}"
        for k, v in sorted(tags.items())
        if v
    )
    return f"{head} {','.join(encoded)} {round(t * 1_000_000) * 1000}"


def _field_value(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([True, False])
    if kind == 1:
        return rng.randint(-(2**40), 2**40)
    if kind == 2:
        return _text(rng, "s")
    if kind == 3:
        return None
    if kind == 4:
        return np.float64(_float(rng))  # a float subclass: repr must not leak in
    return _float(rng)


def test_line_writes_what_it_wrote_before() -> None:
    rng = random.Random(1)
    for _ in range(TRIALS):
        ward, patient, device = _tags(rng)
        tags = {"ward": ward, "patient": patient, "device": device}
        fields = {_text(rng, f"f{i}"): _field_value(rng) for i in range(rng.randint(0, 6))}
        t = rng.uniform(1, 2e9)
        measurement = _text(rng, "m")
        assert line(measurement, tags, fields, t) == _reference_line(measurement, tags, fields, t)


def test_float_reprs_are_repr_for_finite_values_and_null_for_the_others() -> None:
    rng = random.Random(2)
    values = [_float(rng) for _ in range(50_000)]
    expected = [repr(v) if math.isfinite(v) else NON_FINITE for v in values]
    assert float_reprs(values) == expected
    # Short runs too, so that each run's values take the fast path or not on their own.
    for start in range(0, len(values), 5):
        assert float_reprs(values[start : start + 5]) == expected[start : start + 5]
    assert float_reprs([]) == []


def test_float_reprs_without_orjson_give_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    values = [_float(rng) for _ in range(2000)]
    fast = float_reprs(values)
    monkeypatch.setattr(lines_module, "_ORJSON_WRITES_REPR", False)
    assert float_reprs(values) == fast


def _block(name: str, fs: float, samples: list[Any]) -> Any:
    block_type = Signals.model_fields[name].annotation.__args__[0]  # type: ignore[union-attr]
    # model_construct: no range checks, so NaN, infinities and huge values get through.
    return block_type.model_construct(fs=fs, unit="u", samples=samples)


def _frame(rng: random.Random, device: str) -> Frame:
    blocks: dict[str, Any] = {}
    several = rng.random() < 0.2  # a catch-up frame, or faster vitals
    for name in VITALS:
        if rng.random() < 0.8:
            count = rng.randint(1, 4) if several else 1
            values: list[Any] = [_float(rng) for _ in range(count)]
            if rng.random() < 0.1:
                values = [rng.randint(0, 100) for _ in values]  # integers: written as floats
            blocks[name] = _block(name, rng.choice([1.0, 2.0, 0.5]), values)
    if rng.random() < 0.3:
        blocks["ppg"] = _block("ppg", 10.0, [_float(rng) for _ in range(rng.randint(1, 5))])
    if rng.random() < 0.3:
        triples = [(_float(rng), _float(rng), _float(rng)) for _ in range(rng.randint(1, 3))]
        blocks["acc"] = _block("acc", 25.0, triples)
    signals = Signals.model_construct(**{name: blocks.get(name) for name in Signals.model_fields})
    t0 = rng.choice([1_700_000_000.0, 100.0]) + rng.uniform(0, 1e4)
    return Frame.model_construct(device_id=device, seq=0, t0=t0, signals=signals)


@pytest.mark.parametrize("raw", [False, True])
def test_frame_lines_are_the_frames_vitals_and_raw_lines(raw: bool) -> None:
    rng = random.Random(4)
    batch = []
    for _ in range(TRIALS):
        ward, patient, device = _tags(rng)
        context = PatientContext.model_construct(
            device_id=device, patient=patient, ward=ward, profile=None
        )
        batch.append((_frame(rng, device), context))
    expected = []
    for frame, context in batch:
        tags = patient_tags(context.ward, context.patient, frame.device_id)
        expected += vitals_lines(frame, tags)
        if raw:
            expected += raw_lines(frame, tags)
    frames = FrameBatch.from_frames([f for f, _ in batch], [(0, i) for i in range(len(batch))])
    assert frame_lines(frames, [c for _, c in batch], raw=raw) == expected
    assert any(len(b.samples) > 1 for f, _ in batch for b in f._blocks()), "general case met"


@dataclass(frozen=True)
class _Score:
    model: str
    version: str
    shadow: Any
    probabilities: dict[str, Any]


def _features(rng: random.Random) -> dict[str, Any]:
    names = list(FEATURE_NAMES) + list(QUALITY_FEATURES) + [_text(rng, "x")]
    chosen = rng.sample(names, rng.randint(0, len(names)))
    features: dict[str, Any] = {}
    for name in chosen:
        kind = rng.randrange(10)
        features[name] = (
            np.float64(_float(rng))
            if kind == 0
            else rng.randint(-5, 5)
            if kind == 1
            else rng.random() < 0.5
            if kind == 2
            else _float(rng)
        )
    return features


def _scores(rng: random.Random) -> list[_Score]:
    scores = []
    for i in range(rng.randint(0, 3)):
        probabilities: dict[str, Any] = {
            _text(rng, f"c{j}"): _float(rng) for j in range(rng.randint(0, 3))
        }
        if rng.random() < 0.15:  # not all floats: score_line's own typing
            probabilities[_text(rng, "n")] = rng.choice([1, True, "x", np.float32(0.25)])
        shadow = rng.choice([True, False, True, False, 1, 0])
        scores.append(_Score(_text(rng, f"m{i}"), _text(rng, "1."), shadow, probabilities))
    return scores


def test_window_lines_are_the_feature_and_score_lines() -> None:
    rng = random.Random(5)
    for _ in range(TRIALS):
        ward, patient, device = _tags(rng)
        features, scores = _features(rng), _scores(rng)
        t = rng.choice([1_700_000_000.0, 5.0]) + rng.uniform(0, 1e4)
        tags = patient_tags(ward, patient, device)
        expected = feature_lines(features, tags, t)
        for s in scores:
            text = score_line(s.model, s.version, s.shadow, s.probabilities, tags, t)
            if text is not None:
                expected.append(text)
        assert window_lines(patient_series(ward, patient, device), features, scores, t) == (
            expected
        )


def test_brief_window_lines_are_each_windows_window_lines() -> None:
    """Many windows at once from a matrix (a missing feature nan) against window_lines of
    each window's dict with ``full=False``."""
    rng = random.Random(7)
    for _ in range(TRIALS // 20):
        windows = [(_tags(rng), _features(rng)) for _ in range(rng.randint(0, 40))]
        times = [rng.choice([1_700_000_000.0, 5.0]) + rng.uniform(0, 1e4) for _ in windows]
        series = [patient_series(*tags) for tags, _ in windows]
        rows = [[float(f.get(name, math.nan)) for name in FEATURE_NAMES] for _, f in windows]
        matrix = np.array(rows, dtype=float).reshape(len(windows), len(FEATURE_NAMES))
        expected = [
            window_lines(s, features, [], t, full=False)
            for s, (_, features), t in zip(series, windows, times, strict=True)
        ]
        assert brief_window_lines(series, FEATURE_NAMES, matrix, times) == expected


def test_series_news2_line_is_news2_line() -> None:
    rng = random.Random(6)
    for _ in range(TRIALS):
        ward, patient, device = _tags(rng)
        aggregate: Any = rng.choice([rng.randint(0, 20), np.int64(3), 2.0])
        partial: Any = rng.choice([True, False, 1])
        response = rng.choice(["low", "routine", _text(rng, "r")])
        subscores: Any = {_text(rng, "p"): rng.choice([0, 1, 3, np.int64(2), 2.7]) for _ in "ab"}
        t = rng.uniform(1, 2e9)
        series = patient_series(ward, patient, device)
        tags = patient_tags(ward, patient, device)
        assert series_news2_line(series, aggregate, subscores, partial, response, t) == (
            news2_line(aggregate, subscores, partial, response, tags, t)
        )
