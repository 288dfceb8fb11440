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
"""

from __future__ import annotations

from collections.abc import Mapping

from stream.records import PRIORITY_RANK, VITALS, WAVEFORMS, Alert, Frame
from stream.sinks.lines import FieldValue, line, to_ns

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
