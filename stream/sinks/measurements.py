"""The measurement schema: which InfluxDB measurement, tags and fields each record becomes.

One function per measurement, so the schema Grafana queries is readable in one place
(``tests/unit/test_grafana_files.py`` reads the ``line("name", ...)`` calls of this module
to check that every dashboard query names a measurement written here). Pure: the builders
return line-protocol strings (:mod:`stream.sinks.lines`); :mod:`stream.sinks.influx` writes
them.

Tags are bounded: ``ward``, ``patient`` (pseudonym), ``device`` and small enumerations
(model, version, kind, priority, event, verdict). Ids such as ``alert_id`` are fields.

=================  ===========================================  ==========================
measurement        tags                                         written by
=================  ===========================================  ==========================
``vitals``         ward, patient, device                        :func:`vitals_lines`,
                                                                :func:`feature_lines`
``raw``            ward, patient, device                        :func:`raw_lines`
``features``       ward, patient, device                        :func:`feature_lines`
``quality``        ward, patient, device                        :func:`feature_lines`
``scores``         ward, patient, device, model, version,       :func:`score_line`
                   shadow
``alerts``         ward, patient, device, kind, priority,       :func:`alert_line`
                   event, category
``adjudications``  ward, patient, kind, priority, verdict      :func:`adjudication_line`
                                                                (the alert service)
``news2``          ward, patient, device                        :func:`news2_line`
``pipeline``       worker                                       :func:`pipeline_line`
=================  ===========================================  ==========================

The fields of each are documented on its function.

The worker writes the per-patient measurements of a whole batch, so beside each
per-item builder stands a bulk one that gives the same bytes for less:
:func:`frame_lines` (a batch's ``vitals`` and ``raw``), :func:`window_lines` (a window's
``features``, ``quality``, ``vitals`` and ``scores``), :func:`series_news2_line`. They
share a :class:`PatientSeries`, the escaped series keys of one patient's device, built
once (:func:`patient_series`) rather than once per line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from operator import add, attrgetter, itemgetter
from typing import Any, NamedTuple, Protocol

import numpy as np

from stream.records import PRIORITY_RANK, VITALS, WAVEFORMS, Alert, Frame, PatientContext
from stream.signal.frames import FrameBatch
from stream.sinks.lines import (
    NON_FINITE,
    FieldValue,
    field_prefix,
    float_reprs,
    line,
    series_key,
    to_ns,
)

# The ``verdict`` tag of an acknowledgement that carried none (made before verdicts
# existed, or by a client that sends none): a tag cannot be empty, and "none" stays
# countable beside the three verdicts.
NO_VERDICT = "none"


def patient_tags(ward: str, patient: str, device: str) -> dict[str, str]:
    """The tags of every per-patient measurement: ``ward``, ``patient``, ``device``.

    >>> patient_tags("w7", "p-1", "d1")
    {'ward': 'w7', 'patient': 'p-1', 'device': 'd1'}
    """
    return {"ward": ward, "patient": patient, "device": device}


def vitals_lines(frame: Frame, tags: Mapping[str, str]) -> list[str]:
    """``vitals``: the device's own numeric vitals, one line per sample instant.

    Tags: :func:`patient_tags`. Fields (float): those of ``hr``, ``spo2``, ``resp``,
    ``temp``, ``battery`` the frame carries a sample of at that instant.

    >>> frame = Frame.model_validate({"device_id": "d1", "seq": 0, "t0": 100.0, "signals": {
    ...     "hr": {"fs": 1, "unit": "bpm", "samples": [70, 71]},
    ...     "spo2": {"fs": 1, "unit": "%", "samples": [97]}}})
    >>> vitals_lines(frame, {"device": "d1"})
    ['vitals,device=d1 hr=70.0,spo2=97.0 100000000000', 'vitals,device=d1 hr=71.0 101000000000']
    """
    by_time: dict[int, dict[str, FieldValue]] = {}
    for name in VITALS:
        block = getattr(frame.signals, name)
        if block is None:
            continue
        for i, value in enumerate(block.samples):
            t_ns = to_ns(frame.t0 + i / block.fs)
            by_time.setdefault(t_ns, {})[name] = float(value)  # type: ignore[arg-type]
    return [
        text
        for t_ns, fields in sorted(by_time.items())
        if (text := line("vitals", tags, fields, t_ns / 1e9)) is not None
    ]


def raw_lines(frame: Frame, tags: Mapping[str, str]) -> list[str]:
    """``raw``: every waveform sample (only with ``stream.raw_retention``; it is large).

    Tags: :func:`patient_tags`. Fields (float), one line per sample: ``ecg``, ``ppg``, and
    the accelerometer's axes as ``acc_x``, ``acc_y``, ``acc_z``.

    >>> frame = Frame.model_validate({"device_id": "d1", "seq": 0, "t0": 100.0, "signals": {
    ...     "ppg": {"fs": 10, "unit": "au", "samples": [0.5, 0.25]}}})
    >>> raw_lines(frame, {"device": "d1"})
    ['raw,device=d1 ppg=0.5 100000000000', 'raw,device=d1 ppg=0.25 100100000000']
    """
    lines: list[str] = []
    for name in WAVEFORMS:
        block = getattr(frame.signals, name)
        if block is None:
            continue
        for i, sample in enumerate(block.samples):
            if isinstance(sample, tuple):
                fields: dict[str, FieldValue] = {
                    f"{name}_x": sample[0],
                    f"{name}_y": sample[1],
                    f"{name}_z": sample[2],
                }
            else:
                fields = {name: float(sample)}
            text = line("raw", tags, fields, frame.t0 + i / block.fs)
            if text is not None:
                lines.append(text)
    return lines


# Feature names that describe signal quality rather than physiology (Grafana's quality panel).
QUALITY_FEATURES = ("ecg_sqi", "ppg_sqi", "ecg_lead_off", "ecg_flat", "ecg_saturated", "motion")


def feature_lines(features: Mapping[str, float], tags: Mapping[str, str], t: float) -> list[str]:
    """``features`` (physiology), ``quality`` (SQI and flags) and the derived heart rates
    in ``vitals`` (``ecg_hr``, ``ppg_hr``), all at the window's end time.

    Tags: :func:`patient_tags`. Fields (float, non-finite ones left out): ``features``
    holds every feature not in :data:`QUALITY_FEATURES` (names as
    :data:`stream.signal.window.FEATURE_NAMES`); ``quality`` the ones in it; ``vitals``
    ``ecg_hr`` and ``ppg_hr`` from ``ecg_hr_bpm`` and ``ppg_hr_bpm``.

    >>> for text in feature_lines({"ecg_hr_bpm": 72.0, "ecg_sqi": 0.9}, {"device": "d1"}, 5.0):
    ...     print(text)
    features,device=d1 ecg_hr_bpm=72.0 5000000000
    quality,device=d1 ecg_sqi=0.9 5000000000
    vitals,device=d1 ecg_hr=72.0 5000000000
    """
    physiology = {k: float(v) for k, v in features.items() if k not in QUALITY_FEATURES}
    quality = {k: float(features[k]) for k in QUALITY_FEATURES if k in features}
    derived = {"ecg_hr": features.get("ecg_hr_bpm"), "ppg_hr": features.get("ppg_hr_bpm")}
    candidates = (
        line("features", tags, physiology, t),
        line("quality", tags, quality, t),
        line("vitals", tags, {k: float(v) for k, v in derived.items() if v is not None}, t),
    )
    return [text for text in candidates if text is not None]


def score_line(
    model: str,
    version: str,
    shadow: bool,
    probabilities: Mapping[str, float],
    tags: Mapping[str, str],
    t: float,
) -> str | None:
    """``scores``: one model's class probabilities, tagged with the exact version.

    Tags: :func:`patient_tags` plus ``model``, ``version`` and ``shadow`` (``true`` for a
    shadow version, whose scores are written but raise no alerts). Fields (float): one per
    class.

    >>> score_line("af", "1.2.0", False, {"af": 0.25}, {"device": "d1"}, 5.0)
    'scores,device=d1,model=af,shadow=false,version=1.2.0 af=0.25 5000000000'
    """
    all_tags = {**tags, "model": model, "version": version, "shadow": str(shadow).lower()}
    return line("scores", all_tags, dict(probabilities), t)


def alert_line(alert: Alert) -> str | None:
    """``alerts``: one lifecycle event; ``alert_id`` is a field (unbounded), not a tag.

    Tags: :func:`patient_tags` plus ``kind``, ``priority``, ``event``, ``category``.
    Fields: ``alert_id``, ``message``, ``source`` (strings); ``t_onset``, ``latency_s``
    (publication minus onset, left out before publication) (floats);
    ``escalation_level``, ``priority_rank`` (integers); ``value_<name>`` (float) for each
    of the alert's values. At the event's frame time ``t_event``.

    >>> alert = Alert(alert_id="a1", event="triggered", kind="tachycardia",
    ...     category="physiological", priority="high", patient="p-1", ward="w7",
    ...     device_id="d1", t_onset=100.0, t_event=102.0, window=(90.0, 102.0),
    ...     values={"hr": 140.0}, source="hr_high")
    >>> print(alert_line(alert))  # doctest: +NORMALIZE_WHITESPACE
    alerts,category=physiological,device=d1,event=triggered,kind=tachycardia,patient=p-1,priority=high,ward=w7
    alert_id="a1",message="",source="hr_high",t_onset=100.0,escalation_level=0i,priority_rank=3i,value_hr=140.0
    102000000000
    """
    tags = {
        **patient_tags(alert.ward, alert.patient, alert.device_id),
        "kind": alert.kind,
        "priority": alert.priority,
        "event": alert.event,
        "category": alert.category,
    }
    fields: dict[str, FieldValue | None] = {
        "alert_id": alert.alert_id,
        "message": alert.message,
        "source": alert.source,
        "t_onset": alert.t_onset,
        "latency_s": alert.emitted_at - alert.t_onset if alert.emitted_at else None,
        "escalation_level": alert.escalation_level,
        "priority_rank": PRIORITY_RANK[alert.priority],
    }
    fields.update({f"value_{k}": float(v) for k, v in alert.values.items()})
    return line("alerts", tags, fields, alert.t_event)


def _ms(seconds: float) -> float:
    """Seconds to the millisecond (a difference of epoch floats carries noise below it)."""
    return round(seconds, 3)


def adjudication_line(acknowledged: Alert, triggered_at: float | None) -> str | None:
    """``adjudications``: one acknowledgement of an alarm and the clinician's verdict.

    Tags: ``ward``, ``patient`` (pseudonym), ``kind``, ``priority``, ``verdict``
    (``actionable``, ``not_actionable``, ``artefact``, or :data:`NO_VERDICT`). Fields:
    ``alert_id``, ``by`` (strings); ``latency_s`` (acknowledgement minus ``triggered_at``,
    the wall-clock publication of the alarm's first ``triggered`` event: the time to
    acknowledge; left out when that is unknown), ``since_onset_s`` (acknowledgement minus
    the condition's onset ``t_onset``) (floats); ``escalation_level`` at acknowledgement
    (integer). At the acknowledgement's time.

    >>> ack = Alert(alert_id="a1", event="acknowledged", kind="tachycardia",
    ...     category="physiological", priority="high", patient="p-1", ward="w7",
    ...     device_id="d1", t_onset=100.0, t_event=160.0, window=(90.0, 102.0),
    ...     source="hr_high", acknowledged_by="nurse-7", verdict="actionable",
    ...     escalation_level=1)
    >>> print(adjudication_line(ack, triggered_at=102.5))  # doctest: +NORMALIZE_WHITESPACE
    adjudications,kind=tachycardia,patient=p-1,priority=high,verdict=actionable,ward=w7
    alert_id="a1",by="nurse-7",latency_s=57.5,since_onset_s=60.0,escalation_level=1i
    160000000000
    """
    tags = {
        "ward": acknowledged.ward,
        "patient": acknowledged.patient,
        "kind": acknowledged.kind,
        "priority": acknowledged.priority,
        "verdict": acknowledged.verdict or NO_VERDICT,
    }
    fields: dict[str, FieldValue | None] = {
        "alert_id": acknowledged.alert_id,
        "by": acknowledged.acknowledged_by or "",
        "latency_s": None if triggered_at is None else _ms(acknowledged.t_event - triggered_at),
        "since_onset_s": _ms(acknowledged.t_event - acknowledged.t_onset),
        "escalation_level": acknowledged.escalation_level,
    }
    return line("adjudications", tags, fields, acknowledged.t_event)


def news2_line(
    aggregate: int,
    subscores: Mapping[str, int],
    partial: bool,
    response: str,
    tags: Mapping[str, str],
    t: float,
) -> str | None:
    """``news2``: the (possibly partial) early-warning score and its parameter scores.

    Tags: :func:`patient_tags`. Fields: ``aggregate`` (integer), ``partial`` (boolean),
    ``response`` (string), ``score_<parameter>`` (integer) for each parameter scored.

    >>> news2_line(2, {"resp": 2}, True, "low", {"device": "d1"}, 5.0)
    'news2,device=d1 aggregate=2i,partial=true,response="low",score_resp=2i 5000000000'
    """
    fields: dict[str, FieldValue | None] = {
        "aggregate": aggregate,
        "partial": partial,
        "response": response,
    }
    fields.update({f"score_{k}": int(v) for k, v in subscores.items()})
    return line("news2", tags, fields, t)


def pipeline_line(worker: str, metrics: Mapping[str, float | int], t: float) -> str | None:
    """``pipeline``: worker health (frames/s, lag, dead letters, latencies, versions).

    Tags: ``worker``. Fields: one per entry of
    :meth:`stream.worker.metrics.WorkerMetrics.snapshot`: rates and latencies (floats),
    counts (integers), and each model's version as ``model_<name>`` (string).

    >>> pipeline_line("w-1", {"frames_per_s": 50.0, "lag": 3}, 5.0)
    'pipeline,worker=w-1 frames_per_s=50.0,lag=3i 5000000000'
    """
    return line("pipeline", {"worker": worker}, dict(metrics), t)


# -- bulk builders: the same bytes as the per-item ones above, for a batch -------------------

# Bounds of the caches below (patients' devices, feature-name layouts): past one, it starts
# again, so a worker that sees devices come and go does not grow without end.
MAX_CACHED_SERIES = 65_536
MAX_CACHED_LAYOUTS = 64


class ScoreLike(Protocol):
    """What :func:`window_lines` reads of a :class:`stream.scoring.scorer.Score`."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def shadow(self) -> bool: ...
    @property
    def probabilities(self) -> Mapping[str, float]: ...


class PatientSeries:
    """The escaped series keys (``measurement,tag=value,...``) of one patient's device.

    A device's tags do not change from one second to the next: escaping and sorting them
    once per device, not once per line, is most of what the bulk builders save.

    >>> series = patient_series("w7", "p-1", "d1")
    >>> series.vitals
    'vitals,device=d1,patient=p-1,ward=w7'
    >>> series.scores_key("af", "1.2.0", False)
    'scores,device=d1,model=af,patient=p-1,shadow=false,version=1.2.0,ward=w7'
    """

    __slots__ = ("_scores", "features", "news2", "quality", "raw", "tags", "vitals")

    def __init__(self, ward: str, patient: str, device: str) -> None:
        self.tags = patient_tags(ward, patient, device)
        items = tuple(self.tags.items())
        self.vitals = series_key("vitals", items)
        self.raw = series_key("raw", items)
        self.features = series_key("features", items)
        self.quality = series_key("quality", items)
        self.news2 = series_key("news2", items)
        self._scores: dict[tuple[str, str, str], str] = {}

    def scores_key(self, model: str, version: str, shadow: bool) -> str:
        """The ``scores`` series key of one model version (:func:`score_line`'s tags)."""
        # The tag's text, not the flag, keys the cache: True and 1 hash alike but are
        # written "true" and "1".
        shadow_tag = "true" if shadow is True else "false" if shadow is False else str(shadow)
        shadow_tag = shadow_tag.lower()
        key = (model, version, shadow_tag)
        head = self._scores.get(key)
        if head is None:
            tags = {**self.tags, "model": model, "version": version, "shadow": shadow_tag}
            head = self._scores[key] = series_key("scores", tuple(tags.items()))
        return head


_SERIES: dict[tuple[str, str, str], PatientSeries] = {}


def patient_series(ward: str, patient: str, device: str) -> PatientSeries:
    """The :class:`PatientSeries` of these :func:`patient_tags` (cached)."""
    key = (ward, patient, device)
    series = _SERIES.get(key)
    if series is None:
        if len(_SERIES) >= MAX_CACHED_SERIES:
            _SERIES.clear()
        series = _SERIES[key] = PatientSeries(ward, patient, device)
    return series


_vital_blocks = attrgetter(*VITALS)
_VITAL_PREFIXES = tuple(field_prefix(name) for name in VITALS)


def frame_lines(
    batch: FrameBatch, contexts: Sequence[PatientContext], raw: bool = False
) -> list[str]:
    """A batch's :func:`vitals_lines` and, with ``raw``, :func:`raw_lines`, frame after
    frame, tagged with each row's context's ward and patient and the row's device.

    >>> frame = Frame.model_validate({"device_id": "d1", "seq": 0, "t0": 100.0, "signals": {
    ...     "hr": {"fs": 1, "unit": "bpm", "samples": [70]},
    ...     "spo2": {"fs": 1, "unit": "%", "samples": [97]}}})
    >>> context = PatientContext(device_id="d1", patient="p-1", ward="w7", profile={})
    >>> frame_lines(FrameBatch.from_frames([frame], [(0, 0)]), [context])
    ['vitals,device=d1,patient=p-1,ward=w7 hr=70.0,spo2=97.0 100000000000']
    """
    # The usual frame holds one sample of each vital (1 Hz vitals, one-second frames): its
    # one line takes the frame's values, each vital's formatted in one float_reprs call.
    # Frames with several samples of a vital take vitals_lines.
    rows = len(batch)
    general = np.zeros(rows, dtype=bool)
    columns: list[tuple[str, list[str | None]]] = []
    for prefix, name in zip(_VITAL_PREFIXES, VITALS, strict=True):
        blocks = batch.blocks.get(name)
        if blocks is None:
            continue
        general[blocks.members[blocks.lengths != 1]] = True
        texts: list[str | None] = [None] * rows
        single = blocks.lengths == 1
        members = blocks.members[single].tolist()
        values = blocks.values[blocks.offsets[single]].tolist()
        for row, text in zip(members, float_reprs(values), strict=True):
            if text != NON_FINITE:
                texts[row] = prefix + text
        columns.append((prefix, texts))
    general_rows = general.tolist()
    starts = batch.t0.tolist()
    devices = batch.device_ids
    lines: list[str] = []
    for row, context in enumerate(contexts):
        series = patient_series(context.ward, context.patient, devices[row])
        if general_rows[row]:
            lines += vitals_lines(batch.frame(row), series.tags)
        else:
            fields = ",".join([texts[row] for _, texts in columns if texts[row] is not None])
            if fields:
                # As vitals_lines: the sample time to whole microseconds, then the line's
                # to_ns of that.
                t_ns = round(starts[row] * 1_000_000) * 1000
                lines.append(f"{series.vitals} {fields} {round(t_ns / 1e9 * 1_000_000) * 1000}")
        if raw:
            lines += raw_lines(batch.frame(row), series.tags)
    return lines


class _FieldsShape(NamedTuple):
    """One line's field set for one pattern of finite values: a ``%`` template of its
    finite fields and the picker of their texts (one text, or a tuple: ``%`` takes both)."""

    template: str
    pick: Callable[[Sequence[str]], Any]


class _FeatureLayout:
    """Where :func:`feature_lines`' fields sit in one order of feature names, and the
    shapes of its three lines for each pattern of finite features met so far."""

    __slots__ = ("derived", "names", "physiology", "prefixes", "quality", "shapes")

    def __init__(self, names: tuple[str, ...]) -> None:
        position = {name: i for i, name in enumerate(names)}
        self.names = names
        self.prefixes = tuple(field_prefix(name) for name in names)
        # (field prefix, feature position) of each line, in its field order.
        self.physiology = [
            (self.prefixes[i], i) for i, k in enumerate(names) if k not in QUALITY_FEATURES
        ]
        self.quality = [
            (self.prefixes[position[k]], position[k]) for k in QUALITY_FEATURES if k in position
        ]
        self.derived = [
            (field_prefix(field), position[feature])
            for field, feature in _DERIVED_VITALS
            if feature in position
        ]
        self.shapes: dict[tuple[bool, ...], tuple[_FieldsShape | None, ...]] = {}

    def shape(self, finite: tuple[bool, ...]) -> tuple[_FieldsShape | None, ...]:
        """The ``features``, ``quality`` and ``vitals`` field shapes for these finite
        features (``None``: the line has no field)."""
        shapes = self.shapes.get(finite)
        if shapes is None:
            if len(self.shapes) >= MAX_CACHED_LAYOUTS:
                self.shapes.clear()
            shapes = self.shapes[finite] = tuple(
                _fields_shape([(prefix, i) for prefix, i in fields if finite[i]])
                for fields in (self.physiology, self.quality, self.derived)
            )
        return shapes


def _fields_shape(fields: Sequence[tuple[str, int]]) -> _FieldsShape | None:
    if not fields:
        return None
    template = ",".join(prefix.replace("%", "%%") + "%s" for prefix, _ in fields)
    return _FieldsShape(template, itemgetter(*[i for _, i in fields]))


_FEATURE_LAYOUTS: dict[tuple[str, ...], _FeatureLayout] = {}
# feature_lines' derived ``vitals`` fields: field name → the feature it copies.
_DERIVED_VITALS = (("ecg_hr", "ecg_hr_bpm"), ("ppg_hr", "ppg_hr_bpm"))


def _feature_layout(names: tuple[str, ...]) -> _FeatureLayout:
    layout = _FEATURE_LAYOUTS.get(names)
    if layout is None:
        if len(_FEATURE_LAYOUTS) >= MAX_CACHED_LAYOUTS:
            _FEATURE_LAYOUTS.clear()
        layout = _FEATURE_LAYOUTS[names] = _FeatureLayout(names)
    return layout


_CLASS_PREFIXES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _class_prefixes(classes: tuple[str, ...]) -> tuple[str, ...]:
    prefixes = _CLASS_PREFIXES.get(classes)
    if prefixes is None:
        if len(_CLASS_PREFIXES) >= MAX_CACHED_LAYOUTS:
            _CLASS_PREFIXES.clear()
        prefixes = _CLASS_PREFIXES[classes] = tuple(map(field_prefix, classes))
    return prefixes


def window_lines(
    series: PatientSeries,
    features: Mapping[str, float],
    scores: Sequence[ScoreLike],
    t: float,
    full: bool = True,
) -> list[str]:
    """One window's :func:`feature_lines` and then each score's :func:`score_line`, in
    that order, as those write them; not ``full`` (the write budget,
    ``stream.features_every_s``): only its ``quality`` and ``vitals`` lines.

    >>> series = patient_series("w7", "p-1", "d1")
    >>> for text in window_lines(series, {"ecg_hr_bpm": 72.0, "ecg_sqi": 0.9}, [], 5.0):
    ...     print(text)
    features,device=d1,patient=p-1,ward=w7 ecg_hr_bpm=72.0 5000000000
    quality,device=d1,patient=p-1,ward=w7 ecg_sqi=0.9 5000000000
    vitals,device=d1,patient=p-1,ward=w7 ecg_hr=72.0 5000000000
    >>> len(window_lines(series, {"ecg_hr_bpm": 72.0, "ecg_sqi": 0.9}, [], 6.0, full=False))
    2
    """
    layout = _feature_layout(tuple(features))
    values = list(map(float, features.values()))
    count = len(values)
    # The scores' probabilities (when all floats, as models give) join the features' in
    # one float_reprs call; the others keep score_line's own typing.
    typed: list[Any] = []
    for score in scores:
        probabilities = score.probabilities
        classes = list(probabilities.values())
        if all(type(p) is float for p in classes):
            typed.append((score, _class_prefixes(tuple(probabilities)), len(values)))
            values += classes
        else:
            typed.append((score, None, 0))
    texts = float_reprs(values)
    stamp = f" {round(t * 1_000_000) * 1000}"  # to_ns
    lines = []
    heads = (series.features if full else None, series.quality, series.vitals)
    finite = tuple(map(NON_FINITE.__ne__, texts[:count]))
    for head, shape in zip(heads, layout.shape(finite), strict=True):
        if shape is not None and head is not None:
            lines.append(f"{head} {shape.template % shape.pick(texts)}{stamp}")
    for score, prefixes, start in typed if full else ():
        if prefixes is None:  # integers, flags, strings
            text = score_line(
                score.model, score.version, score.shadow, score.probabilities, series.tags, t
            )
            if text is not None:
                lines.append(text)
            continue
        own = texts[start : start + len(prefixes)]
        fields = ",".join(compress(map(add, prefixes, own), map(NON_FINITE.__ne__, own)))
        if fields:
            head = series.scores_key(score.model, score.version, score.shadow)
            lines.append(f"{head} {fields}{stamp}")
    return lines


class _BriefShape(NamedTuple):
    """The ``quality`` and ``vitals`` lines of one pattern of finite values among a brief
    line's columns: a ``%`` template and picker of each (``None``: the line has no field)."""

    quality: _FieldsShape | None
    vitals: _FieldsShape | None


class _BriefLayout:
    """:func:`brief_window_lines`' columns of one order of feature names: the
    ``quality`` fields, then the derived ``vitals`` ones, and their shapes per pattern."""

    __slots__ = ("columns", "derived", "quality", "shapes")

    def __init__(self, names: tuple[str, ...]) -> None:
        layout = _feature_layout(names)
        self.quality = [prefix for prefix, _ in layout.quality]
        self.derived = [prefix for prefix, _ in layout.derived]
        self.columns = [i for _, i in layout.quality] + [i for _, i in layout.derived]
        self.shapes: dict[int, _BriefShape] = {}

    def shape(self, pattern: int) -> _BriefShape:
        """The shapes for ``pattern``: bit ``k`` set when column ``k`` is finite."""
        shape = self.shapes.get(pattern)
        if shape is None:
            finite = [bool(pattern >> k & 1) for k in range(len(self.columns))]
            quality = [(p, k) for k, p in enumerate(self.quality) if finite[k]]
            offset = len(self.quality)
            vitals = [(p, offset + k) for k, p in enumerate(self.derived) if finite[offset + k]]
            shape = self.shapes[pattern] = _BriefShape(
                _fields_shape(quality), _fields_shape(vitals)
            )
        return shape


_BRIEF_LAYOUTS: dict[tuple[str, ...], _BriefLayout] = {}


def brief_window_lines(
    series: Sequence[PatientSeries],
    names: tuple[str, ...],
    features: np.ndarray,
    t: Sequence[float],
) -> list[list[str]]:
    """:func:`window_lines` with ``full=False`` (the ``quality`` and ``vitals`` lines) of
    many windows at once, from their features as a matrix: row ``i`` holds window ``i``'s
    values in the order of ``names`` (a missing feature nan). All values are formatted in
    one :func:`float_reprs` call and each window's lines filled into a ``%`` template of
    its finite fields; the same bytes as :func:`window_lines` of each window's dict.

    >>> names = ("ecg_hr_bpm", "ecg_sqi", "ppg_sqi")
    >>> rows = np.array([[72.0, 0.9, float("nan")], [float("nan"), 0.5, 0.25]])
    >>> series = [patient_series("w7", "p-1", "d1")] * 2
    >>> for lines in brief_window_lines(series, names, rows, [5.0, 6.0]):
    ...     for text in lines:
    ...         print(text)
    quality,device=d1,patient=p-1,ward=w7 ecg_sqi=0.9 5000000000
    vitals,device=d1,patient=p-1,ward=w7 ecg_hr=72.0 5000000000
    quality,device=d1,patient=p-1,ward=w7 ecg_sqi=0.5,ppg_sqi=0.25 6000000000
    """
    layout = _BRIEF_LAYOUTS.get(names)
    if layout is None:
        if len(_BRIEF_LAYOUTS) >= MAX_CACHED_LAYOUTS:
            _BRIEF_LAYOUTS.clear()
        layout = _BRIEF_LAYOUTS[names] = _BriefLayout(names)
    width = len(layout.columns)
    if not len(t):
        return []
    if not width:
        return [[] for _ in t]
    picked = np.asarray(features, dtype=float)[:, layout.columns]
    texts = float_reprs(picked.ravel().tolist())
    # Which columns of each row are finite, as a bit pattern (float_reprs' NON_FINITE
    # texts are exactly the non-finite values).
    patterns = (np.isfinite(picked) @ (1 << np.arange(width, dtype=np.int64))).tolist()
    shape_of = layout.shape
    found = []
    start = 0
    for window_series, pattern, at in zip(series, patterns, t, strict=True):
        row = texts[start : start + width]
        start += width
        stamp = f" {round(at * 1_000_000) * 1000}"  # to_ns
        quality, vitals = shape_of(pattern)
        lines = []
        if quality is not None:
            lines.append(f"{window_series.quality} {quality.template % quality.pick(row)}{stamp}")
        if vitals is not None:
            lines.append(f"{window_series.vitals} {vitals.template % vitals.pick(row)}{stamp}")
        found.append(lines)
    return found


# A NEWS2 response's field text (a few distinct values).
_STRING_FIELDS: dict[str, str] = {}


def series_news2_line(
    series: PatientSeries,
    aggregate: int,
    subscores: Mapping[str, int],
    partial: bool,
    response: str,
    t: float,
) -> str | None:
    """:func:`news2_line` with the series' tags, without its dictionaries.

    >>> series = patient_series("w7", "p-1", "d1")
    >>> print(series_news2_line(series, 2, {"resp": 2}, True, "low", 5.0))
    ... # doctest: +NORMALIZE_WHITESPACE
    news2,device=d1,patient=p-1,ward=w7
    aggregate=2i,partial=true,response="low",score_resp=2i 5000000000
    """
    if type(aggregate) is not int or type(partial) is not bool or type(response) is not str:
        return news2_line(aggregate, subscores, partial, response, series.tags, t)
    text = _STRING_FIELDS.get(response)
    if text is None:
        if len(_STRING_FIELDS) >= MAX_CACHED_LAYOUTS:
            _STRING_FIELDS.clear()
        escaped = response.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        text = _STRING_FIELDS[response] = f'"{escaped}"'
    encoded = [
        f"aggregate={aggregate}i,partial={'true' if partial else 'false'},response={text}",
        *[f"{field_prefix('score_' + k)}{int(v)}i" for k, v in subscores.items()],
    ]
    return f"{series.news2} {','.join(encoded)} {round(t * 1_000_000) * 1000}"
