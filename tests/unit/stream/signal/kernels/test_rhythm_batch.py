"""stream.signal.kernels.rhythm_batch: many beat sequences in one call give what
stream.signal.rhythm's per-window functions give, one by one."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.signal.beats import detect_r_peaks
from stream.signal.kernels import rhythm_batch as rb
from stream.signal.rhythm import (
    RATE_SPAN_S,
    RR_KEYS,
    heart_rate,
    pulse_run_rate,
    recent_heart_rate,
    rr_features,
)

# The kernel must give rhythm.py's values to this relative difference (on sample indices
# it does the same float operations, so the differences measured are 0).
REL_TOL = 1e-9
RATES_HZ = (64.0, 100.0, 125.0, 128.0, 250.0, 256.0, 360.0, 500.0)
WINDOW_S = 10.0
HOP_S = 1.0
RECORD_208_FS = 360.0


def python_row(peaks: np.ndarray, fs: float, length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """rhythm.py's values in the kernel's column order, and which columns' function
    raised (ZeroDivisionError: repeated beat times)."""
    row = np.full(rb.N_COLUMNS, np.nan)
    raised = np.zeros(rb.N_COLUMNS, dtype=bool)
    calls: list[tuple[list[int], Callable[[], list[float]]]] = [
        ([rb.HEART_RATE], lambda: [heart_rate(peaks, fs)]),
        ([rb.RECENT_HEART_RATE], lambda: [recent_heart_rate(peaks, fs, length)]),
        ([rb.RR_COLUMNS[k] for k in RR_KEYS], lambda: list(rr_features(peaks, fs).values())),
        ([rb.PULSE_RUN_RATE], lambda: [pulse_run_rate(peaks, fs)]),
    ]
    for columns, call in calls:
        try:
            row[columns] = call()
        except ZeroDivisionError:
            raised[columns] = True
    return row, raised


def relative_differences(kernel: np.ndarray, python: np.ndarray) -> np.ndarray:
    """|kernel − python| / |python| (the absolute difference where python is 0; 0 where both
    are nan, inf where only one is)."""
    both_nan = np.isnan(kernel) & np.isnan(python)
    one_nan = np.isnan(kernel) ^ np.isnan(python)
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.abs(kernel - python)
        scaled = np.where(python != 0, difference / np.abs(python), difference)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, scaled))


def compare(
    sequences: list[np.ndarray], rates: list[float], lengths: list[int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel rows of the sequences in one call, checked against rhythm.py's; returns the
    rows and the relative differences (0 where rhythm.py raised)."""
    positions, offsets = rb.pack(sequences)
    ends = np.array([np.nan if n is None else n - 1.0 for n in lengths])
    rows = rb.rhythm_batch(positions, offsets, np.array(rates), ends)
    assert rows.shape == (len(sequences), rb.N_COLUMNS)
    differences = np.zeros_like(rows)
    for i, (peaks, fs, length) in enumerate(zip(sequences, rates, lengths, strict=True)):
        expected, raised = python_row(peaks, fs, length)
        if raised.any():
            # Where rhythm.py divides by zero the kernel's column gives inf or nan.
            assert not np.isfinite(rows[i, raised]).all(), (peaks.tolist(), fs)
        differences[i, ~raised] = relative_differences(rows[i, ~raised], expected[~raised])
        assert differences[i].max() <= REL_TOL, (peaks.tolist(), fs, length, rows[i], expected)
    return rows, differences


@st.composite
def beat_sequences(draw: st.DrawFn) -> tuple[np.ndarray, float, int | None]:
    """(sample indices, fs, window length or None): irregular intervals, equal times,
    regular rhythm, bigeminy, long pauses, and intervals on rhythm.py's thresholds."""
    fs = draw(st.sampled_from(RATES_HZ))
    top = int(2.5 * fs)
    kind = draw(st.sampled_from(["irregular", "regular", "bigeminy", "pause", "thresholds"]))
    if kind == "irregular":  # 0 = a repeated beat time
        intervals = draw(st.lists(st.integers(0, top), max_size=30))
    elif kind == "regular":
        intervals = [draw(st.integers(1, top))] * draw(st.integers(0, 30))
    elif kind == "bigeminy":
        short, long = draw(st.integers(1, top)), draw(st.integers(1, top))
        intervals = [short, long] * draw(st.integers(0, 15))
        intervals = intervals[draw(st.integers(0, 1)) :]
    elif kind == "pause":
        base = draw(st.integers(1, top))
        intervals = [base] * draw(st.integers(0, 12))
        intervals.insert(draw(st.integers(0, len(intervals))), draw(st.integers(top, 6 * top)))
    else:
        # Multiples of the median that meet the 80 %, 110 % and 50 ms rules exactly, and
        # the 8 s rate span: ties are decided as rhythm.py decides them.
        median = 10 * draw(st.integers(1, int(0.25 * fs)))
        choices = [median, median * 8 // 10, median * 11 // 10, median + round(0.05 * fs)]
        choices.append(int(RATE_SPAN_S * fs) // 4)
        intervals = draw(st.lists(st.sampled_from(choices), max_size=30))
    start = draw(st.integers(0, int(5 * fs)))
    peaks = start + np.cumsum([0, *intervals]).astype(np.int64) if intervals else np.zeros(0)
    if not intervals and draw(st.booleans()):
        peaks = np.array([start])
    peaks = peaks.astype(np.int64)
    last = int(peaks[-1]) if len(peaks) else 0
    # The wait counts once it exceeds the last interval: a wait of exactly that is a tie.
    last_interval = int(peaks[-1] - peaks[-2]) if len(peaks) >= 2 else 0
    length = draw(
        st.one_of(
            st.none(),
            st.integers(last + 1, last + 1 + 4 * top),
            st.just(last + 1 + last_interval),
        )
    )
    return peaks, fs, length


@settings(max_examples=400, deadline=None)
@given(beat_sequences())
def test_each_sequence_gives_what_rhythm_gives(case: tuple[np.ndarray, float, int | None]) -> None:
    peaks, fs, length = case
    compare([peaks], [fs], [length])


@settings(max_examples=200, deadline=None)
@given(st.lists(beat_sequences(), max_size=12))
def test_sequences_together_come_out_as_one_by_one(
    cases: list[tuple[np.ndarray, float, int | None]],
) -> None:
    sequences = [peaks for peaks, _, _ in cases]
    rates = [fs for _, fs, _ in cases]
    lengths = [length for _, _, length in cases]
    rows, _ = compare(sequences, rates, lengths)
    for i, (peaks, fs, length) in enumerate(cases):
        positions, offsets = rb.pack([peaks])
        alone = rb.rhythm_batch(positions, offsets, fs, None if length is None else [length - 1])
        np.testing.assert_array_equal(rows[i], alone[0])


@pytest.mark.parametrize(
    ("intervals", "length"),
    [
        pytest.param(None, None, id="empty"),
        pytest.param([], 500, id="one beat"),
        pytest.param([80], None, id="two beats"),
        pytest.param([0], None, id="two equal times"),
        pytest.param([0, 0], 300, id="three equal times"),
        pytest.param([80, 0, 80, 80], None, id="a repeated time among others"),
        pytest.param([50, 90] * 6, None, id="bigeminy"),
        pytest.param([80, 80, 80, 400, 80, 80], 2000, id="long pause, then a wait"),
        pytest.param([100, 50, 100], 257 + 1 + 100, id="a wait as long as the last interval"),
        pytest.param([100, 50, 100], 257 + 1 + 101, id="a wait longer than the last interval"),
        pytest.param([40] * 6, None, id="a run of six"),
        pytest.param([80, 81, 79, 48, 112, 80, 80, 81, 79, 50, 110, 80], 1200, id="premature"),
    ],
)
def test_edge_cases(intervals: list[int] | None, length: int | None) -> None:
    fs = 100.0
    peaks = (
        np.zeros(0, dtype=np.int64)
        if intervals is None
        else np.cumsum([7, *intervals]).astype(np.int64)
    )
    rows, differences = compare([peaks], [fs], [length])
    assert differences.max() == 0.0  # the same float operations: identical values
    if intervals is not None and len(intervals) == 1 and intervals[0]:
        assert rows[0, rb.RR_COLUMNS["rr_mean_s"]] == intervals[0] / fs
        assert np.isnan(rows[0, rb.RECENT_HEART_RATE])


def record_208_windows(ecg: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
    """Beats of every 10 s window of the record (1 s hop), each window from a fresh
    detector, and the windows' lengths."""
    size, hop = int(WINDOW_S * RECORD_208_FS), int(HOP_S * RECORD_208_FS)
    starts = range(0, len(ecg) - size + 1, hop)
    return [detect_r_peaks(ecg[s : s + size], RECORD_208_FS) for s in starts], [size] * len(starts)


def test_record_208_windows_match_in_samples_and_in_seconds_up_to_ties(
    record_208: np.ndarray,
) -> None:
    sequences, lengths = record_208_windows(record_208)
    fs = RECORD_208_FS
    # Every other window counts the wait for a beat still due, the others not.
    waits: list[int | None] = [n if i % 2 else None for i, n in enumerate(lengths)]
    rows, differences = compare(sequences, [fs] * len(sequences), waits)
    beats = sum(len(s) for s in sequences)
    print(
        f"\nrecord 208: {len(sequences)} windows, {beats} beats, "
        f"max relative difference (sample indices) {differences.max():.3g}"
    )
    assert len(sequences) >= 290 and beats > 3000
    assert np.isfinite(rows[:, rb.HEART_RATE]).all()

    # In seconds: the same up to rounding, except pnn50 where a successive difference is
    # exactly 50 ms (18 samples), which rhythm.py decides on the rounding of samples / fs.
    positions, offsets = rb.pack(sequences)
    ends = np.array([np.nan if n is None else (n - 1) / fs for n in waits])
    seconds = rb.rhythm_batch(positions / fs, offsets, 1.0, ends)
    apart = relative_differences(seconds, rows) > REL_TOL
    tie_samples = round(rb.PNN50_S * fs)
    assert tie_samples / fs == rb.PNN50_S
    pnn50 = rb.RR_COLUMNS["pnn50"]
    assert not apart[:, np.arange(rb.N_COLUMNS) != pnn50].any()
    for i in np.flatnonzero(apart[:, pnn50]):
        successive = np.diff(sequences[i], 2)
        ties = int(np.sum(np.abs(successive) == tie_samples))
        assert ties > 0
        moved = abs(seconds[i, pnn50] - rows[i, pnn50]) * len(successive)
        assert moved == pytest.approx(round(moved)) and round(moved) <= ties
    print(f"in seconds: pnn50 differs at exact 50 ms ties in {apart[:, pnn50].sum()} windows")


def test_rhythm_constants_are_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # Six beats 0.4 s apart after slow ones: a run of five intervals, none of three shorter.
    peaks = np.cumsum([0, 80, 80, 40, 40, 40, 40, 40, 80]).astype(np.float64)
    positions, offsets = rb.pack([peaks])
    assert rb.rhythm_batch(positions, offsets, 100.0)[0, rb.RR_COLUMNS["run_rate_bpm"]] == 150.0
    monkeypatch.setattr(rb, "RUN_INTERVALS", 6)
    run_of_six = rb.rhythm_batch(positions, offsets, 100.0)[0, rb.RR_COLUMNS["run_rate_bpm"]]
    assert run_of_six == 75.0


def test_empty_batch_and_bad_offsets() -> None:
    assert rb.rhythm_batch(np.zeros(0), np.zeros(1, dtype=np.int64)).shape == (0, rb.N_COLUMNS)
    with pytest.raises(ValueError, match="decrease"):
        rb.rhythm_batch(np.arange(4.0), np.array([0, 3, 2, 4]))
    with pytest.raises(ValueError, match="within"):
        rb.rhythm_batch(np.arange(4.0), np.array([0, 5]))


def test_columns_are_documented_once() -> None:
    assert rb.COLUMNS[rb.HEART_RATE] == "heart_rate"
    assert rb.COLUMNS[rb.RECENT_HEART_RATE] == "recent_heart_rate"
    assert rb.COLUMNS[rb.PULSE_RUN_RATE] == "pulse_run_rate"
    assert [rb.COLUMNS[rb.RR_COLUMNS[key]] for key in RR_KEYS] == list(RR_KEYS)
    assert len(set(rb.COLUMNS)) == rb.N_COLUMNS


def test_seeded_corpus_and_cost_per_window() -> None:
    """20,000 random windows against rhythm.py; then the cost of 1,000 windows of about
    12 beats: rhythm.py's four functions per window against one kernel call."""
    rng = np.random.default_rng(18)
    sequences, rates, lengths = [], [], []
    for _ in range(20_000):
        fs = float(rng.choice(RATES_HZ))
        count = int(rng.integers(0, 30))
        intervals = np.maximum(rng.normal(0.8, 0.25, count) * fs, 0).astype(np.int64)
        peaks = np.cumsum(np.concatenate(([rng.integers(0, fs)], intervals))).astype(np.int64)
        peaks = peaks[: int(rng.integers(0, len(peaks) + 1))]
        sequences.append(peaks)
        rates.append(fs)
        lengths.append(None if rng.random() < 0.3 else int(WINDOW_S * fs))
    _, differences = compare(sequences, rates, lengths)
    print(
        f"\nseeded corpus: {len(sequences)} sequences, "
        f"max relative difference {differences.max():.3g}"
    )

    fs, windows = 250.0, 1000
    windows_beats = [
        np.cumsum(np.concatenate(([rng.integers(0, 100)], rng.normal(0.8, 0.05, 11) * fs))).astype(
            np.int64
        )
        for _ in range(windows)
    ]
    size = int(WINDOW_S * fs)

    def per_window() -> None:
        for peaks in windows_beats:
            heart_rate(peaks, fs)
            recent_heart_rate(peaks, fs, size)
            rr_features(peaks, fs)
            pulse_run_rate(peaks, fs)

    packed = rb.pack(windows_beats)
    ends = np.full(windows, size - 1.0)

    def kernel() -> None:
        rb.rhythm_batch(*packed, fs, ends)

    def packed_kernel() -> None:
        rb.rhythm_batch(*rb.pack(windows_beats), fs, ends)

    def best_us(run: Callable[[], None]) -> float:
        run()
        best = np.inf
        for _ in range(5):
            began = time.process_time()
            run()
            best = min(best, time.process_time() - began)
        return best / windows * 1e6

    python_us, kernel_us, packed_us = best_us(per_window), best_us(kernel), best_us(packed_kernel)
    print(
        f"1,000 windows of 12 beats, µs CPU per window: rhythm.py {python_us:.1f}, "
        f"kernel {kernel_us:.2f}, kernel with packing {packed_us:.2f} "
        f"({python_us / kernel_us:.0f}x)"
    )
    assert kernel_us < python_us
