"""The shared ECG input builder: resampling keeps gaps, RR channels follow the R peaks."""

from __future__ import annotations

import numpy as np
import pytest

from stream.scoring.inputs import ecg_channels, resample_ecg, rr_channels
from stream.signal.beats import detect_r_peaks

FS = 128.0


def spiky_ecg(beat_times: list[float], seconds: float = 10.0) -> np.ndarray:
    """Narrow QRS-like spikes at ``beat_times`` on a little noise."""
    t = np.arange(int(seconds * FS)) / FS
    ecg = np.random.default_rng(0).normal(0, 0.01, len(t))
    for beat in beat_times:
        ecg += 1.2 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)
    return ecg


BEATS = [0.5, 1.3, 2.1, 2.6, 3.6, 4.3, 5.2, 5.9, 6.9, 7.5, 8.4, 9.2]  # irregular, like AF


def test_rr_channel_holds_each_beats_interval_until_the_next_beat() -> None:
    ecg = spiky_ecg(BEATS)
    peaks = detect_r_peaks(ecg, FS) / FS
    assert len(peaks) == len(BEATS)  # the stream's detector finds every beat
    channels = rr_channels(ecg, FS, 64.0)
    rr, drr = channels["rr_s"], channels["drr_s"]
    t = np.arange(len(rr)) / 64.0
    assert rr.shape == (640,) and np.isnan(rr[t < peaks[1]]).all()  # no interval yet
    for k in range(1, len(peaks) - 1):
        between = (t >= peaks[k]) & (t < peaks[k + 1])
        np.testing.assert_allclose(rr[between], peaks[k] - peaks[k - 1], atol=1e-6)
        if k >= 2:
            expected = (peaks[k] - peaks[k - 1]) - (peaks[k - 1] - peaks[k - 2])
            np.testing.assert_allclose(drr[between], expected, atol=1e-6)
    assert np.isnan(drr[t < peaks[2]]).all()


def test_an_interval_across_a_gap_is_missing() -> None:
    ecg = spiky_ecg([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5])
    ecg[int(4.9 * FS) : int(5.0 * FS)] = np.nan  # no beat lost, but samples are
    rr = rr_channels(ecg, FS, 64.0)["rr_s"]
    t = np.arange(len(rr)) / 64.0
    assert np.isnan(rr[(t > 5.6) & (t < 6.4)]).all()  # the 4.5 -> 5.5 interval spans the gap
    np.testing.assert_allclose(rr[(t > 6.6) & (t < 7.4)], 1.0, atol=1 / FS)


def test_resampling_keeps_gaps_and_does_not_dip_at_the_edges() -> None:
    flat = resample_ecg(np.full(1280, 0.3), FS, 64.0)
    np.testing.assert_allclose(flat, 0.3, atol=1e-6)
    ecg = np.sin(np.arange(1280) / FS * 2 * np.pi)
    ecg[200:260] = np.nan
    out = resample_ecg(ecg, FS, 64.0)
    assert out.shape == (640,)
    assert np.isnan(out[100:130]).all() and np.isfinite(out[:95]).all()
    assert np.isfinite(out[135:]).all()  # the filter does not smear the gap


def test_channels_come_in_the_cards_order() -> None:
    ecg = spiky_ecg(BEATS)
    x = ecg_channels(ecg, FS, ["drr_s", "ecg", "rr_s"], 64.0)
    channels = rr_channels(ecg, FS, 64.0)
    assert x.shape == (640, 3)
    np.testing.assert_array_equal(x[:, 1], resample_ecg(ecg, FS, 64.0))
    np.testing.assert_array_equal(x[:, 2], channels["rr_s"])
    np.testing.assert_array_equal(x[:, 0], channels["drr_s"])
    with pytest.raises(ValueError, match="unknown ECG input channels"):
        ecg_channels(ecg, FS, ["ecg", "ppg"], 64.0)


def test_the_stream_builds_exactly_the_training_inputs_for_the_shipped_model(tmp_path) -> None:
    from sklearn.metrics import roc_auc_score

    from models import dataset
    from stream.config import load_settings
    from stream.scoring import registry
    from stream.scoring.inputs import ecg_input
    from stream.signal.window import SignalWindow

    settings = load_settings(models={"directory": tmp_path / "none"}, pseudonym_key="k")
    model = registry.load(registry.resolve("rhythm", settings))
    spec = model.card.inputs[0]
    assert tuple(spec.channels) == dataset.RHYTHM_CHANNELS and spec.fs == dataset.RHYTHM_FS
    windows = dataset.rhythm_windows(n_patients=4, seconds=90, seed=11)
    served = np.stack(
        [
            ecg_input(SignalWindow(0.0, 10.0, ecg=raw, ecg_fs=windows.raw_fs), spec)
            for raw in windows.raw
        ]
    )
    np.testing.assert_array_equal(served, windows.x)  # no train/serve skew
    af = model.predict(served)["af"]
    assert roc_auc_score(windows.y[:, 0], af) > 0.9  # unseen simulated patients


def _parity_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    gapped = spiky_ecg(BEATS)
    gapped[int(4.8 * FS) : int(5.6 * FS)] = np.nan
    pinned = spiky_ecg(BEATS)
    pinned[300:800] = pinned.max()  # lead-off: the features hide the rate, not the peaks
    return {
        "af-like": spiky_ecg(BEATS),
        "gap": gapped,
        "pinned": pinned,
        "noise": rng.normal(0, 0.3, int(10 * FS)),
        "flat": np.full(int(10 * FS), 0.1),
        "mostly missing": np.where(np.arange(int(10 * FS)) < 100, spiky_ecg(BEATS), np.nan),
        "short": spiky_ecg([0.2, 0.6], seconds=0.8),
    }


@pytest.mark.parametrize("case", list(_parity_cases()))
def test_peaks_from_the_window_features_give_the_training_inputs(case: str) -> None:
    # Serving passes analyze_window's R peaks; training detects them: same arrays.
    from stream.signal.features import analyze_window
    from stream.signal.window import SignalWindow

    ecg = _parity_cases()[case]
    analysis = analyze_window(SignalWindow(0.0, len(ecg) / FS, ecg=ecg, ecg_fs=FS))
    assert analysis.r_peaks is not None
    np.testing.assert_array_equal(analysis.r_peaks, detect_r_peaks(ecg, FS))
    channels = ["ecg", "rr_s", "drr_s"]
    trained = ecg_channels(ecg, FS, channels, 64.0)
    served = ecg_channels(ecg, FS, channels, 64.0, r_peaks=analysis.r_peaks)
    np.testing.assert_array_equal(served, trained)
    assert served.dtype == trained.dtype


def test_a_window_without_ecg_has_no_peaks_to_pass() -> None:
    from stream.signal.features import analyze_window
    from stream.signal.window import SignalWindow

    assert analyze_window(SignalWindow(0.0, 10.0, spo2=97.0)).r_peaks is None


@pytest.mark.parametrize(("up", "down"), [(1, 2), (2, 1), (2, 3), (32, 125), (5, 4)])
def test_the_cached_anti_alias_filter_is_resample_polys_own(up: int, down: int) -> None:
    from scipy.signal import resample_poly

    from stream.scoring.inputs import _anti_alias

    x = np.random.default_rng(up * 100 + down).normal(size=1000)
    designed = resample_poly(x, up, down, padtype="line")
    cached = resample_poly(x, up, down, window=_anti_alias(up, down), padtype="line")
    np.testing.assert_array_equal(cached, designed)
    assert _anti_alias(up, down) is _anti_alias(up, down)


@pytest.mark.parametrize(
    ("a", "b"),
    [(128.0, 64.0), (64.0, 64.0), (1.0, 0.1), (10.0, 10.0), (250.0, 250.001), (0.0, 1e-9),
     (10.00001, 10.0), (1.0, float("nan")), (3.0, 3.0000001)],
)  # fmt: skip
def test_same_rate_agrees_with_np_isclose(a: float, b: float) -> None:
    from stream.scoring.inputs import same_rate

    assert same_rate(a, b) == bool(np.isclose(a, b))
