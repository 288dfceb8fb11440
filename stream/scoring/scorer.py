"""Model scoring in the stream: ONNX sessions from the registry, batched, hot-swappable.

Owns scoring every window of a batch with ONE onnxruntime call per model (windows of many
devices stacked, inputs from :mod:`stream.scoring.inputs`), and swapping model versions
while the worker runs.

- Every model the registry knows (promoted version, else the shipped default) is live.
- A :class:`~stream.records.ModelRollout` names a version; the scorer looks the version
  up in the registry itself (the path in the message is not trusted), checks the sha256
  the message carries, runs a smoke prediction, and only then swaps it in with a single
  assignment. A bad version is refused and the old one keeps serving.
- Shadow mode (``settings.models.shadow`` or a rollout with ``shadow=True``): the shadow
  version scores the same windows; its scores are written (``shadow=true``) but raise no
  alerts.
- Streaming models (a card with ``streaming``: the rhythm and deterioration GRUs from
  2.0.0) carry their state per device between hops (:class:`ModelStates`, keyed by
  ``name@version`` so a new version starts cold): a window feeds only the hops since the
  device's last one, in one call per model for the devices of a batch, and a device
  without state is fed its whole window from zero state (a cold start). Windows of one
  device in one batch (a catch-up) are fed in time order, one round after another.
- Models that score alerts (an ``alert`` input, e.g. ``alarm-actionability``) run in
  shadow only: :meth:`Scorer.score_alerts` scores each triggered alert of a window and
  returns ``alert_actionability`` lines; the alerts themselves are never touched. Such a
  model is never live, and a rollout that would make it live is refused.

Example::

    scorer = Scorer.from_registry(settings)
    per_window = scorer.score(windows, features)   # [[Score(model="rhythm", ...)], ...]
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

import numpy as np
import orjson

from stream.config import Settings
from stream.records import Alert, ModelRollout
from stream.scoring import registry
from stream.scoring.actionability import ACTIONABLE, actionability_line, alert_rows
from stream.scoring.explain import explain_alerting
from stream.scoring.inputs import (
    batch_inputs,
    cold_hops,
    model_inputs,
    streaming_feeds,
    warm_up,
)
from stream.scoring.registry import LoadedModel, ModelError
from stream.signal.window import SignalWindow

log = logging.getLogger(__name__)


class Score(NamedTuple):
    """One model's probabilities for one window, with the exact version that made them.

    A named tuple: immutable like the frozen dataclass it was, at half the cost to make
    (the scorer makes one per window and model, every batch).

    >>> score = Score("rhythm", "2.0.0", {"af": 0.25}, {"af": 0.7})
    >>> score.ref, score.probabilities["af"], score.shadow
    ('rhythm@2.0.0', 0.25, False)
    """

    model: str
    version: str
    probabilities: dict[str, float]
    thresholds: dict[str, float]
    shadow: bool = False

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass
class ScoringStats:
    calls: int = 0
    windows: int = 0
    seconds: float = 0.0
    rollouts_applied: int = 0
    rollouts_refused: int = 0
    last_latency_s: dict[str, float] = field(default_factory=dict)


@dataclass
class DeviceState:
    """One streaming model's state for one device: the end of the last window fed, the
    probabilities that gave, and the state tensors (float32, per-device shapes)."""

    t: float
    probabilities: np.ndarray
    tensors: dict[str, np.ndarray]


@dataclass(frozen=True)
class StateLayout:
    """How one streaming model's state of a device lies in a float32 row: the
    probabilities, then each state tensor flattened, in the card's order."""

    classes: int
    tensors: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, model: LoadedModel) -> StateLayout:
        streaming = model.card.streaming
        if streaming is None:
            raise ValueError(f"{model.ref} is not a streaming model")
        return cls(
            len(model.card.classes), tuple((s.name, tuple(s.shape)) for s in streaming.states)
        )

    @property
    def width(self) -> int:
        return self.classes + sum(math.prod(shape) for _, shape in self.tensors)

    def split(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """State tensors ``[n, *shape]`` from rows ``[n, width]``."""
        out, at = {}, self.classes
        for name, shape in self.tensors:
            size = math.prod(shape)
            out[name] = rows[:, at : at + size].reshape(len(rows), *shape)
            at += size
        return out

    def join(self, probabilities: np.ndarray, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Rows ``[n, width]`` from probabilities ``[n, classes]`` and the state tensors."""
        n = len(probabilities)
        parts = [np.asarray(probabilities, np.float32).reshape(n, -1)]
        parts += [np.asarray(tensors[name], np.float32).reshape(n, -1) for name, _ in self.tensors]
        return np.concatenate(parts, axis=1)


class _Table:
    """One model key's states of all devices, a row each (grown as devices come)."""

    def __init__(self, layout: StateLayout, capacity: int = 64) -> None:
        self.layout = layout
        self.rows: dict[str, int] = {}
        self.free: list[int] = list(range(capacity - 1, -1, -1))
        self.t = np.full(capacity, np.nan)
        self.data = np.zeros((capacity, layout.width), np.float32)

    def row(self, device: str) -> int:
        found = self.rows.get(device)
        if found is not None:
            return found
        if not self.free:
            size = len(self.t)
            self.t = np.concatenate([self.t, np.full(size, np.nan)])
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
            self.free = list(range(2 * size - 1, size - 1, -1))
        found = self.rows[device] = self.free.pop()
        return found

    def drop(self, device: str) -> None:
        found = self.rows.pop(device, None)
        if found is not None:
            self.t[found] = np.nan
            self.free.append(found)


class ModelStates:
    """Every device's streaming-model state, by model key (``name@version``, ``(shadow)``
    appended for a shadow version) then device: what the worker snapshots per device.

    Each key's states are rows of one float32 array (:class:`StateLayout`), so a batch's
    states are gathered and written back with one index. :meth:`export` is the durable
    form of a device (its rows' float32 bytes, base64, about 0.8 KB for the rhythm and
    deterioration GRUs together); :meth:`restore` puts it back (kept aside until the
    key's layout is known, i.e. its model is loaded).

    >>> states = ModelStates()
    >>> states.register("m@1", StateLayout(1, (("initial_h", (1, 2)),)))
    >>> states.put("dev-1", "m@1", DeviceState(5.0, np.array([0.25], np.float32),
    ...     {"initial_h": np.ones((1, 2), np.float32)}))
    >>> blob = states.export("dev-1", {"m@1"})
    >>> again = ModelStates()
    >>> again.restore("dev-1", blob)
    >>> again.register("m@1", StateLayout(1, (("initial_h", (1, 2)),)))
    >>> kept = again.get("dev-1", "m@1")
    >>> kept.t, kept.probabilities.tolist(), kept.tensors["initial_h"].tolist()
    (5.0, [0.25], [[1.0, 1.0]])
    >>> states.export("dev-1", {"m@2"}) is None  # a retired version's state is not kept
    True
    """

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self._pending: dict[str, dict[str, tuple[float, bytes]]] = {}
        self.advanced: set[str] = set()

    def register(self, key: str, layout: StateLayout) -> None:
        """Make room for a model's states (on loading it); restored rows waiting for this
        key are put in place."""
        table = self._tables.get(key)
        if table is None or table.layout != layout:
            table = self._tables[key] = _Table(layout)
        for device in [d for d, waiting in self._pending.items() if key in waiting]:
            self._place(device, key, *self._pending[device].pop(key))
            if not self._pending[device]:
                del self._pending[device]

    def _place(self, device: str, key: str, t: float, data: bytes) -> None:
        table = self._tables[key]
        row = np.frombuffer(data, "<f4")
        if len(row) == table.layout.width:  # else: not this layout's; the device starts cold
            index = table.row(device)
            table.t[index], table.data[index] = t, row

    def table(self, key: str) -> _Table:
        return self._tables[key]

    def get(self, device: str, key: str) -> DeviceState | None:
        table = self._tables.get(key)
        index = table.rows.get(device) if table is not None else None
        if table is None or index is None:
            return None
        row = table.data[index : index + 1]
        tensors = {name: value[0].copy() for name, value in table.layout.split(row).items()}
        return DeviceState(float(table.t[index]), row[0, : table.layout.classes].copy(), tensors)

    def put(self, device: str, key: str, state: DeviceState) -> None:
        table = self._tables[key]
        index = table.row(device)
        table.t[index] = state.t
        table.data[index] = table.layout.join(
            state.probabilities[np.newaxis], {k: v[np.newaxis] for k, v in state.tensors.items()}
        )[0]
        self.advanced.add(device)

    def forget(self, device: str) -> None:
        for table in self._tables.values():
            table.drop(device)
        self._pending.pop(device, None)
        self.advanced.discard(device)

    def devices(self) -> list[str]:
        return sorted(
            {d for table in self._tables.values() for d in table.rows} | set(self._pending)
        )

    def export(self, device: str, keys: Iterable[str]) -> bytes | None:
        """The device's states of the models ``keys`` (the live ones), ``None`` if none."""
        found = {}
        for key in keys:
            table = self._tables.get(key)
            index = table.rows.get(device) if table is not None else None
            if table is not None and index is not None:
                found[key] = [
                    float(table.t[index]),
                    base64.b64encode(table.data[index].tobytes()).decode(),
                ]
        return orjson.dumps(found) if found else None

    def export_many(self, devices: Sequence[str], keys: Iterable[str]) -> dict[str, bytes | None]:
        """:meth:`export` of each of ``devices``, byte for byte: each key's rows of all of
        them gathered at once (the worker exports every device it scored, every batch)."""
        found: dict[str, dict[str, list]] = {device: {} for device in devices}
        for key in keys:  # in the order export takes them: the same JSON
            table = self._tables.get(key)
            if table is None:
                continue
            held = [(device, row) for device in devices
                    if (row := table.rows.get(device)) is not None]  # fmt: skip
            if not held:
                continue
            index = np.array([row for _, row in held])
            data = table.data[index].tobytes()
            width = table.data.itemsize * table.layout.width
            times = table.t[index].tolist()
            for j, (device, _) in enumerate(held):
                # binascii: base64.b64encode's own call, without its wrapper's cost.
                encoded = binascii.b2a_base64(data[j * width : (j + 1) * width], newline=False)
                found[device][key] = [times[j], encoded.decode()]
        return {
            device: orjson.dumps(states) if states else None for device, states in found.items()
        }

    def restore(self, device: str, blob: bytes) -> None:
        """Put back what :meth:`export` gave (replacing what the device had)."""
        self.forget(device)
        waiting = {
            key: (float(t), base64.b64decode(data)) for key, (t, data) in orjson.loads(blob).items()
        }
        for key in [k for k in waiting if k in self._tables]:
            self._place(device, key, *waiting.pop(key))
        if waiting:  # models not loaded (yet): placed when they are
            self._pending[device] = waiting


# A hop boundary within this of a window end counts as reached (window ends are float sums).
_HOP_EPS = 1e-6


def hops_due(model: LoadedModel, state: DeviceState | None, t_end: float) -> int | None:
    """Hops to feed for a window ending at ``t_end``: ``None`` for a cold start (no state,
    or more than a window's worth missed: a device back after a gap), 0 when no hop
    boundary passed since the state's (the last probabilities stand), else how many.

    >>> from types import SimpleNamespace as NS
    >>> model = NS(card=NS(streaming=NS(hop_s=10.0), inputs=[NS(window_s=600.0)]))
    >>> state = DeviceState(20.0, np.zeros(1), {})
    >>> hops_due(model, None, 25.0), hops_due(model, state, 29.0), hops_due(model, state, 30.0)
    (None, 0, 1)
    >>> hops_due(model, state, 2000.0) is None
    True
    """
    due = _due(model, np.array([np.nan if state is None else state.t]), np.array([t_end]))[0]
    return None if due < 0 else int(due)


def _due(model: LoadedModel, t_state: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """:func:`hops_due` of many devices at once, -1 for a cold start."""
    hop = model.card.streaming.hop_s
    with np.errstate(invalid="ignore"):
        due = np.floor(t_end / hop + _HOP_EPS) - np.floor(t_state / hop + _HOP_EPS)
    cold = ~np.isfinite(due) | (due > round(model.card.inputs[0].window_s / hop))
    return np.where(cold, -1, np.maximum(np.nan_to_num(due), 0)).astype(np.int64)


def validate(model: LoadedModel) -> None:
    """Smoke-run the model on neutral input: finite probabilities in 0..1, one per class."""
    feeds = {
        # An alert input is one row per alert; the others are windows of spec.steps.
        spec.name: np.zeros(
            (2, *(() if spec.kind == "alert" else (spec.steps,)), len(spec.channels)), np.float32
        )
        for spec in model.card.inputs
    }
    # Zeros are raw values; the card's normalization maps them to something finite.
    for spec in model.card.inputs:
        stats = model.card.normalization[spec.name]
        feeds[spec.name][:] = np.asarray(stats.mean, np.float32)
    try:
        out = model.predict(feeds)
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelError(f"{model.ref}: smoke prediction failed: {exc}") from exc
    for name in model.card.classes:
        values = out.get(name)
        if values is None or values.shape != (2,) or not np.all((values >= 0) & (values <= 1)):
            raise ModelError(f"{model.ref}: smoke prediction gave invalid scores for {name!r}")


class Scorer:
    """The live (and shadow) models of one worker."""

    def __init__(
        self,
        settings: Settings,
        live: Mapping[str, LoadedModel],
        shadow: Mapping[str, LoadedModel] | None = None,
    ) -> None:
        self.settings = settings
        self.live: dict[str, LoadedModel] = dict(live)
        self.shadow: dict[str, LoadedModel] = dict(shadow or {})
        self.stats = ScoringStats()
        self.last_refusal = ""
        self._alert_scoring_failed: set[str] = set()
        self.states = ModelStates()
        for model in self.live.values():
            self._register(model, shadow=False)
        for model in self.shadow.values():
            self._register(model, shadow=True)
        warm_up()  # the batch hop builder's kernel, before the first batch waits for it

    def _register(self, model: LoadedModel, shadow: bool) -> None:
        """Room for a streaming model's device states (restored ones wait for this)."""
        if model.card.streaming is not None:
            key = f"{model.ref}(shadow)" if shadow else model.ref
            self.states.register(key, StateLayout.of(model))

    @classmethod
    def from_registry(cls, settings: Settings) -> Scorer:
        names = sorted({entry.name for entry in registry.list_models(settings)})
        live, shadow = {}, {}
        # Models that score alerts are never live; their shadow version (the SHADOW marker
        # is their deployment) loads whatever models.shadow says, which is about the
        # window models' shadow versions (they double the scoring of every window).
        alert_scoring = registry.alert_scoring_names(settings)
        for name in names:
            if name not in alert_scoring:
                try:
                    live[name] = registry.load(registry.resolve(name, settings))
                except ModelError as exc:
                    log.error("model %s not loaded: %s", name, exc)
            if settings.models.shadow or name in alert_scoring:
                try:
                    path = registry.resolve(name, settings, shadow=True)
                except ModelError:
                    continue  # this model has no shadow version
                try:
                    shadow[name] = registry.load(path)
                except ModelError as exc:
                    log.error("shadow model %s not loaded: %s", name, exc)
        return cls(settings, live, shadow)

    def versions(self) -> dict[str, str]:
        """``{name: version}`` of live models and ``{name+"(shadow)": version}``."""
        found = {name: m.card.version for name, m in self.live.items()}
        found.update({f"{name}(shadow)": m.card.version for name, m in self.shadow.items()})
        return found

    def score(
        self,
        windows: Sequence[SignalWindow],
        features: Sequence[Mapping[str, float]],
        r_peaks: Sequence[np.ndarray | None] | None = None,
        devices: Sequence[str] | None = None,
        ecg_grid: np.ndarray | None = None,
    ) -> list[list[Score]]:
        """Scores per window; one onnxruntime call per model for the whole batch.

        ``r_peaks`` (per window, from ``analyze_window``) spares detecting the beats again.
        ``devices`` (per window) lets streaming models go on from each device's state and
        keep the new one; without it every window is a cold start and nothing is kept.
        A device's windows must come in time order. ``ecg_grid``: every window's ECG as
        the rows of one array (:class:`~stream.signal.fleet_buffers.WindowReads`), which
        spares stacking them again.
        """
        per_window: list[list[Score]] = [[] for _ in windows]
        peaks = list(r_peaks) if r_peaks is not None else [None] * len(windows)
        models = [(m, False) for m in self.live.values() if not m.card.scores_alerts]
        models += [(m, True) for m in self.shadow.values() if not m.card.scores_alerts]
        # Rounds: a device's k-th window of this batch goes in round k (streaming state
        # advances in time order); window models take the whole batch in one round.
        seen: Counter[str] = Counter()
        rounds: list[list[int]] = []
        for i in range(len(windows)):
            key = devices[i] if devices is not None else f"\0{i}"
            if seen[key] == len(rounds):
                rounds.append([])
            rounds[seen[key]].append(i)
            seen[key] += 1
        for model, is_shadow in models:
            if model.card.streaming is None:
                self._score_model(model, is_shadow, windows, features, peaks, per_window)
                continue
            states = self.states if devices is not None else ModelStates()
            for round_rows in rounds:
                ids = [devices[i] if devices is not None else f"\0{i}" for i in round_rows]
                self._score_streaming(
                    model, is_shadow, round_rows, ids, windows, features, peaks, per_window,
                    states, ecg_grid,
                )  # fmt: skip
        return per_window

    def state_keys(self) -> set[str]:
        """The keys of the streaming models in use (whose device states are worth keeping)."""
        keys = {m.ref for m in self.live.values() if m.card.streaming is not None}
        keys |= {f"{m.ref}(shadow)" for m in self.shadow.values() if m.card.streaming is not None}
        return keys

    def take_states(self) -> dict[str, bytes]:
        """The durable state of every device whose streaming state advanced since the last
        call (``b""`` for one that has none left worth keeping)."""
        exported = self.states.export_many(sorted(self.states.advanced), self.state_keys())
        taken = {device: blob or b"" for device, blob in exported.items()}
        self.states.advanced.clear()
        return taken

    def _score_streaming(
        self,
        model: LoadedModel,
        is_shadow: bool,
        rows: list[int],
        devices: list[str],
        windows: Sequence[SignalWindow],
        features: Sequence[Mapping[str, float]],
        r_peaks: Sequence[np.ndarray | None],
        per_window: list[list[Score]],
        states: ModelStates,
        ecg_grid: np.ndarray | None = None,
    ) -> None:
        """One round (each device at most once): devices grouped by how many hops they
        are due, one onnxruntime call per group; cold starts from zero state. The states
        are gathered and written back as rows of the key's table. ``ecg_grid``: as
        :meth:`score`'s."""
        card = model.card
        key = f"{card.ref}(shadow)" if is_shadow else card.ref
        layout = StateLayout.of(model)
        if key not in states._tables:
            states.register(key, layout)
        table = states.table(key)
        if card.inputs[0].kind == "ecg":  # nothing to feed: the state waits for ECG
            kept = [
                (r, d) for r, d in zip(rows, devices, strict=True) if windows[r].ecg is not None
            ]
            rows, devices = [r for r, _ in kept], [d for _, d in kept]
        if not rows:
            return
        index = np.array([table.rows.get(d, -1) for d in devices])
        t_state = np.where(index >= 0, table.t[np.maximum(index, 0)], np.nan)
        t_end = np.array([windows[r].t_end for r in rows])
        due = _due(model, t_state, t_end)
        cold = due < 0
        for k in np.flatnonzero(cold):
            due[k] = cold_hops(model, windows[rows[k]])  # 0: too little to start on
        standing = np.flatnonzero((due == 0) & ~cold)
        if len(standing):
            probabilities = table.data[index[standing], : layout.classes]
            self._append([per_window[rows[k]] for k in standing], card, probabilities, is_shadow)
        for count in sorted(set(due[due > 0].tolist())):
            members = np.flatnonzero(due == count)
            group = [rows[k] for k in members]
            grid = None
            if ecg_grid is not None:
                every = len(group) == len(windows)  # rows are in order: every one, as is
                grid = ecg_grid if every else ecg_grid[group]
            feeds = streaming_feeds(
                model, [windows[r] for r in group], [features[r] for r in group],
                [r_peaks[r] for r in group], count, grid,
            )  # fmt: skip
            warm = ~cold[members]
            # A cold start's row stays zeros: the state before anything was fed.
            before = np.zeros((len(members), layout.width), np.float32)
            before[warm] = table.data[index[members][warm]]
            started = time.perf_counter()
            probabilities, new_state = model.step(feeds, layout.split(before))
            elapsed = time.perf_counter() - started
            self.stats.calls += 1
            self.stats.windows += len(members)
            self.stats.seconds += elapsed
            self.stats.last_latency_s[model.ref] = elapsed
            scores = np.stack([probabilities[c] for c in card.classes], axis=1)
            targets = np.array([table.row(devices[k]) for k in members])
            table.t[targets] = t_end[members]
            table.data[targets] = layout.join(scores, new_state)
            states.advanced.update(devices[k] for k in members)
            self._append([per_window[rows[k]] for k in members], card, scores, is_shadow)

    @staticmethod
    def _append(
        targets: list[list[Score]],
        card: registry.ModelCard,
        probabilities: np.ndarray,
        shadow: bool,
    ) -> None:
        """A :class:`Score` for each row of ``probabilities`` (``[rows, classes]``) onto
        each of ``targets`` (a window's scores each)."""
        # One copy of the thresholds for the batch's scores of this model (the card's own
        # dict is not handed out), and Python floats of all rows in one tolist.
        thresholds = dict(card.thresholds)
        classes, name, version = card.classes, card.name, card.version
        rows = probabilities.tolist()
        if len(rows) != len(targets):
            raise ValueError(f"{len(rows)} rows of probabilities for {len(targets)} windows")
        made = map(
            Score, repeat(name), repeat(version), map(dict, map(zip, repeat(classes), rows)),
            repeat(thresholds), repeat(shadow),
        )  # fmt: skip
        for scores, score in zip(targets, made):  # noqa: B905 (lengths checked above)
            scores.append(score)

    def _score_model(
        self,
        model: LoadedModel,
        is_shadow: bool,
        windows: Sequence[SignalWindow],
        features: Sequence[Mapping[str, float]],
        r_peaks: Sequence[np.ndarray | None],
        per_window: list[list[Score]],
    ) -> None:
        rows, feeds = batch_inputs(model, windows, features, r_peaks)
        if not rows:
            return
        started = time.perf_counter()
        out = model.predict(feeds, batch_size=max(len(rows), 1))
        elapsed = time.perf_counter() - started
        self.stats.calls += 1
        self.stats.windows += len(rows)
        self.stats.seconds += elapsed
        self.stats.last_latency_s[model.ref] = elapsed
        card = model.card
        for j, row in enumerate(rows):
            per_window[row].append(
                Score(
                    model=card.name,
                    version=card.version,
                    probabilities={c: float(out[c][j]) for c in card.classes},
                    thresholds=dict(card.thresholds),
                    shadow=is_shadow,
                )
            )

    def score_alerts(self, alerts: Sequence[Alert], features: Mapping[str, float]) -> list[str]:
        """``alert_actionability`` lines: every shadow alert-scoring model's score of each
        ``triggered`` alert among ``alerts`` (one window's, with that window's
        ``features``). The alerts are not changed, and a model that fails costs its lines
        only (logged once per version), never the alerts.
        """
        models = [m for m in self.shadow.values() if m.card.scores_alerts]
        triggered = [a for a in alerts if a.event == "triggered"]
        if not models or not triggered:
            return []
        lines: list[str] = []
        for model in models:
            card = model.card
            try:
                rows = alert_rows(
                    card.inputs[0].channels, [(features, a.kind, a.priority) for a in triggered]
                )
                started = time.perf_counter()
                probabilities = model.predict(rows)[ACTIONABLE]
            except Exception as exc:  # a shadow model must never cost an alert
                if card.ref not in self._alert_scoring_failed:
                    self._alert_scoring_failed.add(card.ref)
                    log.error("shadow alert scoring with %s failed: %s", card.ref, exc)
                continue
            elapsed = time.perf_counter() - started
            self.stats.calls += 1
            self.stats.seconds += elapsed
            self.stats.last_latency_s[card.ref] = elapsed
            threshold = card.thresholds[ACTIONABLE]
            for alert, probability in zip(triggered, probabilities, strict=True):
                text = actionability_line(
                    alert, card.name, card.version, float(probability), threshold
                )
                if text is not None:
                    lines.append(text)
        return lines

    def explain(
        self, score: Score, window: SignalWindow, features: Mapping[str, float]
    ) -> dict[str, dict]:
        """Why ``score`` reached its thresholds (occlusion, ``stream.scoring.explain``), per class.

        Empty when no class reached its threshold or the version that made the score is no
        longer live (a rollout between scoring and explaining).
        """
        model = (self.shadow if score.shadow else self.live).get(score.model)
        if model is None or model.card.version != score.version:
            return {}
        inputs = model_inputs(model, window, features)
        if inputs is None or len(inputs) != 1:
            return {}  # occlusion explains single-input models
        [window_input] = inputs.values()
        return explain_alerting(model, window_input, score.probabilities, features)

    # -- rollouts -----------------------------------------------------------------------
    def prepare(self, rollout: ModelRollout) -> LoadedModel:
        """Load and validate the version a rollout names (blocking: run it off the loop).

        The registry, not the message, decides where the version lives, so a control
        message cannot make the worker load an arbitrary file.
        """
        path = registry.find_version(rollout.name, rollout.version, self.settings)
        model = registry.load(path)
        if model.card.name != rollout.name or model.card.version != rollout.version:
            raise ModelError(f"{path} holds {model.ref}, not {rollout.name}@{rollout.version}")
        if model.card.onnx_sha256 != rollout.sha256:
            raise ModelError(
                f"{model.ref}: sha256 {model.card.onnx_sha256[:12]}… differs from the "
                f"rollout's {rollout.sha256[:12]}…"
            )
        if model.card.scores_alerts and not rollout.shadow:
            raise ModelError(f"{model.ref} scores alerts and runs in shadow only")
        validate(model)
        return model

    def try_prepare(self, rollout: ModelRollout) -> LoadedModel | None:
        """:meth:`prepare`, with a refusal logged and counted instead of raised."""
        try:
            return self.prepare(rollout)
        except (ModelError, ValueError, OSError) as exc:
            self.stats.rollouts_refused += 1
            self.last_refusal = str(exc)
            log.error("rollout of %s@%s refused: %s", rollout.name, rollout.version, exc)
            return None

    def install(self, model: LoadedModel, shadow: bool = False) -> None:
        """Swap one model in; a single dict assignment, so a batch sees old or new."""
        self._register(model, shadow)  # before the swap: a batch finds its table ready
        target = self.shadow if shadow else self.live
        target[model.card.name] = model
        self.stats.rollouts_applied += 1
        log.info("model %s now %s", model.ref, "shadow" if shadow else "live")

    def apply(self, rollout: ModelRollout) -> str:
        """Prepare and install; returns what happened in words (never raises on a bad model)."""
        model = self.try_prepare(rollout)
        if model is None:
            return f"refused {rollout.name}@{rollout.version}: {self.last_refusal}"
        self.install(model, shadow=rollout.shadow)
        return f"installed {model.ref} as {'shadow' if rollout.shadow else 'live'}"
