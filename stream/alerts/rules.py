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
- ``fall``: the device's :class:`~stream.alerts.fall.FallDetector`, carried by its
  ``AlertTracker``; :func:`evaluate` advances it.

Where the parts live: how far each vital sign is trusted and which source it comes from,
:mod:`stream.alerts.trust`; the limit table (inclusive limits, hysteresis),
:mod:`stream.alerts.limits`; falls, :mod:`stream.alerts.fall`; what a condition is,
:mod:`stream.alerts.conditions`. Here: the rule families (vital-sign limits, temperature,
rhythm, models, NEWS2, technical) and :func:`evaluate`, which runs them in that order.
Skin temperature is never scored as NEWS2 temperature (only ``Observations.core_temp``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, cast

from stream.alerts.conditions import DEVICE_SILENT, RHYTHM_KINDS, Condition, finite_values
from stream.alerts.fall import FallDetector
from stream.alerts.limits import (
    BRADYCARDIA,
    BRADYPNOEA,
    DESATURATION,
    DESATURATION_SCALE2,
    FEVER,
    HYPOTHERMIA,
    LOW_BATTERY,
    TACHYCARDIA,
    TACHYPNOEA,
    checked,
)
from stream.alerts.news2 import News2Result, news2_partial
from stream.alerts.trust import (
    HR_SOURCES_AGREE,
    EcgHistory,
    Reading,
    SignalQuality,
    Trust,
    apply_trust,
    assess_quality,
    feature,
    heart_rate,
    respiration_reading,
    resting_ecg_rate,
    rhythm_trust,
    spo2_reading,
    temperature_reading,
    usable,
)
from stream.config import RuleSettings
from stream.records import AlertKind, Observations, PatientContext, Priority


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


def _temperature_rules(
    temp: Reading, quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions = checked(temp, rules, FEVER)
    # A sensor off the skin cools towards room temperature: no hypothermia from it.
    if quality.detached and temp.source == "skin":
        temp = Reading(temp.value, temp.source, Trust.UNUSABLE)
    return conditions + checked(temp, rules, HYPOTHERMIA)


def _rhythm_rules(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions: list[Condition] = []
    irregularity = feature(features, "rr_irregularity")
    if (
        math.isfinite(irregularity)
        and irregularity >= rules.af_rr_irregularity
        and _rhythm_confirmed("af", features, rules)
    ):
        values = finite_values(rr_irregularity=irregularity, limit=rules.af_rr_irregularity)
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
            conditions.append(apply_trust(af, rhythm_trust(quality, "af"), rules))
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
    ectopic = feature(features, "ectopic_fraction")
    ventricular_limit = rules.ventricular_ectopic_fraction
    # "Premature beat + pause" is meaningless in an irregularly irregular rhythm: in AF
    # it counts a quarter of all beats, so only the rhythm model may call VT there.
    irregular = math.isfinite(irregularity) and irregularity >= rules.af_rr_irregularity
    if (
        math.isfinite(ectopic)
        and ectopic >= ventricular_limit
        and quality.ecg != "absent"
        and not irregular
        and fast_run(features, rules)
    ):
        starts = run_may_start(features, quality, rules)
        run = Condition(
            kind="ventricular_run",
            category="physiological",
            priority="high",
            values=finite_values(ectopic_fraction=ectopic, limit=ventricular_limit),
            source="rule:ventricular_run@1",
            message=f"Ventricular ectopy in {ectopic:.0%} of beats",
            sustain_only=not starts,
        )
        conditions.append(apply_trust(run, rhythm_trust(quality), rules))
    return conditions


_MODEL_PRIORITY: dict[str, Priority] = {"ventricular_run": "high", "af": "medium"}
# Rhythm kinds whose model call, unconfirmed by the beats' timing, may begin the onset wait
# (Condition.begins_onset): AF. The model reads the waveform and calls an AF from its first
# irregular beats; the RR rules read the 10 s window, whose median interval stays that of
# the sinus beats before the onset for a few seconds (default seed 14: the model called AF
# at 124 s, the window's beats confirmed it at 127 s). Once confirmed, the AF was there
# since the model's call, so ESC 2020 / EHRA's 30 s of AF on ECG count from it. A
# ventricular run has no onset delay to begin.
ONSET_BEFORE_CONFIRMED: frozenset[AlertKind] = frozenset({"af"})


def regularly_irregular(features: Mapping[str, float], rules: RuleSettings) -> bool:
    """The RR intervals alternate (bigeminy: short, long, short, long): irregular from beat
    to beat but regular every other beat, which AF never is. Unknown counts as not."""
    irregularity = feature(features, "rr_irregularity")
    lag2 = feature(features, "rr_irregularity_lag2")
    limit = rules.af_rr_irregularity
    # Bigeminy's every-other-beat irregularity is small, but not nothing: the sinus rate
    # drifts and follows breathing, so two premature beats' intervals differ by 5-9 % of
    # the median where the pairs' own alternation is 70-150 %. AF's sits about where its
    # beat-to-beat one does: below a quarter of it in 0.3 % of 12-interval windows
    # (independent log-normal intervals), below half the limit in 0.1 %. Either tells them
    # apart without breaking an AF's 30 s onset delay every time it dips.
    return (
        math.isfinite(irregularity)
        and irregularity >= limit
        and lag2 < max(0.5 * limit, 0.25 * irregularity)
    )


# Ectopy in a geminal pattern: a premature beat with its pause at least every fourth beat
# (quadrigeminy; trigeminy and bigeminy are every third and second beat), as the share of
# successive interval pairs that are premature + pause (``ectopic_fraction``).
GEMINAL_ECTOPIC_FRACTION = 0.25


def ectopy_explained(features: Mapping[str, float], rules: RuleSettings) -> bool:
    """The beats are regular once premature beats and their pauses are left out
    (``af_irregularity`` under half AF's limit): a sinus rhythm, with or without ectopy,
    which AF (irregularly irregular RR, ESC 2020) is not. In AF, leaving out the chance
    short-long pairs leaves it irregular.

    Nothing left to measure (``af_irregularity`` nan) while premature beats with their
    pauses come at least every fourth beat (:data:`GEMINAL_ECTOPIC_FRACTION`) is explained
    too: the ectopy filter (Petrėnas et al. 2015, Comput Biol Med 65:184) took every
    interval as a premature beat's or its pause, so the window holds no irregularity that
    ectopy does not account for, the frequent geminal ectopy that AF detectors must not
    call AF. In AF the filter takes a chance pair now and then, not nearly every interval
    (the simulator's AF, default ward seeds 0-19: 30 of 6,029 windows called AF left
    nothing, 3 of them with a premature share of a quarter or more, single-window dips the
    AF onset tolerates; frequent premature beats, arrhythmia_confounds seeds 0-19: 1,430
    of the 2,572 windows the beats confirmed as AF before). Otherwise unknown (too few
    intervals) counts as not."""
    filtered = feature(features, "af_irregularity")
    if math.isnan(filtered):
        ectopic = feature(features, "ectopic_fraction")
        return math.isfinite(ectopic) and ectopic >= GEMINAL_ECTOPIC_FRACTION
    return math.isfinite(filtered) and filtered < 0.5 * rules.af_rr_irregularity


def fast_run(features: Mapping[str, float], rules: RuleSettings) -> bool:
    """Three consecutive beat intervals faster than a ventricular run's rate (see
    ``RuleSettings.ventricular_run_rate_bpm``); unknown counts as not fast."""
    rate = feature(features, "run_rate_bpm")
    return math.isfinite(rate) and rate > rules.ventricular_run_rate_bpm


def pulse_keeps_pace(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> bool:
    """A good PPG at rest shows the pulse going on at its usual rate, with no three fast
    pulse intervals in the window: the ventricles did not beat at a run's rate, so a "run"
    on the ECG is artefact (electrode pops between two beats, a patient getting up).
    Cross-checking the ECG's arrhythmia alarms against a pulsatile waveform is how the
    PhysioNet/CinC Challenge 2015 entries removed most false ventricular-tachycardia
    alarms (Clifford et al. 2016, Physiol Meas 37:E5). "Usual" means corroborated: the
    PPG's rate agrees with the ECG's displayed rate or with the device's own reading. A run
    that does not perfuse shows no such pulse (the PPG goes weak and irregular, or follows
    the run), so it is not vetoed."""
    if quality.ppg != "good" or quality.moving:
        return False
    pulse_run = feature(features, "ppg_run_rate_bpm")
    pulse = feature(features, "ppg_hr_bpm")
    if not (math.isfinite(pulse_run) and math.isfinite(pulse)):
        return False
    if pulse_run > rules.ventricular_run_rate_bpm:
        return False
    corroborating = (feature(features, "ecg_hr_bpm"), feature(features, "hr_device"))
    return any(
        math.isfinite(other) and abs(pulse - other) <= HR_SOURCES_AGREE * other
        for other in corroborating
    )


def run_now(features: Mapping[str, float], rules: RuleSettings) -> bool:
    """The ECG's rate over its last two beats is a ventricular run's: the run is going on at
    the end of the window. A run stays in the window for its whole length after it ends, so
    an alarm may *start* only while the run is happening; later windows sustain it."""
    rate = feature(features, "ecg_hr_recent_bpm")
    return math.isfinite(rate) and rate > rules.ventricular_run_rate_bpm


def run_may_start(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> bool:
    """A ventricular-run alarm, from the ectopy rule or a rhythm model, may start: the run
    is going on now (:func:`run_now`) and the pulse does not contradict it
    (:func:`pulse_keeps_pace`)."""
    return run_now(features, rules) and not pulse_keeps_pace(features, quality, rules)


def _rhythm_confirmed(kind: str, features: Mapping[str, float], rules: RuleSettings) -> bool:
    """Whether the beats confirm a rhythm model's call: a ventricular run is fast; AF is
    not a regularly alternating rhythm, nor a regular one with premature beats. The model
    reads the ECG's shape; these read its timing, which premature beats and bigeminy (wide
    beats, no run, a regular rhythm between them) do not fake."""
    if kind == "ventricular_run":
        return fast_run(features, rules)
    if kind == "af":
        return not regularly_irregular(features, rules) and not ectopy_explained(features, rules)
    return True


def _model_rules(
    scores: Iterable[ModelScores],
    quality: SignalQuality,
    rules: RuleSettings,
    features: Mapping[str, float],
) -> list[Condition]:
    conditions: list[Condition] = []
    for model in scores:
        for class_name, probability in model.probabilities.items():
            # RuleSettings.model_outputs maps a model's classes to alert kinds (the shipped
            # cards' classes all to kinds of stream.records.AlertKind).
            kind = cast("AlertKind | None", rules.model_outputs.get(class_name))
            if kind is None or not math.isfinite(probability):
                continue
            unconfirmed = kind in RHYTHM_KINDS and not _rhythm_confirmed(kind, features, rules)
            threshold = model.thresholds.get(class_name, rules.model_threshold)
            if probability >= threshold:
                # An electrode pop between two beats makes a fast "run" of three intervals
                # once, and stays in the window: a model's ventricular run starts an alarm
                # only while the ECG's own rate is that of a run.
                sustain_only = unconfirmed or (
                    kind == "ventricular_run" and not run_may_start(features, quality, rules)
                )
            elif probability >= threshold - rules.model_hysteresis:
                sustain_only = True
            else:
                continue
            explanation = model.explanations.get(class_name)
            condition = Condition(
                kind=kind,
                category="physiological",
                priority=_MODEL_PRIORITY.get(kind, "medium"),
                values=finite_values(probability=probability, threshold=threshold),
                source=model.source,
                message=f"{model.name} model: {class_name} p={probability:.2f} (≥ {threshold:.2f})",
                sustain_only=sustain_only,
                explanation=dict(explanation) if explanation is not None else None,
            )
            # Rhythm models read the ECG: its quality bounds their trust.
            trust = rhythm_trust(quality, kind) if kind in RHYTHM_KINDS else Trust.GOOD
            if kind in ONSET_BEFORE_CONFIRMED and unconfirmed and trust is Trust.GOOD:
                # The model's call on a good ECG, ahead of the RR intervals' confirmation:
                # it may begin AF's 30 s (AlertTracker), never trigger it.
                condition = replace(condition, begins_onset=probability >= threshold)
            conditions.append(apply_trust(condition, trust, rules))
    return conditions


class _Vitals(NamedTuple):
    """This window's vital signs, each from its most trustworthy source."""

    quality: SignalQuality
    hr: Reading | None  # the displayed rate (averaged recent intervals): NEWS2
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
            spo2_reading(features, quality),
            respiration_reading(features, quality),
        )


_NO_OBSERVATIONS = Observations()


def _news2(
    ctx: PatientContext, vitals: _Vitals, observations: Observations | None, rules: RuleSettings
) -> News2Result | None:
    if not ctx.profile.news2:
        return None
    obs = observations or _NO_OBSERVATIONS
    pulse, spo2, resp = (usable(r, rules) for r in (vitals.hr, vitals.spo2, vitals.resp))
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
    used = [r for r in (vitals.hr, vitals.spo2, vitals.resp) if usable(r, rules) is not None]
    doubtful = any(r is not None and r.trust is Trust.DOUBTFUL for r in used)
    return [apply_trust(condition, Trust.DOUBTFUL if doubtful else Trust.GOOD, rules)]


def _technical_rules(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    conditions: list[Condition] = []
    if quality.detached:
        detached = Condition(
            kind="sensor_detached",
            category="technical",
            priority="medium",
            values=finite_values(
                ecg_lead_off=feature(features, "ecg_lead_off"),
                ecg_flat=feature(features, "ecg_flat"),
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
            values=finite_values(
                ecg_sqi=feature(features, "ecg_sqi"),
                ppg_sqi=feature(features, "ppg_sqi"),
                motion=feature(features, "motion"),
            ),
            source="rule:poor_signal@1",
            message="Poor signal quality (low SQI or motion)",
        )
        conditions.append(poor)
    battery = feature(features, "battery")
    if math.isfinite(battery):
        conditions += checked(Reading(battery, "device", Trust.GOOD), rules, LOW_BATTERY)
    return conditions


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
    ecg: EcgHistory | None = None,
) -> Judgement:
    """Every condition one window shows, at window end time ``t``.

    ``fall`` is the device's fall state (``AlertTracker.fall``, see
    :mod:`stream.alerts.fall`): it is advanced in place, once per window, so pass each
    window once and in time order. Without it no fall is detected (a fall needs more than
    one window). ``ecg`` (``AlertTracker.ecg``) is advanced likewise: with it, a
    ventricular-run alarm starts only on an ECG that has stayed good for
    ``trust.RHYTHM_SETTLE_S``.
    """
    rules = with_overrides(rules or RuleSettings(), ctx.profile.thresholds)
    vitals = _Vitals.of(features, rules)
    conditions: list[Condition] = []
    if vitals.hr_recent is not None:
        conditions += checked(vitals.hr_recent, rules, TACHYCARDIA, BRADYCARDIA)
        if vitals.hr_recent.source != "ecg":
            conditions += _ecg_begun(features, vitals.quality, rules)
    if vitals.spo2 is not None:
        desaturation = DESATURATION_SCALE2 if ctx.profile.spo2_scale == 2 else DESATURATION
        conditions += checked(vitals.spo2, rules, desaturation)
    if vitals.resp is not None:
        conditions += checked(vitals.resp, rules, TACHYPNOEA, BRADYPNOEA)
    if (temp := temperature_reading(features, observations, rules)) is not None:
        conditions += _temperature_rules(temp, vitals.quality, rules)
    settled = ecg.settled(t, vitals.quality) if ecg is not None else True
    rhythm = _rhythm_rules(features, vitals.quality, rules)
    rhythm += _model_rules(scores, vitals.quality, rules, features)
    if not settled:
        # AF waits 30 s of ECG anyway (its onset delay), which a pop does not outlast.
        rhythm = [
            replace(c, sustain_only=True) if c.kind == "ventricular_run" else c for c in rhythm
        ]
    conditions += rhythm
    if fall is not None and (fallen := fall.update(t, features, rules)) is not None:
        conditions.append(fallen)
    if (news2 := _news2(ctx, vitals, observations, rules)) is not None:
        conditions += _news2_rules(news2, vitals, rules)
    conditions += _technical_rules(features, vitals.quality, rules)
    return Judgement(conditions, news2)


def _ecg_begun(
    features: Mapping[str, float], quality: SignalQuality, rules: RuleSettings
) -> list[Condition]:
    """A good resting ECG's rate past a heart-rate limit that the other sources' vote set
    aside: it begins the onset wait, never triggers."""
    rate = resting_ecg_rate(features, quality)
    if not math.isfinite(rate):
        return []
    reading = Reading(rate, "ecg", Trust.GOOD)
    return [
        replace(c, sustain_only=True, begins_onset=True)
        for c in checked(reading, rules, TACHYCARDIA, BRADYCARDIA)
        if not c.sustain_only
    ]


def silent_devices(
    last_seen: Mapping[str, float], now: float, timeout: float
) -> dict[str, Condition]:
    """A ``device_silent`` condition for every device not heard from for ``timeout`` s.

    Default timeout ``settings.stream.signal_loss_s`` = 300 s (RADAR-base and Tidepool
    both use 5 minutes). Feed each to ``AlertTracker.update_silence``.

    >>> silent = silent_devices({"dev-1": 1000.0, "dev-2": 1250.0}, now=1300.0, timeout=300.0)
    >>> {device: c.kind for device, c in silent.items()}
    {'dev-1': 'device_silent'}
    """
    silent: dict[str, Condition] = {}
    for device_id, seen in last_seen.items():
        quiet_s = now - seen
        if quiet_s >= timeout:
            silent[device_id] = Condition(
                DEVICE_SILENT,
                "technical",
                "medium",
                finite_values(silent_s=quiet_s, timeout_s=timeout, last_seen=seen),
                "rule:device_silent@1",
                f"No data from the device for {quiet_s:.0f} s",
            )
    return silent
