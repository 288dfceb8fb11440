"""Every record VitalStream puts on the wire: one owner for the schemas.

- :class:`Frame` — what a wearable sends: about one second of all its signals
  (topic ``vitals.raw``, key = device id). Schema version ``v`` = 1.
- :class:`GatewayBatch` — many wearables' frames in one message, as a ward gateway or a
  bedside hub relays them (topic ``vitals.raw``, key = gateway id). Each inner frame is
  validated on its own: a bad one is dead-lettered alone, the others go on.
- :class:`Enrolment` — which patient wears a device, and the patient's profile
  (topic ``vitals.enrolments``, key = device id, compacted).
- :class:`Alert` — one lifecycle event of a clinical or technical alert
  (topic ``vitals.alerts``, key = patient pseudonym).
- :class:`Acknowledgement` — a clinician's acknowledgement, with their :data:`Verdict` on
  the alarm when they gave one (topic ``vitals.acks``).
- :class:`DeadLetter` — a rejected input with its reason (topic ``vitals.deadletter``).
- :class:`ModelRollout` — a promoted model version (topic ``vitals.control``).

All are JSON (orjson). ``frame_json_schema()`` gives the documented JSON Schema,
committed as ``docs/frame.schema.json`` and checked against this module by a test.

Example frame::

    {"v": 1, "device_id": "dev-0001", "seq": 42, "t0": 1795535491.0,
     "signals": {"ecg": {"fs": 128, "unit": "mV", "samples": [0.01, ...]},
                 "hr": {"fs": 1, "unit": "bpm", "samples": [72]},
                 "acc": {"fs": 25, "unit": "g", "samples": [[0.0, 0.1, 0.98], ...]}}}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple, get_args

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class SignalSpec(NamedTuple):
    """What a frame may carry for one signal.

    ``lowest``..``highest`` is the *plausible* range: values outside it are physically
    impossible for the sensor, not merely abnormal (an SpO2 of 120 % is a broken frame, an
    SpO2 of 70 % is a patient in trouble).
    """

    unit: str
    fs_min: float  # Hz
    fs_max: float  # Hz
    lowest: float
    highest: float


SIGNALS: dict[str, SignalSpec] = {
    "ecg": SignalSpec("mV", 50.0, 2000.0, -20.0, 20.0),
    "ppg": SignalSpec("au", 10.0, 1000.0, -1e6, 1e6),
    "hr": SignalSpec("bpm", 0.1, 10.0, 0.0, 350.0),
    "spo2": SignalSpec("%", 0.1, 10.0, 0.0, 100.0),
    "resp": SignalSpec("/min", 0.1, 10.0, 0.0, 120.0),
    "temp": SignalSpec("°C", 0.01, 10.0, 15.0, 45.0),
    "acc": SignalSpec("g", 1.0, 400.0, -32.0, 32.0),
    "battery": SignalSpec("%", 0.001, 10.0, 0.0, 100.0),
}
# Waveforms are windowed and analysed; vitals are the device's own 1 Hz readings.
WAVEFORMS = ("ecg", "ppg", "acc")
VITALS = ("hr", "spo2", "resp", "temp", "battery")

Priority = Literal["high", "medium", "low"]
PRIORITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
# Every kind of alert the system raises: the rules and the fall detector
# (stream/alerts/), the shipped models' classes through ``RuleSettings.model_outputs``
# (rhythm: af, ventricular_run; deterioration), and the silence check. ``Alert.kind``
# stays ``str``: subscribers must still read alerts of a kind an older or newer
# producer raises.
AlertKind = Literal[
    # physiological
    "tachycardia", "bradycardia", "af", "ventricular_run", "desaturation", "tachypnoea",
    "bradypnoea", "fever", "hypothermia", "fall", "news2", "deterioration",
    # technical
    "sensor_detached", "poor_signal", "low_battery", "device_silent",
]  # fmt: skip
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_json(cls, data: bytes | str):
        return cls.model_validate_json(data)


class SignalBlock(_Record):
    """Samples of one signal at a fixed rate, starting at the frame's ``t0``.

    Each signal has its own block type (:func:`_signal_block`), whose unit, rate and value
    range come from :data:`SIGNALS`; this base only names what they have in common.
    """

    fs: float = Field(gt=0, description="sampling rate in Hz")
    unit: str
    samples: list[float] | list[tuple[float, float, float]]


def _signal_block(name: str) -> type[SignalBlock]:
    """The block type of one signal: its unit, rate range and plausible sample range are
    part of the schema, so pydantic-core checks every sample (in Rust: a Python range check
    cost more than the rest of a frame's validation) and the JSON Schema documents them."""
    spec = SIGNALS[name]
    value = Annotated[float, Field(ge=spec.lowest, le=spec.highest)]
    sample: Any = tuple[value, value, value] if name == "acc" else value
    return create_model(
        f"{name.capitalize()}Block",
        __base__=SignalBlock,
        __doc__=f"{name}: {'[x, y, z] triples' if name == 'acc' else 'numbers'} in {spec.unit}.",
        fs=(float, Field(ge=spec.fs_min, le=spec.fs_max, description="sampling rate in Hz")),
        unit=(Literal[spec.unit], ...),  # type: ignore[valid-type]
        samples=(list[sample], Field(min_length=1, max_length=20_000)),
    )


EcgBlock = _signal_block("ecg")
PpgBlock = _signal_block("ppg")
HrBlock = _signal_block("hr")
Spo2Block = _signal_block("spo2")
RespBlock = _signal_block("resp")
TempBlock = _signal_block("temp")
AccBlock = _signal_block("acc")
BatteryBlock = _signal_block("battery")
BLOCK_TYPES: dict[str, type[SignalBlock]] = {
    "ecg": EcgBlock, "ppg": PpgBlock, "hr": HrBlock, "spo2": Spo2Block, "resp": RespBlock,
    "temp": TempBlock, "acc": AccBlock, "battery": BatteryBlock,
}  # fmt: skip


class Signals(_Record):
    ecg: EcgBlock | None = None  # type: ignore[valid-type]
    ppg: PpgBlock | None = None  # type: ignore[valid-type]
    hr: HrBlock | None = None  # type: ignore[valid-type]
    spo2: Spo2Block | None = None  # type: ignore[valid-type]
    resp: RespBlock | None = None  # type: ignore[valid-type]
    temp: TempBlock | None = None  # type: ignore[valid-type]
    acc: AccBlock | None = None  # type: ignore[valid-type]
    battery: BatteryBlock | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _some_signal(self) -> Signals:
        if all(getattr(self, name) is None for name in SIGNALS):
            raise ValueError("frame carries no signal")
        return self


class Observations(_Record):
    """Manual or device observations a wearable cannot measure (NEWS2 inputs)."""

    systolic_bp: float | None = Field(None, ge=30, le=300)
    consciousness: Literal["A", "C", "V", "P", "U"] | None = None
    on_oxygen: bool | None = None
    core_temp: float | None = Field(None, ge=25, le=45)


class Frame(_Record):
    """About one second (configurable) of all of one device's signals."""

    # strict: JSON `true` must not pass as schema version 1, sequence 1 or time 1.
    v: Literal[1] = SCHEMA_VERSION
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    seq: int = Field(ge=0, lt=2**63, strict=True, description="monotonically increasing per device")
    t0: float = Field(gt=0, strict=True, description="epoch seconds of the first sample")
    signals: Signals
    observations: Observations | None = None

    @field_validator("v", mode="before")
    @classmethod
    def _version_is_a_number(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("schema version must be the number 1, not a boolean")
        return value

    def duration(self) -> float:
        """Seconds the frame covers (longest signal)."""
        spans = [len(b.samples) / b.fs for b in self._blocks()]
        return max(spans)

    def _blocks(self) -> list[SignalBlock]:
        # The fields' values, without a getattr per signal name (this runs per frame).
        return [block for block in vars(self.signals).values() if block is not None]


# Frames one gateway batch may carry: a ward's wearables (the bench uses 50; a hub
# relaying a whole ward of 60 beds every second stays well below).
MAX_GATEWAY_FRAMES = 1000


class GatewayBatch(_Record):
    """The frames of many devices in one message, keyed by the gateway that relays them.

    The worker does not validate this model as a whole: it reads ``v`` and
    ``gateway_id``, then validates each of ``frames`` as a :class:`Frame` on its own, so
    that one bad frame is dead-lettered alone (its :class:`DeadLetter` names the gateway
    and the frame's index) and the rest of the batch is processed. This model is the
    schema, for producers and the documentation.

    >>> batch = GatewayBatch(gateway_id="gw-1", frames=[{"device_id": "d1", "seq": 0,
    ...     "t0": 100.0, "signals": {"hr": {"fs": 1, "unit": "bpm", "samples": [70]}}}])
    >>> GatewayBatch.from_json(batch.to_json()).frames[0].device_id
    'd1'
    """

    v: Literal[1] = SCHEMA_VERSION
    gateway_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    frames: list[Frame] = Field(min_length=1, max_length=MAX_GATEWAY_FRAMES)


def gateway_batch_json(gateway_id: str, frames: list[bytes]) -> bytes:
    """A :class:`GatewayBatch` message from frames already encoded, in the order given
    (producers encode each frame once; this only frames them).

    >>> gateway_batch_json("gw-1", [b'{"device_id":"a"}', b'{"device_id":"b"}'])
    b'{"v":1,"gateway_id":"gw-1","frames":[{"device_id":"a"},{"device_id":"b"}]}'
    """
    head = b'{"v":%d,"gateway_id":%s,"frames":[' % (SCHEMA_VERSION, orjson.dumps(gateway_id))
    return head + b",".join(frames) + b"]}"


class Profile(_Record):
    age_band: Literal["adult", "paediatric"] = "adult"
    pregnant: bool = False
    news2: bool = Field(True, description="NEWS2 does not apply to under-16s or in pregnancy")
    spo2_scale: Literal[1, 2] = 1
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-patient overrides")

    @model_validator(mode="after")
    def _news2_applicability(self) -> Profile:
        if self.news2 and (self.age_band == "paediatric" or self.pregnant):
            raise ValueError(
                "NEWS2 does not apply to paediatric or pregnant patients: set news2=false"
            )
        return self


class Enrolment(_Record):
    """Binds a device to a patient. Carries the raw patient id: ingest pseudonymizes it."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    patient_id: str = Field(min_length=1, max_length=128)
    ward: str = Field("default", min_length=1, max_length=64)
    profile: Profile = Profile()
    t: float = Field(0.0, ge=0, description="epoch seconds of the enrolment")


class PatientContext(_Record):
    """An enrolment after ingest: the pseudonym replaces the patient id."""

    device_id: str
    patient: str
    ward: str
    profile: Profile


AlertEvent = Literal["triggered", "repeated", "resolved", "acknowledged", "escalated"]
# What the clinician who acknowledged an alarm judged it to be: it called for an action
# (actionable), it was true but called for none (not_actionable), or the signal misled
# (artefact). The three classes of alarm adjudication studies (Bonafide et al., J Hosp Med
# 2015;10(6):345-351: actionable vs non-actionable, and among those, technically invalid).
# Optional everywhere: acknowledgements made before verdicts existed carry none.
Verdict = Literal["actionable", "not_actionable", "artefact"]
VERDICTS: tuple[str, ...] = get_args(Verdict)


class Alert(_Record):
    """One lifecycle event of an alert. ``alert_id`` is stable across its events."""

    v: Literal[1] = SCHEMA_VERSION
    alert_id: str
    event: AlertEvent
    kind: str
    category: Literal["physiological", "technical"]
    priority: Priority
    patient: str
    ward: str
    device_id: str
    t_onset: float = Field(description="frame time the condition began")
    t_event: float = Field(description="frame time of this event")
    emitted_at: float = Field(0.0, description="wall-clock epoch seconds of publication")
    window: tuple[float, float]
    values: dict[str, float] = Field(default_factory=dict)
    source: str = Field(description="rule name or model name@version that raised it")
    message: str = ""
    explanation: dict[str, Any] | None = None
    escalation_level: int = 0
    acknowledged_by: str | None = None
    note: str | None = None
    verdict: Verdict | None = Field(
        None, description="acknowledged events: the acknowledging clinician's verdict, if given"
    )


class Acknowledgement(_Record):
    """A clinician's acknowledgement of one alert; ``verdict`` is None when none was given.

    >>> old = Acknowledgement.from_json(
    ...     '{"alert_id":"a1","by":"nurse-7","at":5.0,"note":"","patient":"p-1","ward":"A"}')
    >>> old.verdict is None
    True
    >>> Acknowledgement.model_validate({**old.model_dump(), "verdict": "artefact"}).to_json()[-21:]
    b'"verdict":"artefact"}'
    """

    alert_id: str
    by: str = Field(min_length=1, max_length=128)
    at: float
    note: str = Field("", max_length=2000)
    patient: str
    ward: str
    verdict: Verdict | None = None


class DeadLetter(_Record):
    """A rejected input: the reason, where it was read, and its bytes (base64). For a
    frame inside a :class:`GatewayBatch`, the payload is that frame alone and
    ``gateway_id``/``frame_index`` say which batch and which of its frames."""

    reason: str
    source_topic: str
    partition: int
    offset: int
    at: float
    payload_b64: str
    gateway_id: str | None = None
    frame_index: int | None = None


class ModelRollout(_Record):
    name: str
    version: str
    path: str
    sha256: str
    shadow: bool = False
    at: float = 0.0


def frame_json_schema() -> dict[str, Any]:
    """The frame's JSON Schema, as documented in docs/frame.schema.json."""
    schema = Frame.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://vitalstream.dev/schemas/frame-v1.json"
    schema["title"] = "VitalStream device frame, version 1"
    return schema
