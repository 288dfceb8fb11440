"""Sensor artefacts that mislead without movement: loose electrode, low perfusion, noise.

Owns the ``loose_electrode``, ``low_perfusion`` and ``sensor_noise`` events of
:class:`~producers.physiology.Physiology` (walking and running are
:mod:`producers.gait`'s). None of them changes the patient: the device's heart rate,
respiration and temperature stay truthful, only what one sensor shows is degraded.

- **Loose electrode** (ECG only; PPG, SpO2 and device vitals untouched): the electrode
  rocks on a drying or lifting gel pad. *Pops*: abrupt offsets of 0.5-3 mV with a spike
  at the edge, decaying with the AC-coupled front end's time constant (0.15-0.4 s: a
  0.4-1 Hz high-pass, as monitoring-mode ECG filters), 0.1-0.5 per second; large
  baseline wander (an AR(1) random walk of ~1 mV s.d. at full severity, sub-Hz);
  brief contact losses, flat or pinned at the amplifier rail, 0.15-1.2 s long and at
  least 4 s apart, so no 10 s window is more than ~25 % pinned (a full lead-off is 30 %
  pinned or flat: :mod:`stream.signal.quality`); a pop as contact returns; and 2.5x the
  sensor noise. Electrode-motion artefact of this kind is the "em" noise of the MIT-BIH
  Noise Stress Test Database (Moody, Muldrow & Mark 1984), the hardest for QRS detectors.
- **Low perfusion** (cold or vasoconstricted skin): the pulsatile PPG (and its
  respiratory modulation) shrinks to 0.25 x at the lightest and 0.10 x at full severity
  (perfusion index falling from a typical 1-5 % to ~0.2-0.5 %), the front end's gain
  brings up more noise (1.6x at full severity), so the relative noise is 6-15x. The
  oximeter's SpO2 gets noisier (s.d. 0.6-1.2 %, so ±2-3 % swings) and now and then dips
  by 1.5-4 % for 3-8 s, while the patient's true saturation is unchanged (oximeter bias
  and imprecision grow at low perfusion: Louie et al. 2018, Anesth Analg 126:1500).
- **Sensor noise**: a noisy but stable patient; the sensor-noise multiplier on the ECG
  and PPG is 1 + 4 x severity (5x at full severity).

Every random number comes from the body's auxiliary stream, and only for devices with
one of these events, so a ward without them renders as before.
"""

from __future__ import annotations

import numpy as np

from producers.waveforms import LEAD_OFF_RAIL_MV

CONTACT_LOSS_S = (0.15, 1.2)
CONTACT_GAP_S = 4.0  # at least this long between two losses of contact
SPO2_DIP_S = (3.0, 8.0)


def sensor_noise_gain(severity: np.ndarray) -> np.ndarray:
    """Multiplier of the sensor noise for a ``sensor_noise`` event (1 when absent)."""
    return 1.0 + 4.0 * np.clip(severity, 0.0, 1.0)


def perfusion_factor(severity: np.ndarray) -> np.ndarray:
    """Scale of the pulsatile PPG under low perfusion: 0.25 (light) to 0.10 (full)."""
    sev = np.clip(severity, 0.0, 1.0)
    return np.where(sev > 0, 0.25 - 0.15 * sev, 1.0)


class SensorArtefacts:
    """State of the loose-electrode and low-perfusion artefacts of N devices (pops still
    decaying, contact losses under way, SpO2 dips), drawing from its own generator."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pop_tau = rng.uniform(0.15, 0.4, n)  # s: the front end's high-pass
        self.pop_level = np.zeros(n)  # mV of pops still decaying at the frame's start
        self.wander = np.zeros(n)  # mV: the loose electrode's baseline
        self.off_left = np.zeros(n)  # s of contact loss still to come
        self.off_value = np.zeros(n)  # mV shown while off: a rail or flat
        self.off_gap = np.zeros(n)  # s before contact may be lost again
        self.repop = np.zeros(n, bool)  # contact came back on the last frame's edge
        self.dip_left = np.zeros(n)  # s of SpO2 dip still to come
        self.dip_depth = np.zeros(n)
        self.dip_len = np.ones(n)

    # -- ECG --------------------------------------------------------------------------------

    def loose_electrode(
        self, ecg: np.ndarray, fs: float, severity: np.ndarray, noise: np.ndarray
    ) -> None:
        """Add pops, wander, contact losses and noise to the ECG rows of loose electrodes."""
        for i in np.flatnonzero(severity > 0):
            ecg[i] = self._loose_row(ecg[i], i, fs, float(min(severity[i], 1.0)), noise[i])

    def _loose_row(
        self, row: np.ndarray, i: int, fs: float, sev: float, noise: float
    ) -> np.ndarray:
        rng, size = self.rng, row.size
        frame_s = size / fs
        t = np.arange(size) / fs
        # Baseline wander: an AR(1) step per frame, eased in across it.
        nxt = 0.9 * self.wander[i] + 0.45 * sev * rng.standard_normal()
        ease = 3 * (t / frame_s) ** 2 - 2 * (t / frame_s) ** 3
        out = row + self.wander[i] + (nxt - self.wander[i]) * ease
        self.wander[i] = nxt
        out += 0.03 * noise * rng.standard_normal(size)  # 2.5x the 0.012 mV sensor noise
        # Contact losses: when they start and end (sample indices), carried across frames.
        off = np.zeros(size, bool)
        count = rng.poisson((0.1 + 0.4 * sev) * frame_s)  # pops per frame
        pops = [int(k) for k in np.sort(rng.integers(0, size, count))]
        if self.repop[i]:
            pops.insert(0, 0)
            self.repop[i] = False
        pos = 0
        while pos < size:
            if self.off_left[i] > 0:
                k = min(size - pos, int(np.ceil(self.off_left[i] * fs)))
                off[pos : pos + k] = True
                self.off_left[i] -= k / fs
                pos += k
                if self.off_left[i] <= 1e-9:
                    self.off_left[i] = 0.0
                    self.off_gap[i] = CONTACT_GAP_S
                    if pos < size:
                        pops.append(pos)  # contact back: the electrode recharges
                    else:
                        self.repop[i] = True
            elif self.off_gap[i] > 0:
                k = min(size - pos, int(np.ceil(self.off_gap[i] * fs)))
                self.off_gap[i] = max(0.0, self.off_gap[i] - k / fs)
                pos += k
            else:
                wait = int(np.ceil(rng.exponential(1.0 / (0.05 + 0.15 * sev)) * fs))
                if pos + wait >= size:
                    break
                pos += wait
                self.off_left[i] = rng.uniform(*CONTACT_LOSS_S)
                self.off_value[i] = LEAD_OFF_RAIL_MV if rng.random() < 0.5 else 0.0
        # Pops: a step with a spike on its edge, decaying exponentially; plus what is left
        # of the last frame's pops.
        tau = self.pop_tau[i]
        level = self.pop_level[i] * np.exp(-t / tau)
        for k in pops:
            amp = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0 + 2.0 * sev)
            level[k:] += amp * np.exp(-(t[k:] - t[k]) / tau)
            level[k] += 0.8 * amp  # the spike on the edge
        self.pop_level[i] = level[-1] * np.exp(-1.0 / (fs * tau))
        out += level
        # The amplifier cannot show more than its rails.
        np.clip(out, -LEAD_OFF_RAIL_MV, LEAD_OFF_RAIL_MV, out=out)
        out[off] = self.off_value[i] + 0.002 * rng.standard_normal(int(off.sum()))
        return out

    # -- PPG and oximetry -------------------------------------------------------------------

    def weaken_ppg(self, ppg: np.ndarray, resp_wave: np.ndarray, severity: np.ndarray) -> None:
        """Shrink the pulsatile PPG and its breathing swing (0.15 au, added next by the
        caller for every device) under low perfusion, in place."""
        rows = np.flatnonzero(severity > 0)
        if rows.size == 0:
            return
        factor = perfusion_factor(severity[rows])[:, None]
        ppg[rows] = ppg[rows] * factor - 0.15 * (1.0 - factor) * resp_wave[rows]

    def perfusion_noise(self, ppg: np.ndarray, severity: np.ndarray, noise: np.ndarray) -> None:
        """The front end's higher gain under low perfusion: 0.6 x severity more noise."""
        rows = np.flatnonzero(severity > 0)
        if rows.size == 0:
            return
        sd = (0.006 * np.clip(severity[rows], 0, 1) * noise[rows])[:, None]
        ppg[rows] += sd * self.rng.standard_normal((rows.size, ppg.shape[1]))

    def oximeter(self, spo2: np.ndarray, severity: np.ndarray) -> np.ndarray:
        """Per-second SpO2 readings (unrounded) as a poorly perfused oximeter reports them:
        noisier, with occasional brief dips; rows without low perfusion are returned as is."""
        rows = np.flatnonzero(severity > 0)
        if rows.size == 0:
            return spo2
        out = spo2.copy()
        sev = np.clip(severity[rows], 0.0, 1.0)
        seconds = spo2.shape[1]
        out[rows] += (0.6 + 0.6 * sev)[:, None] * self.rng.standard_normal((rows.size, seconds))
        for j, i in enumerate(rows):
            for s in range(seconds):
                if self.dip_left[i] <= 0 and self.rng.random() < 0.02 + 0.03 * sev[j]:
                    self.dip_len[i] = self.dip_left[i] = self.rng.uniform(*SPO2_DIP_S)
                    self.dip_depth[i] = self.rng.uniform(1.5, 1.5 + 2.5 * sev[j])
                if self.dip_left[i] > 0:
                    # Down and back up: a triangle over the dip's length.
                    done = 1.0 - self.dip_left[i] / self.dip_len[i]
                    out[i, s] -= self.dip_depth[i] * (1.0 - abs(2.0 * done - 1.0))
                    self.dip_left[i] -= 1.0
        return out
