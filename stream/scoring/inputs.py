"""Model inputs: the one contract between training and the stream.

Owns how windows become the tensors a model card's inputs name:

- ``ecg`` inputs: :func:`ecg_channels` turns a raw ECG window into the card's channels at
  the card's rate. ``models.dataset`` builds training windows with it and the stream's
  :func:`ecg_inputs` builds live ones with it, so a model never sees data prepared
  differently from what it learnt on.
- ``vitals`` inputs: :func:`vitals_inputs`, each channel's trend history (kept by the
  device buffers) at the card's rate.
- :func:`batch_inputs` builds every input of one model for a whole batch of windows at
  once (the scorer's one ONNX call per model); :func:`model_inputs` one window's.

Pure numpy/scipy, no torch and no Faust.

Channels a card may name for an ``ecg`` input, in any order:

- ``ecg``: the ECG resampled to the model's rate with a polyphase anti-alias filter.
  Gaps (nan) stay gaps; the card's normalization imputes them with the training mean.
- ``rr_s``: the RR interval in seconds of the latest beat, step-held until the next one.
  Beats come from :func:`stream.signal.beats.detect_r_peaks` on the *source-rate* ECG, the
  same detector the stream's RR features use, so the model sees beat timing at full
  resolution even though its ECG channel is coarse. Nan before the second beat and for
  intervals that span a gap. The stream passes the peaks its window features already
  found (``r_peaks``, the same detector's output for the same samples) instead of
  detecting them twice; training lets the builder detect them.
- ``drr_s``: the latest beat's RR minus the one before (signed, s), step-held likewise:
  near 0 in sinus rhythm, large in both directions in AF, short-then-long around an
  ectopic beat. The irregularity the stream's ``rr_irregularity`` summarizes, per beat.

Streaming models (a card with ``streaming``: the GRU carries its state per device) are
fed only their newest hop: :func:`ecg_hops` builds a hop's channels from the window that
ends where the hop ends, reading only its last ``HOP_CONTEXT_S + hop_s`` of ECG (the
anti-alias filter sees real samples on its left) and the window's beats for the RR
channels; a cold start feeds every whole hop of the window, each built the same way from
the window cut at its end. Training builds every hop of a recording with the same
function, so the hop a model learnt on is the hop the stream feeds it. The scorer builds a
batch's hops with :func:`streaming_feeds`: the same numbers as :func:`hop_inputs` window by
window (tested so), as arrays for all due devices at once (the RR channels of every window
in one compiled call, the vitals from their histories' newest steps only).

Example::

    x = ecg_channels(ecg_128hz, 128.0, ["ecg", "rr_s", "drr_s"], fs_out=64.0)  # [640, 3]
    hop = ecg_hops(ecg_128hz, 128.0, ["ecg", "rr_s", "drr_s"], 64.0, hop_s=1.0)  # [64, 3]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numba import njit
from scipy.signal import firwin, resample_poly

from stream.scoring.registry import LoadedModel, ModelInput
from stream.signal.beats import detect_r_peaks
from stream.signal.features import group_by_length
from stream.signal.kernels.beat_series import held_rr
from stream.signal.window import SignalWindow

ECG_CHANNELS = ("ecg", "rr_s", "drr_s")

# A window must cover this share of the model's input span to be scored at all.
MIN_COVERAGE = 0.9
# ECG before a hop resampled with it: resample_poly's default anti-alias FIR spans
# 2 * 10 * max(up, down) + 1 input samples (41 at 128 -> 64 Hz, 0.16 s), so with 1 s on
# the left only the hop's right edge (the newest ~0.08 s) sees padding, as in training.
HOP_CONTEXT_S = 1.0


def same_rate(a: float, b: float) -> bool:
    """Whether two rates (or ratios) are equal within ``np.isclose``'s tolerances; scalar
    ``math.isclose`` because ``np.isclose`` builds arrays on every call."""
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-8)


def output_length(n: int, fs_in: float, fs_out: float) -> int:
    return round(n * fs_out / fs_in)


@lru_cache(maxsize=32)
def _anti_alias(up: int, down: int) -> np.ndarray:
    """The FIR ``resample_poly`` designs by default for ``up / down`` (Kaiser, beta 5),
    designed once per ratio: the design cost more than the filtering of a window."""
    widest = max(up, down)
    taps = firwin(2 * 10 * widest + 1, 1.0 / widest, window=("kaiser", 5.0))
    taps.setflags(write=False)  # shared by every call
    return taps


def resample_ecg(ecg: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """``ecg`` at ``fs_out`` (polyphase filter); samples that were missing stay nan.

    Along the last axis: a 2-D ``ecg`` resamples each row exactly as on its own, in one
    call (the stream resamples every due window of a batch together).
    """
    rows = np.array(ecg, dtype=np.float64, ndmin=2)  # a copy: gaps are bridged in place
    rows = rows.reshape(-1, rows.shape[-1])
    n_in = rows.shape[1]
    n_out = output_length(n_in, fs_in, fs_out)
    missing = ~np.isfinite(rows)
    gappy = np.flatnonzero(missing.any(axis=1)).tolist()
    index = np.arange(n_in)
    for r in gappy:
        gap, present = missing[r], ~missing[r]
        # Bridge gaps linearly so the filter does not smear nan over its whole length.
        if present.any():
            rows[r, gap] = np.interp(index[gap], index[present], rows[r, present])
        else:
            rows[r] = 0.0
    if same_rate(fs_in, fs_out):
        out = rows
    else:
        ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
        # "line" padding: a flat or drifting signal has no artificial dip at the edges.
        up, down = ratio.numerator, ratio.denominator
        taps = _anti_alias(up, down)
        out = resample_poly(rows, up, down, axis=-1, window=taps, padtype="line")[:, :n_out]
    out = out.astype(np.float32)
    for r in gappy:
        out[r, _nearest_source(n_out, n_in, fs_in, fs_out, missing[r])] = np.nan
    return out.reshape(*np.shape(ecg)[:-1], n_out)


def _nearest_source(
    n_out: int, n_in: int, fs_in: float, fs_out: float, mask: np.ndarray
) -> np.ndarray:
    """``mask`` (per source sample) looked up at each output sample's time."""
    source = np.minimum(np.round(np.arange(n_out) * fs_in / fs_out).astype(int), n_in - 1)
    return mask[source]


def rr_channels(
    ecg: np.ndarray, fs_in: float, fs_out: float, r_peaks: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Step-held ``rr_s`` and ``drr_s`` at each output sample (see module doc).

    ``r_peaks``: :func:`detect_r_peaks` of this very ``ecg`` when the caller has it already.
    """
    ecg = np.asarray(ecg, dtype=np.float64)
    peaks = detect_r_peaks(ecg, fs_in) if r_peaks is None else r_peaks
    rr_s, drr_s = held_rr(
        np.asarray(peaks, dtype=np.int64),
        ~np.isfinite(ecg),
        float(fs_in),
        float(fs_out),
        output_length(len(ecg), fs_in, fs_out),
    )
    return {"rr_s": rr_s, "drr_s": drr_s}


def ecg_channels(
    ecg: np.ndarray,
    fs_in: float,
    channels: Sequence[str],
    fs_out: float,
    r_peaks: np.ndarray | Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """``[time, len(channels)]`` at ``fs_out`` from one raw ECG window at ``fs_in``.

    ``r_peaks``: :func:`detect_r_peaks` of this ``ecg`` if already known (same result,
    detected once); ``None`` detects them here. A 2-D ``ecg`` (windows of one length as
    rows, ``r_peaks`` then one entry per row) gives ``[window, time, channels]``, each
    window exactly as on its own: the stream builds a batch's inputs in one call.
    """
    unknown = set(channels) - set(ECG_CHANNELS)
    if unknown:
        raise ValueError(f"unknown ECG input channels {sorted(unknown)}; known: {ECG_CHANNELS}")
    one = np.ndim(ecg) == 1
    rows = np.array(ecg, dtype=np.float64, ndmin=2)
    peaks = [r_peaks] if one else list(r_peaks) if r_peaks is not None else [None] * len(rows)
    n_out = output_length(rows.shape[1], fs_in, fs_out)
    out = np.empty((len(rows), n_out, len(channels)), dtype=np.float32)
    column = {name: c for c, name in enumerate(channels)}
    if "ecg" in column:
        out[:, :, column["ecg"]] = resample_ecg(rows, fs_in, fs_out)
    if column.keys() & {"rr_s", "drr_s"}:
        for row, (samples, known) in enumerate(zip(rows, peaks, strict=True)):
            for name, values in rr_channels(samples, fs_in, fs_out, known).items():
                if name in column:
                    out[row, :, column[name]] = values
    return out[0] if one else out


def ecg_hops(
    ecg: np.ndarray,
    fs_in: float,
    channels: Sequence[str],
    fs_out: float,
    hop_s: float,
    r_peaks: np.ndarray | Sequence[np.ndarray | None] | None = None,
    count: int = 1,
) -> np.ndarray:
    """The last ``count`` hops of a window as ``[count * hop, channels]`` at ``fs_out``.

    Hop ``j`` (oldest first) is built from the window cut where that hop ends: its ECG
    from the cut's last ``HOP_CONTEXT_S + hop_s`` (:func:`resample_ecg`), its RR channels
    from the cut's beats (:func:`rr_channels`), so a hop never depends on samples after it.
    A 2-D ``ecg`` (rows of one length, ``r_peaks`` one entry per row) gives
    ``[row, count * hop, channels]``.

    >>> ecg = np.zeros(1280)
    >>> ecg_hops(ecg, 128.0, ["ecg", "rr_s"], 64.0, 1.0, np.array([100, 228]), count=3).shape
    (192, 2)
    """
    one = np.ndim(ecg) == 1
    rows = np.array(ecg, dtype=np.float64, ndmin=2)
    peaks = [r_peaks] if one else list(r_peaks) if r_peaks is not None else [None] * len(rows)
    hop_in, hop_out = round(hop_s * fs_in), round(hop_s * fs_out)
    context = round((HOP_CONTEXT_S + hop_s) * fs_in)
    n_in = rows.shape[1]
    if count * hop_in > n_in:
        raise ValueError(f"{count} hops of {hop_s} s do not fit a window of {n_in / fs_in} s")
    peaks = [
        detect_r_peaks(row, fs_in) if p is None else np.asarray(p, np.int64)
        for row, p in zip(rows, peaks, strict=True)
    ]
    out = np.empty((len(rows), count * hop_out, len(channels)), dtype=np.float32)
    column = {name: c for c, name in enumerate(channels)}
    missing = ~np.isfinite(rows)  # once for every hop: rr_channels' gap rule
    for j in range(count):
        end = n_in - (count - 1 - j) * hop_in
        span = slice(j * hop_out, (j + 1) * hop_out)
        if "ecg" in column:
            # Only the hop and its context are resampled (the same FIR as the window's).
            tail = resample_ecg(rows[:, max(end - context, 0) : end], fs_in, fs_out)
            out[:, span, column["ecg"]] = tail[:, -hop_out:]
        if column.keys() & {"rr_s", "drr_s"}:
            n_out = output_length(end, fs_in, fs_out)
            for r in range(len(rows)):
                # held_rr directly (rr_channels' conversions cost more than it, per row).
                rr_s, drr_s = held_rr(
                    peaks[r][peaks[r] < end], missing[r, :end], float(fs_in), float(fs_out), n_out
                )
                if "rr_s" in column:
                    out[r, span, column["rr_s"]] = rr_s[-hop_out:]
                if "drr_s" in column:
                    out[r, span, column["drr_s"]] = drr_s[-hop_out:]
    return out[0] if one else out


# -- windows -> a model's feeds ------------------------------------------------------------
# Feature names a model card may use for a vital whose history the buffers keep.
TREND_OF_FEATURE = {"hr_device": "hr", "resp_rate": "resp", "spo2": "spo2", "temp": "temp"}


def _resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Trend histories at ``fs_out``, along the last axis (rows resample independently)."""
    n = x.shape[-1]
    if same_rate(fs_in, fs_out) or n < 2:
        return x
    ratio = fs_in / fs_out
    if ratio > 1 and same_rate(ratio, round(ratio)):
        # Downsampling a trend: mean of each block, ignoring gaps (no aliasing of noise).
        step = round(ratio)
        usable = n - n % step
        blocks = x[..., n - usable :].reshape(*x.shape[:-1], -1, step)
        counts = np.isfinite(blocks).sum(axis=-1)
        sums = np.nansum(blocks, axis=-1)
        return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
    t_in = np.arange(n) / fs_in
    t_out = np.arange(round(n * fs_out / fs_in)) / fs_out
    rows = [np.interp(t_out, t_in, row) for row in x.reshape(-1, n)]
    return np.stack(rows).reshape(*x.shape[:-1], len(t_out))


def _fit(x: np.ndarray, steps: int) -> np.ndarray | None:
    """The last ``steps`` samples, nan-padded at the start; ``None`` if too little data."""
    if len(x) < MIN_COVERAGE * steps:
        return None
    if len(x) >= steps:
        return x[-steps:]
    return np.concatenate([np.full((steps - len(x), *np.shape(x)[1:]), np.nan), x])


def ecg_inputs(
    windows: Sequence[SignalWindow],
    spec: ModelInput,
    r_peaks: Sequence[np.ndarray | None],
) -> list[np.ndarray | None]:
    """Each window's ``[steps, channels]`` at the model's rate, ``None`` without ECG.

    ``stream.scoring.inputs`` builds the channels (ECG, RR interval) exactly as training did;
    ``r_peaks`` are each window's R peaks when its features found them already.
    """
    out: list[np.ndarray | None] = [None] * len(windows)
    signals = [w.ecg for w in windows]
    for (_, fs), rows in group_by_length(signals, [w.ecg_fs for w in windows]).items():
        stacked = np.stack([np.asarray(signals[i], float) for i in rows])
        x = ecg_channels(stacked, fs, spec.channels, spec.fs, [r_peaks[i] for i in rows])
        for k, i in enumerate(rows):
            out[i] = _fit(x[k], spec.steps)
    return out


def ecg_input(
    window: SignalWindow, spec: ModelInput, r_peaks: np.ndarray | None = None
) -> np.ndarray | None:
    """:func:`ecg_inputs` of one window."""
    return ecg_inputs([window], spec, [r_peaks])[0]


def vitals_inputs(
    windows: Sequence[SignalWindow], features: Sequence[Mapping[str, float]], spec: ModelInput
) -> np.ndarray:
    """``[windows, steps, channels]``: each channel's trend history at the model's rate.

    A channel without a history (a feature such as ``rr_irregularity``) gets its current
    value in the last step and nan before; nan is imputed by the card's normalization.
    """
    out = np.full((len(windows), spec.steps, len(spec.channels)), np.nan)
    for c, channel in enumerate(spec.channels):
        trend = TREND_OF_FEATURE.get(channel, channel)
        histories = [w.trends.get(trend) for w in windows]
        for i, history in enumerate(histories):
            if history is None or len(history) == 0:
                out[i, -1, c] = features[i].get(channel, np.nan)
        for (_, fs), rows in group_by_length(histories, [w.trend_fs for w in windows]).items():
            stacked = np.stack([np.asarray(histories[i], float) for i in rows])
            tail = _resample(stacked, fs, spec.fs)[:, -spec.steps :]
            out[rows, spec.steps - tail.shape[1] :, c] = tail
    return out


def vitals_input(
    window: SignalWindow, features: Mapping[str, float], spec: ModelInput
) -> np.ndarray:
    """:func:`vitals_inputs` of one window: ``[steps, channels]``."""
    return vitals_inputs([window], [features], spec)[0]


def batch_inputs(
    model: LoadedModel,
    windows: Sequence[SignalWindow],
    features: Sequence[Mapping[str, float]],
    r_peaks: Sequence[np.ndarray | None],
) -> tuple[list[int], dict[str, np.ndarray]]:
    """The windows that can feed ``model`` (their indices) and its feeds for them, each
    input stacked ``[window, steps, channels]``, built for all windows at once."""
    usable = np.ones(len(windows), dtype=bool)
    built: dict[str, list[np.ndarray | None] | np.ndarray] = {}
    for spec in model.card.inputs:
        if spec.kind == "ecg" and model.card.streaming is not None:
            # A streaming model's whole window is its cold start: every hop, built as fed.
            hops = round(spec.window_s / model.card.streaming.hop_s)
            values = [None] * len(windows)
            for i, window in enumerate(windows):
                if cold_hops(model, window) == hops:
                    feeds = hop_inputs(model, [window], [features[i]], [r_peaks[i]], hops)
                    values[i] = feeds[spec.name][0]
            usable &= np.array([v is not None for v in values], dtype=bool)
            built[spec.name] = values
        elif spec.kind == "ecg":
            values = ecg_inputs(windows, spec, r_peaks)
            usable &= np.array([v is not None for v in values], dtype=bool)
            built[spec.name] = values
        else:
            built[spec.name] = vitals_inputs(windows, features, spec)
    rows = np.flatnonzero(usable).tolist()
    if not rows:
        return rows, {}
    return rows, {name: np.stack([values[i] for i in rows]) for name, values in built.items()}


# -- streaming models: the newest hops ------------------------------------------------------


def cold_hops(model: LoadedModel, window: SignalWindow) -> int:
    """How many hops a device without state is fed from ``window`` (0: it cannot be).

    ECG: every whole hop of the window's ECG (10 for a 10 s window of 1 s hops), if the
    window covers :data:`MIN_COVERAGE` of the model's span. Vitals: the trend steps from
    the first with any value on (a new device has seconds of history, not 10 min; the
    steps before are not fed as imputed means the model never saw in training), at least
    one, at most the model's window.
    """
    streaming = model.card.streaming
    if streaming is None:
        raise ValueError(f"{model.ref} is not a streaming model")
    spec = model.card.inputs[0]
    most = max(round(spec.window_s / streaming.hop_s), 1)
    if spec.kind == "ecg":
        if window.ecg is None:
            return 0
        span = len(window.ecg) / window.ecg_fs
        if span < MIN_COVERAGE * spec.window_s:
            return 0
        return min(int(span / streaming.hop_s + 1e-6), most)
    histories = [window.trends.get(TREND_OF_FEATURE.get(c, c)) for c in spec.channels]
    known = [len(h) - int(np.argmax(np.isfinite(h))) for h in histories
             if h is not None and len(h) and np.isfinite(h).any()]  # fmt: skip
    if not known:
        return 1
    seconds = max(known) / window.trend_fs
    return int(min(max(math.ceil(seconds / streaming.hop_s - 1e-6), 1), most))


def hop_inputs(
    model: LoadedModel,
    windows: Sequence[SignalWindow],
    features: Sequence[Mapping[str, float]],
    r_peaks: Sequence[np.ndarray | None],
    count: int,
) -> dict[str, np.ndarray]:
    """A streaming model's feeds for the newest ``count`` hops of each window, each input
    ``[window, count * hop steps, channels]`` (ECG: :func:`ecg_hops`; vitals: the last
    steps of :func:`vitals_inputs`, one 10 s mean per step)."""
    streaming = model.card.streaming
    if streaming is None:
        raise ValueError(f"{model.ref} is not a streaming model")
    feeds = {}
    for spec in model.card.inputs:
        steps = count * round(streaming.hop_s * spec.fs)
        if spec.kind == "ecg":
            out = np.empty((len(windows), steps, len(spec.channels)), np.float32)
            signals = [w.ecg for w in windows]
            fs_of = [w.ecg_fs for w in windows]
            for (_, fs), rows in group_by_length(signals, fs_of).items():
                stacked = np.stack([np.asarray(signals[i], float) for i in rows])
                peaks = [r_peaks[i] for i in rows]
                out[rows] = ecg_hops(
                    stacked, fs, spec.channels, spec.fs, streaming.hop_s, peaks, count
                )
            feeds[spec.name] = out
        else:
            feeds[spec.name] = vitals_inputs(windows, features, spec)[:, -steps:]
    return feeds


@njit(cache=True)
def _held_rr_hops(
    rows: np.ndarray,
    peaks: np.ndarray,
    bounds: np.ndarray,
    ends: np.ndarray,
    n_outs: np.ndarray,
    fs_in: float,
    fs_out: float,
    hop_out: int,
    rr_out: np.ndarray,
    drr_out: np.ndarray,
) -> None:
    """:func:`held_rr`'s last ``hop_out`` values of every row's cut at each of ``ends``
    (``n_outs`` output samples each), for all rows in one call: row ``r``'s peaks are
    ``peaks[bounds[r]:bounds[r + 1]]`` (ascending), its missing samples its non-finite
    ones; hop ``j``'s values go to ``[r, j * hop_out:]`` of ``rr_out`` and ``drr_out``."""
    n_rows, n_in = rows.shape
    gaps = np.zeros(n_in + 1, dtype=np.int64)
    for r in range(n_rows):
        for i in range(n_in):  # missing samples before each sample: held_rr's gap rule
            gaps[i + 1] = gaps[i] + (0 if np.isfinite(rows[r, i]) else 1)
        first, last = bounds[r], bounds[r + 1]
        for j in range(ends.shape[0]):
            m = 0  # the peaks before the cut
            while first + m < last and peaks[first + m] < ends[j]:
                m += 1
            rr = np.full(m, np.nan)
            for k in range(1, m):
                if gaps[peaks[first + k]] == gaps[peaks[first + k - 1]]:
                    rr[k] = (peaks[first + k] - peaks[first + k - 1]) / fs_in
            beat = -1
            for o in range(n_outs[j] - hop_out, n_outs[j]):
                t = o / fs_out
                while beat + 1 < m and peaks[first + beat + 1] / fs_in <= t:
                    beat += 1
                at = j * hop_out + o - (n_outs[j] - hop_out)
                if beat >= 0:
                    rr_out[r, at] = rr[beat]
                    drr_out[r, at] = rr[beat] - rr[beat - 1] if beat >= 1 else np.nan
                else:
                    rr_out[r, at] = np.nan
                    drr_out[r, at] = np.nan


def warm_up() -> None:
    """Compile :func:`_held_rr_hops` (or load it from numba's cache) on a tiny batch."""
    rows = np.zeros((1, 4))
    no_peaks = np.zeros(0, dtype=np.int64)
    out = np.empty((1, 2), dtype=np.float32)
    ends, n_outs, bounds = np.array([4]), np.array([2]), np.zeros(2, dtype=np.int64)
    _held_rr_hops(rows, no_peaks, bounds, ends, n_outs, 2.0, 1.0, 2, out, out.copy())


def _peaks_of(
    rows: np.ndarray, fs: float, r_peaks: Sequence[np.ndarray | None]
) -> list[np.ndarray]:
    """Each row's R peaks: the window features' when given, else detected here."""
    return [
        detect_r_peaks(row, fs) if p is None else np.asarray(p, np.int64)
        for row, p in zip(rows, r_peaks, strict=True)
    ]


def _ecg_hops_batch(
    rows: np.ndarray,
    fs_in: float,
    channels: Sequence[str],
    fs_out: float,
    hop_s: float,
    r_peaks: Sequence[np.ndarray | None],
    count: int,
) -> np.ndarray:
    """:func:`ecg_hops` of 2-D ``rows``, the same numbers, with the RR channels of every
    row and hop in one compiled call (:func:`held_rr` per row cost more than its work)."""
    hop_in, hop_out = round(hop_s * fs_in), round(hop_s * fs_out)
    context = round((HOP_CONTEXT_S + hop_s) * fs_in)
    n_rows, n_in = rows.shape
    if count * hop_in > n_in:
        raise ValueError(f"{count} hops of {hop_s} s do not fit a window of {n_in / fs_in} s")
    out = np.empty((n_rows, count * hop_out, len(channels)), dtype=np.float32)
    column = {name: c for c, name in enumerate(channels)}
    ends = [n_in - (count - 1 - j) * hop_in for j in range(count)]
    if "ecg" in column:
        for j, end in enumerate(ends):
            # Only the hop and its context are resampled (the same FIR as the window's).
            tail = resample_ecg(rows[:, max(end - context, 0) : end], fs_in, fs_out)
            out[:, j * hop_out : (j + 1) * hop_out, column["ecg"]] = tail[:, -hop_out:]
    if column.keys() & {"rr_s", "drr_s"}:
        peaks = _peaks_of(rows, fs_in, r_peaks)
        bounds = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum([len(p) for p in peaks], out=bounds[1:])
        flat = np.concatenate(peaks) if peaks else np.zeros(0, np.int64)
        rr = np.empty((n_rows, count * hop_out), dtype=np.float32)
        drr = np.empty_like(rr)
        n_outs = np.array([output_length(end, fs_in, fs_out) for end in ends], dtype=np.int64)
        _held_rr_hops(
            rows, flat.astype(np.int64, copy=False), bounds, np.array(ends, dtype=np.int64),
            n_outs, float(fs_in), float(fs_out), hop_out, rr, drr,
        )  # fmt: skip
        for name, values in (("rr_s", rr), ("drr_s", drr)):
            if name in column:
                out[:, :, column[name]] = values
    return out


def _vitals_hops(
    windows: Sequence[SignalWindow],
    features: Sequence[Mapping[str, float]],
    spec: ModelInput,
    steps: int,
) -> np.ndarray:
    """The last ``steps`` of :func:`vitals_inputs` (the same numbers), resampling only the
    histories' tails those steps come from: a hop is one 10 s mean of a 10 min history."""
    if steps > spec.steps:
        raise ValueError(f"{steps} steps of a {spec.steps}-step input")
    out = np.full((len(windows), steps, len(spec.channels)), np.nan)
    for c, channel in enumerate(spec.channels):
        trend = TREND_OF_FEATURE.get(channel, channel)
        histories = [w.trends.get(trend) for w in windows]
        for i, history in enumerate(histories):
            if history is None or len(history) == 0:
                out[i, -1, c] = features[i].get(channel, np.nan)
        for (n, fs), rows in group_by_length(histories, [w.trend_fs for w in windows]).items():
            needed = _tail_samples(n, fs, spec.fs, steps)
            stacked = np.stack([np.asarray(histories[i][n - needed :], float) for i in rows])
            tail = _resample(stacked, fs, spec.fs)[:, -steps:]
            out[rows, steps - tail.shape[1] :, c] = tail
    return out


def _tail_samples(n: int, fs_in: float, fs_out: float, steps: int) -> int:
    """How many of a history's last samples give :func:`_resample`'s last ``steps``
    outputs exactly (all ``n`` unless a whole-block mean or the same rate).

    >>> [_tail_samples(n, 1.0, fs_out, steps) for n, fs_out, steps in
    ...  [(600, 0.1, 1), (600, 1.0, 3), (5, 0.1, 1), (600, 0.3, 1)]]
    [10, 3, 5, 600]
    """
    if n < 2:
        return n
    if same_rate(fs_in, fs_out):
        return min(n, steps)
    ratio = fs_in / fs_out
    if ratio > 1 and same_rate(ratio, round(ratio)):
        # Blocks are cut from the newest sample back: the last steps blocks are the last
        # steps * step samples.
        return steps * round(ratio) if n >= steps * round(ratio) else n
    return n  # interpolated: every output depends on the whole time axis's length


def streaming_feeds(
    model: LoadedModel,
    windows: Sequence[SignalWindow],
    features: Sequence[Mapping[str, float]],
    r_peaks: Sequence[np.ndarray | None],
    count: int,
    ecg_grid: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`hop_inputs`, the same numbers, built for the whole batch as arrays: the RR
    channels of all windows in one compiled call, and the vitals from the histories' last
    steps only. The scorer feeds a batch's due devices with it; :func:`hop_inputs` (one
    window at a time inside) is the reference it is tested against. ``ecg_grid``: the
    windows' ECG as the rows of one array (all at one rate), when the caller has it."""
    streaming = model.card.streaming
    if streaming is None:
        raise ValueError(f"{model.ref} is not a streaming model")
    feeds = {}
    for spec in model.card.inputs:
        steps = count * round(streaming.hop_s * spec.fs)
        if spec.kind == "ecg":
            out = np.empty((len(windows), steps, len(spec.channels)), np.float32)
            signals = [w.ecg for w in windows]
            if ecg_grid is not None and len(windows):
                groups = {(ecg_grid.shape[1], float(windows[0].ecg_fs)): None}
            else:
                groups = group_by_length(signals, [w.ecg_fs for w in windows])
            for (_, fs), rows in groups.items():
                if rows is None:  # every window, already rows of one array
                    stacked = ecg_grid
                    rows = list(range(len(windows)))
                else:
                    stacked = np.stack([signals[i] for i in rows])
                out[rows] = _ecg_hops_batch(
                    stacked.astype(np.float64, copy=False), fs, spec.channels, spec.fs,
                    streaming.hop_s, [r_peaks[i] for i in rows], count,
                )  # fmt: skip
            feeds[spec.name] = out
        else:
            feeds[spec.name] = _vitals_hops(windows, features, spec, steps)
    return feeds


def model_inputs(
    model: LoadedModel,
    window: SignalWindow,
    features: Mapping[str, float],
    r_peaks: np.ndarray | None = None,
) -> dict[str, np.ndarray] | None:
    """All of one window's inputs for ``model``, or ``None`` if the window cannot feed it.

    ``r_peaks``: the window's R peaks (``WindowAnalysis.r_peaks``), or ``None`` to detect.
    """
    rows, feeds = batch_inputs(model, [window], [features], [r_peaks])
    return {name: value[0] for name, value in feeds.items()} if rows else None
