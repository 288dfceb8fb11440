"""The causal Pan–Tompkins loop over many devices' new ECG samples, one call per batch.

Owns the per-sample arithmetic of :mod:`stream.signal.beat_stream` (which says what it
means and holds the state): each device's band-pass state, derivative, moving integration,
candidate peaks, adaptive levels, search-back and T-wave rule advance sample by sample from
where the previous call left them, so a stream cut into frames of any length gives exactly
the beats of the whole stream. The state lives in arrays indexed by a device's slot (the
layout constants below); the loop over a batch's devices is one compiled call, because a
second of ECG is a few hundred samples and a Python call per device would cost more than
the arithmetic. The band-pass step, the gap bookkeeping and the output growth it
shares with :mod:`~stream.signal.kernels.ppg_stream` are
:mod:`~stream.signal.kernels.stream_common`'s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stream.signal.kernels import stream_common as common

# Float state columns.
F_Z = 0  # 4 values: the two biquads' transposed direct-form II state
F_INTEG_SUM = 4  # running sum of the squared derivative over the integration width
F_SPK_I, F_SPK_F, F_NPK_I, F_NPK_F = 5, 6, 7, 8  # signal / noise levels
F_PEND_VAL = 9  # integration height of the candidate waiting out the refractory period
F_PREV1, F_PREV2 = 10, 11  # integration one and two samples ago
F_LAST_SLOPE = 12  # steepest slope of the last beat (T-wave rule)
F_OVERDUE = 13  # candidate position past which a beat was missed (search-back)
F_HOLD = 14  # last finite sample: a gap feeds it, so the filter decays instead of ringing
F_FS = 15
F_LEARN_I, F_LEARN_F = 16, 17  # sums of the integration and |band-pass| while learning
F_COLUMNS = 18

# Integer state columns.
I_N = 0  # samples seen since the stream (re)started: the absolute sample index
I_LEARN_END = 1  # absolute index where learning the levels ends
I_PEND_POS = 2  # the waiting candidate's position, -1 for none
I_LAST_CENTRE = 3  # last beat's candidate position, -1 for none
I_LAST_R = 4  # last beat's R peak (filtered signal's index), -1 for none
I_HELD = 5  # candidates held: learning ones, then noise ones for search-back
I_LEARNING = 6  # 1 while the levels are being learned
I_BEATS = 7  # beats in the centre history
I_GAP_END = 8  # absolute index where the last gap ended
I_GAP_START = 9  # absolute index where a gap in progress began, -1 for none
I_WIDTH = 10  # integration width (150 ms)
I_HALF = 11  # R-peak search either side of a candidate (75 ms)
I_REFRACTORY = 12  # 200 ms
I_T_WAVE = 13  # 360 ms
I_LAG = 14  # integration peak behind the filtered QRS: (width - 1) // 2 + 2 (derivative)
I_R_BACK = 15  # the R peak is sought in the raw ECG this far before the band-pass peak
I_QRS_HALF = 16  # QRS amplitude measured within this either side of the R peak (60 ms)
I_MARGIN = 17  # beats this close to a gap are not counted (0.5 s)
I_LEARN = 18  # learning span (2 s)
I_RELEARN_GAP = 19  # a gap at least this long starts learning again (2 s)
I_STARTED = 20  # 0 until the first sample set the filter state
I_COUNTED = 21  # beats counted since the stream (re)started (the recent-beats ring's end)
I_COLUMNS = 22

RING = 512  # samples of history kept per device (1 s at 500 Hz, the highest ECG rate)
MASK = RING - 1  # a ring position is the absolute index's low bits (RING is a power of 2)
HELD = 32  # candidates held per device
HISTORY = 9  # beat positions kept for the overdue rule (8 intervals)
RECENT = 64  # counted beats kept per device: a 10 s window's at up to 300 bpm, and more
H_CENTRE, H_R, H_I, H_F, H_SLOPE, H_QRS = 0, 1, 2, 3, 4, 5  # columns of a held candidate
H_COLUMNS = 6

SEARCH_BACK_WEIGHT = 0.25  # a searched-back beat moves the signal levels this far
BEAT_WEIGHT = 0.125  # a beat (or a noise peak) moves its level this far (Pan–Tompkins)
OVERDUE_FACTOR = 1.66  # 166 % of the recent RR: a beat was missed (Pan–Tompkins)


@njit(cache=True)
def _median(values: np.ndarray, m: int) -> float:
    """The median of ``values[:m]`` (m >= 1, no NaN): the middle value, or half the sum of
    the middle two (np.median's, exactly). Found by counting, for each value, those below
    it and those not above it: the comparisons vectorise and never branch, where a
    selection's unpredictable branches cost ~300 ns for the 35 values of an R-peak span at
    250 Hz (this: ~50 ns), and nothing is copied."""
    half = m >> 1
    even = (m & 1) == 0
    lower = upper = 0.0
    found_lower, found_upper = not even, False
    for i in range(m):
        v = values[i]
        below = 0
        not_above = 0
        for j in range(m):
            below += values[j] < v
            not_above += values[j] <= v
        # v is the k-th smallest (from 0) for every k in [below, not_above).
        if below <= half < not_above:
            upper, found_upper = v, True
        if even and below <= half - 1 < not_above:
            lower, found_lower = v, True
        if found_lower and found_upper:
            break
    return (lower + upper) / 2 if even else upper


@njit(cache=True)
def _restart(fst: np.ndarray, ist: np.ndarray, d: int, n: int) -> None:
    """Forget levels, the beat history and held candidates: learn again from sample
    ``n``. The beats counted so far stay in the recent ring (they were beats); whoever
    reads intervals from it leaves out those spanning a gap."""
    fst[d, F_SPK_I] = fst[d, F_SPK_F] = fst[d, F_NPK_I] = fst[d, F_NPK_F] = 0.0
    fst[d, F_PEND_VAL] = 0.0
    fst[d, F_LAST_SLOPE] = 0.0
    fst[d, F_OVERDUE] = np.inf
    fst[d, F_LEARN_I] = fst[d, F_LEARN_F] = 0.0
    ist[d, I_PEND_POS] = -1
    ist[d, I_LAST_CENTRE] = -1
    ist[d, I_LAST_R] = -1
    ist[d, I_HELD] = 0
    ist[d, I_BEATS] = 0
    ist[d, I_LEARNING] = 1
    ist[d, I_LEARN_END] = n + ist[d, I_LEARN]


@njit(cache=True)
def _raw_r_peak(raw: np.ndarray, scratch: np.ndarray, r: int, n: int, back: int) -> int:
    """The R peak in the device's raw ECG ring ``raw``: the sample furthest from the span's
    median between ``back`` samples before the band-pass peak ``r`` and two after. The
    causal band-pass peaks a few samples after a narrow QRS and up to ~110 ms after a wide
    one."""
    lo = max(r - back, n - RING + 1, 0)
    hi = min(r + 2, n - 1)
    if hi <= lo:
        return r
    m = hi - lo + 1
    for k in range(m):
        scratch[k] = raw[(lo + k) & MASK]
    centre = _median(scratch, m)
    best, at = -1.0, 0
    for k in range(m):
        v = abs(scratch[k] - centre)
        if v > best:  # the first of the furthest (np.argmax's)
            best, at = v, k
    return lo + at


@njit(cache=True)
def _qrs_amplitude(raw: np.ndarray, r: int, n: int, qrs_half: int) -> float:
    """Peak to peak of the device's raw ECG ring ``raw`` within ``qrs_half`` of sample
    ``r``."""
    lo = max(r - qrs_half, n - RING + 1, 0)
    hi = min(r + qrs_half, n - 1)
    high, low = -np.inf, np.inf
    for k in range(lo, hi + 1):
        v = raw[k & MASK]
        high = max(high, v)
        low = min(low, v)
    return high - low if hi >= lo else 0.0


@njit(cache=True)
def _add_beat(
    fst: np.ndarray,
    ist: np.ndarray,
    history: np.ndarray,
    d: int,
    centre: int,
    r: int,
    h_i: float,
    h_f: float,
    slope: float,
    qrs_mv: float,
    weight: float,
    n: int,
    qrs_min_mv: float,
    scratch: np.ndarray,
    out_rows: np.ndarray,
    out_pos: np.ndarray,
    count: int,
    row: int,
) -> int:
    """A beat: move the signal levels, remember it, emit it when it counts; new count."""
    fst[d, F_SPK_I] = weight * h_i + (1.0 - weight) * fst[d, F_SPK_I]
    fst[d, F_SPK_F] = weight * h_f + (1.0 - weight) * fst[d, F_SPK_F]
    last_r = ist[d, I_LAST_R]
    if last_r >= 0 and r - last_r < ist[d, I_REFRACTORY]:
        # Two integration peaks refined onto one QRS (a wide ventricular beat): one beat.
        return count
    beats = ist[d, I_BEATS]
    if beats == HISTORY:
        # Element by element: a slice assignment within one array copies it first.
        for q in range(HISTORY - 1):
            history[d, q] = history[d, q + 1]
        beats -= 1
    history[d, beats] = centre
    beats += 1
    ist[d, I_BEATS] = beats
    if beats >= 2:
        for q in range(beats - 1):
            scratch[q] = history[d, q + 1] - history[d, q]
        fst[d, F_OVERDUE] = centre + OVERDUE_FACTOR * _median(scratch, beats - 1)
    ist[d, I_LAST_CENTRE] = centre
    ist[d, I_LAST_R] = r
    fst[d, F_LAST_SLOPE] = slope
    beat = r
    margin = ist[d, I_MARGIN]
    near_gap = beat - ist[d, I_GAP_END] < margin or ist[d, I_GAP_START] >= 0
    if not near_gap and qrs_mv >= qrs_min_mv:
        out_rows[count] = row
        out_pos[count] = beat
        count += 1
        history[d, HISTORY + ist[d, I_COUNTED] % RECENT] = beat
        ist[d, I_COUNTED] += 1
    return count


@njit(cache=True)
def _hold(
    ist: np.ndarray,
    held: np.ndarray,
    d: int,
    centre: int,
    r: int,
    h_i: float,
    h_f: float,
    slope: float,
    qrs_mv: float,
    drop_oldest: bool,
) -> None:
    """Hold a candidate (a learning one, or a noise peak for search-back); when the held
    list is full the oldest noise peak goes, a learning candidate is left out."""
    q = ist[d, I_HELD]
    if q == HELD:
        if not drop_oldest:
            return
        for p in range(HELD - 1):  # (element by element: see _add_beat)
            for c in range(H_COLUMNS):
                held[d, p, c] = held[d, p + 1, c]
        q -= 1
    held[d, q, H_CENTRE], held[d, q, H_R] = centre, r
    held[d, q, H_I], held[d, q, H_F], held[d, q, H_SLOPE] = h_i, h_f, slope
    held[d, q, H_QRS] = qrs_mv
    ist[d, I_HELD] = q + 1


@njit(cache=True)
def _decide(
    fst: np.ndarray,
    ist: np.ndarray,
    held: np.ndarray,
    history: np.ndarray,
    d: int,
    centre: int,
    r: int,
    h_i: float,
    h_f: float,
    slope: float,
    qrs_mv: float,
    n: int,
    search_back: float,
    qrs_min_mv: float,
    scratch: np.ndarray,
    out_rows: np.ndarray,
    out_pos: np.ndarray,
    count: int,
    row: int,
) -> int:
    """Pan–Tompkins' decision on one candidate (with search-back first); new count."""
    refractory = ist[d, I_REFRACTORY]
    while ist[d, I_HELD] > 0 and centre > fst[d, F_OVERDUE]:
        threshold_i = fst[d, F_NPK_I] + 0.25 * (fst[d, F_SPK_I] - fst[d, F_NPK_I])
        threshold_f = fst[d, F_NPK_F] + 0.25 * (fst[d, F_SPK_F] - fst[d, F_NPK_F])
        last = ist[d, I_LAST_CENTRE]
        j = -1
        for q in range(ist[d, I_HELD]):
            if held[d, q, H_CENTRE] - last > refractory and (
                j < 0 or held[d, q, H_I] > held[d, j, H_I]
            ):
                j = q
        if (
            j < 0
            or held[d, j, H_I] < threshold_i / search_back
            or held[d, j, H_F] < threshold_f / search_back
        ):
            ist[d, I_HELD] = 0
            break
        count = _add_beat(
            fst, ist, history, d, int(held[d, j, H_CENTRE]), int(held[d, j, H_R]),
            held[d, j, H_I], held[d, j, H_F], held[d, j, H_SLOPE], held[d, j, H_QRS],
            SEARCH_BACK_WEIGHT, n, qrs_min_mv, scratch, out_rows, out_pos, count, row,
        )  # fmt: skip
        kept = 0
        for q in range(j + 1, ist[d, I_HELD]):
            for c in range(H_COLUMNS):
                held[d, kept, c] = held[d, q, c]
            kept += 1
        ist[d, I_HELD] = kept
    threshold_i = fst[d, F_NPK_I] + 0.25 * (fst[d, F_SPK_I] - fst[d, F_NPK_I])
    threshold_f = fst[d, F_NPK_F] + 0.25 * (fst[d, F_SPK_F] - fst[d, F_NPK_F])
    is_beat = h_i > threshold_i and h_f > threshold_f
    last = ist[d, I_LAST_CENTRE]
    if is_beat and last >= 0 and centre - last < ist[d, I_T_WAVE]:
        # A T wave: close after a beat and much gentler.
        is_beat = slope >= 0.5 * fst[d, F_LAST_SLOPE]
    if is_beat:
        count = _add_beat(
            fst, ist, history, d, centre, r, h_i, h_f, slope, qrs_mv, BEAT_WEIGHT, n,
            qrs_min_mv, scratch, out_rows, out_pos, count, row,
        )  # fmt: skip
        ist[d, I_HELD] = 0
    else:
        _hold(ist, held, d, centre, r, h_i, h_f, slope, qrs_mv, True)
        fst[d, F_NPK_I] = BEAT_WEIGHT * h_i + (1.0 - BEAT_WEIGHT) * fst[d, F_NPK_I]
        fst[d, F_NPK_F] = BEAT_WEIGHT * max(h_f, 0.0) + (1.0 - BEAT_WEIGHT) * fst[d, F_NPK_F]
    return count


@njit(cache=True)
def _end_learning(
    fst: np.ndarray,
    ist: np.ndarray,
    held: np.ndarray,
    history: np.ndarray,
    d: int,
    n: int,
    search_back: float,
    qrs_min_mv: float,
    scratch: np.ndarray,
    out_rows: np.ndarray,
    out_pos: np.ndarray,
    count: int,
    row: int,
) -> int:
    """Seed the levels from the learning span (its highest candidate is the signal level,
    half the signals' mean over it the noise level), then decide each of its candidates
    in turn."""
    m = ist[d, I_HELD]
    if m == 0:  # nothing to learn from (a flat or missing signal): learn on
        ist[d, I_LEARN_END] = n + ist[d, I_LEARN]
        fst[d, F_LEARN_I] = fst[d, F_LEARN_F] = 0.0
        return count
    ist[d, I_LEARNING] = 0
    fst[d, F_SPK_I] = np.max(held[d, :m, H_I])
    fst[d, F_SPK_F] = np.max(held[d, :m, H_F])
    # Pan and Tompkins seed the noise levels with half the signals' mean over the span.
    span = max(ist[d, I_LEARN], 1)
    fst[d, F_NPK_I] = 0.5 * fst[d, F_LEARN_I] / span
    fst[d, F_NPK_F] = 0.5 * fst[d, F_LEARN_F] / span
    learned = held[d, :m, :].copy()
    ist[d, I_HELD] = 0
    for q in range(m):
        count = _decide(
            fst, ist, held, history, d, int(learned[q, H_CENTRE]), int(learned[q, H_R]),
            learned[q, H_I], learned[q, H_F], learned[q, H_SLOPE], learned[q, H_QRS], n,
            search_back, qrs_min_mv, scratch, out_rows, out_pos, count, row,
        )  # fmt: skip
    return count


@njit(cache=True)
def _confirm(
    fst: np.ndarray,
    ist: np.ndarray,
    filt: np.ndarray,
    slopes: np.ndarray,
    raw: np.ndarray,
    held: np.ndarray,
    history: np.ndarray,
    d: int,
    n: int,
    search_back: float,
    qrs_min_mv: float,
    scratch: np.ndarray,
    out_rows: np.ndarray,
    out_pos: np.ndarray,
    count: int,
    row: int,
) -> int:
    """The waiting candidate outlived the refractory period: find its R peak and slope in
    the device's recent filtered signal (``filt``, ``slopes``, ``raw``: its rings) and
    decide it (or hold it while learning); new count."""
    centre = ist[d, I_PEND_POS]
    h_i = fst[d, F_PEND_VAL]
    ist[d, I_PEND_POS] = -1
    qrs = centre - ist[d, I_LAG]
    half = ist[d, I_HALF]
    best, r, steepest = -np.inf, qrs, 0.0
    for at in range(max(qrs - half, n - RING + 1, 0), min(qrs + half, n - 1) + 1):
        v = filt[at & MASK]
        if v > best:
            best, r = v, at
        # The causal derivative at `at + 2` is centred on `at`.
        if at + 2 <= n - 1:
            steepest = max(steepest, slopes[(at + 2) & MASK])
    h_f = best
    r = _raw_r_peak(raw, scratch, r, n, ist[d, I_R_BACK])
    qrs_mv = _qrs_amplitude(raw, r, n, ist[d, I_QRS_HALF])
    if ist[d, I_LEARNING] == 1 and centre >= ist[d, I_LEARN_END]:
        count = _end_learning(
            fst, ist, held, history, d, n, search_back, qrs_min_mv, scratch,
            out_rows, out_pos, count, row,
        )  # fmt: skip
    if ist[d, I_LEARNING] == 1:
        _hold(ist, held, d, centre, r, h_i, h_f, steepest, qrs_mv, False)
        return count
    return _decide(
        fst, ist, held, history, d, centre, r, h_i, h_f, steepest, qrs_mv, n, search_back,
        qrs_min_mv, scratch, out_rows, out_pos, count, row,
    )  # fmt: skip


@njit(cache=True)
def advance(
    samples: np.ndarray,
    bounds: np.ndarray,
    slots: np.ndarray,
    sos: np.ndarray,
    sos_zi: np.ndarray,
    fst: np.ndarray,
    ist: np.ndarray,
    filt: np.ndarray,
    slopes: np.ndarray,
    squares: np.ndarray,
    raw: np.ndarray,
    held: np.ndarray,
    history: np.ndarray,
    search_back: float,
    qrs_min_mv: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance each device ``slots[k]`` by ``samples[bounds[k]:bounds[k + 1]]`` (mV, NaN
    for a missing sample). Returns the beats counted: (row ``k`` of the batch, absolute
    sample index of the R peak), in order of decision. A device may come more than once:
    each row goes on from where the one before left it."""
    capacity = samples.shape[0] // 8 + 8 * slots.shape[0] + 8
    out_rows = np.empty(capacity, dtype=np.int64)
    out_pos = np.empty(capacity, dtype=np.int64)
    scratch = np.empty(RING)  # room for the R-peak span and the RR intervals (medians)
    count = 0
    for row in range(slots.shape[0]):
        d = slots[row]
        refractory = ist[d, I_REFRACTORY]
        # Each beat emitted is a candidate confirmed in this chunk (at most one per
        # refractory - 1 samples, and the one waiting) or one held before it, so the output
        # is grown here, not per sample: an array that may be replaced inside the sample
        # loop costs the loop its speed (numba's reference counting), as in ppg_stream.
        length = bounds[row + 1] - bounds[row]
        needed = count + length // max(refractory - 1, 1) + HELD + 4
        if needed > out_rows.shape[0]:
            size = max(2 * out_rows.shape[0], needed)
            out_rows = common.grown(out_rows, count, size)
            out_pos = common.grown(out_pos, count, size)
        # The device's state in locals for its samples (the loop's cost is memory traffic
        # otherwise), written back after them; a candidate's decision, a few a second,
        # reads and writes the arrays, so the locals it shares go there around it.
        fs = fst[d, F_FS]
        width = ist[d, I_WIDTH]
        learn_span, relearn_gap = ist[d, I_LEARN], ist[d, I_RELEARN_GAP]
        filt_d, slopes_d, squares_d, raw_d = filt[d], slopes[d], squares[d], raw[d]
        bp, z = common.sections(sos, sos_zi, d), common.load_state(fst, d, F_Z)
        integ_sum, prev1, prev2 = fst[d, F_INTEG_SUM], fst[d, F_PREV1], fst[d, F_PREV2]
        pend_val, hold = fst[d, F_PEND_VAL], fst[d, F_HOLD]
        learn_i, learn_f = fst[d, F_LEARN_I], fst[d, F_LEARN_F]
        n, started, pend_pos = ist[d, I_N], ist[d, I_STARTED], ist[d, I_PEND_POS]
        learning, learn_end = ist[d, I_LEARNING], ist[d, I_LEARN_END]
        gap_start, gap_end = ist[d, I_GAP_START], ist[d, I_GAP_END]
        # The band-passed samples 1-4 back, for the derivative (the ring's, as it holds them).
        f1, f2 = filt_d[(n - 1) & MASK], filt_d[(n - 2) & MASK]
        f3, f4 = filt_d[(n - 3) & MASK], filt_d[(n - 4) & MASK]
        for k in range(bounds[row], bounds[row + 1]):
            x = samples[k]
            if np.isfinite(x):
                gap, gap_start, gap_end = common.gap_closed(n, gap_start, gap_end)
                if gap >= relearn_gap:
                    _restart(fst, ist, d, n)
                    pend_pos, pend_val = ist[d, I_PEND_POS], fst[d, F_PEND_VAL]
                    learning, learn_end = ist[d, I_LEARNING], ist[d, I_LEARN_END]
                    learn_i, learn_f = fst[d, F_LEARN_I], fst[d, F_LEARN_F]
                hold = x
            else:
                if started == 0:
                    # Nothing to hold yet: time passes, no state (the ring keeps its value).
                    f4, f3, f2, f1 = f3, f2, f1, filt_d[n & MASK]
                    n += 1
                    gap_end = n
                    if learning == 1:
                        learn_end = n + learn_span
                    continue
                x, gap_start = common.gap_sample(hold, n, gap_start)
            at = n & MASK
            raw_d[at] = x
            y, z, started = common.band_pass(x, z, started, bp)
            filt_d[at] = y
            # Five-point derivative (taps [1, 2, 0, -2, -1] * fs / 8), causal: centred two
            # samples back.
            derivative = 0.0
            if n >= 4:
                derivative = (y + 2.0 * f1 - 2.0 * f3 - f4) * fs / 8.0
            f4, f3, f2, f1 = f3, f2, f1, y
            slopes_d[at] = abs(derivative)
            square = derivative * derivative
            total = integ_sum + square
            if n >= width:
                total -= squares_d[(n - width) & MASK]
            squares_d[at] = square
            total = max(total, 0.0)
            integ_sum = total
            integration = total / width
            if learning == 1:
                learn_i += integration
                learn_f += abs(y)
            # The candidate waiting out the refractory period is confirmed.
            if pend_pos >= 0 and n - pend_pos >= refractory:
                ist[d, I_PEND_POS], fst[d, F_PEND_VAL] = pend_pos, pend_val
                ist[d, I_LEARNING], ist[d, I_LEARN_END] = learning, learn_end
                fst[d, F_LEARN_I], fst[d, F_LEARN_F] = learn_i, learn_f
                ist[d, I_GAP_START], ist[d, I_GAP_END] = gap_start, gap_end
                count = _confirm(
                    fst, ist, filt_d, slopes_d, raw_d, held, history, d, n, search_back,
                    qrs_min_mv, scratch, out_rows, out_pos, count, row,
                )  # fmt: skip
                pend_pos = ist[d, I_PEND_POS]
                learning, learn_end = ist[d, I_LEARNING], ist[d, I_LEARN_END]
                learn_i, learn_f = fst[d, F_LEARN_I], fst[d, F_LEARN_F]
            # A local maximum of the integration one sample back is a candidate; of two
            # closer than the refractory period the higher stays.
            # (Without branches: which way they go is noise's to decide, and a wrong guess
            # costs more than the comparisons.)
            take = (
                (n >= 2)
                & (prev1 > prev2)
                & (prev1 >= integration)
                & ((pend_pos < 0) | (prev1 > pend_val))
            )
            pend_pos = n - 1 if take else pend_pos
            pend_val = prev1 if take else pend_val
            prev2 = prev1
            prev1 = integration
            if learning == 1 and pend_pos < 0 and n >= learn_end:
                ist[d, I_PEND_POS], fst[d, F_PEND_VAL] = pend_pos, pend_val
                ist[d, I_LEARN_END] = learn_end
                fst[d, F_LEARN_I], fst[d, F_LEARN_F] = learn_i, learn_f
                ist[d, I_GAP_START], ist[d, I_GAP_END] = gap_start, gap_end
                count = _end_learning(
                    fst, ist, held, history, d, n, search_back, qrs_min_mv, scratch,
                    out_rows, out_pos, count, row,
                )  # fmt: skip
                learning, learn_end = ist[d, I_LEARNING], ist[d, I_LEARN_END]
                learn_i, learn_f = fst[d, F_LEARN_I], fst[d, F_LEARN_F]
            n += 1
        common.store_state(fst, d, F_Z, z)
        fst[d, F_INTEG_SUM], fst[d, F_PREV1], fst[d, F_PREV2] = integ_sum, prev1, prev2
        fst[d, F_PEND_VAL], fst[d, F_HOLD] = pend_val, hold
        fst[d, F_LEARN_I], fst[d, F_LEARN_F] = learn_i, learn_f
        ist[d, I_N], ist[d, I_STARTED], ist[d, I_PEND_POS] = n, started, pend_pos
        ist[d, I_LEARNING], ist[d, I_LEARN_END] = learning, learn_end
        ist[d, I_GAP_START], ist[d, I_GAP_END] = gap_start, gap_end
    return out_rows[:count], out_pos[:count]
