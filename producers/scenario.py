"""Scenario files: who is on the ward, which devices they wear, and what happens to them.

Owns the YAML format (validated with pydantic) of ``producers/scenarios/*.yaml``. A
malformed file raises :class:`ScenarioError` naming the file and the offending field.

Event names are fixed here (``EVENT_KINDS``), each with its category (``EVENT_CATEGORY``):
clinical and technical events are named after the alert they should raise; artefacts
and confounds tempt false alarms and must raise none.
Offsets (``start``/``end``) are seconds from the start of the simulation. An event's
``onset`` is ``gradual`` (vitals drift towards the event's values, the default) or
``abrupt`` (they are there from ``start``; the end-to-end benchmark uses this).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream.records import DEVICE_ID_PATTERN, Profile

LabelCategory = Literal["clinical", "technical", "artefact", "confound"]
# Every event kind, in a fixed order, with the kind of truth it is. The alarm evaluation
# counts a physiological alert during an artefact or confound as a false alarm, a
# technical one as explained.
EVENT_CATEGORY: dict[str, LabelCategory] = {
    # clinical: each should raise the alert of its name (stream.records.AlertKind)
    "tachycardia": "clinical",
    "bradycardia": "clinical",
    "af": "clinical",
    "ventricular_run": "clinical",
    "desaturation": "clinical",
    "fever": "clinical",
    "tachypnoea": "clinical",
    "fall": "clinical",
    # technical: a device or sensor problem, a technical alert of its name
    "sensor_detached": "technical",
    "device_silent": "technical",
    # artefact: the signal misleads; no physiological alarm may come of it
    "walking": "artefact",
    "running": "artefact",
    "loose_electrode": "artefact",
    "low_perfusion": "artefact",
    "sensor_noise": "artefact",
    # confound: real physiology that is not an alarm condition
    "premature_beats": "confound",
    "bigeminy": "confound",
}
EventKind = Literal[tuple(EVENT_CATEGORY)]  # type: ignore[valid-type]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
ALERTING_EVENT_KINDS: tuple[str, ...] = tuple(
    kind for kind in EVENT_KINDS if EVENT_CATEGORY[kind] in ("clinical", "technical")
)
SCENARIO_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Baseline(_Strict):
    hr: float = Field(72.0, ge=30, le=200)
    spo2: float = Field(97.0, ge=70, le=100)
    resp: float = Field(14.0, ge=4, le=60)
    temp: float = Field(36.8, ge=34, le=40)


class Event(_Strict):
    event: EventKind
    start: float = Field(ge=0, description="seconds from the start of the simulation")
    end: float = Field(gt=0)
    severity: float = Field(0.5, gt=0, le=1)
    onset: Literal["gradual", "abrupt"] = Field(
        "gradual",
        description="gradual: vitals drift to the event's values over seconds (as bodies "
        "do); abrupt: they are there at ``start`` (paroxysmal onsets, and what latency "
        "benchmarks need: the condition exists from the labelled time)",
    )

    @model_validator(mode="after")
    def _ends_after_start(self) -> Event:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class ActivityPeriod(_Strict):
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    level: float = Field(ge=0, le=1)


class Patient(_Strict):
    id: str = Field(min_length=1, max_length=128)
    ward: str = Field("default", min_length=1, max_length=64)
    device_id: str | None = Field(None, pattern=DEVICE_ID_PATTERN)
    profile: Profile = Profile()
    baseline: Baseline = Baseline()
    activity: float = Field(0.0, ge=0, le=1, description="usual activity, 0 = in bed")
    activity_periods: list[ActivityPeriod] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    reliable_link: bool = Field(
        False,
        description="this patient's frames are never held back nor lost on the way "
        "(duplicates and clock jitter still apply): a probe whose alert latency measures "
        "the pipeline, not the network",
    )


class Devices(_Strict):
    id_prefix: str = Field("dev-", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,50}$")
    battery_start: tuple[float, float] = (60.0, 100.0)
    battery_drain_per_h: float = Field(3.0, ge=0)


class Faults(_Strict):
    """Network and clock imperfections, as rates per frame."""

    late_rate: float = Field(0.003, ge=0, le=0.5)
    late_by_frames: tuple[int, int] = (1, 3)
    duplicate_rate: float = Field(0.002, ge=0, le=0.5)
    dropout_rate: float = Field(0.001, ge=0, le=0.5)
    clock_jitter_ms: float = Field(3.0, ge=0, le=200)


class Artefacts(_Strict):
    noise: float = Field(1.0, ge=0, le=20, description="sensor-noise multiplier")
    motion: float = Field(1.0, ge=0, le=20, description="motion-artefact multiplier")


class Scenario(_Strict):
    name: str
    description: str = ""
    ward: str = Field("default", min_length=1, max_length=64)
    devices: Devices = Devices()
    faults: Faults = Faults()
    artefacts: Artefacts = Artefacts()
    patients: list[Patient] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        seen: set[str] = set()
        for patient in self.patients:
            if patient.id in seen:
                raise ValueError("patient ids must be unique")
            seen.add(patient.id)
        devices = [p.device_id for p in self.patients if p.device_id]
        if len(devices) != len(set(devices)):
            raise ValueError("device ids must be unique")
        return self


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_scenario(source: str | Path) -> Scenario:
    """Load a scenario by file path or by shipped name (``default``, ``quiet_ward`` ...)."""
    path = Path(source)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{source}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError as exc:  # PyYAML recurses once per nesting level
        raise ScenarioError(f"{path}: nested too deeply to be a scenario") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with at least a 'name'")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ScenarioError(
            f"{path}: field {_field_path(first['loc'])}: {first['msg']}"
            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
        ) from exc


def shipped_scenarios() -> list[str]:
    """Names of the scenarios that come with the package."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
