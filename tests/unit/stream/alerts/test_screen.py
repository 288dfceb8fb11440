"""The quiet-window screen (stream/alerts/screen.py) against the rules it stands in for.

Each boundary test puts one value just inside the hysteresis margin and just on it, and
checks the screen clears the first and not the second, as :func:`rules.evaluate` raises
nothing for the first and a (sustain-only) condition for the second. The randomized
tests check, on windows near every limit, that a cleared window raises nothing and that
the vectorized NEWS2 is the rules' NEWS2 for every window, cleared or not.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pytest

import stream.alerts.screen as screen_module
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
from stream.alerts.rules import ModelScores, evaluate
from stream.alerts.screen import (
    ABSENT,
    RULE_COLUMNS,
    ModelColumns,
    RuleRows,
    feature_matrix,
    news2_of,
    observation_row,
    rule_row,
    screen,
)
from stream.alerts.trust import assess_quality
from stream.config import RuleSettings
from stream.records import Observations, PatientContext, Profile
from stream.signal.window import FEATURE_NAMES
from tests.unit.stream.alerts.harness import RULES, context, quiet_features

HR_NAMES = ("ecg_hr_bpm", "ecg_hr_recent_bpm", "ppg_hr_bpm", "ppg_hr_recent_bpm", "hr_device")


@dataclass(frozen=True)
class Score:
    """A scorer's Score, as the screen reads it."""

    probabilities: dict[str, float]
    thresholds: dict[str, float] = field(default_factory=dict)
    shadow: bool = False


def screened(
    windows: list[Mapping[str, float]],
    ctx: PatientContext | None = None,
    rules: RuleSettings = RULES,
    observations: Observations | None = None,
    scores: list[list[Score]] | None = None,
):
    ctx = ctx or context()
    row = rule_row(rules, ctx.profile)
    return screen(
        feature_matrix(windows),
        np.stack([row] * len(windows)),
        ModelColumns.of(scores or [[] for _ in windows], rules.model_outputs),
        np.array([observation_row(observations)] * len(windows), dtype=float),
    )


def judged(
    features: Mapping[str, float],
    ctx: PatientContext | None = None,
    rules: RuleSettings = RULES,
    observations: Observations | None = None,
    scores: list[Score] | None = None,
):
    live = [
        ModelScores("m", "1", s.probabilities, s.thresholds) for s in scores or [] if not s.shadow
    ]
    return evaluate(ctx or context(), 100.0, features, live, observations, rules)


def hr(value: float) -> dict[str, float]:
    return dict.fromkeys(HR_NAMES, value)


def _edges(spec: Limit, rules: RuleSettings) -> tuple[float, float]:
    """A value just inside the hysteresis margin (nothing raised) and one on it
    (a sustain-only condition)."""
    limit, margin = getattr(rules, spec.limit), getattr(rules, spec.hysteresis)
    edge = limit - margin if spec.above else limit + margin
    inside = edge - 0.01 if spec.above else edge + 0.01
    return inside, edge


LIMIT_CASES = [
    (TACHYCARDIA, hr, {}),
    (BRADYCARDIA, hr, {}),
    (DESATURATION, lambda v: {"spo2": v}, {}),
    (DESATURATION_SCALE2, lambda v: {"spo2": v}, {"spo2_scale": 2}),
    (TACHYPNOEA, lambda v: {"resp_rate": v}, {}),
    (BRADYPNOEA, lambda v: {"resp_rate": v}, {}),
    (FEVER, lambda v: {"temp": v}, {}),
    (HYPOTHERMIA, lambda v: {"temp": v}, {}),
    (LOW_BATTERY, lambda v: {"battery": v}, {}),
]


@pytest.mark.parametrize(
    ("spec", "changes", "profile"), LIMIT_CASES, ids=lambda c: getattr(c, "kind", "")
)
def test_a_value_just_inside_the_margin_is_quiet_and_one_on_it_is_not(spec, changes, profile):
    ctx = context(**profile)
    inside, edge = _edges(spec, RULES)
    windows = [quiet_features(**changes(inside)), quiet_features(**changes(edge))]
    assert screened(windows, ctx).quiet.tolist() == [True, False]
    assert not judged(windows[0], ctx).conditions
    [held] = [c for c in judged(windows[1], ctx).conditions if c.kind == spec.kind]
    assert held.sustain_only


@pytest.mark.parametrize("name", HR_NAMES)
def test_any_heart_rate_source_near_a_limit_keeps_the_window(name):
    inside, edge = _edges(TACHYCARDIA, RULES)
    assert screened([quiet_features(**{name: inside})]).quiet.tolist() == [True]
    assert screened([quiet_features(**{name: edge})]).quiet.tolist() == [False]


@pytest.mark.parametrize(
    ("spec", "changes", "profile"), LIMIT_CASES, ids=lambda c: getattr(c, "kind", "")
)
def test_a_patients_override_moves_the_screens_limit(spec, changes, profile):
    shift = 3.0 if spec.above else -3.0  # an override towards the normal range
    overrides = {spec.limit: getattr(RULES, spec.limit) - shift}
    ctx = context(**profile, thresholds=overrides)
    inside, _ = _edges(spec, RULES)  # quiet under the default limits
    window = quiet_features(**changes(inside))
    assert screened([window], context(**profile)).quiet.tolist() == [True]
    assert screened([window], ctx).quiet.tolist() == [False]
    assert judged(window, ctx).conditions
    hysteresis = {spec.hysteresis: 0.0}  # and a margin override narrows the band
    ctx = context(**profile, thresholds=hysteresis)
    assert screened([window], ctx).quiet.tolist() == [True]


def test_the_rule_rows_are_cached_per_profile_object(monkeypatch):
    built = []
    monkeypatch.setattr(
        screen_module,
        "rule_row",
        lambda rules, profile: built.append(profile) or rule_row(rules, profile),
    )
    rows = RuleRows(RULES)
    ctx = context()
    assert rows.row(ctx).tolist() == rule_row(RULES, ctx.profile).tolist()
    other_device = PatientContext(device_id="dev-2", patient="p-2", ward="A", profile=Profile())
    overridden = context(thresholds={"tachycardia_bpm": 100.0})  # dev-1 re-enrolled
    matrix = rows.matrix([ctx, ctx, other_device])
    assert len(built) == 2 and (matrix == rule_row(RULES, ctx.profile)).all()
    assert rows.matrix([ctx, other_device]).shape == (2, len(RULE_COLUMNS)) and len(built) == 2
    column = RULE_COLUMNS.index("tachycardia")
    assert rows.matrix([overridden, other_device])[:, column].tolist() == [100.0, 120.0]
    assert len(built) == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"ecg_sqi": 0.3},  # poor ECG
        {"ppg_sqi": 0.3},  # poor PPG
        {"ecg_lead_off": 1.0},
        {"ecg_flat": 1.0},
        {"ecg_saturated": 1.0},
        {"motion": 1.0},  # makes the PPG poor
        {"rr_irregularity": RULES.af_rr_irregularity},
        {"ectopic_fraction": RULES.ventricular_ectopic_fraction},
        {"impact_g": RULES.fall_impact_g},
    ],
)
def test_signal_rhythm_and_impact_limits_keep_the_window(changes):
    indices = ("rr_irregularity", "ectopic_fraction", "impact_g")
    below = {k: v - 1e-6 for k, v in changes.items() if k in indices}
    result = screened([quiet_features(**changes), quiet_features(**below)])
    assert result.quiet.tolist() == [False, True]
    assert not judged(quiet_features(**below)).conditions


def test_absent_waveforms_are_quiet_on_the_devices_rate():
    window = quiet_features(
        ecg_sqi=math.nan, ppg_sqi=math.nan, **{**hr(math.nan), "hr_device": 72.0}
    )
    result = screened([window])
    assert result.quiet.tolist() == [True] and result.ecg_good.tolist() == [False]
    assert not judged(window).conditions


def test_models_near_their_thresholds_keep_the_window():
    rules = RULES
    af_limit = 0.7 - rules.model_hysteresis
    windows = [quiet_features()] * 5
    scores = [
        [Score({"af": af_limit - 1e-6}, {"af": 0.7})],  # below the hysteresis band
        [Score({"af": af_limit}, {"af": 0.7})],  # in it: sustain-only
        [Score({"normal": 0.9}, {"normal": 0.5})],  # unmapped, at its card threshold
        [Score({"af": 0.99}, {"af": 0.7}, shadow=True)],  # shadow: never alerted on
        [Score({"deterioration": rules.model_threshold - rules.model_hysteresis})],  # no card
    ]
    assert screened(windows, scores=scores).quiet.tolist() == [True, False, False, True, False]
    assert not judged(windows[0], scores=scores[0]).conditions
    assert judged(windows[1], scores=scores[1]).conditions
    ctx = context(thresholds={"model_threshold": 0.9})  # the override without a card
    assert screened(windows[4:], ctx, scores=scores[4:]).quiet.tolist() == [True]
    assert not judged(windows[4], ctx, scores=scores[4]).conditions


def test_an_alerting_news2_keeps_the_window():
    # Each vital inside its limits, but together NEWS2 5 (medium): resp 22 (2), SpO2 94
    # (1), pulse 112 (2), which raises a news2 condition.
    window = quiet_features(resp_rate=22.0, spo2=94.0, **hr(112.0))
    assert screened([window]).quiet.tolist() == [False]
    assert [c.kind for c in judged(window).conditions] == ["news2"]
    # Without NEWS2 for the patient, nothing is raised, and there is no score.
    off = context(news2=False)
    result = screened([window], off)
    assert result.quiet.tolist() == [True] and not result.news2.enabled[0]
    assert judged(window, off).news2 is None and not judged(window, off).conditions


def test_observed_core_temperature_replaces_the_devices():
    window = quiet_features(temp=36.8)
    febrile = Observations(core_temp=38.5)
    assert screened([window], observations=febrile).quiet.tolist() == [False]
    assert screened([quiet_features(temp=39.5)], observations=Observations(core_temp=37.0)).quiet[0]


def test_missing_features_read_as_nan():
    window = {name: value for name, value in quiet_features().items() if name != "spo2"}
    matrix = feature_matrix([window, quiet_features()])
    assert math.isnan(matrix[0, FEATURE_NAMES.index("spo2")])
    assert matrix[1, FEATURE_NAMES.index("spo2")] == 97.0


# -- randomized: windows near every limit ----------------------------------------------
def _random_window(rng: random.Random) -> dict[str, float]:
    """A calm window with a few values moved, most near a limit, some far past one."""

    def maybe(value: float, missing: float = 0.15) -> float:
        return math.nan if rng.random() < missing else value

    base_hr = rng.uniform(35, 160)
    moves = {
        "ecg_hr_bpm": lambda: maybe(base_hr * rng.choice([1.0, 1.0, rng.uniform(0.6, 1.5)])),
        "ecg_hr_recent_bpm": lambda: maybe(base_hr * rng.uniform(0.9, 1.1), 0.3),
        "ppg_hr_bpm": lambda: maybe(base_hr * rng.choice([1.0, rng.uniform(0.7, 1.4)])),
        "ppg_hr_recent_bpm": lambda: maybe(base_hr * rng.uniform(0.9, 1.1), 0.3),
        "hr_device": lambda: maybe(base_hr * rng.choice([1.0, rng.uniform(0.7, 1.4)])),
        "spo2": lambda: maybe(rng.choice([rng.uniform(78, 100), round(rng.uniform(80, 100))])),
        "resp_rate": lambda: maybe(rng.uniform(4, 36)),
        "temp": lambda: maybe(rng.uniform(33, 40.5)),
        "battery": lambda: maybe(rng.uniform(0, 100)),
        "ecg_sqi": lambda: maybe(rng.choice([0.9, rng.uniform(0, 1)]), 0.2),
        "ppg_sqi": lambda: maybe(rng.choice([0.9, rng.uniform(0, 1)]), 0.2),
        "ecg_lead_off": lambda: float(rng.random() < 0.3),
        "ecg_flat": lambda: float(rng.random() < 0.3),
        "ecg_saturated": lambda: float(rng.random() < 0.3),
        "motion": lambda: float(rng.random() < 0.5),
        "still": lambda: maybe(float(rng.random() < 0.7)),
        "rr_irregularity": lambda: maybe(rng.uniform(0, 0.15)),
        "ectopic_fraction": lambda: maybe(rng.uniform(0, 0.3)),
        "impact_g": lambda: maybe(rng.uniform(0.5, 4.0)),
    }
    names = rng.sample(sorted(moves), rng.choice([1, 1, 2, 3, len(moves)]))
    if "ecg_hr_bpm" in names:  # a heart-rate change moves every source, as a real one does
        names += [n for n in HR_NAMES if n not in names and rng.random() < 0.8]
    return quiet_features(**{name: moves[name]() for name in names})


CONTEXTS = [
    context(),
    context(spo2_scale=2),
    context(news2=False),
    context(thresholds={"tachycardia_bpm": 100.0, "hr_hysteresis_bpm": 2.0, "fever_c": 37.6}),
]
OBSERVATIONS = [
    None,
    Observations(on_oxygen=True, systolic_bp=104.0, consciousness="A", core_temp=38.2),
    Observations(on_oxygen=False, consciousness="V"),
]


@pytest.mark.parametrize("suppress", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_cleared_windows_raise_nothing_and_news2_matches_the_rules(seed, suppress):
    rng = random.Random(seed)
    rules = RuleSettings(poor_signal_action="suppress") if suppress else RULES
    cleared = 0
    for ctx in CONTEXTS:
        for observations in OBSERVATIONS:
            windows = [_random_window(rng) for _ in range(150)]
            result = screened(windows, ctx, rules, observations)
            for index, window in enumerate(windows):
                full = judged(window, ctx, rules, observations)
                ecg_good = assess_quality(window, rules).ecg == "good"
                assert result.ecg_good[index] == ecg_good  # as EcgHistory.settled reads it
                if result.quiet[index]:
                    cleared += 1
                    assert not full.conditions, (window, full.conditions)
                if full.news2 is None:
                    assert not result.news2.enabled[index]
                    continue
                expected = (
                    full.news2.aggregate,
                    full.news2.subscores,
                    full.news2.partial,
                    full.news2.response,
                )
                assert news2_of(result.news2, index) == expected, window
    assert cleared > 50  # the randomized windows do exercise the cleared path


def test_unscored_news2_parameters_are_absent():
    result = screened([quiet_features(resp_rate=math.nan, spo2=math.nan, **hr(math.nan))])
    assert (result.news2.subscores[:, 0] == ABSENT).all()
    assert news2_of(result.news2, 0) == (0, {}, True, "routine")
