"""Synthetic physiology for a whole fleet at once: pure numpy, no Kafka, no Faust.

Owns the signal model of the simulated wearables. Every device's state lives in numpy
arrays (one row per device) so a 5,000-device fleet is rendered with a handful of array
operations per frame instead of a Python loop per device.

The model, per device:

- Beats come from a stochastic RR series: the mean follows the target heart rate (baseline,
  activity, fever, tachy/bradycardia), with a slow AR(1) component (low-frequency HRV) and
  respiratory sinus arrhythmia (RR lengthens on expiration). Atrial fibrillation draws RR
  independently (irregularly irregular); ventricular runs are fast, regular, wide beats.
- ECG is a sum of Gaussians per beat (P, Q, R, S, T as in McSharry et al.'s ECGSYN) placed on
  the beat times; P and T timing scale with sqrt(RR) (Bazett). AF beats have no P wave and
  fibrillatory f-waves ride on the baseline; ventricular beats have no P, a wide QRS and a
  discordant T. Respiration moves the baseline and the QRS amplitude.
- PPG pulses follow the SAME beats after a pulse transit time that shortens as HR rises;
  ventricular beats eject less (smaller pulse), respiration modulates baseline and amplitude.
- Accelerometer: gravity (posture) + walking cadence scaled by activity; a fall is a brief
  free fall, an impact spike of 3-6 g, then lying still.
- Sensor noise, baseline wander, motion artefacts (scaled by activity), lead-off (flat or
  saturated ECG) while the sensor is detached, battery drain.
- Device-reported 1 Hz values: HR from recent RR (as a device would compute it), SpO2,
  respiration rate and temperature approaching their targets with physiological time
  constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ECG_FS = 128
PPG_FS = 64
ACC_FS = 25
VITAL_FS = 1

# Beat kinds.
SINUS, AF_BEAT, VENTRICULAR = 0, 1, 2

# Waves per beat kind: (centre s relative to R at RR = 1 s, amplitude mV, width s, scales
# with sqrt(RR)). Sinus values follow ECGSYN's P-QRS-T proportions for lead II.
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
    ],
    dtype=np.float64,
)
# Beats this long before a window still reach into it (T wave, PPG pulse tail) and beats
# this long after it already show (P wave).
_LOOKBACK_S = 0.9
_LOOKAHEAD_S = 0.35

LEAD_OFF_RAIL_MV = 5.0


def _sin32(phase: np.ndarray) -> np.ndarray:
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


def target_heart_rate(
    baseline: np.ndarray | float,
    activity: np.ndarray | float = 0.0,
    fever: np.ndarray | float = 0.0,
    tachycardia: np.ndarray | float = 0.0,
    bradycardia: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Heart rate (bpm) the body settles to; event severities are 0 (absent) to 1."""
    hr = np.asarray(baseline, float) + 45.0 * np.asarray(activity, float)
    hr = hr + 10.0 * fever_degrees(fever)  # about 10 bpm per degree of fever
    tachy = np.asarray(tachycardia, float)
    brady = np.asarray(bradycardia, float)
    hr = np.where(tachy > 0, np.maximum(hr, 125.0 + 45.0 * tachy), hr)
    return np.where(brady > 0, np.minimum(hr, 46.0 - 14.0 * brady), hr)


def fever_degrees(severity: np.ndarray | float) -> np.ndarray:
    """Degrees above baseline temperature for a fever of this severity."""
    sev = np.asarray(severity, float)
    return np.where(sev > 0, 1.4 + 1.8 * sev, 0.0)


def target_spo2(baseline: np.ndarray | float, desaturation: np.ndarray | float) -> np.ndarray:
    """SpO2 (%) the patient settles to."""
    sev = np.asarray(desaturation, float)
    return np.asarray(baseline, float) - np.where(sev > 0, 6.0 + 14.0 * sev, 0.0)


def target_resp_rate(
    baseline: np.ndarray | float,
    activity: np.ndarray | float = 0.0,
    tachypnoea: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Breaths per minute the patient settles to."""
    rate = np.asarray(baseline, float) + 8.0 * np.asarray(activity, float)
    sev = np.asarray(tachypnoea, float)
    return np.where(sev > 0, np.maximum(rate, 25.0 + 12.0 * sev), rate)


def ventricular_rate(severity: np.ndarray | float) -> np.ndarray:
    """Rate (bpm) of a ventricular run of this severity."""
    return 140.0 + 60.0 * np.asarray(severity, float)


@dataclass
class Conditions:
    """What the scenario asks of each device during one frame (arrays of length N).

    Event fields hold the event's severity (0 = not active).
    """

    hr: np.ndarray
    spo2: np.ndarray
    resp: np.ndarray
    temp: np.ndarray
    activity: np.ndarray
    tachycardia: np.ndarray
    bradycardia: np.ndarray
    af: np.ndarray
    ventricular_run: np.ndarray
    desaturation: np.ndarray
    fever: np.ndarray
    tachypnoea: np.ndarray
    fall: np.ndarray
    fall_at: np.ndarray  # seconds into this frame of a fall's impact, nan if none
    fallen: np.ndarray  # bool: lying still after a fall
    detached: np.ndarray  # bool: sensor off the skin
    noise: np.ndarray  # sensor-noise multiplier
    motion: np.ndarray  # motion-artefact multiplier
    abrupt: np.ndarray  # bool: an event with an abrupt onset is active (no drift to targets)

    @classmethod
    def quiet(cls, n: int) -> Conditions:
        zeros = np.zeros(n)
        return cls(
            hr=np.full(n, 72.0), spo2=np.full(n, 97.0), resp=np.full(n, 14.0),
            temp=np.full(n, 36.8), activity=zeros.copy(), tachycardia=zeros.copy(),
            bradycardia=zeros.copy(), af=zeros.copy(), ventricular_run=zeros.copy(),
            desaturation=zeros.copy(), fever=zeros.copy(), tachypnoea=zeros.copy(),
            fall=zeros.copy(), fall_at=np.full(n, np.nan), fallen=np.zeros(n, bool),
            detached=np.zeros(n, bool),
            noise=np.ones(n), motion=np.ones(n), abrupt=np.zeros(n, bool),
        )  # fmt: skip


@dataclass
class Chunk:
    """One frame of every device's signals; waveform rows are devices."""

    ecg: np.ndarray  # (N, ECG_FS*F) mV
    ppg: np.ndarray  # (N, PPG_FS*F) au
    acc: np.ndarray  # (N, ACC_FS*F, 3) g
    hr: np.ndarray  # (N, F) bpm
    spo2: np.ndarray  # (N, F) %
    resp: np.ndarray  # (N, F) /min
    temp: np.ndarray  # (N, F) °C
    battery: np.ndarray  # (N, F) %
    measurable: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # skin contact


class Physiology:
    """The bodies and sensors of N devices, advanced one frame at a time."""

    def __init__(
        self,
        n: int,
        rng: np.random.Generator,
        frame_s: float = 1.0,
        battery_start: np.ndarray | None = None,
        battery_drain_per_h: np.ndarray | float = 3.0,
    ) -> None:
        if n < 1:
            raise ValueError("need at least one device")
        if frame_s < 1 or frame_s != int(frame_s):
            # 25 Hz and 128 Hz only both give whole samples on whole seconds.
            raise ValueError(f"frame length must be a whole number of seconds, got {frame_s}")
        self.n = n
        self.rng = rng
        self.frame_s = float(frame_s)
        self.t = 0.0
        self._ring = int((frame_s + _LOOKBACK_S + _LOOKAHEAD_S) * 5.5) + 4  # 330 bpm worth
        self.beat_t = np.full((n, self._ring), -1e9)
        self.beat_kind = np.zeros((n, self._ring), np.int8)
        self.beat_rr = np.ones((n, self._ring))
        self.beat_amp = np.ones((n, self._ring))
        self.next_beat = rng.uniform(0.0, 0.8, n)
        self.lf = np.zeros(n)  # AR(1) state of low-frequency HRV
        self.resp_phase = rng.uniform(0, 2 * np.pi, n)
        self.stride_phase = rng.uniform(0, 2 * np.pi, n)
        self.f_wave_hz = rng.uniform(5.0, 7.5, n)
        self.f_wave_phase = rng.uniform(0, 2 * np.pi, n)
        # Per-person constants: electrode placement and skin change amplitudes.
        self.ecg_gain = rng.uniform(0.75, 1.35, n)
        self.ppg_gain = rng.uniform(0.6, 1.4, n)
        self.wander = np.zeros(n)
        self.hr_now: np.ndarray | None = None
        self.spo2_now: np.ndarray | None = None
        self.resp_now: np.ndarray | None = None
        self.temp_now: np.ndarray | None = None
        self.battery = (
            rng.uniform(60, 100, n) if battery_start is None else np.asarray(battery_start, float)
        )
        self.battery_drain_per_h = np.broadcast_to(np.asarray(battery_drain_per_h, float), (n,))
        self.saturates = rng.random(n) < 0.5  # lead-off shows as rail or as flat line
        self.abrupt = np.zeros(n, bool)

    # -- state ------------------------------------------------------------------------------

    def _approach(
        self, now: np.ndarray | None, target: np.ndarray, tau_s: float, abrupt: np.ndarray
    ) -> np.ndarray:
        if now is None:
            return target.astype(float).copy()
        drifted = now + (target - now) * (1.0 - np.exp(-self.frame_s / tau_s))
        return np.where(abrupt, target, drifted)

    def _schedule_beats(self, cond: Conditions, hr_mean: np.ndarray, until: float) -> None:
        resp_hz = self.resp_now / 60.0
        t_start = self.t
        while True:
            due = np.flatnonzero(self.next_beat < until)
            if due.size == 0:
                return
            t_beat = self.next_beat[due]
            af = cond.af[due] > 0
            vrun = cond.ventricular_run[due] > 0
            kind = np.where(vrun, VENTRICULAR, np.where(af, AF_BEAT, SINUS)).astype(np.int8)
            mean_rr = 60.0 / hr_mean[due]
            # Sinus: slow AR(1) drift plus RSA in phase with breathing.
            self.lf[due] = 0.96 * self.lf[due] + 0.28 * 0.035 * self.rng.standard_normal(due.size)
            phase = self.resp_phase[due] + 2 * np.pi * resp_hz[due] * (t_beat - t_start)
            rsa = 0.04 * np.sin(phase)
            rr = mean_rr * (1 + self.lf[due] + rsa + 0.008 * self.rng.standard_normal(due.size))
            # AF: the AV node passes fibrillation at random, the ventricular rate runs fast.
            rr_af = (60.0 / (hr_mean[due] * 1.15)) * np.exp(
                0.22 * self.rng.standard_normal(due.size)
            )
            rr_v = (60.0 / ventricular_rate(cond.ventricular_run[due])) * (
                1 + 0.015 * self.rng.standard_normal(due.size)
            )
            rr = np.where(kind == VENTRICULAR, rr_v, np.where(kind == AF_BEAT, rr_af, rr))
            rr = np.clip(rr, 0.2, 2.5)
            prev_rr = self.beat_rr[due, -1]
            # Stroke volume follows filling time (Frank-Starling); ventricular beats eject poorly.
            amp = np.clip(prev_rr / mean_rr, 0.5, 1.3) ** 0.7
            amp = np.where(kind == VENTRICULAR, 0.45 * amp, amp)
            for arr, value in (
                (self.beat_t, t_beat), (self.beat_kind, kind),
                (self.beat_rr, rr), (self.beat_amp, amp),
            ):  # fmt: skip
                arr[due, :-1] = arr[due, 1:]
                arr[due, -1] = value
            self.next_beat[due] = t_beat + rr

    # -- rendering --------------------------------------------------------------------------

    def _recent_beats(self, t: np.ndarray) -> int:
        # Only the newest beats reach into this frame; rendering the whole ring would
        # multiply the work for nothing.
        reach = (self.beat_t > t[0] - _LOOKBACK_S).sum(axis=1)
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
        ppg += 0.15 * resp_wave + 0.01 * cond.noise[:, None] * self.rng.standard_normal(ppg.shape)
        self._add_motion_artefact(ppg, cond, scale=0.6)
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
        bounce = activity[:, None] * (0.35 * _sin32(phase) + 0.12 * _sin32(2 * phase + 0.7))
        sway = activity[:, None] * 0.10 * _sin32(0.5 * phase)
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

    # -- one frame --------------------------------------------------------------------------

    def step(self, cond: Conditions) -> Chunk:
        """Render the next frame for every device and advance time by one frame."""
        frame, t0 = self.frame_s, self.t
        hr_target = target_heart_rate(
            cond.hr, cond.activity, cond.fever, cond.tachycardia, cond.bradycardia
        )
        abrupt = cond.abrupt
        self.hr_now = self._approach(self.hr_now, hr_target, 6.0, abrupt)
        self.resp_now = self._approach(
            self.resp_now,
            target_resp_rate(cond.resp, cond.activity, cond.tachypnoea),
            8.0,
            abrupt,
        )
        self.spo2_now = self._approach(
            self.spo2_now, target_spo2(cond.spo2, cond.desaturation), 15.0, abrupt
        )
        self.temp_now = self._approach(
            self.temp_now, cond.temp + fever_degrees(cond.fever), 60.0, abrupt
        )
        started = abrupt & ~self.abrupt
        if started.any():
            # An abrupt onset changes the very next beat interval, not the one after it.
            next_beat = self.beat_t[started, -1] + 60.0 / self.hr_now[started]
            self.next_beat[started] = np.maximum(next_beat, t0 + _LOOKAHEAD_S)
        self.abrupt = abrupt.copy()
        self._schedule_beats(cond, self.hr_now, until=t0 + frame + _LOOKAHEAD_S)

        t_ecg = t0 + np.arange(int(ECG_FS * frame)) / ECG_FS
        t_ppg = t0 + np.arange(int(PPG_FS * frame)) / PPG_FS
        t_acc = t0 + np.arange(int(ACC_FS * frame)) / ACC_FS
        resp_hz = (self.resp_now / 60.0)[:, None]

        # Inspiration is quicker than expiration: skew the breathing cycle.
        def breathing(t: np.ndarray) -> np.ndarray:
            ph = self.resp_phase[:, None] + 2 * np.pi * resp_hz * (t - t0)[None, :]
            return _sin32(ph + 0.35 * _sin32(ph))

        breathing_ecg = breathing(t_ecg)
        # The PPG clock ticks on every other ECG sample: same times, same breathing.
        breathing_ppg = breathing_ecg[:, :: ECG_FS // PPG_FS]
        ecg = self._render_ecg(t_ecg, cond, breathing_ecg)
        ppg = self._render_ppg(t_ppg, cond, breathing_ppg)
        acc = self._render_acc(t_acc, cond)
        self.resp_phase = (self.resp_phase + 2 * np.pi * resp_hz[:, 0] * frame) % (2 * np.pi)

        vitals_n = int(frame * VITAL_FS)
        recent = self.beat_t > t0 + frame - 6.0
        recent &= self.beat_t <= t0 + frame
        rr_sum = np.where(recent, self.beat_rr, 0.0).sum(axis=1)
        beats = recent.sum(axis=1)
        hr_reported = np.where(beats > 0, 60.0 * beats / np.maximum(rr_sum, 1e-6), self.hr_now)

        def per_second(value: np.ndarray, sd: float) -> np.ndarray:
            return value[:, None] + sd * self.rng.standard_normal((self.n, vitals_n))

        self.battery = np.maximum(0.0, self.battery - self.battery_drain_per_h * frame / 3600.0)
        self.t = t0 + frame
        return Chunk(
            ecg=ecg,
            ppg=ppg,
            acc=acc,
            hr=np.round(per_second(hr_reported, 0.5)),
            spo2=np.clip(np.round(per_second(self.spo2_now, 0.4)), 50, 100),
            resp=np.round(per_second(self.resp_now, 0.3)),
            temp=np.round(per_second(self.temp_now, 0.03), 1),
            battery=np.round(np.repeat(self.battery[:, None], vitals_n, axis=1), 1),
            measurable=~cond.detached,
        )
