"""Fuzzing ingest: thousands of malformed frames, no crash, each dead-lettered with a reason."""

from __future__ import annotations

import base64
import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import load_settings
from stream.worker.ingest import Ingest, RawRecord
from stream.worker.pipeline import Pipeline

CONFIG = load_settings(pseudonym_key="fuzz")
T0 = 1_700_000_000.0
NOW = T0 + 100

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def good_frame(device: str, seq: int) -> dict:
    return {
        "v": 1,
        "device_id": device,
        "seq": seq,
        "t0": T0 + seq,
        "signals": {
            "hr": {"fs": 1, "unit": "bpm", "samples": [72]},
            "ecg": {"fs": 128, "unit": "mV", "samples": [0.1] * 128},
        },
    }


# Each strategy yields bytes that are malformed for certain.
not_json = st.binary(max_size=200).filter(lambda b: not _parses_to_object(b))
json_non_frames = json_values.filter(lambda v: not isinstance(v, dict)).map(orjson.dumps)
wrong_field = st.sampled_from(["v", "device_id", "seq", "t0", "signals"]).flatmap(
    lambda key: json_values.filter(lambda v, key=key: _invalid_for(key, v)).map(
        lambda v, key=key: orjson.dumps({**good_frame("fuzz-dev", 1), key: v})
    )
)
missing_field = st.sampled_from(["device_id", "seq", "t0", "signals"]).map(
    lambda key: orjson.dumps({k: v for k, v in good_frame("fuzz-dev", 1).items() if k != key})
)
impossible_value = st.sampled_from(
    [
        ("spo2", "%", 1, [101.0]),
        ("hr", "bpm", 1, [-5.0]),
        ("temp", "°C", 1, [80.0]),
        ("ecg", "mV", 128, [25.0] * 128),
        ("hr", "mmHg", 1, [70.0]),
        ("hr", "bpm", 50, [70.0]),
        ("acc", "g", 25, [1.0] * 25),
    ]
).map(
    lambda s: orjson.dumps(
        {
            **good_frame("fuzz-dev", 1),
            "signals": {s[0]: {"fs": s[2], "unit": s[1], "samples": s[3]}},
        }
    )
)
too_far_ahead = st.floats(min_value=NOW + 121, max_value=NOW + 1e9).map(
    lambda t: orjson.dumps({**good_frame("fuzz-dev", 1), "t0": t})
)
extra_key = (
    st.text(min_size=1, max_size=8)
    .filter(lambda k: k not in good_frame("x", 1))
    .map(lambda k: orjson.dumps({**good_frame("fuzz-dev", 1), k: 1}))
)
malformed = st.one_of(
    not_json,
    json_non_frames,
    wrong_field,
    missing_field,
    impossible_value,
    too_far_ahead,
    extra_key,
)


def _parses_to_object(data: bytes) -> bool:
    try:
        return isinstance(orjson.loads(data), dict)
    except orjson.JSONDecodeError:
        return False


def _invalid_for(key: str, value: object) -> bool:
    """Whether ``value`` can never be valid for ``key`` (so the frame must be refused).

    pydantic's lax mode reads JSON ``true`` as 1 for numeric fields, so booleans are
    left out of the numeric cases rather than asserted either way.
    """
    if isinstance(value, bool) and key in ("v", "seq", "t0"):
        return False
    if key == "v":
        return value != 1
    if key == "device_id":
        return not isinstance(value, str) or not value or " " in value or len(value) > 64
    if key == "seq":
        return not isinstance(value, int) or value < 0
    if key == "t0":
        return not isinstance(value, int | float) or value <= 0
    return not isinstance(value, dict) or not value


_offsets = itertools.count()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.lists(malformed, min_size=1, max_size=6))
def test_every_malformed_frame_is_dead_lettered_and_good_neighbours_pass(bad):
    ingest = Ingest(CONFIG)
    good_before = [RawRecord(b"good", orjson.dumps(good_frame("good-dev", 0)), 0, next(_offsets))]
    bad_records = [RawRecord(b"bad", payload, 1, next(_offsets)) for payload in bad]
    good_after = [RawRecord(b"good", orjson.dumps(good_frame("good-dev", 1)), 0, next(_offsets))]
    result = ingest.frames(good_before + bad_records + good_after, now=NOW)
    assert [(f.device_id, f.seq) for f, _ in result.frames] == [("good-dev", 0), ("good-dev", 1)]
    assert len(result.deadletters) == len(bad_records)
    for record, letter in zip(bad_records, result.deadletters, strict=True):
        assert letter.offset == record.offset and letter.partition == 1
        assert base64.b64decode(letter.payload_b64) == record.value
        assert letter.reason and "\n" not in letter.reason and len(letter.reason) <= 200
    assert sum(ingest.rejected.values()) == len(bad_records)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.binary(max_size=300) | json_values.map(orjson.dumps), max_size=8))
def test_arbitrary_input_is_always_accounted_for(data):
    ingest = Ingest(CONFIG)
    records = [RawRecord(None, payload, 0, i) for i, payload in enumerate(data)]
    result = ingest.frames(records, now=NOW)
    accounted = len(result.frames) + len(result.deadletters) + result.duplicates
    assert accounted + ingest.held_frames() == len(records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.lists(malformed, min_size=1, max_size=20))
def test_the_whole_pipeline_survives_and_keeps_processing(bad):
    pipeline = Pipeline(CONFIG, scorer=None)
    records = []
    for seq in range(12):
        records.append(RawRecord(b"good", orjson.dumps(good_frame("good-dev", seq)), 0, seq))
        if bad:
            records.append(RawRecord(b"bad", bad.pop(), 1, 1000 + seq))
    records += [RawRecord(b"bad", payload, 1, 2000 + i) for i, payload in enumerate(bad)]
    output = pipeline.process(records, now=NOW)
    assert len(output.deadletters) == len([r for r in records if r.key == b"bad"])
    vitals = [ln for ln in output.lines if ln.startswith("vitals,")]
    features = [ln for ln in output.lines if ln.startswith("features,")]
    assert len(vitals) >= 12  # every good second
    assert features  # and its windows were analysed
