"""The worker's per-batch logic as plain Python: frames in, alerts and time series out.

Owns the order of the stream core, with no Faust import (:mod:`stream.worker.app` is the
glue):

    ingest → FleetBuffers.write (a round of frames) → windows whose hop is due
    → SignalState.push (each device's beat and pulse detectors and frame statistics, on
      across frames) → SignalState.analyze (the due windows' features, as columns)
    → scoring (one ONNX call per model for the whole batch)
    → screen.screen (windows that provably raise nothing: their lines and bookkeeping only)
    → rules.evaluate → AlertTracker.update (the others) → alerts + line protocol

Raw samples live in local ring buffers (:mod:`stream.signal.buffers`), never in Faust
tables. Only small state goes to the :class:`~stream.worker.state.StateStore` the caller
provides (Faust tables in the worker, dicts in tests): enrolment contexts, alert-tracker
state, and when each device was last heard from. Offline analysis of a recording with
this same code is :mod:`stream.worker.analyze`.

Device silence is judged on the clock of the device's partition: the newest frame time
this worker has seen on that partition, advanced by wall time since it arrived. A device
is silent when its clock is ``signal_loss_s`` past its last frame. A backlog whose
partitions are consumed unevenly does not make the devices of the lagging ones look
silent. The price: once a partition has no frames its clock advances by wall time only,
so in a replay faster than real time a device alone on its partition is found silent
after ``signal_loss_s`` of wall time (live, the two are the same).

Example::

    pipeline = Pipeline(settings, Scorer.from_registry(settings))
    output = pipeline.process([RawRecord(key, value, partition, offset), ...])
    output.alerts, output.lines, output.deadletters, output.metrics
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import orjson

from stream.alerts import rules
from stream.alerts.lifecycle import AlertTracker
from stream.alerts.screen import (
    ModelColumns,
    News2,
    RuleRows,
    ScreenMismatch,
    feature_matrix,
    observation_row,
    screen,
)
from stream.config import Settings
from stream.records import (
    WAVEFORMS,
    Alert,
    DeadLetter,
    Observations,
    PatientContext,
)
from stream.scoring.scorer import Score, Scorer
from stream.signal.features import warm_up
from stream.signal.fleet_buffers import FleetBuffers, WindowReads
from stream.signal.fleet_buffers import warm_up as fleet_warm_up
from stream.signal.frames import FrameBatch
from stream.signal.signal_frames import SignalFrames
from stream.signal.streaming import SignalState
from stream.signal.window import FEATURE_NAMES, SignalWindow, WindowAnalysis
from stream.sinks.measurements import (
    PatientSeries,
    alert_line,
    brief_window_lines,
    frame_lines,
    patient_series,
    series_news2_line,
    window_lines,
)
from stream.worker.decode import decode_records
from stream.worker.ingest import Ingest, IngestResult, Position, RawRecord, reason_kind
from stream.worker.state import ContextView, StateStore

log = logging.getLogger(__name__)

# Alert-tracker state is persisted when it changes, and otherwise at most this often
# (its last-window time moves every hop; writing it each hop would flood the changelog).
_STATE_REFRESH_S = 10.0


@dataclass(frozen=True)
class BatchMetrics:
    """What one batch of frames did, for the worker's metrics (:mod:`stream.worker.metrics`)."""

    frames: int
    windows: int
    duplicates: int
    deadletter_reasons: dict[str, int]
    alerts: list[tuple[str, str, str]]  # (kind, priority, event) of each alert event
    batch_s: float
    scoring_s: float
    newest_frame_t: float | None


# The stream core's stages, in order, for :class:`StageTimes`.
STAGES = (
    "decode", "buffer", "signal_state", "features", "model_inputs", "inference", "rules",
    "lines",
)  # fmt: skip


@dataclass
class StageTimes:
    """Wall seconds the pipeline spent in each of :data:`STAGES` since it was created (or
    :meth:`reset`): ``decode`` (validation, pseudonymization, reorder buffer),
    ``buffer`` (ring buffers, cutting due windows, last-seen clocks), ``signal_state``
    (each frame's ECG, PPG and accelerometer advancing the device's beat and pulse
    detectors and per-frame statistics), ``features`` (the due windows read from them),
    ``model_inputs`` (resampling, normalization, batching for the models), ``inference``
    (onnxruntime), ``rules`` (rules, NEWS2, alert lifecycle, tracker state) and ``lines``
    (line protocol of vitals, features, scores, NEWS2 and alerts). The pipeline is single
    threaded and onnxruntime runs on one thread (``registry.session_options``), so wall
    time is CPU time. ``vitalstream bench analysis`` reads it.

    >>> times = StageTimes()
    >>> started = times.add("rules", time.perf_counter())
    >>> sorted(times.seconds) == sorted(STAGES), times.seconds["rules"] >= 0
    (True, True)
    """

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, since: float) -> float:
        """Charge the time since ``since`` (a ``perf_counter`` reading) to ``stage``;
        returns now, the next stage's start."""
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)


class Ingested(NamedTuple):
    """A batch through ingest and not processed yet (:meth:`Pipeline.decode`)."""

    records: Sequence[RawRecord]
    result: IngestResult
    now: float
    live: bool  # no clock given: alerts are stamped with the wall clock
    started: float  # perf_counter at the start of the batch


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
    metrics: BatchMetrics | None = None  # batches of frames only (not enrolments, ticks)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[Position] = field(default_factory=list)
    unheld: list[Position] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)  # devices whose context changed
    window_ends: dict[str, float] = field(default_factory=dict)  # each device's newest


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
        self.ingest = Ingest(settings, ContextView(self.store.contexts))
        stream = settings.stream
        fleet_warm_up()  # likewise the ring buffers' kernels
        # Every device's ring buffers, as arrays (a mapping of the devices held to their rows).
        self.buffers = FleetBuffers(
            window_s=stream.window_s, hop_s=stream.hop_s, lateness_s=stream.lateness_s
        )
        # Each device's signal state (beat and pulse detectors, per-frame statistics) runs
        # on across frames; a window reads its features from it as it stands at the window's
        # end.
        self.signal = SignalState()
        self.ecg_beats = self.signal.beats
        self._advanced: set[str] = set()
        self._pulsed: set[str] = set()
        self.trackers: dict[str, AlertTracker] = {}
        self._rule_rows = RuleRows(settings.rules)  # each device's limits, for the screen
        self.verify_screen = False  # tests: judge every screened window in full as well
        self._persisted: dict[str, tuple[str, float]] = {}
        self._features_written: dict[str, float] = {}  # each device's last full window end
        self._unsaved: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, Observations] = {}
        self._newest_t: float | None = None
        self._newest_at = 0.0
        # Silence is judged per partition (see _silence_clocks): partition → (newest frame
        # end, when it arrived), and each device's partition as its records say.
        self._clocks: dict[int, tuple[float, float]] = {}
        self._partition_of: dict[str, int] = {}
        # Since the worker last took them: devices whose frames came in on another
        # partition than before (device → the partition they left, for its stale
        # snapshot's tombstone), and devices first seen or seen moved (→ their partition,
        # for the device directory). See "Gateways, partitions and moves" in
        # docs/architecture.md.
        self._moved_from: dict[str, int] = {}
        self._claims: dict[str, int] = {}
        self._restored_alerts: list[bytes] = []  # take_restored_alerts
        self.stages = StageTimes()

    # -- enrolments ---------------------------------------------------------------------
    def enrol(self, record: RawRecord, now: float | None = None) -> Output:
        outcome = self.ingest.enrol(record, now)
        output = Output()
        if isinstance(outcome, DeadLetter):
            output.deadletters.append((record.key, outcome))
        else:
            output.enrolled.append(outcome.device_id)
        return output

    # -- frames -------------------------------------------------------------------------
    def process(self, records: Sequence[RawRecord], now: float | None = None) -> Output:
        """One batch of frame records; never raises on bad input."""
        return self.finish(self.decode(records, now))

    def decode(self, records: Sequence[RawRecord], now: float | None = None) -> Ingested:
        """The first half of :meth:`process`: the batch through ingest. Between the two
        halves the worker may restore devices that arrive here from another partition
        (:meth:`arrivals`, :meth:`adopt`) before any of their frames is processed."""
        started = time.perf_counter()
        live = now is None
        now = time.time() if now is None else now
        result = self.ingest.frames(records, now)
        self.stages.add("decode", started)
        return Ingested(records, result, now, live, started)

    def finish(self, ingested: Ingested) -> Output:
        """The second half of :meth:`process`: the decoded batch's frames processed."""
        records, result, now, live, started = ingested
        output = Output(
            deadletters=[(_key_of(r, d), d) for r, d in _pair(records, result)],
            held=result.held,
            unheld=self.ingest.take_unheld(),
        )
        self._note_partitions(result.batch)
        windows, scoring_s = self._accept(result.batch, result.contexts, now, output)
        self._emit(output, None if live else now)
        reasons = Counter(reason_kind(d.reason) for _, d in output.deadletters)
        output.metrics = BatchMetrics(
            frames=len(result.batch),
            windows=windows,
            duplicates=result.duplicates,
            deadletter_reasons=dict(reasons),
            alerts=[(a.kind, a.priority, a.event) for a in output.alerts],
            batch_s=time.perf_counter() - started,
            scoring_s=scoring_s,
            newest_frame_t=self._newest_t,
        )
        output.state = self._take_unsaved()
        return output

    def _accept(
        self,
        batch: FrameBatch,
        contexts: Sequence[PatientContext],
        now: float,
        output: Output,
    ) -> tuple[int, float]:
        stages = self.stages
        started = time.perf_counter()
        # Every frame's lines come before any window's: build them in one call.
        output.lines += frame_lines(batch, contexts, raw=self.settings.stream.raw_retention)
        started = stages.add("lines", started)
        devices = batch.device_ids
        touched = dict(zip(devices, contexts, strict=True))
        for row, observations in sorted(batch.observations.items()):
            self._observe(devices[row], observations)
        # A batch may hold several frames of a device (a catch-up after an outage): its
        # k-th frames form round k. Each round's ECG advances the detectors in one call,
        # and the windows a round's frames made due take the beats decided by then.
        rounds = _rounds(devices)
        ends = batch.ends.tolist()
        # The last frame of a device in the batch sets when it was last heard from.
        self.store.last_seen.update(zip(devices, ends, strict=True))
        if ends:
            newest = max(ends)
            if self._newest_t is None or newest > self._newest_t:
                self._newest_t, self._newest_at = newest, now
        # Each frame's device is on the partition of the record it came in (a gateway
        # batch's partition is the gateway's); each partition's clock is its newest frame.
        partition_of = self._partition_of
        clocks = self._clocks
        for device_id, (partition, _), end in zip(devices, batch.positions, ends, strict=True):
            partition_of[device_id] = partition
            if end > clocks.get(partition, (end - 1.0,))[0]:
                clocks[partition] = (end, now)
        stages.add("buffer", started)
        windows = 0
        scoring_s = 0.0
        for round_rows in rounds:
            # Round by round, so a catch-up batch (after an outage or a restart: many
            # seconds per device) gets all its windows — cut once the whole batch is
            # buffered, all but its last would be skipped, and their alerts with them.
            # Each round's windows are judged before the next round is read: a catch-up
            # batch (tens of rounds) then holds one round's windows at a time, not all.
            started = time.perf_counter()
            (ecg, ppg, acc), due, reads = self._buffer(
                batch if round_rows is None else batch.take(round_rows)
            )
            started = stages.add("buffer", started)
            self.signal.push(ecg, ppg, acc)
            self._advanced.update(ecg.devices)
            self._pulsed.update(ppg.devices)
            started = stages.add("signal_state", started)
            analyses = self.signal.analyze(due, reads)
            stages.add("features", started)
            # The windows' ECG as one array's rows spares the scorer stacking it.
            scoring_s += self._windows(due, analyses, touched, output, reads.grids.get("ecg"))
            windows += len(due)
        return windows, scoring_s

    def _buffer(
        self, batch: FrameBatch
    ) -> tuple[tuple[SignalFrames, ...], list[tuple[str, SignalWindow]], WindowReads]:
        """One round's frames (each device at most once) into the fleet's buffers; returns
        each waveform's frames for the signal state (in WAVEFORMS order; the batch's
        samples, not copies), the windows the round made due, in frame order, each
        device's oldest first, and the arrays those windows are views of."""
        devices = batch.device_ids
        blocks = batch.blocks
        buffers = self.buffers
        buffers.write(devices, batch.t0, blocks)
        waveforms = tuple(
            SignalFrames.from_blocks(blocks[name], devices, batch.t0)
            if name in blocks
            else _NO_FRAMES
            for name in WAVEFORMS
        )
        slots = buffers.slots_of(devices)
        which, ends = buffers.due(slots)
        reads = buffers.read(slots[which], ends, _WINDOW_WAVEFORMS)
        return (
            waveforms,
            [(devices[i], window) for i, window in zip(which.tolist(), reads.windows, strict=True)],
            reads,
        )

    def _observe(self, device_id: str, observations: Observations) -> None:
        # Manual observations arrive sparsely; each new one updates only what it carries.
        previous = self.observations.get(device_id)
        merged = previous.model_dump() if previous else {}
        merged.update(observations.model_dump(exclude_none=True))
        self.observations[device_id] = Observations.model_validate(merged)

    def _windows(
        self,
        due: list[tuple[str, SignalWindow]],
        analyses: list[WindowAnalysis],
        contexts: dict[str, PatientContext],
        output: Output,
        ecg_grid: np.ndarray | None = None,
    ) -> float:
        if not due:
            return 0.0
        # A device's windows come oldest first: the last one stays.
        output.window_ends.update((device_id, window.t_end) for device_id, window in due)
        features = [a.features for a in analyses]
        scoring_started = time.perf_counter()
        inference_before = self.scorer.stats.seconds if self.scorer is not None else 0.0
        scores = (
            self.scorer.score(
                [w for _, w in due],
                features,
                [a.r_peaks for a in analyses],
                devices=[device_id for device_id, _ in due],
                ecg_grid=ecg_grid,
            )
            if self.scorer is not None
            else [[] for _ in due]
        )
        scoring_s = time.perf_counter() - scoring_started
        inference_s = (self.scorer.stats.seconds if self.scorer is not None else 0.0) - (
            inference_before
        )
        self.stages.seconds["inference"] += inference_s
        self.stages.seconds["model_inputs"] += scoring_s - inference_s
        # The batch's quiet windows, found as arrays; only the others run the full rules.
        started = time.perf_counter()
        matrix = feature_matrix(features)
        screened = screen(
            matrix,
            self._rule_rows.matrix([contexts[device_id] for device_id, _ in due]),
            ModelColumns.of(scores, self.settings.rules.model_outputs),
            np.array([observation_row(self.observations.get(d)) for d, _ in due], dtype=float),
        )
        quiet = screened.quiet.tolist()
        ecg_good = screened.ecg_good.tolist()
        news2 = screened.news2.results()
        self.stages.add("rules", started)
        # Each window's lines, in window order; None for a quiet window that writes only
        # its quality and vitals (the write budget's usual case), whose lines are built
        # for all of them at once afterwards (_brief_lines).
        window_texts: list[list[str] | None] = []
        brief: list[int] = []
        # With each device once in the batch (the usual case) its quiet windows go first,
        # in one pass: no other window shares their trackers. Else each in window order.
        screened_quiet = [index for index, is_quiet in enumerate(quiet) if is_quiet]
        once = len({device_id for device_id, _ in due}) == len(due)
        quiet_full = (
            self._quiet_windows(screened_quiet, due, contexts, features, scores, ecg_good, news2)
            if once
            else {}
        )
        for index, ((device_id, window), feats, window_scores) in enumerate(
            zip(due, features, scores, strict=True)
        ):
            context = contexts[device_id]
            if quiet[index]:
                full = (
                    quiet_full.get(index)
                    if once
                    else self._quiet_windows(
                        [index], due, contexts, features, scores, ecg_good, news2
                    ).get(index)
                )
                if full is not None:
                    if full:
                        window_texts.append(
                            self._full_quiet_lines(context, window, feats, window_scores,
                                                   news2[index])
                        )  # fmt: skip
                    else:
                        window_texts.append(None)
                        brief.append(index)
                    continue
            alerts, lines = self.evaluate_window(context, window, feats, window_scores)
            output.alerts += alerts
            window_texts.append(lines)
        self._brief_lines(due, contexts, matrix, brief, window_texts)
        output.lines += chain.from_iterable(window_texts)  # type: ignore[arg-type]
        return scoring_s

    def _brief_lines(
        self,
        due: list[tuple[str, SignalWindow]],
        contexts: dict[str, PatientContext],
        matrix: np.ndarray,
        brief: list[int],
        window_texts: list[list[str] | None],
    ) -> None:
        """The ``quality`` and ``vitals`` lines of the ``brief`` windows (quiet, and not
        due to write their features), all in one :func:`brief_window_lines` call from the
        batch's feature matrix, into their places in ``window_texts``."""
        if not brief:
            return
        started = time.perf_counter()
        series = []
        times = []
        for index in brief:
            device_id, window = due[index]
            context = contexts[device_id]
            series.append(patient_series(context.ward, context.patient, device_id))
            times.append(window.t_end)
        found = brief_window_lines(series, FEATURE_NAMES, matrix[brief], times)
        for index, lines in zip(brief, found, strict=True):
            window_texts[index] = lines
        self.stages.add("lines", started)

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
        started = time.perf_counter()
        device_id = context.device_id
        t = window.t_end
        series = patient_series(context.ward, context.patient, device_id)
        tracker = self.tracker(device_id)
        if tracker.seen(t):  # replay of a window already judged
            return [], window_lines(series, features, scores, t, self._write_due(device_id, t))
        observations = self.observations.get(device_id)
        explain = (
            (lambda score: self.scorer.explain(score, window, features)) if self.scorer else None
        )
        conditions, news2 = rules.evaluate(
            context, t, features, live_scores(scores, explain), observations,
            self.settings.rules, fall=tracker.fall, ecg=tracker.ecg,
        )  # fmt: skip
        alerts = tracker.update(context, t, conditions, window=(window.t_start, t))
        self._persist(device_id, tracker)
        started = self.stages.add("rules", started)
        # An alert's window writes its features whatever the budget: adjudicated alarms
        # are joined to them (models/adjudicated.py).
        full = self._write_due(device_id, t, force=bool(alerts))
        lines = _window_and_news2_lines(
            series, features, scores, t, full,
            None if news2 is None else (
                news2.aggregate, news2.subscores, news2.partial, str(news2.response)
            ),
        )  # fmt: skip
        if alerts and self.scorer is not None:  # shadow alert scoring: lines only, alerts as is
            lines += self.scorer.score_alerts(alerts, features)
        self.stages.add("lines", started)
        return alerts, lines

    def _quiet_windows(
        self,
        indices: list[int],
        due: list[tuple[str, SignalWindow]],
        contexts: dict[str, PatientContext],
        features: list[dict[str, float]],
        scores: list[list[Score]],
        ecg_good: list[bool],
        news2: list[News2 | None],
    ) -> dict[int, bool]:
        """:meth:`evaluate_window` of the windows ``due[i]`` (``i`` in ``indices``, in
        that order) that :func:`~stream.alerts.screen.screen` found quiet, without the
        rules and without their lines: the same tracker state. Returns whether each
        window writes in full (the write budget; its lines are the caller's:
        :meth:`_full_quiet_lines`, or :func:`brief_window_lines` with the batch's others).
        A window is left out when its device's tracker is not idle (a track open, a fall
        being followed) or it is a replay: the full path judges it."""
        started = time.perf_counter()
        judged: dict[int, bool] = {}
        trackers = self.trackers
        for index in indices:
            device_id, window = due[index]
            t = window.t_end
            tracker = trackers.get(device_id) or self.tracker(device_id)
            if tracker.seen(t) or not tracker.idle():
                continue
            judged[index] = self._write_due(device_id, t)
            before = (
                AlertTracker.from_dict(tracker.to_dict(), self.settings.rules)
                if self.verify_screen
                else None
            )
            # What rules.evaluate and AlertTracker.update would change of an idle tracker
            # without conditions: the ECG's history (EcgHistory.settled) and last_t.
            ecg = tracker.ecg
            good_since = ecg.good_since
            if not ecg_good[index]:
                ecg.good_since = None
            elif good_since is None:
                ecg.good_since = t
            tracker.last_t = t
            self._persist(device_id, tracker, changed=ecg.good_since != good_since)
            if before is not None:
                self._verify_quiet(
                    contexts[device_id], window, features[index], scores[index],
                    before, news2[index],
                )  # fmt: skip
        self.stages.add("rules", started)
        return judged

    def _full_quiet_lines(
        self,
        context: PatientContext,
        window: SignalWindow,
        features: dict[str, float],
        scores: list[Score],
        news2: News2 | None,
    ) -> list[str]:
        """The lines of a quiet window due to write in full: :func:`window_lines` and its
        NEWS2 (from the screen's columns), as :meth:`evaluate_window` writes them."""
        started = time.perf_counter()
        series = patient_series(context.ward, context.patient, context.device_id)
        lines = _window_and_news2_lines(series, features, scores, window.t_end, True, news2)
        self.stages.add("lines", started)
        return lines

    def _verify_quiet(
        self,
        context: PatientContext,
        window: SignalWindow,
        features: dict[str, float],
        scores: list[Score],
        before: AlertTracker,
        news2: News2 | None,
    ) -> None:
        """``verify_screen``: judge a screened window in full on a copy of its tracker as
        it stood before, and fail unless that finds what the quiet path did: no condition,
        no alert, the same tracker state and NEWS2, no explanation asked for."""
        device_id = context.device_id
        t = window.t_end
        live = live_scores(scores)
        conditions, result = rules.evaluate(
            context, t, features, live, self.observations.get(device_id), self.settings.rules,
            fall=before.fall, ecg=before.ecg,
        )  # fmt: skip
        alerts = before.update(context, t, conditions, window=(window.t_start, t))
        state = self.tracker(device_id).to_dict()
        expected_news2 = (
            None
            if result is None
            else (result.aggregate, result.subscores, result.partial, str(result.response))
        )
        shape = orjson.dumps({k: v for k, v in state.items() if k != "last_t"}).decode()
        problems = [
            f"conditions {conditions}" * bool(conditions),
            f"alerts {alerts}" * bool(alerts),
            f"state {state} != {before.to_dict()}" * (state != before.to_dict()),
            f"NEWS2 {news2} != {expected_news2}" * (news2 != expected_news2),
            "explanation wanted" * any(not s.shadow and _reaches_threshold(s) for s in scores),
            "persisted shape stale" * (self._persisted[device_id][0] != shape),
        ]
        if any(problems):
            raise ScreenMismatch(
                f"window {device_id}@{t} screened quiet: " + "; ".join(p for p in problems if p)
            )

    def _write_due(self, device_id: str, t: float, force: bool = False) -> bool:
        """Whether the window ending at ``t`` writes its features, scores and NEWS2 (the
        write budget: every ``stream.features_every_s`` per device, half a hop early at
        most for clock jitter, or when ``force``d); marks it written if so."""
        last = self._features_written.get(device_id)
        stream = self.settings.stream
        due = force or last is None or t - last >= stream.features_every_s - 0.5 * stream.hop_s
        if due:
            self._features_written[device_id] = t
        return due

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

    def _persist(self, device_id: str, tracker: AlertTracker, changed: bool = True) -> None:
        """Hand the tracker's state out (``Output.state``) when it changed, else at most
        every ``_STATE_REFRESH_S`` of window time. ``changed`` False: the caller knows that
        only ``last_t`` moved since the last call (a quiet window), which spares the check.
        """
        last = self._persisted.get(device_id)
        if not changed and last is not None:
            last_t = tracker.last_t or 0.0
            if last_t - last[1] >= _STATE_REFRESH_S:
                self._unsaved[device_id] = tracker.to_dict()
                self._persisted[device_id] = (last[0], last_t)
            return
        state = tracker.to_dict()
        shape = orjson.dumps({k: v for k, v in state.items() if k != "last_t"}).decode()
        last_t = state["last_t"] or 0.0
        if last is None or last[0] != shape or last_t - last[1] >= _STATE_REFRESH_S:
            self._unsaved[device_id] = state
            self._persisted[device_id] = (shape, last_t)

    def checkpoint(self) -> set[str]:
        """Put the state of the ECG and PPG detectors and of the streaming models that
        advanced since the last checkpoint into the store, as it stands now; returns the
        devices whose state that was.

        The worker calls it every ``stream.checkpoint_s``, between batches, once every
        output so far is durable, and then publishes those devices' snapshots: the state
        then covers exactly the records processed, which become committable. Exporting
        every device's detectors with every batch cost more than analysing its second.
        """
        self.store.rings.update(self.buffers.ring_ends(sorted(self._advanced | self._pulsed)))
        detectors, pulses = self._take_detectors()
        models = self._take_model_states()
        self.store.detectors.update(detectors)
        self.store.pulse_detectors.update(pulses)
        for device_id, blob in models.items():
            if blob:
                self.store.models[device_id] = blob
            else:
                self.store.models.pop(device_id, None)
        return {*detectors, *pulses, *models}

    def _take_detectors(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """The state of the ECG and PPG detectors advanced since the last call (all
        devices' at once: exported one by one they cost more than some stages)."""
        beats = self.signal.beats.export_many(sorted(self._advanced))
        pulses = self.signal.pulses.export_many(sorted(self._pulsed))
        self._advanced.clear()
        self._pulsed.clear()
        return beats, pulses

    def _take_model_states(self) -> dict[str, bytes]:
        """The streaming models' state of the devices scored since the last call."""
        return self.scorer.take_states() if self.scorer is not None else {}

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
        if len(released):
            self._note_partitions(released)
            contexts = [self.ingest.context(device) for device in released.device_ids]
            self._accept(released, contexts, now, output)
        if self._newest_t is not None:
            self._check_silence(now, output)
        self._emit(output, None if live else now)
        output.state = self._take_unsaved()
        return output

    def _silence_clocks(self, now: float) -> tuple[dict[int, float], float]:
        """The clock each partition's devices are judged on, and the one for devices whose
        partition this worker has not seen yet.

        Partitions are consumed at their own pace: catching up on a backlog (after an
        outage, a restart, a replay), one partition's frames can run tens of seconds ahead
        of another's. Judged on the newest frame of *any* partition, every device of a
        lagging partition would look silent. So a device is judged on its own partition's
        clock (the newest frame there, advanced by wall time since it arrived, so a whole
        partition going quiet is still noticed), and a device not yet seen by this worker
        on the slowest partition clock.
        """
        clocks = {p: t + max(now - at, 0.0) for p, (t, at) in self._clocks.items()}
        ward = self.ward_clock(now)
        fallback = min(clocks.values()) if clocks else ward
        return clocks, fallback if fallback is not None else now

    def _check_silence(self, now: float, output: Output) -> None:
        timeout = self.settings.stream.signal_loss_s
        clocks, fallback = self._silence_clocks(now)
        by_clock: dict[float, dict[str, float]] = {}
        for device_id, seen in self.store.last_seen.items():
            partition = self._partition_of.get(device_id)
            clock = clocks.get(partition, fallback) if partition is not None else fallback
            by_clock.setdefault(clock, {})[device_id] = seen
        for clock, last_seen in by_clock.items():
            for device_id, condition in rules.silent_devices(last_seen, clock, timeout).items():
                self.buffers.drop(device_id)  # its samples are too old to window now
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
        started = time.perf_counter()
        if output.alerts:
            at = time.time() if at is None else at
            output.alerts = [a.model_copy(update={"emitted_at": at}) for a in output.alerts]
        output.lines += [text for a in output.alerts if (text := alert_line(a)) is not None]
        self.stages.add("lines", started)

    def save(self, output: Output) -> None:
        """Store the tracker state an output reached; call once it is durable (the
        detectors' and models' state goes to the store at :meth:`checkpoint`)."""
        for device_id, state in output.state.items():
            self.store.trackers[device_id] = state
        windowed = self.store.windowed
        for device_id, t_end in output.window_ends.items():
            if t_end > windowed.get(device_id, -np.inf):  # a tick's output may come late
                windowed[device_id] = t_end

    # -- ownership ----------------------------------------------------------------------
    def devices_in(self, partitions: set[int]) -> list[str]:
        """Devices this worker knows on these partitions (by their frames' records)."""
        return [d for d, p in self._partition_of.items() if p in partitions]

    def partition_of(self, device_id: str) -> int | None:
        """The partition the device's frames last came in on here (None: not known here)."""
        return self._partition_of.get(device_id)

    def arrivals(self, ingested: Ingested) -> dict[str, int]:
        """Devices of a decoded batch this worker knows nothing of yet, with the partition
        their frames come in on: a new device, or one that moved here from a partition
        another worker owns (its snapshot then restored with :meth:`adopt`)."""
        batch = ingested.result.batch
        known = self._partition_of
        return {
            device_id: partition
            for device_id, (partition, _) in zip(batch.device_ids, batch.positions, strict=True)
            if device_id not in known
        }

    def adopt(self, device_id: str, snapshot: bytes | None, partition: int) -> None:
        """A device that moved here from a partition another worker owned, as its snapshot
        left it (None: no snapshot, it starts afresh), on ``partition`` from now on."""
        self._restore_one(device_id, snapshot)
        self._partition_of[device_id] = partition

    def _note_partitions(self, batch: FrameBatch) -> None:
        """Devices first seen here, or seen on another partition than before (a move: its
        frames now come through another gateway), before ``_accept`` records the new one."""
        known = self._partition_of
        for device_id, (partition, _) in zip(batch.device_ids, batch.positions, strict=True):
            before = known.get(device_id)
            if before != partition:
                self._claims[device_id] = partition
                if before is not None:
                    self._moved_from.setdefault(device_id, before)

    def take_claims(self) -> dict[str, int]:
        """Devices first seen since the last call, with their partition (those that moved
        within this worker are :meth:`take_moves`')."""
        claims, self._claims = self._claims, {}
        known, moved = self._partition_of, self._moved_from
        return {d: p for d, p in claims.items() if known.get(d) == p and d not in moved}

    def take_moves(self) -> dict[str, int]:
        """Devices whose partition changed since the last call, with the one they left
        (not those that came back to it)."""
        moved, self._moved_from = self._moved_from, {}
        return {d: p for d, p in moved.items() if self._partition_of.get(d, p) != p}

    def restore(self, partition: int, snapshots: dict[str, bytes | None]) -> None:
        """A partition's devices as their snapshots left them (see stream.worker.snapshots),
        before any of its frames is processed here."""
        self.forget(self.devices_in({partition}))
        for device_id, value in snapshots.items():
            if value is None:
                # A tombstone: the device left this partition. Applied, it would wipe the
                # state of a device this worker holds on the partition it went to.
                continue
            self._restore_one(device_id, value)
            self._partition_of[device_id] = partition

    def _restore_one(self, device_id: str, value: bytes | None) -> None:
        from stream.worker import snapshots as durable

        # Contexts are reference data the worker follows on the enrolments topic (all of
        # it): newer than the one a snapshot carries, which only fills in for none.
        context = self.store.contexts.get(device_id)
        durable.apply(self.store, device_id, value)
        if context is not None:
            self.store.contexts[device_id] = context
        detector = self.store.detectors.get(device_id)
        if detector is not None:
            self.signal.beats.restore(device_id, detector)
        pulses = self.store.pulse_detectors.get(device_id)
        if pulses is not None:
            self.signal.pulses.restore(device_id, pulses)
        model_state = self.store.models.get(device_id)
        if model_state is not None and self.scorer is not None:
            self.scorer.states.restore(device_id, model_state)
        self._restored_alerts += self.store.outbox.pop(device_id, [])
        windowed = self.store.windowed.get(device_id)
        if windowed is not None:
            self.buffers.resume(device_id, windowed)

    def refill(self, records: Sequence[RawRecord], devices: set[str], now: float) -> int:
        """Frames of restored ``devices`` from before the commit their new owner resumes
        at (``records``: a stretch of their partition before it, see
        ``stream.replay_margin_s``), into their ring buffers only: their windows up to
        the restored ``windowed`` were judged and written by the previous owner, and the
        restored detectors hold these samples. The first windows after those then come at
        once, cut from the samples the previous owner's would have been, instead of
        ``window_s`` after the first frame from the commit. Returns the frames written."""
        batch = decode_records(records, self.settings, now).batch
        rows = [
            row for row, device_id in enumerate(batch.device_ids)
            # A snapshot without either (written before they were) says nothing of which
            # windows were judged: such a device is left to start afresh.
            if device_id in devices
            and (device_id in self.store.windowed or device_id in self.store.rings)
        ]  # fmt: skip
        if not rows:
            return 0
        batch = batch.take(rows)
        for round_rows in _rounds(batch.device_ids):
            frames = batch if round_rows is None else batch.take(round_rows)
            self.buffers.write(frames.device_ids, frames.t0, frames.blocks)
            self.signal.push_statistics(
                *(
                    SignalFrames.from_blocks(frames.blocks[name], frames.device_ids, frames.t0)
                    if name in frames.blocks
                    else _NO_FRAMES
                    for name in WAVEFORMS
                )
            )
        for device_id in set(batch.device_ids):
            rings = self.store.rings.get(device_id)
            if rings:
                self.buffers.align(device_id, rings)
        return len(rows)

    def take_restored_alerts(self) -> list[bytes]:
        """The alerts (JSON) the outboxes of the snapshots restored since the last call
        carried: their previous owner may have died before publishing them, so the
        caller publishes them (again) before processing these devices' frames."""
        alerts, self._restored_alerts = self._restored_alerts, []
        return alerts

    def forget(self, devices: list[str], moved: bool = False) -> None:
        """Everything about devices whose partition another worker now owns: it replays
        their frames from the last commit with their snapshots, so nothing here may linger
        (a seq remembered here would drop the replayed frames as duplicates). Their
        enrolment contexts stay: every worker follows all enrolments.

        ``moved``: the devices' frames now come in on a partition another worker owns while
        this one keeps theirs; frames of theirs held here for a gap are dropped and their
        records reported released (:meth:`Ingest.take_unheld`), or those records would
        stay uncommittable for good."""
        partitions = {self._partition_of.get(d) for d in devices}
        for device_id in devices:
            for part in (self.store.trackers, self.store.last_seen, self.store.detectors,
                         self.store.pulse_detectors, self.store.models,
                         self.store.outbox, self.store.windowed,
                         self.store.rings):  # fmt: skip
                part.pop(device_id, None)
            if self.scorer is not None:
                self.scorer.states.forget(device_id)
            self.buffers.drop(device_id)
            for mapping in (self.trackers, self._persisted, self._unsaved, self.observations,
                            self._partition_of, self._features_written, self._moved_from,
                            self._claims):  # fmt: skip
                mapping.pop(device_id, None)
            self.signal.forget(device_id)
            self._rule_rows.forget(device_id)
            self._advanced.discard(device_id)  # no checkpoint of a device gone elsewhere
            self._pulsed.discard(device_id)
            self.ingest.forget(device_id, release=moved)
        for partition in partitions - set(self._partition_of.values()):
            self._clocks.pop(partition, None)  # type: ignore[arg-type]

    def versions(self) -> dict[str, str]:
        return self.scorer.versions() if self.scorer is not None else {}


def _window_and_news2_lines(
    series: PatientSeries,
    features: dict[str, float],
    scores: list[Score],
    t: float,
    full: bool,
    news2: News2 | None,
) -> list[str]:
    """A window's :func:`window_lines` and, when it writes in ``full``, its NEWS2 line."""
    lines = window_lines(series, features, scores, t, full)
    if news2 is not None and full:
        aggregate, subscores, partial, response = news2
        text = series_news2_line(series, aggregate, subscores, partial, response, t)
        if text is not None:
            lines.append(text)
    return lines


# The waveforms the stream core reads from a window's arrays (coverage, gaps, the rhythm
# model's ECG, ECG-derived respiration); the accelerometer's features come from its
# per-frame statistics (SignalState), so its window array is not read.
_WINDOW_WAVEFORMS = ("ecg", "ppg")

# A round without frames of a waveform.
_NO_FRAMES = SignalFrames.of([])


def _rounds(devices: Sequence[str]) -> list[list[int] | None]:
    """The rows of each round: a device's k-th frame of the batch is in round k. The
    usual batch (each device once) is one round of all its rows: ``[None]``.

    >>> _rounds(["a", "b"]), _rounds(["a", "b", "a"])
    ([None], [[0, 1], [2]])
    """
    if len(set(devices)) == len(devices):
        return [None]
    rounds: list[list[int]] = []
    seen: Counter[str] = Counter()
    for row, device in enumerate(devices):
        round_ = seen[device]
        seen[device] += 1
        if round_ == len(rounds):
            rounds.append([])
        rounds[round_].append(row)
    return rounds  # type: ignore[return-value]


def _pair(records: Sequence[RawRecord], result: Any) -> list[tuple[RawRecord | None, DeadLetter]]:
    by_position = {(r.partition, r.offset): r for r in records}
    return [(by_position.get((d.partition, d.offset)), d) for d in result.deadletters]


def _key_of(record: RawRecord | None, letter: DeadLetter) -> bytes | None:
    return record.key if record is not None else None
