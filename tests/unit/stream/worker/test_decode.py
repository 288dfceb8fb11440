"""The fast decode against the reference: same frames, same values (bit for bit), same
refusals with the same reasons in the same order; and the number kernel against
Python's ``float()``."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream.worker.decode as decode_module
from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.config import load_settings
from stream.records import SIGNALS, gateway_batch_json
from stream.signal.kernels.json_numbers import parse_blocks
from stream.worker.decode import (
    Decoded,
    RawRecord,
    decode_records,
    decode_records_reference,
)

CONFIG = load_settings(pseudonym_key="decode-test")
T0 = 1_700_000_000.0
NOW = T0 + 100


def assert_same(fast: Decoded, reference: Decoded) -> None:
    a, b = fast.batch, reference.batch
    assert a.device_ids == b.device_ids
    for column in ("seq", "t0", "ends"):
        x, y = getattr(a, column), getattr(b, column)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), column
    assert a.positions == b.positions
    assert list(a.blocks) == list(b.blocks)
    for name, blocks in a.blocks.items():
        for field, x, y in zip(blocks._fields, blocks, b.blocks[name], strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape, (name, field)
            assert x.tobytes() == y.tobytes(), (name, field)
    assert dict(a.observations) == dict(b.observations)
    assert fast.rejected == reference.rejected


def check(values: list[bytes | None], now: float = NOW) -> Decoded:
    records = [RawRecord(b"k", value, 0, offset) for offset, value in enumerate(values)]
    fast = decode_records(records, CONFIG, now)
    assert_same(fast, decode_records_reference(records, CONFIG, now))
    return fast


# -- realistic traffic -------------------------------------------------------------------


def fleet_values(scenario: str, devices: int, seed: int, ticks: int) -> tuple[list[bytes], float]:
    fleet = Fleet(load_scenario(scenario), devices, seed=seed, start=T0, faults=True)
    values = [payload for _ in range(ticks) for _, payload in fleet.tick().messages]
    return values + [payload for _, payload in fleet.drain()], T0 + ticks


@pytest.mark.parametrize(
    ("scenario", "seed"),
    [("default", 0), ("default", 7), ("artefacts", 3), ("noisy_ambulatory", 5)],
)
def test_simulator_frames_decode_as_the_reference_decodes_them(
    scenario: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    values, now = fleet_values(scenario, 40, seed, 6)
    decoded = check(values, now)
    assert len(decoded.batch) == len(values)  # the simulator's frames are all good
    referred: list[bytes | None] = []
    monkeypatch.setattr(decode_module, "decode_frame", lambda value, *_: referred.append(value))
    records = [RawRecord(b"k", value, 0, offset) for offset, value in enumerate(values)]
    decode_records(records, CONFIG, now)
    assert referred == []  # and decoded them all on the fast path


def test_gateway_batches_decode_as_the_reference_decodes_them() -> None:
    values, now = fleet_values("default", 30, 11, 3)
    bad = orjson.dumps({"device_id": "x", "seq": 1, "t0": T0, "signals": {}})
    gateways = [
        gateway_batch_json("gw-1", values[:10]),
        gateway_batch_json("gw-2", [values[10], bad, values[11], b'{"device_id":1}']),
        gateway_batch_json("gw-3", [values[12].replace(b'"samples":[', b'"samples":[ 1E0,')]),
        gateway_batch_json("gw-4", [values[13].replace(b'"t0":', b'"t0": 1e400, "x":')]),
        gateway_batch_json(
            "gw-5", [values[14].replace(b'"seq":', b'"seq":1' + b"0" * 30 + b',"q":')]
        ),
        gateway_batch_json("gw\n", values[15:17]),
        b'{"v":true,"gateway_id":"gw-6","frames":[' + values[17] + b"]}",
        b'{"v":1,"gateway_id":"gw-7","frames":[]}',
        b'{"v":1,"gateway_id":"gw-8","frames":[' + values[18] + b'],"x":1}',
        b'{"v":1,"gateway_id":"gw-9","frames":[' + values[19] + b"]",
        values[20],
    ]
    decoded = check(gateways, now)
    assert decoded.rejected and len(decoded.batch) >= 12


# -- adversarial frames ------------------------------------------------------------------


def frame(**fields: object) -> dict:
    base: dict = {
        "v": 1,
        "device_id": "dev-1",
        "seq": 3,
        "t0": T0,
        "signals": {
            "hr": {"fs": 1, "unit": "bpm", "samples": [72]},
            "ecg": {"fs": 128, "unit": "mV", "samples": [0.125] * 128},
            "acc": {"fs": 25, "unit": "g", "samples": [[0.0, 0.1, 0.98]] * 25},
        },
    }
    base.update(fields)
    return base


def with_samples(name: str, text: bytes) -> bytes:
    """A good frame whose ``name`` samples are the JSON text ``text``."""
    spec = SIGNALS[name]
    head = orjson.dumps(frame())[:-2]  # drop the closing braces of signals and frame
    block = b'"%s":{"fs":%s,"unit":%s,"samples":' % (
        name.encode(),
        str(spec.fs_max).encode(),
        orjson.dumps(spec.unit),
    )
    signals = orjson.loads(head + b"}}")["signals"]
    signals.pop(name, None)
    rest = orjson.dumps({**frame(), "signals": signals})[:-2]
    return rest + b"," + block + text + b"}}}"


HAND_WRITTEN: list[bytes | None] = [
    None,
    b"",
    b"{",
    b"[]",
    b"null",
    b"not json",
    orjson.dumps(frame())[:-5],  # truncated
    orjson.dumps(frame()) + b"\n",
    orjson.dumps(frame()) + b" x",
    orjson.dumps(frame(v=True)),
    orjson.dumps(frame(v=1.0)),
    orjson.dumps(frame(v=2)),
    orjson.dumps(frame(seq=1.0)),
    orjson.dumps(frame(seq=-1)),
    orjson.dumps(frame(seq=2**63 - 1)),
    orjson.dumps(frame(seq=True)),
    orjson.dumps(frame(seq="3")),
    orjson.dumps(frame(t0=0)),
    orjson.dumps(frame(t0=True)),
    orjson.dumps(frame(t0=int(T0))),
    orjson.dumps(frame(t0=-5.0)),
    orjson.dumps(frame(t0=NOW + 121)),
    orjson.dumps(frame(t0=NOW + 119.5)),
    orjson.dumps(frame(t0="1")),
    orjson.dumps(frame(device_id="dev-1\n")),
    orjson.dumps(frame(device_id="")),
    orjson.dumps(frame(device_id="d" * 65)),
    orjson.dumps(frame(device_id="d" * 64)),
    orjson.dumps(frame(device_id="dé")),
    orjson.dumps(frame(device_id=5)),
    orjson.dumps(frame(extra=1)),
    orjson.dumps(frame(signals={})),
    orjson.dumps(frame(signals={"hr": None})),
    orjson.dumps(frame(signals={"hr": None, "spo2": {"fs": 1, "unit": "%", "samples": [97]}})),
    orjson.dumps(frame(signals={"hr": {"fs": 1, "unit": "mmHg", "samples": [70]}})),
    orjson.dumps(frame(signals={"hr": {"fs": 1, "samples": [70]}})),
    orjson.dumps(frame(signals={"hr": {"fs": 50, "unit": "bpm", "samples": [70]}})),
    orjson.dumps(frame(signals={"hr": {"fs": "1", "unit": "bpm", "samples": [70]}})),
    orjson.dumps(frame(signals={"hr": {"fs": 1, "unit": "bpm", "samples": [70], "x": 1}})),
    orjson.dumps(frame(signals={"pulse": {"fs": 1, "unit": "bpm", "samples": [70]}})),
    orjson.dumps(frame(signals={"hr": {"fs": 1, "unit": "bpm", "samples": [70] * 11}})),
    orjson.dumps(frame(signals={"temp": {"fs": 0.01, "unit": "°C", "samples": [37.0]}})),
    orjson.dumps(frame(signals={"temp": {"fs": 0.1, "unit": "°C", "samples": [37.0]}})),
    orjson.dumps(frame(observations={"systolic_bp": 120, "consciousness": "A"})),
    orjson.dumps(frame(observations={"systolic_bp": 10})),
    orjson.dumps(frame(observations=None)),
    # unicode escapes, duplicate keys, whitespace
    orjson.dumps(frame()).replace(b'"dev-1"', b'"\\u0064ev-1"'),
    orjson.dumps(frame()).replace(b'"dev-1"', b'"dev-1\\n"'),
    orjson.dumps(frame()).replace(b'"mV"', b'"m\\u0056"'),
    orjson.dumps(frame()).replace(b'"seq":3', b'"seq":3,"seq":4'),
    orjson.dumps(frame()).replace(b'"seq":3', b'"s\\u0065q":3'),
    orjson.dumps(frame()).replace(b'"hr":{', b'"hr":{"fs":2,'),
    orjson.dumps(frame()).replace(b'"samples":[72]', b'"samples":[72],"samples":[80]'),
    orjson.dumps(frame()).replace(b'"samples":[72]', b'"samples":[\n 72 \t,\r 80 ]'),
    orjson.dumps(frame(), option=orjson.OPT_INDENT_2),
    orjson.dumps(frame()).replace(b'"signals":{', b'"signals":{"hr":null,'),
    orjson.dumps(frame()) * 2,
]
for name, text in [
    ("hr", b"[]"), ("hr", b"[null]"), ("hr", b'["72"]'), ("hr", b"[true]"), ("hr", b"[[72]]"),
    ("hr", b"[72,]"), ("hr", b"[,72]"), ("hr", b"[72 72]"), ("hr", b"[NaN]"), ("hr", b"[Infinity]"),
    ("hr", b"[-Infinity]"), ("hr", b"[072]"), ("hr", b"[+72]"), ("hr", b"[.5]"), ("hr", b"[5.]"),
    ("hr", b"[1e]"), ("hr", b"[1e+]"), ("hr", b"[-]"), ("hr", b"[1E2]"), ("hr", b"[1e-7]"),
    ("hr", b"[1e400]"), ("hr", b"[1e-400]"), ("hr", b"[0e999]"), ("hr", b"[-0]"), ("hr", b"[-0.0]"),
    ("hr", b"[0.30000000000000004]"), ("hr", b"[72.00000000000000000000001]"),
    ("hr", b"[123456789012345678901234567890e-28]"), ("hr", b"[351]"), ("hr", b"[350]"),
    ("hr", b"[350.0000000000001]"), ("hr", b"[-1e-300]"), ("hr", b"[9007199254740993e-14]"),
    ("hr", b"[" + b",".join([b"70"] * 20_001) + b"]"), ("hr", b'{"a":1}'), ("hr", b"72"),
    ("ecg", b"[" + b",".join([b"0.1"] * 20_000) + b"]"), ("ecg", b"[20.0,-20,20.000001]"),
    ("acc", b"[[0,0,1]]"), ("acc", b"[[0,0]]"), ("acc", b"[[0,0,1,2]]"), ("acc", b"[0,0,1]"),
    ("acc", b"[[0,0,1],[ 0 , 0.5 , -1E1 ] ]"), ("acc", b"[[0,0,33]]"), ("acc", b"[[]]"),
    ("acc", b"[[0,0,1],]"), ("acc", b"[[0,0,1]"), ("acc", b"[[[0],0,1]]"),
    ("ppg", b"[1000000,-1000000,1e6,1.000001e6]"), ("spo2", b"[100.0, 0, -0]"),
]:  # fmt: skip
    HAND_WRITTEN.append(with_samples(name, text))


def test_hand_written_adversarial_frames_decode_as_the_reference_decodes_them() -> None:
    decoded = check(HAND_WRITTEN)
    assert decoded.rejected and len(decoded.batch)


def test_each_adversarial_frame_alone_and_in_a_gateway() -> None:
    for value in HAND_WRITTEN:
        check([value])
        if value:
            check([gateway_batch_json("gw-1", [orjson.dumps(frame()), value])])


def test_oversized_frames_are_refused_as_the_reference_refuses_them() -> None:
    huge = with_samples("ppg", b"[" + b",".join([b"123456.789012"] * 19_999) + b"]")
    assert len(huge) > CONFIG.stream.max_frame_bytes
    decoded = check([huge, gateway_batch_json("gw-1", [huge, orjson.dumps(frame())])])
    assert decoded.rejected[0].reason.startswith("oversized")


number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: repr(x).encode()),
    st.tuples(st.floats(-1e6, 1e6), st.integers(0, 20)).map(lambda p: f"{p[0]:.{p[1]}g}".encode()),
    st.integers(-(10**25), 10**25).map(lambda n: str(n).encode()),
    st.from_regex(rb"\A-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.sampled_from([b"null", b"true", b'"1"', b"NaN", b"[1]", b"", b"-", b"01", b"1.", b" 1 "]),
)
signal_name = st.sampled_from(list(SIGNALS))


@st.composite
def adversarial_frame(draw: st.DrawFn) -> bytes:
    name = draw(signal_name)
    numbers = draw(st.lists(number_text, min_size=0, max_size=6))
    space = draw(st.sampled_from([b"", b" ", b"\n", b"\t "]))
    if name == "acc" and draw(st.booleans()):
        triples = [numbers[i : i + 3] for i in range(0, len(numbers), 3)]
        text = b"[" + b",".join(b"[" + (b"," + space).join(t) + b"]" for t in triples) + b"]"
    else:
        text = b"[" + space + (b"," + space).join(numbers) + b"]"
    value = with_samples(name, text)
    header = draw(
        st.sampled_from(
            [b"", b'"seq":1.0,', b'"seq":-0,', b'"t0":1e9,', b'"t0":0,', b'"v":1,', b'"v":true,']
        )
    )
    if header:
        value = value.replace(b'"seq":3,', b"").replace(b'{"v":1,', b"{" + header, 1)
    return value


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(adversarial_frame(), min_size=1, max_size=5), st.booleans())
def test_generated_frames_decode_as_the_reference_decodes_them(
    values: list[bytes], in_gateway: bool
) -> None:
    check([gateway_batch_json("gw-1", values)] if in_gateway else values)


# -- the number kernel -------------------------------------------------------------------


def read_numbers(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    blocks = [b"[" + text + b"]" for text in texts]
    lengths = np.array([len(block) for block in blocks])
    ends = np.cumsum(lengths)
    values, first, _, flagged = parse_blocks(
        np.frombuffer(b"".join(blocks), np.uint8), ends - lengths, ends,
        np.zeros(len(blocks), bool), np.full(len(blocks), -math.inf),
        np.full(len(blocks), math.inf), 10,
    )  # fmt: skip
    return values, first, flagged


@settings(max_examples=300, deadline=None)
@given(st.lists(number_text, min_size=1, max_size=50))
def test_the_kernel_reads_a_number_as_float_does_or_flags_it(texts: list[bytes]) -> None:
    values, first, flagged = read_numbers(texts)
    for k, text in enumerate(texts):
        if flagged[k]:
            continue
        expected = float(text)  # the kernel only reads JSON numbers: float() reads them all
        if b"." not in text and b"e" not in text.lower():
            expected = float(int(text))  # a JSON integer: -0 is 0
        got = values[first[k]]
        assert np.float64(got).tobytes() == np.float64(expected).tobytes(), text


def test_the_kernel_reads_typical_samples_and_flags_the_rest() -> None:
    rng = np.random.default_rng(4)
    numbers = [
        round(float(x), int(d))
        for x, d in zip(rng.normal(0, 5, 20_000), rng.integers(0, 8, 20_000), strict=True)
    ]
    texts = [orjson.dumps(x) for x in numbers] + [repr(x).encode() for x in numbers]
    texts += [f"{x:.3e}".encode() for x in numbers]
    values, first, flagged = read_numbers(texts)
    assert flagged.mean() < 0.01  # what devices send is read, not handed on
    for k in np.flatnonzero(~flagged):
        assert values[first[k]] == float(texts[k])
    _, _, flagged = read_numbers([b"1" * 17, b"1e23", b"0.1e-22", b"9007199254740993", b"1e22"])
    assert flagged.tolist() == [True, True, True, True, False]
