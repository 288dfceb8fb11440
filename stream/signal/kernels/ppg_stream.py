"""The causal Elgendi pulse loop over many devices' new PPG samples, one call per batch.

Owns the per-sample arithmetic of :mod:`stream.signal.pulse_stream` (which says what it
means and holds the state): each device's band-pass state, the two moving averages of the
squared clipped wave, the open block of interest, the pulse waiting out the refractory
span and the running pulse template advance sample by sample from where the previous call
left them, so a stream cut into frames of any length gives exactly the pulses of the whole
stream. The state lives in arrays indexed by a device's slot (the layout constants below);
the loop over a batch's devices is one compiled call, because a second of PPG is some tens
of samples and a Python call per device would cost more than the arithmetic. The band-pass
step, the gap bookkeeping and the output growth it shares with
:mod:`~stream.signal.kernels.ecg_stream` are :mod:`~stream.signal.kernels.stream_common`'s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stream.signal.kernels import stream_common as common

# Float state columns.
F_Z = 0  # 4 values: the two biquads' transposed direct-form II state
F_S_PEAK = 4  # sum of the squared clipped wave over the peak average's span
F_S_BEAT = 5  # sum of the squared clipped wave over the beat average's span
F_Z_MEAN = 6  # running mean of the squared clipped wave (Elgendi's offset is 2 % of it)
F_B_MAX = 7  # the open block's highest band-passed value
F_P_VAL = 8  # the waiting pulse's band-passed height
F_HOLD = 9  # last finite sample: a gap feeds it, so the filter decays instead of ringing
F_FS = 10
F_OFFSET_W = 11  # the running mean's weight once warm: 1 / (samples in its span)
F_COLUMNS = 12

# Integer state columns.
I_N = 0  # samples seen since the stream started: the absolute sample index
I_START = 1  # absolute index where the filter last (re)started; earlier samples count as 0
I_B_START = 2  # the open block's first sample, -1 for none
I_B_ARG = 3  # the open block's highest sample so far
I_P_POS = 4  # the waiting pulse's band-pass peak, -1 for none
I_GAP_END = 5  # absolute index where the last gap (or the stream's start) ended
I_GAP_START = 6  # absolute index where a gap in progress began, -1 for none
I_W_PEAK = 7  # the peak average's width (111 ms)
I_W_BEAT = 8  # the beat average's width (667 ms)
I_H_PEAK = 9  # the peak average's samples before its centre (width // 2)
I_LAG = 10  # the beat average centred on sample n - LAG ends at the newest sample n
I_DIST = 11  # of two pulses closer than this (300 ms) the larger is kept
I_HALF = 12  # the template spans this either side of the band-pass peak (300 ms)
I_R_BACK = 13  # the systolic peak is sought in the raw PPG this far before (100 ms)
I_MARGIN = 14  # pulses this close after a gap or a start are not counted
I_RESET_GAP = 15  # a gap at least this long restarts the filter at the next sample
I_STARTED = 16  # 0 until the first sample set the filter state
I_COUNTED = 17  # pulses counted since the stream started (the recent ring's end)
I_TEMPLATED = 18  # pulses averaged into the template (capped at TEMPLATE_WARM)
I_REFRACTORY = 19  # the refractory span in force: I_DIST, or more at a slow pulse rate
I_DIST_MAX = 20  # the most the refractory span grows to
I_TEMPLATED_OTHER = 21  # pulses averaged into the other shape's template (capped likewise)
I_COLUMNS = 22

RING = 512  # samples of history kept per device (2 s at 256 Hz, the highest PPG rate)
MASK = RING - 1  # a ring position is the absolute index's low bits (RING is a power of 2)
# Rings, one row each: the raw PPG (gaps held), the band-passed wave, its clipped square.
R_RAW, R_FILT, R_SQUARE = 0, 1, 2
RINGS = 3
TEMPLATE = 2 * int(0.3 * 256) + 1  # template samples at the highest rate
# The template array holds two shapes per device: the pulse's (columns 0 .. TEMPLATE - 1)
# and the other shape's (TEMPLATE ..), see _emit.
TEMPLATES = 2 * TEMPLATE
RECENT = 64  # counted pulses kept per device: a 10 s window's at up to 300 bpm, and more
P_AMP, P_CORR = 0, 1  # columns of a recent pulse's features
P_COLUMNS = 2

# The template is the running mean of the first pulses, then an exponential average: a
# matching pulse moves it by TEMPLATE_WEIGHT (about the last 8 pulses, a 10 s window's
# worth at 50 bpm), one that does not (an artefact) by TEMPLATE_DRIFT, so a burst of motion
# does not replace the template, and a lasting change of shape still takes over in some
# tens of pulses.
TEMPLATE_WARM = 8
TEMPLATE_WEIGHT = 1.0 / 8.0
TEMPLATE_DRIFT = 1.0 / 32.0
TEMPLATE_MATCH = 0.8  # the quality index's own line between clean and motion-corrupted
# A heart with premature beats (bigeminy, ectopics) makes two pulse shapes: the premature
# beat's weaker, earlier pulse does not look like the others, yet it is a pulse, not an
# artefact (the window index rarely saw it: its detector missed most of them). A pulse
# unlike the template is therefore also compared with a second template, the running
# average of the pulses unlike the first; the better match is its correlation. Artefacts
# do not repeat a shape, so they match neither.
BEAT_OFFSET = 0.02  # Elgendi's β: the block threshold is 2 % of the mean squared wave
# After a few pulses the refractory span is this share of the median of the last intervals
# (at most I_DIST_MAX, at least I_DIST): the causal band-pass's diastolic lobes come
# 0.35-0.7 s after a systolic peak, beyond a fixed 300 ms (pulse_stream's module doc).
REFRACTORY_SHARE = 0.5
REFRACTORY_INTERVALS = 8
# The span follows the rate it measured, so after an abrupt rise it is longer than the new
# interval and drops every other pulse; the kept intervals then stay long and so does the
# span (a half-rate lock: 75 -> 160 bpm read 40-80 bpm for 8-17 s on the simulator's PPG).
# A candidate inside the span but not within the minimum span (I_DIST) is therefore
# counted as a pulse of its own when it and the waiting pulse both look like pulses: both
# match the template (TEMPLATE_MATCH) and neither is much taller than the other. Measured
# on the suppressed candidates: the 75 -> 160 bpm step's dropped pulses had height ratios
# 0.86-1.0 and both correlations 0.93-0.99 (only the step's first, 0.72, missed); of the 7
# suppressed beyond 300 ms on HeartPy's three recordings (all in data2: diastolic lobes and
# motion) none had both correlations >= 0.8 (at most one of the two >= 0.8, or 0.74/0.79).
SIMILAR_HEIGHT = 0.75
# At a slow rate the causal band-pass makes small bumps between pulses (on the simulator's
# PPG at 36 bpm, heights 9-14 % of the pulses', 1.07-1.16 s after a pulse and 0.5-0.7 s
# before the next: beyond the span's 0.5 s cap, so at 75 -> 36 bpm the PPG read 52-69 bpm;
# not diastolic lobes). Growing the span to hold them would delay every decision at slow
# rates (DECISION_DELAY_S). Instead a pulse below SMALL_SHARE of the last counted pulse's
# height, less than SMALL_WITHIN median intervals after it, is not counted (against the
# median of the last 8 heights instead, data2's sensitivity against NeuroKit2 fell from
# 0.96 to 0.92: its heights vary beat to beat, and some real pulses are that small); a pulse that
# small so soon is not a beat's (premature beats' pulses are ~0.6 as tall), and past
# SMALL_WITHIN intervals a lasting drop in height (low perfusion) counts again. 0.25, not
# less: at 0.18 the golden ward's 35 bpm patient still read 42-47 bpm and the bench's
# bradycardia alarms came 3 4 2 2 s late instead of 2 2 2 2 s; the cost, at 0.25 its
# patient with weak noisy PPG at ~93 bpm reads ~84 bpm for ~8 s (a lost pulse or two).
SMALL_SHARE = 0.25
SMALL_WITHIN = 1.5


@njit(cache=True)
def _median_interval(ist: np.ndarray, recent: np.ndarray, d: int, newest: int) -> float:
    """Median of the last REFRACTORY_INTERVALS intervals of the counted pulses ending at
    sample ``newest`` (NaN with fewer than 2 counted before it)."""
    counted = ist[d, I_COUNTED]  # before the newest pulse
    m = min(counted, REFRACTORY_INTERVALS)
    if m < 2:
        return math.nan
    intervals = np.empty(m)
    later = newest
    for q in range(m):
        earlier = recent[d, (counted - 1 - q) % RECENT]
        intervals[q] = later - earlier
        later = earlier
    intervals.sort()
    return intervals[m // 2] if m % 2 else 0.5 * (intervals[m // 2 - 1] + intervals[m // 2])


@njit(cache=True)
def _refractory(ist: np.ndarray, recent: np.ndarray, d: int, newest: int) -> None:
    """The refractory span after a counted pulse: REFRACTORY_SHARE of the median of the
    last intervals, within [I_DIST, I_DIST_MAX]."""
    median = _median_interval(ist, recent, d, newest)
    if math.isnan(median):
        ist[d, I_REFRACTORY] = ist[d, I_DIST]
        return
    span = int(REFRACTORY_SHARE * median)
    ist[d, I_REFRACTORY] = max(ist[d, I_DIST], min(span, ist[d, I_DIST_MAX]))


@njit(cache=True)
def _small_and_soon(
    ist: np.ndarray, recent: np.ndarray, rfeat: np.ndarray, d: int, at: int, amplitude: float
) -> bool:
    """Whether a pulse at ``at`` of ``amplitude`` is below SMALL_SHARE of the last counted
    pulse's height and within SMALL_WITHIN median intervals after it (not a beat's)."""
    counted = ist[d, I_COUNTED]
    if counted < 3:
        return False
    last = (counted - 1) % RECENT
    if not amplitude < SMALL_SHARE * rfeat[d, last, P_AMP]:
        return False
    # The median of the intervals before the last counted pulse (this one is not one yet).
    ist[d, I_COUNTED] = counted - 1
    median = _median_interval(ist, recent, d, recent[d, last])
    ist[d, I_COUNTED] = counted
    return not math.isnan(median) and at - recent[d, last] < SMALL_WITHIN * median


@njit(cache=True)
def _segment(ist: np.ndarray, rings: np.ndarray, d: int, n: int, peak: int) -> np.ndarray:
    """The band-passed ±I_HALF around ``peak``, as of sample ``n``; samples before the
    ring's oldest or after the newest repeat the edge (the window index's padding)."""
    lo = max(n - RING + 1, 0)
    half = ist[d, I_HALF]
    segment = np.empty(2 * half + 1)
    for k in range(segment.shape[0]):
        segment[k] = rings[d, R_FILT, min(max(peak - half + k, lo), n) & MASK]
    return segment


@njit(cache=True)
def _matches(ist: np.ndarray, rings: np.ndarray, template: np.ndarray, d: int, n: int,
             peak: int) -> bool:  # fmt: skip
    """Whether the band-pass peak at ``peak`` matches the (warm) pulse template."""
    if ist[d, I_TEMPLATED] < TEMPLATE_WARM:
        return False
    segment = _segment(ist, rings, d, n, peak)
    segment -= np.mean(segment)
    power = 0.0
    for k in range(segment.shape[0]):
        power += segment[k] * segment[k]
    return _correlate(template, d, 0, segment, power) >= TEMPLATE_MATCH


@njit(cache=True)
def _both_pulses(
    ist: np.ndarray, rings: np.ndarray, template: np.ndarray, d: int, n: int,
    first: int, first_val: float, second: int, second_val: float,
) -> bool:  # fmt: skip
    """Whether two band-pass peaks inside the refractory span but not within I_DIST are
    both pulses (a rate that rose past the span, see SIMILAR_HEIGHT)."""
    if second - first < ist[d, I_DIST] or min(first_val, second_val) <= 0.0:
        return False
    if min(first_val, second_val) < SIMILAR_HEIGHT * max(first_val, second_val):
        return False
    return _matches(ist, rings, template, d, n, first) and _matches(
        ist, rings, template, d, n, second
    )


@njit(cache=True)
def _correlate(template: np.ndarray, d: int, at: int, segment: np.ndarray, power: float) -> float:
    """Correlation of the mean-free ``segment`` (of energy ``power``) with the template
    starting at column ``at`` (NaN while that template is empty)."""
    cross, t_power = 0.0, 0.0
    for k in range(segment.shape[0]):
        cross += segment[k] * template[d, at + k]
        t_power += template[d, at + k] * template[d, at + k]
    if t_power == 0.0:
        return math.nan
    return cross / max(math.sqrt(power * t_power), 1e-12)


@njit(cache=True)
def _average(
    template: np.ndarray, d: int, at: int, segment: np.ndarray, power: float, weight: float
) -> None:
    """Move the template at column ``at`` towards ``segment`` by ``weight``; each pulse
    enters with unit energy: the template is a shape, not an amplitude."""
    if power > 0.0:
        scale = weight / math.sqrt(power)
        for k in range(segment.shape[0]):
            template[d, at + k] = (1.0 - weight) * template[d, at + k] + scale * segment[k]


@njit(cache=True)
def _emit(
    ist: np.ndarray,
    rings: np.ndarray,
    template: np.ndarray,
    recent: np.ndarray,
    rfeat: np.ndarray,
    d: int,
    n: int,
    peak: int,
    height: float,
    near_gap_end: int,
    in_gap: bool,
    out_rows: np.ndarray,
    out_pos: np.ndarray,
    out_amp: np.ndarray,
    out_corr: np.ndarray,
    out_dec: np.ndarray,
    count: int,
    row: int,
) -> int:
    """The waiting pulse (band-pass peak ``peak`` of ``height``) is decided at sample
    ``n``: its systolic peak, height and correlation with the template; counted (and
    averaged into the template) unless it is within the margin after ``near_gap_end`` or
    ``in_gap``. New count."""
    lo = max(n - RING + 1, 0)
    # The systolic peak: the causal band-pass peaks 10-30 ms after the raw pulse's top
    # (measured on heartpy's recordings), so the raw maximum just before it is the fiducial
    # a zero-phase detector marks.
    fiducial, best = peak, -np.inf
    for at in range(max(peak - ist[d, I_R_BACK], lo), peak + 1):
        v = rings[d, R_RAW, at & MASK]
        if v > best:
            best, fiducial = v, at
    if in_gap or fiducial - near_gap_end < ist[d, I_MARGIN]:
        return count
    half = ist[d, I_HALF]
    width = 2 * half + 1
    segment = _segment(ist, rings, d, n, peak)
    # The pulse's height: its band-passed top above the lowest point before it (the foot).
    amplitude = height - np.min(segment[: half + 1])
    if _small_and_soon(ist, recent, rfeat, d, fiducial, amplitude):
        return count
    segment -= np.mean(segment)
    power = 0.0
    for k in range(width):
        power += segment[k] * segment[k]
    correlation = _correlate(template, d, 0, segment, power)
    templated = ist[d, I_TEMPLATED]
    if templated < TEMPLATE_WARM:
        weight = 1.0 / (templated + 1)
        ist[d, I_TEMPLATED] = templated + 1
        _average(template, d, 0, segment, power, weight)
    else:
        matched = correlation >= TEMPLATE_MATCH
        _average(template, d, 0, segment, power, TEMPLATE_WEIGHT if matched else TEMPLATE_DRIFT)
        if not matched:
            other = _correlate(template, d, TEMPLATE, segment, power)
            if not math.isnan(other):
                correlation = max(correlation, other)
            averaged = ist[d, I_TEMPLATED_OTHER]
            ist[d, I_TEMPLATED_OTHER] = min(averaged + 1, TEMPLATE_WARM)
            weight = 1.0 / (averaged + 1) if averaged < TEMPLATE_WARM else TEMPLATE_WEIGHT
            _average(template, d, TEMPLATE, segment, power, weight)
    slot = ist[d, I_COUNTED] % RECENT
    recent[d, slot] = fiducial
    _refractory(ist, recent, d, fiducial)
    rfeat[d, slot, P_AMP] = amplitude
    rfeat[d, slot, P_CORR] = correlation
    ist[d, I_COUNTED] += 1
    out_rows[count] = row
    out_pos[count] = fiducial
    out_amp[count] = amplitude
    out_corr[count] = correlation
    out_dec[count] = n
    return count + 1


@njit(cache=True)
def advance(
    samples: np.ndarray,
    bounds: np.ndarray,
    slots: np.ndarray,
    sos: np.ndarray,
    sos_zi: np.ndarray,
    fst: np.ndarray,
    ist: np.ndarray,
    rings: np.ndarray,
    template: np.ndarray,
    recent: np.ndarray,
    rfeat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance each device ``slots[k]`` by ``samples[bounds[k]:bounds[k + 1]]`` (NaN for a
    missing sample). Returns the pulses counted: (row ``k`` of the batch, absolute sample
    index of the systolic peak, height, template correlation, the absolute index of the
    sample that decided it), in order of decision."""
    capacity = samples.shape[0] // 8 + 2 * slots.shape[0] + 8
    out_rows = np.empty(capacity, dtype=np.int64)
    out_pos = np.empty(capacity, dtype=np.int64)
    out_dec = np.empty(capacity, dtype=np.int64)
    out_amp = np.empty(capacity)
    out_corr = np.empty(capacity)
    count = 0
    for row in range(slots.shape[0]):
        d = slots[row]
        # A block lasts at least the peak average's width and a pulse closes one (or ends
        # the wait of the one before), so a chunk emits at most one pulse per width + 1
        # samples, and the wait carried in. Grown here, not per sample: an array that
        # may be replaced inside the sample loop costs the loop 4x (numba's reference
        # counting).
        needed = count + (bounds[row + 1] - bounds[row]) // (ist[d, I_W_PEAK] + 1) + 4
        if needed > out_rows.shape[0]:
            size = max(2 * out_rows.shape[0], needed)
            out_rows = common.grown(out_rows, count, size)
            out_pos = common.grown(out_pos, count, size)
            out_dec = common.grown(out_dec, count, size)
            out_amp = common.grown(out_amp, count, size)
            out_corr = common.grown(out_corr, count, size)
        # The device's state in locals for its samples (the loop's cost is memory traffic
        # otherwise), written back after them; pulses, rare, read the rest from the arrays.
        w_peak, w_beat = ist[d, I_W_PEAK], ist[d, I_W_BEAT]
        h_peak, lag, reset_gap = ist[d, I_H_PEAK], ist[d, I_LAG], ist[d, I_RESET_GAP]
        inv_peak, inv_beat = 1.0 / w_peak, 1.0 / w_beat
        raw, filt, squares = rings[d, R_RAW], rings[d, R_FILT], rings[d, R_SQUARE]
        bp, z = common.sections(sos, sos_zi, d), common.load_state(fst, d, F_Z)
        s_peak, s_beat, z_mean = fst[d, F_S_PEAK], fst[d, F_S_BEAT], fst[d, F_Z_MEAN]
        b_max, p_val, hold = fst[d, F_B_MAX], fst[d, F_P_VAL], fst[d, F_HOLD]
        offset_w = fst[d, F_OFFSET_W]
        n, start, started = ist[d, I_N], ist[d, I_START], ist[d, I_STARTED]
        b_start, b_arg, p_pos = ist[d, I_B_START], ist[d, I_B_ARG], ist[d, I_P_POS]
        gap_start, gap_end = ist[d, I_GAP_START], ist[d, I_GAP_END]
        dist = ist[d, I_REFRACTORY]
        for k in range(bounds[row], bounds[row + 1]):
            x = samples[k]
            if np.isfinite(x):
                gap, gap_start, gap_end = common.gap_closed(n, gap_start, gap_end)
                if gap >= reset_gap:
                    # The filter starts again here: the averages forget what came
                    # before, no block is open, no pulse waits. The template and the
                    # counted pulses stay.
                    start = n
                    started = 0
                    b_start = p_pos = -1
                    s_peak = s_beat = z_mean = 0.0
                hold = x
            else:
                if started == 0:
                    n += 1  # nothing to hold yet: time passes, no state
                    start = gap_end = n
                    continue
                x, gap_start = common.gap_sample(hold, n, gap_start)
            at = n & MASK
            raw[at] = x
            y, z, started = common.band_pass(x, z, started, bp)
            filt[at] = y
            square = y * y if y > 0.0 else 0.0
            squares[at] = square
            # Running mean of the squared wave: a plain mean over its first span, then
            # exponential with that span (the window's mean over 10 s, made causal).
            weight = max(1.0 / (n - start + 1), offset_w)
            z_mean += weight * (square - z_mean)
            # The beat average centred on c = n - lag spans [n - w_beat + 1, n]; the peak
            # average centred on c spans [c - h_peak, c - h_peak + w_peak - 1]. Samples
            # before the (re)start count as zero.
            s_beat += square
            if n - w_beat >= start:
                s_beat = max(s_beat - squares[(n - w_beat) & MASK], 0.0)
            c = n - lag
            enter = c - h_peak + w_peak - 1
            if enter >= start:
                s_peak += squares[enter & MASK]
            if enter - w_peak >= start:
                s_peak = max(s_peak - squares[(enter - w_peak) & MASK], 0.0)
            decided_at = n
            n += 1
            if c < start:
                continue
            inside = s_peak * inv_peak > s_beat * inv_beat + BEAT_OFFSET * z_mean
            if inside:
                v = filt[c & MASK]
                if b_start < 0:
                    b_start = c
                    b_max = -np.inf
                if v > b_max:
                    b_max = v
                    b_arg = c
            elif b_start >= 0:
                # A block of interest closed: if it lasted the peak average's width, its
                # highest sample is a pulse; of two closer than `dist` the larger stays.
                if c - b_start >= w_peak:
                    close = p_pos >= 0 and b_arg - p_pos < dist
                    if close and not _both_pulses(
                        ist, rings, template, d, decided_at, p_pos, p_val, b_arg, b_max
                    ):
                        if b_max > p_val:
                            p_pos, p_val = b_arg, b_max
                    else:
                        # Emit the waiting pulse: it is not close (a block longer than
                        # `dist` held it), or the rate rose past the span and both count
                        # (see SIMILAR_HEIGHT).
                        if p_pos >= 0:
                            count = _emit(
                                ist, rings, template, recent, rfeat, d, decided_at, p_pos,
                                p_val, gap_end, gap_start >= 0, out_rows, out_pos, out_amp,
                                out_corr, out_dec, count, row,
                            )  # fmt: skip
                            dist = ist[d, I_REFRACTORY]
                        p_pos, p_val = b_arg, b_max
                b_start = -1
            # The waiting pulse is decided once every block that could hold a pulse within
            # `dist` after it has closed.
            if p_pos >= 0 and c >= p_pos + dist - 1 and (b_start < 0 or b_start >= p_pos + dist):
                count = _emit(
                    ist, rings, template, recent, rfeat, d, decided_at, p_pos, p_val,
                    gap_end, gap_start >= 0, out_rows, out_pos, out_amp, out_corr, out_dec,
                    count, row,
                )  # fmt: skip
                p_pos = -1
                dist = ist[d, I_REFRACTORY]
        common.store_state(fst, d, F_Z, z)
        fst[d, F_S_PEAK], fst[d, F_S_BEAT], fst[d, F_Z_MEAN] = s_peak, s_beat, z_mean
        fst[d, F_B_MAX], fst[d, F_P_VAL], fst[d, F_HOLD] = b_max, p_val, hold
        ist[d, I_N], ist[d, I_START], ist[d, I_STARTED] = n, start, started
        ist[d, I_B_START], ist[d, I_B_ARG], ist[d, I_P_POS] = b_start, b_arg, p_pos
        ist[d, I_GAP_START], ist[d, I_GAP_END] = gap_start, gap_end
    return (out_rows[:count], out_pos[:count], out_amp[:count], out_corr[:count],
            out_dec[:count])  # fmt: skip
