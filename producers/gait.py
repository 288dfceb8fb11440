"""Walking and running (artefact kinds): the body's response and what the sensors see.

Owns the ``walking`` and ``running`` events of :class:`~producers.physiology.Physiology`:
a chest-worn accelerometer's gait, the motion artefact the same steps put on the ECG and
PPG, and the modest heart-rate and breathing response of ordinary exercise. The point of
these kinds is to *tempt* false alarms (a PPG locked onto the step rate reads as a
tachycardia, electrode motion mimics beats), so the physiology itself stays below every
alarm limit. Sources for the numbers:

- Cadence: walking 1.7-2.0 steps/s (100-120 steps/min is normal to brisk walking,
  Tudor-Locke et al. 2018, Br J Sports Med 52:776), running 2.5-3.0 steps/s (150-180
  steps/min; preferred step rate ~170/min, Heiderscheit et al. 2011, Med Sci Sports Exerc
  43:296). Severity picks within the range (faster = more severe).
- Trunk acceleration: walking moves the trunk by a few tenths of a g at the step rate
  vertically, less antero-posteriorly, and medio-laterally at the stride rate (half the
  step rate) (Moe-Nilssen & Helbostad 2004, J Biomech 37:121): here vertical 0.22-0.35 g,
  AP 0.12-0.18 g, ML 0.08-0.12 g. Running is a bounce: stance pushes the trunk to ~2-2.4 g,
  flight drops it well below 1 g (trunk peaks of 2-3 g, e.g. Sheerin et al. 2019, Gait
  Posture 67:12); the vertical pulse has a mean of exactly 1 g (gravity), and the peak
  stays far below the 3.5 g a fall detector calls an impact (Bourke et al. 2007). There is
  never an impact followed by stillness: this is not a fall.
- Heart rate: +10-20 bpm walking, +25-35 bpm running over the resting baseline, the mean
  capped at 105 bpm so that the beat-to-beat and slow HRV around it (a few %) keep the
  device's reading at or below ~110 bpm, clear of the 120 bpm tachycardia limit (and of
  its 115 bpm hysteresis margin); heart rate approaches its exercise level
  with a time constant of ~20 s and recovers with ~45 s (phase II on-kinetics 20-40 s;
  vagal recovery, Imai et al. 1994, J Am Coll Cardiol 24:1529).
- Breathing: +2-4 /min walking, +5-8 /min running, capped at 22 /min (below the
  25 /min tachypnoea limit).
- Motion artefact: electrode and optical-sensor movement at the step rate with its
  harmonic plus low-pass noise, proportional to the intensity and to the scenario's
  motion multiplier (the same 0.25 mV / 0.6 au scale as the generic activity artefact);
  running adds muscle (EMG) noise on the ECG. Step-rate PPG artefact is the classic cause
  of wrong optical heart rates during exercise (Zhang et al. 2015, IEEE TBME 62:522).
"""

from __future__ import annotations

import numpy as np

WALKING_CADENCE_HZ = (1.7, 2.0)
RUNNING_CADENCE_HZ = (2.5, 3.0)
WALKING_HR_RISE = (10.0, 20.0)
RUNNING_HR_RISE = (25.0, 35.0)
EXERCISE_HR_CAP = 105.0
WALKING_RESP_RISE = (2.0, 4.0)
RUNNING_RESP_RISE = (5.0, 8.0)
EXERCISE_RESP_CAP = 22.0
HR_TAU_ON_S = 20.0
HR_TAU_OFF_S = 45.0
UPRIGHT_G = (0.02, -0.05, 0.99)  # chest sensor, upright: gravity along +z (as the body's)


def _span(bounds: tuple[float, float], severity: np.ndarray) -> np.ndarray:
    lo, hi = bounds
    return lo + (hi - lo) * np.clip(severity, 0.0, 1.0)


def exercise(walking: np.ndarray, running: np.ndarray) -> dict[str, np.ndarray]:
    """Per device: ``running`` (bool, running wins over walking), ``intensity`` 0..1 (0 at
    rest, walking 0.35-0.6, running 0.75-1.0), ``cadence`` (steps/s), ``hr_rise`` (bpm)
    and ``resp_rise`` (/min) for the event severities (0 = not active)."""
    run = running > 0
    walk = (walking > 0) & ~run
    sev = np.where(run, running, walking)
    zero = np.zeros(len(sev))
    return {
        "running": run,
        "intensity": np.where(run, 0.75 + 0.25 * sev, np.where(walk, 0.35 + 0.25 * sev, 0.0)),
        "cadence": np.where(
            run, _span(RUNNING_CADENCE_HZ, sev), np.where(walk, _span(WALKING_CADENCE_HZ, sev), 0)
        ),
        "hr_rise": np.where(
            run, _span(RUNNING_HR_RISE, sev), np.where(walk, _span(WALKING_HR_RISE, sev), zero)
        ),
        "resp_rise": np.where(
            run, _span(RUNNING_RESP_RISE, sev), np.where(walk, _span(WALKING_RESP_RISE, sev), zero)
        ),
    }


def _lowpass_noise(rng: np.random.Generator, rows: int, size: int, width: int) -> np.ndarray:
    """Unit-variance noise smoothed by a ``width``-sample moving sum (slow movement)."""
    running = np.cumsum(rng.standard_normal((rows, size + width)), axis=1)
    return (running[:, width:] - running[:, :-width]) / width**0.5


class Gait:
    """Walking and running of N devices: step phase, exercise heart-rate state, and the
    accelerometer and artefact rendering. Draws only from its own generator."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.phase = rng.uniform(0, 4 * np.pi, n)  # step phase; the stride is half of it
        self.cadence_offset = rng.uniform(-0.05, 0.05, n)  # steps/s, a person's own pace
        # Where in the step each sensor's artefact peaks: fixed by how it sits on the body.
        self.artefact_phase = {
            "ecg": rng.uniform(0, 2 * np.pi, n),
            "ppg": rng.uniform(0, 2 * np.pi, n),
        }
        self.hr_level = np.full(n, np.nan)  # bpm the exercise holds the heart at; nan: none
        self.now = exercise(np.zeros(n), np.zeros(n))
        self._t0 = 0.0

    def update(self, walking: np.ndarray, running: np.ndarray, t0: float) -> None:
        """Take this frame's walking/running severities (frame starting at ``t0``)."""
        self.now = exercise(walking, running)
        lo = np.where(self.now["running"], RUNNING_CADENCE_HZ[0], WALKING_CADENCE_HZ[0])
        hi = np.where(self.now["running"], RUNNING_CADENCE_HZ[1], WALKING_CADENCE_HZ[1])
        moving = self.now["intensity"] > 0
        cadence = np.clip(self.now["cadence"] + self.cadence_offset, lo, hi)
        self.now["cadence"] = np.where(moving, cadence, 0.0)
        self._t0 = t0

    @property
    def moving(self) -> np.ndarray:
        """Indices of the devices walking or running this frame."""
        return np.flatnonzero(self.now["intensity"] > 0)

    def heart_rate_target(
        self, baseline: np.ndarray, resting_target: np.ndarray, frame_s: float, abrupt: np.ndarray
    ) -> np.ndarray | None:
        """The heart rate to settle to with exercise taken into account, or None when no
        device exercises or is still recovering (the others' targets are left untouched).

        The exercise level is the baseline plus the event's rise, capped at 105 bpm; it
        never lowers a rate that is already higher (fever, tachycardia, usual activity).
        From the resting target at the start, the level rises with ~20 s and, once the
        event ends, falls back to the resting target with ~45 s.
        """
        moving = self.now["hr_rise"] > 0
        recovering = ~np.isnan(self.hr_level)
        if not (moving.any() or recovering.any()):
            return None
        wanted = np.minimum(baseline + self.now["hr_rise"], EXERCISE_HR_CAP)
        level = np.where(recovering, self.hr_level, resting_target)
        goal = np.where(moving, wanted, resting_target)
        tau = np.where(moving, HR_TAU_ON_S, HR_TAU_OFF_S)
        level = level + (goal - level) * (1.0 - np.exp(-frame_s / tau))
        level = np.where(abrupt, goal, level)
        # Back at rest (within 0.5 bpm, or below the resting target): the state ends.
        done = ~moving & (level - resting_target < 0.5)
        self.hr_level = np.where((moving | recovering) & ~done, level, np.nan)
        return np.where(np.isnan(self.hr_level), resting_target, np.fmax(resting_target, level))

    def resp_rise(self, baseline: np.ndarray, resting_target: np.ndarray) -> np.ndarray | None:
        """Breaths/min to add to the resting respiration target (capped at 22 /min), or None."""
        if not self.now["resp_rise"].any():
            return None
        wanted = np.minimum(baseline + self.now["resp_rise"], EXERCISE_RESP_CAP)
        return np.where(self.now["resp_rise"] > 0, np.maximum(wanted - resting_target, 0.0), 0.0)

    def _phase(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        cadence = self.now["cadence"][rows, None]
        return self.phase[rows, None] + 2 * np.pi * cadence * (t - self._t0)[None, :]

    def render_acc(self, acc: np.ndarray, t: np.ndarray) -> None:
        """Replace the accelerometer rows of moving devices by their gait (in place)."""
        rows = self.moving
        if rows.size == 0:
            return
        phase = self._phase(rows, t)
        sev = self.now["intensity"][rows, None]
        run = self.now["running"][rows, None]
        step = 1.0 + 0.05 * self.rng.standard_normal((rows.size, 1))  # step-to-step spread
        # Walking: near-sinusoidal vertical bounce at the step rate, AP a quarter cycle ahead.
        walk_v = (0.22 + 0.52 * (sev - 0.35)) * (np.sin(phase) + 0.25 * np.sin(2 * phase + 0.7))
        # Running: stance pulse (cos^2 lobe, mean 1/4 removed so the mean stays 1 g).
        pulse = np.maximum(np.cos(phase), 0.0) ** 2 - 0.25
        run_v = (1.3 + 2.0 * (sev - 0.75)) * pulse
        vertical = np.where(run, run_v, walk_v) * step
        ap = np.where(run, 0.25 + 0.4 * (sev - 0.75), 0.12 + 0.24 * (sev - 0.35))
        ml = np.where(run, 0.15 + 0.2 * (sev - 0.75), 0.08 + 0.16 * (sev - 0.35))
        gx, gy, gz = UPRIGHT_G
        acc[rows, :, 0] = gx + ap * np.sin(phase + np.pi / 2)
        acc[rows, :, 1] = gy + ml * np.sin(0.5 * phase)
        acc[rows, :, 2] = gz + vertical
        jitter = (0.02 + 0.04 * sev)[:, :, None]
        acc[rows] += jitter * self.rng.standard_normal((rows.size, t.size, 3))

    def add_artefact(
        self,
        signal: np.ndarray,
        t: np.ndarray,
        motion: np.ndarray,
        *,
        sensor: str,
        scale: float,
        emg: float = 0.0,
    ) -> None:
        """Add the step-locked motion artefact of ``sensor`` (``ecg``/``ppg``) in place, and
        ``emg`` (muscle noise at full intensity) where asked.

        ``scale`` is the artefact at full intensity (0.25 mV ECG, 0.6 au PPG), times the
        scenario's motion multiplier; the artefact follows the same step phase as the
        accelerometer, so it is correlated with it as real artefact is.
        """
        rows = self.moving
        if rows.size == 0:
            return
        phase = self._phase(rows, t)
        level = (scale * self.now["intensity"] * motion)[rows, None]
        offset = self.artefact_phase[sensor][rows, None]
        periodic = 0.8 * np.sin(phase + offset) + 0.3 * np.sin(2 * phase + 2 * offset)
        width = max(2, t.size // 10)  # ~0.1 s moving sum: slow compared with a QRS
        slow = 0.5 * _lowpass_noise(self.rng, rows.size, t.size, width)
        signal[rows] += level * (periodic + slow)
        if emg > 0:
            busy = self.now["intensity"][rows, None] * emg
            signal[rows] += busy * self.rng.standard_normal((rows.size, t.size))

    def advance(self, frame_s: float) -> None:
        """Move every device's step phase on by one frame."""
        self.phase = (self.phase + 2 * np.pi * self.now["cadence"] * frame_s) % (4 * np.pi)
