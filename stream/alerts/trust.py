"""How far one window's vital signs can be trusted, and where each comes from.

Pure code. :func:`assess_quality` judges the window's ECG and PPG; the readings
(:func:`heart_rate`, :func:`spo2_reading`, :func:`respiration_reading`,
:func:`temperature_reading`) pick each vital sign's most trustworthy source;
:func:`apply_trust` and :func:`rhythm_trust` carry that trust into the conditions the
rules (:mod:`stream.alerts.rules`, :mod:`stream.alerts.limits`) raise.

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
if they agree within ``HR_SOURCES_AGREE`` (none if not); a good ECG's rate that a good PPG
and the device, agreeing, both contradict is not believed (a rate alarm then reads the
one of the two nearer to the ECG: after a step both lag it, the nearer has followed it
further; and the ECG's crossing may begin the alarm's onset wait, see
:func:`resting_ecg_rate` and ``rules._ecg_begun``); while the wearer moves, a rate
alarm needs the device's own reading to back it. Rhythm (AF, ventricular runs, from rules
or the rhythm model) is analysed only at rest, on an ECG that is good and not clipped; a
ventricular run starts an alarm only on an ECG that has been good for ``RHYTHM_SETTLE_S``
(:class:`EcgHistory`).
Tachycardia and bradycardia read the rate over the last two beats, so they follow a step
change within two beats and their onset delay is what filters odd beats; NEWS2 scores the
displayed rate (averaged recent intervals), a steadier figure for a score meant to be
trended.

Temperature: the device measures skin temperature, which is not core temperature. It is
never scored as NEWS2 temperature (only ``Observations.core_temp`` is). The fever and
hypothermia rules use ``core_temp`` when observed, otherwise device temperature +
``rules.skin_temp_offset_c`` (default 0: the simulator and the patches we target report a
core-equivalent temperature; set the offset for devices that report raw skin temperature).

>>> from stream.config import RuleSettings
>>> window = {"ecg_sqi": 0.9, "ecg_hr_bpm": 190.0, "ppg_sqi": 0.9, "ppg_hr_bpm": 100.0,
...           "hr_device": 104.0, "motion": 1.0}
>>> quality = assess_quality(window, RuleSettings())
>>> quality.ecg, quality.ppg, quality.moving, quality.ecg_disputed
('good', 'poor', True, True)
>>> heart_rate(window, quality)  # the walking wearer's ECG counts artefact: outvoted
Reading(value=104.0, source='device', trust=<Trust.DOUBTFUL: 'doubtful'>)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal, NamedTuple

from stream.alerts.conditions import Condition
from stream.config import RuleSettings
from stream.records import Observations, Priority

_STEP_DOWN: dict[str, Priority] = {"high": "medium", "medium": "low", "low": "low"}
# Two heart-rate estimates more than this fraction apart: at least one is artefact.
HR_SOURCES_AGREE = 0.2


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


def feature(features: Mapping[str, float], name: str) -> float:
    """One feature of the window, nan when missing."""
    value = features.get(name)
    return math.nan if value is None else value


def flag(features: Mapping[str, float], name: str) -> bool:
    """A 0/1 feature flag (``still``, ``motion``, ``ecg_lead_off`` ...): set at >= 0.5."""
    value = feature(features, name)
    return math.isfinite(value) and value >= 0.5


def assess_quality(features: Mapping[str, float], rules: RuleSettings) -> SignalQuality:
    """How usable this window's ECG and PPG are."""
    ecg_sqi = feature(features, "ecg_sqi")
    if flag(features, "ecg_lead_off") or flag(features, "ecg_flat"):
        ecg = "detached"
    elif not math.isfinite(ecg_sqi):
        ecg = "absent"
    elif flag(features, "ecg_saturated"):
        # Clipped at a rail (an electrode losing contact and jumping to it, an amplifier
        # driven past its range): the beats' shape is cut and a loose electrode's pops pass
        # for wide beats. Poor, whatever the indices say of the rest of the window.
        ecg = "poor"
    else:
        ecg = "good" if ecg_sqi >= rules.ecg_sqi_good else "poor"
    ppg_sqi = feature(features, "ppg_sqi")
    if not math.isfinite(ppg_sqi):
        ppg = "absent"
    elif ppg_sqi >= rules.ppg_sqi_good and not flag(features, "motion"):
        ppg = "good"
    else:
        ppg = "poor"
    still = feature(features, "still")
    return SignalQuality(
        ecg,  # type: ignore[arg-type]
        ppg,  # type: ignore[arg-type]
        (still >= 0.5) if math.isfinite(still) else None,
        flag(features, "motion"),
        _ecg_disputed(features),
    )


def _ecg_disputed(features: Mapping[str, float]) -> bool:
    ecg_hr = feature(features, "ecg_hr_bpm")
    others = [feature(features, name) for name in ("ppg_hr_bpm", "hr_device")]
    others = [value for value in others if math.isfinite(value)]
    if not math.isfinite(ecg_hr) or not others:
        return False
    return not _agree(ecg_hr, statistics.median_low(others))


def _outvoted(rate: float, first: float, second: float) -> bool:
    """Two other estimates agree with each other and not with ``rate``."""
    if not (math.isfinite(first) and math.isfinite(second)) or not _agree(first, second):
        return False
    return not _agree(rate, 0.5 * (first + second))


def _split(rate: float, first: float, second: float) -> bool:
    """Three estimates none of which agrees with another: no source can be believed on
    its own (the median of them is then read, as doubtful)."""
    values = (rate, first, second)
    if not all(math.isfinite(v) for v in values):
        return False
    return not (_agree(rate, first) or _agree(rate, second) or _agree(first, second))


def _agree(a: float, b: float) -> bool:
    return max(a, b) <= min(a, b) * (1 + HR_SOURCES_AGREE)


def _rate(features: Mapping[str, float], source: str, recent: bool) -> float:
    value = feature(features, f"{source}_hr_recent_bpm") if recent else math.nan
    return value if math.isfinite(value) else feature(features, f"{source}_hr_bpm")


def _ecg_at_rest(quality: SignalQuality) -> bool:
    """A good ECG on a wearer at rest: the one source believed alone."""
    return quality.ecg == "good" and not quality.moving


def resting_ecg_rate(features: Mapping[str, float], quality: SignalQuality) -> float:
    """The rate alarms read from a good ECG at rest (its last two beats), whether or not
    :func:`heart_rate` believes it; nan where the ECG is not good or the wearer moves."""
    if not _ecg_at_rest(quality):
        return math.nan
    return _rate(features, "ecg", recent=True)


def heart_rate(
    features: Mapping[str, float], quality: SignalQuality, recent: bool = False
) -> Reading | None:
    """The most trustworthy heart rate: ECG if good, else PPG if good, else the device's.

    ``recent``: the rate over the last two beats (threshold alarms: it follows a step
    change within two beats) instead of the displayed rate (averaged recent intervals,
    NEWS2); under motion the displayed rate all the same, because artefact beats make a
    two-beat rate unreliable.

    Motion gating of rate alarms (``recent``): while the wearer moves, no waveform rate
    is trustworthy, and step-locked artefact biases the ECG's and the PPG's rate alike
    (both read the cadence), so two of them can agree on a rate the heart does not have.
    The fused rate then alarms only where the device's own reading, which wearables
    compute with their accelerometer to reject steps, agrees with it, and the alarm reads
    the device's rate; otherwise it only sustains an alarm already raised.
    """
    alarm = recent
    recent = recent and not quality.moving
    ecg_hr, ppg_hr = _rate(features, "ecg", recent), _rate(features, "ppg", recent)
    device_hr = feature(features, "hr_device")
    # Motion artefact looks like beats to a QRS detector: a moving wearer's ECG rate is
    # only believed where the other sources back it (below). At rest too, an ECG rate that
    # a good PPG and the device, agreeing with each other, both contradict is artefact
    # (electrode movement, a missed low-amplitude beat) more often than the heart; a pulse
    # deficit that large is VT, which the rhythm rules alarm on.
    # Getting up after a fall, the ECG's last two beats read step artefact as 176 bpm while
    # the PPG's read 111 and the device 79: three sources, none agreeing with another,
    # so none is believed alone (the ECG's outvote above needs the other two to agree).
    good_ppg_hr = ppg_hr if quality.ppg == "good" else math.nan
    split = _split(ecg_hr, good_ppg_hr, device_hr)
    resting_ecg = _ecg_at_rest(quality) and math.isfinite(ecg_hr)
    if split and resting_ecg and _agree(good_ppg_hr, 2 * ecg_hr):
        # Pulses cannot outnumber beats: every pulse wave is ejected by a beat. A PPG at
        # twice a good resting ECG's rate counts a second wave per beat (a slow heart's
        # long diastole: the dicrotic wave, the band-pass's bump), so its disagreement
        # explains itself and leaves the ECG against the device alone, which does not
        # outvote it. Where the device agrees with such a PPG instead (an ECG missing
        # every other beat), the two still outvote the ECG (below).
        split = False
    outvoted = resting_ecg and _outvoted(ecg_hr, good_ppg_hr, device_hr)
    if resting_ecg and not outvoted and not split:
        return Reading(ecg_hr, "ecg", Trust.GOOD)
    if outvoted and alarm:
        # Of the two that agree against the ECG, the one nearer to it: after a step in
        # the heart rate both lag the ECG, and the nearer has followed it further.
        value, source = min(
            ((good_ppg_hr, "ppg"), (device_hr, "device")), key=lambda c: abs(c[0] - ecg_hr)
        )
        return Reading(value, source, Trust.GOOD)
    if quality.ppg == "good" and math.isfinite(ppg_hr) and not split:
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
    if not estimates:
        return None
    if len(estimates) == 3:
        value, source = sorted(estimates)[1]
    else:
        value, source = estimates[0]
        if len(estimates) == 2 and not _agree(value, estimates[1][0]):
            return Reading(value, source, Trust.UNUSABLE)
    if alarm and quality.moving:
        # Backed by the device, the alarm reads the device's own (step-rejecting) rate.
        if not (math.isfinite(device_hr) and _agree(value, device_hr)):
            return Reading(value, source, Trust.UNUSABLE)
        return Reading(device_hr, "device", trust)
    return Reading(value, source, trust)


def spo2_reading(features: Mapping[str, float], quality: SignalQuality) -> Reading | None:
    value = feature(features, "spo2")
    if not math.isfinite(value) or value <= 0:
        return None
    trust = Trust.DOUBTFUL if quality.ppg == "poor" else Trust.GOOD
    return Reading(value, "ppg" if quality.ppg != "absent" else "device", trust)


def respiration_reading(features: Mapping[str, float], quality: SignalQuality) -> Reading | None:
    value = feature(features, "resp_rate")
    if not math.isfinite(value):
        return None
    if quality.detached:
        return Reading(value, "resp", Trust.UNUSABLE)
    return Reading(value, "resp", Trust.DOUBTFUL if flag(features, "motion") else Trust.GOOD)


def temperature_reading(
    features: Mapping[str, float], observations: Observations | None, rules: RuleSettings
) -> Reading | None:
    """Observed core temperature, else device temperature + ``skin_temp_offset_c``."""
    if observations is not None and observations.core_temp is not None:
        return Reading(observations.core_temp, "core", Trust.GOOD)
    value = feature(features, "temp")
    if not math.isfinite(value):
        return None
    return Reading(value + rules.skin_temp_offset_c, "skin", Trust.GOOD)


def rhythm_trust(quality: SignalQuality, kind: str = "ventricular_run") -> Trust:
    """Rhythm analysis reads beat-to-beat detail and beat shape, which artefact mimics
    (extra and missed beats pass for ectopy and irregularity, electrode pops and steps for
    wide beats). A moving wearer's ECG is not analysed: wearables analyse rhythm at rest
    (as Apple's irregular-rhythm notification does), and on simulated walking wards the
    rhythm model called every few minutes a run of ventricular beats that were steps. A
    poor ECG at rest is not analysed for ventricular runs (a bedside monitor's "cannot
    analyze ECG"; the poor-signal technical alarm says so); AF, which must last 30 s of
    ECG before it is called, is only doubtful on it: an AF whose ECG dips in quality for a
    few seconds would otherwise start its 30 s again. A rate the PPG and device contradict
    at rest is analysed: it may be a pulse deficit, as in VT."""
    if quality.detached or quality.moving:
        return Trust.UNUSABLE
    if quality.ecg == "poor":
        return Trust.DOUBTFUL if kind == "af" else Trust.UNUSABLE
    return Trust.GOOD


def usable(reading: Reading | None, rules: RuleSettings) -> Reading | None:
    """``reading`` if it may be scored at all (NEWS2), else None."""
    if reading is None or reading.trust is Trust.UNUSABLE:
        return None
    if reading.trust is Trust.DOUBTFUL and rules.poor_signal_action == "suppress":
        return None
    return reading


def apply_trust(condition: Condition, trust: Trust, rules: RuleSettings) -> Condition:
    """``condition`` as far as the value behind it is trusted: unchanged when good, one
    priority step down when doubtful, sustain-only when unusable (or doubtful under
    ``poor_signal_action = "suppress"``)."""
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


# Rhythm is analysed only on an ECG that has stayed good this long: a window's length, so
# every window that saw the samples the rhythm is judged on was good. An electrode that was
# losing contact seconds ago is the same electrode now, and its next pop passes for a wide
# beat (with 5 s, loose electrodes still gave one false high-priority run per 1.5 patient-
# hours); monitors likewise resume arrhythmia analysis once a noisy ECG has been clean for
# a while. A patient's ECG is good long before a run or AF begins.
RHYTHM_SETTLE_S = 10.0


@dataclass
class EcgHistory:
    """Since when one device's ECG has been good, across windows: carried (saved and
    restored) by its :class:`~stream.alerts.lifecycle.AlertTracker` like the fall state,
    and advanced by :func:`stream.alerts.rules.evaluate` once per window.

    >>> history = EcgHistory()
    >>> good = SignalQuality("good", "good", True, False, False)
    >>> poor = good._replace(ecg="poor")
    >>> [history.settled(t, q) for t, q in [(1, good), (11, good), (12, poor), (15, good)]]
    [False, True, False, False]
    """

    good_since: float | None = None

    def settled(self, t: float, quality: SignalQuality) -> bool:
        """Whether the ECG has been good for :data:`RHYTHM_SETTLE_S` up to ``t``."""
        if quality.ecg != "good":
            self.good_since = None
            return False
        if self.good_since is None:
            self.good_since = t
        return t - self.good_since >= RHYTHM_SETTLE_S
