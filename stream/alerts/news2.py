"""The National Early Warning Score 2 (NEWS2): the chart, the score, the clinical response.

Source: Royal College of Physicians, *National Early Warning Score (NEWS) 2*, 2017,
chart 1 (scoring) and chart 4 (clinical response). Pure code, no I/O.

A wearable measures only some NEWS2 parameters (respiration rate, SpO2, pulse); blood
pressure, consciousness, supplemental oxygen and core temperature come from manual
observations (``Frame.observations``) when a nurse or device sends them. The result
therefore says which parameters it covers and is labelled *partial* when any is missing.
A missing parameter scores nothing, so a partial score can only under-estimate.

Temperature: skin temperature is not core temperature, so the caller passes only a core
temperature (``Observations.core_temp``) as ``temp``; stream/rules.py never scores skin
temperature as NEWS2 temperature (its fever rule uses skin temperature with its own
offset instead).

Edges: the chart records whole numbers (temperature to 0.1 °C), so a measured value is
first rounded half-up to the chart's resolution (90.5 bpm -> 91 scores 1, 90.4 -> 90
scores 0; 38.05 °C -> 38.1 scores 1), then looked up in bands written as inclusive
upper bounds. Python's ``round`` rounds half to even (``round(90.5) == 90``), a common
source of wrong edges, so :func:`chart_value` rounds half-up explicitly.

Example::

    >>> r = news2_partial(resp_rate=22, spo2=95, pulse=112)
    >>> r.aggregate, r.subscores, r.partial, r.response
    (5, {'resp_rate': 2, 'spo2': 1, 'pulse': 2}, True, 'medium')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Response = Literal["routine", "low", "low-medium", "medium", "high"]
Consciousness = Literal["A", "C", "V", "P", "U"]

PARAMETERS = (
    "resp_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

# A band list maps a chart value to a score: the first (inclusive upper bound, score)
# whose bound is >= the value; the last bound is infinite.
Bands = tuple[tuple[float, int], ...]
_INF = math.inf


@dataclass(frozen=True)
class News2Chart:
    """The scoring chart as data. Defaults are RCP 2017 chart 1; do not tune them per site:
    a changed chart is no longer NEWS2 (alerting on the score is tuned in RuleSettings)."""

    resp_rate: Bands = ((8, 3), (11, 1), (20, 0), (24, 2), (_INF, 3))
    spo2_scale1: Bands = ((91, 3), (93, 2), (95, 1), (_INF, 0))
    # Scale 2 (hypercapnic respiratory failure, target 88-92 %): >= 93 % scores 0 on air
    # but 1/2/3 on oxygen, because over-oxygenation is the danger there.
    spo2_scale2_air: Bands = ((83, 3), (85, 2), (87, 1), (_INF, 0))
    spo2_scale2_oxygen: Bands = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2), (_INF, 3))
    oxygen_score: int = 2
    systolic_bp: Bands = ((90, 3), (100, 2), (110, 1), (219, 0), (_INF, 3))
    pulse: Bands = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (_INF, 3))
    # New confusion, voice, pain or unresponsive all score 3.
    consciousness: tuple[tuple[str, int], ...] = (
        ("A", 0),
        ("C", 3),
        ("V", 3),
        ("P", 3),
        ("U", 3),
    )
    temperature: Bands = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (_INF, 2))
    # Chart 4: aggregate 5-6 -> medium, >= 7 -> high; any single 3 -> low-medium.
    medium_from: int = 5
    high_from: int = 7


RCP_2017 = News2Chart()


@dataclass(frozen=True)
class News2Result:
    """A NEWS2 score and what it covers."""

    aggregate: int
    subscores: dict[str, int]
    covered: tuple[str, ...]
    missing: tuple[str, ...]
    any_single_three: bool
    response: Response
    scale: Literal[1, 2]
    on_oxygen_assumed_air: bool = field(default=False)

    @property
    def partial(self) -> bool:
        """True when some NEWS2 parameters were not measured (so the score may be low)."""
        return bool(self.missing)


def chart_value(value: float, decimals: int = 0) -> float:
    """``value`` rounded half-up to the chart's resolution (whole numbers; 0.1 °C).

    The tiny bias absorbs binary representation error (38.05 is stored as 38.0499…),
    so values that read as an exact half round up as a nurse would round them.
    """
    scale = 10.0**decimals
    return math.floor(value * scale + 0.5 + 1e-7) / scale


def band_score(value: float, bands: Bands) -> int:
    """Score of an already chart-rounded value in inclusive-upper-bound bands."""
    for upper, score in bands:
        if value <= upper:
            return score
    raise ValueError(f"{value} is beyond every band")  # unreachable: last bound is infinite


def _measured(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def response_for(aggregate: int, any_single_three: bool, chart: News2Chart = RCP_2017) -> Response:
    """The RCP 2017 clinical response band (chart 4) for an aggregate score."""
    if aggregate >= chart.high_from:
        return "high"
    if aggregate >= chart.medium_from:
        return "medium"
    if any_single_three:
        return "low-medium"
    return "low" if aggregate >= 1 else "routine"


def news2_partial(
    resp_rate: float | None = None,
    spo2: float | None = None,
    on_oxygen: bool | None = None,
    temp: float | None = None,
    pulse: float | None = None,
    systolic_bp: float | None = None,
    consciousness: Consciousness | None = None,
    scale: Literal[1, 2] = 1,
    chart: News2Chart = RCP_2017,
) -> News2Result:
    """Score the parameters that are known (``None`` or nan = not measured).

    ``temp`` must be a core temperature. ``on_oxygen`` unknown is scored as air (0) and
    listed as missing, and flagged ``on_oxygen_assumed_air`` when SpO2 was scored, since
    on scale 2 it also changes the SpO2 score.
    """
    subscores: dict[str, int] = {}
    if (value := _measured(resp_rate)) is not None:
        subscores["resp_rate"] = band_score(chart_value(value), chart.resp_rate)
    if (value := _measured(spo2)) is not None:
        if scale == 1:
            bands = chart.spo2_scale1
        else:
            bands = chart.spo2_scale2_oxygen if on_oxygen else chart.spo2_scale2_air
        subscores["spo2"] = band_score(chart_value(value), bands)
    if on_oxygen is not None:
        subscores["air_or_oxygen"] = chart.oxygen_score if on_oxygen else 0
    if (value := _measured(systolic_bp)) is not None:
        subscores["systolic_bp"] = band_score(chart_value(value), chart.systolic_bp)
    if (value := _measured(pulse)) is not None:
        subscores["pulse"] = band_score(chart_value(value), chart.pulse)
    if consciousness is not None:
        subscores["consciousness"] = next(s for c, s in chart.consciousness if c == consciousness)
    if (value := _measured(temp)) is not None:
        subscores["temperature"] = band_score(chart_value(value, 1), chart.temperature)

    aggregate = sum(subscores.values())
    any_three = any(score == 3 for score in subscores.values())
    return News2Result(
        aggregate=aggregate,
        subscores=subscores,
        covered=tuple(p for p in PARAMETERS if p in subscores),
        missing=tuple(p for p in PARAMETERS if p not in subscores),
        any_single_three=any_three,
        response=response_for(aggregate, any_three, chart),
        scale=scale,
        on_oxygen_assumed_air=on_oxygen is None and "spo2" in subscores,
    )
