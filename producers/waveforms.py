"""The simulated wearables' waveforms: ECG, PPG and accelerometer for a whole fleet at once.

Owns the waveform synthesis of :class:`~producers.physiology.Physiology` (mixed in as
:class:`Waveforms`, which draws from the body's beats, breathing and random stream), all
numpy, every device a row:

- ECG is a sum of Gaussians per beat (P, Q, R, S, T as in McSharry et al.'s ECGSYN) placed on
  the beat times; P and T timing scale with sqrt(RR) (Bazett). AF beats have no P wave and
  fibrillatory f-waves ride on the baseline; ventricular beats have no P, a wide QRS and a
  discordant T. Premature beats (:mod:`producers.ectopy`): a PVC is drawn like a
  ventricular beat (QRS ~140 ms, T opposite the QRS) with its T at a fixed 0.34 s, as
  repolarization follows the short cycle before it, not the pause after; a PAC has a
  normal narrow QRS after an early, low, inverted P (an ectopic atrial focus).
  Respiration moves the baseline and the QRS amplitude.
- PPG pulses follow the SAME beats after a pulse transit time that shortens as HR rises;
  ventricular beats eject less (smaller pulse), respiration modulates baseline and amplitude.
- Accelerometer: gravity (posture) + walking cadence scaled by activity; a fall is a brief
  free fall, an impact spike of 3-6 g, then lying still.
- Sensor noise, baseline wander, motion artefacts (scaled by activity), lead-off (flat or
  saturated ECG) while the sensor is detached.
- The artefact kinds hook in here: gait (walking, running: :mod:`producers.gait`) replaces
  the accelerometer and adds step-locked artefact to ECG and PPG; a loose electrode
  (ECG), low perfusion (PPG) and sensor noise are :mod:`producers.artefacts`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from producers.artefacts import SensorArtefacts
    from producers.gait import Gait
    from producers.physiology import Conditions

# Sampling rates of the waveform channels (Hz).
ECG_FS = 128
PPG_FS = 64
ACC_FS = 25

# Beat kinds: the rows of _WAVES.
SINUS, AF_BEAT, VENTRICULAR, PVC, PAC = 0, 1, 2, 3, 4

# Waves per beat kind (rows: SINUS, AF_BEAT, VENTRICULAR, PVC, PAC):
# (centre s relative to R at RR = 1 s, amplitude mV, width s, scales with sqrt(RR)).
# Sinus values follow ECGSYN's P-QRS-T proportions for lead II.
_WAVES = np.array(
    [
        # P              Q                  R                S                 T
        [
            [-0.20, 0.15, 0.025, 1],
            [-0.035, -0.12, 0.010, 0],
            [0.0, 1.10, 0.011, 0],
            [0.035, -0.25, 0.011, 0],
            [0.30, 0.30, 0.050, 1],
        ],
        [
            [-0.20, 0.00, 0.025, 1],
            [-0.035, -0.12, 0.010, 0],
            [0.0, 1.10, 0.011, 0],
            [0.035, -0.25, 0.011, 0],
            [0.30, 0.28, 0.050, 1],
        ],
        [
            [-0.20, 0.00, 0.025, 1],
            [-0.060, -0.30, 0.030, 0],
            [0.0, 1.60, 0.035, 0],
            [0.080, -0.70, 0.035, 0],
            [0.34, -0.45, 0.070, 1],
        ],
        [
            [-0.20, 0.00, 0.025, 1],
            [-0.060, -0.30, 0.030, 0],
            [0.0, 1.60, 0.035, 0],
            [0.080, -0.70, 0.035, 0],
            [0.34, -0.45, 0.070, 0],
        ],
        [
            [-0.16, -0.07, 0.020, 0],
            [-0.035, -0.12, 0.010, 0],
            [0.0, 1.10, 0.011, 0],
            [0.035, -0.25, 0.011, 0],
            [0.30, 0.30, 0.050, 1],
        ],
    ],
    dtype=np.float64,
)
# Beats this long before a window still reach into it (T wave, PPG pulse tail) and beats
# this long after it already show (P wave).
LOOKBACK_S = 0.9
LOOKAHEAD_S = 0.35

LEAD_OFF_RAIL_MV = 5.0


def sin32(phase: np.ndarray) -> np.ndarray:
    """Sine in single precision, for smooth modulations (breathing, gait).

    Seven times faster than double precision here; the 1e-7 error is far below any
    sensor's noise (phases stay within a few cycles, where float32 is exact enough).
    """
    return np.sin(phase.astype(np.float32))


def _gaussians(
    t0: float, fs: float, size: int, centre: np.ndarray, width: np.ndarray, amp: np.ndarray
) -> np.ndarray:
    """Per row, the sum of ``amp * exp(-((t - centre) / width) ** 2 / 2)`` over its bumps.

    Sampled at ``t = t0 + i / fs`` for ``i < size``; ``centre``, ``width`` and ``amp`` are
    (N, M) arrays, one entry per bump. A bump is evaluated only within six widths of its
    centre (beyond, it is below 2e-8 of its height): ECG waves are narrow, so most of a
    frame's samples are far from any one wave and skipping them saves most of the work.
    """
    n = centre.shape[0]
    reach = int(np.ceil(6 * width.max() * fs))
    pos = (centre - t0) * fs  # centre in samples
    first = np.floor(pos).astype(np.int64) - reach
    steps = np.arange(2 * reach + 2)
    z = (first - pos).astype(np.float32)[:, :, None] + steps.astype(np.float32)
    z *= (1.0 / (width * fs)).astype(np.float32)[:, :, None]
    z *= z
    z *= -0.5
    bump = np.exp(z, out=z)
    bump *= amp.astype(np.float32)[:, :, None]
    # Samples outside the frame land in one padding column on either side.
    column = np.clip(first[:, :, None] + steps, -1, size)
    column += (np.arange(n) * (size + 2) + 1)[:, None, None]
    sums = np.bincount(column.ravel(), weights=bump.ravel(), minlength=n * (size + 2))
    return sums.reshape(n, size + 2)[:, 1:-1]


class Waveforms:
    """ECG, PPG and accelerometer rendering for :class:`~producers.physiology.Physiology`.

    Reads (and advances) the body's state: its beat ring, per-person gains and phases,
    baseline wander and random stream, so each seed's data stays what it was.
    """

    n: int
    rng: np.random.Generator
    frame_s: float
    t: float
    beat_t: np.ndarray
    beat_kind: np.ndarray
    beat_rr: np.ndarray
    beat_amp: np.ndarray
    stride_phase: np.ndarray
    f_wave_hz: np.ndarray
    f_wave_phase: np.ndarray
    ecg_gain: np.ndarray
    ppg_gain: np.ndarray
    wander: np.ndarray
    saturates: np.ndarray
    gait: Gait
    artefacts: SensorArtefacts

    def _recent_beats(self, t: np.ndarray) -> int:
        # Only the newest beats reach into this frame; rendering the whole ring would
        # multiply the work for nothing.
        reach = (self.beat_t > t[0] - LOOKBACK_S).sum(axis=1)
        return max(1, int(reach.max()))

    def _render_ecg(self, t: np.ndarray, cond: Conditions, resp_wave: np.ndarray) -> np.ndarray:
        k = self._recent_beats(t)
        waves = _WAVES[self.beat_kind[:, -k:]]  # (N, K, 5, 4)
        stretch = np.sqrt(np.clip(self.beat_rr[:, -k:], 0.25, 2.0))
        ecg = np.zeros((self.n, t.size))
        for w in range(5):
            offset = waves[:, :, w, 0] * np.where(waves[:, :, w, 3] > 0, stretch, 1.0)
            ecg += _gaussians(
                t[0], ECG_FS, t.size,
                centre=self.beat_t[:, -k:] + offset,
                width=waves[:, :, w, 2],
                amp=waves[:, :, w, 1],
            )  # fmt: skip
        # Breathing swings the heart's electrical axis: QRS amplitude and baseline follow it.
        ecg *= (self.ecg_gain[:, None]) * (1 + 0.06 * resp_wave)
        # In place and in a fixed order: a 5,000-device frame is rendered every second.
        # Only fibrillating atria make f-waves: the rest of the fleet skips the sines.
        af = np.flatnonzero(cond.af > 0)
        f_hz = self.f_wave_hz[af, None]
        ecg[af] += 0.05 * (
            np.sin(2 * np.pi * f_hz * t[None, :] + self.f_wave_phase[af, None])
            + 0.4 * np.sin(4.1 * np.pi * f_hz * t[None, :])
        )
        wander_next = 0.98 * self.wander + 0.03 * self.rng.standard_normal(self.n)
        ramp = np.linspace(0, 1, t.size, endpoint=False)
        ecg += self.wander[:, None] + (wander_next - self.wander)[:, None] * ramp[None, :]
        self.wander = wander_next
        ecg += 0.06 * resp_wave
        noise = self.rng.standard_normal((self.n, t.size))
        noise *= 0.012 * cond.noise[:, None]
        ecg += noise
        self._add_motion_artefact(ecg, cond, scale=0.25)
        self.gait.add_artefact(ecg, t, cond.motion, sensor="ecg", scale=0.25, emg=0.03)
        self.artefacts.loose_electrode(ecg, ECG_FS, cond.loose_electrode, cond.noise)
        # Every device draws lead-off noise, attached or not: the random stream, and so
        # each seed's data, stays what it was.
        flat_noise = self.rng.standard_normal((self.n, t.size))
        detached = np.flatnonzero(cond.detached)
        rail = np.where(self.saturates[detached], LEAD_OFF_RAIL_MV, 0.0)
        ecg[detached] = rail[:, None] + 0.002 * flat_noise[detached]
        return ecg

    def _add_motion_artefact(self, signal: np.ndarray, cond: Conditions, scale: float) -> None:
        level = scale * cond.motion * cond.activity
        if not np.any(level > 0):
            return
        # Low-pass (moving sum) noise: electrode movement is slow compared with the QRS.
        raw = self.rng.standard_normal((self.n, signal.shape[1] + 6))
        running = np.cumsum(raw, axis=1)
        smooth = running[:, 6:] - running[:, :-6]
        smooth /= 6**0.5
        smooth *= level[:, None]
        signal += smooth

    def _render_ppg(self, t: np.ndarray, cond: Conditions, resp_wave: np.ndarray) -> np.ndarray:
        k = self._recent_beats(t)
        rr = self.beat_rr[:, -k:]
        ptt = 0.14 + 0.12 * np.clip(rr, 0.3, 1.5)  # pulse transit time shortens with HR
        arrival = self.beat_t[:, -k:] + ptt
        dt = (t[None, None, :] - arrival[:, :, None]).astype(np.float32)
        rise = dt / 0.07
        systolic = np.exp(-0.5 * np.minimum(rise * rise, 50.0))
        notch = (dt - 0.33 * np.sqrt(np.clip(rr, 0.25, 2.0))[:, :, None]) / 0.09
        dicrotic = 0.35 * np.exp(-0.5 * np.minimum(notch * notch, 50.0))
        ppg = np.einsum("nk,nks->ns", self.beat_amp[:, -k:], systolic + dicrotic)
        ppg *= self.ppg_gain[:, None] * (1 + 0.08 * resp_wave)
        self.artefacts.weaken_ppg(ppg, resp_wave, cond.low_perfusion)
        ppg += 0.15 * resp_wave + 0.01 * cond.noise[:, None] * self.rng.standard_normal(ppg.shape)
        self.artefacts.perfusion_noise(ppg, cond.low_perfusion, cond.noise)
        self._add_motion_artefact(ppg, cond, scale=0.6)
        self.gait.add_artefact(ppg, t, cond.motion, sensor="ppg", scale=0.6)
        ambient = self.rng.standard_normal(ppg.shape)  # drawn for all: see _render_ecg
        detached = np.flatnonzero(cond.detached)  # the photodiode sees ambient light only
        ppg[detached] = 0.02 * ambient[detached]
        return ppg

    def _render_acc(self, t: np.ndarray, cond: Conditions) -> np.ndarray:
        n, s = self.n, t.size
        activity = np.where(cond.fallen, 0.0, cond.activity)
        cadence = 1.5 + 0.8 * activity  # steps per second
        phase = self.stride_phase[:, None] + 2 * np.pi * cadence[:, None] * (t - self.t)[None, :]
        self.stride_phase = (self.stride_phase + 2 * np.pi * cadence * self.frame_s) % (2 * np.pi)
        bounce = activity[:, None] * (0.35 * sin32(phase) + 0.12 * sin32(2 * phase + 0.7))
        sway = activity[:, None] * 0.10 * sin32(0.5 * phase)
        acc = np.empty((n, s, 3))
        # Upright: gravity along +z of the chest sensor; lying: along +x.
        lying = cond.fallen[:, None]
        acc[:, :, 0] = np.where(lying, 0.98, 0.02) + sway
        acc[:, :, 1] = np.where(lying, 0.12, -0.05) + 0.3 * sway
        acc[:, :, 2] = np.where(lying, 0.10, 0.99) + bounce
        jitter = np.where(cond.fallen, 0.004, 0.01 + 0.05 * activity)[:, None, None]
        acc += jitter * self.rng.standard_normal((n, s, 3))
        falling = np.flatnonzero(~np.isnan(cond.fall_at))
        for i in falling:
            hit = int(np.clip(cond.fall_at[i] * ACC_FS, 4, s - 3))
            peak = 3.0 + 3.0 * min(1.0, float(cond.fall[i]))
            acc[i, hit - 4 : hit] *= 0.15  # free fall: the sensor feels almost nothing
            acc[i, hit] = [0.6 * peak, 0.3 * peak, -0.74 * peak]
            acc[i, hit + 1] = [0.25 * peak, 0.1 * peak, -0.3 * peak]
            acc[i, hit + 2 :] = [0.98, 0.12, 0.10] + 0.004 * self.rng.standard_normal(
                (s - hit - 2, 3)
            )
        return acc
