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
- Models that score alerts (an ``alert`` input, e.g. ``alarm-actionability``) run in
  shadow only: :meth:`Scorer.score_alerts` scores each triggered alert of a window and
  returns ``alert_actionability`` lines; the alerts themselves are never touched. Such a
  model is never live, and a rollout that would make it live is refused.

Example::

    scorer = Scorer.from_registry(settings)
    per_window = scorer.score(windows, features)   # [[Score(model="rhythm", ...)], ...]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.config import Settings
from stream.records import Alert, ModelRollout
from stream.scoring import registry
from stream.scoring.actionability import ACTIONABLE, actionability_line, alert_rows
from stream.scoring.explain import explain_alerting
from stream.scoring.inputs import batch_inputs, model_inputs
from stream.scoring.registry import LoadedModel, ModelError
from stream.signal.window import SignalWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    """One model's probabilities for one window, with the exact version that made them."""

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
    ) -> list[list[Score]]:
        """Scores per window; one onnxruntime call per model for the whole batch.

        ``r_peaks`` (per window, from ``analyze_window``) spares detecting the beats again.
        """
        per_window: list[list[Score]] = [[] for _ in windows]
        peaks = list(r_peaks) if r_peaks is not None else [None] * len(windows)
        models = [(m, False) for m in self.live.values() if not m.card.scores_alerts]
        models += [(m, True) for m in self.shadow.values() if not m.card.scores_alerts]
        for model, is_shadow in models:
            self._score_model(model, is_shadow, windows, features, peaks, per_window)
        return per_window

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
