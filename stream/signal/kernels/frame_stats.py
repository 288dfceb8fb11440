"""The per-frame statistics loops: each device's new samples summarized once, all devices
of a batch in one call.

Owns the arithmetic of :mod:`stream.signal.frame_stats` (which says what the statistics
mean and keeps the rings): for each frame of each device a *slot* of running sums and
extremes, and the carried state that makes a slot exact whatever the frame length (the
band filters' state, the current flat stretch). A window's statistic is then a combination
of its frames' slots (:func:`combine_ecg`, :func:`combine_acc`), never a second pass over
its samples. Samples arrive as one flat array with CSR ``bounds`` (device ``r``'s frame is
``samples[bounds[r]:bounds[r + 1]]``) and ``rows`` (its row in the state arrays); NaN is a
missing sample.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SLOTS = 32  # frames kept per device: a 10 s window of frames down to 0.32 s

# ECG slot columns.
E_T0, E_T1 = 0, 1  # the frame's start and end (epoch s)
E_N, E_PRESENT = 2, 3  # samples, samples present
E_MIN, E_MAX = 4, 5  # extremes of the raw samples
E_NEAR_MIN, E_NEAR_MAX = 6, 7  # samples within PINNED_TOLERANCE of the frame's extremes
E_S1, E_S2, E_S3, E_S4 = 8, 9, 10, 11  # sums of the QRS-band signal's first four powers
E_QRS, E_WIDE, E_BASE, E_TOTAL = 12, 13, 14, 15  # energies in the quality bands
E_LONGEST_FLAT = 16  # longest flat stretch ending in this frame (samples, carried over)
E_TAIL_FLAT = 17  # the flat stretch still running at the frame's end (samples)
E_COLUMNS = 18

# ECG carried state columns: 4 bands x 2 biquads x 2 state values, then the flat stretch.
S_Z = 0
S_RUN, S_RUN_LO, S_RUN_HI = 16, 17, 18
S_STARTED = 19  # 1 once a sample set the filters' initial state
# The quality index's second QRS detector (bSQI), streaming: peaks of the QRS band's
# magnitude above SIMPLE_HEIGHT of its decaying maximum, at least a distance apart.
S_LEVEL = 20  # decaying maximum of the QRS band's magnitude
S_CAND_T, S_CAND_V = 21, 22  # the peak candidate (time, magnitude); time nan for none
S_DECIDED = 23  # time up to which the second detector has decided (epoch s)
S_COLUMNS = 24
PEAKS = 64  # second-detector peaks kept per device (a 10 s window's at 300 bpm, and more)
SIMPLE_HEIGHT = 0.35  # stream.signal.kernels.detectors.simple_beats' share of the level
BANDS = 4  # QRS, wide, baseline, total (stream.signal.frame_stats.ECG_QUALITY_BANDS)

# Accelerometer slot columns.
A_T0, A_T1 = 0, 1
A_N = 2  # rows with all three axes present
A_M1, A_M2 = 3, 4  # sums of the magnitude and its square
A_MAX = 5  # largest magnitude
A_X, A_Y, A_Z = 6, 7, 8  # sums of each axis (the mean gravity direction)
A_COLUMNS = 9

# PPG slot columns.
P_T0, P_T1, P_N, P_PRESENT = 0, 1, 2, 3
P_MIN, P_MAX, P_NEAR_MIN, P_NEAR_MAX = 4, 5, 6, 7
P_REPEATS = 8  # samples equal to the one before (a stuck sensor repeats its value)
P_S1, P_S2 = 9, 10  # sums of the raw samples and their squares
P_PULSE, P_TOTAL = 11, 12  # energies in the pulse band and in all of the signal but DC
P_EDGE_REPEAT = 13  # 1 when the frame's first sample repeats the last frame's last
P_COLUMNS = 14

# PPG carried state: 2 bands x 2 biquads x 2 values, the last sample, started.
Q_Z = 0
Q_LAST = 8
Q_STARTED = 9
Q_COLUMNS = 10
PPG_BANDS = 2

# A sample within this share of the frame's span of its extreme counts as pinned there
# (stream.signal.kernels.stats.pinned_fraction's tolerance).
PINNED_TOLERANCE = 1e-3


@njit(cache=True)
def _biquad(x: float, sos: np.ndarray, z: np.ndarray, at: int) -> float:
    """One sample through a second-order section (transposed direct form II)."""
    y = sos[0] * x + z[at]
    z[at] = sos[1] * x - sos[4] * y + z[at + 1]
    z[at + 1] = sos[2] * x - sos[5] * y
    return y


@njit(cache=True)
def _open_slot(slots: np.ndarray, heads: np.ndarray, row: int, t0: float, t1: float) -> np.ndarray:
    """The device's next slot (the ring's oldest), emptied and dated ``[t0, t1)``; column
    0 and 1 are every signal's start and end."""
    slot = slots[row, heads[row] % SLOTS]
    heads[row] += 1
    slot[:] = 0.0
    slot[0] = t0
    slot[1] = t1
    return slot


@njit(cache=True)
def _start_filters(z: np.ndarray, at: int, zi: np.ndarray, x: float) -> None:
    """Each band's two sections in ``z[at:]`` as if the signal had always been ``x``."""
    for b in range(zi.shape[0]):
        for q in range(4):
            z[at + 4 * b + q] = zi[b, q] * x


@njit(cache=True)
def advance_ecg(
    samples: np.ndarray,
    bounds: np.ndarray,
    rows: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    sos: np.ndarray,
    zi: np.ndarray,
    flat_mv: float,
    distance_s: float,
    decay: float,
    state: np.ndarray,
    slots: np.ndarray,
    heads: np.ndarray,
    peaks: np.ndarray,
    peak_heads: np.ndarray,
) -> None:
    """Summarize each device's frame into its next slot, carrying the filters, the flat
    stretch and the second detector on. ``sos[b]`` are band ``b``'s two sections, ``zi[b]``
    their state for a unit step (a stream starts as if it had always been at its first
    sample). The second detector's peaks go to ``peaks[row]`` (a ring, ``peak_heads``
    counting them); ``decay`` is its level's factor per sample."""
    for r in range(rows.shape[0]):
        row = rows[r]
        z = state[row]
        fs = (bounds[r + 1] - bounds[r]) / (t1[r] - t0[r])
        slot = _open_slot(slots, heads, row, t0[r], t1[r])
        for i in range(bounds[r], bounds[r + 1]):
            x = samples[i]
            t = t0[r] + (i - bounds[r]) / fs
            slot[E_N] += 1.0
            if math.isnan(x):
                z[S_RUN] = 0.0  # a missing sample ends a flat stretch
                continue
            slot[E_PRESENT] += 1.0
            if z[S_STARTED] == 0.0:
                _start_filters(z, S_Z, zi, x)
                z[S_STARTED] = 1.0
                z[S_CAND_T] = math.nan
            qrs = _biquad(_biquad(x, sos[0, 0], z, S_Z), sos[0, 1], z, S_Z + 2)
            wide = _biquad(_biquad(x, sos[1, 0], z, S_Z + 4), sos[1, 1], z, S_Z + 6)
            base = _biquad(_biquad(x, sos[2, 0], z, S_Z + 8), sos[2, 1], z, S_Z + 10)
            total = _biquad(_biquad(x, sos[3, 0], z, S_Z + 12), sos[3, 1], z, S_Z + 14)
            squared = qrs * qrs
            slot[E_S1] += qrs
            slot[E_S2] += squared
            slot[E_S3] += squared * qrs
            slot[E_S4] += squared * squared
            slot[E_QRS] += squared
            slot[E_WIDE] += wide * wide
            slot[E_BASE] += base * base
            slot[E_TOTAL] += total * total
            # The second detector: a candidate is decided once nothing larger came within
            # the distance after it (find_peaks' rule, the higher of two close peaks).
            magnitude = abs(qrs)
            z[S_LEVEL] = max(z[S_LEVEL] * decay, magnitude)
            if not math.isnan(z[S_CAND_T]) and t - z[S_CAND_T] >= distance_s:
                peaks[row, peak_heads[row] % PEAKS] = z[S_CAND_T]
                peak_heads[row] += 1
                z[S_CAND_T] = math.nan
            if magnitude >= SIMPLE_HEIGHT * z[S_LEVEL] and (
                math.isnan(z[S_CAND_T]) or magnitude > z[S_CAND_V]
            ):
                z[S_CAND_T] = t
                z[S_CAND_V] = magnitude
            z[S_DECIDED] = t - distance_s if math.isnan(z[S_CAND_T]) else z[S_CAND_T]
            # The flat stretch (within flat_mv), greedy forwards and carried across frames.
            if z[S_RUN] == 0.0:
                z[S_RUN_LO] = x
                z[S_RUN_HI] = x
                z[S_RUN] = 1.0
            else:
                run_lo = min(z[S_RUN_LO], x)
                run_hi = max(z[S_RUN_HI], x)
                if run_hi - run_lo >= flat_mv:
                    z[S_RUN_LO] = x
                    z[S_RUN_HI] = x
                    z[S_RUN] = 1.0
                else:
                    z[S_RUN_LO] = run_lo
                    z[S_RUN_HI] = run_hi
                    z[S_RUN] += 1.0
            slot[E_LONGEST_FLAT] = max(slot[E_LONGEST_FLAT], z[S_RUN])
        slot[E_TAIL_FLAT] = z[S_RUN]
        _extremes(samples, bounds[r], bounds[r + 1], slot, E_MIN, E_NEAR_MIN)


@njit(cache=True)
def _extremes(samples: np.ndarray, start: int, stop: int, slot: np.ndarray,
              lo_column: int, near_lo_column: int) -> None:  # fmt: skip
    """Extremes of ``samples[start:stop]`` (present ones) and the samples pinned at them,
    into ``slot[lo_column]``, the next column (high) and ``near_lo_column`` and the next."""
    lo = math.inf
    hi = -math.inf
    for i in range(start, stop):
        x = samples[i]
        if not math.isnan(x):
            lo = min(lo, x)
            hi = max(hi, x)
    if hi < lo:
        slot[lo_column] = slot[lo_column + 1] = math.nan
        return
    slot[lo_column] = lo
    slot[lo_column + 1] = hi
    tolerance = PINNED_TOLERANCE * (hi - lo)
    for i in range(start, stop):
        x = samples[i]
        if not math.isnan(x):
            if x <= lo + tolerance:
                slot[near_lo_column] += 1.0
            if x >= hi - tolerance:
                slot[near_lo_column + 1] += 1.0


@njit(cache=True)
def advance_ppg(
    samples: np.ndarray,
    bounds: np.ndarray,
    rows: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    sos: np.ndarray,
    zi: np.ndarray,
    state: np.ndarray,
    slots: np.ndarray,
    heads: np.ndarray,
) -> None:
    """Summarize each device's PPG frame into its next slot (``sos``/``zi`` as for
    :func:`advance_ecg`, the pulse band then the total)."""
    for r in range(rows.shape[0]):
        row = rows[r]
        z = state[row]
        slot = _open_slot(slots, heads, row, t0[r], t1[r])
        for i in range(bounds[r], bounds[r + 1]):
            x = samples[i]
            slot[P_N] += 1.0
            if math.isnan(x):
                continue
            slot[P_PRESENT] += 1.0
            if z[Q_STARTED] == 0.0:
                _start_filters(z, Q_Z, zi, x)
                z[Q_STARTED] = 1.0
                z[Q_LAST] = math.nan
            if x == z[Q_LAST]:
                slot[P_REPEATS if slot[P_PRESENT] > 1.0 else P_EDGE_REPEAT] += 1.0
            z[Q_LAST] = x
            slot[P_S1] += x
            slot[P_S2] += x * x
            pulse = _biquad(_biquad(x, sos[0, 0], z, Q_Z), sos[0, 1], z, Q_Z + 2)
            total = _biquad(_biquad(x, sos[1, 0], z, Q_Z + 4), sos[1, 1], z, Q_Z + 6)
            slot[P_PULSE] += pulse * pulse
            slot[P_TOTAL] += total * total
        _extremes(samples, bounds[r], bounds[r + 1], slot, P_MIN, P_NEAR_MIN)


@njit(cache=True)
def advance_acc(
    samples: np.ndarray,
    bounds: np.ndarray,
    rows: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    slots: np.ndarray,
    heads: np.ndarray,
) -> None:
    """Summarize each device's ``(n, 3)`` accelerometer frame (rows ``bounds[r]`` to
    ``bounds[r + 1]`` of ``samples``) into its next slot."""
    for r in range(rows.shape[0]):
        row = rows[r]
        slot = _open_slot(slots, heads, row, t0[r], t1[r])
        for i in range(bounds[r], bounds[r + 1]):
            x, y, z = samples[i, 0], samples[i, 1], samples[i, 2]
            if math.isnan(x) or math.isnan(y) or math.isnan(z):
                continue
            magnitude = math.sqrt(x * x + y * y + z * z)
            slot[A_N] += 1.0
            slot[A_M1] += magnitude
            slot[A_M2] += magnitude * magnitude
            slot[A_MAX] = max(slot[A_MAX], magnitude)
            slot[A_X] += x
            slot[A_Y] += y
            slot[A_Z] += z


@njit(cache=True)
def _middle(slot: np.ndarray) -> float:
    """The middle of a slot's frame (columns 0 and 1 are every signal's start and end).
    A frame belongs to the window its middle falls in: device clocks jitter by up to the
    buffers' 20 ms snap, far less than half a frame."""
    return 0.5 * (slot[0] + slot[1])


@njit(cache=True)
def _window_slots(
    slots: np.ndarray, heads: np.ndarray, row: int, t_start: float, t_end: float,
    out: np.ndarray,
) -> int:  # fmt: skip
    """The slots of ``row`` whose frame's middle is in ``(t_start, t_end]``, oldest first,
    into ``out``; returns how many."""
    count = 0
    held = min(heads[row], SLOTS)
    for back in range(held - 1, -1, -1):
        k = (heads[row] - 1 - back) % SLOTS
        middle = _middle(slots[row, k])
        if middle > t_start and middle <= t_end:
            out[count] = k
            count += 1
    return count


@njit(cache=True)
def _pinned(s: np.ndarray, picked: np.ndarray, count: int, lo: float, hi: float) -> float:
    """Samples pinned at the window's extremes ``lo``/``hi``: those of the frames whose own
    extreme is the window's (ECG and PPG slots share the columns 3-7: present, min, max,
    near min, near max)."""
    tolerance = PINNED_TOLERANCE * (hi - lo)
    pinned = 0.0
    for c in range(count):
        k = picked[c]
        if s[k, E_PRESENT] > 0 and s[k, E_MAX] >= hi - tolerance:
            pinned += s[k, E_NEAR_MAX]
        if s[k, E_PRESENT] > 0 and s[k, E_MIN] <= lo + tolerance:
            pinned += s[k, E_NEAR_MIN]
    return pinned


# The PPG slots keep the ECG's column layout where _pinned and _extremes read them.
assert (P_PRESENT, P_MIN, P_MAX, P_NEAR_MIN, P_NEAR_MAX) == (
    E_PRESENT,
    E_MIN,
    E_MAX,
    E_NEAR_MIN,
    E_NEAR_MAX,
)


# Combined ECG window columns.
W_PRESENT = 0  # share of samples present
W_SPAN = 1  # peak to peak (mV)
W_PINNED = 2  # share of samples pinned at the window's extremes
W_KURTOSIS = 3  # Pearson kurtosis of the QRS-band signal
W_P_SQI = 4  # QRS-band energy / wide-band energy
W_BAS_SQI = 5  # 1 - baseline energy / total energy
W_LONGEST_FLAT = 6  # longest flat stretch (samples)
W_TAIL_FLAT = 7  # the flat stretch at the window's end (samples)
W_SAMPLES = 8
W_COLUMNS = 9


@njit(cache=True)
def combine_ecg(
    slots: np.ndarray, heads: np.ndarray, rows: np.ndarray, t_start: np.ndarray,
    t_end: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Each window's ECG statistics (columns ``W_*``) from its frames' slots; NaN where
    the window holds no frame."""
    out = np.full((rows.shape[0], W_COLUMNS), np.nan)
    picked = np.empty(SLOTS, dtype=np.int64)
    for w in range(rows.shape[0]):
        row = rows[w]
        count = _window_slots(slots, heads, row, t_start[w], t_end[w], picked)
        if count == 0:
            continue
        s = slots[row]
        n = present = s1 = s2 = s3 = s4 = qrs = wide = base = total = longest = 0.0
        lo, hi = math.inf, -math.inf
        for c in range(count):
            k = picked[c]
            n += s[k, E_N]
            present += s[k, E_PRESENT]
            if s[k, E_PRESENT] > 0:
                lo = min(lo, s[k, E_MIN])
                hi = max(hi, s[k, E_MAX])
            s1 += s[k, E_S1]
            s2 += s[k, E_S2]
            s3 += s[k, E_S3]
            s4 += s[k, E_S4]
            qrs += s[k, E_QRS]
            wide += s[k, E_WIDE]
            base += s[k, E_BASE]
            total += s[k, E_TOTAL]
            # A stretch carried in from before the window counts only its part inside.
            inside = s[k, E_LONGEST_FLAT] if c > 0 else min(s[k, E_LONGEST_FLAT], s[k, E_N])
            longest = max(longest, inside)
        pinned = _pinned(s, picked, count, lo, hi) if hi >= lo else 0.0
        out[w, W_SAMPLES] = n
        out[w, W_PRESENT] = present / n if n > 0 else 0.0
        if present > 0:
            out[w, W_SPAN] = hi - lo
            out[w, W_PINNED] = pinned / present
            mean = s1 / present
            # Central moments from the raw sums (the band-passed signal is near zero mean,
            # so cancellation is small).
            m2 = s2 / present - mean * mean
            m4 = (
                s4 / present
                - 4.0 * mean * s3 / present
                + 6.0 * mean * mean * s2 / present
                - 3.0 * mean**4
            )
            out[w, W_KURTOSIS] = m4 / (m2 * m2) if m2 > 0 else 0.0
            out[w, W_P_SQI] = qrs / wide if wide > 0 else 0.0
            out[w, W_BAS_SQI] = 1.0 - base / total if total > 0 else 0.0
        last = picked[count - 1]
        out[w, W_LONGEST_FLAT] = longest
        out[w, W_TAIL_FLAT] = min(s[last, E_TAIL_FLAT], n)
    return out


# Combined PPG window columns.
G_PRESENT = 0  # share of samples present
G_SPAN = 1
G_PINNED = 2  # share pinned at the window's extremes
G_REPEATED = 3  # share of samples repeating the one before
G_STD = 4  # standard deviation of the raw samples
G_TAIL_STD = 5  # of the frames of the trailing tail_s
G_BAND_SHARE = 6  # pulse-band energy / total energy
G_SAMPLES = 7
G_COLUMNS = 8


@njit(cache=True)
def combine_ppg(
    slots: np.ndarray, heads: np.ndarray, rows: np.ndarray, t_start: np.ndarray,
    t_end: np.ndarray, tail_s: float,
) -> np.ndarray:  # fmt: skip
    """Each window's PPG statistics (columns ``G_*``) from its frames' slots."""
    out = np.full((rows.shape[0], G_COLUMNS), np.nan)
    picked = np.empty(SLOTS, dtype=np.int64)
    for w in range(rows.shape[0]):
        row = rows[w]
        count = _window_slots(slots, heads, row, t_start[w], t_end[w], picked)
        if count == 0:
            continue
        s = slots[row]
        n = present = repeats = s1 = s2 = pulse = total = tn = t1 = t2 = 0.0
        lo, hi = math.inf, -math.inf
        for c in range(count):
            k = picked[c]
            n += s[k, P_N]
            present += s[k, P_PRESENT]
            # The first frame's first sample repeats one outside the window.
            repeats += s[k, P_REPEATS] + (s[k, P_EDGE_REPEAT] if c > 0 else 0.0)
            s1 += s[k, P_S1]
            s2 += s[k, P_S2]
            pulse += s[k, P_PULSE]
            total += s[k, P_TOTAL]
            if s[k, P_PRESENT] > 0:
                lo = min(lo, s[k, P_MIN])
                hi = max(hi, s[k, P_MAX])
            if _middle(s[k]) > t_end[w] - tail_s:
                tn += s[k, P_PRESENT]
                t1 += s[k, P_S1]
                t2 += s[k, P_S2]
        out[w, G_SAMPLES] = n
        out[w, G_PRESENT] = present / n if n > 0 else 0.0
        if present == 0:
            continue
        pinned = _pinned(s, picked, count, lo, hi)
        mean = s1 / present
        out[w, G_SPAN] = hi - lo
        out[w, G_PINNED] = pinned / present
        out[w, G_REPEATED] = repeats / max(present - 1.0, 1.0)
        out[w, G_STD] = math.sqrt(max(s2 / present - mean * mean, 0.0))
        if tn > 0:
            tail_mean = t1 / tn
            out[w, G_TAIL_STD] = math.sqrt(max(t2 / tn - tail_mean * tail_mean, 0.0))
        out[w, G_BAND_SHARE] = pulse / total if total > 0 else 0.0
    return out


# Combined accelerometer window columns (stream.signal.activity's four features).
V_SPREAD, V_IMPACT, V_TRAILING, V_COSINE = 0, 1, 2, 3
V_COLUMNS = 4


@njit(cache=True)
def combine_acc(
    slots: np.ndarray, heads: np.ndarray, rows: np.ndarray, t_start: np.ndarray,
    t_end: np.ndarray, trailing_s: float, edge_s: float,
) -> np.ndarray:  # fmt: skip
    """Each window's accelerometer summary from its frames' slots: magnitude std, its
    maximum, the std over the frames of the trailing ``trailing_s``, and the cosine between
    the mean gravity direction of the frames of the first and last ``edge_s``."""
    out = np.full((rows.shape[0], V_COLUMNS), np.nan)
    picked = np.empty(SLOTS, dtype=np.int64)
    for w in range(rows.shape[0]):
        row = rows[w]
        count = _window_slots(slots, heads, row, t_start[w], t_end[w], picked)
        s = slots[row]
        n = m1 = m2 = peak = 0.0
        tn = t1 = t2 = 0.0
        first = np.zeros(3)
        last = np.zeros(3)
        for c in range(count):
            k = picked[c]
            n += s[k, A_N]
            m1 += s[k, A_M1]
            m2 += s[k, A_M2]
            peak = max(peak, s[k, A_MAX])
            if _middle(s[k]) > t_end[w] - trailing_s:
                tn += s[k, A_N]
                t1 += s[k, A_M1]
                t2 += s[k, A_M2]
            if _middle(s[k]) < t_start[w] + edge_s:
                first[0] += s[k, A_X]
                first[1] += s[k, A_Y]
                first[2] += s[k, A_Z]
            if _middle(s[k]) > t_end[w] - edge_s:
                last[0] += s[k, A_X]
                last[1] += s[k, A_Y]
                last[2] += s[k, A_Z]
        if n < 2:
            continue
        mean = m1 / n
        out[w, V_SPREAD] = math.sqrt(max(m2 / n - mean * mean, 0.0))
        out[w, V_IMPACT] = peak
        if tn > 0:
            trailing_mean = t1 / tn
            out[w, V_TRAILING] = math.sqrt(max(t2 / tn - trailing_mean * trailing_mean, 0.0))
        norm = math.sqrt(
            (first[0] ** 2 + first[1] ** 2 + first[2] ** 2)
            * (last[0] ** 2 + last[1] ** 2 + last[2] ** 2)
        )
        out[w, V_COSINE] = (first[0] * last[0] + first[1] * last[1] + first[2] * last[2]) / max(
            norm, 1e-9
        )
    return out
