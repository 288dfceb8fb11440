"""SignalFrames: the packed frames of one waveform (stream.signal.signal_frames)."""

from __future__ import annotations

import numpy as np

from stream.signal.beat_stream import EcgBeatStream
from stream.signal.fleet_buffers import Blocks
from stream.signal.signal_frames import SignalFrames


def test_blocks_not_back_to_back_are_gathered() -> None:
    values = np.arange(6.0)
    blocks = Blocks(
        members=np.array([0, 1]),
        fs=np.array([2.0, 2.0]),
        lengths=np.array([2, 1]),
        offsets=np.array([3, 0]),  # the second block lies first
        values=values,
    )
    frames = SignalFrames.from_blocks(blocks, ["a", "b"], np.array([0.0, 5.0]))
    assert frames.values.tolist() == [3.0, 4.0, 0.0]
    assert frames.bounds.tolist() == [0, 2, 3]


def test_where_keeps_the_picked_frames_samples() -> None:
    frames = SignalFrames.of(
        [("a", 0.0, 1.0, np.array([1.0])), ("b", 0.0, 2.0, np.array([2.0, 3.0])),
         ("c", 0.0, 1.0, np.array([4.0]))]
    )  # fmt: skip
    picked = frames.where(frames.fs == 1.0)
    assert picked.devices == ["a", "c"]
    assert picked.values.tolist() == [1.0, 4.0]


def _ecg(seconds: float, fs: float, rate_bpm: float) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    phase = (t * rate_bpm / 60.0) % 1.0
    return 1.2 * np.exp(-(((phase - 0.5) / 0.012) ** 2))


def test_one_packed_push_decides_what_frame_by_frame_pushes_do() -> None:
    """The packed fast path (every frame continues its stream) and the per-frame path
    (one device's frame a few samples late, bridged) against pushes of one frame each."""
    fs = 250.0
    signals = {f"d{i}": _ecg(12.0, fs, 60.0 + 10 * i) for i in range(4)}
    packed, single = EcgBeatStream(), EcgBeatStream()
    for second in range(12):
        frames = []
        for device, ecg in signals.items():
            # d3's clock slips 0.1 s (bridged with missing samples) at second 6.
            t0 = second + (0.1 if device == "d3" and second >= 6 else 0.0)
            frames.append((device, t0, fs, ecg[int(second * fs) : int((second + 1) * fs)]))
        batch = packed.push(SignalFrames.of(frames))
        one_by_one = [single.push([frame]) for frame in frames]
        assert batch.times.tolist() == [t for b in one_by_one for t in b.times.tolist()]
    for device in signals:
        assert packed.recent_beats(device).tolist() == single.recent_beats(device).tolist()
        assert len(packed.recent_beats(device)) >= 8
