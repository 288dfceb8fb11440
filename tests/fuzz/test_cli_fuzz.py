"""Fuzzing the CLI's file inputs: hostile scenario and recording files end in a clear
one-line ``error: ...`` and exit code 2, never a traceback.

The commands run in-process through Typer's test runner, so an exception escaping a
command shows up as ``result.exception`` (what a user would see as a traceback).
Inputs the loaders accept are left out: a valid scenario would start publishing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from producers.scenario import ScenarioError, load_scenario
from stream.cli.main import app

runner = CliRunner()
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=30)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["name", "ward", "patients", "id", "events", "event", "start", "end",
                         "severity", "profile", "device_id", "x"]) | st.text(max_size=8),
        inner, max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip
patient = st.fixed_dictionaries(
    {"id": st.text(max_size=40) | st.integers()},
    optional={
        "events": st.lists(
            st.fixed_dictionaries(
                {
                    "event": st.text(max_size=15) | st.sampled_from(["tachycardia", "fall"]),
                    "start": st.floats() | st.integers(),
                    "end": st.floats() | st.integers(),
                },
                optional={"severity": st.floats() | st.text(max_size=5)},
            ),
            max_size=3,
        ),
        "device_id": st.text(max_size=70),
    },
)
scenario_like = st.fixed_dictionaries(
    {"name": st.text(max_size=20) | st.integers(), "patients": st.lists(patient, max_size=3)},
    optional={"ward": st.text(max_size=300) | st.none()},
)


def _yaml_text(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


scenario_texts = (
    yaml_values.map(_yaml_text)
    | scenario_like.map(_yaml_text)
    | st.text(max_size=400)  # not YAML at all, control characters included
    | st.just("a: &a [*a]")  # a self-referencing alias
    | st.just("name: x\npatients: " + "[" * 50)
)


def _assert_clean_error(result, suffix: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception} ({suffix})"
    )
    assert result.exit_code == 2, (result.exit_code, result.output[-500:])
    assert "Traceback" not in result.output
    assert "error" in result.output.lower()


@FUZZ
@given(text=scenario_texts)
def test_hostile_scenario_files_give_one_line_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_scenario(path)
        except ScenarioError:
            pass
        except Exception:
            pass  # the CLI must still turn it into a clean error
        else:
            assume(False)  # a valid scenario would really publish
        result = runner.invoke(
            app, ["simulate", "--scenario", str(path), "--duration", "0", "--json"]
        )
    _assert_clean_error(result, "scenario")


recording_bytes = (
    st.binary(max_size=2000)
    | st.text(max_size=400).map(str.encode)
    | st.lists(st.floats() | st.text(max_size=5), max_size=50).map(
        lambda xs: "\n".join(map(str, xs)).encode()
    )
    | st.just(b"")
    | st.just(b"\x93NUMPY\x01\x00" + b"\xff" * 64)  # a .npy header that lies
)


@FUZZ
@given(
    content=recording_bytes,
    suffix=st.sampled_from([".csv", ".npy", ".txt"]),
    signal=st.sampled_from(["ecg", "ppg", "acc"]),
)
def test_hostile_recording_files_give_one_line_errors(
    content: bytes, suffix: str, signal: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"recording{suffix}"
        path.write_bytes(content)
        result = runner.invoke(app, ["analyze", str(path), "--signal", signal, "--fs", "250"])
    if result.exit_code == 0:
        return  # a file that really is a short recording: analysed fine
    _assert_clean_error(result, f"{suffix} {signal}")


@pytest.mark.parametrize(
    "array",
    [np.array([np.nan] * 3000), np.array([np.inf, -np.inf] * 1500), np.zeros((10, 0)),
     np.array(["a", "b"]), np.zeros(1)],
    ids=["all-nan", "infinite", "no-columns", "strings", "one-sample"],
)  # fmt: skip
def test_degenerate_npy_recordings(array: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "recording.npy"
    np.save(path, array)
    result = runner.invoke(app, ["analyze", str(path), "--signal", "ecg", "--fs", "250"])
    if result.exit_code != 0:
        _assert_clean_error(result, "npy")
    else:
        assert "Traceback" not in result.output


def test_deeply_nested_scenario_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 5000 + "]" * 5000)
    result = runner.invoke(app, ["simulate", "--scenario", str(path), "--duration", "0"])
    _assert_clean_error(result, "deep nesting")


def test_a_pickled_npy_is_refused_not_loaded(tmp_path: Path) -> None:
    """allow_pickle=False: an object array (arbitrary code on load) is an error."""
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    result = runner.invoke(app, ["analyze", str(path), "--signal", "ecg", "--fs", "250"])
    _assert_clean_error(result, "pickle")
