"""Synthetic physiology for a whole fleet at once: pure numpy, no Kafka, no Faust.

Owns the body model of the simulated wearables and its vitals courses. Every device's
state lives in numpy arrays (one row per device) so a 5,000-device fleet is rendered with
a handful of array operations per frame instead of a Python loop per device. The
waveforms drawn on these beats (ECG, PPG, accelerometer, sensor artefacts) are
:mod:`producers.waveforms`'.

The model, per device:

- Vital signs settle towards targets set by the baseline, activity and the active events
  (:func:`target_heart_rate`, :func:`target_spo2`, :func:`target_resp_rate`,
  :func:`fever_degrees`) with physiological time constants, or at once for an abrupt onset.
- Beats come from a stochastic RR series: the mean follows the target heart rate (baseline,
  activity, fever, tachy/bradycardia), with a slow AR(1) component (low-frequency HRV) and
  respiratory sinus arrhythmia (RR lengthens on expiration). Atrial fibrillation draws RR
  independently (irregularly irregular); ventricular runs are fast, regular, wide beats.
  Premature beats and bigeminy (the confound kinds) replace single sinus beats by PVCs
  and PACs with their pauses (:mod:`producers.ectopy`).
- Walking and running (artefact kinds) raise heart rate and breathing modestly, below
  the alarm limits (:mod:`producers.gait`); a loose electrode, low perfusion and sensor
  noise change only what the sensors show (:mod:`producers.artefacts`).
- Device-reported 1 Hz values: HR from recent RR as a device computes it (the mean rate
  over the beats of the last 6 s; during ectopy over the last 12 RR intervals, as bedside
  monitors average, so premature beats and bigeminy read as their normal average rate),
  SpO2 (noisier under low perfusion), respiration rate and temperature approaching their
  targets with physiological time constants; battery drain.

Random numbers: the existing kinds draw from the generator the body is given, in a fixed
order, so a seed's data stays what it was; the artefact and confound kinds draw from a
second generator derived from the same seed (:func:`auxiliary_generator`), and only while
one of them is active.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from producers.artefacts import SensorArtefacts, sensor_noise_gain
from producers.ectopy import Ectopy
from producers.gait import Gait
from producers.waveforms import (
    ACC_FS,
    AF_BEAT,
    ECG_FS,
    LOOKAHEAD_S,
    LOOKBACK_S,
    PAC,
    PPG_FS,
    PVC,
    SINUS,
    VENTRICULAR,
    Waveforms,
    sin32,
)

VITAL_FS = 1
MONITOR_RR_COUNT = 12  # RR intervals a monitor averages (e.g. 12-16; AAMI EC13 asks makers to say)
# The kinds of the beat ring (``beat_kind``), by name; their shapes are waveforms' _WAVES.
BEAT_KINDS = {"sinus": SINUS, "af": AF_BEAT, "ventricular": VENTRICULAR, "pvc": PVC, "pac": PAC}
_AUX_STREAM = 0xA27E  # spawn key of the artefact/confound generator


def auxiliary_generator(rng: np.random.Generator) -> np.random.Generator:
    """A second generator derived from ``rng``'s seed without drawing from ``rng``.

    The artefact and confound kinds draw from it, so adding them to a ward leaves the
    main stream (and every existing kind's data for that seed) as it was.
    """
    seq = rng.bit_generator.seed_seq
    if isinstance(seq, np.random.SeedSequence):
        child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _AUX_STREAM))
        return np.random.default_rng(child)
    return rng.spawn(1)[0]


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
    # Artefact kinds (the signal misleads) and confound kinds (physiology, not an alarm).
    walking: np.ndarray
    running: np.ndarray
    loose_electrode: np.ndarray
    low_perfusion: np.ndarray
    sensor_noise: np.ndarray
    premature_beats: np.ndarray
    bigeminy: np.ndarray

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
            walking=zeros.copy(), running=zeros.copy(), loose_electrode=zeros.copy(),
            low_perfusion=zeros.copy(), sensor_noise=zeros.copy(),
            premature_beats=zeros.copy(), bigeminy=zeros.copy(),
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


class Physiology(Waveforms):
    """The bodies and sensors of N devices, advanced one frame at a time (the sensors'
    waveforms are drawn by :class:`~producers.waveforms.Waveforms`)."""

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
        self._ring = int((frame_s + LOOKBACK_S + LOOKAHEAD_S) * 5.5) + 4  # 330 bpm worth
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
        # The artefact and confound kinds: their own random stream (see the module doc).
        aux = auxiliary_generator(rng)
        self.gait = Gait(n, aux)
        self.artefacts = SensorArtefacts(n, aux)
        self.ectopy = Ectopy(n, aux)

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
        ectopy = bool(
            cond.premature_beats.any() or cond.bigeminy.any() or self.ectopy.pending.any()
        )
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
            prev_rr = self.beat_rr[due, -1]
            ectopic = ectopy and self.ectopy.active(
                due, cond.premature_beats[due], cond.bigeminy[due]
            )
            if np.any(ectopic):
                e = np.flatnonzero(ectopic)
                kind[e], rr[e] = self.ectopy.beats(
                    due[e], kind[e], rr[e], prev_rr[e],
                    cond.premature_beats[due[e]], cond.bigeminy[due[e]],
                )  # fmt: skip
            rr = np.clip(rr, 0.2, 2.5)
            # Stroke volume follows filling time (Frank-Starling); ventricular beats eject poorly.
            amp = np.clip(prev_rr / mean_rr, 0.5, 1.3) ** 0.7
            amp = np.where((kind == VENTRICULAR) | (kind == PVC), 0.45 * amp, amp)
            for arr, value in (
                (self.beat_t, t_beat), (self.beat_kind, kind),
                (self.beat_rr, rr), (self.beat_amp, amp),
            ):  # fmt: skip
                arr[due, :-1] = arr[due, 1:]
                arr[due, -1] = value
            self.next_beat[due] = t_beat + rr

    def _monitor_rate(self, rows: np.ndarray, t_end: float) -> np.ndarray:
        """Heart rate over the last 12 RR intervals, as bedside monitors average it (an
        even count: a bigeminal rhythm's short and long intervals cancel exactly)."""
        out = np.empty(rows.size)
        for j, i in enumerate(rows):
            times = self.beat_t[i]
            times = times[(times > -1e8) & (times <= t_end)][-(MONITOR_RR_COUNT + 1) :]
            span = times[-1] - times[0] if times.size > 1 else 0.0
            out[j] = 60.0 * (times.size - 1) / span if span > 0 else self.hr_now[i]
        return out

    # -- one frame --------------------------------------------------------------------------

    def step(self, cond: Conditions) -> Chunk:
        """Render the next frame for every device and advance time by one frame."""
        frame, t0 = self.frame_s, self.t
        abrupt = cond.abrupt
        upright = ~cond.fallen & np.isnan(cond.fall_at)  # a fall interrupts any gait
        self.gait.update(cond.walking * upright, cond.running * upright, t0)
        hr_target = target_heart_rate(
            cond.hr, cond.activity, cond.fever, cond.tachycardia, cond.bradycardia
        )
        exercise_hr = self.gait.heart_rate_target(cond.hr, hr_target, frame, abrupt)
        if exercise_hr is not None:
            hr_target = exercise_hr
        self.hr_now = self._approach(self.hr_now, hr_target, 6.0, abrupt)
        resp_target = target_resp_rate(cond.resp, cond.activity, cond.tachypnoea)
        exercise_resp = self.gait.resp_rise(cond.resp, resp_target)
        if exercise_resp is not None:
            resp_target = resp_target + exercise_resp
        self.resp_now = self._approach(self.resp_now, resp_target, 8.0, abrupt)
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
            self.next_beat[started] = np.maximum(next_beat, t0 + LOOKAHEAD_S)
            self.ectopy.cancel(started)
        self.abrupt = abrupt.copy()
        self._schedule_beats(cond, self.hr_now, until=t0 + frame + LOOKAHEAD_S)

        t_ecg = t0 + np.arange(int(ECG_FS * frame)) / ECG_FS
        t_ppg = t0 + np.arange(int(PPG_FS * frame)) / PPG_FS
        t_acc = t0 + np.arange(int(ACC_FS * frame)) / ACC_FS
        resp_hz = (self.resp_now / 60.0)[:, None]

        # Inspiration is quicker than expiration: skew the breathing cycle.
        def breathing(t: np.ndarray) -> np.ndarray:
            ph = self.resp_phase[:, None] + 2 * np.pi * resp_hz * (t - t0)[None, :]
            return sin32(ph + 0.35 * sin32(ph))

        breathing_ecg = breathing(t_ecg)
        # The PPG clock ticks on every other ECG sample: same times, same breathing.
        breathing_ppg = breathing_ecg[:, :: ECG_FS // PPG_FS]
        sensors = cond
        if cond.sensor_noise.any():
            sensors = replace(cond, noise=cond.noise * sensor_noise_gain(cond.sensor_noise))
        ecg = self._render_ecg(t_ecg, sensors, breathing_ecg)
        ppg = self._render_ppg(t_ppg, sensors, breathing_ppg)
        acc = self._render_acc(t_acc, cond)
        self.gait.render_acc(acc, t_acc)
        self.gait.advance(frame)
        self.resp_phase = (self.resp_phase + 2 * np.pi * resp_hz[:, 0] * frame) % (2 * np.pi)

        vitals_n = int(frame * VITAL_FS)
        recent = self.beat_t > t0 + frame - 6.0
        recent &= self.beat_t <= t0 + frame
        rr_sum = np.where(recent, self.beat_rr, 0.0).sum(axis=1)
        beats = recent.sum(axis=1)
        hr_reported = np.where(beats > 0, 60.0 * beats / np.maximum(rr_sum, 1e-6), self.hr_now)
        ectopic = np.flatnonzero((cond.premature_beats > 0) | (cond.bigeminy > 0))
        if ectopic.size:
            hr_reported[ectopic] = self._monitor_rate(ectopic, t0 + frame)

        def per_second(value: np.ndarray, sd: float) -> np.ndarray:
            return value[:, None] + sd * self.rng.standard_normal((self.n, vitals_n))

        self.battery = np.maximum(0.0, self.battery - self.battery_drain_per_h * frame / 3600.0)
        self.t = t0 + frame
        hr = np.round(per_second(hr_reported, 0.5))
        # The oximeter reads the true saturation, less well under low perfusion.
        spo2 = self.artefacts.oximeter(per_second(self.spo2_now, 0.4), cond.low_perfusion)
        return Chunk(
            ecg=ecg,
            ppg=ppg,
            acc=acc,
            hr=hr,
            spo2=np.clip(np.round(spo2), 50, 100),
            resp=np.round(per_second(self.resp_now, 0.3)),
            temp=np.round(per_second(self.temp_now, 0.03), 1),
            battery=np.round(np.repeat(self.battery[:, None], vitals_n, axis=1), 1),
            measurable=~cond.detached,
        )
