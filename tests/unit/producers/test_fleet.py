"""The fleet engine: valid frames, ordering, determinism, faults and labels (no broker)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest

from producers.fleet import AMBULATORY_ACTIVITY, NOISY_WARD, Fleet
from producers.scenario import EVENT_CATEGORY, load_scenario
from stream.records import Enrolment, Frame, frame_json_schema

START = 1_800_000_000.0
SCHEMA_FILE = Path(__file__).parents[3] / "docs" / "frame.schema.json"


def _frames(fleet: Fleet, periods: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(periods):
        out.extend(fleet.tick().messages)
    return out


def test_committed_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == frame_json_schema()


def test_frames_decode_and_match_the_json_schema() -> None:
    fleet = Fleet(load_scenario("default"), 12, seed=1, start=START)
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    messages = _frames(fleet, 4)
    assert len(messages) >= 12 * 4 - 2
    for device_id, payload in messages:
        frame = Frame.from_json(payload)
        assert frame.device_id == device_id
        assert frame.duration() == pytest.approx(1.0)
        validator.validate(orjson.loads(payload))
    for _, payload in fleet.enrolments():
        Enrolment.from_json(payload)


def test_without_faults_every_device_sends_in_order() -> None:
    fleet = Fleet(load_scenario("quiet_ward"), 8, seed=2, start=START, faults=False)
    seqs: dict[str, list[int]] = defaultdict(list)
    t0s: dict[str, list[float]] = defaultdict(list)
    for device_id, payload in _frames(fleet, 10):
        frame = Frame.from_json(payload)
        seqs[device_id].append(frame.seq)
        t0s[device_id].append(frame.t0)
    assert len(seqs) == 8
    for device_id, seq in seqs.items():
        assert seq == list(range(10))
        gaps = [b - a for a, b in zip(t0s[device_id], t0s[device_id][1:], strict=False)]
        assert all(0.9 < g < 1.1 for g in gaps)  # jittered clock, about one second apart
    assert abs(t0s["dev-0001"][0] - START) < 0.05


def test_same_seed_same_bytes() -> None:
    scenario = load_scenario("default")
    a = _frames(Fleet(scenario, 5, seed=9, start=START), 3)
    b = _frames(Fleet(scenario, 5, seed=9, start=START), 3)
    c = _frames(Fleet(scenario, 5, seed=10, start=START), 3)
    assert a == b
    assert a != c


def test_faults_make_duplicates_late_frames_and_gaps() -> None:
    scenario = load_scenario("noisy_ambulatory").model_copy(
        update={"faults": load_scenario("noisy_ambulatory").faults.model_copy(
            update={"late_rate": 0.1, "duplicate_rate": 0.1, "dropout_rate": 0.1}
        )}
    )  # fmt: skip
    fleet = Fleet(scenario, 40, seed=4, start=START)
    sent = []
    for _ in range(20):
        sent.extend(fleet.tick().sent_seq)
    counts = Counter(sent)
    assert any(c == 2 for c in counts.values())  # duplicates
    per_device: dict[str, list[int]] = defaultdict(list)
    for device_id, seq in sent:
        per_device[device_id].append(seq)
    assert any(s != sorted(s) for s in per_device.values())  # late, out of order
    expected = 40 * 20
    assert len(counts) < expected  # some lost (late ones still held are released by drain)


def test_a_reliable_links_frames_are_never_late_nor_lost_and_the_rest_are_unchanged() -> None:
    """``Patient.reliable_link`` (the e2e bench's labelled probes): every one of their
    frames goes out, in order, whatever the late and loss rates; duplicates still happen,
    and every other device sends exactly what it sends without the flag (the random draws
    are the same)."""
    base = load_scenario("noisy_ambulatory")
    faults = base.faults.model_copy(
        update={"late_rate": 0.3, "dropout_rate": 0.2, "duplicate_rate": 0.1}
    )
    patients = [p.model_copy(update={"reliable_link": i < 2}) for i, p in enumerate(base.patients)]
    flagged = base.model_copy(update={"faults": faults, "patients": patients})
    plain = base.model_copy(update={"faults": faults})
    periods = 30
    sent = {}
    for name, scenario in (("flagged", flagged), ("plain", plain)):
        fleet = Fleet(scenario, 10, seed=4, start=START)
        sent[name] = [m for _ in range(periods) for m in fleet.tick().sent_seq]
    probes = set(Fleet(flagged, 10, seed=4, start=START).device_ids[:2])
    for device in probes:
        seqs = [seq for d, seq in sent["flagged"] if d == device]
        assert sorted(set(seqs)) == list(range(periods)) and seqs == sorted(seqs)
        assert len(seqs) > periods  # duplicates kept
        plain_seqs = [seq for d, seq in sent["plain"] if d == device]
        assert plain_seqs != sorted(plain_seqs) or len(set(plain_seqs)) < periods
    others = [m for m in sent["flagged"] if m[0] not in probes]
    assert others == [m for m in sent["plain"] if m[0] not in probes]


def test_extra_devices_get_quiet_generated_patients() -> None:
    scenario = load_scenario("quiet_ward")
    fleet = Fleet(scenario, 12, seed=0, start=START)
    assert len(set(fleet.device_ids)) == 12
    assert len({p.id for p in fleet.patients}) == 12
    assert all(not p.events for p in fleet.patients)


def test_labels_use_the_frames_time_base_and_silence_is_real() -> None:
    fleet = Fleet(load_scenario("default"), 10, seed=0, start=START, faults=False)
    labels = fleet.labels(duration_s=300)
    silent = [x for x in labels if x["event"] == "device_silent"]
    assert silent and silent[0]["start"] == START + 240 and silent[0]["end"] == START + 300
    keys = {"device_id", "patient_id", "event", "start", "end", "severity", "category"}
    assert all(set(label) == keys for label in labels)
    assert all(x["start"] < START + 300 for x in labels)
    device = silent[0]["device_id"]
    last_t0 = None
    for _ in range(250):
        for device_id, payload in fleet.tick().messages:
            if device_id == device:
                last_t0 = Frame.from_json(payload).t0
    assert last_t0 is not None and last_t0 < START + 240


def test_detached_sensor_frames_drop_hr_and_spo2() -> None:
    fleet = Fleet(load_scenario("default"), 10, seed=0, start=START, faults=False)
    detached = next(x for x in fleet.labels(600) if x["event"] == "sensor_detached")
    for _ in range(int(detached["start"] - START) + 1):
        tick = fleet.tick()
    frame = next(Frame.from_json(p) for d, p in tick.messages if d == detached["device_id"])
    assert frame.signals.hr is None and frame.signals.spo2 is None
    assert frame.signals.ecg is not None


@pytest.mark.parametrize(
    ("scenario", "categories"),
    [("default", {"clinical", "technical", "artefact"}), ("artefacts", {"artefact", "technical"}),
     ("arrhythmia_confounds", {"confound"}), ("noisy_ambulatory",
      {"artefact", "technical", "clinical"})],
)  # fmt: skip
def test_labels_carry_the_category_of_their_event(scenario: str, categories: set[str]) -> None:
    loaded = load_scenario(scenario)
    fleet = Fleet(loaded, len(loaded.patients), seed=0, start=START, faults=False)
    labels = fleet.labels(duration_s=600)
    assert {label["category"] for label in labels} == categories
    assert all(label["category"] == EVENT_CATEGORY[label["event"]] for label in labels)
    # Artefacts and confounds are labelled exactly like clinical events: one per event.
    scheduled = [
        (fleet.device_ids[i], e.event, START + e.start, START + min(e.end, 600))
        for i, p in enumerate(fleet.patients) for e in p.events if e.start < 600
    ]  # fmt: skip
    # Standing artefacts are labelled over the whole span: usual activity, a noisy ward.
    standing = [
        (fleet.device_ids[i], kind, START, START + 600)
        for i, p in enumerate(fleet.patients)
        for kind, on in (
            ("walking", p.activity >= AMBULATORY_ACTIVITY),
            ("sensor_noise", max(loaded.artefacts.noise, loaded.artefacts.motion) >= NOISY_WARD),
        )
        if on
    ]
    got = [(x["device_id"], x["event"], x["start"], x["end"]) for x in labels]
    assert sorted(got) == sorted(scheduled + standing)


def test_walking_and_running_set_the_activity_and_a_fall_stops_them() -> None:
    scenario = load_scenario("noisy_ambulatory")
    fleet = Fleet(scenario, 4, seed=0, start=START, faults=False)
    cond = fleet.conditions(30.0)  # amb-001 runs from 0 to 120 s
    assert cond.running[0] == 0.5 and cond.activity[0] == 0.0  # not counted twice
    assert cond.activity[1] == 0.5 and cond.running[1] == 0.0 == cond.walking[1]
    assert fleet.conditions(130.0).activity[0] == 0.6  # back to the usual activity
    walking_then_falling = scenario.model_copy(
        update={"patients": [scenario.patients[1].model_copy(update={"events": [
            *scenario.patients[1].events,
            scenario.patients[1].events[0].model_copy(
                update={"event": "walking", "start": 200, "end": 400, "severity": 0.5}),
        ]})]}
    )  # fmt: skip
    fleet = Fleet(walking_then_falling, 1, seed=0, start=START, faults=False)
    assert fleet.conditions(220.0).walking[0] == 0.5
    impact, lying = fleet.conditions(240.0), fleet.conditions(260.0)
    assert impact.walking[0] == 0.0 and not np.isnan(impact.fall_at[0])
    assert lying.walking[0] == 0.0 and lying.fallen[0]


def test_the_new_kinds_reach_the_frames() -> None:
    scenario = load_scenario("artefacts")
    fleet = Fleet(scenario, len(scenario.patients), seed=3, start=START, faults=False)
    for _ in range(130):
        tick = fleet.tick()
    frames = {d: Frame.from_json(p) for d, p in tick.messages}
    running = frames[fleet.device_ids[1]]  # art-002 runs from 100 s
    acc = np.asarray(running.signals.acc.samples)
    assert np.linalg.norm(acc, axis=1).max() > 1.8
    assert frames[fleet.device_ids[4]].signals.hr is None  # the lead-off: art-005
    loose = np.asarray(frames[fleet.device_ids[2]].signals.ecg.samples)  # art-003
    assert loose.size == 128
