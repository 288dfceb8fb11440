"""Premature beats and bigeminy (confounds): irregular, but a normal average rate, and the
device's heart-rate reading stays inside the alarm limits. The rhythm is counted on the
body's own beat record (the truth); the ECG is judged at those beats: an R peak at each,
wide QRS complexes for PVCs, narrow ones for PACs."""

from __future__ import annotations

import numpy as np
import pytest

from producers.ectopy import premature_probability
from producers.physiology import PAC, PVC, SINUS, Conditions, Physiology
from producers.waveforms import ECG_FS


def _run(cond: Conditions, seconds: int, seed: int = 7) -> tuple[dict[str, np.ndarray], list]:
    """Signals, and per device the (time, kind, following RR) of every beat rendered."""
    body = Physiology(len(cond.hr), np.random.default_rng(seed))
    chunks, beats = [], [dict() for _ in range(body.n)]
    for _ in range(seconds):
        chunks.append(body.step(cond))
        for i in range(body.n):
            for t, kind, rr in zip(body.beat_t[i], body.beat_kind[i], body.beat_rr[i], strict=True):
                if 0 <= t < body.t:
                    beats[i][float(t)] = (int(kind), float(rr))
    signals = {
        name: np.concatenate([getattr(c, name) for c in chunks], axis=1)
        for name in ("ecg", "ppg", "hr")
    }
    ordered = [np.array([(t, *beats[i][t]) for t in sorted(beats[i])]) for i in range(body.n)]
    return signals, ordered


@pytest.fixture(scope="module")
def ectopic_ward() -> tuple[Conditions, dict[str, np.ndarray], list]:
    cond = Conditions.quiet(5)
    cond.hr[:] = [70, 64, 58, 80, 70]
    cond.bigeminy[0] = 1.0
    cond.premature_beats[1] = 1.0
    cond.bigeminy[2] = 0.5  # slow baseline: the average must still not read as bradycardia
    cond.premature_beats[3] = 0.5
    signals, beats = _run(cond, 300)
    return cond, signals, beats


def test_bigeminy_alternates_short_and_long_with_a_normal_average(ectopic_ward) -> None:
    cond, signals, beats = ectopic_ward
    for device in (0, 2):
        t, kinds = beats[device][:, 0], beats[device][:, 1].astype(int)
        settled = t > 20
        rr = np.diff(t[settled])
        shorter = rr[:-1] < rr[1:]
        # Short, long, short, long: whether an interval is shorter than the next flips each time.
        assert np.all(shorter[1:] != shorter[:-1])
        assert set(kinds[settled][::2]) ^ set(kinds[settled][1::2]) == {SINUS, PVC}
        coupling, pause = np.sort(rr)[: len(rr) // 2], np.sort(rr)[len(rr) // 2 :]
        sinus_rr = 60.0 / cond.hr[device]
        assert 0.5 < coupling.mean() / sinus_rr < 0.75
        assert (coupling.mean() + pause.mean()) / sinus_rr == pytest.approx(2.0, abs=0.1)
        assert 60.0 / rr.mean() == pytest.approx(cond.hr[device], abs=3.0)
    # The ECG draws every one of those beats where it happened: an R peak within 20 ms.
    ecg = signals["ecg"][0]
    for t in beats[0][(beats[0][:, 0] > 20) & (beats[0][:, 0] < 299), 0]:
        k = round(float(t) * ECG_FS)
        local = ecg[k - 20 : k + 21]
        assert abs(int(np.argmax(local)) - 20) <= 0.02 * ECG_FS
        assert local.max() - np.median(local) > 0.5


def test_premature_beats_are_frequent_isolated_and_mostly_pvcs(ectopic_ward) -> None:
    _, _, beats = ectopic_ward
    kinds = beats[1][:, 1].astype(int)
    premature = np.isin(kinds, (PVC, PAC))
    assert 0.10 <= premature.mean() <= 0.20  # full severity: 10-20 % of beats
    assert not np.any(premature[1:] & premature[:-1])  # no couplets, no runs
    assert 0.6 < np.mean(kinds[premature] == PVC) < 0.95 and np.any(kinds == PAC)
    half = np.isin(beats[3][:, 1].astype(int), (PVC, PAC)).mean()
    assert 0.04 <= half <= 0.11  # severity 0.5: about half as many
    assert premature_probability(1.0) == pytest.approx(0.15 / 0.85)


def test_pvcs_pause_fully_and_pacs_do_not(ectopic_ward) -> None:
    cond, _, beats = ectopic_ward
    t, kinds, rr = beats[1][:, 0], beats[1][:, 1].astype(int), beats[1][:, 2]
    sinus_rr = np.median(rr[(kinds == SINUS)][1:])
    before = rr[:-1]  # the coupling interval of beat i+1
    pvc = np.flatnonzero(kinds[1:] == PVC) + 1
    pac = np.flatnonzero(kinds[1:] == PAC) + 1
    assert pvc.size > 20 and pac.size > 3
    assert np.all(before[pvc - 1] < 0.8 * sinus_rr)  # premature
    compensatory = (before[pvc - 1] + rr[pvc]) / sinus_rr
    assert np.median(compensatory) == pytest.approx(2.0, abs=0.08)
    non_compensatory = (before[pac - 1] + rr[pac]) / sinus_rr
    assert np.median(non_compensatory) < 1.9  # the sinus node was reset
    assert np.median(non_compensatory) < np.median(compensatory) - 0.1
    assert 60.0 / np.mean(np.diff(t)) == pytest.approx(cond.hr[1], abs=3.0)


def test_pvcs_are_wide_and_pacs_narrow(ectopic_ward) -> None:
    _, signals, beats = ectopic_ward

    def qrs_width(ecg: np.ndarray, at: np.ndarray) -> float:
        widths = []
        for t in at[(at > 5) & (at < 295)]:
            k = round(float(t) * ECG_FS)
            window = ecg[k - 13 : k + 14] - np.median(ecg[k - 40 : k + 40])
            widths.append(np.sum(np.abs(window) > 0.3 * np.abs(window).max()) / ECG_FS)
        return float(np.median(widths))

    t, kinds = beats[1][:, 0], beats[1][:, 1].astype(int)
    ecg = signals["ecg"][1]
    sinus, pvc, pac = (qrs_width(ecg, t[kinds == k]) for k in (SINUS, PVC, PAC))
    assert pvc > 2 * sinus
    assert pac < 1.5 * sinus


def test_device_heart_rate_stays_a_normal_average(ectopic_ward) -> None:
    cond, signals, _ = ectopic_ward
    reported = signals["hr"][:4, 20:]
    for device in range(4):
        assert reported[device].mean() == pytest.approx(cond.hr[device], abs=3.0)
        # No wider than sinus rhythm's own variability (slow HRV: ±8-10 bpm at most).
        assert np.all(np.abs(reported[device] - cond.hr[device]) <= 12)
    assert reported.min() > 50 and reported.max() < 120  # no bradycardia/tachycardia reading


def test_ectopy_leaves_other_devices_sinus(ectopic_ward) -> None:
    _, _, beats = ectopic_ward
    assert set(beats[4][:, 1].astype(int)) == {SINUS}
