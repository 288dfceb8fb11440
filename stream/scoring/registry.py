"""The model registry: versioned ONNX models with their cards, loading, promotion.

A model version is a directory ``<name>/<version>/`` holding ``model.onnx`` and
``card.json`` (a :class:`ModelCard`). Versions live under ``settings.models.directory``;
the package ships tiny defaults in ``models/default/``. The promoted version of a
model is named in ``<directory>/<name>/PROMOTED`` (and a shadow version in ``SHADOW``).

This module is what the stream imports: onnxruntime and numpy only, never torch.

Example::

    model = load(resolve("rhythm", settings))
    probabilities = model.predict(ecg_windows)  # {"af": array([...]), "ventricular": ...}
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream.config import Settings
from stream.records import ModelRollout

# The shipped default models are data of the training package (models/default/), found
# beside this package in a checkout and in an installed wheel alike: read as files, never
# imported, so the stream core does not depend on the training code.
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "models" / "default"
CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
PROMOTED_FILE = "PROMOTED"
SHADOW_FILE = "SHADOW"
# Names become directory names: no separators, no "..", nothing a shell would mangle.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SafeName = Annotated[str, Field(pattern=NAME_PATTERN)]


class ModelError(Exception):
    """A model version that cannot be used, with the reason in words."""


class _Card(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelInput(_Card):
    """One ONNX input: what it carries and in which layout (batch, time, channel).

    ``ecg`` and ``vitals`` inputs are windows ``[batch, time, channels]``, scored for every
    window; an ``alert`` input is one row per triggered alert ``[batch, channels]`` (the
    window features at the alert, its kind and priority: :mod:`stream.scoring.actionability`),
    and a model with one scores alerts, in shadow only (it never raises or changes one).
    """

    name: str = Field(min_length=1)
    kind: Literal["ecg", "vitals", "alert"]
    shape: list[int] = Field(description="-1 marks a dynamic axis, e.g. [-1, -1, 1]")
    fs: float = Field(gt=0, description="sampling rate of the time axis in Hz")
    window_s: float = Field(gt=0, description="window length the model was trained on")
    channels: list[str] = Field(min_length=1, description="channels or feature names, in order")

    @model_validator(mode="after")
    def _channels_fill_last_axis(self) -> ModelInput:
        if any(d < -1 or d == 0 for d in self.shape):
            raise ValueError(f"input {self.name}: shape {self.shape} has an invalid dimension")
        if self.shape and self.shape[-1] not in (-1, len(self.channels)):
            raise ValueError(
                f"input {self.name}: last axis {self.shape[-1]} != {len(self.channels)} channels"
            )
        if self.kind == "alert" and len(self.shape) != 2:
            raise ValueError(f"input {self.name}: an alert input is [batch, channels]")
        return self

    @property
    def steps(self) -> int:
        """Time steps in one training-length window."""
        return round(self.fs * self.window_s)


class Normalization(_Card):
    """Per-channel statistics of the training data; inputs are z-scored with them."""

    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _positive_std(self) -> Normalization:
        if len(self.mean) != len(self.std):
            raise ValueError("normalization mean and std differ in length")
        if any(not s > 0 for s in self.std):
            raise ValueError("normalization std must be positive")
        return self


class StateTensor(_Card):
    """One per-device state tensor of a streaming model: fed as graph input ``name``
    (stacked over devices on a new first axis), returned as graph output ``output``."""

    name: str = Field(min_length=1)
    output: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, description="per device, without the batch axis")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class Streaming(_Card):
    """How a stateful model is fed: only the newest ``hop_s`` of its inputs per hop, with
    the state it returned last time (:class:`stream.scoring.scorer.ModelStates`)."""

    hop_s: float = Field(gt=0, description="seconds of input per hop (the model's step)")
    states: list[StateTensor] = Field(min_length=1)
    cold_start: str = Field(
        "", description="what a device without state is fed (documentation, in words)"
    )


class TrainingData(_Card):
    description: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelCard(_Card):
    """Everything needed to run, audit and reproduce one model version."""

    name: SafeName
    version: SafeName
    created: datetime
    description: str = ""
    inputs: list[ModelInput] = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)
    classes: list[str] = Field(min_length=1)
    thresholds: dict[str, float] = Field(description="alert threshold per class, on probability")
    normalization: dict[str, Normalization] = Field(description="per input name")
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_data: TrainingData
    code_version: str
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # A stateful model (hidden state carried per device between hops); None: a window model.
    streaming: Streaming | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if set(self.thresholds) != set(self.classes):
            raise ValueError(f"thresholds {sorted(self.thresholds)} != classes {self.classes}")
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds.values()):
            raise ValueError("thresholds are probabilities in 0..1")
        for model_input in self.inputs:
            stats = self.normalization.get(model_input.name)
            if stats is None:
                raise ValueError(f"no normalization statistics for input {model_input.name}")
            if len(stats.mean) != len(model_input.channels):
                raise ValueError(f"input {model_input.name}: normalization length != channels")
        return self

    @property
    def ref(self) -> str:
        """``name@version``, how alerts and scores name the model that produced them."""
        return f"{self.name}@{self.version}"

    @property
    def scores_alerts(self) -> bool:
        """Whether the model scores triggered alerts (an ``alert`` input) rather than
        windows: such a model runs in shadow only."""
        return any(model_input.kind == "alert" for model_input in self.inputs)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalize(x: np.ndarray, stats: Normalization) -> np.ndarray:
    """Z-score the last axis with the card's statistics; missing values become the mean.

    Training and serving both call this, so a model never sees inputs scaled differently
    from what it learnt on. Missing vitals (nan) are imputed with the training mean (0
    after scaling) because a wearable drops single channels routinely.
    """
    mean = np.asarray(stats.mean, dtype=np.float32)
    std = np.asarray(stats.std, dtype=np.float32)
    scaled = (np.asarray(x, dtype=np.float32) - mean) / std
    return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


def read_card(version_dir: Path) -> ModelCard:
    card_path = Path(version_dir) / CARD_FILE
    if not card_path.is_file():
        raise ModelError(f"{version_dir}: missing model card {CARD_FILE}")
    try:
        return ModelCard.model_validate_json(card_path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "card"
        raise ModelError(f"{card_path}: invalid model card at {where}: {first['msg']}") from exc


def write_version(root: Path, card: ModelCard, onnx_path: Path) -> Path:
    """Store ``onnx_path`` as ``<root>/<name>/<version>/`` with ``card`` (sha256 filled in).

    Refuses to overwrite an existing version: a version, once written, is immutable.
    """
    target = Path(root) / card.name / card.version
    if target.exists():
        raise ModelError(f"{card.ref} already exists in {root}; versions are immutable")
    staging = Path(tempfile.mkdtemp(prefix=f".{card.version}-", dir=_mkdir(target.parent)))
    staging.chmod(0o755)  # mkdtemp makes it private; workers under other users read it
    data = Path(onnx_path).read_bytes()
    (staging / ONNX_FILE).write_bytes(data)
    final_card = card.model_copy(update={"onnx_sha256": hashlib.sha256(data).hexdigest()})
    (staging / CARD_FILE).write_text(final_card.model_dump_json(indent=2) + "\n")
    staging.rename(target)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LoadedModel:
    """A validated model version with a ready onnxruntime session."""

    path: Path
    card: ModelCard
    session: ort.InferenceSession = field(repr=False)

    @property
    def ref(self) -> str:
        return self.card.ref

    def predict(
        self, x: np.ndarray | Mapping[str, np.ndarray], batch_size: int = 256
    ) -> dict[str, np.ndarray]:
        """Probabilities per class for a batch ``[batch, time, channels]`` (or one window).

        Inputs are raw physical values; the card's normalization is applied here. A
        single window ``[time, channels]`` gives arrays of length 1.
        """
        feeds = self._feeds(x)
        total = next(iter(feeds.values())).shape[0]
        if total == 0:
            return {name: np.empty(0, dtype=np.float32) for name in self.card.classes}
        chunks = []
        for start in range(0, total, batch_size):
            chunk = {name: value[start : start + batch_size] for name, value in feeds.items()}
            # A streaming model scores a whole window from zero state: a cold start.
            chunk.update(self.zero_state(len(next(iter(chunk.values())))))
            chunks.append(self.session.run([self.card.outputs[0]], chunk)[0])
        scores = np.concatenate(chunks).reshape(total, len(self.card.classes))
        return {name: scores[:, i] for i, name in enumerate(self.card.classes)}

    def zero_state(self, batch: int) -> dict[str, np.ndarray]:
        """A streaming model's state before anything was fed (nothing for a window model)."""
        streaming = self.card.streaming
        if streaming is None:
            return {}
        return {s.name: np.zeros((batch, *s.shape), np.float32) for s in streaming.states}

    def step(
        self, x: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Feed a streaming model the newest inputs ``[batch, time, channels]`` (raw values,
        normalized here) and each device's state (batch-first); returns the probabilities
        per class after the last input and the new state, in one onnxruntime call."""
        streaming = self.card.streaming
        if streaming is None:
            raise ModelError(f"{self.ref} is not a streaming model")
        feeds = self._feeds(x)
        total = next(iter(feeds.values())).shape[0]
        feeds.update({s.name: np.asarray(state[s.name], np.float32) for s in streaming.states})
        names = [self.card.outputs[0], *(s.output for s in streaming.states)]
        out = self.session.run(names, feeds)
        scores = out[0].reshape(total, len(self.card.classes))
        probabilities = {name: scores[:, i] for i, name in enumerate(self.card.classes)}
        return probabilities, {
            s.name: value for s, value in zip(streaming.states, out[1:], strict=True)
        }

    def _feeds(self, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = x if isinstance(x, Mapping) else {self.card.inputs[0].name: x}
        if set(given) != {i.name for i in self.card.inputs}:
            raise ValueError(f"{self.ref} expects inputs {[i.name for i in self.card.inputs]}")
        feeds = {}
        for model_input in self.card.inputs:
            value = np.asarray(given[model_input.name], dtype=np.float32)
            if value.ndim == len(model_input.shape) - 1:
                value = value[np.newaxis]
            if value.ndim != len(model_input.shape) or value.shape[-1] != len(model_input.channels):
                raise ValueError(
                    f"{self.ref} input {model_input.name}: got shape {value.shape}, expected "
                    f"{model_input.shape} with channels {model_input.channels}"
                )
            feeds[model_input.name] = normalize(value, self.card.normalization[model_input.name])
        return feeds


def session_options(threads: int = 1) -> ort.SessionOptions:
    """One intra-op thread by default: the stream scales by processes, and extra
    threads did not speed up GRU kernels when measured."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


def load(path: Path | str, threads: int = 1) -> LoadedModel:
    """Load and validate one model version directory; :class:`ModelError` says why not."""
    version_dir = Path(path)
    if not version_dir.is_dir():
        raise ModelError(f"{version_dir}: no such model version directory")
    card = read_card(version_dir)
    onnx_path = version_dir / ONNX_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{version_dir}: missing {ONNX_FILE}")
    actual = sha256_file(onnx_path)
    if actual != card.onnx_sha256:
        raise ModelError(
            f"{card.ref}: checksum mismatch, {ONNX_FILE} has sha256 {actual[:12]}… but the card "
            f"says {card.onnx_sha256[:12]}… (file changed or corrupt)"
        )
    try:
        session = ort.InferenceSession(
            str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelError(f"{card.ref}: {ONNX_FILE} is not a loadable ONNX model: {exc}") from exc
    _check_signature(card, session)
    return LoadedModel(path=version_dir, card=card, session=session)


def _check_signature(card: ModelCard, session: ort.InferenceSession) -> None:
    graph_inputs = session.get_inputs()
    names = [i.name for i in graph_inputs]
    states = card.streaming.states if card.streaming is not None else []
    expected = [i.name for i in card.inputs] + [s.name for s in states]
    if names != expected:
        raise ModelError(f"{card.ref}: ONNX inputs {names} do not match the card's {expected}")
    output_names = [o.name for o in session.get_outputs()]
    missing = [s.output for s in states if s.output not in output_names]
    if missing:
        raise ModelError(f"{card.ref}: ONNX outputs {output_names} lack the state {missing}")
    for graph_input, card_input in zip(graph_inputs[: len(card.inputs)], card.inputs, strict=True):
        dims = graph_input.shape
        if len(dims) != len(card_input.shape):
            raise ModelError(
                f"{card.ref}: input {card_input.name} has rank {len(dims)} in ONNX but "
                f"{len(card_input.shape)} on the card"
            )
        for axis, (graph_dim, card_dim) in enumerate(zip(dims, card_input.shape, strict=True)):
            static = isinstance(graph_dim, int) and graph_dim > 0
            # A static ONNX axis must equal the card's; a card's -1 needs a dynamic axis.
            if static and graph_dim != card_dim:
                raise ModelError(
                    f"{card.ref}: input {card_input.name} axis {axis} is {graph_dim} in ONNX "
                    f"but {card_dim} on the card"
                )
    if output_names[: len(card.outputs)] != card.outputs:
        raise ModelError(f"{card.ref}: ONNX outputs {output_names} != card outputs {card.outputs}")
    last = session.get_outputs()[0].shape[-1]
    if isinstance(last, int) and last != len(card.classes):
        raise ModelError(f"{card.ref}: ONNX gives {last} scores but the card has {card.classes}")


@dataclass(frozen=True)
class ModelVersion:
    """One version found on disk, for listings."""

    name: str
    version: str
    path: Path
    source: Literal["registry", "default"]
    created: datetime | None
    promoted: bool = False
    shadow: bool = False
    problem: str | None = None


def _roots(settings: Settings) -> list[tuple[Literal["registry", "default"], Path]]:
    return [("registry", Path(settings.models.directory)), ("default", DEFAULT_DIRECTORY)]


def _marker(settings: Settings, name: str, marker: str) -> str | None:
    path = Path(settings.models.directory) / name / marker
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def list_models(settings: Settings) -> list[ModelVersion]:
    """Every version in the registry directory and the shipped defaults, unloadable ones
    included with their problem (so `models list` shows them instead of hiding them)."""
    found: dict[tuple[str, str], ModelVersion] = {}
    for source, root in _roots(settings):
        if not root.is_dir():
            continue
        for version_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
            name, version = version_dir.parent.name, version_dir.name
            if (name, version) in found or version.startswith("."):
                continue
            created, problem = None, None
            try:
                created = read_card(version_dir).created
            except ModelError as exc:
                problem = str(exc)
            found[(name, version)] = ModelVersion(
                name, version, version_dir, source, created, problem=problem
            )
    listed = []
    for (name, version), entry in sorted(found.items()):
        promoted = _marker(settings, name, PROMOTED_FILE) == version
        shadow = _marker(settings, name, SHADOW_FILE) == version
        listed.append(replace(entry, promoted=promoted, shadow=shadow))
    return listed


def alert_scoring_names(settings: Settings) -> set[str]:
    """Names of the models whose versions score alerts (``ModelCard.scores_alerts``): never
    live, in shadow only."""
    return {
        entry.name
        for entry in list_models(settings)
        if entry.problem is None and read_card(entry.path).scores_alerts
    }


def find_version(name: str, version: str, settings: Settings) -> Path:
    """The directory of ``name@version``: the registry first, then the shipped defaults."""
    for field_name, value in (("name", name), ("version", version)):
        if not _safe(value):
            raise ModelError(f"invalid model {field_name} {value!r}")
    for _, root in _roots(settings):
        candidate = root / name / version
        if candidate.is_dir():
            return candidate
    raise ModelError(f"model {name}@{version} not found in {settings.models.directory} or defaults")


def _safe(value: str) -> bool:
    return re.fullmatch(NAME_PATTERN, value) is not None


def _latest_default(name: str) -> Path:
    versions = [p for p in (DEFAULT_DIRECTORY / name).glob("*") if (p / CARD_FILE).is_file()]
    if not versions:
        raise ModelError(f"no promoted version of {name!r} and no shipped default")
    return max(versions, key=lambda p: read_card(p).created)


def resolve(name: str, settings: Settings, shadow: bool = False) -> Path:
    """Path of the promoted (or shadow) version of ``name``; without a promotion, the
    newest shipped default. A shadow lookup without a shadow version raises."""
    if not _safe(name):
        raise ModelError(f"invalid model name {name!r}")
    version = _marker(settings, name, SHADOW_FILE if shadow else PROMOTED_FILE)
    if version is not None:
        return find_version(name, version, settings)
    if shadow:
        raise ModelError(f"no shadow version of {name!r}")
    return _latest_default(name)


def show(name: str, settings: Settings, version: str | None = None) -> ModelCard:
    """The card of ``name@version``, or of the version :func:`resolve` picks."""
    path = find_version(name, version, settings) if version else resolve(name, settings)
    return read_card(path)


def promote(name: str, version: str, settings: Settings, shadow: bool = False) -> ModelRollout:
    """Make ``name@version`` the live (or shadow) version; returns the rollout to publish.

    The version is fully loaded first, so a corrupt or mismatched model is never promoted.
    The marker file is replaced atomically so a reader never sees half a version name.
    """
    path = find_version(name, version, settings)
    model = load(path)
    if model.card.scores_alerts and not shadow:
        raise ModelError(
            f"{model.ref} scores alerts and runs in shadow only (its scores suppress "
            "nothing yet): promote it with shadow"
        )
    marker_dir = _mkdir(Path(settings.models.directory) / name)
    marker = marker_dir / (SHADOW_FILE if shadow else PROMOTED_FILE)
    with tempfile.NamedTemporaryFile("w", dir=marker_dir, delete=False) as handle:
        handle.write(version + "\n")
    os.replace(handle.name, marker)
    return ModelRollout(
        name=name,
        version=version,
        path=str(path.resolve()),
        sha256=model.card.onnx_sha256,
        shadow=shadow,
        at=time.time(),
    )


def now() -> datetime:
    return datetime.now(UTC)
