"""The bulk frame encoder: the same bytes as orjson, frames the stream decodes."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from producers.frames import FrameEncoder, json_rows
from producers.physiology import Chunk
from stream.records import SIGNALS, Frame

NUMPY = orjson.OPT_SERIALIZE_NUMPY


# Zeros of both signs, the table's ends, one step inside and a whole number.
EDGES = (0.0, -0.0, 0.5, -0.001, 32.767, -32.767, 1.0)


def _rounded(
    shape: tuple[int, ...], scale: float, seed: int = 0, edges: tuple[float, ...] = EDGES
) -> np.ndarray:
    values = np.round(scale * np.random.default_rng(seed).standard_normal(shape), 3)
    values.flat[: len(edges)] = edges
    return values


@pytest.mark.parametrize("shape", [(40, 128), (7, 25, 3), (1, 1), (3, 1)])
def test_rows_are_orjson_bytes_of_each_row(shape: tuple[int, ...]) -> None:
    values = _rounded(shape, scale=3.0)
    rows = json_rows(values, prefix=b"<", suffix=b">")
    assert rows == [b"<" + orjson.dumps(row, option=NUMPY) + b">" for row in values]
    assert orjson.loads(rows[0][1:-1]) == values[0].tolist()


@pytest.mark.parametrize(
    "values",
    [
        np.array([[0.12345, -1.5], [2.0, 3.25]]),  # not on the 1/1000 grid
        np.array([[72.0, 97.5], [36.8, 100.0]]),  # beyond the table
        np.array([[-40.125, 0.001]]),
        np.arange(12.0).reshape(2, 2, 3) / 7,
    ],
)
def test_rows_of_other_values_still_match_orjson(values: np.ndarray) -> None:
    assert json_rows(values) == [orjson.dumps(row, option=NUMPY) for row in values]


def test_rows_need_a_two_dimensional_array() -> None:
    with pytest.raises(ValueError, match="rows"):
        json_rows(np.zeros(5))
    with pytest.raises(ValueError, match="rows"):
        json_rows(np.zeros((3, 0)))


def _chunk(n: int) -> Chunk:
    rng = np.random.default_rng(3)
    return Chunk(
        ecg=_rounded((n, 128), scale=0.5, edges=(0.0, -0.0, -0.001, 19.999, -19.999)),
        ppg=_rounded((n, 64), scale=1.0, seed=1),
        acc=_rounded((n, 25, 3), scale=0.3, seed=2, edges=(-0.0, 31.999)),
        hr=np.round(rng.normal(72, 5, (n, 1))),
        spo2=np.round(rng.normal(97, 1, (n, 1))),
        resp=np.round(rng.normal(14, 1, (n, 1))),
        temp=np.round(rng.normal(36.8, 0.2, (n, 1)), 1),
        battery=np.round(rng.uniform(20, 100, (n, 1)), 1),
        measurable=np.array([True, False, True, True]),
    )


def _reference(chunk: Chunk, i: int, device_id: str, seq: int, t0: float) -> bytes:
    names = ["ecg", "ppg", "acc", "resp", "temp", "battery"]
    names += ["hr", "spo2"] if chunk.measurable[i] else []
    fs = {"ecg": 128, "ppg": 64, "acc": 25}
    signals = {
        name: {
            "fs": fs.get(name, 1),
            "unit": SIGNALS[name].unit,
            "samples": getattr(chunk, name)[i],
        }
        for name in names
    }
    frame = {"v": 1, "device_id": device_id, "seq": seq, "t0": t0, "signals": signals}
    return orjson.dumps(frame, option=NUMPY)


def test_frames_are_the_bytes_of_the_frame_dict_and_decode() -> None:
    chunk = _chunk(4)
    ids = ["dev-0001", "dev-0002", "bed:7.a", "dev-0004"]
    devices, seqs, t0s = [0, 1, 3], [5, 0, 2**40], [1_800_000_000.1234, 1.5, 1_800_000_001.0]
    frames = FrameEncoder(ids).encode(chunk, devices, seqs, t0s)
    for payload, i, seq, t0 in zip(frames, devices, seqs, t0s, strict=True):
        assert payload == _reference(chunk, i, ids[i], seq, t0)
        frame = Frame.from_json(payload)
        assert (frame.device_id, frame.seq, frame.t0) == (ids[i], seq, t0)
        assert frame.signals.ecg.samples == chunk.ecg[i].tolist()
        assert [list(s) for s in frame.signals.acc.samples] == chunk.acc[i].tolist()
        assert (frame.signals.hr is None) == (not chunk.measurable[i])
