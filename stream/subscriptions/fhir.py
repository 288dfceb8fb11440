"""FHIR renderings of alerts and vitals, validated by the maintained ``fhir.resources``.

FHIR R4B is used (``fhir.resources.R4B``): it is R4 with technical corrections, and the
DetectedIssue and Observation elements used here are identical in R4. An alert becomes a
``DetectedIssue``; the vitals it carries become vital-signs ``Observation``s (LOINC), also
contained in the issue as its evidence. Patients are referenced by pseudonym identifier,
never by a literal id.

An acknowledged alert carries a ``mitigation`` (who acknowledged it, when) and, when the
clinician gave one, their verdict as the extension :data:`VERDICT_EXTENSION` with a
``valueCoding`` from :data:`VERDICT_SYSTEM` (``actionable``, ``not_actionable``,
``artefact``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.observation import Observation

from stream.records import Alert

PSEUDONYM_SYSTEM = "urn:vitalstream:patient-pseudonym"
ALERT_SYSTEM = "urn:vitalstream:alert-id"
DEVICE_SYSTEM = "urn:vitalstream:device-id"
KIND_SYSTEM = "https://vitalstream.dev/fhir/CodeSystem/alert-kind"
# The acknowledging clinician's verdict on the alarm (stream.records.Verdict).
VERDICT_EXTENSION = "https://vitalstream.dev/fhir/StructureDefinition/alarm-verdict"
VERDICT_SYSTEM = "https://vitalstream.dev/fhir/CodeSystem/alarm-verdict"
VERDICT_DISPLAY = {
    "actionable": "Actionable: the alarm called for a clinical action",
    "not_actionable": "Not actionable: a true alarm that called for no action",
    "artefact": "Artefact: the signal misled (motion, loose sensor, noise)",
}
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# value name -> (LOINC codes, display, UCUM unit). SpO2 carries both the pulse-oximetry
# code and the generic arterial saturation code, as the FHIR vital-signs profile does.
VITAL_CODES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "hr": (("8867-4",), "Heart rate", "/min"),
    "spo2": (("59408-5", "2708-6"), "Oxygen saturation by pulse oximetry", "%"),
    "resp": (("9279-1",), "Respiratory rate", "/min"),
    "temp": (("8310-5",), "Body temperature", "Cel"),
}
_ALIASES = {
    "heart_rate": "hr",
    "pulse": "hr",
    "resp_rate": "resp",
    "respiration_rate": "resp",
    "temperature": "temp",
}
_SEVERITY = {"high": "high", "medium": "moderate", "low": "low"}


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def _patient(pseudonym: str) -> dict[str, Any]:
    return {"identifier": {"system": PSEUDONYM_SYSTEM, "value": pseudonym}}


def vital_observation(
    name: str,
    value: float,
    *,
    patient: str,
    at: float,
    device_id: str | None = None,
    resource_id: str | None = None,
) -> Observation:
    """One vital sign as a FHIR vital-signs Observation (``name`` as in ``Frame.signals``)."""
    codes, display, unit = VITAL_CODES[_ALIASES.get(name, name)]
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC, "code": c, "display": display} for c in codes],
            "text": display,
        },
        "subject": _patient(patient),
        "effectiveDateTime": _when(at),
        "valueQuantity": {
            "value": round(float(value), 3),
            "unit": unit,
            "system": UCUM,
            "code": unit,
        },
    }
    if resource_id:
        data["id"] = resource_id
    if device_id:
        data["device"] = {"identifier": {"system": DEVICE_SYSTEM, "value": device_id}}
    return Observation.model_validate(data)


def vitals_observations(
    values: dict[str, float], *, patient: str, at: float, device_id: str | None = None
) -> list[Observation]:
    """A vitals summary (e.g. ``Alert.values``) as Observations; unknown names are skipped."""
    return [
        vital_observation(
            name,
            value,
            patient=patient,
            at=at,
            device_id=device_id,
            resource_id=f"vital-{_ALIASES.get(name, name)}",
        )
        for name, value in values.items()
        if _ALIASES.get(name, name) in VITAL_CODES
    ]


def verdict_extension(verdict: str) -> dict[str, Any]:
    """The verdict as the DetectedIssue extension :data:`VERDICT_EXTENSION`.

    >>> verdict_extension("artefact")["valueCoding"]["code"]
    'artefact'
    """
    return {
        "url": VERDICT_EXTENSION,
        "valueCoding": {
            "system": VERDICT_SYSTEM,
            "code": verdict,
            "display": VERDICT_DISPLAY[verdict],
        },
    }


def detected_issue(alert: Alert, acknowledgement: Alert | None = None) -> DetectedIssue:
    """The alert (its latest lifecycle event, or :meth:`~.book.BookEntry.view`) as a
    DetectedIssue with its vitals as evidence. ``acknowledgement`` (the ``acknowledged``
    event) dates the mitigation; without it the alert's own ``t_event`` does."""
    evidence = vitals_observations(
        alert.values, patient=alert.patient, at=alert.t_event, device_id=alert.device_id
    )
    data: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "identifier": [{"system": ALERT_SYSTEM, "value": alert.alert_id}],
        "status": "preliminary"
        if alert.event in ("triggered", "repeated", "escalated")
        else "final",
        "code": {"coding": [{"system": KIND_SYSTEM, "code": alert.kind}], "text": alert.kind},
        "severity": _SEVERITY[alert.priority],
        "patient": _patient(alert.patient),
        "identifiedDateTime": _when(alert.t_onset),
        "author": {
            "identifier": {"system": DEVICE_SYSTEM, "value": alert.device_id},
            "display": alert.source,
        },
        "detail": alert.message or f"{alert.priority} {alert.category} alert: {alert.kind}",
    }
    if evidence:
        data["contained"] = [o.model_dump(mode="json", exclude_none=True) for o in evidence]
        data["evidence"] = [{"detail": [{"reference": f"#{o.id}"} for o in evidence]}]
    if alert.acknowledged_by:
        acknowledged_at = (acknowledgement or alert).t_event
        data["mitigation"] = [
            {
                "action": {"text": "acknowledged"},
                "date": _when(acknowledged_at),
                "author": {"display": alert.acknowledged_by},
            }
        ]
    if alert.verdict:
        data["extension"] = [verdict_extension(alert.verdict)]
    return DetectedIssue.model_validate(data)


def search_bundle(issues: list[DetectedIssue]) -> Bundle:
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(issues),
            "entry": [
                {
                    "resource": i.model_dump(mode="json", exclude_none=True),
                    "search": {"mode": "match"},
                }
                for i in issues
            ],
        }
    )
