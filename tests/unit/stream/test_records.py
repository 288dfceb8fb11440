"""The wire schemas reject what a lenient JSON parser would let through."""

import pytest
from pydantic import ValidationError

from stream.records import VERDICTS, Acknowledgement, Alert, Enrolment, Frame, Profile

GOOD = (
    '{"v":1,"device_id":"d1","seq":1,"t0":1795535491,'
    '"signals":{"hr":{"fs":1,"unit":"bpm","samples":[70]}}}'
)


def test_a_good_frame_decodes_with_integer_time() -> None:
    frame = Frame.model_validate_json(GOOD)
    assert frame.t0 == 1795535491.0
    assert frame.duration() == 1.0


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        ('"v":1', '"v":true'),
        ('"v":1', '"v":2'),
        ('"seq":1', '"seq":true'),
        ('"seq":1', '"seq":"1"'),
        ('"t0":1795535491', '"t0":true'),
        ('"t0":1795535491', '"t0":"1795535491"'),
    ],
)
def test_booleans_strings_and_unknown_versions_are_refused(field: str, replacement: str) -> None:
    with pytest.raises(ValidationError):
        Frame.model_validate_json(GOOD.replace(field, replacement))


@pytest.mark.parametrize(
    "signals",
    [
        '{"spo2":{"fs":1,"unit":"%","samples":[120]}}',  # impossible saturation
        '{"hr":{"fs":1,"unit":"bpm","samples":[NaN]}}',  # not JSON, and not finite
        '{"hr":{"fs":1,"unit":"/min","samples":[70]}}',  # wrong unit
        '{"ecg":{"fs":100000,"unit":"mV","samples":[0.1]}}',  # absurd sampling rate
        '{"acc":{"fs":25,"unit":"g","samples":[0.1]}}',  # acc needs triples
        "{}",  # no signal at all
    ],
)
def test_impossible_signals_are_refused(signals: str) -> None:
    bad = GOOD.replace('{"hr":{"fs":1,"unit":"bpm","samples":[70]}}', signals)
    with pytest.raises(ValidationError):
        Frame.model_validate_json(bad)


def test_news2_cannot_be_on_for_children_or_in_pregnancy() -> None:
    with pytest.raises(ValidationError, match="NEWS2 does not apply"):
        Profile(age_band="paediatric")
    with pytest.raises(ValidationError, match="NEWS2 does not apply"):
        Profile(pregnant=True)
    assert Profile(pregnant=True, news2=False).news2 is False


def test_enrolment_refuses_a_device_id_with_spaces() -> None:
    with pytest.raises(ValidationError):
        Enrolment(device_id="dev 1", patient_id="MRN-1")


OLD_ACK = '{"alert_id":"a1","by":"nurse-7","at":5.0,"note":"seen","patient":"p-1","ward":"A"}'


def test_an_acknowledgement_from_before_verdicts_still_parses() -> None:
    ack = Acknowledgement.from_json(OLD_ACK)
    assert (ack.alert_id, ack.by, ack.note, ack.verdict) == ("a1", "nurse-7", "seen", None)
    assert b"verdict" not in ack.to_json()  # and it is written back the same way


@pytest.mark.parametrize("verdict", VERDICTS)
def test_a_verdict_round_trips_on_the_ack_and_the_alert_event(verdict: str) -> None:
    ack = Acknowledgement.from_json(OLD_ACK.replace("}", f',"verdict":"{verdict}"}}'))
    assert Acknowledgement.from_json(ack.to_json()).verdict == verdict
    event = Alert(
        alert_id="a1", event="acknowledged", kind="fever", category="physiological",
        priority="low", patient="p-1", ward="A", device_id="d1", t_onset=1.0, t_event=5.0,
        window=(0.0, 1.0), source="rule:fever", acknowledged_by="nurse-7", verdict=verdict,
    )  # fmt: skip
    assert Alert.from_json(event.to_json()).verdict == verdict


@pytest.mark.parametrize("verdict", ["", "ACTIONABLE", "false_alarm", "true"])
def test_an_unknown_verdict_is_refused(verdict: str) -> None:
    with pytest.raises(ValidationError, match="verdict"):
        Acknowledgement.from_json(OLD_ACK.replace("}", f',"verdict":"{verdict}"}}'))
