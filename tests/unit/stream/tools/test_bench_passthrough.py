"""The headroom suite's pass-through: the feature template and the lines it writes per
frame. Nothing is timed."""

from __future__ import annotations

import pytest

from stream.records import Frame
from stream.signal.features import FEATURE_NAMES
from stream.sinks.measurements import feature_lines, patient_tags, vitals_lines
from stream.tools.bench.passthrough import FLAG_FEATURES, FrameLines, feature_template


def test_the_feature_template_names_every_feature() -> None:
    template = feature_template()
    assert tuple(template) == FEATURE_NAMES
    assert all(isinstance(v, float) for v in template.values())


def _decoded_frame() -> dict:
    return {
        "v": 1, "device_id": "dev-0007", "seq": 3, "t0": 1_700_000_000.0,
        "signals": {
            "ecg": {"fs": 128, "unit": "mV", "samples": [0.01] * 128},
            "hr": {"fs": 1, "unit": "bpm", "samples": [71]},
            "spo2": {"fs": 1, "unit": "%", "samples": [97]},
            "resp": {"fs": 1, "unit": "/min", "samples": [15]},
            "temp": {"fs": 1, "unit": "°C", "samples": [36.7]},
            "battery": {"fs": 1, "unit": "%", "samples": [88]},
        },
    }  # fmt: skip


def test_a_frame_flows_through_as_its_vitals_and_one_windows_features() -> None:
    decoded = _decoded_frame()
    builder = FrameLines("ward-bench", hop_s=1.0, features=feature_template())
    lines = builder.of(decoded)
    tags = builder.tags("dev-0007")
    assert tags == patient_tags("ward-bench", tags["patient"], "dev-0007")
    assert tags["patient"].startswith("p-") and builder.tags("dev-0007") is tags
    # The pipeline's own vitals lines of the validated frame, then three feature lines.
    assert lines[:1] == vitals_lines(Frame.model_validate(decoded), tags)
    assert len(lines) == 4
    assert [text.split(",", 1)[0] for text in lines] == ["vitals", "features", "quality", "vitals"]
    assert all(text.endswith(" 1700000001000000000") for text in lines[1:])  # window end


def test_feature_values_vary_but_flags_do_not() -> None:
    builder = FrameLines("w", 1.0, feature_template(), seed=4)
    first, second = builder.features(), builder.features()
    assert first["spo2"] != second["spo2"]
    assert first["spo2"] == pytest.approx(97.0, rel=0.011)
    assert all(first[name] == second[name] for name in FLAG_FEATURES)
    assert len(feature_lines(first, {"device": "d"}, 1.0)) == 3
