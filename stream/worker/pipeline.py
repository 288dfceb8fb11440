"""The worker's per-batch logic as plain Python: frames in, alerts and time series out.

Owns the order of the stream core, with no Faust import (``stream/app.py`` is the glue):

    ingest → DeviceBuffers.append → windows whose hop is due → window features
    → scoring (one ONNX call per model for the whole batch) → rules.evaluate
    → AlertTracker.update → alerts + line protocol

Raw samples live in local ring buffers (:mod:`stream.signal.buffers`), never in Faust tables.
Only small state goes to the :class:`StateStore` the caller provides (Faust tables in the
worker, dicts in tests): enrolment contexts, alert-tracker state, and when each device
was last heard from.

Device silence is judged on the *ward clock*: the newest frame time this worker has seen,
advanced by wall time since it arrived. A device is silent when the ward clock is
``signal_loss_s`` past its last frame. This works live and for replays at any speed.

Example::

    pipeline = Pipeline(settings, Scorer.from_registry(settings))
    output = pipeline.process([RawRecord(key, value, partition, offset), ...])
    output.alerts, output.lines, output.deadletters
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from stream.alerts import rules
from stream.alerts.lifecycle import AlertTracker
from stream.config import Settings
from stream.records import (
    SIGNALS,
    Alert,
    DeadLetter,
    Frame,
    Observations,
    PatientContext,
    Profile,
)
from stream.scoring.scorer import Score, Scorer
from stream.signal.buffers import DeviceBuffers
from stream.signal.features import SignalWindow, analyze_window, analyze_windows, warm_up
from stream.sinks.influx import (
    alert_line,
    feature_lines,
    news2_line,
    patient_tags,
    raw_lines,
    score_line,
    vitals_lines,
)
from stream.worker.ingest import Ingest, Position, RawRecord, reason_kind

log = logging.getLogger(__name__)

# Alert-tracker state is persisted when it changes, and otherwise at most this often
# (its last-window time moves every hop; writing it each hop would flood the changelog).
_STATE_REFRESH_S = 10.0


@dataclass
class StateStore:
    """The small, durable per-device state; Faust tables in the worker.

    Values are JSON-ready (bytes or dicts) so any mapping can hold them.
    """

    contexts: MutableMapping[str, bytes] = field(default_factory=dict)
    trackers: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    last_seen: MutableMapping[str, float] = field(default_factory=dict)


class _Contexts(MutableMapping[str, PatientContext]):
    """PatientContext view over a mapping of JSON bytes (what a Faust table holds)."""

    def __init__(self, raw: MutableMapping[str, bytes]) -> None:
        self.raw = raw
        self._cache: dict[str, tuple[bytes, PatientContext]] = {}

    def __getitem__(self, device_id: str) -> PatientContext:
        data = self.raw[device_id]
        cached = self._cache.get(device_id)
        if cached is None or cached[0] != data:
            cached = (data, PatientContext.model_validate_json(data))
            self._cache[device_id] = cached
        return cached[1]

    def get(self, device_id: str, default: Any = None) -> Any:
        return self[device_id] if device_id in self.raw else default

    def __setitem__(self, device_id: str, context: PatientContext) -> None:
        self.raw[device_id] = context.to_json()

    def __delitem__(self, device_id: str) -> None:
        del self.raw[device_id]

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.raw


@dataclass
class Output:
    """What one batch produced; the caller publishes, writes, saves its state, then commits.

    ``state`` is the alert-tracker state this batch reached. It goes to the durable store
    (:meth:`Pipeline.save`) only once the alerts and lines are durable: saved earlier, a
    worker dying in between would come back believing it had raised alerts nobody got,
    and replaying the batch would not raise them again.

    ``held`` are the records whose frames wait in the reorder buffer (in no output yet:
    not to be committed), ``unheld`` the held records whose frames are in this output.
    """

    alerts: list[Alert] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, DeadLetter]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[Position] = field(default_factory=list)
    unheld: list[Position] = field(default_factory=list)


@dataclass(frozen=True)
class WindowResult:
    """One analysed window: what ``vitalstream analyze`` prints per window."""

    device_id: str
    t_start: float
    t_end: float
    features: dict[str, float]
    beats_s: list[float]
    scores: list[Score]
    alerts: list[Alert]


def live_scores(
    scores: Sequence[Score], explain: Callable[[Score], dict[str, dict]] | None = None
) -> list[rules.ModelScores]:
    """The rules see live models only: shadow scores are written, never alerted on.

    ``explain`` (``Scorer.explain`` for the window) attaches why a class reached its
    threshold, which a model-sourced alert then carries.
    """
    return [
        rules.ModelScores(
            s.model,
            s.version,
            s.probabilities,
            s.thresholds,
            explain(s) if explain is not None and _reaches_threshold(s) else {},
        )
        for s in scores
        if not s.shadow
    ]


def _reaches_threshold(score: Score) -> bool:
    """Whether any class is at its card threshold: the only case an explanation has
    content, checked here because building the model input again costs ~1 ms a window."""
    return any(
        p >= score.thresholds[name]
        for name, p in score.probabilities.items()
        if name in score.thresholds
    )


class Pipeline:
    """Stateful per-worker processing; call :meth:`process` per batch, :meth:`tick` on a timer."""

    def __init__(
        self,
        settings: Settings,
        scorer: Scorer | None,
        store: StateStore | None = None,
        worker: str = "worker",
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        warm_up()  # compiled signal kernels, before the first batch waits for them
        self.store = store or StateStore()
        self.worker = worker
        self.ingest = Ingest(settings)
        self.ingest.contexts = _Contexts(self.store.contexts)  # type: ignore[assignment]
        self.buffers: dict[str, DeviceBuffers] = {}
        self.trackers: dict[str, AlertTracker] = {}
        self._persisted: dict[str, tuple[str, float]] = {}
        self._unsaved: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, Observations] = {}
        self._newest_t: float | None = None
        self._newest_at = 0.0

    # -- enrolments ---------------------------------------------------------------------
    def enrol(self, record: RawRecord, now: float | None = None) -> Output:
        outcome = self.ingest.enrol(record, now)
        output = Output()
        if isinstance(outcome, DeadLetter):
            output.deadletters.append((record.key, outcome))
        return output

    # -- frames -------------------------------------------------------------------------
    def process(self, records: Sequence[RawRecord], now: float | None = None) -> Output:
        """One batch of frame records; never raises on bad input."""
        started = time.perf_counter()
        live = now is None
        now = time.time() if now is None else now
        result = self.ingest.frames(records, now)
        output = Output(
            deadletters=[(_key_of(r, d), d) for r, d in _pair(records, result)],
            held=result.held,
            unheld=self.ingest.take_unheld(),
        )
        windows, scoring_s = self._accept(result.frames, now, output)
        self._emit(output, None if live else now)
        reasons = Counter(reason_kind(d.reason) for _, d in output.deadletters)
        output.metrics = {
            "frames": len(result.frames),
            "windows": windows,
            "duplicates": result.duplicates,
            "deadletter_reasons": dict(reasons),
            "alerts": [(a.kind, a.priority, a.event) for a in output.alerts],
            "batch_s": time.perf_counter() - started,
            "scoring_s": scoring_s,
            "newest_frame_t": self._newest_t,
        }
        output.state = self._take_unsaved()
        return output

    def _accept(
        self, frames: list[tuple[Frame, PatientContext]], now: float, output: Output
    ) -> tuple[int, float]:
        touched: dict[str, PatientContext] = {}
        due: list[tuple[str, SignalWindow]] = []
        for frame, context in frames:
            tags = patient_tags(context.ward, context.patient, frame.device_id)
            output.lines += vitals_lines(frame, tags)
            if self.settings.stream.raw_retention:
                output.lines += raw_lines(frame, tags)
            if frame.observations is not None:
                self._observe(frame.device_id, frame.observations)
            buffers = self._buffer(frame)
            # Cut this device's due windows now, frame by frame: a catch-up batch (after an
            # outage or a restart) holds many seconds per device, and asking only once the
            # whole batch is buffered would skip all but its last windows — and their alerts.
            due += [(frame.device_id, buffers.window(float(end))) for end in buffers.due_ends()]
            end = frame.t0 + frame.duration()
            self.store.last_seen[frame.device_id] = end
            if self._newest_t is None or end > self._newest_t:
                self._newest_t, self._newest_at = end, now
            touched[frame.device_id] = context
        scoring_s = self._windows(due, touched, output)
        return len(due), scoring_s

    def _buffer(self, frame: Frame) -> DeviceBuffers:
        buffers = self.buffers.get(frame.device_id)
        if buffers is None:
            stream = self.settings.stream
            buffers = self.buffers[frame.device_id] = DeviceBuffers(
                window_s=stream.window_s, hop_s=stream.hop_s, lateness_s=stream.lateness_s
            )
        for name in SIGNALS:
            block = getattr(frame.signals, name)
            if block is not None:
                buffers.append(name, frame.t0, block.fs, np.asarray(block.samples, dtype=float))
        return buffers

    def _observe(self, device_id: str, observations: Observations) -> None:
        # Manual observations arrive sparsely; each new one updates only what it carries.
        previous = self.observations.get(device_id)
        merged = previous.model_dump() if previous else {}
        merged.update(observations.model_dump(exclude_none=True))
        self.observations[device_id] = Observations.model_validate(merged)

    def _windows(
        self,
        due: list[tuple[str, SignalWindow]],
        contexts: dict[str, PatientContext],
        output: Output,
    ) -> float:
        if not due:
            return 0.0
        analyses = analyze_windows([window for _, window in due])
        features = [a.features for a in analyses]
        scoring_started = time.perf_counter()
        scores = (
            self.scorer.score([w for _, w in due], features, [a.r_peaks for a in analyses])
            if self.scorer is not None
            else [[] for _ in due]
        )
        scoring_s = time.perf_counter() - scoring_started
        for (device_id, window), feats, window_scores in zip(due, features, scores, strict=True):
            context = contexts[device_id]
            alerts, lines = self.evaluate_window(context, window, feats, window_scores)
            output.alerts += alerts
            output.lines += lines
        return scoring_s

    def evaluate_window(
        self,
        context: PatientContext,
        window: SignalWindow,
        features: dict[str, float],
        scores: list[Score],
    ) -> tuple[list[Alert], list[str]]:
        """Rules and lifecycle for one analysed window: its alerts (not yet stamped
        ``emitted_at``; the caller does that and adds their lines when it emits them) and
        its time-series lines."""
        device_id = context.device_id
        t = window.t_end
        tags = patient_tags(context.ward, context.patient, device_id)
        lines = feature_lines(features, tags, t)
        for score in scores:
            text = score_line(
                score.model, score.version, score.shadow, score.probabilities, tags, t
            )
            if text is not None:
                lines.append(text)
        tracker = self.tracker(device_id)
        if tracker.seen(t):
            return [], lines  # replay of a window already judged
        observations = self.observations.get(device_id)
        explain = (
            (lambda score: self.scorer.explain(score, window, features)) if self.scorer else None
        )
        conditions, news2 = rules.evaluate(
            context, t, features, live_scores(scores, explain), observations,
            self.settings.rules, fall=tracker.fall,
        )  # fmt: skip
        if news2 is not None:
            text = news2_line(
                news2.aggregate, news2.subscores, news2.partial, str(news2.response), tags, t
            )
            if text is not None:
                lines.append(text)
        alerts = tracker.update(context, t, conditions, window=(window.t_start, t))
        self._persist(device_id, tracker)
        return alerts, lines

    # -- state --------------------------------------------------------------------------
    def tracker(self, device_id: str) -> AlertTracker:
        tracker = self.trackers.get(device_id)
        if tracker is None:
            saved = self.store.trackers.get(device_id)
            tracker = AlertTracker(self.settings.rules)
            if saved:
                try:
                    tracker = AlertTracker.from_dict(saved, self.settings.rules)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("discarding unreadable alert state of a device: %s", exc)
            self.trackers[device_id] = tracker
        return tracker

    def _persist(self, device_id: str, tracker: AlertTracker) -> None:
        state = tracker.to_dict()
        shape = orjson.dumps({k: v for k, v in state.items() if k != "last_t"}).decode()
        last = self._persisted.get(device_id)
        last_t = state["last_t"] or 0.0
        if last is None or last[0] != shape or last_t - last[1] >= _STATE_REFRESH_S:
            self._unsaved[device_id] = state
            self._persisted[device_id] = (shape, last_t)

    def _take_unsaved(self) -> dict[str, dict[str, Any]]:
        unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    # -- timer --------------------------------------------------------------------------
    def ward_clock(self, now: float) -> float | None:
        """Newest frame time seen, advanced by wall time since (``None`` before any frame)."""
        if self._newest_t is None:
            return None
        return self._newest_t + max(now - self._newest_at, 0.0)

    def tick(self, now: float | None = None) -> Output:
        """Periodic work: frames held past the reorder bound, and silent devices."""
        live = now is None
        now = time.time() if now is None else now
        output = Output()
        released = self.ingest.release_expired(now)
        output.unheld = self.ingest.take_unheld()
        if released:
            frames = [(f, self.ingest.context(f.device_id)) for f in released]
            self._accept(frames, now, output)
        clock = self.ward_clock(now)
        if clock is not None:
            self._check_silence(clock, output)
        self._emit(output, None if live else now)
        output.state = self._take_unsaved()
        return output

    def _check_silence(self, clock: float, output: Output) -> None:
        timeout = self.settings.stream.signal_loss_s
        last_seen = dict(self.store.last_seen)
        for device_id, condition in rules.silent_devices(last_seen, clock, timeout).items():
            self.buffers.pop(device_id, None)  # its samples are too old to window now
            tracker = self.tracker(device_id)
            context = self.ingest.context(device_id)
            output.alerts += tracker.update_silence(context, clock, condition)
            self._persist(device_id, tracker)

    def _emit(self, output: Output, at: float | None) -> None:
        """Stamp the output's alerts with when they leave the worker, and add their lines.

        Live (``at`` None) that is now, when the batch is done, not when it began: near
        saturation a batch takes a good part of a second, which ``emitted_at`` and the
        ``latency_s`` Grafana shows must not leave out. Replays and tests pass their clock.
        """
        if output.alerts:
            at = time.time() if at is None else at
            output.alerts = [a.model_copy(update={"emitted_at": at}) for a in output.alerts]
        output.lines += [text for a in output.alerts if (text := alert_line(a)) is not None]

    def save(self, output: Output) -> None:
        """Store the tracker state an output reached; call once it is durable."""
        for device_id, state in output.state.items():
            self.store.trackers[device_id] = state

    def versions(self) -> dict[str, str]:
        return self.scorer.versions() if self.scorer is not None else {}


def _pair(records: Sequence[RawRecord], result: Any) -> list[tuple[RawRecord | None, DeadLetter]]:
    by_position = {(r.partition, r.offset): r for r in records}
    return [(by_position.get((d.partition, d.offset)), d) for d in result.deadletters]


def _key_of(record: RawRecord | None, letter: DeadLetter) -> bytes | None:
    return record.key if record is not None else None


# -- offline analysis ----------------------------------------------------------------------
OFFLINE_CONTEXT = PatientContext(
    device_id="offline", patient="offline", ward="offline", profile=Profile()
)


def recording_windows(
    samples: np.ndarray, signal: str, fs: float, window_s: float, hop_s: float
) -> list[SignalWindow]:
    """Sliding windows over one recording (time 0 = first sample), as the worker's buffers
    would cut them: ``window_s`` long, one every ``hop_s``, the first once a window is full."""
    span, hop = round(window_s * fs), max(round(hop_s * fs), 1)
    windows = []
    for end in range(span, len(samples) + 1, hop):
        chunk = samples[end - span : end]
        windows.append(
            SignalWindow(
                t_start=(end - span) / fs,
                t_end=end / fs,
                **{signal: chunk, f"{signal}_fs": fs},
            )
        )
    return windows


def analyze_recording(
    settings: Settings,
    scorer: Scorer | None,
    samples: np.ndarray,
    signal: str,
    fs: float,
) -> list[WindowResult]:
    """Every window of a recording through the worker's own features, scoring, rules and
    alert lifecycle (``vitalstream analyze``)."""
    pipeline = Pipeline(settings, scorer)
    windows = recording_windows(
        samples, signal, fs, settings.stream.window_s, settings.stream.hop_s
    )
    analyses = [analyze_window(w) for w in windows]
    features = [a.features for a in analyses]
    scores = scorer.score(windows, features) if scorer is not None else [[] for _ in windows]
    results = []
    for window, analysis, window_scores in zip(windows, analyses, scores, strict=True):
        judged, _ = pipeline.evaluate_window(
            OFFLINE_CONTEXT, window, analysis.features, window_scores
        )
        alerts = [a.model_copy(update={"emitted_at": window.t_end}) for a in judged]
        beats = analysis.pulses_s if signal == "ppg" else analysis.beats_s
        results.append(
            WindowResult(
                device_id=OFFLINE_CONTEXT.device_id,
                t_start=window.t_start,
                t_end=window.t_end,
                features=analysis.features,
                beats_s=[float(b) for b in beats],
                scores=window_scores,
                alerts=alerts,
            )
        )
    return results
