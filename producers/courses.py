"""Stopgap labelled signals for training while ``producers.physiology`` is being written.

Pure numpy. Each simulated patient gets their own physiology (heart rate, beat
morphology, noise) and a schedule of rhythm episodes, so patient-wise splits are
meaningful: a model must generalize to morphologies it has not seen.

Rhythms and why they are here:

- ``sinus`` and ``sinus_arrhythmia``: negatives, the second with large but smooth RR
  variation (a respiratory-driven confound for RR-irregularity features).
- ``pac``: premature *narrow* beats, a confound for both classes (irregular RR, no AF,
  not ventricular).
- ``af``: irregularly irregular RR, no P waves, 4-9 Hz fibrillatory waves.
- ``pvc``, ``bigeminy``, ``vt_run``: premature *wide* beats with discordant T waves
  and a compensatory pause; runs of 3-8 at 150-200 bpm.
- ``noise``: motion artefact bursts over sinus rhythm.

Vitals trajectories for the deterioration model are simulated in
:func:`simulate_vitals`: stable patients wander around their baseline; deteriorating
ones drift towards tachycardia, tachypnoea, fever and desaturation (a sepsis-like
course) from a random onset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RHYTHMS = ("sinus", "sinus_arrhythmia", "pac", "af", "pvc", "bigeminy", "vt_run", "noise")
RHYTHM_WEIGHTS = (0.22, 0.1, 0.12, 0.2, 0.14, 0.08, 0.06, 0.08)


@dataclass(frozen=True)
class Beat:
    t: float  # R-peak time in seconds
    ventricular: bool
    p_wave: bool


@dataclass(frozen=True)
class Morphology:
    """Per-patient beat shape: (amplitude mV, offset s, width s) of P, Q, R, S, T."""

    waves: np.ndarray  # shape (5, 3)
    wide_scale: float  # how much broader ventricular beats are
    noise_mv: float
    wander_mv: float


def _morphology(rng: np.random.Generator) -> Morphology:
    waves = np.array(
        [
            [rng.uniform(0.08, 0.25), -0.2 + rng.normal(0, 0.015), rng.uniform(0.018, 0.03)],
            [-rng.uniform(0.05, 0.2), -0.03, rng.uniform(0.008, 0.014)],
            [rng.uniform(0.7, 2.0), 0.0, rng.uniform(0.009, 0.016)],
            [-rng.uniform(0.1, 0.45), 0.035, rng.uniform(0.008, 0.016)],
            [rng.uniform(0.15, 0.5) * rng.choice([1, 1, 1, -1]), rng.uniform(0.22, 0.3), 0.05],
        ]
    )
    return Morphology(
        waves=waves,
        wide_scale=rng.uniform(2.5, 4.0),
        noise_mv=rng.uniform(0.01, 0.06),
        wander_mv=rng.uniform(0.05, 0.3),
    )


def _beats(
    rhythm: str, start: float, end: float, hr: float, rng: np.random.Generator
) -> list[Beat]:
    beats: list[Beat] = []
    rr_sinus = 60 / hr
    prev = start + rng.uniform(0, rr_sinus)
    breathing_period = rng.uniform(3.5, 5.0)
    run_left = 0
    while prev < end:
        if rhythm == "vt_run" and (run_left > 0 or rng.random() < 0.12):
            run_left = run_left - 1 if run_left > 0 else int(rng.integers(2, 8))
            prev += 60 / rng.uniform(150, 200)
            beats.append(Beat(prev, ventricular=True, p_wave=False))
            continue
        bigeminal = rhythm == "bigeminy" and bool(beats) and not beats[-1].ventricular
        if bigeminal or (rhythm == "pvc" and rng.random() < 0.18):
            beats.append(Beat(prev + rr_sinus * rng.uniform(0.55, 0.7), True, False))
            # The sinus node is not reset by a ventricular beat: the next sinus beat comes
            # on schedule, two sinus intervals after the last one (compensatory pause).
            prev += rr_sinus
            continue
        if rhythm == "sinus_arrhythmia":
            rr = rr_sinus * (1 + 0.12 * np.sin(2 * np.pi * prev / breathing_period))
        elif rhythm == "af":
            rr = rr_sinus * rng.uniform(0.55, 1.45)
        elif rhythm == "pac" and rng.random() < 0.15:
            rr = rr_sinus * rng.uniform(0.6, 0.75)
        else:
            rr = rr_sinus * (1 + rng.normal(0, 0.02))
        prev += rr
        beats.append(Beat(prev, ventricular=False, p_wave=rhythm != "af"))
    return [b for b in beats if b.t < end]


def _render(beats: list[Beat], n: int, fs: float, shape: Morphology) -> np.ndarray:
    ecg = np.zeros(n)
    half = int(0.45 * fs)
    offsets = np.arange(-half, half + 1) / fs
    waves = shape.waves
    for beat in beats:
        centre = round(beat.t * fs)
        lo, hi = max(0, centre - half), min(n, centre + half + 1)
        if lo >= hi:
            continue
        local = offsets[lo - centre + half : hi - centre + half]
        if beat.ventricular:
            # Wide, tall QRS with a discordant T: the morphology RR features cannot see.
            qrs_w = waves[2, 2] * shape.wide_scale
            template = 1.3 * waves[2, 0] * np.exp(-0.5 * (local / qrs_w) ** 2)
            template -= 0.5 * waves[2, 0] * np.exp(-0.5 * ((local - 2.2 * qrs_w) / qrs_w) ** 2)
            template -= np.sign(waves[4, 0]) * 0.45 * np.exp(-0.5 * ((local - 0.3) / 0.07) ** 2)
        else:
            template = np.zeros_like(local)
            for i, (amp, offset, width) in enumerate(waves):
                if i == 0 and not beat.p_wave:
                    continue
                template += amp * np.exp(-0.5 * ((local - offset) / width) ** 2)
        ecg[lo:hi] += template
    return ecg


@dataclass(frozen=True)
class Recording:
    """One simulated patient's continuous ECG and its beat-level truth."""

    patient: str
    fs: float
    ecg: np.ndarray
    beats: list[Beat]
    af_mask: np.ndarray  # per sample: inside an AF episode
    noise_mask: np.ndarray


def simulate_recording(patient: str, seconds: float, fs: float, seed: int) -> Recording:
    """A patient's ECG made of 20-90 s rhythm episodes drawn from :data:`RHYTHMS`."""
    rng = np.random.default_rng(seed)
    shape = _morphology(rng)
    hr = rng.uniform(55, 105)
    n = int(seconds * fs)
    beats: list[Beat] = []
    af_mask = np.zeros(n, dtype=bool)
    noise_mask = np.zeros(n, dtype=bool)
    t = 0.0
    while t < seconds:
        rhythm = str(rng.choice(RHYTHMS, p=RHYTHM_WEIGHTS))
        end = min(seconds, t + rng.uniform(20, 90))
        episode_hr = hr * (rng.uniform(1.1, 1.6) if rhythm == "af" else rng.uniform(0.9, 1.1))
        beats.extend(_beats(rhythm, t, end, episode_hr, rng))
        span = slice(int(t * fs), int(end * fs))
        if rhythm == "af":
            af_mask[span] = True
        if rhythm == "noise":
            noise_mask[span] = True
        t = end
    beats = [b for b in beats if b.t < seconds]
    ecg = _render(beats, n, fs, shape)
    time = np.arange(n) / fs
    ecg += shape.wander_mv * np.sin(2 * np.pi * rng.uniform(0.15, 0.4) * time + rng.uniform(0, 6))
    ecg += rng.normal(0, shape.noise_mv, n)
    f_amp = rng.uniform(0.03, 0.1)
    ecg += np.where(af_mask, f_amp * np.sin(2 * np.pi * rng.uniform(4, 9) * time), 0.0)
    if noise_mask.any():
        bursts = np.cumsum(rng.normal(0, 0.08, n)) * noise_mask
        ecg += bursts - np.convolve(bursts, np.ones(int(fs)) / fs, mode="same")
    return Recording(patient, fs, ecg.astype(np.float32), beats, af_mask, noise_mask)


@dataclass(frozen=True)
class VitalsCourse:
    """One patient's per-10 s vitals and, per step, whether they are deteriorating."""

    patient: str
    values: np.ndarray  # [steps, len(VITALS_SIMULATED)]
    deteriorating: np.ndarray  # [steps] bool


VITALS_SIMULATED = ("hr", "spo2", "resp", "temp", "rr_irregularity", "activity_g")


def simulate_vitals(patient: str, steps: int, seed: int, deteriorates: bool) -> VitalsCourse:
    """Vitals at 0.1 Hz; a deteriorating course ramps over 20-60 min from a random onset."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [
            rng.uniform(60, 95),
            rng.uniform(95, 99),
            rng.uniform(12, 18),
            rng.uniform(36.3, 37.2),
            rng.uniform(0.02, 0.08),
            rng.uniform(0.0, 0.15),
        ]
    )
    noise = np.array([2.5, 0.7, 1.2, 0.05, 0.015, 0.05])
    # Slow random walks so stable patients drift too (the negative class is not flat).
    walk = np.cumsum(rng.normal(0, 1, (steps, base.size)), axis=0) * noise * 0.15
    values = base + walk + rng.normal(0, 1, (steps, base.size)) * noise
    ramp = np.zeros(steps)
    if deteriorates:
        onset = int(rng.integers(steps // 6, steps // 2))
        duration = int(rng.integers(120, 360))
        ramp = np.clip((np.arange(steps) - onset) / duration, 0, 1)
        severity = rng.uniform(0.5, 1.0)
        drift = np.array([35, -8, 12, 1.8, 0.05, -0.05]) * severity
        values = values + ramp[:, None] * drift
    # Activity bursts raise heart rate in everyone: the confound a threshold rule trips on.
    for _ in range(int(rng.integers(1, 5))):
        start = int(rng.integers(0, steps - 30))
        length = int(rng.integers(6, 30))
        values[start : start + length, 0] += rng.uniform(15, 35)
        values[start : start + length, 2] += rng.uniform(3, 8)
        values[start : start + length, 5] += rng.uniform(0.3, 0.8)
    values[:, 1] = np.clip(values[:, 1], 70, 100)
    values[:, 5] = np.clip(values[:, 5], 0, None)
    dropout = rng.random(values.shape) < 0.03
    values[dropout] = np.nan
    return VitalsCourse(patient, values.astype(np.float32), ramp > 0.25)
