"""Grafana provisioning and dashboard files: structurally valid and consistent with the
measurements stream/sinks/measurements.py writes (no Grafana server needed)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from stream.tools.dashboards import (
    DASHBOARD_DIR,
    GRAFANA_DIR,
    annotation_queries,
    iter_panels,
    panel_queries,
    query_variables,
    variable_flux,
)

SINKS = Path(__file__).resolve().parents[2] / "stream" / "sinks" / "measurements.py"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))
NEWS2_BANDS = [("green", None), ("yellow", 1), ("orange", 5), ("red", 7)]


def sink_measurements() -> set[str]:
    """Measurement names of every ``line("name", ...)`` call in stream/sinks/measurements.py."""
    tree = ast.parse(SINKS.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "line"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def datasources() -> list[dict]:
    files = sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.yaml"))
    assert files
    return [ds for f in files for ds in yaml.safe_load(f.read_text())["datasources"]]


def all_flux(dashboard: dict) -> list[str]:
    texts = [q.flux for q in panel_queries(dashboard) + annotation_queries(dashboard)]
    return texts + [variable_flux(v) for v in query_variables(dashboard)]


@pytest.fixture(params=DASHBOARD_FILES, ids=lambda p: p.stem)
def dashboard(request) -> dict:
    return json.loads(request.param.read_text())


def test_sinks_measurements_are_found():
    assert {"vitals", "features", "quality", "scores", "alerts", "news2", "pipeline"} <= (
        sink_measurements()
    )


def test_datasource_is_influxdb_flux_with_token_from_the_environment():
    (source,) = datasources()
    config = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/influxdb.yaml").read_text())
    assert config["apiVersion"] == 1
    assert source["type"] == "influxdb" and source["uid"] == "vitalstream-influx"
    assert source["jsonData"]["version"] == "Flux"
    assert source["jsonData"]["organization"] and source["jsonData"]["defaultBucket"]
    # Secrets come from Grafana's environment, never from the file.
    assert re.fullmatch(r"\$\{?\w+\}?", source["secureJsonData"]["token"])
    assert re.fullmatch(r"\$\{?\w+\}?|https?://\S+", source["url"])


def test_compose_gives_grafana_what_the_provisioning_reads():
    compose = yaml.safe_load((GRAFANA_DIR.parent / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    text = (GRAFANA_DIR / "provisioning/datasources/influxdb.yaml").read_text()
    for name in re.findall(r"\$\{(\w+)\}", text):
        assert name in grafana["environment"], name
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert grafana["environment"]["INFLUX_URL"] == "http://influxdb:8086"


def test_dashboard_provider_points_at_the_mounted_directory():
    (path,) = (GRAFANA_DIR / "provisioning" / "dashboards").glob("*.yaml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_three_dashboards_exist_with_unique_uids():
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARD_FILES]
    assert sorted(uids) == ["vitalstream-patient", "vitalstream-pipeline", "vitalstream-ward"]


def test_dashboard_structure(dashboard):
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = list(iter_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert {"type", "title", "gridPos", "targets"} <= set(panel), panel.get("title")
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_every_datasource_reference_is_provisioned(dashboard):
    provisioned = {ds["uid"] for ds in datasources()}
    refs = [p["datasource"] for p in iter_panels(dashboard)]
    refs += [t["datasource"] for p in iter_panels(dashboard) for t in p["targets"]]
    refs += [v["datasource"] for v in query_variables(dashboard)]
    refs += [a["datasource"] for a in dashboard["annotations"]["list"] if "target" in a]
    assert refs
    for ref in refs:
        assert ref["type"] == "influxdb" and ref["uid"] in provisioned


def test_queries_reference_only_measurements_the_sink_writes(dashboard):
    known = sink_measurements()
    for flux in all_flux(dashboard):
        used = set(re.findall(r'_measurement\s*==\s*"([^"]+)"', flux))
        assert used, f"query names no measurement:\n{flux}"
        assert used <= known, used - known


def test_variables_used_in_queries_are_defined(dashboard):
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for flux in all_flux(dashboard):
        used = set(re.findall(r"\$\{(\w+)", flux)) | set(re.findall(r"\$(\w+)", flux))
        assert used <= defined, used - defined


def bands(thresholds: dict) -> list[tuple[str, float | None]]:
    return [(step["color"], step["value"]) for step in thresholds["steps"]]


def test_news2_panels_use_the_news2_bands():
    ward = json.loads((DASHBOARD_DIR / "ward.json").read_text())
    patient = json.loads((DASHBOARD_DIR / "patient.json").read_text())
    news2_panels = [p for d in (ward, patient) for p in iter_panels(d) if "NEWS2" in p["title"]]
    assert len(news2_panels) >= 4
    for panel in news2_panels:
        field_config = panel["fieldConfig"]
        candidates = [field_config["defaults"]["thresholds"]] + [
            prop["value"]
            for override in field_config["overrides"]
            for prop in override["properties"]
            if prop["id"] == "thresholds"
        ]
        assert NEWS2_BANDS in [bands(t) for t in candidates], panel["title"]


def test_patient_vitals_carry_units():
    patient = json.loads((DASHBOARD_DIR / "patient.json").read_text())
    units = {p["title"]: p["fieldConfig"]["defaults"].get("unit") for p in iter_panels(patient)}
    assert units["Heart rate"] == "bpm"
    assert units["SpO2"] == "percent"
    assert units["Respiration rate"] == "suffix:/min"
    assert units["Temperature"] == "celsius"
