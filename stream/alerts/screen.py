"""The quiet-window screen: which windows of a batch provably raise no condition, as arrays.

Pure code (numpy, no I/O). Most windows of a ward are quiet: every vital sign well inside
its limits, the signals good or absent, no model near its threshold, the fall detector
idle. For those, :func:`stream.alerts.rules.evaluate` returns no condition and
:meth:`stream.alerts.lifecycle.AlertTracker.update` only moves ``last_t``. The worker
(:mod:`stream.worker.pipeline`) screens each batch with :func:`screen` and runs the full
rules only on the windows it cannot clear. The screen is conservative: it clears a window
only when every rule family is provably silent, and may leave quiet windows to the full
rules (e.g. a heart-rate estimate inside the hysteresis band that no source would pick).

What a cleared window still needs is computed here for all windows at once:

- its NEWS2 (:func:`news2_columns`, the same values as :func:`stream.alerts.news2.news2_partial`
  of the readings :func:`stream.alerts.rules.evaluate` scores), because every window writes
  its ``news2`` line;
- whether its ECG is good (``Screen.ecg_good``), which advances the device's
  :class:`~stream.alerts.trust.EcgHistory` as :meth:`~stream.alerts.trust.EcgHistory.settled`
  would.

The fall detector needs nothing: idle (``FallDetector.idle``) and without an impact, its
update changes nothing. The device's tracker state (open tracks, fall detector) is the
caller's to check per window (``AlertTracker.idle``), since a window evaluated in full may
open a track that a later window of the same device in the batch must see.

Per-patient threshold overrides (``Profile.thresholds``) apply as in the rules: each
window carries its context's limits as a row of :data:`RULE_COLUMNS`
(:class:`RuleRows` caches one per device).

>>> from stream.config import RuleSettings
>>> from stream.records import PatientContext, Profile
>>> calm = dict(ecg_hr_bpm=72.0, ppg_hr_bpm=71.0, hr_device=72.0, resp_rate=16.0, spo2=97.0,
...             temp=36.8, ecg_sqi=0.9, ppg_sqi=0.9, battery=80.0, impact_g=1.0, still=1.0)
>>> fast = {**calm, "ecg_hr_bpm": 130.0}
>>> ctx = PatientContext(device_id="d", patient="p", ward="A", profile=Profile())
>>> row = rule_row(RuleSettings(), ctx.profile)
>>> result = screen(feature_matrix([calm, fast]), np.stack([row, row]))
>>> result.quiet.tolist(), result.ecg_good.tolist()
([True, False], [True, True])
>>> news2_of(result.news2, 0)
(0, {'resp_rate': 0, 'spo2': 0, 'pulse': 0}, True, 'routine')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Protocol

import numpy as np

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
    Limit,
)
from stream.alerts.news2 import PARAMETERS, RCP_2017, Bands, response_for
from stream.alerts.rules import with_overrides
from stream.alerts.trust import HR_SOURCES_AGREE
from stream.config import RuleSettings
from stream.records import Observations, PatientContext, Profile
from stream.signal.window import FEATURE_NAMES

NAN = math.nan
_COLUMN = {name: index for index, name in enumerate(FEATURE_NAMES)}
_ALL_FEATURES = itemgetter(*FEATURE_NAMES)


def _limit_specs(profile: Profile) -> dict[str, Limit]:
    """The vital-sign limits a window is checked against, by slot, in the order
    rules.evaluate checks them; desaturation is the patient's SpO2 scale's."""
    desaturation = DESATURATION_SCALE2 if profile.spo2_scale == 2 else DESATURATION
    return {"tachycardia": TACHYCARDIA, "bradycardia": BRADYCARDIA,
            "desaturation": desaturation, "tachypnoea": TACHYPNOEA, "bradypnoea": BRADYPNOEA,
            "fever": FEVER, "hypothermia": HYPOTHERMIA, "low_battery": LOW_BATTERY}  # fmt: skip


_LIMITS = tuple(_limit_specs(Profile()))
RESPONSES = ("routine", "low", "low-medium", "medium", "high")
# One context's rules as a row of floats: each limit and its hysteresis margin, then the
# other thresholds the screen reads, then the patient's NEWS2 profile and, per response
# of RESPONSES, whether it raises an alert (1.0) or not (0.0).
RULE_COLUMNS: tuple[str, ...] = (
    *(f"{kind}{part}" for kind in _LIMITS for part in ("", "_margin")),
    "skin_temp_offset_c", "ecg_sqi_good", "ppg_sqi_good", "af_rr_irregularity",
    "ventricular_ectopic_fraction", "model_threshold", "model_hysteresis", "fall_impact_g",
    "news2", "spo2_scale", "suppress",
    *(f"alerting_{response}" for response in RESPONSES),
)  # fmt: skip
_RULE = {name: index for index, name in enumerate(RULE_COLUMNS)}
# The limit checks of a window (Limit.check): a value passes, not even sustain-only, when
# its signed excess over the limit is below minus the hysteresis margin. Each heart-rate
# estimate any source could give is checked against both heart-rate limits; the other
# vitals once per limit. One column per check: the value's limit slot and its sign.
_HR_ESTIMATES = ("ecg_hr_bpm", "ecg_hr_recent_bpm", "ppg_hr_bpm", "ppg_hr_recent_bpm",
                 "hr_device")  # fmt: skip
_HR_COLUMNS = [FEATURE_NAMES.index(name) for name in _HR_ESTIMATES]
_CHECKS = (
    *["tachycardia"] * len(_HR_ESTIMATES), *["bradycardia"] * len(_HR_ESTIMATES),
    "desaturation", "tachypnoea", "bradypnoea", "fever", "hypothermia", "low_battery",
)  # fmt: skip
_CHECK_SLOT = {slot: index for index, slot in enumerate(_CHECKS)}  # the non-HR ones
_CHECK_LIMITS = [_RULE[slot] for slot in _CHECKS]
_CHECK_MARGINS = [_RULE[f"{slot}_margin"] for slot in _CHECKS]
# Either scale's desaturation is a below-limit: one sign serves both.
assert DESATURATION.above == DESATURATION_SCALE2.above
_CHECK_SIGNS = np.array([1.0 if _limit_specs(Profile())[slot].above else -1.0 for slot in _CHECKS])
# Python's 1 + 0.2, as trust._agree computes it.
_AGREE = 1 + HR_SOURCES_AGREE
# The NEWS2 chart rounds to whole numbers, temperature to 0.1 °C (news2.chart_value).
_WHOLE, _TENTHS = 10.0**0, 10.0**1
_CHART_BIAS = 1e-7
ABSENT = -1  # a NEWS2 parameter not scored


def rule_row(rules: RuleSettings, profile: Profile) -> np.ndarray:
    """The :data:`RULE_COLUMNS` row of a patient: ``rules`` with the profile's overrides."""
    rules = with_overrides(rules, profile.thresholds)
    limits = [
        float(getattr(rules, field))
        for spec in _limit_specs(profile).values()
        for field in (spec.limit, spec.hysteresis)
    ]
    others = [
        rules.skin_temp_offset_c, rules.ecg_sqi_good, rules.ppg_sqi_good,
        rules.af_rr_irregularity, rules.ventricular_ectopic_fraction, rules.model_threshold,
        rules.model_hysteresis, rules.fall_impact_g, float(profile.news2),
        float(profile.spo2_scale), float(rules.poor_signal_action == "suppress"),
    ]  # fmt: skip
    alerting = [float(response in rules.news2_alert_responses) for response in RESPONSES]
    return np.array(limits + others + alerting, dtype=float)


class RuleRows:
    """Each device's :func:`rule_row`, kept while its context's profile is the same object
    (contexts are cached by the ingest, so a re-enrolment brings a new one). Distinct rows
    are stored once: :meth:`matrix` of a batch is a take from them (most patients share
    the ward's rules)."""

    def __init__(self, rules: RuleSettings) -> None:
        self.rules = rules
        self._of_device: dict[str, tuple[Profile, int]] = {}
        self._index: dict[bytes, int] = {}
        self._table = np.empty((0, len(RULE_COLUMNS)))

    def _row_index(self, context: PatientContext) -> int:
        cached = self._of_device.get(context.device_id)
        if cached is None or cached[0] is not context.profile:
            row = rule_row(self.rules, context.profile)
            index = self._index.get(row.tobytes())
            if index is None:
                index = self._index[row.tobytes()] = len(self._table)
                self._table = np.vstack([self._table, row])
            cached = self._of_device[context.device_id] = (context.profile, index)
        return cached[1]

    def row(self, context: PatientContext) -> np.ndarray:
        """The context's row (a copy)."""
        index = self._row_index(context)  # before reading the table it may grow
        return self._table[index].copy()

    def matrix(self, contexts: Iterable[PatientContext]) -> np.ndarray:
        """``(windows, RULE_COLUMNS)``: the row of each window's context."""
        indices = [self._row_index(context) for context in contexts]
        return self._table[np.array(indices, dtype=np.intp)]

    def forget(self, device_id: str) -> None:
        self._of_device.pop(device_id, None)


def feature_matrix(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    """``(windows, FEATURE_NAMES)`` floats; a missing feature is nan, as ``trust.feature``
    reads it."""
    width = len(FEATURE_NAMES)
    try:
        values = chain.from_iterable(map(_ALL_FEATURES, features))
        flat = np.fromiter(values, dtype=float, count=len(features) * width)
    except (KeyError, TypeError):  # a feature missing, or None: read one at a time
        rows = [[_value(f.get(name)) for name in FEATURE_NAMES] for f in features]
        flat = np.array(rows, dtype=float)
    return flat.reshape(len(features), width)


def _value(value: float | None) -> float:
    return NAN if value is None else float(value)


# -- observations -----------------------------------------------------------------------
OBSERVATION_COLUMNS = ("on_oxygen", "core_temp", "systolic_bp", "consciousness")
_CONSCIOUSNESS = dict(RCP_2017.consciousness)


def observation_row(observations: Observations | None) -> tuple[float, float, float, float]:
    """A device's manual observations as :data:`OBSERVATION_COLUMNS` (nan: not observed;
    ``on_oxygen`` 1.0/0.0; ``consciousness`` its NEWS2 score)."""
    if observations is None:
        return (NAN, NAN, NAN, NAN)
    on_oxygen = NAN if observations.on_oxygen is None else float(observations.on_oxygen)
    level = observations.consciousness
    return (
        on_oxygen,
        NAN if observations.core_temp is None else float(observations.core_temp),
        NAN if observations.systolic_bp is None else float(observations.systolic_bp),
        NAN if level is None else float(_CONSCIOUSNESS[level]),
    )


# -- model scores -----------------------------------------------------------------------
class ScoreLike(Protocol):
    """A live or shadow model score (``stream.scoring.scorer.Score``)."""

    @property
    def shadow(self) -> bool: ...
    @property
    def probabilities(self) -> Mapping[str, float]: ...
    @property
    def thresholds(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class ModelColumns:
    """Every live score's classes, flat: the window each belongs to, its probability, the
    card's threshold (nan: none) and whether ``RuleSettings.model_outputs`` maps it to an
    alert kind."""

    window: np.ndarray
    probability: np.ndarray
    card_threshold: np.ndarray
    mapped: np.ndarray

    @classmethod
    def of(
        cls, scores: Sequence[Iterable[ScoreLike]], model_outputs: Mapping[str, str]
    ) -> ModelColumns:
        window: list[int] = []
        probability: list[float] = []
        card: list[float] = []
        mapped: list[bool] = []
        # A model's scores of a batch share their classes and thresholds: each distinct
        # (thresholds, classes) pair's columns are worked out once.
        layouts: dict[tuple[int, tuple[str, ...]], tuple[list[float], list[bool]]] = {}
        for index, window_scores in enumerate(scores):
            for score in window_scores:
                if score.shadow:  # shadow scores are written, never alerted on
                    continue
                thresholds = score.thresholds
                probabilities = score.probabilities
                key = (id(thresholds), tuple(probabilities))
                layout = layouts.get(key)
                if layout is None:
                    layout = layouts[key] = (
                        [thresholds.get(name, NAN) for name in key[1]],
                        [name in model_outputs for name in key[1]],
                    )
                window += repeat(index, len(key[1]))
                probability += probabilities.values()
                card += layout[0]
                mapped += layout[1]
        return cls(
            np.array(window, dtype=np.intp),
            np.array(probability, dtype=float),
            np.array(card, dtype=float),
            np.array(mapped, dtype=bool),
        )


# -- the screen -------------------------------------------------------------------------
@dataclass(frozen=True)
class News2Columns:
    """Each window's NEWS2 as :func:`~stream.alerts.news2.news2_partial` scores it:
    ``subscores`` is ``(PARAMETERS, windows)`` with :data:`ABSENT` for a parameter not
    scored, ``response`` an index into :data:`RESPONSES`. ``enabled`` False: NEWS2 is off
    for the patient (no score, no line)."""

    enabled: np.ndarray
    aggregate: np.ndarray
    subscores: np.ndarray
    response: np.ndarray

    def results(self) -> list[News2 | None]:
        """Each window's :data:`News2` (None: NEWS2 off for the patient). The score is a
        function of the subscores, so each distinct set is built once; the subscores
        dict is shared between windows: read-only."""
        # Subscores are ABSENT..3: one base-5 digit each.
        codes = ((self.subscores + 1) * _NEWS2_DIGITS[:, None]).sum(axis=0).tolist()
        return [
            (_NEWS2_BY_CODE.get(code) or _news2_result(code)) if enabled else None
            for code, enabled in zip(codes, self.enabled.tolist(), strict=True)
        ]


# One window's NEWS2 as News2Result holds it: (aggregate, subscores, partial, response).
News2 = tuple[int, dict[str, int], bool, str]
_NEWS2_DIGITS = 5 ** np.arange(len(PARAMETERS), dtype=np.int64)
_NEWS2_BY_CODE: dict[int, News2] = {}  # at most 5**7 entries


def _news2_result(code: int) -> News2:
    scored = [(code // 5**k) % 5 - 1 for k in range(len(PARAMETERS))]
    subscores = {name: s for name, s in zip(PARAMETERS, scored, strict=True) if s != ABSENT}
    aggregate = sum(subscores.values())
    any_three = 3 in subscores.values()
    found = (
        aggregate,
        subscores,
        len(subscores) < len(PARAMETERS),
        response_for(aggregate, any_three, RCP_2017),
    )
    _NEWS2_BY_CODE[code] = found
    return found


def news2_of(columns: News2Columns, index: int) -> News2:
    """One window's (aggregate, subscores, partial, response), as ``News2Result`` holds them."""
    scored = columns.subscores[:, index].tolist()
    subscores = {name: s for name, s in zip(PARAMETERS, scored, strict=True) if s != ABSENT}
    partial = len(subscores) < len(PARAMETERS)
    response = RESPONSES[int(columns.response[index])]
    return int(columns.aggregate[index]), subscores, partial, response


@dataclass(frozen=True)
class Screen:
    """What :func:`screen` found: ``quiet`` windows raise no condition (given an idle
    tracker); ``ecg_good`` is the window's ECG quality as ``EcgHistory.settled`` reads it."""

    quiet: np.ndarray
    ecg_good: np.ndarray
    news2: News2Columns


def _flag(values: np.ndarray) -> np.ndarray:
    """``trust.flag``: finite and >= 0.5."""
    return np.isfinite(values) & (values >= 0.5)


def _agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``trust._agree`` (False where either is nan)."""
    return np.maximum(a, b) <= np.minimum(a, b) * _AGREE


def _chart_value(values: np.ndarray, scale: float) -> np.ndarray:
    """``news2.chart_value``, same operations in the same order."""
    return np.floor(values * scale + 0.5 + _CHART_BIAS) / scale


def _band_scores(values: np.ndarray, bands: Bands) -> np.ndarray:
    """``news2.band_score`` of chart values (ABSENT where nan)."""
    uppers = np.array([upper for upper, _ in bands], dtype=float)
    scores = np.array([score for _, score in bands], dtype=np.int64)
    found = scores[np.minimum(np.searchsorted(uppers, values, side="left"), len(bands) - 1)]
    return np.where(np.isnan(values), ABSENT, found)


def _pulse_for_news2(
    f: np.ndarray,
    ecg_good: np.ndarray,
    ecg_poor: np.ndarray,
    ecg_absent: np.ndarray,
    detached: np.ndarray,
    ppg_good: np.ndarray,
    ppg_absent: np.ndarray,
    moving: np.ndarray,
    suppress: np.ndarray,
) -> np.ndarray:
    """``usable(trust.heart_rate(features, quality))``'s value (the displayed rate NEWS2
    scores), nan where there is none: the same branches, as masks."""
    ecg = f[:, _COLUMN["ecg_hr_bpm"]]
    ppg = f[:, _COLUMN["ppg_hr_bpm"]]
    device = f[:, _COLUMN["hr_device"]]
    finite_ecg, finite_ppg, finite_device = np.isfinite(ecg), np.isfinite(ppg), np.isfinite(device)
    good_ppg = np.where(ppg_good, ppg, NAN)
    finite_good_ppg = ppg_good & finite_ppg
    split = (
        finite_ecg
        & finite_good_ppg
        & finite_device
        & ~(_agree(ecg, good_ppg) | _agree(ecg, device) | _agree(good_ppg, device))
    )
    resting_ecg = ecg_good & ~moving & finite_ecg
    split &= ~(resting_ecg & _agree(good_ppg, 2 * ecg))  # a PPG at twice the ECG's rate
    outvoted = (
        finite_good_ppg
        & finite_device
        & _agree(good_ppg, device)
        & ~_agree(ecg, 0.5 * (good_ppg + device))
    )
    from_ecg = resting_ecg & ~outvoted & ~split
    from_ppg = ~from_ecg & ppg_good & finite_ppg & ~split
    from_device = ~from_ecg & ~from_ppg & ecg_absent & ppg_absent & finite_device
    fused = ~(from_ecg | from_ppg | from_device)
    # No trustworthy source: the estimates there are, fused (trust.heart_rate's tail).
    fused_ecg = np.where(ecg_good | ecg_poor, ecg, NAN)
    finite_fused_ecg = np.isfinite(fused_ecg)
    count = finite_fused_ecg.astype(np.int8) + finite_ppg + finite_device
    median = np.maximum(np.minimum(fused_ecg, ppg), np.minimum(np.maximum(fused_ecg, ppg), device))
    first = np.where(finite_fused_ecg, fused_ecg, np.where(finite_ppg, ppg, device))
    second = np.where(finite_fused_ecg & finite_ppg, ppg, device)
    fused_value = np.where(count == 3, median, first)
    # Two estimates that disagree, a detached sensor, or doubt under "suppress": unusable.
    unusable = (count == 0) | ((count == 2) & ~_agree(first, second)) | detached | suppress
    value = np.where(from_ecg, ecg, np.where(from_ppg, ppg, device))
    return np.where(fused, np.where(unusable, NAN, fused_value), value)


def news2_columns(
    f: np.ndarray,
    rules: np.ndarray,
    observations: np.ndarray,
    quality: tuple[np.ndarray, ...],
) -> News2Columns:
    """NEWS2 of every window: ``f`` features, ``rules`` :data:`RULE_COLUMNS` rows,
    ``observations`` :data:`OBSERVATION_COLUMNS` rows, ``quality`` as :func:`screen`
    judges it."""
    ecg_good, ecg_poor, ecg_absent, detached, ppg_good, ppg_poor, ppg_absent, moving = quality
    suppress = rules[:, _RULE["suppress"]] == 1.0
    chart = RCP_2017
    resp = f[:, _COLUMN["resp_rate"]]
    resp = np.where(~detached & ~(moving & suppress), resp, NAN)
    spo2 = f[:, _COLUMN["spo2"]]
    with np.errstate(invalid="ignore"):
        spo2 = np.where(np.isfinite(spo2) & (spo2 > 0) & ~(ppg_poor & suppress), spo2, NAN)
    pulse = _pulse_for_news2(
        f, ecg_good, ecg_poor, ecg_absent, detached, ppg_good, ppg_absent, moving, suppress
    )
    on_oxygen = observations[:, 0]
    scale2 = rules[:, _RULE["spo2_scale"]] == 2.0
    spo2_chart = _chart_value(spo2, _WHOLE)
    spo2_score = np.where(
        scale2,
        np.where(
            on_oxygen == 1.0,
            _band_scores(spo2_chart, chart.spo2_scale2_oxygen),
            _band_scores(spo2_chart, chart.spo2_scale2_air),
        ),
        _band_scores(spo2_chart, chart.spo2_scale1),
    )
    oxygen_score = np.where(
        np.isnan(on_oxygen), ABSENT, np.where(on_oxygen == 1.0, chart.oxygen_score, 0)
    )
    consciousness = observations[:, 3]
    subscores = np.stack(
        [
            _band_scores(_chart_value(resp, _WHOLE), chart.resp_rate),
            spo2_score,
            oxygen_score,
            _band_scores(_chart_value(observations[:, 2], _WHOLE), chart.systolic_bp),
            _band_scores(_chart_value(pulse, _WHOLE), chart.pulse),
            np.where(np.isnan(consciousness), ABSENT, consciousness).astype(np.int64),
            _band_scores(_chart_value(observations[:, 1], _TENTHS), chart.temperature),
        ]
    ).astype(np.int64)
    aggregate = np.where(subscores == ABSENT, 0, subscores).sum(axis=0)
    any_three = (subscores == 3).any(axis=0)
    response = np.where(
        aggregate >= chart.high_from,
        4,
        np.where(
            aggregate >= chart.medium_from,
            3,
            np.where(any_three, 2, np.where(aggregate >= 1, 1, 0)),
        ),
    )
    return News2Columns(rules[:, _RULE["news2"]] == 1.0, aggregate, subscores, response)


def screen(
    features: np.ndarray,
    rules: np.ndarray,
    models: ModelColumns | None = None,
    observations: np.ndarray | None = None,
    idle: np.ndarray | None = None,
) -> Screen:
    """Which windows provably raise no condition.

    ``features``: :func:`feature_matrix`; ``rules``: each window's :data:`RULE_COLUMNS`
    row; ``models``: the live scores (:meth:`ModelColumns.of`; none: no model scored);
    ``observations``: :data:`OBSERVATION_COLUMNS` rows (none: nothing observed); ``idle``:
    whether the window's device has no open track and an idle fall detector (none: the
    caller checks it per window).

    A window is quiet when its ECG and PPG are each good or absent (no poor-signal or
    detached alarm), every heart-rate estimate any source could give (displayed, last two
    beats, device), SpO2, respiration, temperature and battery are past their hysteresis
    margins inside the limits, no rhythm rule's index reaches its limit, no live model's
    class reaches its threshold less the hysteresis (nor its card threshold, which would
    ask for an explanation), no impact reaches the fall limit, and NEWS2 (when on) gives a
    response that raises no alert.
    """
    n = len(features)
    f = features
    r = rules
    if observations is None:
        observations = np.full((n, len(OBSERVATION_COLUMNS)), NAN)

    def feat(name: str) -> np.ndarray:
        return f[:, _COLUMN[name]]

    def rule(name: str) -> np.ndarray:
        return r[:, _RULE[name]]

    # Signal quality (trust.assess_quality).
    detached = _flag(feat("ecg_lead_off")) | _flag(feat("ecg_flat"))
    ecg_sqi = feat("ecg_sqi")
    finite_ecg_sqi = np.isfinite(ecg_sqi)
    with np.errstate(invalid="ignore"):
        ecg_good = (
            ~detached & finite_ecg_sqi & ~_flag(feat("ecg_saturated"))
            & (ecg_sqi >= rule("ecg_sqi_good"))
        )  # fmt: skip
        ecg_absent = ~detached & ~finite_ecg_sqi
        ecg_poor = ~detached & finite_ecg_sqi & ~ecg_good
        moving = _flag(feat("motion"))
        ppg_sqi = feat("ppg_sqi")
        ppg_absent = ~np.isfinite(ppg_sqi)
        ppg_good = ~ppg_absent & (ppg_sqi >= rule("ppg_sqi_good")) & ~moving
        ppg_poor = ~ppg_absent & ~ppg_good
    quiet = (ecg_good | ecg_absent) & (ppg_good | ppg_absent)

    # Vital-sign limits, all at once: every heart-rate estimate a source could offer
    # against both heart-rate limits, the other vitals as read.
    values = np.empty((n, len(_CHECKS)))
    values[:, : len(_HR_ESTIMATES)] = f[:, _HR_COLUMNS]
    values[:, len(_HR_ESTIMATES) : 2 * len(_HR_ESTIMATES)] = f[:, _HR_COLUMNS]
    spo2, resp = feat("spo2"), feat("resp_rate")
    core_temp = observations[:, 1]
    with np.errstate(invalid="ignore"):
        values[:, _CHECK_SLOT["desaturation"]] = np.where(spo2 > 0, spo2, NAN)
        values[:, _CHECK_SLOT["tachypnoea"]] = resp
        values[:, _CHECK_SLOT["bradypnoea"]] = resp
        temperature = np.where(
            np.isnan(core_temp), feat("temp") + rule("skin_temp_offset_c"), core_temp
        )
        values[:, _CHECK_SLOT["fever"]] = temperature
        values[:, _CHECK_SLOT["hypothermia"]] = temperature
        values[:, _CHECK_SLOT["low_battery"]] = feat("battery")
        excess = _CHECK_SIGNS * (values - r[:, _CHECK_LIMITS])
        inside = ~np.isfinite(values) | (excess < -r[:, _CHECK_MARGINS])
    quiet &= inside.all(axis=1)

    # Rhythm rules, fall, models.
    with np.errstate(invalid="ignore"):
        quiet &= ~(feat("rr_irregularity") >= rule("af_rr_irregularity"))
        quiet &= ~(feat("ectopic_fraction") >= rule("ventricular_ectopic_fraction"))
        impact = feat("impact_g")
        quiet &= ~(np.isfinite(impact) & (impact >= rule("fall_impact_g")))
    if models is not None and len(models.window):
        quiet &= ~_loud_windows(models, r, n)

    news2 = news2_columns(
        f, r, observations,
        (ecg_good, ecg_poor, ecg_absent, detached, ppg_good, ppg_poor, ppg_absent, moving),
    )  # fmt: skip
    alerting = r[:, _RULE["alerting_routine"] :][np.arange(n), news2.response] == 1.0
    quiet &= ~(news2.enabled & alerting)
    if idle is not None:
        quiet &= idle
    return Screen(quiet, ecg_good, news2)


def _loud_windows(models: ModelColumns, rules: np.ndarray, n: int) -> np.ndarray:
    """Windows with a live class at or past where the model rules raise a condition
    (``threshold - model_hysteresis``; the card's threshold or ``model_threshold``), or
    at its card threshold (where the worker asks the scorer for an explanation). An
    infinite probability counts as loud; nan as quiet, as the rules skip it."""
    index = models.window
    card = models.card_threshold
    threshold = np.where(np.isnan(card), rules[index, _RULE["model_threshold"]], card)
    rule_limit = np.minimum(threshold, threshold - rules[index, _RULE["model_hysteresis"]])
    limit = np.where(models.mapped, rule_limit, np.inf)
    limit = np.where(np.isnan(card), limit, np.minimum(limit, card))
    p = models.probability
    with np.errstate(invalid="ignore"):
        loud_class = ~(np.isnan(p) | (p < limit))
    loud = np.zeros(n, dtype=bool)
    loud[index[loud_class]] = True
    return loud


class ScreenMismatch(AssertionError):
    """A window the screen cleared did raise or change something when judged in full
    (the worker's verification mode, ``Pipeline.verify_screen``)."""
