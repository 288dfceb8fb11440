"""Alert rules: one window's features, model scores and observations -> the conditions it shows.

Pure code, no I/O and no clock: the stream worker calls :func:`evaluate` once per window
and hands the conditions to :class:`stream.alerts.lifecycle.AlertTracker`, which decides what
becomes an alert event (onset delay, repeat, resolution, de-duplication).

Inputs:

- ``features``: :func:`stream.signal.features.window_features` output (keys ``FEATURE_NAMES``,
  nan when missing). Flags (``still``, ``motion``, ``ecg_lead_off``, ``ecg_flat``) are 0/1
  floats; a flag counts when >= 0.5.
- ``scores``: one :class:`ModelScores` per model that scored the window.
- ``observations``: the latest manual observations (BP, consciousness, oxygen, core temp).
- ``ctx.profile``: NEWS2 on/off, SpO2 scale, and per-patient threshold overrides
  (``Profile.thresholds``, keyed by :class:`~stream.config.RuleSettings` field names).

Signal quality decides how far a value is trusted (see :class:`Trust`):

- ECG lead-off or flat line means the sensor is off the patient: alerts derived from ECG
  (heart rate, rhythm, and respiration, which chest patches measure by impedance through
  the ECG leads) are suppressed, hypothermia too (an unattached sensor reads room
  temperature), and ``sensor_detached`` is raised instead.
- A low SQI or motion leaves the value usable but doubtful: alerts derived from it drop
  one priority step (``rules.poor_signal_action = "downgrade"``, the default) or are
  suppressed (``"suppress"``), and ``poor_signal`` is raised.
- A suppressed value still emits a *sustain-only* condition when it would have alerted,
  so an alert that is already active does not resolve just because the signal went bad.

Heart rate comes from the most trustworthy source: ECG when its SQI is good and the
wearer is not moving, else PPG when good (which excludes motion), else the device's own
value (trusted only when no waveform says otherwise). Without a trustworthy source the
estimates there are are fused, doubtful: the median of three, or of two the preferred one
if they agree within ``HR_SOURCES_AGREE`` (none if not). Rhythm (AF, ventricular runs,
from rules or the rhythm model) is doubtful on a poor ECG or under motion, and not
analysed at all on a poor ECG under motion.
Tachycardia and bradycardia read the rate over the last two beats, so they follow a step
change within two beats and their onset delay is what filters odd beats; NEWS2 scores the
window median, a steadier figure for a score meant to be trended.

Temperature: the device measures skin temperature, which is not core temperature. It is
never scored as NEWS2 temperature (only ``Observations.core_temp`` is). The fever and
hypothermia rules use ``core_temp`` when observed, otherwise device temperature +
``rules.skin_temp_offset_c`` (default 0: the simulator and the patches we target report a
core-equivalent temperature; set the offset for devices that report raw skin temperature).

Every limit is inclusive: a value exactly at the limit alerts (tachycardia at 120 bpm,
desaturation at 91 %). A value past the limit by less than the hysteresis margin yields
a sustain-only condition: it keeps an active alert alive but never starts one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Literal, NamedTuple

from stream.alerts.news2 import News2Result, news2_partial
from stream.config import RuleSettings
from stream.records import Observations, PatientContext, Priority
from stream.signal.features import STILL_SPAN_S

Category = Literal["physiological", "technical"]

# Kinds that compete for attention: within a family only the highest-priority alert
# sounds (stream/lifecycle.py). A kind not listed is its own family.
FAMILY: dict[str, str] = {
    "tachycardia": "heart_rate",
    "bradycardia": "heart_rate",
    "af": "rhythm",
    "ventricular_run": "rhythm",
    "tachypnoea": "respiration",
    "bradypnoea": "respiration",
    "fever": "temperature",
    "hypothermia": "temperature",
    "sensor_detached": "signal",
    "poor_signal": "signal",
}

_STEP_DOWN: dict[str, Priority] = {"high": "medium", "medium": "low", "low": "low"}
_RHYTHM_KINDS = frozenset({"af", "ventricular_run"})
# Two heart-rate estimates more than this fraction apart: at least one is artefact.
HR_SOURCES_AGREE = 0.2


def family_of(kind: str) -> str:
    return FAMILY.get(kind, kind)


@dataclass(frozen=True)
class Condition:
    """Something a rule or model sees in one window; the tracker turns it into alerts.

    ``sustain_only``: the value is back inside the limit but not past the hysteresis
    margin, or is currently untrustworthy; it keeps an active alert from resolving and
    never triggers one.
    """

    kind: str
    category: Category
    priority: Priority
    values: dict[str, float]
    source: str
    message: str
    sustain_only: bool = False
    explanation: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelScores:
    """One model's class probabilities for one window, with the card's thresholds."""

    name: str
    version: str
    probabilities: Mapping[str, float]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    explanations: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"model:{self.name}@{self.version}"


class Trust(Enum):
    GOOD = "good"
    DOUBTFUL = "doubtful"  # low SQI or motion
    UNUSABLE = "unusable"  # sensor detached


class Reading(NamedTuple):
    """A vital sign with where it came from and how far it can be trusted."""

    value: float
    source: str
    trust: Trust


class SignalQuality(NamedTuple):
    """How usable this window's ECG and PPG are, and whether the wearer is still or moving
    (``moving``: the window's ``motion`` flag, from motion artefact or the accelerometer).
    ``ecg_disputed``: the ECG's heart rate is more than ``HR_SOURCES_AGREE`` away from
    what the PPG and the device say (so its beats include artefact, or pulses are missed)."""

    ecg: Literal["good", "poor", "detached", "absent"]
    ppg: Literal["good", "poor", "absent"]
    still: bool | None
    moving: bool = False
    ecg_disputed: bool = False

    @property
    def detached(self) -> bool:
        return self.ecg == "detached"


def _num(features: Mapping[str, float], name: str) -> float:
    value = features.get(name)
    return math.nan if value is None else value


def _flag(features: Mapping[str, float], name: str) -> bool:
    value = _num(features, name)
    return math.isfinite(value) and value >= 0.5


def _finite_values(**values: float) -> dict[str, float]:
    # Alert.values refuses nan/inf: drop what was not measured.
    return {k: round(float(v), 4) for k, v in values.items() if math.isfinite(v)}


def with_overrides(rules: RuleSettings, overrides: Mapping[str, float]) -> RuleSettings:
    """``rules`` with a patient's threshold overrides applied (unknown names are ignored)."""
    if not overrides:
        return rules
    known = {
        name: float(value)
        for name, value in overrides.items()
        if isinstance(getattr(rules, name, None), float)
    }
    return rules.model_copy(update=known) if known else rules


def assess_quality(features: Mapping[str, float], rules: RuleSettings) -> SignalQuality:
    """How usable this window's ECG and PPG are."""
    ecg_sqi = _num(features, "ecg_sqi")
    if _flag(features, "ecg_lead_off") or _flag(features, "ecg_flat"):
        ecg = "detached"
    elif not math.isfinite(ecg_sqi):
        ecg = "absent"
    else:
        ecg = "good" if ecg_sqi >= rules.ecg_sqi_good else "poor"
    ppg_sqi = _num(features, "ppg_sqi")
    if not math.isfinite(ppg_sqi):
        ppg = "absent"
    elif ppg_sqi >= rules.ppg_sqi_good and not _flag(features, "motion"):
        ppg = "good"
    else:
        ppg = "poor"
    still = _num(features, "still")
    return SignalQuality(
        ecg,  # type: ignore[arg-type]
        ppg,  # type: ignore[arg-type]
        (still >= 0.5) if math.isfinite(still) else None,
        _flag(features, "motion"),
        _ecg_disputed(features),
    )


def _ecg_disputed(features: Mapping[str, float]) -> bool:
    ecg_hr = _num(features, "ecg_hr_bpm")
    others = [_num(features, name) for name in ("ppg_hr_bpm", "hr_device")]
    others = [value for value in others if math.isfinite(value)]
    if not math.isfinite(ecg_hr) or not others:
        return False
    return not _agree(ecg_hr, statistics.median_low(others))


def _agree(a: float, b: float) -> bool:
    return max(a, b) <= min(a, b) * (1 + HR_SOURCES_AGREE)


def _rate(features: Mapping[str, float], source: str, recent: bool) -> float:
    value = _num(features, f"{source}_hr_recent_bpm") if recent else math.nan
    return value if math.isfinite(value) else _num(features, f"{source}_hr_bpm")


def heart_rate(
    features: Mapping[str, float], quality: SignalQuality, recent: bool = False
) -> Reading | None:
    """The most trustworthy heart rate: ECG if good, else PPG if good, else the device's.

    ``recent``: the rate over the last two beats (threshold alarms: it follows a step
    change within two beats) instead of the window median (NEWS2); under motion the
    median all the same, because artefact beats make a two-beat rate unreliable.
    """
    recent = recent and not quality.moving
    ecg_hr, ppg_hr = _rate(features, "ecg", recent), _rate(features, "ppg", recent)
    device_hr = _num(features, "hr_device")
    # Motion artefact looks like beats to a QRS detector: a moving wearer's ECG rate is
    # only believed where the other sources back it (below).
    if quality.ecg == "good" and not quality.moving and math.isfinite(ecg_hr):
        return Reading(ecg_hr, "ecg", Trust.GOOD)
    if quality.ppg == "good" and math.isfinite(ppg_hr):
        return Reading(ppg_hr, "ppg", Trust.GOOD)
    waveforms_absent = quality.ecg == "absent" and quality.ppg == "absent"
    if waveforms_absent and math.isfinite(device_hr):
        return Reading(device_hr, "device", Trust.GOOD)
    # No trustworthy source: fuse what there is, trusting it less (as Li & Clifford's
    # SQI-weighted fusion does, reduced to its robust core). Of three estimates the median
    # outvotes one corrupted by artefact; two that disagree cannot tell which one is.
    trust = Trust.UNUSABLE if quality.detached else Trust.DOUBTFUL
    candidates = (
        (ecg_hr if quality.ecg in ("good", "poor") else math.nan, "ecg"),
        (ppg_hr, "ppg"),
        (device_hr, "device"),
    )
    estimates = [(value, source) for value, source in candidates if math.isfinite(value)]
    if len(estimates) == 3:
        value, source = sorted(estimates)[1]
        return Reading(value, source, trust)
    if len(estimates) == 2:
        (first, source), (second, _) = estimates
        if not _agree(first, second):
            return Reading(first, source, Trust.UNUSABLE)
    return Reading(*estimates[0], trust) if estimates else None


def _spo2(features: Mapping[str, float], quality: SignalQuality) -> Reading | None:
    value = _num(features, "spo2")
    if not math.isfinite(value) or value <= 0:
        return None
    trust = Trust.DOUBTFUL if quality.ppg == "poor" else Trust.GOOD
    return Reading(value, "ppg" if quality.ppg != "absent" else "device", trust)


def _resp(features: Mapping[str, float], quality: SignalQuality) -> Reading | None:
    value = _num(features, "resp_rate")
    if not math.isfinite(value):
        return None
    if quality.detached:
        return Reading(value, "resp", Trust.UNUSABLE)
    return Reading(value, "resp", Trust.DOUBTFUL if _flag(features, "motion") else Trust.GOOD)


def _temperature(
    features: Mapping[str, float], observations: Observations | None, rules: RuleSettings
) -> Reading | None:
    if observations is not None and observations.core_temp is not None:
        return Reading(observations.core_temp, "core", Trust.GOOD)
    value = _num(features, "temp")
    if not math.isfinite(value):
        return None
    return Reading(value + rules.skin_temp_offset_c, "skin", Trust.GOOD)


def _apply_trust(condition: Condition, trust: Trust, rules: RuleSettings) -> Condition:
    if trust is Trust.GOOD or condition.sustain_only:
        return condition
    if trust is Trust.UNUSABLE or rules.poor_signal_action == "suppress":
        return replace(
            condition, sustain_only=True, message=condition.message + " (signal not trusted)"
        )
    return replace(
        condition,
        priority=_STEP_DOWN[condition.priority],
        message=condition.message + " (poor signal quality)",
    )


@dataclass(frozen=True, slots=True)
class _Limit:
    """One side of a vital sign's normal range, with a more urgent limit beyond it.

    ``limit``, ``urgent`` and ``hysteresis`` name :class:`RuleSettings` fields, so the
    specs below are built once and per-patient overrides still apply.
    """

    kind: str
    above: bool
    limit: str
    urgent: str
    hysteresis: str
    label: str
    unit: str
    value_name: str
    priority: Priority = "medium"
    urgent_priority: Priority = "high"
    category: Category = "physiological"

    def check(self, reading: Reading, rules: RuleSettings) -> Condition | None:
        value = reading.value
        limit: float = getattr(rules, self.limit)
        margin: float = getattr(rules, self.hysteresis)
        # Signed so that "beyond" is always "greater": most windows leave here.
        sign = 1.0 if self.above else -1.0
        excess = sign * (value - limit)
        if excess < -margin:
            return None
        if excess >= 0:
            urgent = sign * (value - getattr(rules, self.urgent)) >= 0
            priority = self.urgent_priority if urgent else self.priority
        else:
            priority = self.priority
        relation = "≥" if self.above else "≤"
        condition = Condition(
            kind=self.kind,
            category=self.category,
            priority=priority,
            values=_finite_values(**{self.value_name: value, "limit": limit}),
            source=f"rule:{self.kind}@1",
            message=f"{self.label} {value:.4g} {self.unit} ({reading.source}) {relation} {limit:g}",
            sustain_only=excess < 0,
        )
        return _apply_trust(condition, reading.trust, rules)


def _hr_limit(kind: str, above: bool, limit: str, urgent: str) -> _Limit:
    return _Limit(kind, above, limit, urgent, "hr_hysteresis_bpm", "Heart rate", "bpm", "hr_bpm")


def _resp_limit(kind: str, above: bool, limit: str, urgent: str) -> _Limit:
    return _Limit(
        kind, above, limit, urgent, "resp_hysteresis_rpm", "Respiration rate", "/min", "resp_rpm"
    )


def _spo2_limit(limit: str, urgent: str) -> _Limit:
    return _Limit(
        "desaturation", False, limit, urgent, "spo2_hysteresis_pct", "SpO2", "%", "spo2_pct"
    )


def _temp_limit(kind: str, above: bool, limit: str, urgent: str, **priorities: Any) -> _Limit:
    return _Limit(
        kind, above, limit, urgent, "temp_hysteresis_c", "Temperature", "°C", "temp_c", **priorities
    )


# 120/50 bpm are common adult bedside-monitor defaults; the urgent low limit is where
# NEWS2 pulse scores 3 (RCP 2017: <= 40).
TACHYCARDIA = _hr_limit("tachycardia", True, "tachycardia_bpm", "tachycardia_high_bpm")
BRADYCARDIA = _hr_limit("bradycardia", False, "bradycardia_bpm", "bradycardia_high_bpm")
# NEWS2 (RCP 2017) scores 3 at SpO2 <= 91 % on scale 1 and <= 83 % on scale 2.
DESATURATION = _spo2_limit("desaturation_pct", "desaturation_high_pct")
DESATURATION_SCALE2 = _spo2_limit("desaturation_scale2_pct", "desaturation_scale2_high_pct")
# NEWS2 (RCP 2017) scores 3 at a respiration rate >= 25 or <= 8 /min.
TACHYPNOEA = _resp_limit("tachypnoea", True, "tachypnoea_rpm", "tachypnoea_high_rpm")
BRADYPNOEA = _resp_limit("bradypnoea", False, "bradypnoea_rpm", "bradypnoea_high_rpm")
# NEWS2 (RCP 2017) temperature: >= 38.1 °C scores 1, >= 39.1 scores 2, <= 35.0 scores 3.
FEVER = _temp_limit(
    "fever", True, "fever_c", "fever_high_c", priority="low", urgent_priority="medium"
)
HYPOTHERMIA = _temp_limit("hypothermia", False, "hypothermia_c", "hypothermia_high_c")
LOW_BATTERY = _Limit(
    "low_battery", False, "low_battery_pct", "low_battery_high_pct", "battery_hysteresis_pct",
    "Battery", "%", "battery_pct", priority="low", urgent_priority="medium", category="technical",
)  # fmt: skip


def _checked(reading: Reading, rules: RuleSettings, *limits: _Limit) -> list[Condition]:
    return [c for limit in limits if (c := limit.check(reading, rules)) is not None]


def _temperature_rules(
    temp: Reading, quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions = _checked(temp, rules, FEVER)
    # A sensor off the skin cools towards room temperature: no hypothermia from it.
    if quality.detached and temp.source == "skin":
        temp = Reading(temp.value, temp.source, Trust.UNUSABLE)
    return conditions + _checked(temp, rules, HYPOTHERMIA)


def _rhythm_trust(quality: SignalQuality) -> Trust:
    """Rhythm analysis reads beat-to-beat detail, which motion artefact mimics (extra and
    missed beats pass for ectopy and irregularity). A moving wearer's ECG that is poor, or
    whose rate the PPG and device contradict, cannot be analysed at all (a bedside
    monitor's "cannot analyze ECG"); a poor ECG or motion alone makes the rhythm doubtful.
    A contradicted rate alone does not: at rest it may be a pulse deficit, as in VT."""
    if quality.detached or (quality.moving and (quality.ecg == "poor" or quality.ecg_disputed)):
        return Trust.UNUSABLE
    return Trust.DOUBTFUL if quality.ecg == "poor" or quality.moving else Trust.GOOD


def _rhythm_rules(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions: list[Condition] = []
    irregularity = _num(features, "rr_irregularity")
    if math.isfinite(irregularity) and irregularity >= rules.af_rr_irregularity:
        values = _finite_values(rr_irregularity=irregularity, limit=rules.af_rr_irregularity)
        if quality.ecg in ("good", "poor"):
            # Diagnostic only on ECG, and only after >= 30 s of it (ESC 2020 / EHRA 2022):
            # the af onset delay in RuleSettings.timing enforces the 30 s.
            af = Condition(
                kind="af",
                category="physiological",
                priority="medium",
                values=values,
                source="rule:af@1",
                message=f"Irregularly irregular RR on ECG (irregularity {irregularity:.2f})",
            )
            conditions.append(_apply_trust(af, _rhythm_trust(quality), rules))
        elif quality.ppg == "good" and quality.still:
            # PPG can only screen, and only while the wearer is still (as Apple's
            # irregular-rhythm notification): lower priority, marked as screening.
            screening = Condition(
                kind="af",
                category="physiological",
                priority="low",
                values={**values, "screening": 1.0},
                source="rule:af_screening@1",
                message=f"Possible AF on PPG, screening only (irregularity {irregularity:.2f})",
            )
            conditions.append(screening)
    ectopic = _num(features, "ectopic_fraction")
    ventricular_limit = rules.ventricular_ectopic_fraction
    # "Premature beat + pause" is meaningless in an irregularly irregular rhythm: in AF
    # it counts a quarter of all beats, so only the rhythm model may call VT there.
    irregular = math.isfinite(irregularity) and irregularity >= rules.af_rr_irregularity
    if (
        math.isfinite(ectopic)
        and ectopic >= ventricular_limit
        and quality.ecg != "absent"
        and not irregular
    ):
        run = Condition(
            kind="ventricular_run",
            category="physiological",
            priority="high",
            values=_finite_values(ectopic_fraction=ectopic, limit=ventricular_limit),
            source="rule:ventricular_run@1",
            message=f"Ventricular ectopy in {ectopic:.0%} of beats",
        )
        conditions.append(_apply_trust(run, _rhythm_trust(quality), rules))
    return conditions


_MODEL_PRIORITY: dict[str, Priority] = {"ventricular_run": "high", "af": "medium"}


def _model_rules(
    scores: Iterable[ModelScores], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions: list[Condition] = []
    for model in scores:
        for class_name, probability in model.probabilities.items():
            kind = rules.model_outputs.get(class_name)
            if kind is None or not math.isfinite(probability):
                continue
            threshold = model.thresholds.get(class_name, rules.model_threshold)
            if probability >= threshold:
                sustain_only = False
            elif probability >= threshold - rules.model_hysteresis:
                sustain_only = True
            else:
                continue
            explanation = model.explanations.get(class_name)
            condition = Condition(
                kind=kind,
                category="physiological",
                priority=_MODEL_PRIORITY.get(kind, "medium"),
                values=_finite_values(probability=probability, threshold=threshold),
                source=model.source,
                message=f"{model.name} model: {class_name} p={probability:.2f} (≥ {threshold:.2f})",
                sustain_only=sustain_only,
                explanation=dict(explanation) if explanation is not None else None,
            )
            # Rhythm models read the ECG: its quality bounds their trust.
            trust = _rhythm_trust(quality) if kind in _RHYTHM_KINDS else Trust.GOOD
            conditions.append(_apply_trust(condition, trust, rules))
    return conditions


def _usable(reading: Reading | None, rules: RuleSettings) -> Reading | None:
    if reading is None or reading.trust is Trust.UNUSABLE:
        return None
    if reading.trust is Trust.DOUBTFUL and rules.poor_signal_action == "suppress":
        return None
    return reading


class _Vitals(NamedTuple):
    """This window's vital signs, each from its most trustworthy source."""

    quality: SignalQuality
    hr: Reading | None  # the window median: NEWS2
    hr_recent: Reading | None  # the last two beats: threshold alarms
    spo2: Reading | None
    resp: Reading | None

    @classmethod
    def of(cls, features: Mapping[str, float], rules: RuleSettings) -> _Vitals:
        quality = assess_quality(features, rules)
        return cls(
            quality,
            heart_rate(features, quality),
            heart_rate(features, quality, recent=True),
            _spo2(features, quality),
            _resp(features, quality),
        )


_NO_OBSERVATIONS = Observations()


def _news2(
    ctx: PatientContext, vitals: _Vitals, observations: Observations | None, rules: RuleSettings
) -> News2Result | None:
    if not ctx.profile.news2:
        return None
    obs = observations or _NO_OBSERVATIONS
    pulse, spo2, resp = (_usable(r, rules) for r in (vitals.hr, vitals.spo2, vitals.resp))
    return news2_partial(
        resp_rate=resp.value if resp else None,
        spo2=spo2.value if spo2 else None,
        on_oxygen=obs.on_oxygen,
        temp=obs.core_temp,  # skin temperature is never NEWS2 temperature
        pulse=pulse.value if pulse else None,
        systolic_bp=obs.systolic_bp,
        consciousness=obs.consciousness,
        scale=ctx.profile.spo2_scale,
    )


_NEWS2_PRIORITY: dict[str, Priority] = {"high": "high", "medium": "medium"}


def _news2_rules(result: News2Result, vitals: _Vitals, rules: RuleSettings) -> list[Condition]:
    if result.response not in rules.news2_alert_responses:
        return []
    scope = f"partial: {', '.join(result.covered)}" if result.partial else "full"
    condition = Condition(
        kind="news2",
        category="physiological",
        priority=_NEWS2_PRIORITY.get(result.response, "low"),
        values={
            "aggregate": float(result.aggregate),
            "parameters_covered": float(len(result.covered)),
            **{f"score_{name}": float(score) for name, score in result.subscores.items()},
        },
        source="rule:news2@1",
        message=f"NEWS2 {result.aggregate} ({scope}): {result.response} clinical response",
    )
    used = [r for r in (vitals.hr, vitals.spo2, vitals.resp) if _usable(r, rules) is not None]
    doubtful = any(r is not None and r.trust is Trust.DOUBTFUL for r in used)
    return [_apply_trust(condition, Trust.DOUBTFUL if doubtful else Trust.GOOD, rules)]


def _technical_rules(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions: list[Condition] = []
    if quality.detached:
        detached = Condition(
            kind="sensor_detached",
            category="technical",
            priority="medium",
            values=_finite_values(
                ecg_lead_off=_num(features, "ecg_lead_off"), ecg_flat=_num(features, "ecg_flat")
            ),
            source="rule:sensor_detached@1",
            message="ECG leads off or flat: sensor detached?",
        )
        conditions.append(detached)
    if quality.ecg == "poor" or quality.ppg == "poor":
        poor = Condition(
            kind="poor_signal",
            category="technical",
            priority="low",
            values=_finite_values(
                ecg_sqi=_num(features, "ecg_sqi"),
                ppg_sqi=_num(features, "ppg_sqi"),
                motion=_num(features, "motion"),
            ),
            source="rule:poor_signal@1",
            message="Poor signal quality (low SQI or motion)",
        )
        conditions.append(poor)
    battery = _num(features, "battery")
    if math.isfinite(battery):
        conditions += _checked(Reading(battery, "device", Trust.GOOD), rules, LOW_BATTERY)
    return conditions


@dataclass
class FallDetector:
    """Impact followed by inactivity, across windows (Bourke 2007: alert on an impact
    above ~3.5 g plus post-fall inactivity, not on impact alone). Small and serializable:
    it lives in the device's :class:`~stream.alerts.lifecycle.AlertTracker` state.

    ``still`` (features: the trailing 3 s of the window barely moved) turns on a few
    seconds after the impact even while the spike is still inside the window, and dates
    the stillness from the start of those 3 s; a fall
    is confirmed once the wearer has stayed still ``fall_inactivity_s`` after an impact,
    provided the stillness began within ``fall_confirm_within_s`` of it. Moving again
    ends it.
    """

    impact_t: float | None = None
    impact_g: float = 0.0
    inactive_since: float | None = None
    fallen: bool = False

    def update(
        self, t: float, features: Mapping[str, float], rules: RuleSettings
    ) -> Condition | None:
        impact = _num(features, "impact_g")
        inactive = self._inactive(features, rules)
        if inactive is False:
            if self.fallen:
                self.reset()  # up and about again
            self.inactive_since = None
        if math.isfinite(impact) and impact >= rules.fall_impact_g:
            if self.impact_t is None:
                self.impact_t = t
            self.impact_g = max(self.impact_g, impact)
        if self.impact_t is None:
            return None
        if inactive is True and self.inactive_since is None:
            # ``still`` judges the window's trailing STILL_SPAN_S: the stillness began then.
            lookback = STILL_SPAN_S if math.isfinite(_num(features, "still")) else 0.0
            self.inactive_since = max(t - lookback, self.impact_t)
        if not self.fallen:
            started = self.inactive_since
            if started is None or started - self.impact_t > rules.fall_confirm_within_s:
                if t - self.impact_t > rules.fall_confirm_within_s:
                    self.reset()  # no stillness soon enough after the impact: not a fall
                return None
            if t - started < rules.fall_inactivity_s:
                return None
            self.fallen = True
        if self.inactive_since is None:
            return None
        still_s = t - self.inactive_since
        return Condition(
            kind="fall",
            category="physiological",
            priority="high",
            values=_finite_values(
                impact_g=self.impact_g, still_s=still_s, limit=rules.fall_impact_g
            ),
            source="rule:fall@1",
            message=f"Fall: impact {self.impact_g:.1f} g, then still for {still_s:.0f} s",
        )

    @staticmethod
    def _inactive(features: Mapping[str, float], rules: RuleSettings) -> bool | None:
        still = _num(features, "still")
        if math.isfinite(still):
            return still >= 0.5
        activity = _num(features, "activity_g")
        if math.isfinite(activity):
            return activity <= rules.fall_inactive_activity_g
        return None

    def reset(self) -> None:
        self.impact_t, self.impact_g, self.inactive_since, self.fallen = None, 0.0, None, False

    def to_dict(self) -> dict[str, Any]:
        # Written every window into the tracker state: spelled out (0.4 µs; asdict 12 µs).
        return {
            "impact_t": self.impact_t,
            "impact_g": self.impact_g,
            "inactive_since": self.inactive_since,
            "fallen": self.fallen,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FallDetector:
        return cls(**data)


class Judgement(NamedTuple):
    """What one window shows: its conditions, and the (partial) NEWS2 it was judged with
    (None when NEWS2 is off for the patient), for the ``news2`` time series."""

    conditions: list[Condition]
    news2: News2Result | None


def evaluate(
    ctx: PatientContext,
    t: float,
    features: Mapping[str, float],
    scores: Iterable[ModelScores] = (),
    observations: Observations | None = None,
    rules: RuleSettings | None = None,
    fall: FallDetector | None = None,
) -> Judgement:
    """Every condition one window shows, at window end time ``t``.

    ``fall`` is the device's fall state (``AlertTracker.fall``); it is updated in place.
    Without it no fall is detected (a fall needs more than one window).
    """
    rules = with_overrides(rules or RuleSettings(), ctx.profile.thresholds)
    vitals = _Vitals.of(features, rules)
    conditions: list[Condition] = []
    if vitals.hr_recent is not None:
        conditions += _checked(vitals.hr_recent, rules, TACHYCARDIA, BRADYCARDIA)
    if vitals.spo2 is not None:
        desaturation = DESATURATION_SCALE2 if ctx.profile.spo2_scale == 2 else DESATURATION
        conditions += _checked(vitals.spo2, rules, desaturation)
    if vitals.resp is not None:
        conditions += _checked(vitals.resp, rules, TACHYPNOEA, BRADYPNOEA)
    if (temp := _temperature(features, observations, rules)) is not None:
        conditions += _temperature_rules(temp, vitals.quality, rules)
    conditions += _rhythm_rules(features, vitals.quality, rules)
    conditions += _model_rules(scores, vitals.quality, rules)
    if fall is not None and (fallen := fall.update(t, features, rules)) is not None:
        conditions.append(fallen)
    if (news2 := _news2(ctx, vitals, observations, rules)) is not None:
        conditions += _news2_rules(news2, vitals, rules)
    conditions += _technical_rules(features, vitals.quality, rules)
    return Judgement(conditions, news2)


def silent_devices(
    last_seen: Mapping[str, float], now: float, timeout: float
) -> dict[str, Condition]:
    """A ``device_silent`` condition for every device not heard from for ``timeout`` s.

    Default timeout ``settings.stream.signal_loss_s`` = 300 s (RADAR-base and Tidepool
    both use 5 minutes). Feed each to ``AlertTracker.update_silence``.
    """
    silent: dict[str, Condition] = {}
    for device_id, seen in last_seen.items():
        quiet_s = now - seen
        if quiet_s >= timeout:
            silent[device_id] = Condition(
                "device_silent",
                "technical",
                "medium",
                _finite_values(silent_s=quiet_s, timeout_s=timeout, last_seen=seen),
                "rule:device_silent@1",
                f"No data from the device for {quiet_s:.0f} s",
            )
    return silent
