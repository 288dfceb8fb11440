import pytest
from fhir.resources.R4B.detectedissue import DetectedIssue

from stream.subscriptions.fhir import (
    LOINC,
    VERDICT_EXTENSION,
    VERDICT_SYSTEM,
    detected_issue,
    search_bundle,
    vital_observation,
    vitals_observations,
)


@pytest.mark.parametrize(
    ("name", "codes", "unit"),
    [
        ("hr", ["8867-4"], "/min"),
        ("spo2", ["59408-5", "2708-6"], "%"),
        ("resp", ["9279-1"], "/min"),
        ("temp", ["8310-5"], "Cel"),
        ("respiration_rate", ["9279-1"], "/min"),
    ],
)
def test_vitals_carry_loinc_codes_and_ucum_units(name: str, codes: list[str], unit: str) -> None:
    obs = vital_observation(name, 97.0, patient="p-1", at=1_700_000_000.0)
    assert [c.code for c in obs.code.coding] == codes
    assert {c.system for c in obs.code.coding} == {LOINC}
    assert obs.valueQuantity.code == unit
    assert obs.category[0].coding[0].code == "vital-signs"
    assert obs.subject.identifier.value == "p-1"


def test_unknown_vitals_are_skipped() -> None:
    obs = vitals_observations({"hr": 80, "battery": 40}, patient="p", at=1.0)
    assert [o.id for o in obs] == ["vital-hr"]


def test_alert_as_detected_issue_round_trips_through_validation(alert_factory) -> None:
    alert = alert_factory(priority="medium", values={"hr": 130.0, "spo2": 90.0}, message="HR high")
    issue = detected_issue(alert)
    again = DetectedIssue.model_validate_json(issue.model_dump_json())
    assert again.severity == "moderate"
    assert again.status == "preliminary"
    assert again.identifier[0].value == alert.alert_id
    assert again.detail == "HR high"
    assert [r.reference for r in again.evidence[0].detail] == ["#vital-hr", "#vital-spo2"]
    assert len(again.contained) == 2


def test_acknowledged_alert_is_final_with_mitigation(alert_factory) -> None:
    issue = detected_issue(alert_factory(event="acknowledged", acknowledged_by="nurse-1"))
    assert issue.status == "final"
    assert issue.mitigation[0].author.display == "nurse-1"


def test_bundle(alert_factory) -> None:
    bundle = search_bundle([detected_issue(alert_factory()), detected_issue(alert_factory())])
    assert bundle.type == "searchset" and bundle.total == 2 and len(bundle.entry) == 2


@pytest.mark.parametrize("verdict", ["actionable", "not_actionable", "artefact"])
def test_a_verdict_is_the_alarm_verdict_extension(alert_factory, verdict: str) -> None:
    alert = alert_factory(event="acknowledged", acknowledged_by="nurse-1", verdict=verdict)
    issue = DetectedIssue.model_validate_json(detected_issue(alert).model_dump_json())
    [extension] = issue.extension
    assert extension.url == VERDICT_EXTENSION
    assert (extension.valueCoding.system, extension.valueCoding.code) == (VERDICT_SYSTEM, verdict)
    assert issue.mitigation[0].author.display == "nurse-1"


def test_no_verdict_no_extension_and_the_mitigation_is_dated_by_the_acknowledgement(
    alert_factory,
) -> None:
    trigger = alert_factory(t_event=1_700_000_000.0)
    acknowledged = trigger.model_copy(
        update={"event": "acknowledged", "acknowledged_by": "nurse-2", "t_event": 1_700_000_060.0}
    )
    view = trigger.model_copy(update={"event": "resolved", "acknowledged_by": "nurse-2"})
    issue = detected_issue(view, acknowledged)
    assert issue.extension is None
    assert issue.status == "final"
    assert issue.mitigation[0].date.isoformat() == "2023-11-14T22:14:20+00:00"
