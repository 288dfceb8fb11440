"""Ingest: validation reasons, dead letters, order, de-duplication, pseudonyms."""

from __future__ import annotations

import base64
import gc

import orjson
import pytest

import stream.worker.ingest as ingest_module
from stream.config import load_settings
from stream.worker.ingest import (
    UNENROLLED_PATIENT,
    Ingest,
    RawRecord,
    decode_frame,
    pseudonymize,
    reason_kind,
)

T0 = 1_795_535_491.0
NOW = T0 + 1.0


@pytest.fixture
def settings():
    return load_settings(pseudonym_key="test-key")


def frame_dict(device: str = "dev-1", seq: int = 0, t0: float = T0, **extra) -> dict:
    frame = {
        "v": 1,
        "device_id": device,
        "seq": seq,
        "t0": t0,
        "signals": {"hr": {"fs": 1, "unit": "bpm", "samples": [72]}},
    }
    frame.update(extra)
    return frame


def raw(payload: dict | bytes, offset: int = 0, key: bytes = b"dev-1") -> RawRecord:
    value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return RawRecord(key, value, 0, offset)


def seqs(result) -> list[int]:
    return [frame.seq for frame, _ in result.frames]


@pytest.mark.parametrize(
    ("payload", "kind", "detail"),
    [
        (b"{not json", "bad json", ""),
        (b"[1, 2]", "bad json", "expected an object"),
        (orjson.dumps(frame_dict(v=2)), "unknown schema version", "v=2"),
        (orjson.dumps(frame_dict(seq="x")), "invalid", "seq"),
        (orjson.dumps(frame_dict(seq=-1)), "invalid", "seq"),
        (orjson.dumps(frame_dict(device_id="bad id!")), "invalid", "device_id"),
        (
            orjson.dumps(frame_dict(signals={"spo2": {"fs": 1, "unit": "%", "samples": [120]}})),
            "invalid",
            "signals.spo2.samples.0: 120 is outside the plausible range 0..100 %",
        ),
        (
            orjson.dumps(frame_dict(signals={"ecg": {"fs": 1e5, "unit": "mV", "samples": [0]}})),
            "invalid",
            "signals.ecg.fs: sampling rate 100000.0 Hz is outside 50..2000 Hz",
        ),
        (
            orjson.dumps(frame_dict(signals={"acc": {"fs": 25, "unit": "g", "samples": [0.1]}})),
            "invalid",
            "signals.acc.samples.0: samples must be [x, y, z] triples",
        ),
        (
            orjson.dumps(frame_dict(signals={"hr": {"fs": 1, "unit": "/min", "samples": [70]}})),
            "invalid",
            "signals.hr.unit: Input should be 'bpm'",
        ),
        (orjson.dumps(frame_dict(signals={})), "invalid", "no signal"),
        (orjson.dumps(frame_dict(t0=NOW + 3600)), "future", "ahead"),
        (
            orjson.dumps(
                frame_dict(signals={"hr": {"fs": 1, "unit": "bpm", "samples": [70] * 30}})
            ),
            "too long",
            "30.0 s",
        ),
        (b"x" * (256 * 1024 + 1), "oversized", "bytes"),
    ],
)
def test_each_malformed_frame_gets_a_precise_reason(settings, payload, kind, detail):
    reason = decode_frame(payload, settings, NOW)
    assert isinstance(reason, str)
    assert reason_kind(reason) == kind
    assert detail in reason
    assert "\n" not in reason


def test_dead_letter_keeps_original_bytes_and_position(settings):
    ingest = Ingest(settings)
    payload = b'{"v": 1, "device_id": '
    result = ingest.frames([RawRecord(b"k", payload, 3, 99)], now=NOW)
    [letter] = result.deadletters
    assert base64.b64decode(letter.payload_b64) == payload
    assert (letter.partition, letter.offset) == (3, 99)
    assert letter.source_topic == settings.topics.frames
    assert ingest.rejected["bad json"] == 1
    assert result.frames == []


def test_in_order_frames_are_released_at_once(settings):
    ingest = Ingest(settings)
    result = ingest.frames([raw(frame_dict(seq=i, t0=T0 + i), i) for i in range(5)], now=NOW)
    assert seqs(result) == [0, 1, 2, 3, 4]


def test_duplicates_are_dropped_and_counted_not_dead_lettered(settings):
    ingest = Ingest(settings)
    batch = [raw(frame_dict(seq=s, t0=T0 + s)) for s in (0, 1, 1, 2, 0)]
    result = ingest.frames(batch, now=NOW)
    assert seqs(result) == [0, 1, 2]
    assert result.duplicates == 2
    assert result.deadletters == []


def test_reordering_within_lateness_is_repaired(settings):
    ingest = Ingest(settings)
    order = [0, 2, 3, 1, 4]
    result = ingest.frames([raw(frame_dict(seq=s, t0=T0 + s)) for s in order], now=NOW)
    assert seqs(result) == [0, 1, 2, 3, 4]


def test_a_gap_is_skipped_after_lateness_and_the_straggler_is_late(settings):
    lateness = settings.stream.lateness_s
    ingest = Ingest(settings)
    first = ingest.frames([raw(frame_dict(seq=0, t0=T0)), raw(frame_dict(seq=2, t0=T0 + 2))])
    assert seqs(first) == [0]  # seq 2 waits for seq 1
    # Frame time moves past the lateness bound: the gap is given up.
    later = T0 + 2 + lateness
    second = ingest.frames([raw(frame_dict(seq=3, t0=later))], now=NOW)
    assert seqs(second) == [2, 3]
    third = ingest.frames([raw(frame_dict(seq=1, t0=T0 + 1), offset=42)], now=NOW)
    assert seqs(third) == []
    [letter] = third.deadletters
    assert reason_kind(letter.reason) == "late"
    assert letter.offset == 42


def test_held_frames_are_released_when_the_device_goes_quiet(settings):
    ingest = Ingest(settings)
    ingest.frames([raw(frame_dict(seq=0)), raw(frame_dict(seq=5, t0=T0 + 5))], now=NOW)
    assert ingest.held_frames() == 1
    assert len(ingest.release_expired(now=NOW + 1)) == 0
    released = ingest.release_expired(now=NOW + settings.stream.lateness_s + 1)
    assert released.seq.tolist() == [5]


def test_held_records_are_reported_and_so_is_their_release(settings):
    """The worker must not commit a record whose frame waits in the reorder buffer:
    ingest names each held record, and each one it lets go, by (partition, offset)."""
    ingest = Ingest(settings)
    first = ingest.frames(
        [raw(frame_dict(seq=s, t0=T0 + s), offset=10 + s) for s in (0, 2, 3)], now=NOW
    )
    assert first.held == [(0, 12), (0, 13)]
    assert ingest.take_unheld() == []
    filled = ingest.frames([raw(frame_dict(seq=1, t0=T0 + 1), offset=20)], now=NOW)
    assert seqs(filled) == [1, 2, 3] and filled.held == []
    assert ingest.take_unheld() == [(0, 12), (0, 13)]
    assert ingest.take_unheld() == []  # each release is reported once
    ingest.frames([raw(frame_dict(seq=9, t0=T0 + 9), offset=30)], now=NOW)
    ingest.release_expired(now=NOW + settings.stream.lateness_s + 1)
    assert ingest.take_unheld() == [(0, 30)]


def test_a_restarted_seq_counter_is_accepted(settings):
    ingest = Ingest(settings)
    ingest.frames([raw(frame_dict(seq=100, t0=T0))], now=NOW)
    result = ingest.frames([raw(frame_dict(seq=0, t0=T0 + 600))], now=T0 + 600)
    assert seqs(result) == [0]
    assert result.deadletters == []


def test_devices_are_ordered_independently(settings):
    ingest = Ingest(settings)
    batch = [
        raw(frame_dict("a", 0)),
        raw(frame_dict("b", 7)),
        raw(frame_dict("a", 1, T0 + 1)),
        raw(frame_dict("b", 8, T0 + 1)),
    ]
    result = ingest.frames(batch, now=NOW)
    assert [(f.device_id, f.seq) for f, _ in result.frames] == [
        ("a", 0),
        ("b", 7),
        ("a", 1),
        ("b", 8),
    ]


def test_enrolment_is_pseudonymized_and_the_raw_id_goes_nowhere(settings):
    ingest = Ingest(settings)
    enrolment = {"device_id": "dev-1", "patient_id": "MRN-0042", "ward": "ward-7"}
    context = ingest.enrol(raw(enrolment))
    assert context.patient == pseudonymize("MRN-0042", b"test-key")
    assert "MRN-0042" not in context.to_json().decode()
    result = ingest.frames([raw(frame_dict())], now=NOW)
    [(_, frame_context)] = result.frames
    assert frame_context == context
    assert frame_context.ward == "ward-7"


def test_pseudonyms_depend_on_the_key(settings):
    assert pseudonymize("MRN-1", b"a") != pseudonymize("MRN-1", b"b")
    assert pseudonymize("MRN-1", b"a") != pseudonymize("MRN-2", b"a")


def test_unenrolled_device_gets_the_unenrolled_context(settings):
    ingest = Ingest(settings)
    [(_, context)] = ingest.frames([raw(frame_dict())], now=NOW).frames
    assert context.patient == UNENROLLED_PATIENT


def test_bad_enrolment_is_dead_lettered_without_echoing_the_patient_id(settings):
    ingest = Ingest(settings)
    letter = ingest.enrol(raw({"device_id": "dev-1", "patient_id": "MRN-7", "ward": ""}, offset=5))
    assert reason_kind(letter.reason) == "invalid"
    assert letter.source_topic == settings.topics.enrolments and letter.offset == 5
    assert "MRN-7" not in letter.to_json().decode() and letter.payload_b64 == ""
    assert "dev-1" not in ingest.contexts


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_decodes_with_the_collector_paused_and_leaves_it_as_found(
    settings, monkeypatch, enabled
):
    seen: list[bool] = []
    reference = ingest_module.decode_frame

    def watched(value, settings_, now):
        seen.append(gc.isenabled())
        return reference(value, settings_, now)

    monkeypatch.setattr(ingest_module, "decode_frame", watched)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        result = Ingest(settings).frames(
            [raw(frame_dict(seq=s, t0=T0 + s), s) for s in range(3)], NOW
        )
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False, False]
    assert seqs(result) == [0, 1, 2]


# -- gateway batches ----------------------------------------------------------------------


def gateway(frames: list[dict | bytes], gateway_id: str = "gw-1") -> bytes:
    encoded = [f if isinstance(f, bytes) else orjson.dumps(f) for f in frames]
    return b'{"v":1,"gateway_id":"%s","frames":[%s]}' % (gateway_id.encode(), b",".join(encoded))


def test_a_gateway_batch_carries_many_devices_and_a_bad_frame_is_dead_lettered_alone(settings):
    ingest = Ingest(settings)
    bad = frame_dict("dev-b", signals={"hr": {"fs": 1, "unit": "bpm", "samples": [900]}})
    value = gateway([frame_dict("dev-a"), bad, frame_dict("dev-c")])
    result = ingest.frames([RawRecord(b"gw-1", value, 2, 40)], now=NOW)
    assert result.batch.device_ids == ["dev-a", "dev-c"]
    assert result.batch.positions == [(2, 40), (2, 40)]
    [letter] = result.deadletters
    assert (letter.gateway_id, letter.frame_index, letter.partition, letter.offset) == (
        "gw-1", 1, 2, 40,
    )  # fmt: skip
    assert reason_kind(letter.reason) == "invalid" and "plausible range" in letter.reason
    assert orjson.loads(base64.b64decode(letter.payload_b64)) == bad  # that frame alone


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b'{"v":1,"gateway_id":"gw-1","frames":[]}', "invalid"),
        (b'{"v":1,"gateway_id":"bad id!","frames":[{}]}', "invalid"),
        (b'{"v":2,"gateway_id":"gw-1","frames":[{}]}', "unknown schema version"),
        (b'{"v":1,"gateway_id":"gw-1","frames":{}}', "invalid"),
        (b'{"v":1,"gateway_id":"gw-1","frames":[{}],"x":1}', "invalid"),
        (b'{"v":1,"gateway_id":"gw-1","frames":[', "bad json"),
    ],
)
def test_an_unreadable_gateway_batch_is_dead_lettered_whole(settings, value, kind):
    result = Ingest(settings).frames([RawRecord(b"gw-1", value, 0, 5)], now=NOW)
    [letter] = result.deadletters
    assert reason_kind(letter.reason) == kind
    assert letter.gateway_id is None and base64.b64decode(letter.payload_b64) == value
    assert len(result.batch) == 0


def test_a_gateway_record_is_unheld_only_when_its_last_held_frame_is_released(settings):
    """One record can hold frames of several devices: committing it after the first of
    them is released would lose the others on a restart."""
    ingest = Ingest(settings)
    first = [frame_dict(d, seq=0) for d in ("dev-a", "dev-b")]
    ingest.frames([RawRecord(b"gw-1", gateway(first), 0, 1)], now=NOW)
    gapped = [frame_dict(d, seq=2, t0=T0 + 2) for d in ("dev-a", "dev-b")]
    held = ingest.frames([RawRecord(b"gw-1", gateway(gapped), 0, 2)], now=NOW)
    assert held.held == [(0, 2), (0, 2)] and len(held.batch) == 0
    refill = gateway([frame_dict("dev-a", seq=1, t0=T0 + 1)])
    ingest.frames([RawRecord(b"gw-1", refill, 0, 3)], now=NOW)
    assert ingest.take_unheld() == []  # dev-b's frame of record 2 still waits
    filled = ingest.frames(
        [RawRecord(b"gw-1", gateway([frame_dict("dev-b", seq=1, t0=T0 + 1)]), 0, 4)], now=NOW
    )
    assert filled.batch.device_ids == ["dev-b", "dev-b"]
    assert ingest.take_unheld() == [(0, 2)]


def test_a_late_frame_of_a_gateway_batch_is_dead_lettered_alone(settings):
    ingest = Ingest(settings)
    ingest.frames([RawRecord(b"gw-1", gateway([frame_dict("dev-a", seq=5)]), 0, 1)], now=NOW)
    value = gateway([frame_dict("dev-b"), frame_dict("dev-a", seq=3, t0=T0 - 2)])
    result = ingest.frames([RawRecord(b"gw-1", value, 0, 2)], now=NOW)
    [letter] = result.deadletters
    assert reason_kind(letter.reason) == "late"
    assert (letter.gateway_id, letter.frame_index) == ("gw-1", 1)
    assert orjson.loads(base64.b64decode(letter.payload_b64))["seq"] == 3
