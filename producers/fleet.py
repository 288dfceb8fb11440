"""The simulation engine: a scenario's patients wearing devices, frame by frame.

Owns turning a :class:`~producers.scenario.Scenario` into enrolments, frames (as orjson
bytes keyed by device id) and ground-truth labels, plus the network's imperfections
(clock jitter, late, duplicated and lost frames) and real-time pacing. The signals come
from :mod:`producers.physiology`; Kafka from :mod:`producers.publisher`; grouping the
frames into gateway batches from :mod:`producers.gateways`.

Labels carry each event's category (clinical, technical, artefact, confound:
:data:`~producers.scenario.EVENT_CATEGORY`) so an alarm evaluation can tell a missed
alert from a false one.

Same scenario, seed and start time give the same bytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import orjson

from producers.frames import FrameEncoder
from producers.gateways import gateways_for, messages_of
from producers.physiology import Conditions, Physiology
from producers.scenario import EVENT_CATEGORY, EVENT_KINDS, Baseline, Patient, Scenario
from producers.waveforms import ACC_FS, ECG_FS, PPG_FS
from stream.records import Enrolment

_SEVERITY_KINDS = (
    "tachycardia", "bradycardia", "af", "ventricular_run", "desaturation", "fever", "tachypnoea",
    "walking", "running", "loose_electrode", "low_perfusion", "sensor_noise",
    "premature_beats", "bigeminy",
)  # fmt: skip


# Usual activity from which a patient is labelled as walking about all the time.
AMBULATORY_ACTIVITY = 0.3
# A ward's artefact multiplier (noise or motion) from which every device is labelled noisy.
NOISY_WARD = 2.0


@dataclass
class Tick:
    """What one frame period of the fleet puts on the wire."""

    messages: list[tuple[str, bytes]]  # (device id, frame bytes) in send order
    frames: int  # distinct frames among the messages
    samples: int  # waveform and vital samples in those frames (an acc triple is one)
    t: float  # frame time (epoch) of this period's start
    sent_seq: list[tuple[str, int]] = field(default_factory=list)  # (device, seq) in send order


@dataclass
class _Faults:
    late: float
    late_by: tuple[int, int]
    duplicate: float
    dropout: float
    jitter_s: float


class Fleet:
    """N devices on the patients of a scenario; extra devices get generated quiet patients."""

    def __init__(
        self,
        scenario: Scenario,
        devices: int,
        *,
        seed: int = 0,
        start: float,
        frame_s: float = 1.0,
        faults: bool = True,
    ) -> None:
        if devices < 1:
            raise ValueError("need at least one device")
        self.scenario = scenario
        self.start = float(start)
        self.frame_s = float(frame_s)
        self.rng = np.random.default_rng(seed)
        self.patients = list(scenario.patients[:devices]) + _quiet_patients(
            scenario, devices - len(scenario.patients), self.rng
        )
        self.device_ids = _device_ids(scenario, self.patients)
        n = len(self.patients)
        self.n = n
        lo, hi = scenario.devices.battery_start
        self.body = Physiology(
            n,
            self.rng,
            frame_s=frame_s,
            battery_start=self.rng.uniform(lo, hi, n),
            battery_drain_per_h=scenario.devices.battery_drain_per_h,
        )
        f = scenario.faults
        self.faults = _Faults(
            late=f.late_rate if faults else 0.0,
            late_by=f.late_by_frames,
            duplicate=f.duplicate_rate if faults else 0.0,
            dropout=f.dropout_rate if faults else 0.0,
            jitter_s=f.clock_jitter_ms / 1000.0,
        )
        self._reliable = np.array([p.reliable_link for p in self.patients], bool)
        self.seq = np.zeros(n, np.int64)
        self.k = 0  # frame periods rendered so far
        self._held: list[tuple[int, str, bytes, int]] = []  # (release tick, device, bytes, seq)
        self._encoder = FrameEncoder(self.device_ids)
        self._build_schedule()

    # -- scenario -> per-frame conditions -------------------------------------------------

    def _build_schedule(self) -> None:
        rows = [(i, e) for i, p in enumerate(self.patients) for e in p.events]
        self._ev_dev = np.array([i for i, _ in rows], np.int64)
        self._ev_kind = np.array([EVENT_KINDS.index(e.event) for _, e in rows], np.int64)
        self._ev_start = np.array([e.start for _, e in rows], float)
        self._ev_end = np.array([e.end for _, e in rows], float)
        self._ev_sev = np.array([e.severity for _, e in rows], float)
        self._ev_abrupt = np.array([e.onset == "abrupt" for _, e in rows], bool)
        periods = [(i, a) for i, p in enumerate(self.patients) for a in p.activity_periods]
        self._act_dev = np.array([i for i, _ in periods], np.int64)
        self._act = np.array([(a.start, a.end, a.level) for _, a in periods], float).reshape(-1, 3)
        base = [p.baseline for p in self.patients]
        self._baseline = {
            key: np.array([getattr(b, key) for b in base], float) for key in Baseline.model_fields
        }
        self._activity = np.array([p.activity for p in self.patients], float)

    def _severity(self, kind: str, active: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n)
        mask = active & (self._ev_kind == EVENT_KINDS.index(kind))
        np.maximum.at(out, self._ev_dev[mask], self._ev_sev[mask])
        return out

    def conditions(self, t_rel: float) -> Conditions:
        """What every device's wearer is going through from ``t_rel`` for one frame."""
        active = (self._ev_start <= t_rel) & (t_rel < self._ev_end)
        activity = self._activity.copy()
        if len(self._act):
            on = (self._act[:, 0] <= t_rel) & (t_rel < self._act[:, 1])
            activity[self._act_dev[on]] = self._act[on, 2]
        is_fall = self._ev_kind == EVENT_KINDS.index("fall")
        impact = is_fall & (self._ev_start >= t_rel) & (self._ev_start < t_rel + self.frame_s)
        lying = is_fall & (self._ev_start < t_rel) & (t_rel < self._ev_end)
        fall_at = np.full(self.n, np.nan)
        fall_at[self._ev_dev[impact]] = self._ev_start[impact] - t_rel
        fallen = np.zeros(self.n, bool)
        fallen[self._ev_dev[lying]] = True
        detached = self._severity("sensor_detached", active) > 0
        noise = np.full(self.n, self.scenario.artefacts.noise)
        severities = {kind: self._severity(kind, active) for kind in _SEVERITY_KINDS}
        # Walking and running set the wearer's activity while they last (and a fall ends
        # them): the usual activity level steps aside so it is not counted twice.
        falling = fallen | ~np.isnan(fall_at)
        for kind in ("walking", "running"):
            severities[kind][falling] = 0.0
        exercising = (severities["walking"] > 0) | (severities["running"] > 0)
        activity[exercising] = 0.0
        abrupt = np.zeros(self.n, bool)
        abrupt[self._ev_dev[active & self._ev_abrupt]] = True
        return Conditions(
            hr=self._baseline["hr"],
            spo2=self._baseline["spo2"],
            resp=self._baseline["resp"],
            temp=self._baseline["temp"],
            activity=np.where(fallen, 0.0, activity),
            fall=self._severity("fall", impact | lying),
            fall_at=fall_at,
            fallen=fallen,
            detached=detached,
            noise=noise,
            motion=np.full(self.n, self.scenario.artefacts.motion),
            abrupt=abrupt,
            **severities,
        )

    def silent(self, t_rel: float) -> np.ndarray:
        """Devices that send nothing now: switched off, out of range or flat battery."""
        active = (self._ev_start <= t_rel) & (t_rel < self._ev_end)
        return (self._severity("device_silent", active) > 0) | (self.body.battery <= 0)

    # -- records ----------------------------------------------------------------------------

    def enrolments(self) -> list[tuple[str, bytes]]:
        """One enrolment per device, to send before any frame."""
        out = []
        for device_id, patient in zip(self.device_ids, self.patients, strict=True):
            record = Enrolment(
                device_id=device_id,
                patient_id=patient.id,
                ward=patient.ward if "ward" in patient.model_fields_set else self.scenario.ward,
                profile=patient.profile,
                t=self.start,
            )
            out.append((device_id, record.to_json()))
        return out

    def labels(self, duration_s: float) -> list[dict]:
        """Ground truth: every scheduled event that starts within the simulated span, with
        its category (clinical, technical, artefact or confound).

        Standing artefacts are labelled too, over the whole span: a patient whose usual
        activity is at least :data:`AMBULATORY_ACTIVITY` is ``walking`` about, and on a ward
        whose sensor noise or motion artefact is :data:`NOISY_WARD` times the usual or more,
        every device has ``sensor_noise``. What they explain is technical (poor signal);
        a physiological alarm during them is still a false alarm.
        """
        out = []
        end = self.start + duration_s
        noisy = max(self.scenario.artefacts.noise, self.scenario.artefacts.motion) >= NOISY_WARD
        for device_id, patient in zip(self.device_ids, self.patients, strict=True):
            spans = [
                (e.event, self.start + e.start, self.start + min(e.end, duration_s), e.severity)
                for e in patient.events
                if e.start < duration_s
            ]
            if patient.activity >= AMBULATORY_ACTIVITY:
                spans.append(("walking", self.start, end, patient.activity))
            if noisy:
                spans.append(("sensor_noise", self.start, end, 1.0))
            out += [
                {
                    "device_id": device_id,
                    "patient_id": patient.id,
                    "event": kind,
                    "start": start,
                    "end": stop,
                    "severity": severity,
                    "category": EVENT_CATEGORY[kind],
                }
                for kind, start, stop, severity in spans
            ]
        return out

    def true_vitals(self) -> dict[str, np.ndarray]:
        """The patients' true vital signs at the end of the last rendered frame, per device
        (in ``device_ids`` order): heart rate (bpm), SpO2 (%), respiration rate (/min) and
        temperature at the sensor (°C), before any sensor noise or rounding. Ground truth
        for evaluations (when did a fever that comes on gradually cross an alarm limit?);
        never sent. Empty before the first frame."""
        body = self.body
        truth = {"hr": body.hr_now, "spo2": body.spo2_now, "resp": body.resp_now,
                 "temp": body.temp_now}  # fmt: skip
        return {name: np.array(values) for name, values in truth.items() if values is not None}

    # -- frames -----------------------------------------------------------------------------

    def tick(self) -> Tick:
        """Render the next frame period of every device and serialize what goes out."""
        t_rel = self.k * self.frame_s
        cond = self.conditions(t_rel)
        chunk = self.body.step(cond)
        silent = self.silent(t_rel)
        rng = self.rng
        n = self.n
        jitter = np.round(self.faults.jitter_s * rng.standard_normal(n), 4)
        dropped = rng.random(n) < self.faults.dropout
        late = rng.random(n) < self.faults.late
        duplicated = rng.random(n) < self.faults.duplicate

        # Three decimals (1 µV, 1 mg) is finer than the sensors resolve.
        rounded = replace(
            chunk,
            ecg=np.round(chunk.ecg, 3),
            ppg=np.round(chunk.ppg, 3),
            acc=np.round(chunk.acc, 3),
        )
        measurable = chunk.measurable.tolist()
        vitals_per_signal = int(chunk.resp.shape[1])
        per_frame = int((ECG_FS + PPG_FS + ACC_FS) * self.frame_s)
        t_base = self.start + t_rel

        alive = np.flatnonzero(~silent)
        alive_seqs = self.seq[alive]
        self.seq[alive] += 1
        # A frame lost over the air leaves a gap in seq (never on a reliable link: the
        # draws are the same, so the flag leaves every other device's faults as they were).
        reaches = ~(dropped & ~self._reliable)[alive]
        sending: list[int] = alive[reaches].tolist()  # in device order
        seqs: list[int] = alive_seqs[reaches].tolist()
        t0s = [round(t_base + offset, 4) for offset in jitter[sending].tolist()]
        payloads = self._encoder.encode(rounded, sending, seqs, t0s)

        messages: list[tuple[str, bytes]] = []
        sent_seq: list[tuple[str, int]] = []
        samples = 0
        for i, seq, payload in zip(sending, seqs, payloads, strict=True):
            samples += per_frame + (5 if measurable[i] else 3) * vitals_per_signal
            device_id = self.device_ids[i]
            if late[i] and not dropped[i]:
                lo, hi = self.faults.late_by
                # Drawn on a reliable link too (where the frame would have reached the
                # air), for the same reason.
                release = self.k + int(rng.integers(lo, hi + 1))
                if not self._reliable[i]:
                    self._held.append((release, device_id, payload, seq))
                    continue
            messages.append((device_id, payload))
            sent_seq.append((device_id, seq))
            if duplicated[i]:
                messages.append((device_id, payload))
                sent_seq.append((device_id, seq))
        frames = len(sending)
        self.k += 1
        due = [h for h in self._held if h[0] <= self.k - 1]
        self._held = [h for h in self._held if h[0] > self.k - 1]
        for _, device_id, payload, seq in due:
            messages.append((device_id, payload))
            sent_seq.append((device_id, seq))
        return Tick(messages, frames, samples, t_base, sent_seq)

    def drain(self) -> list[tuple[str, bytes]]:
        """Frames still held back as late: released at the end so none is lost."""
        held, self._held = self._held, []
        return [(device_id, payload) for _, device_id, payload, _ in held]


def _quiet_patients(scenario: Scenario, count: int, rng: np.random.Generator) -> list[Patient]:
    taken = {p.id for p in scenario.patients}
    out: list[Patient] = []
    i = 0
    while len(out) < count:
        i += 1
        pid = f"sim-{scenario.name}-{i:05d}"
        if pid in taken:
            continue
        baseline = Baseline(
            hr=float(np.clip(rng.normal(72, 8), 55, 95).round()),
            spo2=float(rng.integers(95, 100)),
            resp=float(rng.integers(12, 18)),
            temp=round(float(rng.uniform(36.4, 37.1)), 1),
        )
        activity = float(rng.uniform(0, 0.15))
        out.append(Patient(id=pid, ward=scenario.ward, baseline=baseline, activity=activity))
    return out


def _device_ids(scenario: Scenario, patients: list[Patient]) -> list[str]:
    taken = {p.device_id for p in patients if p.device_id}
    width = max(4, len(str(len(patients))))
    ids, counter = [], 0
    for patient in patients:
        if patient.device_id:
            ids.append(patient.device_id)
            continue
        while True:
            counter += 1
            candidate = f"{scenario.devices.id_prefix}{counter:0{width}d}"
            if candidate not in taken:
                break
        ids.append(candidate)
    return ids


# -- running a fleet ------------------------------------------------------------------------


@dataclass
class RunStats:
    devices: int = 0
    frames: int = 0
    samples: int = 0
    messages: int = 0
    behind_s: float = 0.0  # worst lag behind the pacing schedule
    seconds: float = 0.0


def paced(
    periods: int, frame_s: float, speed: float, stop: Callable[[], bool] | None = None
) -> Iterator[tuple[int, float]]:
    """Yield frame-period indices on schedule (``speed`` x real time; 0 = flat out).

    Yields ``(k, lag_s)``; the schedule is absolute, so a slow period is caught up on
    rather than pushing every later frame back.
    """
    launch = time.monotonic()
    for k in range(periods):
        if stop is not None and stop():
            return
        lag = 0.0
        if speed > 0:
            due = launch + k * frame_s / speed
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                lag = -wait
        yield k, lag


def run_fleet(
    fleet: Fleet,
    send: Callable[[str, str, bytes], None],
    *,
    frames_topic: str,
    enrolments_topic: str,
    duration_s: float,
    speed: float = 1.0,
    stop: Callable[[], bool] | None = None,
    on_tick: Callable[[Tick], None] | None = None,
    per_message: int = 1,
) -> RunStats:
    """Send enrolments, then ``duration_s`` of frames through ``send(topic, key, value)``.

    ``per_message`` 1 sends each frame as its own message keyed by its device; more sends
    gateway batches of that many devices keyed by gateway (:mod:`producers.gateways`).
    Enrolments are always keyed by device. ``RunStats.messages`` counts frames messages.
    """
    gateways = gateways_for(fleet.device_ids, per_message)
    stats = RunStats(devices=fleet.n)
    began = time.perf_counter()
    for device_id, payload in fleet.enrolments():
        send(enrolments_topic, device_id, payload)
    periods = math.ceil(duration_s / fleet.frame_s)
    for _, lag in paced(periods, fleet.frame_s, speed, stop):
        tick = fleet.tick()
        messages = messages_of(tick.messages, gateways)
        for key, value in messages:
            send(frames_topic, key, value)
        stats.frames += tick.frames
        stats.samples += tick.samples
        stats.messages += len(messages)
        stats.behind_s = max(stats.behind_s, lag)
        if on_tick is not None:
            on_tick(tick)
    for key, value in messages_of(fleet.drain(), gateways):
        send(frames_topic, key, value)
        stats.messages += 1
    stats.seconds = time.perf_counter() - began
    return stats


def write_labels(labels: list[dict], path: Path) -> None:
    """JSON lines, one labelled event per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(label) + b"\n" for label in labels))
