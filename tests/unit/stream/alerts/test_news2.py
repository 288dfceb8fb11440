"""NEWS2 (RCP 2017 chart 1 and 4): every row, both edges of every band, the response."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.alerts.news2 import PARAMETERS, chart_value, news2_partial, response_for

# (value, expected sub-score) at both edges of every band of RCP 2017 chart 1.
RESP_RATE = [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)]
SPO2_SCALE1 = [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SPO2_SCALE2_AIR = [
    (50, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (97, 0),
    (100, 0),
]  # fmt: skip
SPO2_SCALE2_OXYGEN = [
    (50, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 1), (94, 1),
    (95, 2), (96, 2), (97, 3), (100, 3),
]  # fmt: skip
SYSTOLIC_BP = [(60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0),
               (220, 3), (260, 3)]  # fmt: skip
PULSE = [(20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
         (130, 2), (131, 3), (200, 3)]  # fmt: skip
TEMPERATURE = [(33.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1),
               (39.0, 1), (39.1, 2), (41.0, 2)]  # fmt: skip
CONSCIOUSNESS = [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)]


@pytest.mark.parametrize(("value", "score"), RESP_RATE)
def test_respiration_rate_row(value: float, score: int) -> None:
    assert news2_partial(resp_rate=value).subscores == {"resp_rate": score}


@pytest.mark.parametrize("on_oxygen", [False, True])
@pytest.mark.parametrize(("value", "score"), SPO2_SCALE1)
def test_spo2_scale1_row_ignores_oxygen(value: float, score: int, on_oxygen: bool) -> None:
    result = news2_partial(spo2=value, on_oxygen=on_oxygen, scale=1)
    assert result.subscores["spo2"] == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE2_AIR)
def test_spo2_scale2_on_air_row(value: float, score: int) -> None:
    assert news2_partial(spo2=value, on_oxygen=False, scale=2).subscores["spo2"] == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE2_OXYGEN)
def test_spo2_scale2_on_oxygen_row(value: float, score: int) -> None:
    assert news2_partial(spo2=value, on_oxygen=True, scale=2).subscores["spo2"] == score


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize(("on_oxygen", "score"), [(False, 0), (True, 2)])
def test_air_or_oxygen_row(on_oxygen: bool, score: int, scale: int) -> None:
    result = news2_partial(on_oxygen=on_oxygen, scale=scale)  # type: ignore[arg-type]
    assert result.subscores == {"air_or_oxygen": score}


@pytest.mark.parametrize(("value", "score"), SYSTOLIC_BP)
def test_systolic_bp_row(value: float, score: int) -> None:
    assert news2_partial(systolic_bp=value).subscores == {"systolic_bp": score}


@pytest.mark.parametrize(("value", "score"), PULSE)
def test_pulse_row(value: float, score: int) -> None:
    assert news2_partial(pulse=value).subscores == {"pulse": score}


@pytest.mark.parametrize(("value", "score"), CONSCIOUSNESS)
def test_consciousness_row(value: str, score: int) -> None:
    assert news2_partial(consciousness=value).subscores == {"consciousness": score}  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "score"), TEMPERATURE)
def test_temperature_row(value: float, score: int) -> None:
    assert news2_partial(temp=value).subscores == {"temperature": score}


@pytest.mark.parametrize(
    ("kwargs", "parameter", "score"),
    [
        # Half-up rounding to the chart's resolution, not Python's half-to-even round().
        ({"pulse": 90.4}, "pulse", 0),
        ({"pulse": 90.5}, "pulse", 1),
        ({"pulse": 40.5}, "pulse", 1),
        ({"resp_rate": 20.5}, "resp_rate", 2),
        ({"resp_rate": 8.49}, "resp_rate", 3),
        ({"spo2": 95.5}, "spo2", 0),
        ({"systolic_bp": 219.5}, "systolic_bp", 3),
        ({"temp": 38.05}, "temperature", 1),
        ({"temp": 38.04}, "temperature", 0),
        ({"temp": 35.05}, "temperature", 1),
        ({"temp": 35.04}, "temperature", 3),
    ],
)
def test_fractional_values_round_half_up_to_the_chart(
    kwargs: dict, parameter: str, score: int
) -> None:
    assert news2_partial(**kwargs).subscores[parameter] == score


def test_chart_value_rounds_half_up() -> None:
    assert chart_value(90.5) == 91
    assert chart_value(91.5) == 92
    assert chart_value(38.05, 1) == 38.1
    assert chart_value(36.04, 1) == 36.0


@pytest.mark.parametrize(
    ("aggregate", "single_three", "response"),
    [
        (0, False, "routine"),
        (1, False, "low"),
        (4, False, "low"),
        (3, True, "low-medium"),
        (4, True, "low-medium"),
        (5, False, "medium"),
        (5, True, "medium"),
        (6, False, "medium"),
        (7, False, "high"),
        (7, True, "high"),
        (20, True, "high"),
    ],
)
def test_clinical_response_bands(aggregate: int, single_three: bool, response: str) -> None:
    assert response_for(aggregate, single_three) == response


def test_response_from_observations() -> None:
    # 1 + 2 = 3 from two parameters is low; 3 from one parameter is low-medium.
    assert news2_partial(pulse=95, resp_rate=22).response == "low"
    assert news2_partial(pulse=35).response == "low-medium"
    # resp 2 + SpO2 1 + pulse 2 = 5: medium.
    assert news2_partial(resp_rate=22, spo2=95, pulse=112).response == "medium"
    # resp 3 + SpO2 3 + pulse 1 = 7: high.
    assert news2_partial(resp_rate=26, spo2=90, pulse=95).response == "high"


def test_wearable_only_score_is_partial_and_lists_coverage() -> None:
    result = news2_partial(resp_rate=16, spo2=97, pulse=72)
    assert result.partial
    assert result.covered == ("resp_rate", "spo2", "pulse")
    assert set(result.missing) == {"air_or_oxygen", "systolic_bp", "consciousness", "temperature"}
    assert result.on_oxygen_assumed_air
    assert result.aggregate == 0 and result.response == "routine"


def test_full_observations_make_a_complete_score() -> None:
    result = news2_partial(
        resp_rate=22, spo2=95, on_oxygen=True, temp=38.5, pulse=112, systolic_bp=105,
        consciousness="A",
    )  # fmt: skip
    assert not result.partial
    assert result.covered == PARAMETERS
    assert result.subscores == {
        "resp_rate": 2, "spo2": 1, "air_or_oxygen": 2, "systolic_bp": 1, "pulse": 2,
        "consciousness": 0, "temperature": 1,
    }  # fmt: skip
    assert result.aggregate == 9 and result.response == "high"


@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_values_score_nothing(missing: float | None) -> None:
    result = news2_partial(resp_rate=missing, spo2=missing, pulse=missing, temp=missing)
    assert result.subscores == {} and result.covered == ()
    assert result.response == "routine"


optional_float = st.one_of(st.none(), st.floats(0, 300, allow_nan=False))


@given(
    resp_rate=optional_float,
    spo2=st.one_of(st.none(), st.floats(40, 100)),
    on_oxygen=st.one_of(st.none(), st.booleans()),
    temp=st.one_of(st.none(), st.floats(25, 45)),
    pulse=optional_float,
    systolic_bp=st.one_of(st.none(), st.floats(30, 300)),
    consciousness=st.one_of(st.none(), st.sampled_from("ACVPU")),
    scale=st.sampled_from([1, 2]),
)
def test_aggregate_is_the_sum_of_subscores(**kwargs: object) -> None:
    result = news2_partial(**kwargs)  # type: ignore[arg-type]
    assert result.aggregate == sum(result.subscores.values())
    assert all(0 <= s <= 3 for s in result.subscores.values())
    assert set(result.covered) | set(result.missing) == set(PARAMETERS)
    assert result.any_single_three == (3 in result.subscores.values())
    assert result.response == response_for(result.aggregate, result.any_single_three)


@given(st.floats(40, 100), st.floats(40, 100))
def test_scale1_spo2_score_never_rises_with_saturation(low: float, high: float) -> None:
    low, high = sorted((low, high))
    score = news2_partial(spo2=low).subscores["spo2"]
    assert news2_partial(spo2=high).subscores["spo2"] <= score
