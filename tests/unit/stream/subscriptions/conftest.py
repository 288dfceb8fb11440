"""Shared builders for the subscription unit tests."""

from __future__ import annotations

import itertools

import pytest

from stream.records import Alert

_ids = itertools.count()


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "alert_id": f"a{next(_ids)}",
        "event": "triggered",
        "kind": "tachycardia",
        "category": "physiological",
        "priority": "high",
        "patient": "p-1",
        "ward": "A",
        "device_id": "dev-1",
        "t_onset": 1_700_000_000.0,
        "t_event": 1_700_000_000.0,
        "emitted_at": 1_700_000_000.0,
        "window": (1_699_999_990.0, 1_700_000_000.0),
        "values": {"hr": 142.0},
        "source": "rule:hr_high",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


@pytest.fixture
def alert_factory():
    return make_alert
